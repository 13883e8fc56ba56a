//! `stdl stream`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::ArgMatches;
use stdl::runtime::replay::ReplaySettings;
use stdl::runtime::stream::{run, Overload, Source, StreamConfig};

#[derive(Args, Debug)]
pub struct StreamArgs {
    /// synthetic[:SEED], file://PATH or PATH, stdin, dv-tcp://HOST:PORT, camera:// or
    /// camera://SERIAL (USB cameras: build with `--features camera`).
    #[arg(long, default_value = "synthetic")]
    pub source: String,
    /// Settings from a file (TOML, or JSON by extension), such as one --save-config wrote;
    /// flags given on the command line override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write the run's settings (the file, the defaults and the flags together) to this file
    /// before it starts: `--config FILE` repeats the run.
    #[arg(long)]
    pub save_config: Option<PathBuf>,
    /// Serve a live page of the stream at HOST:PORT (default 127.0.0.1:8765; port 0 picks a
    /// free one): the frame, the prediction per class, the label, running accuracy over
    /// time, events/s, dropped bins and lag. Loopback unless another address is named;
    /// read-only. A slow viewer never slows the learner (its oldest updates are dropped).
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:8765", value_name = "HOST:PORT")]
    pub view: Option<String>,
    /// Play a dataset split as one labelled stream instead of --source: nmnist, dvs-gesture,
    /// ncaltech101, cifar10-dvs.
    #[arg(long, requires = "root")]
    pub dataset: Option<String>,
    /// Dataset root directory.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Dataset split.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Network preset (name or TOML file).
    #[arg(long, default_value_t = StreamConfig::default().preset, conflicts_with = "checkpoint")]
    pub preset: String,
    /// Start from a trained model instead of a fresh preset network: the OUT/checkpoint
    /// directory of `stdl train --method stdl`, or a stream's --checkpoint-dir.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Time bin in microseconds (one learning step per bin).
    #[arg(long, default_value_t = StreamConfig::default().bin_us, value_parser = super::at_least_one::<u64>)]
    pub bin_us: u64,
    /// Stop after this many time steps.
    #[arg(long, value_parser = super::at_least_one::<u64>)]
    pub max_steps: Option<u64>,
    /// Only predict; do not learn.
    #[arg(long)]
    pub no_learn: bool,
    /// Interval labels for a replay: CSV `class,startTime_usec,endTime_usec` (DVS128-Gesture).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Pace a replay at real time × SPEED (default: as fast as possible).
    #[arg(long, value_parser = super::positive::<f64>)]
    pub speed: Option<f64>,
    /// Prediction smoothing horizon in steps (exponential moving average of the logits).
    #[arg(long, default_value_t = StreamConfig::default().ema_steps, value_parser = super::positive::<f32>)]
    pub ema_steps: f32,
    /// Seed of the network.
    #[arg(long, default_value_t = StreamConfig::default().seed)]
    pub seed: u64,
    /// Learning rate.
    #[arg(long, default_value_t = StreamConfig::default().lr, value_parser = super::positive::<f32>)]
    pub lr: f32,
    /// Adam updates every N labelled steps from the gradients accumulated over them (1: after
    /// every step). A fresh network only; a --checkpoint keeps its own.
    #[arg(long, default_value_t = StreamConfig::default().update_every, value_parser = super::at_least_one::<usize>)]
    pub update_every: usize,
    /// Auxiliary-network budget: bytes, or a multiple of the default such as 0.5x (default:
    /// the preset's). Smaller auxiliary networks learn faster per bin and may learn less
    /// well (README, "Trading accuracy for speed"). A fresh network only; a --checkpoint
    /// keeps its own.
    #[arg(long, value_parser = super::budget)]
    pub aux_budget: Option<stdl_models::preset::Budget>,
    /// Predictions as JSON lines to this file (default: stdout).
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Periodic metrics as JSON lines to this file (always also to stderr).
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Summary JSON at the end.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Seconds between metric lines.
    #[arg(long, default_value_t = StreamConfig::default().metrics_every_s, value_parser = super::non_negative)]
    pub metrics_every_s: f64,
    /// No metric lines or notes on standard error (`--metrics FILE` still gets its lines).
    #[arg(long)]
    pub quiet: bool,
    /// Write checkpoints (weights, optimiser state, stream position) to this directory.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Checkpoint interval: a number of steps (`5000`) or seconds (`30s`). A final checkpoint
    /// is written when the stream ends.
    #[arg(long, requires = "checkpoint_dir")]
    pub checkpoint_every: Option<String>,
    /// Live labels: `-` (standard input) or a file followed as it grows; lines `now LABEL`,
    /// `T_US LABEL`, `none` (LABEL: 0-based class index).
    #[arg(long)]
    pub live_labels: Option<String>,
    /// When the learner falls behind: auto (block for replays, drop-oldest for dv-tcp:// and
    /// camera://), block (wait: lossless), drop-oldest (drop whole bins, counted),
    /// coalesce (merge the oldest waiting bin into the next, counted).
    #[arg(long, value_parser = super::choice(&Overload::ALL), default_value = "auto")]
    pub overload: Overload,
    /// Continue from the checkpoint in --checkpoint-dir.
    #[arg(long, requires = "checkpoint_dir")]
    pub resume: bool,
    /// Record peak RSS and live heap bytes when these step counts are reached (comma
    /// separated; the summary's `peak_rss_at_steps` and `heap_bytes_at_steps`), e.g.
    /// `1000,10000`.
    #[arg(long, value_delimiter = ',')]
    pub report_at_steps: Vec<u64>,
    /// A jump in event time larger than this many microseconds (a long pause, a corrupt time
    /// word) is skipped: bins resume at the next event, and the summary counts `time_jumps`.
    /// 0: bin every gap, one empty bin per step.
    #[arg(long, default_value_t = StreamConfig::default().max_gap_us.unwrap_or(0))]
    pub max_gap_us: u64,
    /// Treat a time jump beyond --max-gap-us as an error (exit 1 after the summary).
    #[arg(long)]
    pub strict: bool,
    /// dv-tcp://: seconds to wait for the server to accept a connection.
    #[arg(long, default_value_t = StreamConfig::default().connect_timeout.as_secs_f64(), value_parser = super::positive::<f64>)]
    pub connect_timeout_s: f64,
    /// dv-tcp://: seconds without a byte from the server before reconnecting.
    #[arg(long, default_value_t = StreamConfig::default().read_timeout.as_secs_f64(), value_parser = super::positive::<f64>)]
    pub read_timeout_s: f64,
    /// Time every stage, layer and phase (forward, backward, weight and input gradient,
    /// optimiser, time queued) and each layer's input density: `profile` in the summary.
    #[arg(long)]
    pub profile: bool,
    /// Worker threads for the learner's stages (default: one per core; at most one per
    /// stage): each takes whichever stage has a step ready.
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub workers: Option<usize>,
    /// Replay: a reservoir of past labelled segments of the stream (a few bins each, stored
    /// as u8 counts) of at most this many bytes (e.g. 4MiB; 0: off), replayed between live
    /// steps, each from zero membranes with the live ones set aside. Task-free.
    #[arg(long, value_parser = super::bytes, default_value = "0", conflicts_with = "no_learn")]
    pub replay_bytes: u64,
    /// Replayed steps per live labelled step (1: as many replayed as live).
    #[arg(long, default_value_t = ReplaySettings::default().ratio, value_parser = super::non_negative, requires = "replay_bytes")]
    pub replay_ratio: f64,
    /// Bins per replayed segment.
    #[arg(long, default_value_t = ReplaySettings::default().segment_bins, value_parser = super::at_least_one::<usize>, requires = "replay_bytes")]
    pub replay_segment_bins: usize,
    /// When the source ends, drop its last, partial bin (default: it is binned and learned
    /// from, as `stdl frames` does).
    #[arg(long)]
    pub drop_partial: bool,
    /// Testing: every learned step takes at least this many milliseconds (a learner slowed
    /// on purpose, to exercise the overload policies on any machine).
    #[arg(long, hide = true, value_parser = super::positive::<f64>)]
    pub debug_min_step_ms: Option<f64>,
    #[command(flatten)]
    pub strategy: super::StrategyArgs,
    #[command(flatten)]
    pub read: super::ReadArgs,
}

