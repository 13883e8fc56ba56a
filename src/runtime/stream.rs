//! `stdl stream`: events from a file, stdin, a DV network stream or a synthetic scene,
//! binned on event time, learned from online with STDL while predicting, with the
//! subnetworks as pipeline stages.
//!
//! Threads: the source reads and decodes on its own thread ([`crate::runtime::source`]) and
//! writes events into a fixed-size ring (a full ring makes it wait: a replay is lossless);
//! the main thread bins and labels (live labels: [`crate::runtime::labels`]); one thread per
//! subnetwork learns and predicts ([`crate::runtime::Pipeline`], with replayed segments
//! between live steps: [`crate::runtime::replay`]); the main thread turns readout logits
//! into predictions.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use stdl_io::datasets::dvs_gesture::{parse_labels, LabelRow};
use stdl_io::frames::{Binned, Channels, Geometry, StreamBinner};
use stdl_io::{Event, Format, SensorSize};
use stdl_models::network::NetworkSpec;
use stdl_models::optim::OptimConfig;
use stdl_models::{Dims, Preset, Tensor};

use crate::runtime::labels::spawn_live_labels;
pub use crate::runtime::labels::{parse_label_line, LabelCmd};
use crate::runtime::ring::Pop;
pub use crate::runtime::source::Source;
pub use crate::runtime::source::EVENT_RING_CAPACITY;
use crate::runtime::source::{describe, spawn_source, Control, SourceSettings};
use crate::runtime::Pipeline;
use crate::stdl::{plan, SpikeCount, StdlModel};

/// What happens when the learner falls behind the source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Overload {
    /// `block` for replays (files, stdin, datasets, synthetic scenes), `drop-oldest` for live
    /// sources (DV network streams, cameras).
    #[default]
    Auto,
    /// The source waits for the learner: nothing is lost (replays).
    Block,
    /// Whole bins are dropped, oldest first, once the learner's queue and a backlog of
    /// [`LIVE_BACKLOG_BINS`] are full, so that the learner always works on recent bins; each
    /// dropped bin is counted in `dropped_bins`.
    DropOldest,
    /// The oldest waiting bin is added into the next one (their events counted together, the
    /// newer bin's label), so no event is lost but time resolution is; each merge is counted
    /// in `coalesced_bins`.
    Coalesce,
}

impl Overload {
    /// The policy that applies to `source` (`Auto` resolved).
    pub fn resolve(self, source: &Source) -> Overload {
        match (self, source) {
            (Overload::Auto, Source::DvTcp(_) | Source::Camera(_)) => Overload::DropOldest,
            (Overload::Auto, _) => Overload::Block,
            (p, _) => p,
        }
    }
}

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
    /// Start from this trained model instead of a fresh `preset` network (see [`load_model`]).
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

/// What `state.json` beside a stream checkpoint records.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct StreamCheckpoint {
    /// Steps done.
    pub steps: u64,
    /// End of the last bin learned from.
    pub t_us: u64,
    /// Events read.
    pub events: u64,
    /// Preset.
    pub preset: String,
}

/// Loads the weights and optimiser state [`save_checkpoint`] wrote into `dir`.
fn load_weights(model: &mut StdlModel, dir: &std::path::Path) -> Result<()> {
    model.load_params(&crate::store::load_tensors(&dir.join("model.safetensors"))?)?;
    model.load_optimizer_state(&crate::store::load_tensors(&dir.join("optimizer.safetensors"))?);
    Ok(())
}

fn save_checkpoint(
    dir: &std::path::Path,
    state: &crate::runtime::pipeline::StageState,
    ck: &StreamCheckpoint,
    preset: &Preset,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // All written before any replaces its predecessor: a failure keeps the last checkpoint.
    let mut files = crate::store::FileSet::default();
    files.tensors(&dir.join("model.safetensors"), &state.0)?;
    files.tensors(&dir.join("optimizer.safetensors"), &state.1)?;
    files.bytes(&dir.join("preset.toml"), preset.to_toml().as_bytes())?;
    files.json(&dir.join("state.json"), ck)?;
    files.commit()
}

/// One prediction line.
#[derive(Debug, Serialize)]
pub struct Prediction {
    /// End of the time bin.
    pub t_us: u64,
    /// Predicted class (label index, 0-based).
    pub class: usize,
    /// Softmax probability of that class under the smoothed logits.
    pub confidence: f32,
    /// The known label of the bin, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<usize>,
}

