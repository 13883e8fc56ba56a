//! The learner side of a stream ([`Learner`]): bins go into the pipeline of STDL stages
//! (with replayed segments between live steps), their outputs become predictions, and the
//! stages' weights are checkpointed ([`crate::checkpoint`]) as they learn. Also the models a
//! stream starts from ([`new_model`], [`load_model`]).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

use crate::error::{Context, Result};
use stdl_models::optim::OptimConfig;
use stdl_models::Preset;

use crate::checkpoint::{CheckpointState, Progress};
use crate::model::{Model, ModelSettings};
use crate::runtime::config::StreamConfig;
use crate::runtime::overload::{Backlog, Bin};
use crate::runtime::sink::{Output, Predictor};
use crate::stdl::{Pipeline, StdlModel};

/// A trained STDL model to stream with: the `OUT/checkpoint` directory of `stdl train` (its
/// plan, weights and optimiser state), or a stream's `--checkpoint-dir` (weights and optimiser
/// state for its preset). Learning goes on at `lr`.
pub fn load_model(dir: &std::path::Path, lr: f32) -> Result<StdlModel> {
    let mut model = crate::checkpoint::load(dir, true)?.model;
    model.set_lr(lr);
    model.into_stdl("streaming")
}

/// Where a resumed stream stands: steps learned, end of the last bin (µs), events read.
pub type Resumed = (u64, u64, u64);

/// Readies `model` for a stream: with `--resume`, its weights, optimiser state and stream
/// position from the stream's checkpoint; both convolution paths' buffers allocated before
/// the first bin (flat memory); profiling, the strategy and the testing slowdown as set.
///
/// # Errors
/// A checkpoint that is not a stream's, or that does not fit the model.
pub fn prepare(cfg: &StreamConfig, model: &mut StdlModel) -> Result<Option<Resumed>> {
    let mut resumed = None;
    if let (true, Some(dir)) = (cfg.resume, &cfg.checkpoint_dir) {
        if dir.join("state.json").exists() {
            let Progress::Stream { steps, t_us, events } = crate::checkpoint::read_state(dir)?.progress
            else {
                crate::error::bail!(
                    "{} holds a `stdl train` checkpoint; `--resume` continues a stream's own \
                     --checkpoint-dir (start from a trained model with --checkpoint)",
                    dir.display()
                );
            };
            let (params, optimizer) = crate::checkpoint::tensors(dir)?;
            model.load_params(&params)?;
            model.load_optimizer_state(&optimizer);
            eprintln!("resuming from {} at step {steps} (t = {t_us} us)", dir.display());
            resumed = Some((steps, t_us, events));
        } else {
            eprintln!("no checkpoint in {}; starting fresh", dir.display());
        }
    }
    model.warm_up(1, Some(crate::stdl::PIPELINE_QUEUE));
    if cfg.profile {
        model.stages.iter_mut().for_each(|s| s.set_profiling(true));
    }
    if cfg.strategy.kind != crate::stdl::StrategyKind::Naive {
        model.set_strategy(&cfg.strategy);
    }
    if let Some(last) = model.stages.last_mut() {
        last.min_step = cfg.min_step;
    }
    Ok(resumed)
}

/// A fresh model for a stream: the preset's network planned for batch 1 under
/// `cfg.aux_budget` (else the preset's budget), updated every `cfg.update_every` labelled
/// steps.
///
/// # Errors
/// A preset that cannot be loaded or planned.
pub fn new_model(cfg: &StreamConfig) -> Result<StdlModel> {
    let preset = Preset::load(&cfg.preset)?;
    let opt = OptimConfig {
        lr: cfg.lr,
        ..preset.train.optimizer
    };
    let settings = ModelSettings {
        update_every: cfg.update_every,
        aux_budget: cfg.aux_budget.clone(),
        ..ModelSettings::online(cfg.seed, opt)
    };
    Model::build(&settings, &preset)?.into_stdl("streaming")
}

/// The learner side of a stream: the pipeline of stages, replay between live steps,
/// predictions, checkpoints and step counts.
pub struct Learner<'a> {
    pub(crate) cfg: &'a StreamConfig,
    /// The preset, stored whole with each checkpoint.
    pub(crate) preset: Preset,
    /// What rebuilds the model, stored with each checkpoint.
    pub(crate) settings: ModelSettings,
    pub(crate) pipe: Pipeline,
    /// Steps in the pipeline: end time and label, oldest first (`None`: a replayed step,
    /// which makes no prediction).
    pub(crate) pending: VecDeque<Option<(u64, Option<usize>)>>,
    /// Replay between live steps.
    pub(crate) replay: Option<crate::runtime::replay::StreamReplay>,
    pub(crate) pred: Predictor,
    pub(crate) out: Output,
    pub(crate) steps: u64,
    pub(crate) events: u64,
    pub(crate) last_bin_end: u64,
    pub(crate) ck_steps: u64,
    pub(crate) ck_time: Instant,
    pub(crate) rss_at: Vec<(u64, u64)>,
    pub(crate) heap_at: Vec<(u64, u64)>,
    /// Why learning stopped, if it diverged.
    pub(crate) diverged: Option<String>,
}

