//! The learning core's model: a network trained with STDL or BPTT ([`Model`]), and what
//! builds it from a preset ([`ModelSettings`], saved in every checkpoint:
//! [`crate::checkpoint`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::{bail, Result};
use crossbeam_channel::RecvTimeoutError;
use serde::{Deserialize, Serialize};
use stdl_models::network::NetworkSpec;
use stdl_models::optim::OptimConfig;
use stdl_models::pool::{Fit, FitScope};
use stdl_models::preset::Budget;
use stdl_models::{Preset, Tensor};

use crate::bptt::BpttModel;
use crate::stdl::{plan, Pipeline, StdlModel, PIPELINE_QUEUE};

/// `stdl` or `bptt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Spatio-temporal decoupled learning (online, local).
    Stdl,
    /// Backpropagation through time (baseline).
    Bptt,
}

impl Method {
    /// Every method, in the order the command line lists them.
    pub const ALL: [Method; 2] = [Method::Stdl, Method::Bptt];
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Stdl => "STDL",
            Method::Bptt => "BPTT",
        })
    }
}

/// A model of either method.
#[derive(Debug)]
pub enum Model {
    /// STDL.
    Stdl(Box<StdlModel>),
    /// BPTT.
    Bptt(Box<BpttModel>),
}

/// What builds a model from a preset, besides the preset: saved in every checkpoint, so a
/// checkpoint rebuilds the same architecture and plan before its weights are loaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSettings {
    /// Method.
    pub method: Method,
    /// Batch size the model is built (and, for STDL, planned) for.
    pub batch: usize,
    /// BPTT: time steps per sequence (its batch check); STDL: unused.
    pub t_bins: usize,
    /// Seed of the initial weights.
    pub seed: u64,
    /// Optimiser.
    pub optimizer: OptimConfig,
    /// STDL: labelled steps per update.
    pub update_every: usize,
    /// STDL: auxiliary-network budget (the preset's, or the default, when absent).
    pub aux_budget: Option<Budget>,
    /// STDL: train batches with the subnetworks as pipeline stages.
    pub pipeline: bool,
}

impl ModelSettings {
    /// An online STDL learner as a stream runs it: batch 1, an update after every step.
    pub fn online(seed: u64, optimizer: OptimConfig) -> Self {
        Self {
            method: Method::Stdl,
            batch: 1,
            t_bins: 1,
            seed,
            optimizer,
            update_every: 1,
            aux_budget: None,
            pipeline: false,
        }
    }

    /// The settings that rebuild `m`'s plan: its batch and resolved budget in bytes.
    pub fn of_stdl(m: &StdlModel) -> Self {
        Self {
            method: Method::Stdl,
            batch: m.plan.batch,
            t_bins: 1,
            seed: 0,
            optimizer: m.stages.first().map_or_else(OptimConfig::default, |s| s.opt.cfg),
            update_every: m.update_every,
            aux_budget: Some(Budget::Bytes(m.plan.budget_bytes)),
            pipeline: m.pipeline,
        }
    }
}

impl Model {
    /// Builds a fresh model of `settings` for `preset`, its weights drawn from the seed.
    ///
    /// # Errors
    /// A preset that is not a valid network, a batch the network cannot take, or a plan
    /// that does not fit the budget.
    pub fn build(settings: &ModelSettings, preset: &Preset) -> Result<Model> {
        let s = settings;
        let spec = NetworkSpec::new(preset)?;
        spec.check_batch(s.batch, if s.method == Method::Bptt { s.t_bins } else { 1 })?;
        Ok(match s.method {
            Method::Stdl => {
                let p = plan(
                    &spec,
                    s.batch,
                    s.aux_budget.as_ref(),
                    s.optimizer.state_floats_per_param(),
                )?;
                let mut m = StdlModel::new(spec, p, s.seed, s.optimizer, s.update_every)?;
                m.pipeline = s.pipeline;
                Model::Stdl(Box::new(m))
            }
            Method::Bptt => Model::Bptt(Box::new(BpttModel::new(spec, s.seed, s.optimizer)?)),
        })
    }

    /// The STDL model inside, or an error naming `what` needs it.
    ///
    /// # Errors
    /// A BPTT model.
    pub fn into_stdl(self, what: &str) -> Result<StdlModel> {
        match self {
            Model::Stdl(m) => Ok(*m),
            Model::Bptt(_) => {
                bail!("{what} learns online with STDL, and this is a BPTT model: train with --method stdl")
            }
        }
    }

    /// The buffer pool's fit while this model runs ([`stdl_models::pool::Fit`]): STDL's
    /// subnetworks one after another share spares of similar sizes (up to 4×); as
    /// overlapping pipeline stages each keeps to its own class; BPTT keeps activations for
    /// the whole sequence, where a spare 4× too large would be pinned.
    pub fn pool_fit(&self) -> Fit {
        match self {
            Model::Stdl(m) if !(m.pipeline && m.stages.len() > 1) => Fit::up_to(4),
            _ => Fit::OWN_CLASS,
        }
    }

