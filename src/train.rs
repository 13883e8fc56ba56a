//! Training and evaluation on event datasets: frames, batches, epochs, metrics, checkpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use stdl_io::datasets::{Dataset, Sample, Split};
use stdl_models::loss::{argmax, cross_entropy};
use stdl_models::network::NetworkSpec;
use stdl_models::optim::OptimConfig;
use stdl_models::{Dims, Preset, Rng, Tensor};

use crate::bptt::BpttModel;
use crate::data::SampleSet;
use crate::stdl::{plan, StdlModel};

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Stdl => "STDL",
            Method::Bptt => "BPTT",
        })
    }
}

/// `stdl` or `bptt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Spatio-temporal decoupled learning (online, local).
    Stdl,
    /// Backpropagation through time (baseline).
    Bptt,
}

/// A model of either method.
#[derive(Debug)]
pub enum Model {
    /// STDL.
    Stdl(Box<StdlModel>),
    /// BPTT.
    Bptt(Box<BpttModel>),
}

/// Training settings (saved beside checkpoints).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Method.
    pub method: Method,
    /// Dataset name.
    pub dataset: String,
    /// Dataset root.
    pub root: PathBuf,
    /// Preset name or path.
    pub preset: String,
    /// Epochs.
    pub epochs: usize,
    /// Time bins.
    pub t_bins: usize,
    /// Batch size.
    pub batch: usize,
    /// Seed.
    pub seed: u64,
    /// Use at most this many training (and test) samples.
    pub limit_samples: Option<usize>,
    /// STDL: labelled steps per update.
    pub update_every: usize,
    /// Optimiser.
    pub optimizer: OptimConfig,
    /// Auxiliary budget override.
    pub aux_budget: Option<String>,
    /// Learning-rate schedule over epochs.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// STDL: subnetworks as pipeline stages on their own threads (same numbers, faster on
    /// several cores, more memory).
    #[serde(default)]
    pub pipeline: bool,
}

/// Learning rate over epochs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// Cosine annealing from the base rate to 0 over the epochs (SpikingJelly's examples).
    #[default]
    Cosine,
    /// The base rate throughout.
    Constant,
}

impl LrSchedule {
    /// The rate for 0-based `epoch` of `epochs`.
    pub fn lr(self, base: f32, epoch: usize, epochs: usize) -> f32 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine => {
                base * 0.5 * (1.0 + (std::f32::consts::PI * epoch as f32 / epochs.max(1) as f32).cos())
            }
        }
    }
}