impl<'a> Learner<'a> {
    /// The learner of a stream: `stages` started as a pipeline, replay as `cfg` sets it,
    /// predictions to `out`, counts from `resumed`.
    ///
    /// # Errors
    /// A replay budget too small for one segment.
    pub(crate) fn start(
        cfg: &'a StreamConfig,
        preset: Preset,
        settings: ModelSettings,
        stages: Vec<crate::stdl::Stage>,
        out: Output,
        resumed: Option<Resumed>,
    ) -> Result<Self> {
        let dims = stdl_models::Dims::new(preset.input[0], preset.input[1], preset.input[2]);
        let (steps, t_us, events) = resumed.unwrap_or_default();
        Ok(Self {
            cfg,
            preset,
            settings,
            pipe: Pipeline::start_primed(stages, crate::stdl::PIPELINE_QUEUE, cfg.workers),
            pending: VecDeque::new(),
            replay: match &cfg.replay {
                Some(r) if cfg.learn && r.bytes > 0 => {
                    Some(crate::runtime::replay::StreamReplay::new(r, dims, cfg.seed)?)
                }
                _ => None,
            },
            pred: Predictor::new(cfg.ema_steps),
            out,
            steps,
            events,
            last_bin_end: t_us,
            ck_steps: steps,
            ck_time: Instant::now(),
            rss_at: Vec::new(),
            heap_at: Vec::new(),
            diverged: None,
        })
    }

    /// Hands a bin to the learner: waits for room when `wait`, otherwise gives the bin back
    /// when the learner's queue is full.
    pub(crate) fn offer(&mut self, bin: Bin, wait: bool) -> Result<Option<Bin>> {
        let labels = if self.cfg.learn {
            bin.label.map(|l| vec![l])
        } else {
            None
        };
        let learned = labels.as_ref().map(|l| l[0]);
        // Only a learned bin joins the reservoir; an unlabelled one just ends a segment.
        if let (Some(r), Some(_)) = (self.replay.as_mut(), learned) {
            r.offering(&bin.x);
        }
        let x = if wait {
            self.pipe.send(bin.x, labels);
            None
        } else {
            self.pipe.try_send(bin.x, labels).err()
        };
        if let Some(x) = x {
            return Ok(Some(Bin { x, ..bin }));
        }
        if let Some(r) = self.replay.as_mut() {
            r.accepted(learned);
        }
        self.pending.push_back(Some((bin.t_end_us, bin.label)));
        self.steps += 1;
        self.last_bin_end = bin.t_end_us;
        self.maybe_checkpoint()?;
        if self.cfg.report_at_steps.contains(&self.steps) {
            // With no step in flight: what the learner keeps between steps (and what waits
            // in the binner).
            self.drain(0)?;
            self.rss_at.push((self.steps, crate::heap::peak_rss_bytes()));
            if let Some(b) = crate::heap::live_bytes() {
                self.heap_at.push((self.steps, b));
            }
        }
        Ok(None)
    }

    /// How many steps may be in flight before handing over another waits for the oldest to
    /// finish. Waiting for room (a replay): [`Pipeline::in_flight`], one queue's worth per
    /// stage, so that every stage has steps to work on while others run (with 4 in all, one
    /// of `dvs-gesture`'s five stages always sat idle, and the two cores were busy 83% of
    /// the time). Not waiting (a live source): no limit, the queues' room decides.
    fn keep_in_flight(&self, wait: bool) -> usize {
        if wait {
            self.pipe.in_flight()
        } else {
            usize::MAX
        }
    }

    /// Turns finished steps into predictions: waits while more than `keep` are in flight,
    /// then takes whatever else is ready.
    pub(crate) fn drain(&mut self, keep: usize) -> Result<()> {
        while self.pending.len() > keep {
            let out = self.pipe.recv().context("pipeline stopped")?;
            self.finished(out)?;
        }
        while !self.pending.is_empty() {
            let Some(out) = self.pipe.try_recv() else { break };
            self.finished(out)?;
        }
        Ok(())
    }

