//! Class-incremental learning on one event stream, built in (`stdl demo continual`): the
//! synthetic scene's directions arrive in phases (by default 0–3, then 4–7, then 8–10) and
//! are learned online, bin by bin, with STDL. The learner is never told where a phase ends
//! (task-free); the phases exist only for evaluation. Every `probe_every` steps, and at the
//! end of every phase, learning pauses and the learner is tested on a held-out probe stream
//! (another seed) of every class: each probe segment runs as its own sequence with the live
//! membranes set aside ([`crate::stdl::StepContext`]), so testing changes nothing in what is
//! learned. Accuracy is per step (the arg-max of each step's readout against the segment's
//! class), over all 11 outputs.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::error::{ensure, Result};
use serde::{Deserialize, Serialize};
use stdl_io::frames::{Channels, Geometry};
use stdl_io::sources::{SyntheticConfig, SyntheticScene};
use stdl_io::SensorSize;
use stdl_models::loss::argmax;
use stdl_models::{Dims, Preset, Tensor};

use crate::continual::metrics::{avalanche_metrics, summarize};
use crate::continual::SegmentReplayStats;
use crate::runtime::replay::{ReplaySettings, StreamReplay};
use crate::stdl::{StdlModel, StepContext, StrategyConfig, StrategyKind};

/// Time bin of the stream (10 ms, as the demo).
pub const BIN_US: u64 = 10_000;

/// Settings of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SceneConfig {
    /// Classes of each phase, in order.
    pub phases: Vec<Vec<usize>>,
    /// Live steps (10 ms bins) per phase.
    pub steps_per_phase: u64,
    /// Live steps between two probes within a phase.
    pub probe_every: u64,
    /// Probe segments per class.
    pub probe_segments: usize,
    /// Steps per probe segment.
    pub probe_steps: usize,
    /// Duration of a training segment (one direction), milliseconds.
    pub segment_ms: u64,
    /// Seed of the stream, the probe stream (seed + 1000) and the network.
    pub seed: u64,
    /// Learning rate (Adam).
    pub lr: f32,
    /// Network preset (11 outputs at least).
    pub preset: String,
    /// Replay inside the stream.
    pub replay: Option<ReplaySettings>,
    /// Strategy of every stage.
    pub strategy: StrategyConfig,
}

impl Default for SceneConfig {
    fn default() -> Self {
        Self {
            phases: vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9, 10]],
            steps_per_phase: 6000,
            probe_every: 1000,
            probe_segments: 4,
            probe_steps: 25,
            segment_ms: 100,
            seed: 0,
            lr: 1e-3,
            preset: "demo".into(),
            replay: None,
            strategy: StrategyConfig::default(),
        }
    }
}

impl SceneConfig {
    /// Checks the settings against themselves.
    ///
    /// # Errors
    /// Fewer than two phases, a class in two phases, no steps, probes or segments.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.phases.len() >= 2,
            "continual learning needs at least two phases"
        );
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.phases {
            ensure!(!p.is_empty(), "a phase without classes");
            for &c in p {
                ensure!(seen.insert(c), "class {c} is in more than one phase");
            }
        }
        ensure!(
            self.steps_per_phase > 0
                && self.probe_every > 0
                && self.probe_segments > 0
                && self.probe_steps > 0,
            "steps per phase, probe interval, probe segments and probe steps must be at least 1"
        );
        ensure!(
            self.segment_ms > 0 && (self.segment_ms * 1000) % BIN_US == 0,
            "a training segment must be a whole number of 10 ms bins"
        );
        self.strategy.validate().map_err(crate::error::Error::msg)
    }
}

/// The held-out probe stream: for each class, `probe_segments` segments of `probe_steps`
/// bins, made once and shared by every run.
#[derive(Debug)]
pub struct Probe {
    /// `bins[class][segment][step]`.
    bins: Vec<Vec<Vec<Tensor>>>,
}

/// The scene at the preset's input size: 128×128 events resized onto `dims`.
fn scene_and_geometry(
    seed: u64,
    segment_ms: u64,
    classes: usize,
    dims: Dims,
) -> Result<(SyntheticScene, Geometry)> {
    let cfg = SyntheticConfig {
        seed,
        segment_us: segment_ms * 1000,
        classes,
        ..Default::default()
    };
    let geom = Geometry::resized(
        cfg.size,
        SensorSize::new(dims.w as u16, dims.h as u16),
        Channels::Split,
    )?;
    Ok((SyntheticScene::new(cfg), geom))
}