/// The end-of-run summary.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Events read.
    pub events: u64,
    /// Time steps (bins) the learner processed.
    pub steps: u64,
    /// Bins the binner made (`steps + dropped_bins + coalesced_bins`, unless stopped early).
    pub bins: u64,
    /// Bins dropped by the overload policy (never under `block`).
    pub dropped_bins: u64,
    /// Bins merged into the next by the `coalesce` policy.
    pub coalesced_bins: u64,
    /// The overload policy that applied.
    pub overload: Overload,
    /// Accuracy of the smoothed predictions over labelled steps.
    pub accuracy: Option<f32>,
    /// Labelled steps.
    pub labelled_steps: u64,
    /// Peak resident memory.
    pub peak_rss_bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Event time covered, seconds.
    pub stream_seconds: f64,
    /// `(step, peak_rss_bytes)` at the requested step counts.
    pub peak_rss_at_steps: Vec<(u64, u64)>,
    /// `(step, live heap bytes)` at the requested step counts, taken with no step in flight
    /// (where the program counts its heap: the `stdl` binary does).
    pub heap_bytes_at_steps: Vec<(u64, u64)>,
    /// Jumps in event time beyond `--max-gap-us`, skipped.
    pub time_jumps: u64,
    /// Empty bins those jumps did not produce.
    pub skipped_bins: u64,
    /// Whether Ctrl-C or SIGTERM stopped the stream.
    pub interrupted: bool,
    /// Why the stream failed (the source's error after its last good event, or a time jump
    /// under `--strict`); `stdl stream` then exits 1.
    pub error: Option<String>,
    /// With `--profile`: where each stage's steps went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Vec<crate::stdl::StageProfile>>,
    /// With `--view`: page updates dropped because a viewer did not keep up (the learner
    /// never waits for a viewer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_updates_dropped: Option<u64>,
    /// With `--replay-bytes`: what the reservoir held and replayed (replayed steps are not
    /// in `steps`, and make no predictions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<crate::continual::SegmentReplayStats>,
    /// The continual-learning strategy (`naive` unless one was chosen).
    pub strategy: crate::stdl::StrategyKind,
}

/// Where predictions go: standard output, or a file renamed into place at the end.
enum Output {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File(crate::store::AtomicFile),
    /// The source failed before its first event: nothing is created.
    None,
}

impl Output {
    fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => Ok(w.flush()?),
            Output::File(f) => Ok(f.commit()?),
            Output::None => Ok(()),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File(f) => f.write(buf),
            Output::None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File(f) => f.flush(),
            Output::None => Ok(()),
        }
    }
}

/// Smoothed predictions and their running accuracy.
struct Predictor {
    smooth: crate::runtime::Smoothed,
    /// The latest prediction (class, confidence) and the label of its bin.
    last: Option<((usize, f32), Option<usize>)>,
    alpha: f32,
    labelled: u64,
    correct: u64,
}

impl Predictor {
    fn accuracy(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.correct as f64 / self.labelled as f64)
    }

    fn handle(
        &mut self,
        out: crate::runtime::StageOutput,
        meta: (u64, Option<usize>),
        w: &mut dyn Write,
    ) -> Result<()> {
        let (class, confidence) = self.smooth.update(&out.logits.data, self.alpha);
        self.last = Some(((class, confidence), meta.1));
        if let Some(l) = meta.1 {
            self.labelled += 1;
            self.correct += (l == class) as u64;
        }
        writeln!(
            w,
            "{}",
            serde_json::to_string(&Prediction {
                t_us: meta.0,
                class,
                confidence,
                label: meta.1
            })?
        )?;
        Ok(())
    }
}

/// How far the learner is behind the source, in seconds: event time read but not yet handed
/// to the learner (in the binner or a live backlog).
fn lag_s(last_t: u64, last_bin_end: u64, first_t: Option<u64>) -> f64 {
    last_t.saturating_sub(last_bin_end.max(first_t.unwrap_or(last_t))) as f64 * 1e-6
}

/// `--view`: the page's server and the events since its last update.
struct LiveView {
    server: crate::runtime::view::ViewServer,
    frame: crate::runtime::view::ViewFrame,
    /// Events and time at the last update (for the recent event rate).
    rate: (u64, Instant),
}

/// One update of the page.
#[derive(Serialize)]
struct ViewUpdate {
    t_s: f64,
    steps: u64,
    events_per_s: f64,
    lag_s: f64,
    dropped_bins: u64,
    coalesced_bins: u64,
    learning: bool,
    label: Option<usize>,
    prediction: Option<ViewPrediction>,
    probs: Vec<f32>,
    running_accuracy: Option<f64>,
    view_dropped: u64,
    frame: String,
    sat: f32,
    /// Event time the frame's events span, in ms.
    frame_ms: f64,
}

#[derive(Serialize)]
struct ViewPrediction {
    class: usize,
    confidence: f32,
}