    /// The oldest pending step's output: a prediction for a live step.
    pub(crate) fn finished(&mut self, out: crate::stdl::StageOutput) -> Result<()> {
        let meta = self.pending.pop_front().expect("a pending step");
        self.check_loss(&out, meta.map_or(self.last_bin_end, |m| m.0));
        if let Some(meta) = meta {
            self.pred
                .handle(out, meta, &mut self.out)
                .with_context(|| format!("writing predictions to {}", self.out_name()))?;
        }
        Ok(())
    }

    /// Hands due replayed steps to the learner (waiting for room when `wait`); false while
    /// some are left (the learner's queue is full), so that no live step comes between the
    /// steps of a segment.
    pub(crate) fn send_replay(&mut self, wait: bool) -> Result<bool> {
        while let Some((ctx, x, label)) = self.replay.as_ref().and_then(|r| r.next()) {
            if wait {
                self.pipe.send_in(ctx, x, Some(vec![label]));
            } else if self.pipe.try_send_in(ctx, x, Some(vec![label])).is_err() {
                return Ok(false);
            }
            self.replay.as_mut().expect("replay").sent();
            self.pending.push_back(None);
            self.drain(self.keep_in_flight(wait))?;
        }
        Ok(true)
    }

    /// Where predictions go, for messages.
    pub(crate) fn out_name(&self) -> String {
        if self.cfg.on_prediction.is_some() {
            return "the predictions channel".into();
        }
        self.cfg
            .predictions
            .as_ref()
            .map_or_else(|| "standard output".into(), |p| p.display().to_string())
    }

    /// Records the first step whose loss is not finite (learning diverged).
    pub(crate) fn check_loss(&mut self, out: &crate::stdl::StageOutput, t_end_us: u64) {
        if self.diverged.is_none() && out.loss.is_some_and(|l| !l.is_finite()) {
            let done = self.steps - self.pending.len() as u64;
            self.diverged = Some(format!(
                "learning diverged at step {done} (bin ending at {t_end_us} us): the loss is not \
                 finite; lower --lr (now {}); no checkpoint was written after it",
                self.cfg.lr
            ));
        }
    }

    pub(crate) fn maybe_checkpoint(&mut self) -> Result<()> {
        if self.diverged.is_some() {
            return Ok(());
        }
        let Some(dir) = &self.cfg.checkpoint_dir else {
            return Ok(());
        };
        let due = self
            .cfg
            .checkpoint_every_steps
            .is_some_and(|n| self.steps - self.ck_steps >= n)
            || self
                .cfg
                .checkpoint_every_s
                .is_some_and(|sec| self.ck_time.elapsed().as_secs_f64() >= sec);
        if due {
            // Empty the pipeline first: a stage blocked on a full output queue could not
            // answer the snapshot.
            self.drain(0)?;
            self.save(dir.clone())?;
            (self.ck_steps, self.ck_time) = (self.steps, Instant::now());
        }
        Ok(())
    }

    pub(crate) fn save(&mut self, dir: PathBuf) -> Result<()> {
        let (params, optimizer) = self.pipe.snapshot().context("pipeline stopped")?;
        let state = CheckpointState::new(
            &self.preset.name,
            self.settings.clone(),
            Progress::Stream {
                steps: self.steps,
                t_us: self.last_bin_end,
                events: self.events,
            },
        );
        crate::checkpoint::save(&dir, &params, &optimizer, &self.preset, &state)
    }

    pub(crate) fn done(&self) -> bool {
        self.cfg.max_steps.is_some_and(|m| self.steps >= m) || self.diverged.is_some()
    }

    /// Whether Ctrl-C, SIGTERM or the run's own stop token asked to stop (says so once it
    /// has).
    pub(crate) fn interrupted(&self) -> bool {
        let stop = self.cfg.stop.requested();
        if stop && !self.cfg.quiet {
            eprintln!("interrupted: stopping after step {}", self.steps);
        }
        stop
    }

    /// Hands waiting bins to the learner, oldest first (waiting for room when `wait`, else
    /// keeping what does not fit), and turns finished steps into predictions. True once the
    /// run should stop: `max_steps` reached or interrupted.
    pub(crate) fn flush(&mut self, backlog: &mut Backlog, wait: bool) -> Result<bool> {
        while self.send_replay(wait)? {
            let Some(bin) = backlog.pop() else { break };
            if let Some(back) = self.offer(bin, wait)? {
                backlog.put_back(back);
                break;
            }
            self.drain(self.keep_in_flight(wait))?;
            if self.done() || self.interrupted() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
