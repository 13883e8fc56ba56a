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
//! Overlap (`overlap` in `[0, 1)` for the `n`-bin slicings) is Tonic's: for a base bin
//! `b = ⌊span / n⌋` (time, or event count), windows of `b · (1 + overlap)` start every
//! `b · (1 + overlap) · (1 − overlap)`, so consecutive bins share events (`ToFrame`'s
//! `overlap`, element for element: the Python package's tests compare).
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

mod filters;
mod slicing;
mod stream;

pub use filters::{DenoiseFilter, EventFilter, RefractoryFilter};
pub use slicing::{bin_ranges, frames_from_events, Edge, EventBins, Slicing};
pub use stream::{Binned, BinnerStats, StreamBinner};

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
    ///
    /// # Errors
    /// An empty sensor.
    pub fn new(sensor: SensorSize, channels: Channels) -> Result<Self> {
        Self::downsampled(sensor, 1, channels)
    }

    /// Frames downsampled by an integer factor (`x / factor`; sizes round up).
    ///
    /// # Errors
    /// An empty sensor or a zero factor.
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
    ///
    /// # Errors
    /// An empty sensor, or an output larger than the sensor.
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
///
/// # Errors
/// More than the frame-count or frame-memory cap (the message says how to lower it, `fix`).
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