impl LiveView {
    fn start(addr: &str, cfg: &StreamConfig, preset: &Preset, sensor: SensorSize) -> Result<Self> {
        use crate::runtime::view::{ViewFrame, ViewMeta, ViewServer};
        let frame = ViewFrame::new(sensor);
        // Names: given, else the source's own (the synthetic scene's directions, a dataset's
        // classes), else the preset's (DVS128-Gesture's gestures, N-MNIST's digits).
        let names = if !cfg.class_names.is_empty() {
            cfg.class_names.clone()
        } else {
            use crate::render::NamesFrom;
            let from = match &cfg.source {
                Source::Synthetic(c) => NamesFrom::Synthetic(c),
                Source::Dataset { name, root, .. } => NamesFrom::Dataset { name, root },
                _ => NamesFrom::Other,
            };
            crate::render::class_names(from, Some((&preset.name, preset.classes))).unwrap_or_default()
        };
        let meta = ViewMeta {
            classes: (0..preset.classes)
                .map(|k| names.get(k).cloned().unwrap_or_else(|| format!("class {k}")))
                .collect(),
            sensor: [sensor.width, sensor.height],
            frame: frame.size(),
            downscale: frame.downscale(),
            preset: preset.name.clone(),
            source: describe(&cfg.source),
            learn: cfg.learn,
        };
        let server = ViewServer::start(addr, &meta)?;
        eprintln!("view: http://{}/ (read-only)", server.addr());
        Ok(Self {
            server,
            frame,
            rate: (0, Instant::now()),
        })
    }

    fn publish(
        &mut self,
        sink: &Sink<'_>,
        first_t: Option<u64>,
        lag_s: f64,
        (dropped, coalesced): (u64, u64),
    ) -> Result<()> {
        let (frame, sat, span_us) = self.frame.take();
        let now = Instant::now();
        let secs = now.duration_since(self.rate.1).as_secs_f64().max(1e-6);
        let events_per_s = sink.events.saturating_sub(self.rate.0) as f64 / secs;
        self.rate = (sink.events, now);
        let (prediction, label) = match sink.pred.last {
            Some(((class, confidence), label)) => (Some(ViewPrediction { class, confidence }), label),
            None => (None, None),
        };
        self.server.publish(&ViewUpdate {
            t_s: sink
                .last_bin_end
                .saturating_sub(first_t.unwrap_or(sink.last_bin_end)) as f64
                * 1e-6,
            steps: sink.steps,
            events_per_s,
            lag_s,
            dropped_bins: dropped,
            coalesced_bins: coalesced,
            learning: sink.cfg.learn,
            label,
            prediction,
            probs: sink.pred.smooth.probabilities(),
            running_accuracy: sink.pred.accuracy(),
            view_dropped: self.server.dropped(),
            frame,
            sat,
            frame_ms: span_us as f64 * 1e-3,
        })
    }
}

fn peak_rss() -> u64 {
    crate::train::peak_rss_bytes()
}

/// Runs a stream to its end (or `max_steps`), from `cfg.checkpoint` if set, otherwise from a
/// fresh network of `cfg.preset`.
pub fn run(cfg: &StreamConfig) -> Result<Summary> {
    let model = match &cfg.checkpoint {
        Some(dir) => load_model(dir, cfg.lr)?,
        None => new_model(cfg)?,
    };
    Ok(run_model(cfg, model)?.0)
}

/// A trained STDL model to stream with: the `OUT/checkpoint` directory of `stdl train` (its
/// plan, weights and optimiser state), or a stream's `--checkpoint-dir` (weights and optimiser
/// state for its preset). Learning goes on at `lr`.
pub fn load_model(dir: &std::path::Path, lr: f32) -> Result<StdlModel> {
    let state_path = dir.join("state.json");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).with_context(|| {
            format!(
                "reading {} (--checkpoint takes the OUT/checkpoint directory of `stdl train` or a \
                 stream's --checkpoint-dir)",
                state_path.display()
            )
        })?)
        .with_context(|| format!("parsing {}", state_path.display()))?;
    let mut model = if state.get("config").is_some() {
        match crate::train::load_checkpoint(dir, true)?.2 {
            crate::train::Model::Stdl(m) => *m,
            crate::train::Model::Bptt(_) => bail!(
                "{} holds a BPTT model; streaming learns online with STDL: train with --method stdl",
                dir.display()
            ),
        }
    } else {
        let ck: StreamCheckpoint = serde_json::from_value(state).with_context(|| {
            format!(
                "{} is neither a `stdl train` nor a stream checkpoint state",
                state_path.display()
            )
        })?;
        // The whole preset is stored beside the weights (older checkpoints: its name only).
        let stored = dir.join("preset.toml");
        let preset = if stored.exists() {
            stored.to_string_lossy().into_owned()
        } else {
            ck.preset
        };
        let mut m = new_model(&StreamConfig::new(Source::Stdin, preset))?;
        load_weights(&mut m, dir)?;
        m
    };
    for s in &mut model.stages {
        s.opt.cfg.lr = lr;
    }
    Ok(model)
}

/// A fresh model for a stream: the preset's network planned for batch size 1.
pub fn new_model(cfg: &StreamConfig) -> Result<StdlModel> {
    let preset = Preset::load(&cfg.preset)?;
    let spec = NetworkSpec::new(&preset)?;
    let opt = OptimConfig {
        lr: cfg.lr,
        ..preset.train.optimizer
    };
    let p = plan(&spec, 1, None, opt.state_floats_per_param())?;
    StdlModel::new(spec, p, cfg.seed, opt, 1)
}

