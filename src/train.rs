//! The training loop on event datasets: epochs of shuffled batches, evaluation, a checkpoint
//! after every epoch ([`crate::checkpoint`]) and the run's result. Plots are the caller's
//! (`stdl train` draws `metrics.png` from each epoch's metrics).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::error::{bail, Context, Error, Result};
use serde::Serialize;
use stdl_io::datasets::{Dataset, Sample, Split};
use stdl_models::loss::{argmax, cross_entropy};
use stdl_models::{Dims, Rng};

pub use crate::checkpoint::EpochMetrics;
use crate::checkpoint::{CheckpointState, Progress};
pub use crate::config::{LrSchedule, TrainConfig};
use crate::data::SampleSet;
use crate::heap::peak_rss_bytes;
pub use crate::model::{Method, Model};
use crate::stdl::PIPELINE_QUEUE;

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
    if crate::interrupt::requested() {
        return Err(Error::Interrupted(format!("interrupted while {doing}")));
    }
    Ok(())
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

/// The order in which `stdl train --seed SEED` visits `n` training samples in 0-based
/// `epoch` (a fresh shuffle per epoch). The Python package exposes it, so that a loop over
/// `stdl.Learner` repeats a command-line run sample for sample.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9)).shuffle(&mut order);
    order
}

/// Runs training from `cfg` (or resumes from `OUT/checkpoint`, whose saved configuration
/// and preset win except for `epochs_override`), writing `metrics.jsonl`,
/// checkpoints and `result.json` under `out`. `progress` is called once per batch with
/// (epoch, batch, batches), `on_epoch` after each epoch's checkpoint with the metrics so far.
///
/// # Errors
/// An invalid configuration, an unreadable dataset or checkpoint, training that diverged,
/// Ctrl-C, or a file that cannot be written; the last completed epoch's checkpoint is kept.
pub fn train(
    cfg: TrainConfig,
    out: &Path,
    resume: bool,
    epochs_override: Option<usize>,
    mut progress: impl FnMut(usize, usize, usize),
    mut on_epoch: impl FnMut(&[EpochMetrics]),
) -> Result<TrainResult> {
    cfg.validate().map_err(crate::error::Error::msg)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // One run per output directory: a second one fails here, before it could overwrite.
    let _lock = crate::store::DirLock::acquire(out)?;
    let ckpt = out.join("checkpoint");
    let (mut cfg, preset, mut model, mut metrics, start_epoch) = if resume && ckpt.join("state.json").exists()
    {
        let loaded = crate::checkpoint::load(&ckpt, true)?;
        let Progress::Train {
            epoch,
            config,
            metrics,
        } = loaded.state.progress
        else {
            bail!(
                "{} holds a stream checkpoint; `--resume` continues a `stdl train` run",
                ckpt.display()
            );
        };
        eprintln!("resuming from {} after epoch {epoch}", ckpt.display());
        (config, loaded.preset, loaded.model, metrics, epoch)
    } else {
        if resume {
            eprintln!("no checkpoint in {}; starting fresh", ckpt.display());
        }
        let preset = cfg.learn.load_preset()?;
        let model = Model::build(&cfg.model_settings(), &preset)?;
        (cfg, preset, model, Vec::new(), 0)
    };
    if let Some(e) = epochs_override {
        cfg.epochs = e;
    }
    cfg.epochs = cfg.epochs.max(start_epoch);
    // The run's settings beside it: `stdl train --config OUT/config.toml` repeats it.
    crate::store::write_config(&out.join("config.toml"), &cfg)?;
    let ds = Dataset::open(&cfg.learn.dataset, &cfg.learn.root)?;
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
        bail!("no training samples in {}", cfg.learn.root.display());
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
    let _fit = stdl_models::pool::FitScope::enter(model.pool_fit());
    if let Model::Stdl(m) = &mut model {
        let pipelined = m.pipeline.then_some(PIPELINE_QUEUE);
        m.warm_up(cfg.learn.batch, pipelined);
    }
    stop_if_interrupted("preparing the model")?;
    for epoch in start_epoch..cfg.epochs {
        let t0 = Instant::now();
        model.set_lr(cfg.lr_schedule.lr(cfg.learn.optimizer.lr, epoch, cfg.epochs));
        let order = epoch_order(train_set.len(), cfg.learn.seed, epoch);
        let (mut correct, mut loss_sum, mut batches) = (0usize, 0.0f64, 0usize);
        let n_batches = order.len().div_ceil(cfg.learn.batch);
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
        let loaded = train_set
            .loader(order, cfg.learn.batch)
            .enumerate()
            .map(|(bi, b)| {
                if crate::interrupt::requested() {
                    // Between two batches (a batch's sequence also ends early on Ctrl-C): the
                    // checkpoint keeps the last completed epoch.
                    return Err(Error::Interrupted(format!(
                        "interrupted in epoch {} (batch {} of {n_batches}); {}",
                        epoch + 1,
                        bi + 1,
                        kept()
                    )));
                }
                let b = b?;
                let labels = b.labels();
                Ok((b, labels))
            });
        // With --pipeline, the next batch starts while this one finishes (the same numbers).
        let t_bins = cfg.learn.t_bins;
        model.train_batches(
            t_bins,
            loaded,
            |b, t| b.step(t, t_bins, dims),
            |r| {
                if !r.loss.is_finite() || r.diverged {
                    // The weights are lost from here on; the last checkpoint (if any) is kept.
                    return Err(Error::Diverged(format!(
                        "training diverged (loss {}, weights finite: {}) at epoch {} batch {} of \
                         {n_batches}; lower the learning rate (now {}); {}",
                        r.loss,
                        !r.diverged,
                        epoch + 1,
                        batches + 1,
                        cfg.lr_schedule.lr(cfg.learn.optimizer.lr, epoch, cfg.epochs),
                        kept()
                    )));
                }
                correct += argmax(&r.logits)
                    .iter()
                    .zip(&r.labels)
                    .filter(|(a, b)| a == b)
                    .count();
                loss_sum += r.loss as f64;
                batches += 1;
                progress(epoch + 1, batches, n_batches);
                Ok(())
            },
        )?;
        let (test_accuracy, test_loss) = if test_set.is_empty() {
            (0.0, 0.0)
        } else {
            evaluate(&mut model, &test_set, cfg.learn.t_bins, cfg.learn.batch)
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
        let state = CheckpointState::new(
            &preset.name,
            cfg.model_settings(),
            Progress::Train {
                epoch: epoch + 1,
                config: cfg.clone(),
                metrics: metrics.clone(),
            },
        );
        crate::checkpoint::save(
            &ckpt,
            &model.named_params(),
            &model.optimizer_state(),
            &preset,
            &state,
        )?;
        // After the checkpoint, from the epochs it holds: metrics.jsonl never names an epoch
        // the checkpoint does not, and a resume does not repeat one.
        let mut lines = String::new();
        for m in &metrics {
            lines.push_str(&serde_json::to_string(m)?);
            lines.push('\n');
        }
        crate::store::write_atomic(out.join("metrics.jsonl"), lines.as_bytes())?;
        on_epoch(&metrics);
    }
    let last = metrics.last().cloned().context("no epoch was run")?;
    let result = TrainResult {
        test_accuracy: last.test_accuracy,
        train_accuracy: last.train_accuracy,
        best_test_accuracy: metrics.iter().map(|m| m.test_accuracy).fold(0.0, f32::max),
        epochs: metrics.len(),
        method: cfg.learn.method,
        seconds: metrics.iter().map(|m| m.seconds).sum(),
        peak_rss_bytes: peak_rss_bytes(),
        preset: preset.name.clone(),
        seed: cfg.learn.seed,
        samples: [train_set.len(), test_set.len()],
    };
    crate::store::write_json(&out.join("result.json"), &result)?;
    Ok(result)
}
