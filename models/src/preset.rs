//! Network presets: TOML files in `models/presets/`, parsed with unknown keys rejected.
//!
//! ```toml
//! name = "tiny"
//! input = [2, 16, 16]     # C, H, W of a frame
//! classes = 4
//! norm = "ws"             # ws (scaled weight standardisation, default) | bn | none
//! cuts = [1]              # unit indices where subnetworks 1.. start (default: one per conv unit)
//! aux_budget = "1x"       # bytes (integer) or a multiple of the default budget ("2x")
//!
//! [neuron]                # LIF constants (defaults: tau 2, threshold 1, sigmoid, alpha 4)
//! tau = 2.0
//!
//! [train]                 # defaults for the trainer
//! t_bins = 8
//! batch = 16
//! epochs = 10
//! update_every = 1
//! [train.optimizer]
//! kind = "adam"
//! lr = 1e-3
//!
//! [[layers]]
//! type = "conv"           # conv | lif | pool | flatten | linear | readout
//! channels = 8
//! kernel = 3
//! padding = 1
//! [[layers]]
//! type = "lif"
//! [[layers]]
//! type = "pool"
//! kernel = 2
//! [[layers]]
//! type = "readout"
//! ```
//!
//! Layers form *units*: a `conv` or `linear` layer, its normalisation, its `lif`, and an
//! optional `pool`. A `flatten` is inserted where a `linear` follows a spatial layer. The
//! last layer is the non-spiking `readout` (linear to `classes`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::layers::LifParams;
use crate::optim::OptimConfig;
use crate::{Error, Result};

/// Normalisation of conv layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Scaled weight standardisation (works at batch size 1; default).
    #[default]
    Ws,
    /// Batch normalisation after each conv.
    Bn,
    /// None.
    None,
}

/// One entry of `[[layers]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum LayerSpec {
    /// 2-D convolution.
    Conv {
        /// Output channels.
        channels: usize,
        /// Kernel size.
        kernel: usize,
        /// Stride (default 1).
        #[serde(default = "one")]
        stride: usize,
        /// Zero padding (default 0).
        #[serde(default)]
        padding: usize,
    },
    /// LIF neurons.
    Lif,
    /// Average pooling.
    Pool {
        /// Window (and stride).
        kernel: usize,
    },
    /// Explicit flatten (optional: inserted automatically before a linear layer).
    Flatten,
    /// Fully connected spiking layer (followed by `lif`).
    Linear {
        /// Output features.
        features: usize,
    },
    /// The final, non-spiking linear layer to the classes.
    Readout,
}

fn one() -> usize {
    1
}

fn one_f32() -> f32 {
    1.0
}

/// Trainer defaults a preset carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainDefaults {
    /// Time bins per sample.
    pub t_bins: usize,
    /// Batch size.
    pub batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Labelled steps per optimiser update (1: update after every time step).
    pub update_every: usize,
    /// Optimiser.
    pub optimizer: OptimConfig,
}

impl Default for TrainDefaults {
    fn default() -> Self {
        Self {
            t_bins: 10,
            batch: 16,
            epochs: 10,
            update_every: 1,
            optimizer: OptimConfig::default(),
        }
    }
}

/// The auxiliary-network memory budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Budget {
    /// Absolute bytes.
    Bytes(u64),
    /// A multiple of the default budget, written `"1.5x"`.
    Multiple(String),
}

impl Budget {
    /// Resolves against the default budget.
    ///
    /// # Errors
    /// A multiple that is not a non-negative number followed by `x`.
    pub fn resolve(&self, default_bytes: u64) -> std::result::Result<u64, String> {
        match self {
            Budget::Bytes(b) => Ok(*b),
            Budget::Multiple(s) => {
                let f: f64 = s
                    .trim()
                    .strip_suffix('x')
                    .and_then(|v| v.trim().parse().ok())
                    .filter(|f: &f64| f.is_finite() && *f >= 0.0)
                    .ok_or_else(|| format!("aux_budget {s:?}: expected bytes or a multiple like \"2x\""))?;
                Ok((default_bytes as f64 * f).round() as u64)
            }
        }
    }

    /// Whether the budget is well formed, whatever the default it multiplies.
    ///
    /// # Errors
    /// As [`Budget::resolve`]'s.
    pub fn check(&self) -> std::result::Result<(), String> {
        self.resolve(1).map(|_| ())
    }
}

