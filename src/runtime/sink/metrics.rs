//! `stdl stream`'s metrics: a JSON line every `--metrics-every-s` seconds on standard error
//! (and in `--metrics FILE`), with each LIF layer's spike density since the line before.

use std::io::Write;
use std::time::Instant;

use crate::error::Result;

use crate::stdl::SpikeCount;

/// The runtime's counters at a metrics line.
#[derive(Clone, Copy, Debug)]
pub struct Counters {
    /// Events read.
    pub events: u64,
    /// Steps learned (or predicted).
    pub steps: u64,
    /// How far the learner is behind the source, in seconds of event time.
    pub lag_s: f64,
    /// Bins dropped by the overload policy.
    pub dropped_bins: u64,
    /// Bins coalesced by it.
    pub coalesced_bins: u64,
    /// Events waiting in the source's ring.
    pub ring_events: usize,
    /// Accuracy of the smoothed predictions so far.
    pub running_accuracy: Option<f64>,
}

/// The metrics writer.
#[derive(Debug)]
pub struct Metrics {
    out: Option<crate::store::AtomicFile>,
    every_s: f64,
    quiet: bool,
    start: Instant,
    last: Instant,
    /// Spike counts at the last line.
    prev_spikes: Vec<SpikeCount>,
}

impl Metrics {
    /// Lines every `every_s` seconds from `start` on standard error (unless `quiet`) and
    /// into `out`; `spikes` are the counts now (taken before the first step, so that what a
    /// line holds between lines is allocated before the stream's steady state).
    pub fn new(
        out: Option<crate::store::AtomicFile>,
        (every_s, quiet): (f64, bool),
        start: Instant,
        spikes: Vec<SpikeCount>,
    ) -> Self {
        Self {
            out,
            every_s,
            quiet,
            start,
            last: Instant::now(),
            prev_spikes: spikes,
        }
    }

    /// Whether a line is due.
    pub fn due(&self) -> bool {
        self.last.elapsed().as_secs_f64() >= self.every_s
    }

    /// Prints a line (and writes it to the file): the counters, rates since the start, peak
    /// memory, and each layer's spike density from `spikes` (counted on a sample of steps)
    /// since the last line.
    ///
    /// # Errors
    /// A failed write to the file.
    pub fn write(&mut self, c: Counters, spikes: Vec<SpikeCount>) -> Result<()> {
        self.last = Instant::now();
        let density: Vec<serde_json::Value> = spikes
            .iter()
            .zip(
                self.prev_spikes
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
        self.prev_spikes = spikes;
        let secs = self.start.elapsed().as_secs_f64();
        let line = serde_json::json!({
            "seconds": secs, "events": c.events, "steps": c.steps,
            "events_per_s": c.events as f64 / secs, "frames_per_s": c.steps as f64 / secs,
            // How far the learner is behind the source: event time read but not yet
            // handed to the learner (in the binner or a live backlog).
            "lag_s": c.lag_s,
            "dropped_bins": c.dropped_bins, "coalesced_bins": c.coalesced_bins,
            "ring_events": c.ring_events,
            "running_accuracy": c.running_accuracy,
            "peak_rss_bytes": crate::heap::peak_rss_bytes(),
            "spike_density": density,
        });
        if !self.quiet {
            eprintln!("{line}");
        }
        if let Some(m) = &mut self.out {
            writeln!(m, "{line}")?;
        }
        Ok(())
    }

    /// Renames the file into place.
    ///
    /// # Errors
    /// A failed write.
    pub fn finish(self) -> Result<()> {
        self.out.map_or(Ok(()), |m| m.commit().map_err(Into::into))
    }
}
