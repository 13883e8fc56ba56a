//! Events to frames: slicing a sample into bins, a streaming binner, spatial downsampling,
//! and two event filters.
//!
//! A [`Frame`] is a `C × H × W` array of per-pixel event counts (`f32`), channel 0 = OFF and
//! channel 1 = ON when polarities are split (the SpikingJelly and Tonic order), or one
//! channel of all events when merged.
//!
//! # Slicing a whole sample ([`frames_from_events`])
//!
//! - [`Slicing::TimeWindow`]: windows of `window_us`, one every `stride_us`, from the first
//!   event's time.
//! - [`Slicing::TimeBins`]: `n` bins of equal duration `stride = (t_last − t_first) / n`
//!   (integer µs, at least 1).
//! - [`Slicing::EventBins`]: `n` bins of equal event count `stride = N / n`.
//!
//! Overlap (`overlap` in `[0, 1)` for the `n`-bin slicings) widens each window to
//! `stride + round(overlap × stride)`, so consecutive bins share events.
//!
//! What happens to what is left after the last whole stride is an [`Edge`] convention:
//! [`Edge::ToLast`] (SpikingJelly's `integrate_events_by_fixed_frames_number`: the last bin
//! runs to the end of the sample, so no event is lost) or [`Edge::Drop`] (Tonic's
//! `ToFrame`: only whole bins, the remainder is discarded).
//!
//! # Streaming ([`StreamBinner`])
//!
//! Bins are closed by **event time**, never by wall-clock time, so a replay gives the same
//! frames however fast it runs. The first bin starts at the first event's timestamp; a bin
//! `[start, start + stride)` closes when an event at or after its end arrives, and every
//! bin in a gap is emitted as an ordinary (empty) frame. An event older than the open bin
//! (timestamps that went backwards) is counted into the open bin and in
//! [`BinnerStats::late_events`]. Whether the final, partial bin is emitted at the end of the
//! stream is the `emit_partial` option of [`StreamBinner::finish`].

use crate::error::{Error, Result};
use crate::event::{Event, SensorSize};

/// Polarity handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Channels {
    /// Two channels: 0 = OFF, 1 = ON.
    #[default]
    Split,
    /// One channel counting both polarities.
    Merged,
}

impl Channels {
    /// Number of channels.
    pub fn count(self) -> usize {
        match self {
            Channels::Split => 2,
            Channels::Merged => 1,
        }
    }
}

/// How sensor pixels map to frame pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Downsample {
    /// `x_out = x / factor` (frame size rounds up).
    Factor(u16),
    /// `x_out = x · W_out / W_sensor` (likewise y).
    Size,
}

/// Where events land: sensor size, output size (downsampling) and channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// The sensor the events come from.
    pub sensor: SensorSize,
    /// The frame size.
    pub out: SensorSize,
    /// How sensor pixels map to frame pixels.
    pub downsample: Downsample,
    /// Polarity channels.
    pub channels: Channels,
}

impl Geometry {
    /// Frames at the sensor's own resolution.
    pub fn new(sensor: SensorSize, channels: Channels) -> Result<Self> {
        Self::downsampled(sensor, 1, channels)
    }

    /// Frames downsampled by an integer factor (`x / factor`; sizes round up).
    pub fn downsampled(sensor: SensorSize, factor: u16, channels: Channels) -> Result<Self> {
        if factor == 0 {
            return Err(Error::InvalidArgument(
                "downsampling factor must be at least 1".into(),
            ));
        }
        check_nonempty(sensor, sensor)?;
        let out = SensorSize::new(sensor.width.div_ceil(factor), sensor.height.div_ceil(factor));
        Ok(Self {
            sensor,
            out,
            downsample: Downsample::Factor(factor),
            channels,
        })
    }

