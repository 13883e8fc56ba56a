//! The event type every reader produces, and its companions.
//!
//! # Orientation convention
//!
//! Every reader maps its format's raw fields to one convention:
//! the origin `(0, 0)` is the **top-left** pixel, `x` grows to the right, `y` grows
//! downwards (as in OpenCV, libcaer and Prophesee's SDK), and `on == true` means the
//! brightness **increased**. Formats that store another convention (jAER's AEDAT 2.0 puts
//! the origin at the bottom-left and, for the DVS128, flips x and inverts polarity) are
//! converted by their reader; the README's format table lists each mapping.

use serde::Serialize;

/// One change-detection event.
///
/// 16 bytes, `#[repr(C)]`, so a batch is a flat array that can be handed to other code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[repr(C)]
pub struct Event {
    /// Timestamp in microseconds. Its origin is the recording's (sensor clock, or Unix time
    /// for AEDAT 4).
    pub t_us: u64,
    /// Column, 0 at the left.
    pub x: u16,
    /// Row, 0 at the top.
    pub y: u16,
    /// `true` for an ON event (brightness increase).
    pub on: bool,
}

impl Event {
    /// A new event.
    #[inline]
    pub const fn new(t_us: u64, x: u16, y: u16, on: bool) -> Self {
        Self { t_us, x, y, on }
    }
}

/// A bounded chunk of events in stream order, as yielded by every reader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventBatch {
    /// The events, in the order they appear in the stream.
    pub events: Vec<Event>,
}

impl EventBatch {
    /// Wraps a vector of events.
    pub fn new(events: Vec<Event>) -> Self {
        Self { events }
    }
    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }
    /// Whether the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

impl std::ops::Deref for EventBatch {
    type Target = [Event];
    fn deref(&self) -> &[Event] {
        &self.events
    }
}

/// Sensor resolution in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct SensorSize {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

impl SensorSize {
    /// A sensor of `width × height` pixels.
    pub const fn new(width: u16, height: u16) -> Self {
        Self { width, height }
    }
    /// Number of pixels.
    pub fn pixels(&self) -> usize {
        self.width as usize * self.height as usize
    }
    /// Whether `(x, y)` lies on the sensor.
    #[inline]
    pub fn contains(&self, x: u16, y: u16) -> bool {
        x < self.width && y < self.height
    }
}

impl std::fmt::Display for SensorSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}