impl StreamArgs {
    /// The run's settings: the `--config` file's (else the defaults, which are also the
    /// flags' defaults), with every flag given on the command line over them.
    pub fn config(&self, m: &ArgMatches) -> Result<StreamConfig> {
        let a = self;
        let file = a.config.is_some();
        let mut cfg = match &a.config {
            Some(p) => StreamConfig::load(p)?,
            None => StreamConfig::default(),
        };
        // Without a file every flag applies (its default is the config's); with one, only
        // those given.
        let given = |id: &str| !file || m.value_source(id) == Some(ValueSource::CommandLine);
        macro_rules! set {
            ($($field:ident = $value:expr),* $(,)?) => {
                $( if given(stringify!($field)) { cfg.$field = $value; } )*
            };
        }
        if given("source") || given("dataset") {
            cfg.source = match (&a.dataset, &a.root) {
                (Some(name), Some(root)) => Source::Dataset {
                    name: name.clone(),
                    root: root.clone(),
                    split: a.split.parse()?,
                },
                _ => Source::parse(&a.source)?,
            };
        }
        if let Some(v) = &a.checkpoint_every {
            let bad = || anyhow::anyhow!("--checkpoint-every {v:?}: expected N or Ns");
            (cfg.checkpoint_every_steps, cfg.checkpoint_every_s) = match v.strip_suffix('s') {
                Some(secs) => (None, Some(secs.parse().map_err(|_| bad())?)),
                None => (Some(v.parse().map_err(|_| bad())?), None),
            };
        }
        set!(
            preset = a.preset.clone(),
            bin_us = a.bin_us,
            ema_steps = a.ema_steps,
            seed = a.seed,
            lr = a.lr,
            update_every = a.update_every,
            metrics_every_s = a.metrics_every_s,
            overload = a.overload,
        );
        if given("connect_timeout_s") {
            cfg.connect_timeout = Duration::from_secs_f64(a.connect_timeout_s.min(1e6));
        }
        if given("read_timeout_s") {
            cfg.read_timeout = Duration::from_secs_f64(a.read_timeout_s.min(1e6));
        }
        if given("max_gap_us") {
            cfg.max_gap_us = (a.max_gap_us > 0).then_some(a.max_gap_us);
        }
        macro_rules! some {
            ($($field:ident = $value:expr),* $(,)?) => {
                $( if $value.is_some() { cfg.$field = $value; } )*
            };
        }
        // Flags without a default: given when present.
        some!(
            format = a.read.format,
            sensor_size = a.read.sensor_size,
            max_steps = a.max_steps,
            labels_csv = a.labels.clone(),
            speed = a.speed,
            predictions = a.predictions.clone(),
            metrics = a.metrics.clone(),
            summary = a.summary.clone(),
            checkpoint_dir = a.checkpoint_dir.clone(),
            live_labels = a.live_labels.clone(),
            checkpoint = a.checkpoint.clone(),
            view = a.view.clone(),
            aux_budget = a.aux_budget.clone(),
        );
        if !a.report_at_steps.is_empty() {
            cfg.report_at_steps = a.report_at_steps.clone();
        }
        cfg.learn &= !a.no_learn;
        cfg.resume |= a.resume;
        cfg.strict |= a.strict;
        cfg.profile |= a.profile;
        if a.workers.is_some() {
            cfg.workers = a.workers;
        }
        cfg.quiet |= a.quiet;
        cfg.drop_partial |= a.drop_partial;
        if given("replay_bytes") || given("replay_ratio") || given("replay_segment_bins") {
            let r = cfg.replay.unwrap_or_default();
            let r = ReplaySettings {
                bytes: if given("replay_bytes") {
                    a.replay_bytes
                } else {
                    r.bytes
                },
                ratio: if given("replay_ratio") {
                    a.replay_ratio
                } else {
                    r.ratio
                },
                segment_bins: if given("replay_segment_bins") {
                    a.replay_segment_bins
                } else {
                    r.segment_bins
                },
            };
            cfg.replay = (r.bytes > 0).then_some(r);
        }
        if !file || a.strategy.strategy.is_some() {
            cfg.strategy = a.strategy.config();
        }
        cfg.min_step = a
            .debug_min_step_ms
            .map(|ms| Duration::from_secs_f64(ms.min(1e6) / 1e3));
        cfg.validate().map_err(anyhow::Error::msg)?;
        Ok(cfg)
    }
}

pub fn run_stream(a: &StreamArgs, m: &ArgMatches) -> Result<()> {
    let cfg = a.config(m)?;
    if let Some(p) = &a.save_config {
        stdl::store::write_config(p, &cfg)?;
    }
    // Ctrl-C / SIGTERM: finish the step, write the final checkpoint and the summary.
    stdl::interrupt::install();
    let s = run(&cfg)?;
    eprintln!("{}", serde_json::to_string(&s)?);
    match &s.error {
        // After the summary, which records it: what was learned before the failure is kept.
        Some(e) => anyhow::bail!("the stream failed after {} steps: {e}", s.steps),
        None => Ok(()),
    }
}
