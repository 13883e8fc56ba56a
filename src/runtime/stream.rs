//! `stdl stream`: events from a file, stdin, a DV network stream or a synthetic scene,
//! binned on event time, learned from online with STDL while predicting, with the
//! subnetworks as pipeline stages.
//!
//! Threads: the source reads and decodes on its own thread and sends event batches over a
//! bounded channel (a full channel blocks the reader: replay is lossless); the main thread
//! bins and labels; one thread per subnetwork learns and predicts; the main thread turns
//! readout logits into predictions.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossbeam_channel::bounded;
use serde::Serialize;
use stdl_io::datasets::dvs_gesture::{parse_labels, LabelRow};
use stdl_io::frames::{Channels, Geometry, StreamBinner};
use stdl_io::sources::{SyntheticConfig, SyntheticScene};
use stdl_io::{Event, EventReader, Format, ReadOptions, SensorSize};
use stdl_models::network::NetworkSpec;
use stdl_models::optim::OptimConfig;
use stdl_models::{Dims, Preset, Tensor};

use crate::runtime::Pipeline;
use crate::stdl::{plan, StdlModel};

/// Where events come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A recording, replayed.
    File(PathBuf),
    /// Raw bytes of any supported format on standard input.
    Stdin,
    /// A DV (AEDAT 4) network stream, `HOST:PORT`.
    DvTcp(String),
    /// The seeded synthetic scene (labelled).
    Synthetic(SyntheticConfig),
    /// The samples of a dataset split, played one after another as one labelled stream
    /// (each sample's times shifted to follow the previous one).
    Dataset {
        /// Dataset name (`nmnist`, `dvs-gesture`, `ncaltech101`, `cifar10-dvs`).
        name: String,
        /// Its root directory.
        root: PathBuf,
        /// Which split.
        split: stdl_io::datasets::Split,
    },
}

impl Source {
    /// Parses `--source`: `file://PATH`, a plain path, `stdin`, `dv-tcp://HOST:PORT`,
    /// `synthetic` or `synthetic:SEED`.
    pub fn parse(s: &str) -> Result<Source> {
        Ok(if let Some(p) = s.strip_prefix("file://") {
            Source::File(PathBuf::from(p))
        } else if s == "stdin" || s == "-" {
            Source::Stdin
        } else if let Some(a) = s.strip_prefix("dv-tcp://") {
            Source::DvTcp(a.to_owned())
        } else if s == "synthetic" || s.starts_with("synthetic:") {
            let seed = s
                .strip_prefix("synthetic:")
                .map(|v| v.parse())
                .transpose()
                .context("synthetic:SEED")?
                .unwrap_or(0);
            Source::Synthetic(SyntheticConfig {
                seed,
                ..Default::default()
            })
        } else if s.starts_with("camera://") {
            bail!(
                "camera sources need the `camera` feature and a connected device (not built in this binary)"
            );
        } else {
            Source::File(PathBuf::from(s))
        })
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
}

/// One live label command: from time `t_us` (or the current stream time) on, `label`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelCmd {
    /// `None`: "now".
    pub t_us: Option<u64>,
    /// `None`: unlabelled.
    pub label: Option<usize>,
}

/// Parses one live-label line.
pub fn parse_label_line(line: &str) -> std::result::Result<Option<LabelCmd>, String> {
    let mut it = line.split_whitespace();
    let Some(first) = it.next() else { return Ok(None) };
    if first.starts_with('#') {
        return Ok(None);
    }
    let bad = || format!("live label line {line:?}: expected `now LABEL`, `T_US LABEL` or `none`");
    if first == "none" {
        return Ok(Some(LabelCmd {
            t_us: None,
            label: None,
        }));
    }
    let t_us = if first == "now" {
        None
    } else {
        Some(first.parse::<u64>().map_err(|_| bad())?)
    };
    let label = match it.next() {
        Some("none") => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| bad())?),
        None => return Err(bad()),
    };
    Ok(Some(LabelCmd { t_us, label }))
}