    /// Frames resized to a target size (`x · W_out / W_sensor`, rounded down).
    pub fn resized(sensor: SensorSize, out: SensorSize, channels: Channels) -> Result<Self> {
        check_nonempty(sensor, out)?;
        if out.width > sensor.width || out.height > sensor.height {
            return Err(Error::InvalidArgument(format!(
                "output {out} is larger than the sensor {sensor}"
            )));
        }
        Ok(Self {
            sensor,
            out,
            downsample: Downsample::Size,
            channels,
        })
    }

    /// Number of `f32` values in one frame.
    pub fn frame_len(&self) -> usize {
        self.channels.count() * self.out.pixels()
    }

    /// Index of an event's cell in a frame, or `None` if it is off the sensor.
    #[inline]
    pub fn index(&self, e: &Event) -> Option<usize> {
        if !self.sensor.contains(e.x, e.y) {
            return None;
        }
        let (x, y) = match self.downsample {
            Downsample::Factor(f) => ((e.x / f) as usize, (e.y / f) as usize),
            Downsample::Size => (
                e.x as usize * self.out.width as usize / self.sensor.width as usize,
                e.y as usize * self.out.height as usize / self.sensor.height as usize,
            ),
        };
        let c = match self.channels {
            Channels::Split => e.on as usize,
            Channels::Merged => 0,
        };
        Some((c * self.out.height as usize + y) * self.out.width as usize + x)
    }

    /// Adds one count per event to its cell of `frame` (`C × H × W`, [`Geometry::frame_len`]
    /// values); returns how many events were counted and how many were off the sensor.
    ///
    /// # Panics
    /// If `frame` is shorter than [`Geometry::frame_len`].
    pub fn accumulate(&self, events: &[Event], frame: &mut [f32]) -> (u64, u64) {
        let frame = &mut frame[..self.frame_len()];
        let (mut n, mut off) = (0, 0);
        for e in events {
            match self.index(e) {
                Some(i) => {
                    frame[i] += 1.0;
                    n += 1;
                }
                None => off += 1,
            }
        }
        (n, off)
    }
}

/// The largest sensor frames are made for: 2^25 pixels (8192 × 4096; today's largest event
/// sensors have about 1 megapixel). Per-pixel state (frames, filters) is sized from it, so a
/// corrupt or mistyped size fails here instead of allocating tens of gigabytes.
pub const MAX_SENSOR_PIXELS: usize = 1 << 25;

/// The most `f32` values a set of frames made at once may hold: 2^28 (1 GiB).
pub const MAX_FRAMES_VALUES: usize = 1 << 28;

fn check_nonempty(sensor: SensorSize, out: SensorSize) -> Result<()> {
    if sensor.width == 0 || sensor.height == 0 || out.width == 0 || out.height == 0 {
        return Err(Error::InvalidArgument(format!(
            "empty frame size (sensor {sensor}, output {out})"
        )));
    }
    if sensor.pixels() > MAX_SENSOR_PIXELS {
        return Err(Error::InvalidArgument(format!(
            "sensor {sensor} has {} pixels, above the limit of {MAX_SENSOR_PIXELS} (8192x4096); \
             check --sensor-size or the file's header",
            sensor.pixels()
        )));
    }
    Ok(())
}

/// Refuses `n` frames of `geom` made at once above [`MAX_FRAMES_VALUES`]; `fix` says what to
/// change (a flag, for the command line).
pub fn check_frames(n: usize, geom: &Geometry, fix: &str) -> Result<()> {
    match n.checked_mul(geom.frame_len()) {
        Some(v) if v <= MAX_FRAMES_VALUES => Ok(()),
        _ => Err(Error::InvalidArgument(format!(
            "{n} frames of {} values need {:.1} GiB, above the limit of {} GiB: {fix}",
            geom.frame_len(),
            n as f64 * geom.frame_len() as f64 * 4.0 / (1u64 << 30) as f64,
            (MAX_FRAMES_VALUES * 4) >> 30
        ))),
    }
}

