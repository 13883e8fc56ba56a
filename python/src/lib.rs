//! `stdl._stdl`: the native half of the Python package `stdl` (the Python half,
//! `python/python/stdl/__init__.py`, turns its byte arrays into Tonic's structured events
//! and documents every call). Decoding, binning, learning and streaming run with the GIL
//! released. Each entry point is a thin binding over the library (`stdl_io`, `stdl`):
//! [`events`] (`read`, `open`, `info`), [`frames`] (`to_frames`), [`learner`] (`Learner`),
//! [`stream`] (`stream`); they share the error mapping here.

mod events;
mod frames;
mod learner;
mod stream;

use pyo3::create_exception;
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;

create_exception!(
    stdl,
    StdlError,
    PyValueError,
    "A recording, preset, checkpoint or setting stdl cannot use; the message says what, and where (format, byte offset, path).\n\n>>> try:\n...     stdl.read('cut.raw')\n... except stdl.StdlError as e:\n...     print(e)  # EVT 2.0: input ends mid-word (cut.raw at byte 1054570); ..."
);

pub(crate) fn io_error(e: stdl_io::Error) -> PyErr {
    match &e {
        stdl_io::Error::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(e.to_string())
        }
        _ => StdlError::new_err(e.to_string()),
    }
}

pub(crate) fn stdl_error(e: impl std::fmt::Display) -> PyErr {
    StdlError::new_err(e.to_string())
}

#[pymodule]
fn _stdl(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("StdlError", m.py().get_type::<StdlError>())?;
    m.add("EVENT_BYTES", events::EVENT_BYTES)?;
    m.add_function(wrap_pyfunction!(events::read, m)?)?;
    m.add_function(wrap_pyfunction!(events::info, m)?)?;
    m.add_function(wrap_pyfunction!(frames::to_frames, m)?)?;
    m.add_class::<events::EventStream>()?;
    m.add_class::<learner::Learner>()?;
    m.add_function(wrap_pyfunction!(learner::epoch_order, m)?)?;
    m.add_function(wrap_pyfunction!(learner::lr_at, m)?)?;
    m.add_class::<stream::Stream>()?;
    Ok(())
}
