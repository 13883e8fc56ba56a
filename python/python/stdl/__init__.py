"""stdl: online learning from event cameras with Spatio-Temporal Decoupled Learning.

The fast parts of the `stdl` program, from Python and numpy:

- :func:`read` and :func:`open`: AEDAT 2.0/3.1/4.0, ATIS ``.bin`` (N-MNIST, N-Caltech101),
  Prophesee EVT 2.0/3.0 and DAT recordings as numpy structured arrays of Tonic's dtype
  (:data:`EVENTS_DTYPE`), whole or in bounded batches;
- :func:`info`: what ``stdl info --json`` prints;
- :func:`to_frames`: ``(T, C, H, W)`` count frames, element for element those of Tonic's
  ``ToFrame`` and SpikingJelly's ``integrate_events_by_fixed_frames_number``;
- :class:`Learner`: an online STDL learner, updated after every labelled frame;
- :func:`stream`: ``stdl stream`` (a recording, a dataset split, a DV network stream, a
  camera, the synthetic scene) learning on its own threads, its predictions yielded as dicts.

Example::

    import stdl
    events, sensor_size = stdl.read("recording.aedat4")
    frames = stdl.to_frames(events, sensor_size, n_time_bins=10)
    learner = stdl.Learner("nmnist")
    for frame in frames:
        logits = learner.step(frame, label=3)

Decoding, binning and learning release the GIL. Errors are :class:`StdlError` (a
``ValueError``) carrying the same message as the command line (format, byte offset, path);
a missing file is a ``FileNotFoundError``.
"""

from __future__ import annotations

import json as _json
import os as _os
from typing import Iterator, Optional, Tuple, Union

import numpy as _np

from . import _stdl
from ._stdl import StdlError

__all__ = ["EVENTS_DTYPE", "StdlError", "read", "open", "info", "to_frames", "Learner", "stream", "Stream",
           "epoch_order", "lr_at"]

#: Tonic's event dtype (``tonic.io.events_struct``): x, y as int16, t in µs as int64, p as bool.
EVENTS_DTYPE = _np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])

PathLike = Union[str, "_os.PathLike[str]"]


def _events(raw: _np.ndarray) -> _np.ndarray:
    return raw.view(EVENTS_DTYPE)


def _size3(size: Optional[Tuple[int, int]]) -> Optional[Tuple[int, int, int]]:
    return None if size is None else (int(size[0]), int(size[1]), 2)


def _size2(sensor_size) -> Optional[Tuple[int, int]]:
    if sensor_size is None:
        return None
    return (int(sensor_size[0]), int(sensor_size[1]))


def read(
    path: PathLike,
    format: Optional[str] = None,
    sensor_size: Optional[Tuple[int, ...]] = None,
) -> Tuple[_np.ndarray, Optional[Tuple[int, int, int]]]:
    """Reads a whole recording.

    Returns ``(events, sensor_size)``: a structured array of :data:`EVENTS_DTYPE` and the
    sensor size as Tonic writes it, ``(width, height, 2)`` (from the header, else
    ``sensor_size``, else the events' extent). The format is detected from the first bytes
    unless ``format`` names it (``aedat2``, ``aedat31``, ``aedat4``, ``bin``, ``evt2``,
    ``evt3``, ``dat``).

    >>> events, size = stdl.read("gen41_expelliarmus_evt3_sample.raw")  # doctest: +SKIP
    >>> events["t"][:3], size  # doctest: +SKIP
    """
    raw, size = _stdl.read(_os.fspath(path), format, _size2(sensor_size))
    return _events(raw), _size3(size)


def open(
    path: PathLike,
    format: Optional[str] = None,
    sensor_size: Optional[Tuple[int, ...]] = None,
) -> Iterator[_np.ndarray]:
    """Reads a recording batch by batch: memory depends on the reader's chunk, not on the
    file's size. Yields structured arrays of :data:`EVENTS_DTYPE`.

    >>> n = sum(len(batch) for batch in stdl.open("recording.aedat4"))  # doctest: +SKIP
    """
    stream = _stdl.EventStream(_os.fspath(path), format, _size2(sensor_size))
    while True:
        raw = stream.next_batch()
        if raw is None:
            return
        yield _events(raw)


def info(
    path: PathLike,
    format: Optional[str] = None,
    sensor_size: Optional[Tuple[int, ...]] = None,
    max_gap_us: int = 10_000_000,
) -> dict:
    """What ``stdl info --json`` prints for a recording: format, size and where it comes
    from, event counts, time span, extent, the reader's counters and jumps in event time.

    >>> stdl.info("recording.aedat4")["events"]  # doctest: +SKIP
    """
    return _json.loads(_stdl.info(_os.fspath(path), format, _size2(sensor_size), int(max_gap_us)))