/// The next 10 ms bin of `scene` and the label at its middle.
fn next_bin(scene: &mut SyntheticScene, geom: &Geometry, dims: Dims) -> (Tensor, usize) {
    let mut frame = vec![0.0; dims.len()];
    let ticks = (BIN_US / scene.config().tick_us).max(1);
    let mut label = scene.label();
    for k in 0..ticks {
        let (events, l) = scene.next_tick();
        if k == ticks / 2 {
            label = l;
        }
        geom.accumulate(&events, &mut frame);
    }
    (Tensor::from_vec(1, dims, frame), label)
}

impl Probe {
    /// The probe stream of `cfg` for a network of `preset`.
    ///
    /// # Errors
    /// A preset that does not load or has fewer outputs than the classes named.
    pub fn new(cfg: &SceneConfig) -> Result<Self> {
        let preset = Preset::load(&cfg.preset)?;
        let dims = Dims::new(preset.input[0], preset.input[1], preset.input[2]);
        let classes = preset.classes;
        if let Some(c) = cfg.phases.iter().flatten().find(|&&c| c >= classes) {
            crate::error::bail!(
                "class {c} is not one of preset {}'s {classes} classes",
                preset.name
            );
        }
        let mut bins = Vec::with_capacity(classes);
        for c in 0..classes {
            // Segments as long as the probe's: each a new position, the same direction.
            let seg_ms = cfg.probe_steps as u64 * BIN_US / 1000;
            let (mut scene, geom) =
                scene_and_geometry(cfg.seed.wrapping_add(1000 + c as u64), seg_ms, classes, dims)?;
            scene.set_classes(&[c]);
            let segs = (0..cfg.probe_segments)
                .map(|_| {
                    (0..cfg.probe_steps)
                        .map(|_| next_bin(&mut scene, &geom, dims).0)
                        .collect()
                })
                .collect();
            bins.push(segs);
        }
        Ok(Self { bins })
    }

    /// Accuracy on each of `classes`'s classes' probe segments, per step, learning paused.
    fn accuracy(&self, model: &mut StdlModel, classes: &[usize]) -> f32 {
        let (mut correct, mut total) = (0usize, 0usize);
        for &c in classes {
            for seg in &self.bins[c] {
                for (k, x) in seg.iter().enumerate() {
                    let ctx = if k == 0 {
                        StepContext::SideStart
                    } else {
                        StepContext::Side
                    };
                    let (logits, _) = model.step_in(ctx, x.clone(), None);
                    correct += (argmax(&logits)[0] == c) as usize;
                    total += 1;
                }
            }
        }
        correct as f32 / total.max(1) as f32
    }

    /// Probe steps per class.
    pub fn steps_per_class(&self) -> usize {
        self.bins.first().map_or(0, |c| c.iter().map(Vec::len).sum())
    }
}

/// One probe: the live step it came after, and the accuracy on each phase (`None` for a
/// phase not probed then: one not yet begun, within a phase).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenePoint {
    /// Live steps learned so far.
    pub step: u64,
    /// Accuracy on each phase's classes.
    pub phase_accuracy: Vec<Option<f32>>,
}

/// Results of one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SceneRun {
    /// Name in tables (`naive`, `replay`, `ewc`, `lwf`, ...).
    pub name: String,
    /// The settings.
    pub config: SceneConfig,
    /// `accuracy_matrix[i][j]`: accuracy on phase `j` at the end of phase `i`.
    pub accuracy_matrix: Vec<Vec<f32>>,
    /// Accuracy on each phase before any learning.
    pub initial_accuracy: Vec<f32>,
    /// Mean of the last row.
    pub average_accuracy: f32,
    /// Chaudhry et al. 2018 (best earlier − final), mean over all but the last phase.
    pub forgetting: f32,
    /// Lopez-Paz & Ranzato 2017 (final − right after learning).
    pub backward_transfer: f32,
    /// Lopez-Paz & Ranzato 2017 (just before learning − before any learning).
    pub forward_transfer: f32,
    /// The same run under Avalanche's metric names and definitions.
    pub avalanche: BTreeMap<String, f32>,
    /// Accuracy of each live step's prediction (made before it is learned), per phase.
    pub online_accuracy: Vec<f32>,
    /// Every probe.
    pub curve: Vec<ScenePoint>,
    /// Live steps learned.
    pub live_steps: u64,
    /// Replay, when on.
    pub replay: Option<SegmentReplayStats>,
    /// Parameters of the network and the floats per parameter its strategy keeps.
    pub params: usize,
    /// Seconds.
    pub seconds: f64,
    /// Ctrl-C ended the run early: the matrix has the phases learned in full.
    pub interrupted: bool,
}

