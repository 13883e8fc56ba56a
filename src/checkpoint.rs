//! One checkpoint format for every command: a directory holding `model.safetensors`,
//! `optimizer.safetensors`, `preset.toml` (the whole preset) and, written last, `state.json`
//! ([`CheckpointState`]: a format version, the [`ModelSettings`] that rebuild the model, and
//! what kind of run wrote it: a training run's epochs or a stream's position). `stdl train`,
//! `stdl eval`, `stdl stream --checkpoint`, `stdl render` and `--resume` all read it with
//! [`load`]. Checkpoints written before the version field (version 1: a training run's
//! `{epoch, config, metrics}` or a stream's `{steps, t_us, events, preset}`) still load.
//!
//! Every file is written beside its target and renamed when all are complete
//! ([`crate::store::FileSet`]), so a failure keeps the last good checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use stdl_models::Preset;

use crate::config::TrainConfig;
use crate::model::{Model, ModelSettings};

/// Named tensors, as safetensors files hold them.
pub type Tensors = BTreeMap<String, Vec<f32>>;

/// The version [`save`] writes.
pub const CHECKPOINT_VERSION: u32 = 2;

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

/// `state.json`: what a checkpoint holds besides its tensors and preset.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Format version ([`CHECKPOINT_VERSION`]).
    pub version: u32,
    /// The preset's name (the whole preset is `preset.toml`).
    pub preset: String,
    /// What rebuilds the model before its weights are loaded.
    pub model: ModelSettings,
    /// The run that wrote it.
    pub progress: Progress,
}

impl CheckpointState {
    /// The state [`save`] writes now ([`CHECKPOINT_VERSION`]) for a model of `preset`.
    pub fn new(preset: &str, model: ModelSettings, progress: Progress) -> Self {
        Self {
            version: CHECKPOINT_VERSION,
            preset: preset.to_owned(),
            model,
            progress,
        }
    }
}

/// The run that wrote a checkpoint, and how far it got.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Progress {
    /// `stdl train`, after a completed epoch.
    Train {
        /// Epochs completed.
        epoch: usize,
        /// The run's configuration (a `--resume` continues with it).
        config: TrainConfig,
        /// Metrics of the completed epochs.
        metrics: Vec<EpochMetrics>,
    },
    /// `stdl stream --checkpoint-dir`.
    Stream {
        /// Steps learned.
        steps: u64,
        /// End of the last bin learned from, in microseconds of stream time.
        t_us: u64,
        /// Events read.
        events: u64,
    },
}

impl Progress {
    /// `"train"` or `"stream"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Progress::Train { .. } => "train",
            Progress::Stream { .. } => "stream",
        }
    }
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Loaded {
    /// Its state.
    pub state: CheckpointState,
    /// Its preset.
    pub preset: Preset,
    /// The model with its weights (and optimiser state, if asked for).
    pub model: Model,
}

/// Writes a checkpoint into `dir` (created if needed): every file beside its target first,
/// then all renamed, `state.json` last.
///
/// # Errors
/// A file that cannot be written; the previous checkpoint is then intact.
pub fn save(
    dir: &Path,
    params: &BTreeMap<String, Vec<f32>>,
    optimizer: &BTreeMap<String, Vec<f32>>,
    preset: &Preset,
    state: &CheckpointState,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = crate::store::FileSet::default();
    files.tensors(&dir.join("model.safetensors"), params)?;
    files.tensors(&dir.join("optimizer.safetensors"), optimizer)?;
    files.bytes(&dir.join("preset.toml"), preset.to_toml().as_bytes())?;
    files.json(&dir.join("state.json"), state)?;
    files.commit()
}

/// A version-1 training state (before [`CHECKPOINT_VERSION`] 2).
#[derive(Deserialize)]
struct TrainV1 {
    epoch: usize,
    config: TrainConfig,
    metrics: Vec<EpochMetrics>,
}

/// A version-1 stream state.
#[derive(Deserialize)]
struct StreamV1 {
    steps: u64,
    t_us: u64,
    events: u64,
    preset: String,
}

