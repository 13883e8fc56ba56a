from os import PathLike
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, PathLike[str]]

EVENTS_DTYPE: np.dtype

class StdlError(ValueError): ...

def read(
    path: _Path,
    format: Optional[str] = ...,
    sensor_size: Optional[Tuple[int, ...]] = ...,
) -> Tuple[np.ndarray, Optional[Tuple[int, int, int]]]: ...
def open(
    path: _Path,
    format: Optional[str] = ...,
    sensor_size: Optional[Tuple[int, ...]] = ...,
) -> Iterator[np.ndarray]: ...
def info(
    path: _Path,
    format: Optional[str] = ...,
    sensor_size: Optional[Tuple[int, ...]] = ...,
    max_gap_us: int = ...,
) -> dict: ...
def to_frames(
    events: np.ndarray,
    sensor_size: Tuple[int, ...],
    n_time_bins: Optional[int] = ...,
    time_window: Optional[float] = ...,
    n_event_bins: Optional[int] = ...,
    overlap: float = ...,
    edge: str = ...,
    merge_polarity: bool = ...,
) -> npt.NDArray[np.float32]: ...

class Learner:
    def __init__(
        self,
        preset: str = ...,
        checkpoint: Optional[_Path] = ...,
        lr: float = ...,
        seed: int = ...,
    ) -> None: ...
    def step(self, frame: npt.ArrayLike, label: Optional[int] = ...) -> npt.NDArray[np.float32]: ...
    def predict(self, frame: npt.ArrayLike) -> npt.NDArray[np.float32]: ...
    def reset(self) -> None: ...
    def save(self, dir: _Path) -> None: ...
    @classmethod
    def load(cls, dir: _Path, lr: float = ...) -> "Learner": ...
    @property
    def plan(self) -> dict: ...
    @property
    def layers(self) -> list: ...
    @property
    def input_shape(self) -> Tuple[int, int, int]: ...
    @property
    def classes(self) -> int: ...
    @property
    def steps(self) -> int: ...

def stream(
    source: Union[str, _Path, Dict[str, Any]],
    preset: str = ...,
    labels: Union[None, int, _Path] = ...,
    **options: Any,
) -> Stream: ...

class Stream(Iterator[Dict[str, Any]]):
    def __iter__(self) -> "Stream": ...
    def __next__(self) -> Dict[str, Any]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Stream": ...
    def __exit__(self, *exc: Any) -> None: ...
    @property
    def running(self) -> bool: ...
    @property
    def summary(self) -> Optional[Dict[str, Any]]: ...