impl Model {
    /// Builds a model for a config.
    pub fn build(cfg: &TrainConfig, preset: &Preset) -> Result<Model> {
        let spec = NetworkSpec::new(preset)?;
        spec.check_batch(cfg.batch, if cfg.method == Method::Bptt { cfg.t_bins } else { 1 })?;
        Ok(match cfg.method {
            Method::Stdl => {
                let budget = cfg.aux_budget.as_deref().map(parse_budget).transpose()?;
                let p = plan(
                    &spec,
                    cfg.batch,
                    budget.as_ref(),
                    cfg.optimizer.state_floats_per_param(),
                )?;
                let mut m = StdlModel::new(spec, p, cfg.seed, cfg.optimizer, cfg.update_every)?;
                m.pipeline = cfg.pipeline;
                // One subnetwork after another: they share spares of similar sizes. As
                // overlapping pipeline stages, each keeps to its own (pool::set_fit).
                stdl_models::pool::set_fit(if cfg.pipeline { 1 } else { 4 });
                Model::Stdl(Box::new(m))
            }
            Method::Bptt => {
                // Activations live for the whole sequence: a spare 4× too large would be pinned.
                stdl_models::pool::set_fit(1);
                Model::Bptt(Box::new(BpttModel::new(spec, cfg.seed, cfg.optimizer)?))
            }
        })
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
        match self {
            Model::Stdl(m) if m.pipeline && m.stages.len() > 1 => {
                // The subnetworks as pipeline stages on their own threads, overlapping
                // consecutive time steps: the same Stage::advance calls as in sequence, so the
                // same numbers bit for bit (tests/all/runtime.rs); faster on 2 cores, but the
                // stages' step memory adds up.
                m.reset_state();
                let pipe = crate::runtime::Pipeline::start(
                    std::mem::take(&mut m.stages),
                    crate::runtime::stream::PIPELINE_QUEUE,
                );
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
                        if t > 0 && crate::runtime::interrupt::requested() {
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
                    if t > 0 && crate::runtime::interrupt::requested() {
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
        match self {
            Model::Stdl(m) => {
                m.reset_state();
                let mut sum = None;
                for t in 0..t_bins {
                    if t > 0 && crate::runtime::interrupt::requested() {
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
            Model::Stdl(m) => m.stages.iter_mut().for_each(|s| s.opt.cfg.lr = lr),
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

/// Parses a byte count: a number with an optional unit, `K`/`M`/`G` (powers of 1000) or
/// `KiB`/`MiB`/`GiB` (powers of 1024), e.g. `4096`, `2MiB`, `1.5M`.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "k" | "KB" | "kB" => 1000,
        "M" | "MB" => 1000 * 1000,
        "G" | "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        u => bail!("unknown unit {u:?} in {s:?}; use bytes or K, M, G, KiB, MiB, GiB"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("expected a byte count such as 4096 or 2MiB, got {s:?}"))?;
    let b = v * mult as f64;
    anyhow::ensure!(
        b.is_finite() && b >= 0.0 && b < u64::MAX as f64,
        "byte count {s:?} is out of range"
    );
    Ok(b.round() as u64)
}

/// Parses `--aux-budget`: bytes, or a multiple of the default written `2x`.
pub fn parse_budget(s: &str) -> Result<stdl_models::preset::Budget> {
    use stdl_models::preset::Budget;
    if let Ok(b) = parse_bytes(s) {
        return Ok(Budget::Bytes(b));
    }
    let b = Budget::Multiple(s.to_owned());
    b.resolve(1).map_err(anyhow::Error::msg)?;
    Ok(b)
}

/// One epoch's metrics (one line of `metrics.jsonl`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean readout loss over training batches.
    pub train_loss: f32,
    /// Training accuracy (summed readout logits).
    pub train_accuracy: f32,
    /// Test loss (CE of the mean readout logits).
    pub test_loss: f32,
    /// Test accuracy.
    pub test_accuracy: f32,
    /// Seconds of this epoch (training + test).
    pub seconds: f64,
    /// Peak resident memory of the process so far.
    pub peak_rss_bytes: u64,
}

/// Peak resident set size of this process (`VmHWM`), or 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    crate::heap::proc_status_bytes("VmHWM:")
}

/// Accuracy and loss of a model on a set of samples, read by a [`crate::data::Loader`] `batch` at a time
/// and binned into `t_bins` steps as they are learned.
///
/// # Errors
/// A sample that cannot be read.
pub fn evaluate(model: &mut Model, set: &SampleSet, t_bins: usize, batch: usize) -> Result<(f32, f32)> {
    let (mut correct, mut loss) = (0usize, 0.0f64);
    for b in set.loader((0..set.len()).collect(), batch) {
        stop_if_interrupted("evaluating")?;
        let b = b?;
        let labels = b.labels();
        let sum = model.infer_batch(t_bins, |t| b.step(t, t_bins, set.dims));
        correct += argmax(&sum).iter().zip(&labels).filter(|(a, b)| a == b).count();
        let mut mean = sum;
        mean.data.iter_mut().for_each(|v| *v /= t_bins as f32);
        loss += cross_entropy(&mean, &labels, 1.0).0 as f64 * labels.len() as f64;
    }
    Ok((
        correct as f32 / set.len().max(1) as f32,
        (loss / set.len().max(1) as f64) as f32,
    ))
}

/// An error once Ctrl-C or SIGTERM asked to stop (where a handler is installed: `train`).
pub fn stop_if_interrupted(doing: &str) -> Result<()> {
    if crate::runtime::interrupt::requested() {
        bail!("interrupted while {doing}");
    }
    Ok(())
}

/// Training state saved with each checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Epochs completed.
    pub epoch: usize,
    /// The configuration.
    pub config: TrainConfig,
    /// Metrics so far.
    pub metrics: Vec<EpochMetrics>,
}

/// Writes `OUT/checkpoint/{model,optimizer}.safetensors`, `preset.toml` and, last,
/// `state.json` (each atomically; `state.json` names the completed epoch).
pub fn save_checkpoint(dir: &Path, model: &Model, preset: &Preset, state: &CheckpointState) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // All written before any replaces its predecessor: a failure keeps the last checkpoint.
    let mut files = crate::store::FileSet::default();
    files.tensors(&dir.join("model.safetensors"), &model.named_params())?;
    files.tensors(&dir.join("optimizer.safetensors"), &model.optimizer_state())?;
    files.bytes(&dir.join("preset.toml"), preset.to_toml().as_bytes())?;
    files.json(&dir.join("state.json"), state)?;
    files.commit()
}

/// Loads a checkpoint directory: the state, the preset, and a model with its weights.
pub fn load_checkpoint(dir: &Path, with_optimizer: bool) -> Result<(CheckpointState, Preset, Model)> {
    let state_path = dir.join("state.json");
    if let Ok(v) = crate::store::read_json::<serde_json::Value>(&state_path) {
        if v.get("steps").is_some() && v.get("epoch").is_none() {
            bail!(
                "{} is a stream checkpoint (`stdl stream --checkpoint-dir`); `eval` takes the \
                 OUT/checkpoint directory of `stdl train`, and a stream checkpoint streams with \
                 `stdl stream --checkpoint {}`",
                dir.display(),
                dir.display()
            );
        }
    }
    let state: CheckpointState = crate::store::read_json(&state_path).with_context(|| {
        format!(
            "{} is not a `stdl train` checkpoint (the OUT/checkpoint directory of a `stdl train \
             --out OUT` run)",
            dir.display()
        )
    })?;
    let preset = Preset::load(&dir.join("preset.toml").to_string_lossy())?;
    let mut model = Model::build(&state.config, &preset)?;
    model.load_params(&crate::store::load_tensors(&dir.join("model.safetensors"))?)?;
    if with_optimizer {
        model.load_optimizer_state(&crate::store::load_tensors(&dir.join("optimizer.safetensors"))?);
    }
    Ok((state, preset, model))
}

/// The final summary written to `OUT/result.json`.
#[derive(Clone, Debug, Serialize)]
pub struct TrainResult {
    /// Final test accuracy.
    pub test_accuracy: f32,
    /// Final training accuracy.
    pub train_accuracy: f32,
    /// Best test accuracy over epochs.
    pub best_test_accuracy: f32,
    /// Epochs run.
    pub epochs: usize,
    /// Method.
    pub method: Method,
    /// Seconds of training (all epochs, this run and resumed ones).
    pub seconds: f64,
    /// Peak resident memory.
    pub peak_rss_bytes: u64,
    /// Preset name.
    pub preset: String,
    /// Seed.
    pub seed: u64,
    /// Training and test samples.
    pub samples: [usize; 2],
}

/// Runs training from `cfg` (or resumes from `OUT/checkpoint`, whose saved configuration
/// wins except for `epochs_override`), writing metrics, plots, checkpoints and the result
/// under `out`. `progress` is called once per batch.
pub fn train(
    cfg: TrainConfig,
    out: &Path,
    resume: bool,
    epochs_override: Option<usize>,
    mut progress: impl FnMut(usize, usize, usize),
) -> Result<TrainResult> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // One run per output directory: a second one fails here, before it could overwrite.
    let _lock = crate::store::DirLock::acquire(out)?;
    let ckpt = out.join("checkpoint");
    let (mut cfg, preset, mut model, mut metrics, start_epoch) = if resume && ckpt.join("state.json").exists()
    {
        let (state, preset, model) = load_checkpoint(&ckpt, true)?;
        eprintln!("resuming from {} after epoch {}", ckpt.display(), state.epoch);
        (state.config, preset, model, state.metrics, state.epoch)
    } else {
        if resume {
            eprintln!("no checkpoint in {}; starting fresh", ckpt.display());
        }
        let preset = Preset::load(&cfg.preset)?;
        let model = Model::build(&cfg, &preset)?;
        (cfg.clone(), preset, model, Vec::new(), 0)
    };
    if let Some(e) = epochs_override {
        cfg.epochs = e;
    }
    cfg.epochs = cfg.epochs.max(start_epoch);
    let ds = Dataset::open(&cfg.dataset, &cfg.root)?;
    stop_if_interrupted("listing the dataset")?;
    let dims = Dims::new(preset.input[0], preset.input[1], preset.input[2]);
    let limit = |v: &[Sample]| -> Vec<Sample> {
        v.iter()
            .take(cfg.limit_samples.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    };
    let (train_s, test_s) = (limit(ds.split(Split::Train)), limit(ds.split(Split::Test)));
    if train_s.is_empty() {
        bail!("no training samples in {}", cfg.root.display());
    }
    // Samples are read per epoch by a loader thread and binned per step as they are learned:
    // neither T nor the dataset's size sets the memory (src/data.rs).
    let ds = Arc::new(ds);
    let train_set = SampleSet::new(ds.clone(), train_s, dims);
    let test_set = SampleSet::new(ds, test_s, dims);
    train_set.check_labels(preset.classes, &preset.name)?;
    test_set.check_labels(preset.classes, &preset.name)?;
    // Both convolution paths' buffers before the first batch: the steady state from the start
    // (no number changes; tests/all/stream.rs).
    if let Model::Stdl(m) = &mut model {
        let pipelined = m.pipeline.then_some(crate::runtime::stream::PIPELINE_QUEUE);
        m.warm_up(cfg.batch, pipelined);
    }
    stop_if_interrupted("preparing the model")?;
    for epoch in start_epoch..cfg.epochs {
        let t0 = Instant::now();
        model.set_lr(cfg.lr_schedule.lr(cfg.optimizer.lr, epoch, cfg.epochs));
        let mut order: Vec<usize> = (0..train_set.len()).collect();
        Rng::new(cfg.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9)).shuffle(&mut order);
        let (mut correct, mut loss_sum, mut batches) = (0usize, 0.0f64, 0usize);
        let n_batches = order.len().div_ceil(cfg.batch);
        // What is kept when this epoch does not complete.
        let kept = || {
            if epoch == 0 {
                "nothing was saved".to_string()
            } else {
                format!(
                    "{} holds epoch {epoch}, and `--resume` continues from it",
                    ckpt.display()
                )
            }
        };
        for (bi, b) in train_set.loader(order, cfg.batch).enumerate() {
            if crate::runtime::interrupt::requested() {
                // Between two batches (a batch's sequence also ends early on Ctrl-C): the
                // checkpoint keeps the last completed epoch.
                bail!(
                    "interrupted in epoch {} (batch {} of {n_batches}); {}",
                    epoch + 1,
                    bi + 1,
                    kept()
                );
            }
            let b = b?;
            let labels = b.labels();
            let (sum, loss) = model.train_batch(cfg.t_bins, |t| b.step(t, cfg.t_bins, dims), &labels);
            if !loss.is_finite() || model.diverged() {
                // The weights are lost from here on; the last checkpoint (if any) is kept.
                bail!(
                    "training diverged (loss {loss}, weights finite: {}) at epoch {} batch {} of \
                     {n_batches}; lower the learning rate (now {}); {}",
                    !model.diverged(),
                    epoch + 1,
                    bi + 1,
                    cfg.lr_schedule.lr(cfg.optimizer.lr, epoch, cfg.epochs),
                    kept()
                );
            }
            correct += argmax(&sum).iter().zip(&labels).filter(|(a, b)| a == b).count();
            loss_sum += loss as f64;
            batches += 1;
            progress(epoch + 1, bi + 1, n_batches);
        }
        let (test_accuracy, test_loss) = if test_set.is_empty() {
            (0.0, 0.0)
        } else {
            evaluate(&mut model, &test_set, cfg.t_bins, cfg.batch)
                .with_context(|| format!("epoch {} not completed; {}", epoch + 1, kept()))?
        };
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: (loss_sum / batches.max(1) as f64) as f32,
            train_accuracy: correct as f32 / train_set.len() as f32,
            test_loss,
            test_accuracy,
            seconds: t0.elapsed().as_secs_f64(),
            peak_rss_bytes: peak_rss_bytes(),
        };
        metrics.push(m);
        save_checkpoint(
            &ckpt,
            &model,
            &preset,
            &CheckpointState {
                epoch: epoch + 1,
                config: cfg.clone(),
                metrics: metrics.clone(),
            },
        )?;
        // After the checkpoint, from the epochs it holds: metrics.jsonl never names an epoch
        // the checkpoint does not, and a resume does not repeat one.
        let mut lines = String::new();
        for m in &metrics {
            lines.push_str(&serde_json::to_string(m)?);
            lines.push('\n');
        }
        crate::store::write_atomic(out.join("metrics.jsonl"), lines.as_bytes())?;

        if let Err(e) = crate::viz::plot_metrics(
            &out.join("metrics.png"),
            &metrics,
            &format!("{} {}", preset.name, cfg.method),
        ) {
            eprintln!("warning: {e:#} (metrics.jsonl has the figures)");
        }
    }
    let last = metrics.last().cloned().context("no epoch was run")?;
    let result = TrainResult {
        test_accuracy: last.test_accuracy,
        train_accuracy: last.train_accuracy,
        best_test_accuracy: metrics.iter().map(|m| m.test_accuracy).fold(0.0, f32::max),
        epochs: metrics.len(),
        method: cfg.method,
        seconds: metrics.iter().map(|m| m.seconds).sum(),
        peak_rss_bytes: peak_rss_bytes(),
        preset: preset.name.clone(),
        seed: cfg.seed,
        samples: [train_set.len(), test_set.len()],
    };
    crate::store::write_json(&out.join("result.json"), &result)?;
    Ok(result)
}
