//! `--view`: what the live page shows, taken from the learner about twenty times a second
//! (the page's server is [`crate::runtime::view`]).

use std::time::Instant;

use crate::error::Result;
use serde::Serialize;
use stdl_io::SensorSize;
use stdl_models::Preset;

use crate::runtime::config::StreamConfig;
use crate::runtime::learner::Learner;
use crate::runtime::source::{describe, Source};

/// How far the learner is behind the source, in seconds: event time read but not yet handed
/// to the learner (in the binner or a live backlog).
pub fn lag_s(last_t: u64, last_bin_end: u64, first_t: Option<u64>) -> f64 {
    last_t.saturating_sub(last_bin_end.max(first_t.unwrap_or(last_t))) as f64 * 1e-6
}

/// `--view`: the page's server and the events since its last update.
pub struct LiveView {
    /// The page's server.
    pub server: crate::runtime::view::ViewServer,
    /// Events since the last update.
    pub frame: crate::runtime::view::ViewFrame,
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
    /// Starts the page's server at `addr` and prints its address.
    ///
    /// # Errors
    /// An address that cannot be bound.
    pub fn start(addr: &str, cfg: &StreamConfig, preset: &Preset, sensor: SensorSize) -> Result<Self> {
        use crate::runtime::view::{ViewFrame, ViewMeta, ViewServer};
        let frame = ViewFrame::new(sensor);
        // Names: given, else the source's own (the synthetic scene's directions, a dataset's
        // classes), else the preset's (DVS128-Gesture's gestures, N-MNIST's digits).
        let names = if !cfg.class_names.is_empty() {
            cfg.class_names.clone()
        } else {
            use crate::data::NamesFrom;
            let from = match &cfg.source {
                Source::Synthetic(c) => NamesFrom::Synthetic(c),
                Source::Dataset { name, root, .. } => NamesFrom::Dataset { name, root },
                _ => NamesFrom::Other,
            };
            crate::data::class_names(from, Some((&preset.name, preset.classes))).unwrap_or_default()
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

    /// Sends one update to every viewer: the frame since the last, the learner's state.
    ///
    /// # Errors
    /// Not one: a viewer that does not keep up loses updates (counted).
    pub fn publish(
        &mut self,
        sink: &Learner<'_>,
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