/// Steps queued between the stream's pipeline stages (and before the first).
pub const PIPELINE_QUEUE: usize = 4;

/// A bin on its way to the learner.
struct Bin {
    x: Tensor,
    t_end_us: u64,
    label: Option<usize>,
}

/// Bins a live source may hold back, besides the learner's queue of 4, before the overload
/// policy applies: at 10 ms bins, at most about 80 ms between a bin's end and its learning.
pub const LIVE_BACKLOG_BINS: usize = 4;

/// The learner side: the pipeline, predictions, checkpoints and step counts.
struct Sink<'a> {
    cfg: &'a StreamConfig,
    preset_name: String,
    /// The preset, stored whole with each checkpoint.
    preset: Preset,
    pipe: Pipeline,
    /// Steps in the pipeline: end time and label, oldest first (`None`: a replayed step,
    /// which makes no prediction).
    pending: VecDeque<Option<(u64, Option<usize>)>>,
    /// Replay between live steps.
    replay: Option<crate::runtime::replay::StreamReplay>,
    pred: Predictor,
    out: Output,
    steps: u64,
    events: u64,
    last_bin_end: u64,
    ck_steps: u64,
    ck_time: Instant,
    rss_at: Vec<(u64, u64)>,
    heap_at: Vec<(u64, u64)>,
    /// Why learning stopped, if it diverged.
    diverged: Option<String>,
}

