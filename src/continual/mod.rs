//! Continual learning: tasks streamed one after another and learned online, with the
//! accuracy matrix and the usual summaries (average accuracy, forgetting, backward and
//! forward transfer), and an optional reservoir replay buffer of fixed size in bytes.
//!
//! Protocols (van de Ven & Tolias, "Three scenarios for continual learning", 2019):
//! - **class-incremental**: one head over every class of the experiment; a sample is
//!   classified among all of them, without being told its task;
//! - **domain-incremental**: every task has the same label space, a class's position in its
//!   task (`0,1/2,3/...` becomes "first or second of the pair"); the head has as many outputs
//!   as the largest task;
//! - **task-incremental**: one head over all classes, but a test sample is classified among
//!   its own task's classes only (the task is given at test time, as a multi-head network's
//!   head would be chosen); training is the same as class-incremental (no masking).
//!
//! Training is one pass over each task's stream by default (`epochs_per_task = 1`), every
//! batch learned online exactly as `stdl train` does (STDL: every subnetwork updated after
//! every time step). After each task, every task's test samples are evaluated: row `i` of the
//! matrix is the accuracy on each task after learning task `i`.

use std::time::Instant;

use crate::error::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use stdl_io::datasets::{Dataset, Sample, Split};
use stdl_models::{Dims, Rng, Tensor};

use crate::data::{step_of_rows, Row, SampleSet};
use crate::heap::peak_rss_bytes;
use crate::model::Model;

pub mod config;
pub mod metrics;
pub mod replay;
pub use config::{parse_learner, parse_tasks, ContinualConfig, Protocol};
pub use metrics::{avalanche_metrics, summarize};
pub use replay::{ReplayBuffer, SegmentReplay, SegmentReplayStats};

/// Replay buffer figures of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplayStats {
    /// The budget asked for.
    pub budget_bytes: u64,
    /// Bytes charged per sample.
    pub bytes_per_sample: usize,
    /// Samples it can hold.
    pub capacity_samples: usize,
    /// Samples held at the end.
    pub held_samples: usize,
    /// Samples held at the end, per class of the experiment.
    pub held_per_class: Vec<(usize, usize)>,
    /// Bytes allocated.
    pub allocated_bytes: usize,
}

/// Results of a continual-learning run (`continual.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContinualResult {
    /// The settings.
    pub config: ContinualConfig,
    /// `accuracy_matrix[i][j]`: accuracy on task `j`'s test samples after learning task `i`.
    pub accuracy_matrix: Vec<Vec<f32>>,
    /// Accuracy on each task before any learning (the baseline of forward transfer).
    pub initial_accuracy: Vec<f32>,
    /// Accuracy on each task's training stream while it was learned (predicted before each
    /// batch's update within the same pass: the online, prequential figure).
    pub stream_accuracy: Vec<f32>,
    /// Mean of the last row: accuracy over all tasks at the end.
    pub average_accuracy: f32,
    /// Mean over all but the last task of (best earlier accuracy − final accuracy)
    /// (Chaudhry et al. 2018).
    pub forgetting: f32,
    /// Mean over all but the last task of (final accuracy − accuracy right after learning it)
    /// (Lopez-Paz & Ranzato 2017); negative means forgetting.
    pub backward_transfer: f32,
    /// Mean over all but the first task of (accuracy just before learning it − initial
    /// accuracy) (Lopez-Paz & Ranzato 2017).
    pub forward_transfer: f32,
    /// Outputs the prediction is taken over (the experiment's label space).
    pub label_space: usize,
    /// Chance accuracy of that label space.
    pub chance: f32,
    /// Training and test samples of each task.
    pub samples_per_task: Vec<[usize; 2]>,
    /// Replay buffer, when used.
    pub replay: Option<ReplayStats>,
    /// The same run under Avalanche's metric names and definitions
    /// ([`metrics::avalanche_metrics`]).
    #[serde(default)]
    pub avalanche: std::collections::BTreeMap<String, f32>,
    /// Tasks learned and measured in full: all of them, unless the run was interrupted.
    #[serde(default)]
    pub tasks_learned: usize,
    /// Ctrl-C or SIGTERM ended the run early: the matrix has `tasks_learned` rows, and the
    /// summary figures are those of the experiment made of the first `tasks_learned` tasks.
    #[serde(default)]
    pub interrupted: bool,
    /// Seconds, all tasks.
    pub seconds: f64,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: u64,
}

