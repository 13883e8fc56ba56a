//! `stdl._stdl`: the native half of the Python package `stdl` (the Python half,
//! `python/stdl/__init__.py`, turns its byte arrays into Tonic's structured events and
//! documents every call). Decoding, binning and learning run with the GIL released.
//!
//! Why one file of about 550 lines: each Python entry point is a thin binding over the
//! library (`stdl_io`, `stdl`), and they share the error mapping and the event packing;
//! split by entry point, every file would repeat those.

use std::path::PathBuf;

use numpy::ndarray::Array4;
use numpy::{IntoPyArray, PyArray1, PyArray4, PyReadonlyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;

use stdl::checkpoint::{CheckpointState, Progress};
use stdl::model::ModelSettings;
use stdl::runtime::stream::{new_model, StreamConfig};
use stdl::stdl::StdlModel;
use stdl_io::frames::{frames_from_events, Channels, Edge, Geometry, Slicing};
use stdl_io::{Event, EventReader, Format, ReadOptions, SensorSize};
use stdl_models::{Dims, Preset, Tensor};

create_exception!(
    _stdl,
    StdlError,
    PyValueError,
    "A recording, preset, checkpoint or setting stdl cannot use; the message says what, and where (format, byte offset, path)."
);

/// Bytes of one event in Tonic's packed `events_struct`: x `<i2`, y `<i2`, t `<i8`, p `?`.
const EVENT_BYTES: usize = 13;

/// Most events `read` returns (as `stdl_io`'s `read_all`): larger recordings go through `open`.
const MAX_READ_EVENTS: usize = stdl_io::formats::MAX_READ_ALL_EVENTS;

fn io_error(e: stdl_io::Error) -> PyErr {
    match &e {
        stdl_io::Error::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(e.to_string())
        }
        _ => StdlError::new_err(e.to_string()),
    }
}

fn stdl_error(e: impl std::fmt::Display) -> PyErr {
    StdlError::new_err(e.to_string())
}

fn options(sensor_size: Option<(u16, u16)>) -> ReadOptions {
    ReadOptions {
        sensor_size: sensor_size.map(|(w, h)| SensorSize::new(w, h)),
        ..ReadOptions::default()
    }
}

fn format_of(format: Option<&str>) -> PyResult<Option<Format>> {
    format.map(|f| f.parse::<Format>()).transpose().map_err(io_error)
}

/// Appends events in Tonic's packed layout (one 13-byte record each, written in place).
fn pack(events: &[Event], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + events.len() * EVENT_BYTES, 0);
    for (rec, e) in out[start..].chunks_exact_mut(EVENT_BYTES).zip(events) {
        rec[0..2].copy_from_slice(&(e.x as i16).to_le_bytes());
        rec[2..4].copy_from_slice(&(e.y as i16).to_le_bytes());
        rec[4..12].copy_from_slice(&(e.t_us as i64).to_le_bytes());
        rec[12] = e.on as u8;
    }
}

/// Packed events and a sensor size `(width, height)`.
type EventsAndSize<'py> = (Bound<'py, PyArray1<u8>>, Option<(u16, u16)>);

/// The whole recording as packed events, and its sensor size (the header's, the option's,
/// else the events' extent).
#[pyfunction]
#[pyo3(signature = (path, format=None, sensor_size=None))]
fn read<'py>(
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
            let (mut n, mut xmax, mut ymax) = (0usize, 0u16, 0u16);
            while let Some(res) = r.read_into(&mut batch) {
                res?;
                n += batch.len();
                if n > MAX_READ_EVENTS {
                    return Err(stdl_io::Error::InvalidArgument(format!(
                        "{}: more than {MAX_READ_EVENTS} events; read it in batches with stdl.open",
                        path.display()
                    )));
                }
                for e in &batch {
                    xmax = xmax.max(e.x);
                    ymax = ymax.max(e.y);
                }
                pack(&batch, &mut out);
                batch.clear();
            }
            let size = opts
                .sensor_size
                .or(r.sensor_size())
                .or((n > 0).then(|| SensorSize::new(xmax + 1, ymax + 1)));
            Ok((out, size))
        })
        .map_err(io_error)?;
    Ok((bytes.into_pyarray(py), size.map(|s| (s.width, s.height))))
}