def to_frames(
    events: _np.ndarray,
    sensor_size: Tuple[int, ...],
    n_time_bins: Optional[int] = None,
    time_window: Optional[float] = None,
    n_event_bins: Optional[int] = None,
    overlap: float = 0.0,
    edge: str = "to_last",
    merge_polarity: bool = False,
) -> _np.ndarray:
    """Bins time-sorted events into ``float32`` count frames ``(T, C, H, W)``.

    Exactly one of ``n_time_bins`` (bins of equal duration), ``time_window`` (windows of
    that many µs, one starting every ``time_window - overlap`` µs) or ``n_event_bins``
    (bins of equal event count). For the bin counts, ``overlap`` is a fraction of a bin in
    ``[0, 1)``. Channel 0 counts OFF events and 1 ON events (the Tonic and SpikingJelly
    order), or one channel of all with ``merge_polarity``.

    ``edge="to_last"`` lets the last bin run to the end of the events (SpikingJelly's
    ``integrate_events_by_fixed_frames_number``: nothing is lost); ``edge="drop"`` keeps
    only whole bins (Tonic's ``ToFrame``).

    >>> frames = stdl.to_frames(events, (34, 34, 2), n_time_bins=10, edge="drop")  # doctest: +SKIP
    """
    chosen = [(k, v) for k, v in (("n_time_bins", n_time_bins), ("time_window", time_window),
                                  ("n_event_bins", n_event_bins)) if v is not None]
    if len(chosen) != 1:
        raise StdlError("give exactly one of n_time_bins, time_window, n_event_bins")
    mode, value = chosen[0]
    events = _np.asarray(events)
    if events.dtype.names is None or not {"x", "y", "t", "p"} <= set(events.dtype.names):
        raise StdlError("events must be a structured array with fields x, y, t and p")
    col = lambda name: _np.ascontiguousarray(events[name], dtype=_np.int64)
    return _stdl.to_frames(
        col("x"), col("y"), col("t"), col("p"),
        _size2(sensor_size), mode, float(value), float(overlap), edge, bool(merge_polarity),
    )


