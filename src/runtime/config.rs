//! `stdl stream`'s settings as data ([`StreamConfig`]): one [`Default`] (what `stdl stream`
//! does without flags), a [`StreamConfig::validate`], and a file form (TOML or JSON) that
//! every run can write beside itself (`--save-config FILE`) and read back (`--config FILE`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stdl_io::{Format, SensorSize};

use crate::runtime::overload::Overload;
use crate::runtime::source::Source;

/// Settings of a stream run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// The source (in a file: as `--source` writes it, or `{ dataset, root, split }`).
    pub source: Source,
    /// Force a file format.
    pub format: Option<Format>,
    /// Sensor size when the source does not state it.
    pub sensor_size: Option<SensorSize>,
    /// Network preset.
    pub preset: String,
    /// Time bin.
    pub bin_us: u64,
    /// Stop after this many time steps.
    pub max_steps: Option<u64>,
    /// Learn (default) or only predict.
    pub learn: bool,
    /// Interval labels (`class,startTime_usec,endTime_usec`, classes from 1).
    pub labels_csv: Option<PathBuf>,
    /// Replay speed relative to real time (`None`: as fast as possible).
    pub speed: Option<f64>,
    /// Prediction smoothing: exponential moving average of the logits over this many steps.
    pub ema_steps: f32,
    /// Seed of the network.
    pub seed: u64,
    /// Learning rate.
    pub lr: f32,
    /// Adam updates every this many labelled steps, each from the gradients accumulated over
    /// them (1: after every step, as STDL.md defines the online step). Applies to a fresh
    /// network; a `checkpoint` keeps its own.
    pub update_every: usize,
    /// Auxiliary-network budget of a fresh network (`None`: the preset's, else STDL.md's
    /// default). A `checkpoint` keeps its own plan.
    pub aux_budget: Option<stdl_models::preset::Budget>,
    /// Where predictions go (`None`: stdout).
    pub predictions: Option<PathBuf>,
    /// Metrics JSON lines.
    pub metrics: Option<PathBuf>,
    /// Summary JSON.
    pub summary: Option<PathBuf>,
    /// Seconds between metric lines.
    pub metrics_every_s: f64,
    /// No metric lines or notes on standard error (the `metrics` file still gets its lines;
    /// errors are still reported).
    pub quiet: bool,
    /// One label for every bin (when no other label source applies), e.g. for benchmarks.
    pub constant_label: Option<usize>,
    /// Record the peak resident memory when these step counts are reached.
    pub report_at_steps: Vec<u64>,
    /// Checkpoint directory (`model.safetensors`, `optimizer.safetensors`, `state.json`).
    pub checkpoint_dir: Option<PathBuf>,
    /// Checkpoint every this many steps.
    pub checkpoint_every_steps: Option<u64>,
    /// Checkpoint every this many seconds of wall-clock time.
    pub checkpoint_every_s: Option<f64>,
    /// Continue from the checkpoint in `checkpoint_dir` (weights, optimiser, step count, and
    /// the stream position: events before the saved time are skipped).
    pub resume: bool,
    /// Live labels: `-` for standard input, or a file followed as it grows. Lines:
    /// `now LABEL` (from the latest event time on), `T_US LABEL` (from that time on),
    /// `none` (no label from now on). LABEL is the 0-based class index, as in predictions.
    pub live_labels: Option<String>,
    /// What to do when the learner falls behind.
    pub overload: Overload,
    /// Start from this trained model instead of a fresh `preset` network (see [`crate::runtime::learner::load_model`]).
    pub checkpoint: Option<PathBuf>,
    /// A jump in event time larger than this (a pause in a recording, a corrupt time word)
    /// is skipped: the binner resynchronises at the next event and counts a `time_jumps`.
    /// `None` bins every gap (lazily: one empty bin per step).
    pub max_gap_us: Option<u64>,
    /// A time jump is an error instead (the stream stops and exits 1 after its summary).
    pub strict: bool,
    /// DV network streams: how long to wait for a connection (seconds in a file).
    #[serde(with = "seconds")]
    pub connect_timeout: Duration,
    /// DV network streams: how long to wait for bytes before reconnecting (seconds in a file).
    #[serde(with = "seconds")]
    pub read_timeout: Duration,
    /// Time every stage, layer and phase, and measure each layer's input density; the
    /// summary then carries `profile` ([`crate::stdl::StageProfile`]).
    pub profile: bool,
    /// Worker threads that run the learner's stages (`None`: one per core; at most one per
    /// stage, [`crate::stdl::Pipeline`]).
    pub workers: Option<usize>,
    /// Serve a live page at this `HOST:PORT` ([`crate::runtime::view`]; port 0: any free
    /// port, printed at start).
    pub view: Option<String>,
    /// Class names for the page (`class N` where missing).
    pub class_names: Vec<String>,
    /// Replay of past labelled segments between live steps (`None`: off).
    pub replay: Option<crate::runtime::replay::ReplaySettings>,
    /// Continual-learning strategy of every stage (EWC, LwF; default plain learning).
    pub strategy: crate::stdl::StrategyConfig,
    /// At the end of the source, drop its last, partial bin instead of learning from it.
    pub drop_partial: bool,
    /// Testing: the learner takes at least this long per step ([`crate::stdl::Stage::min_step`]).
    /// Never read from or written to a file.
    #[serde(skip)]
    pub min_step: Option<Duration>,
    /// Stops this run as Ctrl-C would (the process-wide signals stop it too). Never in a file.
    #[serde(skip)]
    pub stop: crate::interrupt::Stop,
    /// Predictions go to this channel instead of `predictions` or standard output (the
    /// Python package's `stdl.stream`); a closed channel stops the run. Never in a file.
    #[serde(skip)]
    pub on_prediction: Option<crossbeam_channel::Sender<crate::runtime::sink::Prediction>>,
}

