//! Training settings as data: [`TrainConfig`] (saved with every checkpoint, loaded with
//! `--config FILE`), with one [`Default`] and a [`TrainConfig::validate`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use stdl_models::optim::OptimConfig;
use stdl_models::preset::Budget;
use stdl_models::{Preset, Surrogate};

use crate::model::{Method, ModelSettings};

/// What every learning run on a dataset sets: the data, the network, the method and the
/// optimiser. [`TrainConfig`] and `ContinualConfig` embed it (flattened: their files and
/// JSON keep one level).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearnConfig {
    /// Method.
    pub method: Method,
    /// Dataset name.
    pub dataset: String,
    /// Dataset root.
    pub root: PathBuf,
    /// Preset name or path.
    pub preset: String,
    /// Time bins per sample.
    pub t_bins: usize,
    /// Batch size.
    pub batch: usize,
    /// Seed of the weights, the shuffles and the samples drawn.
    pub seed: u64,
    /// STDL: labelled steps per update.
    pub update_every: usize,
    /// Optimiser.
    pub optimizer: OptimConfig,
    /// STDL: auxiliary-network budget (the preset's, or the default, when absent).
    pub aux_budget: Option<Budget>,
    /// The surrogate gradient, in place of the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surrogate: Option<Surrogate>,
}

impl Default for LearnConfig {
    /// STDL on N-MNIST with the `nmnist` preset, and the trainer defaults every preset starts
    /// from ([`stdl_models::preset::TrainDefaults`]; [`LearnConfig::with_preset_defaults`]
    /// takes a preset's own).
    fn default() -> Self {
        let d = stdl_models::preset::TrainDefaults::default();
        Self {
            method: Method::Stdl,
            dataset: "nmnist".into(),
            root: PathBuf::new(),
            preset: "nmnist".into(),
            t_bins: d.t_bins,
            batch: d.batch,
            seed: 0,
            update_every: d.update_every,
            optimizer: d.optimizer,
            aux_budget: None,
            surrogate: None,
        }
    }
}

impl LearnConfig {
    /// The same settings with `preset`'s trainer defaults (time bins, batch, update interval,
    /// optimiser) in place of the current ones.
    pub fn with_preset_defaults(self, preset: &Preset) -> Self {
        let d = &preset.train;
        Self {
            t_bins: d.t_bins,
            batch: d.batch,
            update_every: d.update_every,
            optimizer: d.optimizer,
            ..self
        }
    }

    /// The preset, with [`LearnConfig::surrogate`] applied.
    ///
    /// # Errors
    /// A preset that is neither built in nor a readable TOML file.
    pub fn load_preset(&self) -> crate::error::Result<Preset> {
        let mut preset = Preset::load(&self.preset)?;
        if let Some(s) = self.surrogate {
            preset.neuron.surrogate = s;
        }
        Ok(preset)
    }

    /// Checks what the type does not: positive counts, a finite positive learning rate, a
    /// budget that parses.
    ///
    /// # Errors
    /// The first setting that is out of range, named as its command-line flag.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("t-bins", self.t_bins),
            ("batch", self.batch),
            ("update-every", self.update_every),
        ] {
            if v == 0 {
                return Err(format!("--{name} must be at least 1"));
            }
        }
        if !(self.optimizer.lr.is_finite() && self.optimizer.lr > 0.0) {
            return Err(format!(
                "--lr must be a positive number, got {}",
                self.optimizer.lr
            ));
        }
        if let Some(b) = &self.aux_budget {
            b.check()?;
        }
        Ok(())
    }

    /// What builds this run's model (`pipeline`: STDL's subnetworks as pipeline stages).
    pub fn model_settings(&self, pipeline: bool) -> ModelSettings {
        ModelSettings {
            method: self.method,
            batch: self.batch,
            t_bins: self.t_bins,
            seed: self.seed,
            optimizer: self.optimizer,
            update_every: self.update_every,
            aux_budget: self.aux_budget.clone(),
            pipeline,
        }
    }
}

/// `stdl train`'s settings: saved in every checkpoint, written beside the run as
/// `OUT/config.toml`, and read back with `--config FILE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Data, network, method and optimiser.
    #[serde(flatten)]
    pub learn: LearnConfig,
    /// Epochs.
    pub epochs: usize,
    /// Use at most this many training (and test) samples.
    pub limit_samples: Option<usize>,
    /// Learning-rate schedule over epochs.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// STDL: subnetworks as pipeline stages on worker threads (same numbers, faster on
    /// several cores, more memory).
    #[serde(default)]
    pub pipeline: bool,
}

