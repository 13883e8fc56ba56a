#!/usr/bin/env python3
"""The Python package against what people use from Python, in one run on one machine:

- `stdl.read` against `expelliarmus`, the `aedat` package and Tonic's readers on every format
  they read (median of RUNS, the two sides alternated);
- `stdl.Learner.step` (nmnist preset, batch 1, an update after every step) against the same
  network trained online in PyTorch with SpikingJelly's LIFNode
  (`benches/python/torch_stdl_nmnist.py --neuron spikingjelly --batch 1`);
- what a call from Python costs per `step`: the calls' wall time less the time spent inside
  the engine's steps (`Learner.engine_seconds`), in the same run.

    pip install ./python expelliarmus aedat tonic spikingjelly torch
    python benches/python/python_package.py [DATA_DIR] [RUNS]

Prints a Markdown table (the README's "Python" table) with the CPU model.
"""

import json
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

import stdl

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def alternate(fa, fb, runs):
    """Median seconds of `fa` and `fb`, run alternately `runs` times each."""
    ta, tb = [], []
    for _ in range(runs):
        for f, t in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter()
            f()
            t.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def readers(data: pathlib.Path, runs: int):
    import aedat
    import expelliarmus
    import tonic.io as tio

    def aedat_py(path):
        d = aedat.Decoder(str(path))
        ids = [i for i, s in d.id_to_stream().items() if s["type"] == "events"]
        return sum(len(p["events"]) for p in d if p["stream_id"] in ids)

    def expel(enc):
        return lambda path: len(expelliarmus.Wizard(encoding=enc, fpath=str(path)).read())

    cases = [
        ("evt2", "evt2/gen3_expelliarmus_evt2_sample.raw", None, "expelliarmus", expel("evt2")),
        ("evt3", "evt3/gen41_expelliarmus_evt3_sample.raw", None, "expelliarmus", expel("evt3")),
        ("dat", "dat/ncars_loris_NCARS_obj_004397_td.dat", None, "expelliarmus", expel("dat")),
        ("aedat4", "aedat4/dvxplorer_tonic_sample.aedat4", None, "aedat (PyPI)", aedat_py),
        ("aedat4", "aedat4/dvxplorer_tonic_sample.aedat4", None, "tonic.io.read_aedat4",
         lambda p: len(tio.read_aedat4(str(p)))),
        ("bin", "nmnist/tonic_sample_nmnist.bin", (34, 34), "tonic.io.read_mnist_file",
         lambda p: len(tio.read_mnist_file(str(p), stdl.EVENTS_DTYPE))),
    ]
    rows = []
    for fmt, rel, size, name, theirs in cases:
        path = data / rel
        n = len(stdl.read(path, sensor_size=size)[0])
        assert theirs(path) == n, f"{name} and stdl disagree on {rel}"
        ours_s, theirs_s = alternate(lambda: stdl.read(path, sensor_size=size), lambda: theirs(path), runs)
        rows.append((f"read {fmt} ({n:,} events), ms", ours_s * 1e3, name, theirs_s * 1e3))
    return rows


def learner(steps: int):
    l = stdl.Learner("nmnist", seed=0)
    rng = np.random.default_rng(0)
    frames = (rng.random((steps, 2, 34, 34)) < 0.1).astype(np.float32)
    for f in frames[:20]:  # warm-up: buffers allocated
        l.step(f, label=3)
    engine0 = l.engine_seconds
    t0 = time.perf_counter()
    for i, f in enumerate(frames):
        l.step(f, label=i % 10)
    wall = time.perf_counter() - t0
    return wall / steps, (wall - (l.engine_seconds - engine0)) / steps


def main() -> int:
    data = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/data"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    rows = readers(data, runs)
    steps = 400
    py_step, overhead = learner(steps)
    sj = json.loads(subprocess.run(
        [sys.executable, ROOT / "benches/python/torch_stdl_nmnist.py", "--neuron", "spikingjelly",
         "--batch", "1", "--batches", "40", "--threads", "2", "--json"],
        capture_output=True, text=True, check=True).stdout)
    sj_step = sj["seconds_per_sample"] / sj["t_bins"]
    rows.append(("Learner.step, nmnist batch 1, ms", py_step * 1e3, "SpikingJelly LIFNode (PyTorch)", sj_step * 1e3))
    print(f"CPU: {cpu_model()}, 2 threads; {runs} runs each, medians, the two sides alternated\n")
    print("| what | stdl from Python | against | theirs | ratio |")
    print("|---|---:|---|---:|---:|")
    for what, ours, name, theirs in rows:
        print(f"| {what} | {ours:.3f} | {name} | {theirs:.3f} | {theirs / ours:.2f}x |")
    print(f"\nThe call from Python per Learner.step: {overhead * 1e6:.1f} us of {py_step * 1e6:.0f} us "
          f"({overhead / py_step * 100:.1f}%; wall time less Learner.engine_seconds, {steps} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
