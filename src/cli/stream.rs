//! `stdl stream`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use stdl::runtime::stream::{run, Overload, Source, StreamConfig};

#[derive(Args, Debug)]
pub struct StreamArgs {
    /// synthetic[:SEED], file://PATH or PATH, stdin, dv-tcp://HOST:PORT, camera:// or
    /// camera://SERIAL (USB cameras: build with `--features camera`).
    #[arg(long, default_value = "synthetic")]
    pub source: String,
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
    #[arg(long, default_value = "dvs-gesture", conflicts_with = "checkpoint")]
    pub preset: String,
    /// Start from a trained model instead of a fresh preset network: the OUT/checkpoint
    /// directory of `stdl train --method stdl`, or a stream's --checkpoint-dir.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Time bin in microseconds (one learning step per bin).
    #[arg(long, default_value_t = 10_000, value_parser = super::at_least_one::<u64>)]
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
    #[arg(long, default_value_t = 20.0, value_parser = super::positive::<f32>)]
    pub ema_steps: f32,
    /// Seed of the network.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = super::positive::<f32>)]
    pub lr: f32,
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
    #[arg(long, default_value_t = 2.0, value_parser = super::non_negative)]
    pub metrics_every_s: f64,
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
    #[arg(long, default_value_t = stdl::runtime::stream::DEFAULT_MAX_GAP_US)]
    pub max_gap_us: u64,
    /// Treat a time jump beyond --max-gap-us as an error (exit 1 after the summary).
    #[arg(long)]
    pub strict: bool,
    /// dv-tcp://: seconds to wait for the server to accept a connection.
    #[arg(long, default_value_t = 5.0, value_parser = super::positive::<f64>)]
    pub connect_timeout_s: f64,
    /// dv-tcp://: seconds without a byte from the server before reconnecting.
    #[arg(long, default_value_t = 10.0, value_parser = super::positive::<f64>)]
    pub read_timeout_s: f64,
    /// Time every stage, layer and phase (forward, backward, weight and input gradient,
    /// optimiser, pipeline waits) and each layer's input density: `profile` in the summary.
    #[arg(long)]
    pub profile: bool,
    /// Replay: a reservoir of past labelled segments of the stream (a few bins each, stored
    /// as u8 counts) of at most this many bytes (e.g. 4MiB; 0: off), replayed between live
    /// steps, each from zero membranes with the live ones set aside. Task-free.
    #[arg(long, value_parser = super::bytes, default_value = "0", conflicts_with = "no_learn")]
    pub replay_bytes: u64,
    /// Replayed steps per live labelled step (1: as many replayed as live).
    #[arg(long, default_value_t = 1.0, value_parser = super::non_negative, requires = "replay_bytes")]
    pub replay_ratio: f64,
    /// Bins per replayed segment.
    #[arg(long, default_value_t = 8, value_parser = super::at_least_one::<usize>, requires = "replay_bytes")]
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

pub fn run_stream(a: &StreamArgs) -> Result<()> {
    let every: Option<(Option<u64>, Option<f64>)> = match &a.checkpoint_every {
        None => None,
        Some(v) => Some(match v.strip_suffix('s') {
            Some(secs) => (
                None,
                Some(
                    secs.parse()
                        .map_err(|_| anyhow::anyhow!("--checkpoint-every {v:?}: expected N or Ns"))?,
                ),
            ),
            None => (
                Some(
                    v.parse()
                        .map_err(|_| anyhow::anyhow!("--checkpoint-every {v:?}: expected N or Ns"))?,
                ),
                None,
            ),
        }),
    };
    let source = match (&a.dataset, &a.root) {
        (Some(name), Some(root)) => Source::Dataset {
            name: name.clone(),
            root: root.clone(),
            split: a.split.parse()?,
        },
        _ => Source::parse(&a.source)?,
    };
    let cfg = StreamConfig {
        format: a.read.format,
        sensor_size: a.read.sensor_size,
        bin_us: a.bin_us,
        max_steps: a.max_steps,
        learn: !a.no_learn,
        labels_csv: a.labels.clone(),
        speed: a.speed,
        ema_steps: a.ema_steps,
        seed: a.seed,
        lr: a.lr,
        predictions: a.predictions.clone(),
        metrics: a.metrics.clone(),
        summary: a.summary.clone(),
        metrics_every_s: a.metrics_every_s,
        checkpoint_dir: a.checkpoint_dir.clone(),
        checkpoint_every_steps: every.and_then(|e| e.0),
        checkpoint_every_s: every.and_then(|e| e.1),
        resume: a.resume,
        live_labels: a.live_labels.clone(),
        overload: a.overload,
        checkpoint: a.checkpoint.clone(),
        report_at_steps: a.report_at_steps.clone(),
        max_gap_us: (a.max_gap_us > 0).then_some(a.max_gap_us),
        strict: a.strict,
        connect_timeout: std::time::Duration::from_secs_f64(a.connect_timeout_s.min(1e6)),
        read_timeout: std::time::Duration::from_secs_f64(a.read_timeout_s.min(1e6)),
        profile: a.profile,
        view: a.view.clone(),
        class_names: Vec::new(),
        replay: (a.replay_bytes > 0).then_some(stdl::runtime::replay::ReplaySettings {
            bytes: a.replay_bytes,
            ratio: a.replay_ratio,
            segment_bins: a.replay_segment_bins,
        }),
        strategy: a.strategy.config(),
        drop_partial: a.drop_partial,
        min_step: a
            .debug_min_step_ms
            .map(|ms| std::time::Duration::from_secs_f64(ms.min(1e6) / 1e3)),
        ..StreamConfig::new(source, a.preset.clone())
    };
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