    /// Trains on one batch of sequences of `t_bins` steps, `frame(t)` making step `t`'s
    /// batch when it is learned; returns the summed readout logits and the mean loss.
    pub fn train_batch(
        &mut self,
        t_bins: usize,
        mut frame: impl FnMut(usize) -> Tensor,
        labels: &[usize],
    ) -> (Tensor, f32) {
        assert!(t_bins > 0, "a sequence has at least one step");
        let _fit = FitScope::enter(self.pool_fit());
        match self {
            Model::Stdl(m) if m.pipeline && m.stages.len() > 1 => {
                // The subnetworks as pipeline stages on worker threads, overlapping
                // consecutive time steps: the same Stage::advance calls as in sequence, so the
                // same numbers bit for bit (tests/all/runtime.rs); faster on 2 cores, but the
                // stages' step memory adds up.
                m.reset_state();
                let pipe = Pipeline::start(std::mem::take(&mut m.stages), PIPELINE_QUEUE);
                // How many steps were sent, once sending is over (Ctrl-C ends it early, as in
                // the sequential branch); until then, usize::MAX.
                let sent = AtomicUsize::new(usize::MAX);
                let (sum, loss, steps) = std::thread::scope(|s| {
                    let collector = s.spawn(|| {
                        let mut sum: Option<Tensor> = None;
                        let (mut loss, mut steps) = (0.0, 0);
                        while steps < sent.load(Ordering::Acquire) {
                            // A short wait, so a count that arrives while waiting is seen.
                            match pipe.recv_timeout(Duration::from_millis(20)) {
                                Ok(out) => {
                                    loss += out.loss.unwrap_or(0.0);
                                    add_into(&mut sum, out.logits);
                                    steps += 1;
                                }
                                Err(RecvTimeoutError::Timeout) => {}
                                Err(RecvTimeoutError::Disconnected) => panic!("pipeline stage failed"),
                            }
                        }
                        (sum, loss, steps)
                    });
                    let mut n = 0;
                    for t in 0..t_bins {
                        if t > 0 && crate::interrupt::requested() {
                            break;
                        }
                        pipe.send(frame(t), Some(labels.to_vec()));
                        n += 1;
                    }
                    sent.store(n, Ordering::Release);
                    collector.join().expect("pipeline collector")
                });
                m.stages = pipe.finish();
                (sum.expect("at least one frame"), loss / steps as f32)
            }
            Model::Stdl(m) => {
                m.reset_state();
                let mut sum: Option<Tensor> = None;
                let mut loss = 0.0;
                let mut steps = 0;
                for t in 0..t_bins {
                    // Ctrl-C ends a long sequence early (the caller stops before saving).
                    if t > 0 && crate::interrupt::requested() {
                        break;
                    }
                    let (logits, losses) = m.step(frame(t), Some(labels));
                    loss += losses.last().copied().unwrap_or(0.0);
                    add_into(&mut sum, logits);
                    steps += 1;
                }
                (sum.expect("at least one frame"), loss / steps as f32)
            }
            Model::Bptt(m) => m.train_sequence(t_bins, frame, labels),
        }
    }

    /// Summed readout logits of a batch of sequences of `t_bins` steps, no learning.
    pub fn infer_batch(&mut self, t_bins: usize, mut frame: impl FnMut(usize) -> Tensor) -> Tensor {
        assert!(t_bins > 0, "a sequence has at least one step");
        let _fit = FitScope::enter(self.pool_fit());
        match self {
            Model::Stdl(m) => {
                m.reset_state();
                let mut sum = None;
                for t in 0..t_bins {
                    if t > 0 && crate::interrupt::requested() {
                        break;
                    }
                    add_into(&mut sum, m.step(frame(t), None).0);
                }
                sum.expect("at least one frame")
            }
            Model::Bptt(m) => m.infer_sequence(t_bins, frame),
        }
    }

    /// Whether an update left a weight that is not finite (training diverged).
    pub fn diverged(&self) -> bool {
        match self {
            Model::Stdl(m) => m.stages.iter().any(|s| s.opt.diverged),
            Model::Bptt(m) => m.opt.diverged,
        }
    }

    /// Sets the learning rate of every optimiser.
    pub fn set_lr(&mut self, lr: f32) {
        match self {
            Model::Stdl(m) => m.set_lr(lr),
            Model::Bptt(m) => m.opt.cfg.lr = lr,
        }
    }

    /// Named parameters.
    pub fn named_params(&self) -> BTreeMap<String, Vec<f32>> {
        match self {
            Model::Stdl(m) => m.named_params(),
            Model::Bptt(m) => m.named_params(),
        }
    }

    /// Loads named parameters.
    pub fn load_params(&mut self, p: &BTreeMap<String, Vec<f32>>) -> Result<()> {
        match self {
            Model::Stdl(m) => m.load_params(p),
            Model::Bptt(m) => m.load_params(p),
        }
    }

    /// Optimiser state, named.
    pub fn optimizer_state(&self) -> BTreeMap<String, Vec<f32>> {
        match self {
            Model::Stdl(m) => m.optimizer_state(),
            Model::Bptt(m) => {
                let mut out = BTreeMap::new();
                for (j, v) in m.opt.m.iter().enumerate() {
                    out.insert(format!("m{j}"), v.clone());
                }
                for (j, v) in m.opt.v.iter().enumerate() {
                    out.insert(format!("v{j}"), v.clone());
                }
                out.insert("t".into(), vec![m.opt.t as f32]);
                out
            }
        }
    }

    /// Restores optimiser state.
    pub fn load_optimizer_state(&mut self, s: &BTreeMap<String, Vec<f32>>) {
        match self {
            Model::Stdl(m) => m.load_optimizer_state(s),
            Model::Bptt(m) => {
                m.opt.m = (0..).map_while(|j| s.get(&format!("m{j}")).cloned()).collect();
                m.opt.v = (0..).map_while(|j| s.get(&format!("v{j}")).cloned()).collect();
                m.opt.t = s.get("t").map_or(0, |v| v[0] as u64);
            }
        }
    }
}

fn add_into(sum: &mut Option<Tensor>, x: Tensor) {
    match sum {
        Some(s) => s.data.iter_mut().zip(&x.data).for_each(|(a, b)| *a += b),
        None => *sum = Some(x),
    }
}