/// Reads `dir/state.json`, of any version.
///
/// # Errors
/// No such file, or not a checkpoint state of a known version.
pub fn read_state(dir: &Path) -> Result<CheckpointState> {
    let path = dir.join("state.json");
    let not_one = || {
        format!(
            "{} is not a stdl checkpoint (the OUT/checkpoint directory of `stdl train`, or a \
             stream's --checkpoint-dir)",
            dir.display()
        )
    };
    let v: serde_json::Value = crate::store::read_json(&path).with_context(not_one)?;
    match v.get("version").and_then(serde_json::Value::as_u64) {
        Some(2) => serde_json::from_value(v).with_context(|| format!("parsing {}", path.display())),
        Some(n) => bail!(
            "{} is a version {n} checkpoint; this build reads versions 1 and {CHECKPOINT_VERSION}",
            path.display()
        ),
        None if v.get("config").is_some() => {
            let t: TrainV1 = serde_json::from_value(v).with_context(not_one)?;
            Ok(CheckpointState {
                version: 1,
                preset: t.config.learn.preset.clone(),
                model: t.config.model_settings(),
                progress: Progress::Train {
                    epoch: t.epoch,
                    config: t.config,
                    metrics: t.metrics,
                },
            })
        }
        None => {
            let s: StreamV1 = serde_json::from_value(v).with_context(not_one)?;
            // A version-1 stream learner: the preset planned for batch 1.
            let preset = preset_of(dir, &s.preset)?;
            Ok(CheckpointState {
                version: 1,
                preset: s.preset,
                model: ModelSettings::online(0, preset.train.optimizer),
                progress: Progress::Stream {
                    steps: s.steps,
                    t_us: s.t_us,
                    events: s.events,
                },
            })
        }
    }
}

/// The checkpoint's `preset.toml`, or (early version-1 stream checkpoints, which stored
/// only its name) the preset `name`.
fn preset_of(dir: &Path, name: &str) -> Result<Preset> {
    let stored = dir.join("preset.toml");
    let source = if stored.exists() {
        stored.to_string_lossy().into_owned()
    } else {
        name.to_owned()
    };
    Preset::load(&source).with_context(|| format!("loading the preset of checkpoint {}", dir.display()))
}

/// Loads a checkpoint directory: its state, its preset, and the model rebuilt from the
/// state's settings with the saved weights (and optimiser state, with `with_optimizer`).
///
/// # Errors
/// A missing or malformed file, or tensors that do not fit the rebuilt model.
pub fn load(dir: &Path, with_optimizer: bool) -> Result<Loaded> {
    let state = read_state(dir)?;
    let preset = preset_of(dir, &state.preset)?;
    let mut model = Model::build(&state.model, &preset)?;
    let (params, optimizer) = tensors(dir)?;
    model
        .load_params(&params)
        .with_context(|| format!("loading the weights of checkpoint {}", dir.display()))?;
    if with_optimizer {
        model.load_optimizer_state(&optimizer);
    }
    Ok(Loaded { state, preset, model })
}

/// The saved weights and optimiser state of a checkpoint, by name.
///
/// # Errors
/// A missing or malformed tensor file.
pub fn tensors(dir: &Path) -> Result<(Tensors, Tensors)> {
    Ok((
        crate::store::load_tensors(&dir.join("model.safetensors"))?,
        crate::store::load_tensors(&dir.join("optimizer.safetensors"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with_state(name: &str, state: &serde_json::Value) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("stdl-ckpt-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("state.json"), state.to_string()).unwrap();
        std::fs::write(dir.join("preset.toml"), Preset::load("tiny").unwrap().to_toml()).unwrap();
        dir
    }

    #[test]
    fn version_one_states_still_read() {
        let cfg = TrainConfig::default();
        let train = serde_json::json!({"epoch": 3, "config": cfg, "metrics": []});
        let s = read_state(&dir_with_state("v1-train", &train)).unwrap();
        assert_eq!(s.version, 1);
        assert_eq!(s.model, cfg.model_settings());
        assert!(matches!(s.progress, Progress::Train { epoch: 3, .. }));

        let stream = serde_json::json!({"steps": 10, "t_us": 100_000, "events": 55, "preset": "tiny"});
        let s = read_state(&dir_with_state("v1-stream", &stream)).unwrap();
        assert_eq!((s.model.batch, s.model.method), (1, crate::model::Method::Stdl));
        assert!(matches!(
            s.progress,
            Progress::Stream {
                steps: 10,
                t_us: 100_000,
                events: 55
            }
        ));
    }

    #[test]
    fn the_current_version_round_trips_and_a_future_one_is_refused() {
        let state = CheckpointState {
            version: CHECKPOINT_VERSION,
            preset: "tiny".into(),
            model: ModelSettings::online(3, stdl_models::optim::OptimConfig::default()),
            progress: Progress::Stream {
                steps: 1,
                t_us: 2,
                events: 3,
            },
        };
        let v = serde_json::to_value(&state).unwrap();
        assert_eq!(v["progress"]["kind"], "stream");
        let back = read_state(&dir_with_state("v2", &v)).unwrap();
        assert_eq!((back.version, back.model), (CHECKPOINT_VERSION, state.model));

        let mut future = v.clone();
        future["version"] = serde_json::json!(CHECKPOINT_VERSION + 1);
        let e = read_state(&dir_with_state("v3", &future)).unwrap_err();
        assert!(format!("{e:#}").contains("version 3"), "{e:#}");
    }
}
