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
        overlap: f64,
    },
    /// `n` bins of equal event count.
    EventBins {
        /// Number of bins.
        n: usize,
        /// Fraction of a bin by which each window extends into the next, in `[0, 1)`.
        overlap: f64,
    },
}

fn check_overlap(overlap: f64) -> Result<()> {
    if (0.0..1.0).contains(&overlap) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "overlap must be in [0, 1), got {overlap}"
        )))
    }
}

/// Tonic's widened window and its stride for `n` bins over `base = ⌊span / n⌋`: the window
/// is `base · (1 + overlap)` and windows start every `window · (1 − overlap)` (Tonic's
/// `slice_events_by_time_bins` and, floored, `slice_events_by_event_bins`).
fn tonic_window(base: u64, overlap: f64) -> (f64, f64) {
    let window = base as f64 * (1.0 + overlap);
    (window, window * (1.0 - overlap))
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
            check_overlap(overlap)?;
            let (t0, t_last) = (first.t_us, last.t_us.max(first.t_us));
            let base = (t_last - t0) / n as u64;
            if overlap == 0.0 {
                by_time(&mut out, t0, base.max(1), base.max(1), n, t_last);
            } else {
                // Tonic's bounds, in its float64 arithmetic: bin `i` holds the events with
                // `t0 + i·stride ≤ t < t0 + i·stride + window`, the same events as the
                // integer bounds rounded up.
                let (window, stride) = tonic_window(base, overlap);
                for i in 0..n {
                    let s = i as f64 * stride + t0 as f64;
                    let (a_t, mut b_t) = (s.ceil() as u64, (s + window).ceil() as u64);
                    if edge == Edge::ToLast && i + 1 == n {
                        b_t = b_t.max(t_last + 1);
                    }
                    let a = events.partition_point(|ev| ev.t_us < a_t);
                    let b = events.partition_point(|ev| ev.t_us < b_t);
                    out.push((a..b.max(a), a_t, b_t));
                }
            }
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
    /// `n` bins over `n_events` events: without overlap, bin `i` holds the events from
    /// `i · ⌊n_events / n⌋`, that many; with `overlap`, Tonic's: windows of
    /// `w = ⌊⌊n_events / n⌋ · (1 + overlap)⌋` events starting every `⌊w · (1 − overlap)⌋`.
    /// With [`Edge::ToLast`] the last bin runs to the end of the sample.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `n` is 0 or `overlap` is outside `[0, 1)`.
    pub fn new(n_events: usize, n: usize, overlap: f64, edge: Edge) -> Result<Self> {
        if n == 0 {
            return Err(Error::InvalidArgument("number of bins must be positive".into()));
        }
        check_overlap(overlap)?;
        let base = n_events / n;
        let (window, stride) = if overlap == 0.0 {
            (base, base)
        } else {
            let (w, _) = tonic_window(base as u64, overlap);
            // Tonic: `int(n // bins * (1 + overlap))`, then `int(window * (1 - overlap))`.
            let w = w.floor() as usize;
            (w, (w as f64 * (1.0 - overlap)).floor() as usize)
        };
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
