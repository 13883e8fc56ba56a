//! `stdl stream --replay-bytes`: replayed segments fed to the learner between live bins
//! ([`crate::continual::SegmentReplay`] decides what and when; this feeds it the live bins
//! the learner accepted and hands its due segments to the pipeline, one step at a time, each
//! marked as a step of its own sequence so the live membranes are set aside meanwhile).

use std::collections::VecDeque;

use crate::error::Result;
use serde::{Deserialize, Serialize};
use stdl_models::{Dims, Tensor};

use crate::continual::{SegmentReplay, SegmentReplayStats};
use crate::stdl::StepContext;

/// Replay settings of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplaySettings {
    /// Budget of the reservoir in bytes.
    pub bytes: u64,
    /// Replayed steps per live labelled step.
    pub ratio: f64,
    /// Bins per replayed segment.
    pub segment_bins: usize,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        Self {
            bytes: 0,
            ratio: 1.0,
            segment_bins: 8,
        }
    }
}

impl ReplaySettings {
    /// Checks the ratio (finite, 0 or above) and the segment length (at least one bin).
    ///
    /// # Errors
    /// The setting out of range, named as its command-line flag.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.ratio.is_finite() && self.ratio >= 0.0) {
            return Err(format!("--replay-ratio must be 0 or above, got {}", self.ratio));
        }
        if self.segment_bins == 0 {
            return Err("--replay-segment-bins must be at least 1".into());
        }
        Ok(())
    }
}

/// The learner side of stream replay.
#[derive(Debug)]
pub struct StreamReplay {
    replay: SegmentReplay,
    /// Due steps: (held segment, bin within it).
    queue: VecDeque<(usize, usize)>,
    /// The live bin being offered (its values are gone into the pipeline once accepted).
    scratch: Vec<f32>,
    dims: Dims,
}

impl StreamReplay {
    /// Replay of `settings` for inputs of `dims`.
    ///
    /// # Errors
    /// As [`SegmentReplay::new`].
    pub fn new(settings: &ReplaySettings, dims: Dims, seed: u64) -> Result<Self> {
        Ok(Self {
            replay: SegmentReplay::new(
                settings.bytes,
                settings.segment_bins,
                dims.len(),
                settings.ratio,
                seed,
            )?,
            queue: VecDeque::with_capacity(settings.segment_bins),
            scratch: vec![0.0; dims.len()],
            dims,
        })
    }

    /// Keeps a copy of a live bin about to be offered to the learner to learn from (a bin it
    /// will only predict needs none: [`StreamReplay::accepted`] with `None` reads no copy).
    pub fn offering(&mut self, x: &Tensor) {
        self.scratch.copy_from_slice(&x.data);
    }

    /// The learner accepted the bin last passed to [`StreamReplay::offering`], learning
    /// `label`: it joins the reservoir's stream, and a segment may fall due.
    pub fn accepted(&mut self, label: Option<usize>) {
        self.replay.observe(&self.scratch, label);
        if self.queue.is_empty() {
            if let Some(i) = self.replay.due() {
                self.queue.extend((0..self.replay.segment_bins()).map(|k| (i, k)));
            }
        }
    }

    /// The next due step: its context, input and label.
    pub fn next(&self) -> Option<(StepContext, Tensor, usize)> {
        let &(i, k) = self.queue.front()?;
        let mut x = Tensor::zeros(1, self.dims);
        self.replay.bin_into(i, k, &mut x.data);
        let ctx = if k == 0 {
            StepContext::SideStart
        } else {
            StepContext::Side
        };
        Some((ctx, x, self.replay.label(i)))
    }

    /// The step [`StreamReplay::next`] gave was handed to the learner.
    pub fn sent(&mut self) {
        self.queue.pop_front();
    }

    /// What the reservoir holds and has replayed.
    pub fn stats(&self) -> SegmentReplayStats {
        self.replay.stats()
    }
}