/// Index of the largest of `cols` in each row of `logits`.
fn masked_argmax(logits: &Tensor, cols: &[usize]) -> Vec<usize> {
    let c = logits.dims.len();
    logits
        .data
        .chunks(c)
        .map(|row| {
            *cols
                .iter()
                .max_by(|&&a, &&b| row[a].total_cmp(&row[b]))
                .expect("a non-empty label space")
        })
        .collect()
}

/// Accuracy on samples `idx` of `set`, whose labels map through `target`, predicting among
/// `cols`.
fn accuracy(
    model: &mut Model,
    set: &SampleSet,
    idx: &[usize],
    cols: &[usize],
    target: &[usize],
    t_bins: usize,
    batch: usize,
) -> Result<f32> {
    if idx.is_empty() {
        return Ok(0.0);
    }
    let mut correct = 0;
    for b in set.loader(idx.to_vec(), batch) {
        let b = b?;
        let pred = masked_argmax(&model.infer_batch(t_bins, |t| b.step(t, t_bins, set.dims)), cols);
        correct += pred
            .iter()
            .zip(&b.samples)
            .filter(|(p, s)| **p == target[s.label])
            .count();
    }
    Ok(correct as f32 / idx.len() as f32)
}

/// Samples of a split whose class is in the experiment, at most `cap` per class, in the
/// dataset's order.
fn select(samples: &[Sample], classes: &[usize], cap: Option<usize>) -> Vec<Sample> {
    let mut taken = std::collections::BTreeMap::<usize, usize>::new();
    samples
        .iter()
        .filter(|s| classes.contains(&s.label))
        .filter(|s| {
            let n = taken.entry(s.label).or_default();
            *n += 1;
            *n <= cap.unwrap_or(usize::MAX)
        })
        .cloned()
        .collect()
}

