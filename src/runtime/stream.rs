//! `stdl stream`: the wiring. A source thread ([`crate::runtime::source`]) reads and
//! decodes events into a fixed-size ring (a full ring makes it wait: a replay is lossless);
//! this thread bins them on event time and labels the bins (a labels file, the source's own
//! labels, or live labels: [`crate::runtime::labels`]); bins wait in a [`Backlog`] kept short
//! by the overload policy ([`crate::runtime::overload`]); the [`Learner`] hands them to the
//! pipeline of STDL stages, one thread per subnetwork, with replayed segments between live
//! steps ([`crate::runtime::replay`]); its outputs go to the sinks
//! ([`crate::runtime::sink`]: predictions, metrics, the live page, the summary).

use std::time::{Duration, Instant};

use stdl_io::frames::{Binned, Frame, StreamBinner};
use stdl_io::{Event, SensorSize};
use stdl_models::{Dims, Tensor};

use crate::error::Result;
use crate::model::ModelSettings;
pub use crate::runtime::config::{StreamConfig, DEFAULT_MAX_GAP_US};
pub use crate::runtime::labels::{parse_label_line, LabelCmd};
use crate::runtime::labels::{spawn_live_labels, BinLabels};
use crate::runtime::learner::Learner;
pub use crate::runtime::learner::{load_model, new_model};
pub use crate::runtime::overload::{Backlog, Bin, Overload, LIVE_BACKLOG_BINS};
use crate::runtime::ring::Pop;
use crate::runtime::sink::live_view::{lag_s, LiveView};
use crate::runtime::sink::metrics::{Counters, Metrics};
use crate::runtime::sink::{open_outputs, Output};
pub use crate::runtime::sink::{Prediction, Summary};
pub use crate::runtime::source::Source;
pub use crate::runtime::source::EVENT_RING_CAPACITY;
use crate::runtime::source::{await_sensor, spawn_source, Control};
use crate::stdl::StdlModel;

/// Runs a stream to its end (or `max_steps`), from `cfg.checkpoint` if set, otherwise from a
/// fresh network of `cfg.preset`.
pub fn run(cfg: &StreamConfig) -> Result<Summary> {
    let model = match &cfg.checkpoint {
        Some(dir) => load_model(dir, cfg.lr)?,
        None => new_model(cfg)?,
    };
    Ok(run_model(cfg, model)?.0)
}