/// One frame: per-pixel event counts over `[t_start_us, t_end_us)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// Start of the bin (inclusive).
    pub t_start_us: u64,
    /// End of the bin (exclusive).
    pub t_end_us: u64,
    /// Events counted into the frame.
    pub events: u64,
    /// `C × H × W` counts.
    pub data: Vec<f32>,
}

impl Frame {
    fn accumulate(geom: &Geometry, t_start_us: u64, t_end_us: u64, events: &[Event]) -> (Frame, u64) {
        let mut data = vec![0f32; geom.frame_len()];
        let (n, off) = geom.accumulate(events, &mut data);
        (
            Frame {
                t_start_us,
                t_end_us,
                events: n,
                data,
            },
            off,
        )
    }
}

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
    pub fn new(geom: Geometry, bin_us: u64) -> Result<Self> {
        Self::windowed(geom, bin_us, bin_us)
    }

    /// Frames of `window_us` emitted every `stride_us`; `window_us` must be a multiple of
    /// `stride_us`.
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

/// A per-event filter.
pub trait EventFilter {
    /// Whether to keep the event; may update the filter's state.
    fn keep(&mut self, e: &Event) -> bool;

    /// Keeps the events of `events` that pass, in order.
    fn retain(&mut self, events: &mut Vec<Event>) {
        events.retain(|e| self.keep(e));
    }
}

/// Background-activity filter (jAER's `BackgroundActivityFilter`): an event is kept only
/// if one of its 8 neighbours had an event at most `dt_us` earlier. Isolated noise events
/// have no such support. Events off the sensor are dropped.
#[derive(Clone, Debug)]
pub struct DenoiseFilter {
    size: SensorSize,
    dt_us: u64,
    /// Last event time + 1 per pixel (0 = never).
    last: Vec<u64>,
}

impl DenoiseFilter {
    /// A filter for a sensor, with support window `dt_us`.
    pub fn new(size: SensorSize, dt_us: u64) -> Self {
        Self {
            size,
            dt_us,
            last: vec![0; size.pixels()],
        }
    }
}

impl EventFilter for DenoiseFilter {
    fn keep(&mut self, e: &Event) -> bool {
        if !self.size.contains(e.x, e.y) {
            return false;
        }
        let (w, h) = (self.size.width as i32, self.size.height as i32);
        let (x, y) = (e.x as i32, e.y as i32);
        let mut supported = false;
        for dy in -1..=1 {
            for dx in -1..=1 {
                let (nx, ny) = (x + dx, y + dy);
                if (dx == 0 && dy == 0) || nx < 0 || ny < 0 || nx >= w || ny >= h {
                    continue;
                }
                let l = self.last[(ny * w + nx) as usize];
                if l != 0 && e.t_us + 1 >= l && e.t_us + 1 - l <= self.dt_us {
                    supported = true;
                }
            }
        }
        self.last[(y * w + x) as usize] = e.t_us + 1;
        supported
    }
}

/// Refractory filter: drops an event if the same pixel (either polarity) had a kept event
/// less than `period_us` earlier.
#[derive(Clone, Debug)]
pub struct RefractoryFilter {
    size: SensorSize,
    period_us: u64,
    last: Vec<u64>,
}

impl RefractoryFilter {
    /// A filter for a sensor, with refractory period `period_us`.
    pub fn new(size: SensorSize, period_us: u64) -> Self {
        Self {
            size,
            period_us,
            last: vec![0; size.pixels()],
        }
    }
}

impl EventFilter for RefractoryFilter {
    fn keep(&mut self, e: &Event) -> bool {
        if !self.size.contains(e.x, e.y) {
            return false;
        }
        let i = e.y as usize * self.size.width as usize + e.x as usize;
        let l = self.last[i];
        if l != 0 && e.t_us + 1 >= l && e.t_us + 1 - l < self.period_us {
            return false;
        }
        self.last[i] = e.t_us + 1;
        true
    }
}
