//! The learning core's model: a network trained with STDL or BPTT ([`Model`]), and what
//! builds it from a preset ([`ModelSettings`], saved in every checkpoint:
//! [`crate::checkpoint`]).

use std::collections::{BTreeMap, VecDeque};

use crate::error::{bail, Result};
use serde::{Deserialize, Serialize};
use stdl_models::network::NetworkSpec;
use stdl_models::optim::OptimConfig;
use stdl_models::pool::{Fit, FitScope};
use stdl_models::preset::Budget;
use stdl_models::{Preset, Tensor};

use crate::bptt::BpttModel;
use crate::stdl::{plan, Pipeline, StageOutput, StdlModel, PIPELINE_QUEUE};

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
        let mut result = None;
        let one = std::iter::once(Ok::<_, std::convert::Infallible>(((), labels.to_vec())));
        let _ = self.train_batches(
            t_bins,
            one,
            |_, t| frame(t),
            |r| {
                result = Some((r.logits, r.loss));
                Ok(())
            },
        );
        result.expect("the batch was trained")
    }

    /// Trains on batches of sequences of `t_bins` steps, one after another, as
    /// [`Model::train_batch`] trains each: `batches` gives each batch with its labels,
    /// `frame(batch, t)` makes its step `t` when it is learned, and `done` gets what each
    /// batch gave, in order. The numbers are those of [`Model::train_batch`] on each batch in
    /// turn, bit for bit, but with STDL's pipeline (`--pipeline`) the batches overlap: the
    /// first subnetwork starts on the next batch while the last one finishes this one
    /// (a subnetwork's update depends only on its own auxiliary network, STDL.md §3), so the
    /// pipeline neither fills nor drains between batches.
    ///
    /// # Errors
    /// The first error: one from `batches` comes back once `done` has had every batch before
    /// it; one from `done` stops the sending (with the pipeline, the steps of later batches
    /// already sent are still learned, and not handed over).
    ///
    /// # Panics
    /// When a pipeline stage panicked.
    pub fn train_batches<B, E>(
        &mut self,
        t_bins: usize,
        batches: impl IntoIterator<Item = std::result::Result<(B, Vec<usize>), E>>,
        mut frame: impl FnMut(&B, usize) -> Tensor,
        mut done: impl FnMut(Trained) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        assert!(t_bins > 0, "a sequence has at least one step");
        let _fit = FitScope::enter(self.pool_fit());
        match self {
            Model::Stdl(m) if m.pipeline && m.stages.len() > 1 => {
                // The subnetworks as pipeline stages on worker threads, overlapping
                // consecutive time steps (and batches): the same Stage::advance calls as in
                // sequence, so the same numbers bit for bit (tests/all/runtime.rs); faster on
                // 2 cores, but the stages' step memory adds up.
                let pipe = Pipeline::start(std::mem::take(&mut m.stages), PIPELINE_QUEUE);
                let flight = Flight {
                    pipe: &pipe,
                    batches: VecDeque::new(),
                    done: &mut done,
                    error: None,
                };
                let result = flight.run(t_bins, batches, &mut frame);
                // Panics here when a stage did.
                m.stages = pipe.finish();
                result
            }
            Model::Stdl(m) => {
                for batch in batches {
                    let (b, labels) = batch?;
                    m.reset_state();
                    let mut sum: Option<Tensor> = None;
                    let (mut loss, mut steps) = (0.0, 0);
                    for t in 0..t_bins {
                        // Ctrl-C ends a long sequence early (the caller stops before saving).
                        if t > 0 && crate::interrupt::requested() {
                            break;
                        }
                        let (logits, losses) = m.step(frame(&b, t), Some(&labels));
                        loss += losses.last().copied().unwrap_or(0.0);
                        add_into(&mut sum, logits);
                        steps += 1;
                    }
                    let diverged = m.stages.iter().any(|s| s.opt.diverged);
                    done(Trained {
                        labels,
                        logits: sum.expect("at least one frame"),
                        loss: loss / steps as f32,
                        diverged,
                    })?;
                }
                Ok(())
            }
            Model::Bptt(m) => {
                for batch in batches {
                    let (b, labels) = batch?;
                    let (logits, loss) = m.train_sequence(t_bins, |t| frame(&b, t), &labels);
                    let diverged = m.opt.diverged;
                    done(Trained {
                        labels,
                        logits,
                        loss,
                        diverged,
                    })?;
                }
                Ok(())
            }
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

/// What training one batch gave ([`Model::train_batches`]).
#[derive(Debug)]
pub struct Trained {
    /// The batch's labels.
    pub labels: Vec<usize>,
    /// Readout logits summed over the batch's steps.
    pub logits: Tensor,
    /// Mean loss over its steps.
    pub loss: f32,
    /// An update, in this batch or before, left a weight that is not finite: training
    /// diverged ([`Model::diverged`]).
    pub diverged: bool,
}

/// Batches in a pipeline ([`Model::train_batches`]): sent on the caller's thread, which
/// takes outputs only while the first stage's queue is full. So the last stage never waits on
/// an output nobody takes (something is in flight whenever that queue is full), without a
/// thread to collect them.
struct Flight<'a, D, E> {
    pipe: &'a Pipeline,
    /// Batches sent or being sent whose outputs are not all in, oldest first.
    batches: VecDeque<Sending>,
    done: &'a mut D,
    /// The first error from `done`: nothing more is sent, and `done` is not called again.
    error: Option<E>,
}

/// A batch in [`Flight`].
struct Sending {
    labels: Vec<usize>,
    /// Steps sent.
    sent: usize,
    /// All its steps are sent.
    complete: bool,
    /// Outputs taken.
    got: usize,
    sum: Option<Tensor>,
    loss: f32,
    diverged: bool,
}

/// What [`Flight::feed`] queues.
enum Input {
    Step(Tensor),
    Reset,
}

impl<D, E> Flight<'_, D, E>
where
    D: FnMut(Trained) -> std::result::Result<(), E>,
{
    /// Sends every batch, then takes the outputs still to come of the batches to hand over
    /// (after an error from `done` there are none: the outputs left are dropped with the
    /// pipeline, as [`Pipeline::finish`] drops them).
    fn run<B>(
        mut self,
        t_bins: usize,
        batches: impl IntoIterator<Item = std::result::Result<(B, Vec<usize>), E>>,
        frame: &mut impl FnMut(&B, usize) -> Tensor,
    ) -> std::result::Result<(), E> {
        let mut stopped = None;
        'batches: for batch in batches {
            let (b, labels) = match batch {
                Ok(b) => b,
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            };
            self.batches.push_back(Sending {
                labels,
                sent: 0,
                complete: false,
                got: 0,
                sum: None,
                loss: 0.0,
                diverged: false,
            });
            if !self.feed(Input::Reset) {
                break;
            }
            for t in 0..t_bins {
                // Ctrl-C ends a long sequence early (the caller stops before saving).
                if t > 0 && crate::interrupt::requested() {
                    break;
                }
                if !self.feed(Input::Step(frame(&b, t))) {
                    break 'batches;
                }
                self.batches.back_mut().expect("the batch being sent").sent += 1;
            }
            self.batches.back_mut().expect("the batch being sent").complete = true;
            self.hand_over();
            if self.error.is_some() {
                break;
            }
        }
        // Batches sent before an error from `batches` are handed over before it.
        while self.error.is_none() && self.batches.iter().any(|b| b.got < b.sent) {
            match self.pipe.recv() {
                Some(out) => self.take(out),
                // A stage failed: Pipeline::finish says so.
                None => break,
            }
        }
        self.error.or(stopped).map_or(Ok(()), Err)
    }

    /// Queues `input` for the first stage, taking outputs while its queue is full; `false`
    /// when a stage failed or `done` returned an error.
    fn feed(&mut self, mut input: Input) -> bool {
        loop {
            let labels = || Some(self.batches.back().expect("the batch being sent").labels.clone());
            if self.batches.iter().all(|b| b.got == b.sent) {
                // Nothing to take: no output can hold the stages up, so room comes.
                match input {
                    Input::Step(x) => self.pipe.send(x, labels()),
                    Input::Reset => self.pipe.reset(),
                }
                return true;
            }
            input = match input {
                Input::Step(x) => match self.pipe.try_send(x, labels()) {
                    Ok(()) => return true,
                    Err(x) => Input::Step(x),
                },
                Input::Reset if self.pipe.try_reset() => return true,
                Input::Reset => Input::Reset,
            };
            match self.pipe.recv() {
                Some(out) => self.take(out),
                None => return false,
            }
            if self.error.is_some() {
                return false;
            }
        }
    }

    /// Adds a step's output to the oldest batch still waiting for one.
    fn take(&mut self, out: StageOutput) {
        let b = self
            .batches
            .iter_mut()
            .find(|b| b.got < b.sent)
            .expect("an output belongs to a step sent");
        b.got += 1;
        b.loss += out.loss.unwrap_or(0.0);
        b.diverged |= out.diverged;
        add_into(&mut b.sum, out.logits);
        self.hand_over();
    }

    /// Hands `done` every batch at the front whose outputs are all in (until it returns an
    /// error).
    fn hand_over(&mut self) {
        while self.error.is_none()
            && self
                .batches
                .front()
                .is_some_and(|b| b.complete && b.got == b.sent)
        {
            let b = self.batches.pop_front().expect("a front batch");
            let trained = Trained {
                labels: b.labels,
                logits: b.sum.expect("at least one frame"),
                loss: b.loss / b.sent as f32,
                diverged: b.diverged,
            };
            self.error = (self.done)(trained).err();
        }
    }
}