impl Sink<'_> {
    /// Hands a bin to the learner: waits for room when `wait`, otherwise gives the bin back
    /// when the learner's queue is full.
    fn offer(&mut self, bin: Bin, wait: bool) -> Result<Option<Bin>> {
        let labels = if self.cfg.learn {
            bin.label.map(|l| vec![l])
        } else {
            None
        };
        let learned = labels.as_ref().map(|l| l[0]);
        // Only a learned bin joins the reservoir; an unlabelled one just ends a segment.
        if let (Some(r), Some(_)) = (self.replay.as_mut(), learned) {
            r.offering(&bin.x);
        }
        let x = if wait {
            self.pipe.send(bin.x, labels);
            None
        } else {
            self.pipe.try_send(bin.x, labels).err()
        };
        if let Some(x) = x {
            return Ok(Some(Bin { x, ..bin }));
        }
        if let Some(r) = self.replay.as_mut() {
            r.accepted(learned);
        }
        self.pending.push_back(Some((bin.t_end_us, bin.label)));
        self.steps += 1;
        self.last_bin_end = bin.t_end_us;
        self.maybe_checkpoint()?;
        if self.cfg.report_at_steps.contains(&self.steps) {
            // With no step in flight: what the learner keeps between steps (and what waits
            // in the binner).
            self.drain(0)?;
            self.rss_at.push((self.steps, peak_rss()));
            if let Some(b) = crate::heap::live_bytes() {
                self.heap_at.push((self.steps, b));
            }
        }
        Ok(None)
    }

    /// Turns finished steps into predictions: waits while more than `keep` are in flight,
    /// then takes whatever else is ready.
    fn drain(&mut self, keep: usize) -> Result<()> {
        while self.pending.len() > keep {
            let out = self.pipe.recv().context("pipeline stopped")?;
            self.finished(out)?;
        }
        while !self.pending.is_empty() {
            let Some(out) = self.pipe.try_recv() else { break };
            self.finished(out)?;
        }
        Ok(())
    }

    /// The oldest pending step's output: a prediction for a live step.
    fn finished(&mut self, out: crate::runtime::StageOutput) -> Result<()> {
        let meta = self.pending.pop_front().expect("a pending step");
        self.check_loss(&out, meta.map_or(self.last_bin_end, |m| m.0));
        if let Some(meta) = meta {
            self.pred
                .handle(out, meta, &mut self.out)
                .with_context(|| format!("writing predictions to {}", self.out_name()))?;
        }
        Ok(())
    }

    /// Hands due replayed steps to the learner (waiting for room when `wait`); false while
    /// some are left (the learner's queue is full), so that no live step comes between the
    /// steps of a segment.
    fn send_replay(&mut self, wait: bool) -> Result<bool> {
        while let Some((ctx, x, label)) = self.replay.as_ref().and_then(|r| r.next()) {
            if wait {
                self.pipe.send_in(ctx, x, Some(vec![label]));
            } else if self.pipe.try_send_in(ctx, x, Some(vec![label])).is_err() {
                return Ok(false);
            }
            self.replay.as_mut().expect("replay").sent();
            self.pending.push_back(None);
            self.drain(if wait { 4 } else { usize::MAX })?;
        }
        Ok(true)
    }

    /// Where predictions go, for messages.
    fn out_name(&self) -> String {
        self.cfg
            .predictions
            .as_ref()
            .map_or_else(|| "standard output".into(), |p| p.display().to_string())
    }

    /// Records the first step whose loss is not finite (learning diverged).
    fn check_loss(&mut self, out: &crate::runtime::StageOutput, t_end_us: u64) {
        if self.diverged.is_none() && out.loss.is_some_and(|l| !l.is_finite()) {
            let done = self.steps - self.pending.len() as u64;
            self.diverged = Some(format!(
                "learning diverged at step {done} (bin ending at {t_end_us} us): the loss is not \
                 finite; lower --lr (now {}); no checkpoint was written after it",
                self.cfg.lr
            ));
        }
    }

    fn maybe_checkpoint(&mut self) -> Result<()> {
        if self.diverged.is_some() {
            return Ok(());
        }
        let Some(dir) = &self.cfg.checkpoint_dir else {
            return Ok(());
        };
        let due = self
            .cfg
            .checkpoint_every_steps
            .is_some_and(|n| self.steps - self.ck_steps >= n)
            || self
                .cfg
                .checkpoint_every_s
                .is_some_and(|sec| self.ck_time.elapsed().as_secs_f64() >= sec);
        if due {
            // Empty the pipeline first: a stage blocked on a full output queue could not
            // answer the snapshot.
            self.drain(0)?;
            self.save(dir.clone())?;
            (self.ck_steps, self.ck_time) = (self.steps, Instant::now());
        }
        Ok(())
    }

    fn save(&mut self, dir: PathBuf) -> Result<()> {
        let state = self.pipe.snapshot().context("pipeline stopped")?;
        let ck = StreamCheckpoint {
            steps: self.steps,
            t_us: self.last_bin_end,
            events: self.events,
            preset: self.preset_name.clone(),
        };
        save_checkpoint(&dir, &state, &ck, &self.preset)
    }

    fn done(&self) -> bool {
        self.cfg.max_steps.is_some_and(|m| self.steps >= m) || self.diverged.is_some()
    }

    /// Whether Ctrl-C or SIGTERM asked to stop (says so once it has).
    fn interrupted(&self) -> bool {
        let stop = crate::runtime::interrupt::requested();
        if stop {
            eprintln!("interrupted: stopping after step {}", self.steps);
        }
        stop
    }

    /// Hands waiting bins to the learner, oldest first (waiting for room when `wait`, else
    /// keeping what does not fit), and turns finished steps into predictions. True once the
    /// run should stop: `max_steps` reached or interrupted.
    fn flush(&mut self, backlog: &mut VecDeque<Bin>, wait: bool) -> Result<bool> {
        while self.send_replay(wait)? {
            let Some(bin) = backlog.pop_front() else { break };
            if let Some(back) = self.offer(bin, wait)? {
                backlog.push_front(back);
                break;
            }
            self.drain(if wait { 4 } else { usize::MAX })?;
            if self.done() || self.interrupted() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Runs a stream through `model` (which keeps what it learns) and returns it.
pub fn run_model(cfg: &StreamConfig, mut model: StdlModel) -> Result<(Summary, StdlModel)> {
    let preset = model.spec.preset.clone();
    // One stream per checkpoint directory: a second fails here, before it writes anything.
    let _lock = match &cfg.checkpoint_dir {
        Some(dir) => Some(crate::store::DirLock::acquire(dir)?),
        None => None,
    };
    // Resume: weights, optimiser state, step count and stream position from the checkpoint.
    let mut resumed: Option<StreamCheckpoint> = None;
    if let (true, Some(dir)) = (cfg.resume, &cfg.checkpoint_dir) {
        let state = dir.join("state.json");
        if state.exists() {
            let ck: StreamCheckpoint = crate::store::read_json(&state)?;
            load_weights(&mut model, dir)?;
            eprintln!(
                "resuming from {} at step {} (t = {} us)",
                dir.display(),
                ck.steps,
                ck.t_us
            );
            resumed = Some(ck);
        } else {
            eprintln!("no checkpoint in {}; starting fresh", dir.display());
        }
    }
    // Both convolution paths' buffers allocated before the first bin (flat memory).
    model.warm_up(1, Some(PIPELINE_QUEUE));
    if cfg.profile {
        model.stages.iter_mut().for_each(|s| s.set_profiling(true));
    }
    if cfg.strategy.kind != crate::stdl::StrategyKind::Naive {
        cfg.strategy.validate().map_err(anyhow::Error::msg)?;
        model.set_strategy(&cfg.strategy);
    }
    if let Some(last) = model.stages.last_mut() {
        last.min_step = cfg.min_step;
    }
    let stages = std::mem::take(&mut model.stages);
    let dims = Dims::new(preset.input[0], preset.input[1], preset.input[2]);
    let rows: Vec<LabelRow> = match &cfg.labels_csv {
        Some(p) => {
            parse_labels(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
                .map_err(|m| anyhow::anyhow!("{}: {m}", p.display()))?
        }
        None => Vec::new(),
    };
    if let Some(r) = rows
        .iter()
        .find(|r| r.class == 0 || r.class as usize > preset.classes)
    {
        bail!(
            "{}: label class {} is not one of the preset's classes 1..={} (classes count from 1)",
            cfg.labels_csv
                .as_ref()
                .expect("rows come from --labels")
                .display(),
            r.class,
            preset.classes
        );
    }
    if let Source::Dataset { name, root, split } = &cfg.source {
        // Checked before anything is learned (the source thread opens it again to play it).
        let ds = stdl_io::datasets::Dataset::open(name, root)?;
        crate::data::check_labels(&ds, ds.split(*split), preset.classes, &preset.name)?;
    }
    let label_at = |t: u64| {
        rows.iter()
            .find(|r| r.start_us <= t && t < r.end_us)
            .map(|r| r.class as usize - 1)
    };
    // A frame becomes a bin for the learner, with the label at its middle: from the labels
    // file, else the label changes of a labelled source or live labels (consumed up to it),
    // else the constant label.
    let bin_of = |f: stdl_io::frames::Frame, changes: &mut VecDeque<(u64, Option<usize>)>| {
        let mid = (f.t_start_us + f.t_end_us) / 2;
        let label = if !rows.is_empty() {
            label_at(mid)
        } else if !changes.is_empty() {
            while changes.len() > 1 && changes[1].0 <= mid {
                changes.pop_front();
            }
            changes.front().filter(|c| c.0 <= mid).and_then(|c| c.1)
        } else {
            cfg.constant_label
        };
        Bin {
            x: Tensor::from_vec(1, dims, f.data),
            t_end_us: f.t_end_us,
            label,
        }
    };
    if cfg.live_labels.as_deref() == Some("-") && matches!(cfg.source, Source::Stdin) {
        bail!("the source already reads standard input; give --live-labels a file");
    }
    // A synthetic scene has as many classes as the network.
    let mut cfg = cfg.clone();
    if let Source::Synthetic(c) = &mut cfg.source {
        c.classes = preset.classes;
    }
    let cfg = &cfg;
    let policy = cfg.overload.resolve(&cfg.source);
    let settings = SourceSettings {
        source: cfg.source.clone(),
        format: cfg.format,
        sensor_size: cfg.sensor_size,
        speed: cfg.speed,
        max_steps: cfg.max_steps,
        bin_us: cfg.bin_us,
        connect_timeout: cfg.connect_timeout,
        read_timeout: cfg.read_timeout,
    };
    let (mut ring, ctl, source_thread) = spawn_source(&settings, resumed.as_ref().map_or(0, |c| c.t_us));
    let target = SensorSize::new(dims.w as u16, dims.h as u16);
    // Until the source states its size (a server that is down or silent, a FIFO without a
    // writer), Ctrl-C still stops the stream, with its summary: nothing was binned.
    // A source that fails before its first event (no such file, not a recording) ends the
    // stream the same way, with its error in the summary.
    let mut error: Option<String> = None;
    let sensor = loop {
        match ctl.recv_timeout(Duration::from_millis(50)) {
            Ok(Control::Size(s)) => break s,
            Ok(Control::Failed(m)) => {
                error = Some(m);
                break target;
            }
            Ok(Control::Label(..)) => {}
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if crate::runtime::interrupt::requested() {
                    break target;
                }
            }
            Err(_) => bail!("the source ended before its first events"),
        }
    };
    // Output files are created once the source is known to work (an earlier file of the
    // same name is replaced only when the stream ends: every output is written atomically).
    let pred_out = match &cfg.predictions {
        _ if error.is_some() => Output::None,
        Some(p) => Output::File(crate::store::AtomicFile::create(p)?),
        None => Output::Stdout(std::io::BufWriter::new(std::io::stdout())),
    };
    let mut metrics_out = match &cfg.metrics {
        Some(p) if error.is_none() => Some(crate::store::AtomicFile::create(p)?),
        _ => None,
    };
    let geom = if sensor == target {
        Geometry::new(sensor, Channels::Split)?
    } else {
        Geometry::resized(sensor, target, Channels::Split)
            .with_context(|| format!("the preset's input {target} must not exceed the sensor {sensor}"))?
    };
    let mut binner = StreamBinner::new(geom, cfg.bin_us)?.with_max_gap(cfg.max_gap_us);
    // The live page: its server runs beside the learner and never makes it wait.
    let mut view = match &cfg.view {
        Some(addr) if error.is_none() => Some(LiveView::start(addr, cfg, &preset, sensor)?),
        _ => None,
    };
    let start = Instant::now();
    let (events0, steps0) = resumed.as_ref().map_or((0, 0), |c| (c.events, c.steps));
    let mut sink = Sink {
        cfg,
        preset_name: preset.name.clone(),
        preset: preset.clone(),
        pipe: Pipeline::start_primed(stages, PIPELINE_QUEUE),
        pending: VecDeque::new(),
        replay: match &cfg.replay {
            Some(r) if cfg.learn && r.bytes > 0 => {
                Some(crate::runtime::replay::StreamReplay::new(r, dims, cfg.seed)?)
            }
            _ => None,
        },
        pred: Predictor {
            smooth: Default::default(),
            last: None,
            alpha: 1.0 / cfg.ema_steps.max(1.0),
            labelled: 0,
            correct: 0,
        },
        out: pred_out,
        steps: steps0,
        events: events0,
        last_bin_end: resumed.as_ref().map_or(0, |c| c.t_us),
        ck_steps: steps0,
        ck_time: Instant::now(),
        rss_at: Vec::new(),
        heap_at: Vec::new(),
        diverged: None,
    };
    let (mut first_t, mut last_t) = (None::<u64>, 0u64);
    // Label changes of a labelled source, by time: a bin takes the label at its middle.
    let mut label_changes: VecDeque<(u64, Option<usize>)> = VecDeque::new();
    let live = cfg.live_labels.as_deref().map(spawn_live_labels);
    let wait = policy == Overload::Block;
    // Live sources must not wait on the learner: poll often, hand bins over without blocking.
    let poll = Duration::from_millis(if wait { 100 } else { 2 });
    let mut backlog: VecDeque<Bin> = VecDeque::new();
    let (mut bins, mut dropped, mut coalesced) = (0u64, 0u64, 0u64);
    let mut batch: Vec<Event> = Vec::new();
    let mut last_metrics = Instant::now();
    // Spike counts at the last metrics line (taken now, so that what a line holds between
    // lines is allocated before the first step).
    let mut prev_spikes: Vec<SpikeCount> = sink.pipe.spike_counts().unwrap_or_default();
    let mut stop = false;
    'outer: loop {
        batch.clear();
        let popped = ring.pop_into(&mut batch, 1 << 13, poll);
        // Labels are sent before the events they label; a failure after the last good event.
        for c in ctl.try_iter() {
            match c {
                // The source sends a label only when it changes.
                Control::Label(t, l) => label_changes.push_back((t, Some(l))),
                Control::Failed(m) => {
                    eprintln!("source: {m}");
                    error = Some(m);
                }
                Control::Size(_) => {}
            }
        }
        if sink.interrupted() {
            stop = true;
            break 'outer;
        }
        sink.events += batch.len() as u64;
        if let (Some(f), Some(l)) = (batch.first(), batch.last()) {
            first_t.get_or_insert(f.t_us);
            last_t = last_t.max(l.t_us);
        }
        if let Some(v) = view.as_mut() {
            v.frame.add(&batch);
            if v.frame.due() {
                let lag = lag_s(last_t, sink.last_bin_end, first_t);
                v.publish(&sink, first_t, lag, (dropped, coalesced))?;
            }
        }
        if let Some(live) = &live {
            for c in live.try_iter().filter(|c| c.t_us != Some(u64::MAX)) {
                if let Some(l) = c.label.filter(|&l| l >= preset.classes) {
                    eprintln!(
                        "live label {l} ignored: the preset has classes 0..={} (0-based)",
                        preset.classes - 1
                    );
                    continue;
                }
                // "now" is the earliest time of this batch: its bins are the ones to come.
                let t = c.t_us.unwrap_or_else(|| batch.first().map_or(last_t, |e| e.t_us));
                label_changes.push_back((t, c.label));
            }
            // Commands may name times out of order: keep the changes sorted by time.
            label_changes.make_contiguous().sort_by_key(|c| c.0);
        }
        // One bin at a time, however far apart the events are: a gap is binned lazily, with
        // the step limit and the stop flag looked at between every two bins.
        let mut rest = &batch[..];
        loop {
            let (n, binned) = binner.next(rest);
            rest = &rest[n..];
            let f = match binned {
                Binned::NeedMore => break,
                Binned::Frame(f) => f,
                Binned::Jump { from_us, to_us } => {
                    let m = format!(
                        "event time jumped from {from_us} us to {to_us} us, more than --max-gap-us {}",
                        cfg.max_gap_us.unwrap_or(0)
                    );
                    if cfg.strict {
                        error = Some(format!("{m} (--strict)"));
                        stop = true;
                        break 'outer;
                    }
                    eprintln!("{m}: resynchronised");
                    continue;
                }
            };
            bins += 1;
            backlog.push_back(bin_of(f, &mut label_changes));
            // Live overload: more bins waiting than the learner's queue and the backlog hold.
            while backlog.len() > LIVE_BACKLOG_BINS {
                let oldest = backlog.pop_front().expect("a backlog");
                match policy {
                    Overload::Block | Overload::Auto => unreachable!("block never holds a backlog"),
                    Overload::DropOldest => dropped += 1,
                    Overload::Coalesce => {
                        let next = backlog.front_mut().expect("a newer bin");
                        for (a, b) in next.x.data.iter_mut().zip(&oldest.x.data) {
                            *a += b;
                        }
                        coalesced += 1;
                    }
                }
            }
            if sink.flush(&mut backlog, wait)? {
                stop = true;
                break 'outer;
            }
            if sink.interrupted() {
                stop = true;
                break 'outer;
            }
        }
        if !wait {
            // Between event batches: what the learner has room for, and what it finished.
            if sink.flush(&mut backlog, false)? {
                stop = true;
                break 'outer;
            }
            sink.drain(usize::MAX)?;
        }
        if last_metrics.elapsed().as_secs_f64() >= cfg.metrics_every_s {
            last_metrics = Instant::now();
            // Each LIF layer's spike density since the last line (counted on a sample of
            // steps; waits for the steps already queued).
            let spikes = sink.pipe.spike_counts().unwrap_or_default();
            let density: Vec<serde_json::Value> = spikes
                .iter()
                .zip(
                    prev_spikes
                        .iter()
                        .chain(std::iter::repeat(&SpikeCount::default())),
                )
                .map(|(c, p)| {
                    let (ds, dn) = (
                        c.spikes.saturating_sub(p.spikes),
                        c.neurons.saturating_sub(p.neurons),
                    );
                    serde_json::json!({"stage": c.stage, "part": c.part, "layer": c.layer,
                        "density": (dn > 0).then(|| ds as f64 / dn as f64)})
                })
                .collect();
            prev_spikes = spikes;
            let secs = start.elapsed().as_secs_f64();
            let line = serde_json::json!({
                "seconds": secs, "events": sink.events, "steps": sink.steps,
                "events_per_s": sink.events as f64 / secs, "frames_per_s": sink.steps as f64 / secs,
                // How far the learner is behind the source: event time read but not yet
                // handed to the learner (in the binner or a live backlog).
                "lag_s": lag_s(last_t, sink.last_bin_end, first_t),
                "dropped_bins": dropped, "coalesced_bins": coalesced,
                "ring_events": ring.backlog(),
                "running_accuracy": sink.pred.accuracy(),
                "peak_rss_bytes": peak_rss(),
                "spike_density": density,
            });
            eprintln!("{line}");
            if let Some(m) = &mut metrics_out {
                writeln!(m, "{line}")?;
            }
        }
        if popped == Pop::Closed {
            break;
        }
    }
    // The source ended: its last, partial bin is learned from too (its events are good),
    // unless `drop_partial`. Then bins still held back by a live policy are learned from.
    let binned = if stop {
        binner.stats().clone()
    } else {
        let mut last = None;
        let stats = binner.finish(!cfg.drop_partial, |f| last = Some(f));
        if let Some(f) = last {
            bins += 1;
            backlog.push_back(bin_of(f, &mut label_changes));
        }
        sink.flush(&mut backlog, true)?;
        stats
    };
    dropped += backlog.len() as u64;
    drop(ring);
    sink.drain(0)?;
    let mut error = error.or(sink.diverged.clone());
    if let (None, Some(dir), true) = (&sink.diverged, cfg.checkpoint_dir.clone(), sink.steps > steps0) {
        // The final checkpoint (also after Ctrl-C or a failed source: what was learned from
        // the good events is kept; a run that learned nothing leaves the directory as it
        // was). A failure to write it is the run's error; the summary still records the run.
        if let Err(e) = sink.save(dir) {
            error.get_or_insert(format!("{e:#}"));
        }
    }
    for r in [
        std::mem::replace(&mut sink.out, Output::None).finish(),
        metrics_out.map_or(Ok(()), |m| m.commit().map_err(Into::into)),
    ] {
        if let Err(e) = r {
            error.get_or_insert(format!("{e:#}"));
        }
    }
    let Sink {
        pipe,
        pred,
        steps,
        events,
        rss_at,
        heap_at,
        replay,
        ..
    } = sink;
    model.stages = pipe.finish();
    model.reset_state();
    if !stop {
        let _ = source_thread.join();
    }
    let summary = Summary {
        events,
        steps,
        bins,
        dropped_bins: dropped,
        coalesced_bins: coalesced,
        overload: policy,
        accuracy: pred.accuracy().map(|a| a as f32),
        labelled_steps: pred.labelled,
        peak_rss_bytes: peak_rss(),
        seconds: start.elapsed().as_secs_f64(),
        stream_seconds: (last_t - first_t.unwrap_or(last_t)) as f64 * 1e-6,
        peak_rss_at_steps: rss_at,
        heap_bytes_at_steps: heap_at,
        time_jumps: binned.time_jumps,
        skipped_bins: binned.skipped_bins,
        interrupted: crate::runtime::interrupt::requested(),
        error,
        view_updates_dropped: view.as_ref().map(|v| v.server.dropped()),
        replay: replay.map(|r| r.stats()),
        strategy: cfg.strategy.kind,
        profile: cfg.profile.then(|| {
            let rows = crate::stdl::profile(&model.stages);
            model.stages.iter_mut().for_each(|s| s.set_profiling(false));
            rows
        }),
    };
    if let Some(p) = &cfg.summary {
        crate::store::write_json(p, &summary)?;
    }
    Ok((summary, model))
}
