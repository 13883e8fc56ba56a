//! `stdl stream`'s settings ([`StreamConfig`]).

use std::path::PathBuf;
use std::time::Duration;

use stdl_io::{Format, SensorSize};

use crate::runtime::overload::Overload;
use crate::runtime::source::Source;

/// Settings of a stream run.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// The source.
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
    /// Where predictions go (`None`: stdout).
    pub predictions: Option<PathBuf>,
    /// Metrics JSON lines.
    pub metrics: Option<PathBuf>,
    /// Summary JSON.
    pub summary: Option<PathBuf>,
    /// Seconds between metric lines.
    pub metrics_every_s: f64,
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
    /// DV network streams: how long to wait for a connection.
    pub connect_timeout: Duration,
    /// DV network streams: how long to wait for bytes before reconnecting.
    pub read_timeout: Duration,
    /// Time every stage, layer and phase, and measure each layer's input density; the
    /// summary then carries `profile` ([`crate::stdl::StageProfile`]).
    pub profile: bool,
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
    pub min_step: Option<Duration>,
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
            predictions: None,
            metrics: None,
            summary: None,
            metrics_every_s: 2.0,
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
            view: None,
            class_names: Vec::new(),
            replay: None,
            strategy: crate::stdl::StrategyConfig::default(),
            min_step: None,
            drop_partial: false,
        }
    }
}