/// Learning rate over epochs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// Cosine annealing from the base rate to 0 over the epochs (SpikingJelly's examples).
    #[default]
    Cosine,
    /// The base rate throughout.
    Constant,
}

impl LrSchedule {
    /// Every schedule, in the order the command line lists them.
    pub const ALL: [LrSchedule; 2] = [LrSchedule::Cosine, LrSchedule::Constant];

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

impl Default for TrainConfig {
    /// [`LearnConfig::default`] for the preset's epochs, on every sample, with a cosine
    /// schedule, subnetworks in sequence.
    fn default() -> Self {
        Self {
            learn: LearnConfig::default(),
            epochs: stdl_models::preset::TrainDefaults::default().epochs,
            limit_samples: None,
            lr_schedule: LrSchedule::Cosine,
            pipeline: false,
        }
    }
}

impl TrainConfig {
    /// Checks the settings ([`LearnConfig::validate`], and at least one epoch, the pipeline
    /// only with STDL).
    ///
    /// # Errors
    /// The first setting that is out of range, named as its command-line flag.
    pub fn validate(&self) -> Result<(), String> {
        self.learn.validate()?;
        if self.epochs == 0 {
            return Err("--epochs must be at least 1".into());
        }
        if self.limit_samples == Some(0) {
            return Err("--limit-samples must be at least 1".into());
        }
        if self.pipeline && self.learn.method != Method::Stdl {
            return Err("--pipeline runs STDL's subnetworks as stages; BPTT has none".into());
        }
        Ok(())
    }

    /// What builds this run's model.
    pub fn model_settings(&self) -> ModelSettings {
        self.learn.model_settings(self.pipeline)
    }

    /// Reads a configuration saved as TOML or JSON (by the file's extension; TOML otherwise),
    /// and validates it.
    ///
    /// # Errors
    /// An unreadable or malformed file, or a setting out of range.
    pub fn load(path: &std::path::Path) -> crate::error::Result<Self> {
        crate::store::load_config(path, Self::validate)
    }
}

/// Parses a byte count: a number with an optional unit, `K`/`M`/`G` (powers of 1000) or
/// `KiB`/`MiB`/`GiB` (powers of 1024), e.g. `4096`, `2MiB`, `1.5M`.
///
/// # Errors
/// An unknown unit, no number, or a count out of range.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
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
        u => {
            return Err(format!(
                "unknown unit {u:?} in {s:?}; use bytes or K, M, G, KiB, MiB, GiB"
            ))
        }
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("expected a byte count such as 4096 or 2MiB, got {s:?}"))?;
    let b = v * mult as f64;
    if !(b.is_finite() && b >= 0.0 && b < u64::MAX as f64) {
        return Err(format!("byte count {s:?} is out of range"));
    }
    Ok(b.round() as u64)
}

/// Parses an auxiliary-network budget as `--aux-budget` takes it: bytes ([`parse_bytes`]),
/// or a multiple of the default written `2x`.
///
/// # Errors
/// Neither a byte count nor a non-negative multiple.
pub fn parse_budget(s: &str) -> Result<Budget, String> {
    if let Ok(b) = parse_bytes(s) {
        return Ok(Budget::Bytes(b));
    }
    let b = Budget::Multiple(s.to_owned());
    b.check()?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_survives_a_file_and_keeps_one_level() {
        let mut cfg = TrainConfig::default();
        cfg.learn.batch = 7;
        cfg.learn.aux_budget = Some(Budget::Multiple("2x".into()));
        cfg.learn.surrogate = Some(Surrogate::Triangle);
        cfg.limit_samples = Some(5);
        let toml = toml::to_string_pretty(&cfg).unwrap();
        assert_eq!(toml::from_str::<TrainConfig>(&toml).unwrap(), cfg);
        // Flattened: the learning settings sit beside the training ones, as before the split
        // (version-1 checkpoints hold that shape).
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["batch"], 7);
        assert_eq!(json["epochs"], cfg.epochs);
        assert!(json.get("learn").is_none());
    }

    #[test]
    fn validate_names_the_bad_setting() {
        assert_eq!(TrainConfig::default().validate(), Ok(()));
        let bad = |f: &dyn Fn(&mut TrainConfig)| {
            let mut c = TrainConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(&|c| c.learn.batch = 0).contains("--batch"));
        assert!(bad(&|c| c.epochs = 0).contains("--epochs"));
        assert!(bad(&|c| c.learn.optimizer.lr = f32::NAN).contains("--lr"));
        assert!(bad(&|c| c.learn.aux_budget = Some(Budget::Multiple("lots".into()))).contains("aux_budget"));
        assert!(bad(&|c| {
            c.learn.method = Method::Bptt;
            c.pipeline = true
        })
        .contains("--pipeline"));
    }
}
