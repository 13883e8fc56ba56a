"""The Python package against the recordings in ../shared/data and against Tonic and
SpikingJelly. Run: `pip install ./python pytest tonic spikingjelly torch`, then
`pytest python/tests`. Under CI=true a missing ../shared/data fails instead of skipping."""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

import stdl

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"


def data(rel: str) -> pathlib.Path:
    p = DATA / rel
    if not p.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {p} does not exist")
        pytest.skip(f"{p} not found")
    return p


def stdl_exe() -> pathlib.Path:
    exes = [ROOT / "target" / p / "stdl" for p in ("release", "debug")]
    exe = next((e for e in exes if e.exists()), None)
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no stdl binary under target/ (cargo test builds it)")
        pytest.skip("no stdl binary built")
    return exe


def test_read_evt3_counts_and_dtype():
    ev, size = stdl.read(data("evt3/gen41_expelliarmus_evt3_sample.raw"))
    assert len(ev) == 219596
    assert ev.dtype == stdl.EVENTS_DTYPE
    assert size == (1280, 720, 2)
    assert np.all(np.diff(ev["t"]) >= 0) or len(ev) > 0
    assert ev["x"].max() < 1280 and ev["y"].max() < 720


def test_dtype_is_tonics():
    tonic_io = pytest.importorskip("tonic.io")
    assert stdl.EVENTS_DTYPE == tonic_io.events_struct


def test_read_nmnist_equals_tonic():
    tonic_io = pytest.importorskip("tonic.io")
    path = data("nmnist/tonic_sample_nmnist.bin")
    ours, size = stdl.read(path, sensor_size=(34, 34))
    theirs = tonic_io.read_mnist_file(str(path), dtype=stdl.EVENTS_DTYPE)
    assert size == (34, 34, 2)
    for k in "xytp":
        np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)


def test_read_aedat4_equals_tonic():
    tonic_io = pytest.importorskip("tonic.io")
    path = data("aedat4/dvxplorer_tonic_sample.aedat4")
    ours, size = stdl.read(path)
    theirs = tonic_io.read_aedat4(str(path))
    assert len(ours) == len(theirs)
    for k in "xytp":
        np.testing.assert_array_equal(ours[k].astype(np.int64), theirs[k].astype(np.int64), err_msg=k)


def test_open_batches_concatenate_to_read():
    path = data("evt2/gen3_faery_evt2.raw")
    whole, _ = stdl.read(path)
    batches = list(stdl.open(path))
    assert len(batches) > 1
    assert all(b.dtype == stdl.EVENTS_DTYPE for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), whole)


def test_info_matches_the_command_line():
    path = data("evt3/gen41_expelliarmus_evt3_sample.raw")
    i = stdl.info(path)
    assert i["events"] == 219596 and i["format"] == "evt3"
    cli = json.loads(subprocess.run([stdl_exe(), "info", "--json", str(path)], capture_output=True,
                                    check=True, text=True).stdout)
    assert cli == i


