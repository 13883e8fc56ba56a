#!/usr/bin/env python3
"""stdl.stream from Python: the N-MNIST training split played as one labelled stream
(10 ms bins), learned online with STDL while it predicts; then the summary.

    python examples/python/stream_nmnist.py [DATA_DIR] [MAX_STEPS]
"""

import pathlib
import sys

import stdl

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data") / "nmnist" / "slayer_NMNISTsmall"
max_steps = int(sys.argv[2]) if len(sys.argv) > 2 else 6000

with stdl.stream({"dataset": "nmnist", "root": str(root), "split": "train"}, preset="nmnist",
                 bin_us=10_000, max_steps=max_steps) as s:
    right = []
    for i, p in enumerate(s):
        right.append(p["class"] == p["label"])
        if i < 2 or (i + 1) % 1000 == 0:
            print(p, f"right over the last 1000: {sum(right[-1000:]) / len(right[-1000:]):.1%}")
print({k: s.summary[k] for k in ("steps", "events", "accuracy", "peak_rss_bytes", "seconds", "interrupted")})