/// Runs the experiment. `progress(task, batch, batches)` is called once per batch.
pub fn run(cfg: ContinualConfig, mut progress: impl FnMut(usize, usize, usize)) -> Result<ContinualResult> {
    cfg.validate().map_err(crate::error::Error::msg)?;
    let t0 = Instant::now();
    let preset = cfg.learn.load_preset()?;
    let ds = Dataset::open(&cfg.learn.dataset, &cfg.learn.root)?;
    let all: Vec<usize> = cfg.tasks.iter().flatten().copied().collect();
    if let Some(&c) = all.iter().find(|&&c| c >= ds.classes.len()) {
        bail!(
            "class {c} is not in {} ({} classes: 0..{})",
            ds.name,
            ds.classes.len(),
            ds.classes.len() - 1
        );
    }
    let label_space = match cfg.protocol {
        Protocol::Class | Protocol::Task => ds.classes.len(),
        Protocol::Domain => cfg.tasks.iter().map(Vec::len).max().unwrap_or(0),
    };
    ensure!(
        label_space <= preset.classes,
        "preset {} has {} outputs; this experiment needs {label_space}",
        preset.name,
        preset.classes
    );
    // Where each class's label goes, and the outputs predictions are taken over.
    let mut target = vec![usize::MAX; ds.classes.len()];
    for task in &cfg.tasks {
        for (pos, &c) in task.iter().enumerate() {
            target[c] = match cfg.protocol {
                Protocol::Class | Protocol::Task => c,
                Protocol::Domain => pos,
            };
        }
    }
    // The outputs each task's samples are classified among.
    let cols: Vec<Vec<usize>> = cfg
        .tasks
        .iter()
        .map(|task| match cfg.protocol {
            Protocol::Class => {
                let mut v = all.clone();
                v.sort_unstable();
                v
            }
            Protocol::Domain => (0..label_space).collect(),
            Protocol::Task => {
                let mut v = task.clone();
                v.sort_unstable();
                v
            }
        })
        .collect();
    let dims = Dims::new(preset.input[0], preset.input[1], preset.input[2]);
    let train_s = select(ds.split(Split::Train), &all, cfg.samples_per_class);
    let test_s = select(ds.split(Split::Test), &all, cfg.samples_per_class);
    // Samples are read by a loader thread and binned per step as they are learned
    // (src/data.rs): neither T nor the dataset's size sets the memory.
    let ds = std::sync::Arc::new(ds);
    let train_set = SampleSet::new(ds.clone(), train_s, dims);
    let test_set = SampleSet::new(ds, test_s, dims);
    let class_of_train = train_set.labels();
    let class_of_test = test_set.labels();
    let per_task = |classes: &[usize], of: &[usize]| -> Vec<usize> {
        (0..of.len()).filter(|&i| classes.contains(&of[i])).collect()
    };
    let train_idx: Vec<Vec<usize>> = cfg.tasks.iter().map(|t| per_task(t, &class_of_train)).collect();
    let test_idx: Vec<Vec<usize>> = cfg.tasks.iter().map(|t| per_task(t, &class_of_test)).collect();
    for (k, (tr, te)) in train_idx.iter().zip(&test_idx).enumerate() {
        ensure!(
            !tr.is_empty() && !te.is_empty(),
            "task {k} (classes {:?}) has {} training and {} test samples in {}; every task needs both",
            cfg.tasks[k],
            tr.len(),
            te.len(),
            cfg.learn.root.display()
        );
    }

    let mut model = Model::build(&cfg.learn.model_settings(false), &preset)?;
    if cfg.strategy.kind != crate::stdl::StrategyKind::Naive {
        match &mut model {
            Model::Stdl(m) => m.set_strategy(&cfg.strategy),
            Model::Bptt(_) => bail!(
                "--strategy {} acts inside STDL's per-step updates; use --method stdl",
                cfg.strategy.kind
            ),
        }
    }
    let item_bytes = cfg.learn.t_bins * dims.len();
    let mut replay = if cfg.replay_bytes > 0 {
        Some(ReplayBuffer::new(cfg.replay_bytes, item_bytes, cfg.learn.seed)?)
    } else {
        None
    };

    let eval_all = |model: &mut Model| -> Result<Vec<f32>> {
        test_idx
            .iter()
            .zip(&cols)
            .map(|(idx, cols)| {
                accuracy(
                    model,
                    &test_set,
                    idx,
                    cols,
                    &target,
                    cfg.learn.t_bins,
                    cfg.learn.batch,
                )
            })
            .collect()
    };
    let initial_accuracy = eval_all(&mut model)?;
    crate::train::stop_if_interrupted("measuring the accuracy before learning")?;
    let mut matrix = Vec::with_capacity(cfg.tasks.len());
    let mut stream_accuracy = Vec::with_capacity(cfg.tasks.len());
    let mut rng = Rng::new(cfg.learn.seed ^ 0xC0_47_1A_0A);
    // Ctrl-C ends the run after the batch in flight; the result then covers the tasks learned
    // and measured in full (a task cut short, or its measurement, is left out).
    let stop = crate::interrupt::requested;
    'tasks: for (k, idx) in train_idx.iter().enumerate() {
        let mut order = idx.clone();
        let (mut correct, mut seen) = (0usize, 0usize);
        let n_batches = order.len().div_ceil(cfg.learn.batch) * cfg.epochs_per_task;
        let mut b = 0;
        for pass in 0..cfg.epochs_per_task {
            rng.shuffle(&mut order);
            for batch in train_set.loader(order.clone(), cfg.learn.batch) {
                let batch = batch?;
                let n = batch.samples.len();
                let mut rows = batch.rows();
                let mut labels: Vec<usize> = batch.samples.iter().map(|s| target[s.label]).collect();
                let picked = match replay.as_mut() {
                    Some(buf) => buf.sample(n),
                    None => Vec::new(),
                };
                if let Some(buf) = replay.as_ref() {
                    rows.extend(picked.iter().map(|&j| Row::Counts(buf.item(j))));
                    labels.extend(picked.iter().map(|&j| buf.label(j)));
                }
                let (sum, _loss) = model.train_batch(
                    cfg.learn.t_bins,
                    |t| step_of_rows(&rows, t, cfg.learn.t_bins, dims),
                    &labels,
                );
                let pred = masked_argmax(&sum, &cols[k]);
                correct += pred[..n].iter().zip(&labels[..n]).filter(|(a, b)| a == b).count();
                seen += n;
                if pass == 0 {
                    if let Some(buf) = replay.as_mut() {
                        for s in &batch.samples {
                            buf.offer_with(target[s.label], |slot| {
                                s.write_counts(cfg.learn.t_bins, dims.len(), slot)
                            });
                        }
                    }
                }
                b += 1;
                progress(k, b, n_batches);
                if stop() {
                    break 'tasks;
                }
            }
        }
        let row = eval_all(&mut model)?;
        if stop() {
            break;
        }
        stream_accuracy.push(correct as f32 / seen.max(1) as f32);
        matrix.push(row);
    }
    let learned = matrix.len();
    let interrupted = learned < cfg.tasks.len();
    ensure!(
        learned > 0,
        "interrupted while learning task 0; no task was learned in full, nothing to report"
    );
    // Interrupted: the figures of the experiment made of the tasks learned (the square
    // top-left block of the matrix); the full rows are kept.
    let block: Vec<Vec<f32>> = matrix.iter().map(|r| r[..learned].to_vec()).collect();
    let (average_accuracy, forgetting, backward_transfer, forward_transfer) =
        summarize(&block, &initial_accuracy[..learned]);
    let test_counts: Vec<usize> = test_idx.iter().map(Vec::len).collect();
    let task_labels: Vec<usize> = (0..cfg.tasks.len())
        .map(|j| if cfg.protocol == Protocol::Task { j } else { 0 })
        .collect();
    let avalanche = avalanche_metrics(&block, &initial_accuracy[..learned], &test_counts, &task_labels);
    let replay = replay.map(|buf| {
        let mut held = std::collections::BTreeMap::<usize, usize>::new();
        for i in 0..buf.len() {
            *held.entry(buf.label(i)).or_default() += 1;
        }
        ReplayStats {
            budget_bytes: cfg.replay_bytes,
            bytes_per_sample: ReplayBuffer::bytes_per_sample(item_bytes),
            capacity_samples: buf.capacity(),
            held_samples: buf.len(),
            held_per_class: held.into_iter().collect(),
            allocated_bytes: buf.allocated_bytes(),
        }
    });
    Ok(ContinualResult {
        accuracy_matrix: matrix,
        initial_accuracy,
        stream_accuracy,
        average_accuracy,
        forgetting,
        backward_transfer,
        forward_transfer,
        label_space: cols[0].len(),
        chance: 1.0 / cols[0].len() as f32,
        samples_per_task: train_idx
            .iter()
            .zip(&test_idx)
            .map(|(a, b)| [a.len(), b.len()])
            .collect(),
        replay,
        avalanche,
        tasks_learned: learned,
        interrupted,
        seconds: t0.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
        config: cfg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_parse_and_reject() {
        assert_eq!(parse_tasks("0,1/2,3").unwrap(), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(parse_tasks(" 4 / 5,6 ").unwrap(), vec![vec![4], vec![5, 6]]);
        for bad in ["0,1", "0,1/1,2", "0,,1/2", "a/b", "0,1/"] {
            assert!(parse_tasks(bad).is_err(), "{bad} accepted");
        }
    }
}