/// A recording read batch by batch (memory independent of the file's size).
#[pyclass(module = "stdl._stdl")]
struct EventStream {
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
                        pack(batch, &mut out);
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
fn info(
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

/// Events from columns (`x`, `y`, `t` in µs, `p` as 0/1), checked.
fn events_of(x: &[i64], y: &[i64], t: &[i64], p: &[i64], size: SensorSize) -> Result<Vec<Event>, String> {
    if !(x.len() == y.len() && y.len() == t.len() && t.len() == p.len()) {
        return Err("x, y, t and p must have the same length".into());
    }
    let mut out = Vec::with_capacity(x.len());
    let mut last = i64::MIN;
    for i in 0..x.len() {
        let (ex, ey, et) = (x[i], y[i], t[i]);
        if ex < 0 || ey < 0 || ex >= size.width as i64 || ey >= size.height as i64 {
            return Err(format!("event {i} at ({ex}, {ey}) is outside the sensor {size}"));
        }
        if et < 0 {
            return Err(format!("event {i} has a negative time {et}"));
        }
        if et < last {
            return Err(format!(
                "events must be sorted by time: event {i} at t={et} follows t={last}"
            ));
        }
        last = et;
        out.push(Event {
            t_us: et as u64,
            x: ex as u16,
            y: ey as u16,
            on: p[i] != 0,
        });
    }
    Ok(out)
}

/// Frames `(T, C, H, W)` of counts: `mode` is `time_window` (`value` µs, `overlap` µs),
/// `n_time_bins` or `n_event_bins` (`value` bins, `overlap` a fraction of a bin).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn to_frames<'py>(
    py: Python<'py>,
    x: PyReadonlyArray1<'py, i64>,
    y: PyReadonlyArray1<'py, i64>,
    t: PyReadonlyArray1<'py, i64>,
    p: PyReadonlyArray1<'py, i64>,
    sensor_size: (u16, u16),
    mode: &str,
    value: f64,
    overlap: f64,
    edge: &str,
    merge_polarity: bool,
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    let size = SensorSize::new(sensor_size.0, sensor_size.1);
    let (x, y, t, p) = (x.as_slice()?, y.as_slice()?, t.as_slice()?, p.as_slice()?);
    let edge = match edge {
        "to_last" => Edge::ToLast,
        "drop" => Edge::Drop,
        e => {
            return Err(StdlError::new_err(format!(
                "edge {e:?}: expected \"to_last\" or \"drop\""
            )))
        }
    };
    let slicing = match mode {
        "time_window" => {
            let window = value as u64;
            if value < 1.0 || !(0.0..value).contains(&overlap) {
                return Err(StdlError::new_err(format!(
                    "time_window {value} µs with overlap {overlap} µs: the window must be at least 1 µs and the overlap in 0..window"
                )));
            }
            Slicing::TimeWindow {
                window_us: window,
                stride_us: window - overlap as u64,
            }
        }
        "n_time_bins" | "n_event_bins" => {
            if value < 1.0 || !(0.0..1.0).contains(&overlap) {
                return Err(StdlError::new_err(format!(
                    "{mode} {value} with overlap {overlap}: at least one bin, and an overlap in [0, 1)"
                )));
            }
            let n = value as usize;
            if mode == "n_time_bins" {
                Slicing::TimeBins { n, overlap }
            } else {
                Slicing::EventBins { n, overlap }
            }
        }
        m => return Err(StdlError::new_err(format!("unknown slicing {m:?}"))),
    };
    let channels = if merge_polarity {
        Channels::Merged
    } else {
        Channels::Split
    };
    let (frames, c, h, w) = py
        .detach(|| -> Result<(Vec<f32>, usize, usize, usize), String> {
            let events = events_of(x, y, t, p, size)?;
            let geom = Geometry::new(size, channels).map_err(|e| e.to_string())?;
            let frames = frames_from_events(&events, &geom, slicing, edge).map_err(|e| e.to_string())?;
            let (c, h, w) = (
                geom.channels.count(),
                geom.out.height as usize,
                geom.out.width as usize,
            );
            let mut data = Vec::with_capacity(frames.len() * c * h * w);
            for f in frames {
                data.extend_from_slice(&f.data);
            }
            Ok((data, c, h, w))
        })
        .map_err(StdlError::new_err)?;
    let n = frames.len() / (c * h * w).max(1);
    let array = Array4::from_shape_vec((n, c, h, w), frames).map_err(stdl_error)?;
    Ok(array.into_pyarray(py))
}

/// An online STDL learner (batch 1): every subnetwork is updated right after every labelled
/// step.
#[pyclass(module = "stdl._stdl")]
struct Learner {
    model: StdlModel,
    preset: Preset,
    steps: u64,
}

impl Learner {
    fn input(&self, frame: PyReadonlyArrayDyn<'_, f32>) -> PyResult<Tensor> {
        let [c, h, w] = self.preset.input;
        let dims = Dims::new(c, h, w);
        let shape = frame.shape();
        let ok = shape == [c, h, w] || shape == [1, c, h, w];
        if !ok {
            return Err(StdlError::new_err(format!(
                "a frame of shape {shape:?}; the network takes ({c}, {h}, {w})"
            )));
        }
        let data = frame.as_slice().map(<[f32]>::to_vec).or_else(|_| {
            // Not contiguous: copied in C order.
            Ok::<_, PyErr>(frame.as_array().iter().copied().collect())
        })?;
        Ok(Tensor::from_vec(1, dims, data))
    }

