//! What a recording holds ([`info`]): format, sensor size, event counts and time span,
//! extent, the reader's counters and the jumps in event time; read once, streaming (what
//! `stdl info` prints and the Python package's `stdl.info` returns).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::event::Event;
use crate::formats::{EventReader, Format, ReadOptions, ReadStats};

/// Summary of one recording, as printed by `stdl info`.
#[derive(Debug, Serialize)]
pub struct Info {
    /// The file.
    pub path: PathBuf,
    /// Format short name (`aedat2`, `evt3`, ...).
    pub format: &'static str,
    /// Sensor width: from the header, else from the events' extent.
    pub width: u32,
    /// Sensor height, likewise.
    pub height: u32,
    /// `header`, `option` or `extent`: where width and height come from.
    pub size_source: &'static str,
    /// Number of events.
    pub events: u64,
    /// ON events.
    pub on: u64,
    /// OFF events.
    pub off: u64,
    /// First event's time.
    pub t_first_us: Option<u64>,
    /// Last event's time.
    pub t_last_us: Option<u64>,
    /// `t_last_us - t_first_us`.
    pub duration_us: u64,
    /// First event.
    pub first_event: Option<Event>,
    /// Last event.
    pub last_event: Option<Event>,
    /// Events per second of recording (events / duration).
    pub event_rate_per_s: f64,
    /// x range seen.
    pub x_range: Option<[u16; 2]>,
    /// y range seen.
    pub y_range: Option<[u16; 2]>,
    /// Reader counters (skipped records and packets, repairs).
    pub stats: ReadStats,
    /// Jumps in event time between consecutive events larger than the maximum gap (either
    /// way): what `stdl stream` and `stdl frames` would skip and count as `time_jumps`.
    pub time_jumps: u64,
    /// The largest step in event time between consecutive events, forwards or backwards.
    pub largest_gap_us: u64,
}

/// Reads the whole file once, streaming, and summarises it.
///
/// # Errors
/// The file cannot be opened, or an error while decoding it (after which nothing is
/// summarised: the first error is returned, with its offset).
pub fn info(path: &Path, format: Option<Format>, opts: &ReadOptions, max_gap_us: u64) -> Result<Info> {
    let mut r = EventReader::open_as(path, format, opts)?;
    let (mut on, mut off) = (0u64, 0u64);
    let (mut first, mut last) = (None::<Event>, None::<Event>);
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (u16::MAX, 0u16, u16::MAX, 0u16);
    let (mut prev, mut time_jumps, mut largest_gap_us) = (None::<u64>, 0u64, 0u64);
    for batch in r.by_ref() {
        let batch = batch?;
        if first.is_none() {
            first = batch.first().copied();
        }
        if let Some(e) = batch.last() {
            last = Some(*e);
        }
        for e in batch.iter() {
            if e.on {
                on += 1;
            } else {
                off += 1;
            }
            if let Some(p) = prev {
                let gap = e.t_us.abs_diff(p);
                largest_gap_us = largest_gap_us.max(gap);
                time_jumps += (max_gap_us > 0 && gap > max_gap_us) as u64;
            }
            prev = Some(e.t_us);
            xmin = xmin.min(e.x);
            xmax = xmax.max(e.x);
            ymin = ymin.min(e.y);
            ymax = ymax.max(e.y);
        }
    }
    let events = on + off;
    let (width, height, size_source) = match (opts.sensor_size, r.sensor_size()) {
        (Some(s), _) => (s.width as u32, s.height as u32, "option"),
        (None, Some(s)) => (s.width as u32, s.height as u32, "header"),
        (None, None) if events > 0 => (xmax as u32 + 1, ymax as u32 + 1, "extent"),
        (None, None) => (0, 0, "extent"),
    };
    let duration_us = match (first, last) {
        (Some(a), Some(b)) => b.t_us.saturating_sub(a.t_us),
        _ => 0,
    };
    Ok(Info {
        path: path.to_path_buf(),
        format: r.format().name(),
        width,
        height,
        size_source,
        events,
        on,
        off,
        t_first_us: first.map(|e| e.t_us),
        t_last_us: last.map(|e| e.t_us),
        duration_us,
        first_event: first,
        last_event: last,
        event_rate_per_s: if duration_us > 0 {
            events as f64 / (duration_us as f64 * 1e-6)
        } else {
            0.0
        },
        x_range: (events > 0).then_some([xmin, xmax]),
        y_range: (events > 0).then_some([ymin, ymax]),
        stats: r.stats().clone(),
        time_jumps,
        largest_gap_us,
    })
}
