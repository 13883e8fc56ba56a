//! `Learner`: the online STDL learner, one frame at a time.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use stdl::checkpoint::{CheckpointState, Progress};
use stdl::model::ModelSettings;
use stdl::runtime::stream::{new_model, StreamConfig};
use stdl::stdl::StdlModel;
use stdl_models::{Dims, Preset, Tensor};

use crate::{stdl_error, StdlError};

/// A learning rate `Learner` accepts: finite and above 0.
fn check_lr(lr: f32) -> PyResult<()> {
    if lr.is_finite() && lr > 0.0 {
        Ok(())
    } else {
        Err(StdlError::new_err(format!("lr {lr}: a positive number")))
    }
}

/// An online STDL learner (batch 1): every subnetwork is updated right after every labelled
/// step.
#[pyclass(module = "stdl._stdl")]
pub(crate) struct Learner {
    model: StdlModel,
    preset: Preset,
    steps: u64,
    /// Time spent in the engine's steps (without the call from Python and the frame copy).
    engine: std::time::Duration,
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
        let (logits, took) = py.detach(|| {
            let labels = label.map(|l| [l]);
            let t0 = std::time::Instant::now();
            let mut out = model.step(x, labels.as_ref().map(|l| &l[..])).0;
            // The tensor goes back to the pool when dropped; its values leave with the Vec.
            (std::mem::take(&mut out.data), t0.elapsed())
        });
        self.engine += took;
        if label.is_some() {
            self.steps += 1;
        }
        Ok(logits.into_pyarray(py))
    }
}

#[pymethods]
impl Learner {
    #[new]
    #[pyo3(signature = (preset="dvs-gesture", checkpoint=None, lr=1e-3, seed=0, update_every=1, aux_budget=None))]
    fn new(
        py: Python<'_>,
        preset: &str,
        checkpoint: Option<PathBuf>,
        lr: f32,
        seed: u64,
        update_every: usize,
        aux_budget: Option<String>,
    ) -> PyResult<Self> {
        check_lr(lr)?;
        if update_every == 0 {
            return Err(StdlError::new_err("update_every: at least 1"));
        }
        let aux_budget = aux_budget
            .map(|b| stdl::config::parse_budget(&b))
            .transpose()
            .map_err(|e| StdlError::new_err(format!("aux_budget: {e}")))?;
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
                        update_every,
                        aux_budget,
                        ..StreamConfig::default()
                    })?,
                    0,
                ),
            };
            let preset = model.spec.preset.clone();
            Ok(Self {
                model,
                preset,
                steps,
                engine: Default::default(),
            })
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

    /// Seconds spent inside the engine's steps so far: a call's wall time less this is what
    /// the call from Python costs (the argument checks, the frame copy, the GIL).
    #[getter]
    fn engine_seconds(&self) -> f64 {
        self.engine.as_secs_f64()
    }

    /// The learning rate of every subnetwork's optimiser.
    #[getter]
    fn lr(&self) -> f32 {
        self.model.lr()
    }

    #[setter]
    fn set_lr(&mut self, lr: f32) -> PyResult<()> {
        check_lr(lr)?;
        self.model.set_lr(lr);
        Ok(())
    }
}

/// The order `stdl train --seed SEED` visits `n` training samples in, in 0-based `epoch`.
#[pyfunction]
pub(crate) fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    stdl::train::epoch_order(n, seed, epoch)
}

/// The learning rate `stdl train --lr-schedule SCHEDULE` uses in 0-based `epoch` of `epochs`.
#[pyfunction]
pub(crate) fn lr_at(lr: f32, epoch: usize, epochs: usize, schedule: &str) -> PyResult<f32> {
    let s = stdl::config::LrSchedule::ALL
        .into_iter()
        .find(|s| serde_json::to_value(s).is_ok_and(|v| v == schedule))
        .ok_or_else(|| StdlError::new_err(format!("lr schedule {schedule:?}: cosine or constant")))?;
    Ok(s.lr(lr, epoch, epochs))
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
