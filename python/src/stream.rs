//! `stream`: `stdl stream` from Python, its predictions yielded one dict at a time.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use stdl::interrupt::Stop;
use stdl::runtime::stream::{load_model, new_model, run_model, Prediction, StreamConfig, Summary};

use crate::{stdl_error, StdlError};

/// Predictions the run may be ahead of its reader; then it waits (nothing is dropped).
const AHEAD: usize = 256;

/// How often a reader waiting for the next prediction looks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// A running stream: the runtime on its own threads, its predictions read one at a time.
#[pyclass(module = "stdl._stdl")]
pub(crate) struct Stream {
    rx: Option<Receiver<Prediction>>,
    stop: Stop,
    run: Option<JoinHandle<stdl::Result<Summary>>>,
    summary: Option<String>,
}

impl Stream {
    /// Ends the run (asking it to stop when `stop`; it finishes the step in flight and writes
    /// its final checkpoint and summary), waits for it and keeps its summary. Returns the
    /// run's error, if it had one.
    fn finish(&mut self, py: Python<'_>, stop: bool) -> Option<String> {
        if stop {
            self.stop.request();
        }
        // A run waiting to hand over a prediction finds the channel closed, and stops.
        self.rx = None;
        let run = self.run.take()?;
        match py.detach(|| run.join()) {
            Ok(Ok(summary)) => {
                self.summary = serde_json::to_string(&summary).ok();
                summary.error
            }
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(_) => Some("the stream's thread panicked".into()),
        }
    }
}

/// A prediction as the dict `json.loads` makes of its JSON line.
fn prediction<'py>(py: Python<'py>, p: &Prediction) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("t_us", p.t_us)?;
    d.set_item("class", p.class)?;
    // The value the JSON line carries (the f32's shortest decimal), so that a dict here
    // equals `json.loads` of the command line's line.
    let confidence: f64 = p
        .confidence
        .to_string()
        .parse()
        .unwrap_or(f64::from(p.confidence));
    d.set_item("confidence", confidence)?;
    if let Some(l) = p.label {
        d.set_item("label", l)?;
    }
    Ok(d)
}

#[pymethods]
impl Stream {
    /// Starts a run of `config` (a `StreamConfig` as JSON, as `stdl stream --save-config`
    /// writes it). The network is built or loaded here, so a bad preset or checkpoint fails
    /// at once.
    #[new]
    fn new(py: Python<'_>, config: &str) -> PyResult<Self> {
        let mut cfg: StreamConfig =
            serde_json::from_str(config).map_err(|e| StdlError::new_err(format!("stream settings: {e}")))?;
        if let Some(p) = &cfg.predictions {
            return Err(StdlError::new_err(format!(
                "predictions={}: stdl.stream yields the predictions; write them where you like",
                p.display()
            )));
        }
        cfg.validate().map_err(StdlError::new_err)?;
        let stop = Stop::default();
        let (tx, rx) = crossbeam_channel::bounded(AHEAD);
        cfg.stop = stop.clone();
        cfg.on_prediction = Some(tx);
        let model = py
            .detach(|| match &cfg.checkpoint {
                Some(dir) => load_model(dir, cfg.lr),
                None => new_model(&cfg),
            })
            .map_err(stdl_error)?;
        let run = std::thread::Builder::new()
            .name("stdl-stream".into())
            .spawn(move || run_model(&cfg, model).map(|(summary, _)| summary))
            .map_err(stdl_error)?;
        Ok(Self {
            rx: Some(rx),
            stop,
            run: Some(run),
            summary: None,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next prediction; the end of the source ends the iteration (a run that failed
    /// raises `StdlError` after its last good prediction). Ctrl-C stops the run cleanly,
    /// then raises `KeyboardInterrupt`.
    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        loop {
            let Some(rx) = self.rx.as_ref() else {
                return Ok(None);
            };
            match py.detach(|| rx.recv_timeout(SIGNAL_POLL)) {
                Ok(p) => return prediction(py, &p).map(Some),
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(interrupt) = py.check_signals() {
                        self.finish(py, true);
                        return Err(interrupt);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return match self.finish(py, false) {
                        Some(m) => Err(StdlError::new_err(m)),
                        None => Ok(None),
                    };
                }
            }
        }
    }

    /// Stops the run (the step in flight finishes; the final checkpoint and summary are
    /// written) and waits for it. Raises `StdlError` if the run had failed.
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        match self.finish(py, true) {
            Some(m) => Err(StdlError::new_err(m)),
            None => Ok(()),
        }
    }

    /// The run's summary as JSON text, once it has ended (`None` before).
    #[getter]
    fn summary_json(&self) -> Option<String> {
        self.summary.clone()
    }

    /// Whether the run is still going.
    #[getter]
    fn running(&self) -> bool {
        self.run.is_some()
    }
}

impl Drop for Stream {
    /// A stream dropped while running is stopped cleanly, as `close` does.
    fn drop(&mut self) {
        if self.run.is_some() {
            Python::attach(|py| {
                self.finish(py, true);
            });
        }
    }
}