class Learner:
    """An online STDL learner at batch size 1: the network is cut into subnetworks, each
    trained by its own auxiliary network, and every subnetwork is updated right after every
    labelled step, with the membranes carried (and detached) from step to step.

    ``preset`` is a built-in preset (``tiny``, ``demo``, ``nmnist``, ``dvs-gesture``,
    ``ncaltech101``) or a TOML file; ``checkpoint`` a directory written by :meth:`save`,
    ``stdl train`` or ``stdl stream --checkpoint-dir`` (it then sets the network).
    ``update_every`` N > 1 accumulates N labelled steps' gradients per Adam update (a fresh
    network; ``stdl train --update-every``). ``aux_budget`` sets the auxiliary networks'
    memory budget of a fresh network: bytes, or a multiple of STDL's default such as
    ``"0.5x"`` (smaller auxiliary networks learn faster per step and, on N-MNIST, less well;
    ``stdl stream --aux-budget``).

    >>> learner = stdl.Learner("nmnist", seed=0)  # doctest: +SKIP
    >>> logits = learner.step(frame, label=7)      # learns from this frame
    >>> learner.reset()                           # a new sample
    """

    def __init__(self, preset: str = "dvs-gesture", checkpoint: Optional[PathLike] = None,
                 lr: float = 1e-3, seed: int = 0, update_every: int = 1,
                 aux_budget: Union[int, str, None] = None):
        ck = None if checkpoint is None else _os.fspath(checkpoint)
        if isinstance(aux_budget, bool):
            raise StdlError("aux_budget: bytes or a multiple such as '0.5x', not a bool")
        budget = None if aux_budget is None else str(aux_budget)
        self._inner = _stdl.Learner(preset, ck, float(lr), int(seed), int(update_every), budget)

    def step(self, frame: _np.ndarray, label: Optional[int] = None) -> _np.ndarray:
        """One time step: returns the readout logits; with ``label``, every subnetwork is
        updated after this step (STDL).

        >>> learner.step(np.zeros((2, 34, 34), np.float32), label=3).shape  # doctest: +SKIP
        (10,)
        """
        return self._inner.step(_np.asarray(frame, dtype=_np.float32), None if label is None else int(label))

    def predict(self, frame: _np.ndarray) -> _np.ndarray:
        """The readout logits of one time step, without learning (the membranes advance).

        >>> int(np.argmax(sum(learner.predict(f) for f in frames)))  # doctest: +SKIP
        7
        """
        return self._inner.predict(_np.asarray(frame, dtype=_np.float32))

    def reset(self) -> None:
        """Clears every membrane: the next step starts a new sequence.

        >>> learner.reset()  # before each sample's frames  # doctest: +SKIP
        """
        self._inner.reset()

    def save(self, dir: PathLike) -> None:
        """Writes a checkpoint (the format every ``stdl`` command reads).

        >>> learner.save("ck")  # then: stdl eval --checkpoint ck ...  # doctest: +SKIP
        """
        self._inner.save(_os.fspath(dir))

    @classmethod
    def load(cls, dir: PathLike, lr: float = 1e-3) -> "Learner":
        """A learner from a checkpoint directory (``save``'s, ``stdl train``'s
        ``OUT/checkpoint``, ``stdl stream --checkpoint-dir``'s).

        >>> learner = stdl.Learner.load("out/train/checkpoint")  # doctest: +SKIP
        """
        return cls(checkpoint=dir, lr=lr)

    @property
    def plan(self) -> dict:
        """The plan: cuts, auxiliary networks, predicted memory.

        >>> sorted(stdl.Learner("nmnist").plan)[:3]  # doctest: +SKIP
        ['batch', 'budget_bytes', 'default_budget_bytes']
        """
        return _json.loads(self._inner.plan_json())

    @property
    def layers(self) -> list:
        """The layers that compute the readout at inference, in order (each stage's body,
        then the readout): kind, shapes, constants, and the checkpoint prefix of its tensors
        in ``model.safetensors`` (``s{k}.body.{i}.weight`` and so on).

        >>> stdl.Learner("nmnist").layers[0]["kind"], stdl.Learner("nmnist").layers[0]["prefix"]  # doctest: +SKIP
        ('conv', 's0.body.0')
        """
        return _json.loads(self._inner.layers_json())

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """``(C, H, W)`` of one frame.

        >>> stdl.Learner("nmnist").input_shape  # doctest: +SKIP
        (2, 34, 34)
        """
        return self._inner.input_shape

    @property
    def classes(self) -> int:
        """Number of classes.

        >>> stdl.Learner("nmnist").classes  # doctest: +SKIP
        10
        """
        return self._inner.classes

    @property
    def steps(self) -> int:
        """Labelled steps learned (with those of the checkpoint it started from).

        >>> learner.steps  # doctest: +SKIP
        600
        """
        return self._inner.steps

    @property
    def engine_seconds(self) -> float:
        """Seconds spent inside the engine's steps so far. The wall time of the calls less
        this is what calling from Python costs (argument checks, the frame copy, the GIL).

        >>> e0, t0 = learner.engine_seconds, time.perf_counter()  # doctest: +SKIP
        >>> learner.step(frame, label=1)
        >>> (time.perf_counter() - t0) - (learner.engine_seconds - e0)  # the call's own cost
        """
        return self._inner.engine_seconds

    @property
    def lr(self) -> float:
        """The learning rate of every subnetwork's optimiser (settable, e.g. per epoch from
        :func:`lr_at`).

        >>> learner.lr = stdl.lr_at(1e-3, epoch, epochs)  # doctest: +SKIP
        """
        return self._inner.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._inner.lr = float(value)

    def __repr__(self) -> str:
        return f"stdl.Learner({self._inner.preset!r}, input {self.input_shape}, {self.classes} classes)"


def epoch_order(n: int, seed: int, epoch: int) -> list:
    """The order in which ``stdl train --seed SEED`` visits ``n`` training samples in the
    0-based ``epoch``. With :func:`lr_at`, a loop over :class:`Learner` repeats a
    command-line run (at ``--batch 1``) sample for sample:

    >>> for epoch in range(epochs):                                   # doctest: +SKIP
    ...     learner.lr = stdl.lr_at(1e-3, epoch, epochs)
    ...     for i in stdl.epoch_order(len(train), seed, epoch):
    ...         learner.reset()
    ...         for frame in train[i].frames:
    ...             learner.step(frame, train[i].label)
    """
    return _stdl.epoch_order(int(n), int(seed), int(epoch))


def lr_at(lr: float, epoch: int, epochs: int, schedule: str = "cosine") -> float:
    """The learning rate ``stdl train --lr-schedule SCHEDULE`` uses in the 0-based ``epoch``
    of ``epochs`` from the base rate ``lr`` (``cosine``: annealed to 0; ``constant``).

    >>> round(stdl.lr_at(1e-3, 10, 20), 6)  # doctest: +SKIP
    0.0005
    """
    return _stdl.lr_at(float(lr), int(epoch), int(epochs), schedule)


