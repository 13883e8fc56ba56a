#!/usr/bin/env python3
"""Read every file of an N-MNIST-layout dataset per file from Python, as a training loop does,
for the comparison with `stdl bench read --dataset nmnist --root DIR` (benches/speed.sh).

    python3 benches/python/read_dataset.py ROOT [RUNS]

ROOT is either layout `stdl` reads: `Train/<digit>/*.bin` + `Test/<digit>/*.bin`, or SLAYER's
list-file folder (`*.bs2` or `*.bin` files beside `train*.txt` / `test*.txt`). Each run opens,
reads and decodes every file; prints one JSON object per reader with the median run:

- `numpy`: `np.fromfile` and a vectorised decode of the 40-bit records (overflow markers,
  y == 240, dropped and applied as Tonic does) into a compact structured array
  (t int64, x int16, y int16, p int8): the least a Python loop can do per file.
- `tonic.io.read_mnist_file` (when Tonic is installed), with Tonic's N-MNIST dtype.
"""
import glob
import json
import os
import statistics
import sys
import time

import numpy as np

COMPACT = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.int8)])


def files_of(root):
    if os.path.isdir(os.path.join(root, "Train")) or os.path.isdir(os.path.join(root, "Test")):
        pattern = [os.path.join(root, split, "*", f"*.{ext}")
                   for split in ("Train", "Test") for ext in ("bin", "bs2")]
    else:
        pattern = [os.path.join(root, f"*.{ext}") for ext in ("bin", "bs2")]
    return sorted(f for p in pattern for f in glob.glob(p))


def numpy_read(path):
    raw = np.fromfile(path, dtype=np.uint8)
    raw = raw[: len(raw) // 5 * 5].reshape(-1, 5)
    y = raw[:, 1]
    w = (raw[:, 2].astype(np.int64) << 16) | (raw[:, 3].astype(np.int64) << 8) | raw[:, 4]
    t = w & 0x7FFFFF
    marker = y == 240
    if marker.any():
        t = t + np.cumsum(marker) * (1 << 13)
    keep = ~marker
    out = np.empty(int(keep.sum()), dtype=COMPACT)
    out["t"] = t[keep]
    out["x"] = raw[keep, 0]
    out["y"] = y[keep]
    out["p"] = (w[keep] >> 23) & 1
    return out


def main():
    root = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    files = files_of(root)
    if not files:
        sys.exit(f"error: no .bin or .bs2 files under {root}")
    readers = [("numpy", numpy_read)]
    try:
        import tonic.io as tio

        dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])  # tonic.datasets.NMNIST
        readers.append(("tonic.io.read_mnist_file", lambda p: tio.read_mnist_file(p, dtype)))
    except ImportError as e:
        print(f"tonic not installed ({e}): timing numpy only", file=sys.stderr)
    for name, read in readers:
        times, events = [], 0
        for _ in range(runs):
            t0 = time.perf_counter()
            events = sum(len(read(f)) for f in files)
            times.append(time.perf_counter() - t0)
        sec = statistics.median(times)
        print(json.dumps({"reader": name, "root": root, "files": len(files), "events": events,
                          "runs": runs, "seconds": sec, "us_per_file": 1e6 * sec / len(files),
                          "events_per_s": events / sec}))


if __name__ == "__main__":
    main()
