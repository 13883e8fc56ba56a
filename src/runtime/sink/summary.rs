//! The end-of-run summary of `stdl stream` (`--summary FILE`, and the last line it prints).

use serde::Serialize;

use crate::runtime::overload::Overload;

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
    /// The learner's worker threads (one per core unless `--workers` set them; at most one
    /// per stage).
    pub workers: usize,
    /// Seconds the workers waited with no stage ready for them, all workers together.
    pub workers_idle_s: f64,
    /// Seconds workers with no stage ready spent computing chunks of a running stage's
    /// products (at batch 1), all workers together; not in `workers_idle_s`.
    pub workers_helped_s: f64,
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