def _setting(value):
    if isinstance(value, _os.PathLike):
        return _os.fspath(value)
    if isinstance(value, dict):
        return {k: _setting(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_setting(v) for v in value]
    return value


def stream(source, preset: str = "dvs-gesture", labels=None, **options) -> "Stream":
    """Runs ``stdl stream`` on its own threads and yields its predictions, one dict per live
    time step, as the command line writes them in JSON lines: ``t_us`` (end of the bin),
    ``class``, ``confidence`` (softmax of the smoothed logits) and ``label`` (when the bin
    has one). With labels, the network learns online (STDL) while it predicts.

    ``source`` is what ``stdl stream --source`` takes (a path, ``file://PATH``, ``stdin``,
    ``dv-tcp://HOST:PORT``, ``camera://``, ``synthetic:SEED``), a path object, or a dataset
    split ``{"dataset": "nmnist", "root": "...", "split": "test"}``. ``labels`` is a
    labels file (``class,startTime_usec,endTime_usec``, as DVS128-Gesture's) or one class
    index for every bin. ``options`` are the other settings of ``stdl stream``, named as in
    its settings file (``stdl stream --save-config``): ``bin_us``, ``max_steps``, ``learn``,
    ``lr``, ``seed``, ``ema_steps``, ``speed``, ``checkpoint`` (start from a trained
    network), ``checkpoint_dir``, ``checkpoint_every_steps``, ``resume``, ``metrics``,
    ``summary``, ``view`` (a live page), ``replay``, ``strategy``, ``overload`` and so on;
    ``quiet`` is on by default (no metric lines on standard error: ``quiet=False`` prints
    them every ``metrics_every_s``).

    The run waits for its reader when 256 predictions are unread: nothing is dropped. It
    ends with its source or ``max_steps``; breaking out of the loop, :meth:`Stream.close`
    or leaving a ``with`` block stops it cleanly (the step in flight finishes, the final
    checkpoint and summary are written). Ctrl-C (``KeyboardInterrupt``) while it waits for
    the next prediction stops it the same way, then the ``KeyboardInterrupt`` goes on. A run
    that fails raises :class:`StdlError` after its last good prediction.

    >>> with stdl.stream("synthetic:1", preset="tiny", max_steps=100) as s:  # doctest: +SKIP
    ...     for p in s:
    ...         print(p)                    # {'t_us': 10179, 'class': 1, 'confidence': 0.26, 'label': 0}
    >>> s.summary["accuracy"]                # doctest: +SKIP
    """
    cfg = {"quiet": True}
    cfg.update({k: _setting(v) for k, v in options.items()})
    if isinstance(source, _os.PathLike):
        source = "file://" + _os.fspath(source)
    cfg["source"] = _setting(source)
    cfg["preset"] = preset
    if isinstance(labels, bool):
        raise StdlError("labels: a labels file or a class index, not a bool")
    if isinstance(labels, int):
        cfg["constant_label"] = labels
    elif labels is not None:
        cfg["labels_csv"] = _os.fspath(labels)
    return Stream(_stdl.Stream(_json.dumps(cfg)))


class Stream:
    """A running :func:`stream`: iterate it for the predictions; ``summary`` once it ended.

    >>> s = stdl.stream("synthetic:1", preset="tiny", max_steps=10)  # doctest: +SKIP
    >>> [p["class"] for p in s], s.summary["steps"]
    """

    def __init__(self, native):
        self._native = native

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> dict:
        p = self._native.__next__()
        if p is None:
            raise StopIteration
        return p

    def close(self) -> None:
        """Stops the run cleanly (final checkpoint and summary written) and waits for it.

        >>> s.close(); s.summary["interrupted"]  # doctest: +SKIP
        True
        """
        self._native.close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def running(self) -> bool:
        """Whether the run is still going.

        >>> s.running  # doctest: +SKIP
        True
        """
        return self._native.running

    @property
    def summary(self) -> Optional[dict]:
        """What ``stdl stream --summary`` writes (steps, accuracy, memory, ...), once the run
        has ended; ``None`` before.

        >>> s.summary["accuracy"]  # doctest: +SKIP
        """
        text = self._native.summary_json
        return None if text is None else _json.loads(text)

    def __repr__(self) -> str:
        return f"stdl.Stream({'running' if self.running else 'ended'})"
