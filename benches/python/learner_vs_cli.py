#!/usr/bin/env python3
"""stdl.Learner trained from Python against `stdl train` on the real N-MNIST samples.

    python benches/python/learner_vs_cli.py [DATA_DIR] [EPOCHS] [SEEDS] [LIMIT]

For each seed: `stdl train --preset nmnist --batch 1` (the online learner's batch) for
EPOCHS epochs with its default cosine schedule, then the same recipe in a Python loop over
`stdl.Learner`: frames from `stdl.read` and `stdl.to_frames` (T = 10 bins of equal event
counts, the remainder in the last, as `stdl train` bins them), the samples in
`stdl.epoch_order`, the rate from `stdl.lr_at`, a reset before each sample, and the
evaluation as `stdl train` evaluates (the arg-max of the summed logits over the T steps).
Prints both test accuracies, their difference, and each side's seconds per epoch.
LIMIT (default: all) takes the first LIMIT training and test samples, as `--limit-samples`.
Needs `pip install ./python` and `cargo build --release`.
"""

import json
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

import stdl

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared" / "data")
EPOCHS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
SEEDS = [int(s) for s in (sys.argv[3] if len(sys.argv) > 3 else "0,1").split(",")]
LIMIT = int(sys.argv[4]) if len(sys.argv) > 4 else None
T = 10
LR = 1e-3
NMNIST = DATA / "nmnist" / "slayer_NMNISTsmall"


def split(list_file: str):
    rows = []
    for line in (NMNIST / list_file).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, label = line.split()[:2]
            rows.append((NMNIST / f"{name}.bs2", int(label)))
    return rows[:LIMIT] if LIMIT else rows


def frames_of(rows):
    out = []
    for path, label in rows:
        ev, _ = stdl.read(path, sensor_size=(34, 34))
        out.append((stdl.to_frames(ev, (34, 34, 2), n_event_bins=T), label))
    return out


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cli_run(seed: int, out: pathlib.Path) -> dict:
    exe = ROOT / "target" / "release" / "stdl"
    args = [exe, "train", "--dataset", "nmnist", "--root", NMNIST, "--preset", "nmnist",
            "--batch", "1", "--t-bins", str(T), "--epochs", str(EPOCHS), "--seed", str(seed),
            "--lr", str(LR), "--out", out, "--quiet"]
    if LIMIT:
        args += ["--limit-samples", str(LIMIT)]
    subprocess.run(args, check=True, capture_output=True)
    return json.loads((out / "result.json").read_text())


def python_run(seed: int, train, test) -> dict:
    learner = stdl.Learner("nmnist", seed=seed, lr=LR)
    t0 = time.perf_counter()
    for epoch in range(EPOCHS):
        learner.lr = stdl.lr_at(LR, epoch, EPOCHS)
        for i in stdl.epoch_order(len(train), seed, epoch):
            frames, label = train[i]
            learner.reset()
            for f in frames:
                learner.step(f, label)
    seconds = time.perf_counter() - t0
    correct = 0
    for frames, label in test:
        learner.reset()
        logits = sum(learner.predict(f) for f in frames)
        correct += int(np.argmax(logits) == label)
    return {"test_accuracy": correct / len(test), "seconds": seconds}


def main():
    train, test = frames_of(split("train1K.txt")), frames_of(split("test100.txt"))
    print(f"N-MNIST {len(train)} train / {len(test)} test samples, preset nmnist, T = {T}, "
          f"batch 1, {EPOCHS} epochs, cosine from {LR}; {cpu_model()}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in SEEDS:
            cli = cli_run(seed, pathlib.Path(tmp) / f"s{seed}")
            py = python_run(seed, train, test)
            diff = (py["test_accuracy"] - cli["test_accuracy"]) * 100
            worst = max(worst, abs(diff))
            print(f"seed {seed}: stdl train {cli['test_accuracy'] * 100:.1f}% "
                  f"({cli['seconds'] / EPOCHS:.1f} s/epoch)  stdl.Learner {py['test_accuracy'] * 100:.1f}% "
                  f"({py['seconds'] / EPOCHS:.1f} s/epoch)  difference {diff:+.1f} points")
    print(f"largest difference: {worst:.1f} points")


if __name__ == "__main__":
    main()