def test_errors_say_what_and_where(tmp_path):
    with pytest.raises(FileNotFoundError):
        stdl.read(tmp_path / "missing.aedat4")
    src = data("evt2/gen3_faery_evt2.raw").read_bytes()
    bad = tmp_path / "cut.raw"
    bad.write_bytes(src[: len(src) // 2 + 1])
    with pytest.raises(stdl.StdlError) as e:
        stdl.read(bad)
    msg = str(e.value)
    assert "cut.raw" in msg and "EVT 2.0" in msg, msg
    with pytest.raises(stdl.StdlError):
        stdl.read(bad, format="evt9")


def _tonic_frames(ev, size, **kw):
    tonic = pytest.importorskip("tonic")
    return tonic.transforms.ToFrame(sensor_size=size, **kw)(ev)


@pytest.mark.parametrize("kw", [
    dict(n_time_bins=10),
    dict(n_time_bins=7, overlap=0.25),
    dict(n_event_bins=10),
    dict(n_event_bins=6, overlap=0.5),
    dict(time_window=10_000.0),
    dict(time_window=30_000.0, overlap=10_000.0),
])
def test_frames_equal_tonic(kw):
    ev, size = stdl.read(data("nmnist/tonic_sample_nmnist.bin"), sensor_size=(34, 34))
    theirs = _tonic_frames(ev, size, **kw)
    ours = stdl.to_frames(ev, size, edge="drop", **kw)
    assert ours.dtype == np.float32
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    np.testing.assert_array_equal(ours, theirs.astype(np.float32))


@pytest.mark.parametrize("split_by,frames", [("number", 10), ("time", 10), ("number", 7), ("time", 3)])
def test_frames_equal_spikingjelly(split_by, frames):
    sj = pytest.importorskip("spikingjelly.datasets")
    ev, size = stdl.read(data("nmnist/tonic_sample_nmnist.bin"), sensor_size=(34, 34))
    d = {"t": ev["t"].astype(np.int64), "x": ev["x"].astype(np.int64),
         "y": ev["y"].astype(np.int64), "p": ev["p"].astype(np.int64)}
    theirs = sj.integrate_events_by_fixed_frames_number(d, split_by, frames, 34, 34)
    if split_by == "number":
        ours = stdl.to_frames(ev, size, n_event_bins=frames, edge="to_last")
    else:
        ours = stdl.to_frames(ev, size, n_time_bins=frames, edge="to_last")
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs.astype(np.float32))


def test_frames_merge_polarity_and_bad_input():
    ev, size = stdl.read(data("nmnist/tonic_sample_nmnist.bin"), sensor_size=(34, 34))
    split = stdl.to_frames(ev, size, n_time_bins=5)
    merged = stdl.to_frames(ev, size, n_time_bins=5, merge_polarity=True)
    assert merged.shape == (5, 1, 34, 34)
    np.testing.assert_array_equal(merged[:, 0], split.sum(axis=1))
    assert split.sum() == len(ev)
    with pytest.raises(stdl.StdlError):
        stdl.to_frames(ev, size, n_time_bins=5, time_window=1000.0)
    with pytest.raises(stdl.StdlError):
        stdl.to_frames(ev[::-1], size, n_time_bins=5)
    with pytest.raises(stdl.StdlError):
        stdl.to_frames(ev, (10, 10), n_time_bins=5)


def test_learner_learns_saves_and_loads(tmp_path):
    learner = stdl.Learner("tiny", seed=3)
    c, h, w = learner.input_shape
    assert learner.classes >= 2 and len(learner.plan["subnets"]) >= 1
    rng = np.random.default_rng(0)
    # Two classes told apart by which half of the frame fires.
    def frame(k):
        f = (rng.random((c, h, w)) < 0.02).astype(np.float32)
        if k == 0:
            f[:, : h // 2] += rng.random((c, h // 2, w)) < 0.3
        else:
            f[:, h // 2 :] += rng.random((c, h - h // 2, w)) < 0.3
        return f
    before = [np.argmax(learner.predict(frame(k % 2))) == k % 2 for k in range(40)]
    learner.reset()
    for i in range(600):
        learner.step(frame(i % 2), label=i % 2)
    learner.reset()
    after = [np.argmax(learner.predict(frame(k % 2))) == k % 2 for k in range(200)]
    assert np.mean(after) > 0.9, (np.mean(before), np.mean(after))
    assert learner.steps == 600
    assert 0 < learner.engine_seconds
    learner.lr = 2e-3
    assert learner.lr == pytest.approx(2e-3)
    with pytest.raises(stdl.StdlError):
        learner.lr = -1.0
    learner.save(tmp_path / "ck")
    again = stdl.Learner.load(tmp_path / "ck")
    assert again.steps == 600
    learner.reset(); again.reset()
    f = frame(1)
    np.testing.assert_array_equal(learner.predict(f), again.predict(f))
    # Updates every 3 labelled steps: the checkpoint records it, and a stream loads it.
    sparse = stdl.Learner("tiny", seed=3, update_every=3)
    for i in range(7):
        sparse.step(frame(i % 2), label=i % 2)
    sparse.save(tmp_path / "u3")
    assert json.loads((tmp_path / "u3" / "state.json").read_text())["model"]["update_every"] == 3
    with pytest.raises(stdl.StdlError):
        stdl.Learner("tiny", update_every=0)
    # A smaller auxiliary-network budget: the checkpoint records the resolved bytes (half
    # the default's, or 0) and the weights shrink; the same through a stream's options.
    budgets, weights = {}, {}
    for name, b in [("full", None), ("half", "0.5x"), ("bare", 0)]:
        learner_b = stdl.Learner("demo", seed=1, aux_budget=b)
        learner_b.save(tmp_path / name)
        budgets[name] = json.loads((tmp_path / name / "state.json").read_text())["model"]["aux_budget"]
        weights[name] = (tmp_path / name / "model.safetensors").stat().st_size
    assert abs(budgets["half"] - budgets["full"] / 2) <= 1 and budgets["bare"] == 0
    assert weights["bare"] < weights["full"]
    with stdl.stream("synthetic:6", preset="demo", max_steps=3, aux_budget="0.5x",
                     checkpoint_dir=str(tmp_path / "s")) as s:
        for _ in s:
            pass
    assert json.loads((tmp_path / "s" / "state.json").read_text())["model"]["aux_budget"] == budgets["half"]
    for bad in ["lots", "-1x", True]:
        with pytest.raises(stdl.StdlError):
            stdl.Learner("tiny", aux_budget=bad)
    with pytest.raises(stdl.StdlError):
        learner.step(np.zeros((1, 2, 3), np.float32))
    with pytest.raises(stdl.StdlError):
        learner.step(f, label=learner.classes)


def test_torch_rebuilds_the_network_from_the_checkpoint(tmp_path):
    pytest.importorskip("torch")
    import importlib.util
    spec = importlib.util.spec_from_file_location("torch_forward", ROOT / "examples/python/torch_forward.py")
    tf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tf)
    root = data("nmnist/slayer_NMNISTsmall")
    labels = dict(line.split()[:2] for line in (root / "train1K.txt").read_text().splitlines()[1:] if line.strip())
    files = sorted(root.glob("*.bs2"), key=lambda p: int(p.stem))
    learner = stdl.Learner("nmnist", seed=1)
    # A little online training, so that the weights are not the initial ones.
    for path in files[:30]:
        if path.stem not in labels:
            continue
        ev, size = stdl.read(path, sensor_size=(34, 34))
        learner.reset()
        for f in stdl.to_frames(ev, size, n_event_bins=10):
            learner.step(f, label=int(labels[path.stem]))
    learner.save(tmp_path / "ck")
    worst = tf.compare(tmp_path / "ck", files[-12:], t_bins=10)
    assert worst <= 1e-4, worst


def test_stream_yields_what_the_command_line_writes(tmp_path):
    opts = dict(preset="tiny", max_steps=250, bin_us=5000, ema_steps=5.0, lr=0.002)
    out = tmp_path / "p.jsonl"
    subprocess.run([stdl_exe(), "stream", "--source", "synthetic:2", "--preset", "tiny",
                    "--max-steps", "250", "--bin-us", "5000", "--ema-steps", "5", "--lr", "0.002",
                    "--predictions", out], check=True, capture_output=True)
    cli = [json.loads(line) for line in out.read_text().splitlines()]
    with stdl.stream("synthetic:2", summary=tmp_path / "s.json", **opts) as s:
        got = list(s)
    assert len(got) == 250 and got == cli
    assert s.summary == json.loads((tmp_path / "s.json").read_text()) | {"seconds": s.summary["seconds"]}
    assert s.summary["steps"] == 250 and not s.summary["interrupted"]
    # Leaving the loop early stops the run cleanly, with its final checkpoint.
    ck = tmp_path / "ck"
    s = stdl.stream("synthetic:2", checkpoint_dir=ck, **(opts | {"max_steps": 10**7}))
    for i, _ in enumerate(s):
        if i == 30:
            break
    s.close()
    assert s.summary["interrupted"] and 30 <= s.summary["steps"] < 10**5
    state = json.loads((ck / "state.json").read_text())
    assert state["progress"]["steps"] == s.summary["steps"]
    # It learns on: a stream from that checkpoint keeps its weights.
    again = stdl.Learner.load(ck)
    assert again.steps == s.summary["steps"]


def test_stream_errors_and_what_a_failed_source_keeps(tmp_path):
    with pytest.raises(stdl.StdlError, match="bin_ms"):
        stdl.stream("synthetic", preset="tiny", bin_ms=5)
    with pytest.raises(stdl.StdlError, match="preset"):
        stdl.stream("synthetic", preset="no-such-preset")
    with pytest.raises(stdl.StdlError, match="predictions"):
        stdl.stream("synthetic", preset="tiny", predictions=tmp_path / "p.jsonl")
    with pytest.raises(stdl.StdlError, match="bin-us"):
        stdl.stream("synthetic", preset="tiny", bin_us=0)
    # A recording cut in the middle of a word: the predictions of its good events come
    # first, then the error names the file and the byte offset.
    src = data("evt2/gen3_faery_evt2.raw").read_bytes()
    bad = tmp_path / "cut.raw"
    bad.write_bytes(src[: len(src) // 2 + 1])
    s = stdl.stream(bad, preset="tiny", labels=1, bin_us=2000)
    got = []
    with pytest.raises(stdl.StdlError) as e:
        for p in s:
            got.append(p)
    assert "cut.raw" in str(e.value) and "byte" in str(e.value), str(e.value)
    assert len(got) > 10 and all(p["label"] == 1 for p in got)
    assert s.summary["steps"] == len(got) and s.summary["error"] == str(e.value)


def test_stream_stops_cleanly_on_keyboard_interrupt(tmp_path):
    import signal
    import sys
    import time
    ck = tmp_path / "ck"
    # Python's own Ctrl-C handler, even where the harness started us with SIGINT ignored (a
    # background job of a non-interactive shell inherits SIGINT as ignored, and Python then
    # installs no handler).
    script = f"""
import json, signal, stdl
signal.signal(signal.SIGINT, signal.default_int_handler)
try:
    with stdl.stream("synthetic:3", preset="tiny", max_steps=10**8, checkpoint_dir={str(ck)!r}) as s:
        for i, p in enumerate(s):
            if i == 0:
                print("started", flush=True)
except KeyboardInterrupt:
    print(json.dumps(s.summary), flush=True)
    raise
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "started"
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    try:
        out, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"the stream did not stop within 60 s of SIGINT: {err}")
    assert child.returncode != 0 and "KeyboardInterrupt" in err, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["interrupted"] and summary["steps"] > 0 and summary["error"] is None
    state = json.loads((ck / "state.json").read_text())
    assert state["progress"]["steps"] == summary["steps"]


def test_learner_repeats_stdl_train_bit_for_bit(tmp_path):
    """The same preset, seed, epochs, samples, order and rates: a Python loop over Learner
    ends with stdl train's weights to the bit, and its test accuracy."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("torch_forward", ROOT / "examples/python/torch_forward.py")
    tf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tf)
    root = data("nmnist/slayer_NMNISTsmall")
    n, epochs, seed, t_bins = 12, 2, 4, 10

    def split(name):
        rows = [line.split()[:2] for line in (root / name).read_text().splitlines()
                if line.strip() and not line.startswith("#")][:n]
        out = []
        for sample, label in rows:
            ev, _ = stdl.read(root / f"{sample}.bs2", sensor_size=(34, 34))
            out.append((stdl.to_frames(ev, (34, 34, 2), n_event_bins=t_bins), int(label)))
        return out

    train, test = split("train1K.txt"), split("test100.txt")
    subprocess.run([stdl_exe(), "train", "--dataset", "nmnist", "--root", root, "--preset", "nmnist",
                    "--batch", "1", "--t-bins", str(t_bins), "--epochs", str(epochs), "--seed", str(seed),
                    "--limit-samples", str(n), "--out", tmp_path / "cli", "--quiet"],
                   check=True, capture_output=True)
    learner = stdl.Learner("nmnist", seed=seed)
    for epoch in range(epochs):
        learner.lr = stdl.lr_at(1e-3, epoch, epochs)
        for i in stdl.epoch_order(len(train), seed, epoch):
            frames, label = train[i]
            learner.reset()
            for f in frames:
                learner.step(f, label)
    learner.save(tmp_path / "py")
    want = tf.load_safetensors(tmp_path / "cli" / "checkpoint" / "model.safetensors")
    got = tf.load_safetensors(tmp_path / "py" / "model.safetensors")
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]), err_msg=k)
    correct = 0
    for frames, label in test:
        learner.reset()
        correct += int(np.argmax(sum(learner.predict(f) for f in frames)) == label)
    result = json.loads((tmp_path / "cli" / "result.json").read_text())
    assert correct / len(test) == pytest.approx(result["test_accuracy"])
    assert stdl.lr_at(1e-3, 0, epochs) == pytest.approx(1e-3) and stdl.lr_at(1e-3, 1, 2) == pytest.approx(5e-4)
    with pytest.raises(stdl.StdlError):
        stdl.lr_at(1e-3, 0, 2, "linear")