/// Runs one learner over the phases. `name` labels it in tables.
///
/// # Errors
/// Bad settings, a preset that does not load, or a replay budget too small for a segment.
pub fn run_scene(cfg: &SceneConfig, probe: &Probe, name: &str) -> Result<SceneRun> {
    cfg.validate()?;
    let t0 = Instant::now();
    let stream_cfg = crate::runtime::stream::StreamConfig {
        seed: cfg.seed,
        lr: cfg.lr,
        ..crate::runtime::stream::StreamConfig::new(crate::runtime::stream::Source::Stdin, cfg.preset.clone())
    };
    let mut model = crate::runtime::stream::new_model(&stream_cfg)?;
    if cfg.strategy.kind != StrategyKind::Naive {
        model.set_strategy(&cfg.strategy);
    }
    let preset = model.spec.preset.clone();
    let dims = Dims::new(preset.input[0], preset.input[1], preset.input[2]);
    let mut replay = match &cfg.replay {
        Some(r) if r.bytes > 0 => Some(StreamReplay::new(r, dims, cfg.seed)?),
        _ => None,
    };
    let (mut scene, geom) = scene_and_geometry(cfg.seed, cfg.segment_ms, preset.classes, dims)?;
    let n = cfg.phases.len();
    let probe_phases = |model: &mut StdlModel, upto: usize| -> Vec<Option<f32>> {
        (0..n)
            .map(|j| (j < upto).then(|| probe.accuracy(model, &cfg.phases[j])))
            .collect()
    };
    let initial: Vec<f32> = probe_phases(&mut model, n).into_iter().flatten().collect();
    let mut curve = vec![ScenePoint {
        step: 0,
        phase_accuracy: initial.iter().map(|&a| Some(a)).collect(),
    }];
    let mut matrix = Vec::new();
    let mut online = Vec::new();
    let mut step = 0u64;
    let mut interrupted = false;
    'phases: for (i, classes) in cfg.phases.iter().enumerate() {
        scene.set_classes(classes);
        let mut correct = 0u64;
        for k in 1..=cfg.steps_per_phase {
            if crate::interrupt::requested() {
                interrupted = true;
                break 'phases;
            }
            let (x, label) = next_bin(&mut scene, &geom, dims);
            if let Some(r) = replay.as_mut() {
                r.offering(&x);
            }
            let (logits, _) = model.step_in(StepContext::Live, x, Some(&[label]));
            correct += (argmax(&logits)[0] == label) as u64;
            if let Some(r) = replay.as_mut() {
                r.accepted(Some(label));
                while let Some((ctx, x, l)) = r.next() {
                    model.step_in(ctx, x, Some(&[l]));
                    r.sent();
                }
            }
            step += 1;
            if k == cfg.steps_per_phase {
                let row = probe_phases(&mut model, n);
                curve.push(ScenePoint {
                    step,
                    phase_accuracy: row.clone(),
                });
                matrix.push(row.into_iter().flatten().collect::<Vec<f32>>());
            } else if k % cfg.probe_every == 0 {
                curve.push(ScenePoint {
                    step,
                    phase_accuracy: probe_phases(&mut model, i + 1),
                });
            }
        }
        online.push(correct as f32 / cfg.steps_per_phase as f32);
    }
    ensure!(
        !matrix.is_empty(),
        "interrupted during the first phase: nothing learned in full to report"
    );
    let learned = matrix.len();
    let block: Vec<Vec<f32>> = matrix.iter().map(|r| r[..learned].to_vec()).collect();
    let (average_accuracy, forgetting, backward_transfer, forward_transfer) =
        summarize(&block, &initial[..learned]);
    let samples: Vec<usize> = cfg
        .phases
        .iter()
        .map(|p| p.len() * probe.steps_per_class())
        .collect();
    let avalanche = avalanche_metrics(&block, &initial[..learned], &samples, &vec![0; n]);
    let params = model
        .stages
        .iter()
        .map(|s| s.body.param_count() + s.head.param_count())
        .sum();
    Ok(SceneRun {
        name: name.into(),
        config: cfg.clone(),
        accuracy_matrix: matrix,
        initial_accuracy: initial,
        average_accuracy,
        forgetting,
        backward_transfer,
        forward_transfer,
        avalanche,
        online_accuracy: online,
        curve,
        live_steps: step,
        replay: replay.map(|r| r.stats()),
        params,
        seconds: t0.elapsed().as_secs_f64(),
        interrupted,
    })
}
