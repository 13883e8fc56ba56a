//! The streaming binner ([`StreamBinner`]): bins closed on event time, gaps and jumps.

use crate::error::{Error, Result};
use crate::event::Event;

use super::{check_frames, Frame, Geometry};

/// Counters of a [`StreamBinner`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BinnerStats {
    /// Frames emitted.
    pub frames: u64,
    /// Of those, frames without any event.
    pub empty_frames: u64,
    /// Events counted into frames.
    pub events: u64,
    /// Events older than the open bin, counted into it.
    pub late_events: u64,
    /// Events off the sensor, dropped.
    pub off_sensor: u64,
    /// Jumps in event time larger than the binner's maximum gap, forwards or backwards
    /// (see [`StreamBinner::with_max_gap`]): the binner resynchronised at each.
    pub time_jumps: u64,
    /// Empty bins a forward jump did not produce.
    pub skipped_bins: u64,
}

/// What [`StreamBinner::next`] found.
#[derive(Debug)]
pub enum Binned {
    /// A bin closed.
    Frame(Frame),
    /// Event time jumped from `from_us` (the open bin's start) to `to_us` by more than the
    /// maximum gap; bins go on from `to_us`.
    Jump {
        /// Start of the bin that was open.
        from_us: u64,
        /// The event time that jumped.
        to_us: u64,
    },
    /// Every event given was consumed without closing a bin.
    NeedMore,
}

/// Streaming binner: fixed time bins closed on event time, optionally overlapping.
///
/// With `window_us = k · stride_us`, each emitted frame covers the last `k` strides
/// (the first `k − 1` frames cover less, as the stream has just begun). Memory is `k`
/// frames, whatever the stream's length.
#[derive(Debug)]
pub struct StreamBinner {
    geom: Geometry,
    stride_us: u64,
    k: usize,
    start_us: Option<u64>,
    ring: std::collections::VecDeque<(Vec<f32>, u64)>,
    cur: Vec<f32>,
    cur_events: u64,
    max_gap_us: Option<u64>,
    stats: BinnerStats,
}

impl StreamBinner {
    /// Non-overlapping bins of `bin_us`.
    ///
    /// # Errors
    /// A zero bin.
    pub fn new(geom: Geometry, bin_us: u64) -> Result<Self> {
        Self::windowed(geom, bin_us, bin_us)
    }

    /// Frames of `window_us` emitted every `stride_us`; `window_us` must be a multiple of
    /// `stride_us`.
    ///
    /// # Errors
    /// A zero stride or window, or a window shorter than the stride.
    pub fn windowed(geom: Geometry, stride_us: u64, window_us: u64) -> Result<Self> {
        if stride_us == 0 || window_us < stride_us || window_us % stride_us != 0 {
            return Err(Error::InvalidArgument(format!(
                "window ({window_us} us) must be a positive multiple of the stride ({stride_us} us)"
            )));
        }
        // The binner keeps one frame per stride of the window.
        check_frames(
            usize::try_from(window_us / stride_us).unwrap_or(usize::MAX),
            &geom,
            "a window is kept as one frame per stride: use a shorter --window-us or a longer --bin-us",
        )?;
        Ok(Self {
            geom,
            stride_us,
            k: (window_us / stride_us) as usize,
            start_us: None,
            ring: Default::default(),
            cur: vec![0.0; geom.frame_len()],
            cur_events: 0,
            max_gap_us: None,
            stats: BinnerStats::default(),
        })
    }

    /// Resynchronises instead of binning a jump in event time: an event more than `gap_us`
    /// after the open bin's end (or more than `gap_us` before its start) closes the open bin
    /// if it holds events, drops the empty bins between, and starts the next bin at the
    /// event ([`Binned::Jump`], counted in [`BinnerStats::time_jumps`]). `None` (the
    /// default) bins every gap, one empty bin at a time.
    pub fn with_max_gap(mut self, gap_us: Option<u64>) -> Self {
        self.max_gap_us = gap_us;
        self
    }

