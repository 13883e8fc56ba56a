"""Does an online learner follow the features or the last label? N-MNIST played sample after
sample as 10 ms frames through ``stdl.Learner`` (batch 1, an update after every frame), with
the membranes carried from sample to sample as a stream carries them, or cleared before each
sample as ``stdl train`` clears them.

Prints the per-frame training accuracy, and, over the first 3 frames of each sample, how often
the prediction is the sample's own label and how often it is the previous sample's label (a
learner that follows the last label it was taught scores high on the second); then the test
split's accuracy with learning off (summed logits), membranes cleared per sample or carried.

    python benches/python/stream_recency.py carry|reset [N_TRAIN] [ROOT] [PRESET] [SEED]

Defaults: 500 training samples, ``../shared/data/nmnist/slayer_NMNISTsmall``, ``dvs-gesture``
(frames cropped from 34 x 34 to its 32 x 32 input), seed 0. Needs the ``stdl`` package
(``pip install ./python``) and numpy.
"""

import sys
import time

import numpy as np
import stdl


def load(root, listfile, n, crop):
    rows = [line.split() for line in open(f"{root}/{listfile}") if not line.startswith("#")][:n]
    out = []
    for sid, cls in rows:
        events, _ = stdl.read(f"{root}/{sid}.bs2", format="bin")
        frames = stdl.to_frames(events, (34, 34, 2), time_window=10000, edge="to_last")
        if crop:
            frames = frames[:, :, 1:33, 1:33]
        out.append((np.ascontiguousarray(frames, dtype=np.float32), int(cls)))
    return out


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "carry"
    assert mode in ("carry", "reset"), "mode: carry or reset"
    n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    root = sys.argv[3] if len(sys.argv) > 3 else "../shared/data/nmnist/slayer_NMNISTsmall"
    preset = sys.argv[4] if len(sys.argv) > 4 else "dvs-gesture"
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    learner = stdl.Learner(preset, seed=seed)
    crop = tuple(learner.input_shape[1:]) == (32, 32)
    train = load(root, "train1K.txt", n_train, crop)
    test = load(root, "test100.txt", 100, crop)
    t0 = time.time()
    hits = total = own = previous = early = 0
    prev = None
    for frames, label in train:
        if mode == "reset":
            learner.reset()
        for i, frame in enumerate(frames):
            p = int(np.argmax(learner.step(frame, label=label)))
            hits += p == label
            total += 1
            if i < 3:
                early += 1
                own += p == label
                previous += prev is not None and p == prev
        prev = label
    print(
        f"{preset}, membranes {mode}, seed {seed}, {n_train} training samples: per-frame training "
        f"accuracy {hits / total:.3f} over {total} frames; first 3 frames of a sample: "
        f"{own / early:.3f} its own label, {previous / early:.3f} the previous sample's label "
        f"({time.time() - t0:.0f} s)"
    )
    for test_mode in ("reset", "carry"):
        ok = 0
        for frames, label in test:
            if test_mode == "reset":
                learner.reset()
            ok += int(np.argmax(sum(learner.predict(f) for f in frames))) == label
        print(f"  test split, learning off, membranes {test_mode}: {ok}/100")


if __name__ == "__main__":
    main()
