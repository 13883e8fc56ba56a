//! Event filters applied before binning: denoise (no neighbour within a time window) and
//! refractory (one event per pixel per period).

use crate::event::{Event, SensorSize};

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