/// Reads live label lines on a thread: standard input, or a file followed as it grows.
fn spawn_live_labels(src: &str) -> crossbeam_channel::Receiver<LabelCmd> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let src = src.to_owned();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let send_line = |line: &str| match parse_label_line(line) {
            Ok(Some(c)) => tx.send(c).is_ok(),
            Ok(None) => true,
            Err(m) => {
                eprintln!("{m}");
                true
            }
        };
        if src == "-" {
            for line in std::io::stdin().lock().lines().map_while(|l| l.ok()) {
                if !send_line(&line) {
                    return;
                }
            }
            return;
        }
        let mut pos = 0u64;
        let mut partial = String::new();
        loop {
            if let Ok(mut f) = std::fs::File::open(&src) {
                use std::io::{Read, Seek};
                if f.seek(std::io::SeekFrom::Start(pos)).is_ok() {
                    let mut buf = String::new();
                    if let Ok(n) = f.read_to_string(&mut buf) {
                        pos += n as u64;
                        partial.push_str(&buf);
                        while let Some(i) = partial.find('\n') {
                            let line: String = partial.drain(..=i).collect();
                            if !send_line(line.trim_end()) {
                                return;
                            }
                        }
                    }
                }
            }
            if tx.is_empty()
                && tx
                    .send(LabelCmd {
                        t_us: Some(u64::MAX),
                        label: None,
                    })
                    .is_err()
            {
                return; // the stream has ended
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    rx
}

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

fn save_checkpoint(
    dir: &std::path::Path,
    state: &crate::runtime::pipeline::StageState,
    ck: &StreamCheckpoint,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    stdl_models::checkpoint::save(&dir.join("model.safetensors"), &state.0)?;
    stdl_models::checkpoint::save(&dir.join("optimizer.safetensors"), &state.1)?;
    // Written last: a state.json always names a complete checkpoint.
    stdl_models::checkpoint::write_atomic(
        &dir.join("state.json"),
        serde_json::to_string_pretty(ck)?.as_bytes(),
    )?;
    Ok(())
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
    /// Time steps (bins) processed.
    pub steps: u64,
    /// Bins dropped (replay never drops; live overload policy is not built yet).
    pub dropped_bins: u64,
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
}

enum Chunk {
    /// Events, and for labelled sources the label that holds from the given time on.
    Events(Vec<Event>, Option<(u64, usize)>),
    Size(SensorSize),
    Failed(String),
}

fn spawn_source(
    cfg: &StreamConfig,
    resume_t_us: u64,
) -> (crossbeam_channel::Receiver<Chunk>, std::thread::JoinHandle<()>) {
    let (tx, rx) = bounded::<Chunk>(64);
    let source = cfg.source.clone();
    let (format, size, speed, max_steps, bin_us) =
        (cfg.format, cfg.sensor_size, cfg.speed, cfg.max_steps, cfg.bin_us);
    let resume_t = resume_t_us;
    let h = std::thread::spawn(move || {
        let send_reader = |mut r: EventReader<'_>| {
            if let Err(e) = r.read_header() {
                let _ = tx.send(Chunk::Failed(format!("{e}")));
                return;
            }
            match size.or(r.sensor_size()) {
                Some(s) => {
                    let _ = tx.send(Chunk::Size(s));
                }
                None => {
                    let _ = tx.send(Chunk::Failed(
                        "the source states no sensor size; pass --sensor-size WxH".into(),
                    ));
                    return;
                }
            }
            let start = Instant::now();
            let mut t0 = None;
            let mut buf = Vec::new();
            while let Some(res) = r.read_into(&mut buf) {
                if let Err(e) = res {
                    let _ = tx.send(Chunk::Failed(format!("{e}")));
                    return;
                }
                if resume_t > 0 {
                    buf.retain(|e| e.t_us >= resume_t);
                    if buf.is_empty() {
                        continue;
                    }
                }
                if let (Some(speed), Some(last)) = (speed, buf.last()) {
                    let first = *t0.get_or_insert(buf[0].t_us);
                    let due = Duration::from_secs_f64(last.t_us.saturating_sub(first) as f64 * 1e-6 / speed);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                if tx.send(Chunk::Events(std::mem::take(&mut buf), None)).is_err() {
                    return;
                }
            }
        };
        let opts = ReadOptions {
            chunk_bytes: 64 << 10,
            sensor_size: size,
            ..ReadOptions::default()
        };
        match source {
            Source::File(p) => match EventReader::open_as(&p, format, &opts) {
                Ok(r) => send_reader(r),
                Err(e) => {
                    let _ = tx.send(Chunk::Failed(format!("{e}")));
                }
            },
            Source::Stdin => match EventReader::from_reader(std::io::stdin(), format, &opts) {
                Ok(r) => send_reader(r),
                Err(e) => {
                    let _ = tx.send(Chunk::Failed(format!("{e}")));
                }
            },
            Source::DvTcp(addr) => {
                // Reconnect with backoff when the server goes away.
                let mut backoff = Duration::from_millis(200);
                loop {
                    match std::net::TcpStream::connect(&addr) {
                        Ok(s) => {
                            eprintln!("connected to {addr}");
                            backoff = Duration::from_millis(200);
                            match EventReader::from_reader(s, Some(Format::Aedat4), &opts) {
                                Ok(r) => send_reader(r),
                                Err(e) => eprintln!("dv-tcp {addr}: {e}"),
                            }
                            eprintln!("dv-tcp {addr}: stream ended; reconnecting");
                        }
                        Err(e) => eprintln!("dv-tcp {addr}: {e}; retrying in {:.1} s", backoff.as_secs_f64()),
                    }
                    if tx.is_empty() && tx.send(Chunk::Events(Vec::new(), None)).is_err() {
                        return;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            Source::Dataset { name, root, split } => {
                let ds = match stdl_io::datasets::Dataset::open(&name, &root) {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = tx.send(Chunk::Failed(format!("{e}")));
                        return;
                    }
                };
                let Some(sensor) = size.or(ds.sensor) else {
                    let _ = tx.send(Chunk::Failed(format!(
                        "{name}: samples differ in size; pass --sensor-size WxH"
                    )));
                    return;
                };
                let _ = tx.send(Chunk::Size(sensor));
                let mut cursor = 0u64;
                for sample in ds.split(split) {
                    let loaded = match ds.load(sample) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = tx.send(Chunk::Failed(format!("{e}")));
                            return;
                        }
                    };
                    let Some(first) = loaded.events.first().map(|e| e.t_us) else {
                        continue;
                    };
                    let start = cursor;
                    let mut events: Vec<Event> = loaded
                        .events
                        .iter()
                        .map(|e| Event {
                            t_us: e.t_us.saturating_sub(first) + start,
                            ..*e
                        })
                        .collect();
                    cursor = events.last().map_or(start, |e| e.t_us) + 1;
                    if resume_t > 0 {
                        events.retain(|e| e.t_us >= resume_t);
                    }
                    if tx
                        .send(Chunk::Events(events, Some((start, loaded.label))))
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Source::Synthetic(c) => {
                let mut scene = SyntheticScene::new(c.clone());
                let _ = tx.send(Chunk::Size(c.size));
                let start = Instant::now();
                let ticks_per_bin = (bin_us / c.tick_us).max(1);
                let limit = max_steps.map(|s| (s + 2) * ticks_per_bin);
                let mut n = 0u64;
                loop {
                    let tick_start = scene.t_us();
                    let (events, label) = scene.next_tick();
                    if scene.t_us() <= resume_t {
                        continue; // fast-forward the deterministic scene to the checkpoint
                    }
                    if let Some(speed) = speed {
                        let due = Duration::from_secs_f64(scene.t_us() as f64 * 1e-6 / speed);
                        if let Some(wait) = due.checked_sub(start.elapsed()) {
                            std::thread::sleep(wait);
                        }
                    }
                    if tx.send(Chunk::Events(events, Some((tick_start, label)))).is_err() {
                        return;
                    }
                    n += 1;
                    if limit.is_some_and(|l| n >= l) {
                        return;
                    }
                }
            }
        }
    });
    (rx, h)
}

/// Smoothed predictions and their running accuracy.
struct Predictor {
    ema: Option<Vec<f32>>,
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
        let z = &out.logits.data;
        let e = self.ema.get_or_insert_with(|| z.clone());
        for (a, b) in e.iter_mut().zip(z) {
            *a += self.alpha * (b - *a);
        }
        let class = e
            .iter()
            .enumerate()
            .fold(0, |best, (i, v)| if *v > e[best] { i } else { best });
        let max = e[class];
        let confidence = 1.0 / e.iter().map(|v| (v - max).exp()).sum::<f32>();
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

fn peak_rss() -> u64 {
    crate::train::peak_rss_bytes()
}

/// Runs a stream to its end (or `max_steps`).
pub fn run(cfg: &StreamConfig) -> Result<Summary> {
    Ok(run_model(cfg, new_model(cfg)?)?.0)
}

/// A fresh model for a stream: the preset's network planned for batch size 1.
pub fn new_model(cfg: &StreamConfig) -> Result<StdlModel> {
    let preset = Preset::load(&cfg.preset)?;
    let spec = NetworkSpec::new(&preset)?;
    let p = plan(&spec, 1, None, 2)?;
    let opt = OptimConfig {
        lr: cfg.lr,
        ..preset.train.optimizer
    };
    StdlModel::new(spec, p, cfg.seed, opt, 1)
}

/// Runs a stream through `model` (which keeps what it learns) and returns it.
pub fn run_model(cfg: &StreamConfig, mut model: StdlModel) -> Result<(Summary, StdlModel)> {
    let preset = model.spec.preset.clone();
    // Resume: weights, optimiser state, step count and stream position from the checkpoint.
    let mut resumed: Option<StreamCheckpoint> = None;
    if let (true, Some(dir)) = (cfg.resume, &cfg.checkpoint_dir) {
        let state = dir.join("state.json");
        if state.exists() {
            let ck: StreamCheckpoint = serde_json::from_str(&std::fs::read_to_string(&state)?)
                .with_context(|| format!("reading {}", state.display()))?;
            model.load_params(&stdl_models::checkpoint::load(&dir.join("model.safetensors"))?)?;
            model.load_optimizer_state(&stdl_models::checkpoint::load(
                &dir.join("optimizer.safetensors"),
            )?);
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
    let stages = std::mem::take(&mut model.stages);
    let dims = Dims::new(preset.input[0], preset.input[1], preset.input[2]);
    let rows: Vec<LabelRow> = match &cfg.labels_csv {
        Some(p) => {
            parse_labels(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
                .map_err(|m| anyhow::anyhow!("{}: {m}", p.display()))?
        }
        None => Vec::new(),
    };
    if let Some(r) = rows.iter().find(|r| r.class as usize > preset.classes) {
        bail!(
            "label class {} exceeds the preset's {} classes",
            r.class,
            preset.classes
        );
    }
    let label_at = |t: u64| {
        rows.iter()
            .find(|r| r.start_us <= t && t < r.end_us)
            .map(|r| r.class as usize - 1)
    };
    let mut pred_out: Box<dyn Write> = match &cfg.predictions {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let mut metrics_out = match &cfg.metrics {
        Some(p) => Some(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => None,
    };
    // A synthetic scene has as many classes as the network.
    let mut cfg = cfg.clone();
    if let Source::Synthetic(c) = &mut cfg.source {
        c.classes = preset.classes;
    }
    let cfg = &cfg;
    let (rx, source_thread) = spawn_source(cfg, resumed.as_ref().map_or(0, |c| c.t_us));
    let sensor = match rx.recv() {
        Ok(Chunk::Size(s)) => s,
        Ok(Chunk::Failed(m)) => bail!("source: {m}"),
        _ => bail!("the source ended before its first events"),
    };
    let target = SensorSize::new(dims.w as u16, dims.h as u16);
    let geom = if sensor == target {
        Geometry::new(sensor, Channels::Split)?
    } else {
        Geometry::resized(sensor, target, Channels::Split)
            .with_context(|| format!("the preset's input {target} must not exceed the sensor {sensor}"))?
    };
    let mut binner = StreamBinner::new(geom, cfg.bin_us)?;
    let pipe = Pipeline::start(stages, 4);
    let start = Instant::now();
    let (mut events, mut steps) = resumed.as_ref().map_or((0, 0), |c| (c.events, c.steps));
    let (mut ck_steps, mut ck_time) = (steps, Instant::now());
    let mut last_bin_end = resumed.as_ref().map_or(0, |c| c.t_us);
    let mut rss_at: Vec<(u64, u64)> = Vec::new();
    let (mut first_t, mut last_t) = (None::<u64>, 0u64);
    let mut pending: VecDeque<(u64, Option<usize>)> = VecDeque::new();
    let mut pred = Predictor {
        ema: None,
        alpha: 1.0 / cfg.ema_steps.max(1.0),
        labelled: 0,
        correct: 0,
    };
    // Label changes of a labelled source, by time: a bin takes the label at its middle.
    let mut label_changes: VecDeque<(u64, Option<usize>)> = VecDeque::new();
    if cfg.live_labels.as_deref() == Some("-") && matches!(cfg.source, Source::Stdin) {
        bail!("the source already reads standard input; give --live-labels a file");
    }
    let live = cfg.live_labels.as_deref().map(spawn_live_labels);
    let mut last_metrics = Instant::now();
    let mut stop = false;
    'outer: loop {
        // Wake up now and then to notice an interrupt even when the source is quiet.
        let chunk = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => c,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if crate::runtime::interrupt::requested() {
                    eprintln!("interrupted: stopping after step {steps}");
                    stop = true;
                    break 'outer;
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        let (batch, lbl) = match chunk {
            Chunk::Events(b, l) => (b, l),
            Chunk::Size(_) => continue,
            Chunk::Failed(m) => {
                eprintln!("source: {m}");
                break;
            }
        };
        if let Some((t, l)) = lbl {
            if label_changes.back().map(|c| c.1) != Some(Some(l)) {
                label_changes.push_back((t, Some(l)));
            }
        }
        events += batch.len() as u64;
        if let (Some(f), Some(l)) = (batch.first(), batch.last()) {
            first_t.get_or_insert(f.t_us);
            last_t = last_t.max(l.t_us);
        }
        if let Some(live) = &live {
            for c in live.try_iter().filter(|c| c.t_us != Some(u64::MAX)) {
                // "now" is the earliest time of this batch: its bins are the ones to come.
                let t = c.t_us.unwrap_or_else(|| batch.first().map_or(last_t, |e| e.t_us));
                label_changes.push_back((t, c.label));
            }
            // Commands may name times out of order: keep the changes sorted by time.
            label_changes.make_contiguous().sort_by_key(|c| c.0);
        }
        let mut frames = Vec::new();
        binner.push(&batch, |f| frames.push(f));
        for f in frames {
            let mid = (f.t_start_us + f.t_end_us) / 2;
            let label = if !rows.is_empty() {
                label_at(mid)
            } else if !label_changes.is_empty() {
                while label_changes.len() > 1 && label_changes[1].0 <= mid {
                    label_changes.pop_front();
                }
                label_changes.front().filter(|c| c.0 <= mid).and_then(|c| c.1)
            } else {
                cfg.constant_label
            };
            let x = Tensor::from_vec(1, dims, f.data);
            pipe.send(x, if cfg.learn { label.map(|l| vec![l]) } else { None });
            pending.push_back((f.t_end_us, label));
            steps += 1;
            last_bin_end = f.t_end_us;
            if let Some(dir) = &cfg.checkpoint_dir {
                let due = cfg.checkpoint_every_steps.is_some_and(|n| steps - ck_steps >= n)
                    || cfg
                        .checkpoint_every_s
                        .is_some_and(|sec| ck_time.elapsed().as_secs_f64() >= sec);
                if due {
                    // Empty the pipeline first: a stage blocked on a full output queue could
                    // not answer the snapshot.
                    while let Some(meta) = pending.pop_front() {
                        let out = pipe.recv().context("pipeline stopped")?;
                        pred.handle(out, meta, &mut *pred_out)?;
                    }
                    let state = pipe.snapshot().context("pipeline stopped")?;
                    let ck = StreamCheckpoint {
                        steps,
                        t_us: f.t_end_us,
                        events,
                        preset: preset.name.clone(),
                    };
                    save_checkpoint(dir, &state, &ck)?;
                    (ck_steps, ck_time) = (steps, Instant::now());
                }
            }
            if cfg.report_at_steps.contains(&steps) {
                rss_at.push((steps, peak_rss()));
            }
            while pending.len() > 4 {
                let out = pipe.recv().context("pipeline stopped")?;
                let meta = pending.pop_front().unwrap();
                pred.handle(out, meta, &mut *pred_out)?;
            }
            if cfg.max_steps.is_some_and(|m| steps >= m) || crate::runtime::interrupt::requested() {
                if crate::runtime::interrupt::requested() {
                    eprintln!("interrupted: stopping after step {steps}");
                }
                stop = true;
                break 'outer;
            }
        }
        if last_metrics.elapsed().as_secs_f64() >= cfg.metrics_every_s {
            last_metrics = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            let line = serde_json::json!({
                "seconds": secs, "events": events, "steps": steps,
                "events_per_s": events as f64 / secs, "frames_per_s": steps as f64 / secs,
                // Paced replays and synthetic scenes: how far processing is behind the source's clock.
                "lag_s": cfg.speed.map(|sp| (secs - (last_t - first_t.unwrap_or(last_t)) as f64 * 1e-6 / sp).max(0.0)),
                "running_accuracy": pred.accuracy(),
                "peak_rss_bytes": peak_rss(),
            });
            eprintln!("{line}");
            if let Some(m) = &mut metrics_out {
                writeln!(m, "{line}")?;
            }
        }
    }
    drop(rx);
    while let Some(meta) = pending.pop_front() {
        let out = pipe.recv().context("pipeline stopped")?;
        pred.handle(out, meta, &mut *pred_out)?;
    }
    pred_out.flush()?;
    if let Some(dir) = &cfg.checkpoint_dir {
        // The final checkpoint of a run that ended cleanly.
        let state = pipe.snapshot().context("pipeline stopped")?;
        let ck = StreamCheckpoint {
            steps,
            t_us: last_bin_end,
            events,
            preset: preset.name.clone(),
        };
        save_checkpoint(dir, &state, &ck)?;
    }
    model.stages = pipe.finish();
    model.reset_state();
    if !stop {
        let _ = source_thread.join();
    }
    let summary = Summary {
        events,
        steps,
        dropped_bins: 0,
        accuracy: pred.accuracy().map(|a| a as f32),
        labelled_steps: pred.labelled,
        peak_rss_bytes: peak_rss(),
        seconds: start.elapsed().as_secs_f64(),
        stream_seconds: (last_t - first_t.unwrap_or(last_t)) as f64 * 1e-6,
        peak_rss_at_steps: rss_at,
    };
    if let Some(p) = &cfg.summary {
        stdl_models::checkpoint::write_atomic(p, serde_json::to_string_pretty(&summary)?.as_bytes())?;
    }
    Ok((summary, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_label_lines() {
        assert_eq!(
            parse_label_line("now 3"),
            Ok(Some(LabelCmd {
                t_us: None,
                label: Some(3)
            }))
        );
        assert_eq!(
            parse_label_line("1500 2"),
            Ok(Some(LabelCmd {
                t_us: Some(1500),
                label: Some(2)
            }))
        );
        assert_eq!(
            parse_label_line("none"),
            Ok(Some(LabelCmd {
                t_us: None,
                label: None
            }))
        );
        assert_eq!(parse_label_line("  # comment"), Ok(None));
        assert_eq!(parse_label_line(""), Ok(None));
        assert!(parse_label_line("now").is_err());
        assert!(parse_label_line("soon 3").is_err());
    }
}