    fn run<'py>(
        &mut self,
        py: Python<'py>,
        x: Tensor,
        label: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        if let Some(l) = label.filter(|&l| l >= self.preset.classes) {
            return Err(StdlError::new_err(format!(
                "label {l}: the network has classes 0..{}",
                self.preset.classes - 1
            )));
        }
        let model = &mut self.model;
        let logits = py.detach(|| {
            let labels = label.map(|l| [l]);
            let mut out = model.step(x, labels.as_ref().map(|l| &l[..])).0;
            // The tensor goes back to the pool when dropped; its values leave with the Vec.
            std::mem::take(&mut out.data)
        });
        if label.is_some() {
            self.steps += 1;
        }
        Ok(logits.into_pyarray(py))
    }
}

#[pymethods]
impl Learner {
    #[new]
    #[pyo3(signature = (preset="dvs-gesture", checkpoint=None, lr=1e-3, seed=0))]
    fn new(py: Python<'_>, preset: &str, checkpoint: Option<PathBuf>, lr: f32, seed: u64) -> PyResult<Self> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(StdlError::new_err(format!("lr {lr}: a positive number")));
        }
        let preset = preset.to_owned();
        py.detach(move || -> stdl::Result<Self> {
            let (model, steps) = match checkpoint {
                Some(dir) => {
                    let loaded = stdl::checkpoint::load(&dir, true)?;
                    let steps = match loaded.state.progress {
                        Progress::Stream { steps, .. } => steps,
                        Progress::Train { .. } => 0,
                    };
                    let mut model = loaded.model;
                    model.set_lr(lr);
                    (model.into_stdl("a Learner")?, steps)
                }
                // A fresh network as a stream builds it: batch 1, an update after every step.
                None => (
                    new_model(&StreamConfig {
                        preset,
                        lr,
                        seed,
                        ..StreamConfig::default()
                    })?,
                    0,
                ),
            };
            let preset = model.spec.preset.clone();
            Ok(Self { model, preset, steps })
        })
        .map_err(stdl_error)
    }

    /// Learns from one frame when `label` is given (every subnetwork updated), and returns
    /// the readout logits.
    #[pyo3(signature = (frame, label=None))]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        frame: PyReadonlyArrayDyn<'py, f32>,
        label: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let x = self.input(frame)?;
        self.run(py, x, label)
    }

    /// The readout logits of one frame, without learning (the membranes advance).
    fn predict<'py>(
        &mut self,
        py: Python<'py>,
        frame: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let x = self.input(frame)?;
        self.run(py, x, None)
    }

    /// Clears every membrane: a new sequence.
    fn reset(&mut self) {
        self.model.reset_state();
    }

    /// Writes a checkpoint into `dir` (the format every `stdl` command reads).
    fn save(&self, py: Python<'_>, dir: PathBuf) -> PyResult<()> {
        let state = CheckpointState::new(
            &self.preset.name,
            ModelSettings::of_stdl(&self.model),
            Progress::Stream {
                steps: self.steps,
                t_us: 0,
                events: 0,
            },
        );
        let (params, opt) = (self.model.named_params(), self.model.optimizer_state());
        let preset = &self.preset;
        py.detach(|| stdl::checkpoint::save(&dir, &params, &opt, preset, &state))
            .map_err(stdl_error)
    }

    /// The plan (cuts, auxiliary networks, predicted memory) as JSON text.
    fn plan_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.model.plan).map_err(stdl_error)
    }

    /// The layers that compute the readout at inference, in order, as JSON text: each
    /// stage's body, then the last stage's head (the readout; auxiliary heads are not used at
    /// inference). Each entry names its kind, shapes, constants and the checkpoint prefix of
    /// its tensors (`s{k}.{body|head}.{i}`).
    fn layers_json(&self) -> PyResult<String> {
        let mut out = Vec::new();
        let last = self.model.stages.len() - 1;
        for (k, st) in self.model.stages.iter().enumerate() {
            let mut parts = vec![("body", &st.body)];
            if k == last {
                parts.push(("head", &st.head));
            }
            for (part, seq) in parts {
                for (i, l) in seq.layers.iter().enumerate() {
                    out.push(describe_layer(l, &format!("s{k}.{part}.{i}")));
                }
            }
        }
        serde_json::to_string(&out).map_err(stdl_error)
    }

    /// `(C, H, W)` of a frame.
    #[getter]
    fn input_shape(&self) -> (usize, usize, usize) {
        let [c, h, w] = self.preset.input;
        (c, h, w)
    }

    /// Number of classes.
    #[getter]
    fn classes(&self) -> usize {
        self.preset.classes
    }

    /// Labelled steps learned (including those of the checkpoint it started from).
    #[getter]
    fn steps(&self) -> u64 {
        self.steps
    }

    /// The preset's name.
    #[getter]
    fn preset(&self) -> String {
        self.preset.name.clone()
    }
}

