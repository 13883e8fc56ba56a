//! Events: `read` (a whole recording), `open` (batch by batch), `info`.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;

use stdl_io::{Event, EventReader, Format, ReadOptions, SensorSize};

use crate::{io_error, stdl_error, StdlError};

/// Bytes of one event in Tonic's packed `events_struct`: x `<i2`, y `<i2`, t `<i8`, p `?`.
pub(crate) const EVENT_BYTES: usize = 13;

/// Most events `read` returns (as `stdl_io`'s `read_all`): larger recordings go through `open`.
const MAX_READ_EVENTS: usize = stdl_io::formats::MAX_READ_ALL_EVENTS;

fn options(sensor_size: Option<(u16, u16)>) -> ReadOptions {
    ReadOptions {
        sensor_size: sensor_size.map(|(w, h)| SensorSize::new(w, h)),
        ..ReadOptions::default()
    }
}

fn format_of(format: Option<&str>) -> PyResult<Option<Format>> {
    format.map(|f| f.parse::<Format>()).transpose().map_err(io_error)
}

/// Appends events in Tonic's packed layout (one 13-byte record each, written in place) and
/// returns the largest x and y seen, starting from `max` (one pass over the events).
fn pack(events: &[Event], out: &mut Vec<u8>, max: (u16, u16)) -> (u16, u16) {
    let start = out.len();
    out.resize(start + events.len() * EVENT_BYTES, 0);
    let (mut xmax, mut ymax) = max;
    for (rec, e) in out[start..].chunks_exact_mut(EVENT_BYTES).zip(events) {
        rec[0..2].copy_from_slice(&(e.x as i16).to_le_bytes());
        rec[2..4].copy_from_slice(&(e.y as i16).to_le_bytes());
        rec[4..12].copy_from_slice(&(e.t_us as i64).to_le_bytes());
        rec[12] = e.on as u8;
        xmax = xmax.max(e.x);
        ymax = ymax.max(e.y);
    }
    (xmax, ymax)
}

/// Packed events and a sensor size `(width, height)`.
type EventsAndSize<'py> = (Bound<'py, PyArray1<u8>>, Option<(u16, u16)>);

/// The whole recording as packed events, and its sensor size (the header's, the option's,
/// else the events' extent).
#[pyfunction]
#[pyo3(signature = (path, format=None, sensor_size=None))]
pub(crate) fn read<'py>(
    py: Python<'py>,
    path: PathBuf,
    format: Option<&str>,
    sensor_size: Option<(u16, u16)>,
) -> PyResult<EventsAndSize<'py>> {
    let format = format_of(format)?;
    let opts = options(sensor_size);
    let (bytes, size) = py
        .detach(|| -> Result<(Vec<u8>, Option<SensorSize>), stdl_io::Error> {
            let mut r = EventReader::open_as(&path, format, &opts)?;
            let (mut batch, mut out) = (Vec::new(), Vec::new());
            let (mut n, mut max) = (0usize, (0u16, 0u16));
            while let Some(res) = r.read_into(&mut batch) {
                res?;
                n += batch.len();
                if n > MAX_READ_EVENTS {
                    return Err(stdl_io::Error::InvalidArgument(format!(
                        "{}: more than {MAX_READ_EVENTS} events; read it in batches with stdl.open",
                        path.display()
                    )));
                }
                max = pack(&batch, &mut out, max);
                batch.clear();
            }
            let size = opts
                .sensor_size
                .or(r.sensor_size())
                .or((n > 0).then(|| SensorSize::new(max.0 + 1, max.1 + 1)));
            Ok((out, size))
        })
        .map_err(io_error)?;
    Ok((bytes.into_pyarray(py), size.map(|s| (s.width, s.height))))
}

/// A recording read batch by batch (memory independent of the file's size).
#[pyclass(module = "stdl._stdl")]
pub(crate) struct EventStream {
    /// The reader and its batch (behind a lock: Python objects may move between threads).
    inner: std::sync::Mutex<(EventReader<'static>, Vec<Event>)>,
}

impl EventStream {
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, (EventReader<'static>, Vec<Event>)>> {
        self.inner
            .lock()
            .map_err(|_| StdlError::new_err("the reader failed while another thread used it"))
    }
}

#[pymethods]
impl EventStream {
    #[new]
    #[pyo3(signature = (path, format=None, sensor_size=None))]
    fn new(path: PathBuf, format: Option<&str>, sensor_size: Option<(u16, u16)>) -> PyResult<Self> {
        let mut reader =
            EventReader::open_as(&path, format_of(format)?, &options(sensor_size)).map_err(io_error)?;
        reader.read_header().map_err(io_error)?;
        Ok(Self {
            inner: std::sync::Mutex::new((reader, Vec::new())),
        })
    }

    /// The sensor size the header states (or the option gave).
    #[getter]
    fn sensor_size(&self) -> PyResult<Option<(u16, u16)>> {
        Ok(self.lock()?.0.sensor_size().map(|s| (s.width, s.height)))
    }

    /// The format's short name.
    #[getter]
    fn format(&self) -> PyResult<&'static str> {
        Ok(self.lock()?.0.format().name())
    }

    /// The next batch of packed events, or `None` at the end.
    fn next_batch<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArray1<u8>>>> {
        let mut guard = self.lock()?;
        let (reader, batch) = &mut *guard;
        let packed = py
            .detach(|| -> Result<Option<Vec<u8>>, stdl_io::Error> {
                batch.clear();
                match reader.read_into(batch) {
                    None => Ok(None),
                    Some(res) => {
                        res?;
                        let mut out = Vec::new();
                        pack(batch, &mut out, (0, 0));
                        Ok(Some(out))
                    }
                }
            })
            .map_err(io_error)?;
        Ok(packed.map(|b| b.into_pyarray(py)))
    }
}

/// `stdl info --json` of a recording, as JSON text.
#[pyfunction]
#[pyo3(signature = (path, format=None, sensor_size=None, max_gap_us=10_000_000))]
pub(crate) fn info(
    py: Python<'_>,
    path: PathBuf,
    format: Option<&str>,
    sensor_size: Option<(u16, u16)>,
    max_gap_us: u64,
) -> PyResult<String> {
    let format = format_of(format)?;
    let opts = options(sensor_size);
    let i = py
        .detach(|| stdl_io::info::info(&path, format, &opts, max_gap_us))
        .map_err(io_error)?;
    serde_json::to_string(&i).map_err(stdl_error)
}