/// Default of [`StreamConfig::max_gap_us`]: 10 s of event time.
pub const DEFAULT_MAX_GAP_US: u64 = 10_000_000;

impl StreamConfig {
    /// A stream of `source` through `preset`, with `stdl stream`'s defaults: 10 ms bins,
    /// learning on, Adam 1e-3, predictions smoothed over 20 steps to stdout, metrics every
    /// 2 s, no labels file, no checkpoints.
    pub fn new(source: Source, preset: impl Into<String>) -> Self {
        Self {
            source,
            format: None,
            sensor_size: None,
            preset: preset.into(),
            bin_us: 10_000,
            max_steps: None,
            learn: true,
            labels_csv: None,
            speed: None,
            ema_steps: 20.0,
            seed: 0,
            lr: 1e-3,
            update_every: 1,
            aux_budget: None,
            predictions: None,
            metrics: None,
            summary: None,
            metrics_every_s: 2.0,
            quiet: false,
            constant_label: None,
            report_at_steps: Vec::new(),
            checkpoint_dir: None,
            checkpoint_every_steps: None,
            checkpoint_every_s: None,
            resume: false,
            live_labels: None,
            overload: Overload::Auto,
            checkpoint: None,
            max_gap_us: Some(DEFAULT_MAX_GAP_US),
            strict: false,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            profile: false,
            workers: None,
            view: None,
            class_names: Vec::new(),
            replay: None,
            strategy: crate::stdl::StrategyConfig::default(),
            min_step: None,
            drop_partial: false,
            stop: Default::default(),
            on_prediction: None,
        }
    }
}

impl Default for StreamConfig {
    /// What `stdl stream` does without flags: the synthetic scene (seed 0) through a fresh
    /// `dvs-gesture` network.
    fn default() -> Self {
        Self::new(
            Source::parse("synthetic").expect("the synthetic scene"),
            "dvs-gesture",
        )
    }
}

impl StreamConfig {
    /// What the source thread needs of these settings.
    pub(crate) fn source_settings(&self) -> crate::runtime::source::SourceSettings {
        crate::runtime::source::SourceSettings {
            source: self.source.clone(),
            format: self.format,
            sensor_size: self.sensor_size,
            speed: self.speed,
            max_steps: self.max_steps,
            bin_us: self.bin_us,
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
        }
    }