fn dims(d: Dims) -> [usize; 3] {
    [d.c, d.h, d.w]
}

/// One inference layer, for rebuilding the network elsewhere (`examples/python/torch_forward.py`).
fn describe_layer(l: &stdl_models::Layer, prefix: &str) -> serde_json::Value {
    use serde_json::json;
    use stdl_models::Layer;
    let mut v = match l {
        Layer::Conv(c) => json!({"kind": "conv", "kernel": c.k, "stride": c.stride, "padding": c.pad,
            "weight_standardisation": c.ws, "ws_eps": 1e-4}),
        Layer::Linear(_) => json!({"kind": "linear"}),
        Layer::Pool(p) => json!({"kind": "avgpool", "kernel": [p.kh, p.kw]}),
        Layer::Lif(n) => json!({"kind": "lif", "tau": n.params.tau, "threshold": n.params.threshold,
            "reset": "soft", "fires_at": "u >= threshold"}),
        Layer::BatchNorm(_) => json!({"kind": "batchnorm", "eps": 1e-5}),
        Layer::Flatten(_) => json!({"kind": "flatten"}),
    };
    v["prefix"] = json!(prefix);
    v["in"] = json!(dims(l.in_dims()));
    v["out"] = json!(dims(l.out_dims()));
    v["params"] = json!(l.params().iter().map(|p| p.name).collect::<Vec<_>>());
    v
}

#[pymodule]
fn _stdl(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("StdlError", m.py().get_type::<StdlError>())?;
    m.add("EVENT_BYTES", EVENT_BYTES)?;
    m.add_function(wrap_pyfunction!(read, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    m.add_function(wrap_pyfunction!(to_frames, m)?)?;
    m.add_class::<EventStream>()?;
    m.add_class::<Learner>()?;
    Ok(())
}
