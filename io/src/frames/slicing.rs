//! Slicing a whole sample into frames: time windows, time bins and event-count bins, with
//! overlap and the two edge conventions ([`Edge`]).

use crate::error::{Error, Result};
use crate::event::Event;

use super::{check_frames, Frame, Geometry};

/// What is left after the last whole bin of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Edge {
    /// The last bin runs to the end of the sample (SpikingJelly). Nothing is lost.
    #[default]
    ToLast,
    /// Only whole bins; the remainder is dropped (Tonic).
    Drop,
}

/// How a sample is cut into frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Slicing {
    /// Windows of `window_us`, one starting every `stride_us`.
    TimeWindow {
        /// Window length.
        window_us: u64,
        /// Distance between window starts (`== window_us`: no overlap).
        stride_us: u64,
    },
    /// `n` bins of equal duration.
    TimeBins {
        /// Number of bins.
        n: usize,
        /// Fraction of a bin by which each window extends into the next, in `[0, 1)`.
        overlap: f32,
    },
    /// `n` bins of equal event count.
    EventBins {
        /// Number of bins.
        n: usize,
        /// Fraction of a bin by which each window extends into the next, in `[0, 1)`.
        overlap: f32,
    },
}

fn widen(stride: u64, overlap: f32) -> Result<u64> {
    if !(0.0..1.0).contains(&overlap) {
        return Err(Error::InvalidArgument(format!(
            "overlap must be in [0, 1), got {overlap}"
        )));
    }
    Ok(stride + (overlap as f64 * stride as f64).round() as u64)
}

/// Event index ranges of each bin of a time-sorted sample.
///
/// # Errors
/// A slicing that makes no bins (a zero window, bin or count) or more than the cap.
pub fn bin_ranges(
    events: &[Event],
    slicing: Slicing,
    edge: Edge,
) -> Result<Vec<(std::ops::Range<usize>, u64, u64)>> {
    let n_ev = events.len();
    let mut out = Vec::new();
    let by_time = |out: &mut Vec<_>, t0: u64, stride: u64, window: u64, bins: usize, t_last: u64| {
        for i in 0..bins {
            let s = t0 + i as u64 * stride;
            let mut e = s + window;
            if edge == Edge::ToLast && i + 1 == bins {
                e = e.max(t_last + 1);
            }
            let a = events.partition_point(|ev| ev.t_us < s);
            let b = events.partition_point(|ev| ev.t_us < e);
            out.push((a..b.max(a), s, e));
        }
    };
    match slicing {
        Slicing::TimeWindow { window_us, stride_us } => {
            if window_us == 0 || stride_us == 0 {
                return Err(Error::InvalidArgument(
                    "time window and stride must be positive".into(),
                ));
            }
            let (Some(first), Some(last)) = (events.first(), events.last()) else {
                return Ok(out);
            };
            let (t0, t_last) = (first.t_us, last.t_us.max(first.t_us));
            let span = t_last - t0 + 1;
            let whole = if span >= window_us {
                (span - window_us) / stride_us + 1
            } else {
                0
            };
            let bins = match edge {
                Edge::Drop => whole,
                Edge::ToLast => whole.max(1),
            };
            by_time(&mut out, t0, stride_us, window_us, bins as usize, t_last);
        }
        Slicing::TimeBins { n, overlap } => {
            if n == 0 {
                return Err(Error::InvalidArgument("number of bins must be positive".into()));
            }
            let (Some(first), Some(last)) = (events.first(), events.last()) else {
                return Ok((0..n).map(|_| (0..0, 0, 0)).collect());
            };
            let (t0, t_last) = (first.t_us, last.t_us.max(first.t_us));
            let stride = ((t_last - t0) / n as u64).max(1);
            let window = widen(stride, overlap)?;
            by_time(&mut out, t0, stride, window, n, t_last);
        }
        Slicing::EventBins { n, overlap } => {
            let bins = EventBins::new(n_ev, n, overlap, edge)?;
            for i in 0..n {
                let (a, b) = (bins.range(i).start, bins.range(i).end);
                let t = |k: usize| events.get(k).map_or(0, |e| e.t_us);
                let end_t = if b > a { events[b - 1].t_us + 1 } else { t(a) };
                out.push((a..b, t(a), end_t));
            }
        }
    }
    Ok(out)
}

/// The event index ranges of `n` bins of equal event count over a sample of `n_events`
/// events ([`Slicing::EventBins`]), one bin at a time: a trainer that makes each time step's
/// frame when it learns that step needs no more than this and the sample's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventBins {
    n_events: usize,
    n: usize,
    stride: usize,
    window: usize,
    edge: Edge,
}

impl EventBins {
    /// `n` bins over `n_events` events: bin `i` starts at event `i · ⌊n_events / n⌋` and
    /// spans that many events widened by `overlap`; with [`Edge::ToLast`] the last bin runs
    /// to the end of the sample.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `n` is 0 or `overlap` is outside `[0, 1)`.
    pub fn new(n_events: usize, n: usize, overlap: f32, edge: Edge) -> Result<Self> {
        if n == 0 {
            return Err(Error::InvalidArgument("number of bins must be positive".into()));
        }
        let stride = n_events / n;
        let window = widen(stride as u64, overlap)? as usize;
        Ok(Self {
            n_events,
            n,
            stride,
            window,
            edge,
        })
    }

    /// Number of bins.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there is no bin (never: `n` is positive).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The event indices of bin `i` (empty past the last bin).
    pub fn range(&self, i: usize) -> std::ops::Range<usize> {
        if i >= self.n {
            return self.n_events..self.n_events;
        }
        let a = i.saturating_mul(self.stride).min(self.n_events);
        let mut b = a.saturating_add(self.window).min(self.n_events);
        if self.edge == Edge::ToLast && i + 1 == self.n {
            b = self.n_events;
        }
        a..b
    }
}

/// Cuts a time-sorted sample into frames.
///
/// # Errors
/// As [`bin_ranges`] and [`check_frames`].
pub fn frames_from_events(
    events: &[Event],
    geom: &Geometry,
    slicing: Slicing,
    edge: Edge,
) -> Result<Vec<Frame>> {
    let n = match slicing {
        Slicing::TimeBins { n, .. } | Slicing::EventBins { n, .. } => n,
        Slicing::TimeWindow { stride_us, .. } => match (events.first(), events.last()) {
            (Some(a), Some(b)) => usize::try_from(b.t_us.saturating_sub(a.t_us) / stride_us.max(1))
                .unwrap_or(usize::MAX)
                .saturating_add(1),
            _ => 0,
        },
    };
    check_frames(
        n,
        geom,
        "use fewer bins (--time-bins, --event-bins) or smaller frames (--downsample, --resize)",
    )?;
    Ok(bin_ranges(events, slicing, edge)?
        .into_iter()
        .map(|(r, s, e)| Frame::accumulate(geom, s, e, &events[r]).0)
        .collect())
}