    /// Checks what the type does not: positive bins, rates and timeouts, a replay only when
    /// learning, checkpoint intervals and `resume` only with a checkpoint directory, live
    /// labels not on the source's own standard input, a valid strategy.
    ///
    /// # Errors
    /// The first setting that is out of range, named as its command-line flag.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("--{name} must be a finite number above 0, got {v}"))
            }
        };
        if self.bin_us == 0 {
            return Err("--bin-us must be at least 1".into());
        }
        if self.max_steps == Some(0) {
            return Err("--max-steps must be at least 1".into());
        }
        if self.update_every == 0 {
            return Err("--update-every must be at least 1".into());
        }
        if let Some(b) = &self.aux_budget {
            b.check().map_err(|e| format!("--aux-budget: {e}"))?;
        }
        positive("ema-steps", f64::from(self.ema_steps))?;
        positive("lr", f64::from(self.lr))?;
        if let Some(s) = self.speed {
            positive("speed", s)?;
        }
        positive("connect-timeout-s", self.connect_timeout.as_secs_f64())?;
        positive("read-timeout-s", self.read_timeout.as_secs_f64())?;
        if !(self.metrics_every_s.is_finite() && self.metrics_every_s >= 0.0) {
            return Err(format!(
                "--metrics-every-s must be 0 or above, got {}",
                self.metrics_every_s
            ));
        }
        if let Some(r) = &self.replay {
            if !self.learn && r.bytes > 0 {
                return Err(
                    "--replay-bytes replays past segments to learn from; it cannot go with --no-learn".into(),
                );
            }
            r.validate()?;
        }
        let no_dir = self.checkpoint_dir.is_none();
        if no_dir
            && (self.checkpoint_every_steps.is_some() || self.checkpoint_every_s.is_some() || self.resume)
        {
            return Err("--checkpoint-every and --resume need --checkpoint-dir".into());
        }
        if self.checkpoint_every_steps == Some(0)
            || self.checkpoint_every_s.is_some_and(|s| s.is_nan() || s <= 0.0)
        {
            return Err("--checkpoint-every must be above 0".into());
        }
        if self.live_labels.as_deref() == Some("-") && matches!(self.source, Source::Stdin) {
            return Err("the source already reads standard input; give --live-labels a file".into());
        }
        self.strategy.validate()
    }

    /// Reads settings saved as TOML or JSON (by the file's extension), and validates them.
    ///
    /// # Errors
    /// An unreadable or malformed file, or a setting out of range.
    pub fn load(path: &std::path::Path) -> crate::Result<Self> {
        crate::store::load_config(path, Self::validate)
    }
}

/// A duration as seconds (`f64`) in a settings file.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_config_survives_a_file() {
        let mut cfg = StreamConfig::new(
            Source::Dataset {
                name: "nmnist".into(),
                root: "/data/nmnist".into(),
                split: stdl_io::datasets::Split::Test,
            },
            "nmnist",
        );
        cfg.format = Some(Format::AtisBin);
        cfg.sensor_size = Some(SensorSize::new(34, 34));
        cfg.read_timeout = Duration::from_millis(2500);
        cfg.replay = Some(crate::runtime::replay::ReplaySettings {
            bytes: 1 << 20,
            ..Default::default()
        });
        cfg.min_step = Some(Duration::from_millis(3));
        let text = toml::to_string_pretty(&cfg).unwrap();
        assert!(text.contains("read_timeout = 2.5"), "{text}");
        let back: StreamConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.min_step, None, "a testing knob never travels in a file");
        let again = toml::to_string_pretty(&back).unwrap();
        assert_eq!(text, again);
        // Every source kind keeps its form.
        for spec in [
            "synthetic:7",
            "stdin",
            "dv-tcp://127.0.0.1:7777",
            "file:///tmp/a b.aedat4",
        ] {
            let c = StreamConfig::new(Source::parse(spec).unwrap(), "tiny");
            let back: StreamConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
            assert_eq!(format!("{:?}", back.source), format!("{:?}", c.source), "{spec}");
        }
        // A partial file takes the defaults for the rest; an unknown key is refused.
        let partial: StreamConfig = toml::from_str("bin_us = 5000").unwrap();
        assert_eq!((partial.bin_us, partial.lr), (5000, StreamConfig::default().lr));
        assert!(toml::from_str::<StreamConfig>("bin_uss = 5000").is_err());
    }

    #[test]
    fn validate_names_the_bad_setting() {
        assert_eq!(StreamConfig::default().validate(), Ok(()));
        let bad = |f: &dyn Fn(&mut StreamConfig)| {
            let mut c = StreamConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(&|c| c.bin_us = 0).contains("--bin-us"));
        assert!(bad(&|c| c.lr = -1.0).contains("--lr"));
        assert!(bad(&|c| c.resume = true).contains("--checkpoint-dir"));
        assert!(bad(&|c| {
            c.source = Source::Stdin;
            c.live_labels = Some("-".into())
        })
        .contains("standard input"));
        assert!(bad(&|c| {
            c.learn = false;
            c.replay = Some(crate::runtime::replay::ReplaySettings {
                bytes: 1,
                ..Default::default()
            })
        })
        .contains("--no-learn"));
    }
}
