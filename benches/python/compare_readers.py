#!/usr/bin/env python3
"""Time the Python event-file readers people use today on the recordings in ../shared/data.

Prints one JSON object per (file, reader): events decoded into a NumPy array and the median
wall time of several runs, for the README's reader table. Install the readers first:

    python3 -m venv /tmp/pyb && /tmp/pyb/bin/pip install numpy scipy h5py tqdm requests \
        typing-extensions importRosbag pbr expelliarmus aedat && /tmp/pyb/bin/pip install --no-deps tonic

Usage: /tmp/pyb/bin/python benches/python/compare_readers.py DATA_DIR AEDAT31_FILE [RUNS]
(AEDAT31_FILE: a DVS128-Gesture-style file, e.g. made with `stdl convert ... --to aedat31`.)
"""
import json
import statistics
import sys
import time

import numpy as np


def median_time(fn, runs):
    times, n = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t0)
    return n, statistics.median(times)


def main():
    data, aedat31_file = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    import aedat
    import expelliarmus
    import tonic.io as tio

    def aedat_py(path):
        d = aedat.Decoder(path)
        ids = [i for i, s in d.id_to_stream().items() if s["type"] == "events"]
        return sum(len(p["events"]) for p in d if p["stream_id"] in ids)

    def expel(enc):
        def f(path):
            return len(expelliarmus.Wizard(encoding=enc, fpath=path).read())
        return f

    nmnist_dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
    # tonic 1.7.0's read_dvs_128 / read_dvs_ibm fail (they unpack a 3-tuple header into two
    # names); these run their bodies as written, with the header call fixed.
    def tonic_aedat(shift_x, mask, shift_y, pol_shift):
        def f(path):
            version, start, _ = tio.read_aedat_header_from_file(path)
            ev = tio.get_aer_events_from_file(path, version, start)
            a, t = ev["address"], ev["timeStamp"]
            x, y, p = (a >> shift_x) & mask, (a >> shift_y) & mask, (a >> pol_shift) & 1
            return len(tio.make_structured_array(x, y, t, p))
        return f

    cases = [
        ("aedat2", "aedat2/dvs128_alex_walking_for_10secs.aedat", "tonic.io (read_dvs_128)",
         tonic_aedat(8, 0x7F, 1, 0)),
        ("aedat31", aedat31_file, "tonic.io (read_dvs_ibm)", tonic_aedat(17, 0x1FFF, 2, 1)),
        ("aedat4", "aedat4/dvxplorer_tonic_sample.aedat4", "aedat (PyPI) Decoder", aedat_py),
        ("aedat4", "aedat4/dvxplorer_tonic_sample.aedat4", "tonic.io.read_aedat4",
         lambda p: len(tio.read_aedat4(p))),
        ("aedat4", "aedat4/davis346_aedat_crate_test_data.aedat4", "aedat (PyPI) Decoder", aedat_py),
        ("bin", "nmnist/tonic_sample_nmnist.bin", "tonic.io.read_mnist_file",
         lambda p: len(tio.read_mnist_file(p, nmnist_dtype))),
        ("evt2", "evt2/gen3_expelliarmus_evt2_sample.raw", "expelliarmus", expel("evt2")),
        ("evt3", "evt3/gen41_expelliarmus_evt3_sample.raw", "expelliarmus", expel("evt3")),
        ("dat", "dat/ncars_loris_NCARS_obj_004397_td.dat", "expelliarmus", expel("dat")),
    ]
    for fmt, rel, reader, fn in cases:
        path = rel if rel.startswith("/") else f"{data}/{rel}"
        try:
            n, sec = median_time(lambda: fn(path), runs)
            print(json.dumps({"format": fmt, "file": path, "reader": reader, "events": int(n),
                              "seconds": sec, "events_per_s": n / sec}))
        except Exception as e:  # a reader that cannot read the file is reported, not hidden
            print(json.dumps({"format": fmt, "file": path, "reader": reader, "error": repr(e)}))


if __name__ == "__main__":
    main()