/// A network preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Name.
    pub name: String,
    /// Input frame `[C, H, W]`.
    pub input: [usize; 3],
    /// Number of classes.
    pub classes: usize,
    /// Conv normalisation.
    #[serde(default)]
    pub norm: Norm,
    /// Initial gain of weight-standardised convolutions (default 1, as OTTT). Sparse event
    /// input needs more to make the first layers spike (README, "Presets").
    #[serde(default = "one_f32")]
    pub ws_gain: f32,
    /// LIF constants.
    #[serde(default)]
    pub neuron: LifParams,
    /// Unit indices at which subnetworks 1.. start.
    #[serde(default)]
    pub cuts: Option<Vec<usize>>,
    /// Auxiliary-network memory budget.
    #[serde(default)]
    pub aux_budget: Option<Budget>,
    /// Trainer defaults.
    #[serde(default)]
    pub train: TrainDefaults,
    /// The layers.
    pub layers: Vec<LayerSpec>,
}

/// The presets shipped in `models/presets/`, by name.
pub const BUILTIN: [(&str, &str); 5] = [
    ("tiny", include_str!("../presets/tiny.toml")),
    ("demo", include_str!("../presets/demo.toml")),
    ("nmnist", include_str!("../presets/nmnist.toml")),
    ("dvs-gesture", include_str!("../presets/dvs-gesture.toml")),
    ("ncaltech101", include_str!("../presets/ncaltech101.toml")),
];

impl Preset {
    /// Parses TOML text; `name` labels errors.
    ///
    /// # Errors
    /// TOML that does not parse, an unknown key, or numbers a network cannot train with.
    pub fn parse(text: &str, name: &str) -> Result<Self> {
        let p: Preset = toml::from_str(text).map_err(|e| Error::Preset {
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        p.check().map_err(|message| Error::Preset {
            name: name.to_owned(),
            message,
        })?;
        Ok(p)
    }

    /// Numbers a network could not train with: counts of 0, non-finite or out-of-range
    /// constants (layer shapes and sizes are checked by [`crate::network::NetworkSpec::new`]).
    fn check(&self) -> std::result::Result<(), String> {
        let t = &self.train;
        for (key, v) in [
            ("train.t_bins", t.t_bins),
            ("train.batch", t.batch),
            ("train.epochs", t.epochs),
            ("train.update_every", t.update_every),
        ] {
            if v == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        let o = &t.optimizer;
        let n = &self.neuron;
        for (key, v, ok) in [
            ("train.optimizer.lr", o.lr, o.lr > 0.0),
            (
                "train.optimizer.weight_decay",
                o.weight_decay,
                o.weight_decay >= 0.0,
            ),
            (
                "train.optimizer.momentum",
                o.momentum,
                (0.0..1.0).contains(&o.momentum),
            ),
            ("train.optimizer.beta1", o.beta1, (0.0..1.0).contains(&o.beta1)),
            ("train.optimizer.beta2", o.beta2, (0.0..1.0).contains(&o.beta2)),
            ("train.optimizer.eps", o.eps, o.eps > 0.0),
            ("neuron.tau", n.tau, n.tau >= 1.0),
            ("neuron.threshold", n.threshold, n.threshold > 0.0),
            ("neuron.alpha", n.alpha, n.alpha > 0.0),
            ("ws_gain", self.ws_gain, self.ws_gain > 0.0),
        ] {
            if !(v.is_finite() && ok) {
                return Err(format!("{key} = {v} is out of range"));
            }
        }
        Ok(())
    }

    /// A built-in preset by name, or a TOML file by path.
    ///
    /// # Errors
    /// Neither a built-in preset nor a readable, valid TOML file.
    pub fn load(name_or_path: &str) -> Result<Self> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(text, name_or_path);
        }
        let p = Path::new(name_or_path);
        if p.exists() {
            let text = std::fs::read_to_string(p).map_err(|source| Error::Io {
                path: name_or_path.to_owned(),
                error: source,
            })?;
            return Self::parse(&text, name_or_path);
        }
        Err(Error::Preset {
            name: name_or_path.to_owned(),
            message: format!(
                "no such preset file, and not a built-in preset ({})",
                BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// Serialises back to TOML (saved beside checkpoints).
    ///
    /// # Panics
    /// Not in practice: every preset serialises.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a preset serialises")
    }
}