/// Runs a stream through `model` (which keeps what it learns) and returns it.
pub fn run_model(cfg: &StreamConfig, mut model: StdlModel) -> Result<(Summary, StdlModel)> {
    cfg.validate().map_err(crate::Error::Invalid)?;
    let preset = model.spec.preset.clone();
    let settings = ModelSettings::of_stdl(&model);
    // The stages overlap in time: each keeps to its own buffer classes while the stream runs.
    let _fit = stdl_models::pool::FitScope::enter(stdl_models::pool::Fit::OWN_CLASS);
    // One stream per checkpoint directory: a second fails here, before it writes anything.
    let _lock = match &cfg.checkpoint_dir {
        Some(dir) => Some(crate::store::DirLock::acquire(dir)?),
        None => None,
    };
    let resumed = crate::runtime::learner::prepare(cfg, &mut model)?;
    let stages = std::mem::take(&mut model.stages);
    let dims = Dims::new(preset.input[0], preset.input[1], preset.input[2]);
    let mut labels = BinLabels::new(cfg.labels_csv.as_deref(), cfg.constant_label, preset.classes)?;
    if let Source::Dataset { name, root, split } = &cfg.source {
        // Checked before anything is learned (the source thread opens it again to play it).
        let ds = stdl_io::datasets::Dataset::open(name, root)?;
        crate::data::check_labels(&ds, ds.split(*split), preset.classes, &preset.name)?;
    }
    // A synthetic scene has as many classes as the network.
    let mut cfg = cfg.clone();
    if let Source::Synthetic(c) = &mut cfg.source {
        c.classes = preset.classes;
    }
    let cfg = &cfg;
    let policy = cfg.overload.resolve(&cfg.source);
    let (mut ring, ctl, source_thread) = spawn_source(&cfg.source_settings(), resumed.map_or(0, |r| r.1));
    let (sensor, mut error) = await_sensor(&ctl, SensorSize::new(dims.w as u16, dims.h as u16), &cfg.stop)?;
    let (pred_out, metrics_out) = open_outputs(cfg, error.is_some())?;
    // The one frame-size rule of training and streaming (src/data.rs): as is, resized down,
    // or a smaller sensor placed at the origin of the network's input.
    let mut binner = StreamBinner::new(crate::data::frame_geometry(sensor, dims)?, cfg.bin_us)?
        .with_max_gap(cfg.max_gap_us);
    // The live page: its server runs beside the learner and never makes it wait.
    let mut view = match &cfg.view {
        Some(addr) if error.is_none() => Some(LiveView::start(addr, cfg, &preset, sensor)?),
        _ => None,
    };
    let start = Instant::now();
    let steps0 = resumed.map_or(0, |r| r.0);
    let mut sink = Learner::start(cfg, preset, settings, stages, pred_out, resumed)?;
    let bin_of = |f: Frame, labels: &mut BinLabels| {
        let label = labels.of(&f);
        Bin {
            x: Tensor::from_vec(1, dims, f.data),
            t_end_us: f.t_end_us,
            label,
        }
    };
    let (mut first_t, mut last_t) = (None::<u64>, 0u64);
    let live = cfg.live_labels.as_deref().map(spawn_live_labels);
    let wait = policy == Overload::Block;
    // Live sources must not wait on the learner: poll often, hand bins over without blocking.
    let poll = Duration::from_millis(if wait { 100 } else { 2 });
    let mut backlog = Backlog::new(policy);
    let mut bins = 0u64;
    let mut batch: Vec<Event> = Vec::new();
    let spikes0 = sink.pipe.spike_counts().unwrap_or_default();
    let mut metrics = Metrics::new(metrics_out, (cfg.metrics_every_s, cfg.quiet), start, spikes0);
    let mut stop = false;
    'outer: loop {
        batch.clear();
        let popped = ring.pop_into(&mut batch, 1 << 13, poll);
        // Labels are sent before the events they label; a failure after the last good event.
        for c in ctl.try_iter() {
            match c {
                Control::Label(t, l) => labels.source_label(t, l),
                Control::Failed(m) => {
                    // Reported again at the end (the summary's `error`, the exit status).
                    if !cfg.quiet {
                        eprintln!("source: {m}");
                    }
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
                v.publish(&sink, first_t, lag, (backlog.dropped, backlog.coalesced))?;
            }
        }
        if let Some(live) = &live {
            let now = batch.first().map_or(last_t, |e| e.t_us);
            labels.live(live.try_iter().filter(|c| c.t_us != Some(u64::MAX)), now);
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
            // Live overload: the policy keeps the backlog short.
            backlog.push(bin_of(f, &mut labels));
            if sink.flush(&mut backlog, wait)? || sink.interrupted() {
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
        if metrics.due() {
            let counters = Counters {
                events: sink.events,
                steps: sink.steps,
                lag_s: lag_s(last_t, sink.last_bin_end, first_t),
                dropped_bins: backlog.dropped,
                coalesced_bins: backlog.coalesced,
                ring_events: ring.backlog(),
                running_accuracy: sink.pred.accuracy(),
            };
            metrics.write(counters, sink.pipe.spike_counts().unwrap_or_default())?;
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
            backlog.push(bin_of(f, &mut labels));
        }
        sink.flush(&mut backlog, true)?;
        stats
    };
    backlog.abandon();
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
        metrics.finish(),
    ] {
        if let Err(e) = r {
            error.get_or_insert(format!("{e:#}"));
        }
    }
    let Learner {
        pipe,
        pred,
        steps,
        events,
        rss_at,
        heap_at,
        replay,
        ..
    } = sink;
    let (workers, workers_idle_s, workers_helped_s) = (pipe.workers(), pipe.idle_s(), pipe.helped_s());
    model.stages = pipe.finish();
    model.reset_state();
    if !stop {
        let _ = source_thread.join();
    }
    let summary = Summary {
        events,
        steps,
        bins,
        dropped_bins: backlog.dropped,
        coalesced_bins: backlog.coalesced,
        overload: policy,
        accuracy: pred.accuracy().map(|a| a as f32),
        labelled_steps: pred.labelled,
        peak_rss_bytes: crate::heap::peak_rss_bytes(),
        seconds: start.elapsed().as_secs_f64(),
        stream_seconds: (last_t - first_t.unwrap_or(last_t)) as f64 * 1e-6,
        workers,
        workers_idle_s,
        workers_helped_s,
        peak_rss_at_steps: rss_at,
        heap_bytes_at_steps: heap_at,
        time_jumps: binned.time_jumps,
        skipped_bins: binned.skipped_bins,
        interrupted: cfg.stop.requested(),
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