    /// The geometry frames are made with.
    pub fn geometry(&self) -> &Geometry {
        &self.geom
    }

    /// Counters so far.
    pub fn stats(&self) -> &BinnerStats {
        &self.stats
    }

    /// Start of the open bin, once the first event has arrived.
    pub fn open_bin_start_us(&self) -> Option<u64> {
        self.start_us
    }

    fn close(&mut self) -> Frame {
        let start = self.start_us.expect("a bin is open");
        let end = start + self.stride_us;
        let fresh = std::mem::replace(&mut self.cur, vec![0.0; self.geom.frame_len()]);
        let n = std::mem::take(&mut self.cur_events);
        let frame = if self.k == 1 {
            Frame {
                t_start_us: start,
                t_end_us: end,
                events: n,
                data: fresh,
            }
        } else {
            self.ring.push_back((fresh, n));
            if self.ring.len() > self.k {
                self.ring.pop_front();
            }
            let mut data = vec![0.0; self.geom.frame_len()];
            let mut events = 0;
            for (f, c) in &self.ring {
                for (d, v) in data.iter_mut().zip(f) {
                    *d += v;
                }
                events += c;
            }
            let covered = self.ring.len() as u64 * self.stride_us;
            Frame {
                t_start_us: end.saturating_sub(covered),
                t_end_us: end,
                events,
                data,
            }
        };
        self.stats.frames += 1;
        self.stats.empty_frames += (n == 0) as u64;
        self.start_us = Some(end);
        frame
    }

    /// Adds events; calls `emit` for every bin they close, empty bins included (jumps, with
    /// [`StreamBinner::with_max_gap`], resynchronise silently; they are counted).
    pub fn push(&mut self, mut events: &[Event], mut emit: impl FnMut(Frame)) {
        loop {
            let (n, b) = self.next(events);
            events = &events[n..];
            match b {
                Binned::Frame(f) => emit(f),
                Binned::Jump { .. } => {}
                Binned::NeedMore => return,
            }
        }
    }

    /// Adds events until the first bin closes (or time jumps): returns how many of `events`
    /// were consumed and what happened. Call again with the rest. One call does a bounded
    /// amount of work however far apart two events are, so that a caller can stop between
    /// any two bins of a long gap.
    pub fn next(&mut self, events: &[Event]) -> (usize, Binned) {
        for (i, e) in events.iter().enumerate() {
            let start = *self.start_us.get_or_insert(e.t_us);
            let end = start + self.stride_us;
            let jumped = self
                .max_gap_us
                .is_some_and(|g| e.t_us.saturating_sub(end) > g || start.saturating_sub(e.t_us) > g);
            if jumped {
                if self.cur_events > 0 {
                    // The bin before the jump is real: emit it, then resynchronise.
                    return (i, Binned::Frame(self.close()));
                }
                self.stats.time_jumps += 1;
                if e.t_us > end {
                    self.stats.skipped_bins += (e.t_us - end) / self.stride_us + 1;
                }
                self.ring.clear();
                self.start_us = Some(e.t_us);
                return (
                    i,
                    Binned::Jump {
                        from_us: start,
                        to_us: e.t_us,
                    },
                );
            }
            if e.t_us < start {
                self.stats.late_events += 1;
            } else if e.t_us >= end {
                return (i, Binned::Frame(self.close()));
            }
            match self.geom.index(e) {
                Some(i) => {
                    self.cur[i] += 1.0;
                    self.cur_events += 1;
                    self.stats.events += 1;
                }
                None => self.stats.off_sensor += 1,
            }
        }
        (events.len(), Binned::NeedMore)
    }

    /// Ends the stream. With `emit_partial`, the open bin is emitted (its `t_end_us` is
    /// still the full bin's end); otherwise its events are discarded.
    pub fn finish(mut self, emit_partial: bool, mut emit: impl FnMut(Frame)) -> BinnerStats {
        if emit_partial && self.start_us.is_some() {
            emit(self.close());
        }
        self.stats
    }
}
