//! `stdl info`: what a recording holds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use stdl_io::{Event, EventReader, Format, ReadOptions, ReadStats};

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
pub fn info(path: &Path, format: Option<Format>, opts: &ReadOptions, max_gap_us: u64) -> Result<Info> {
    let mut r = EventReader::open_as(path, format, opts)?;
    let (mut on, mut off) = (0u64, 0u64);
    let (mut first, mut last) = (None::<Event>, None::<Event>);
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (u16::MAX, 0u16, u16::MAX, 0u16);
    let (mut prev, mut time_jumps, mut largest_gap_us) = (None::<u64>, 0u64, 0u64);
    for batch in r.by_ref() {
        let batch = batch.with_context(|| format!("reading {}", path.display()))?;
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

fn ev(e: &Option<Event>) -> String {
    match e {
        Some(e) => format!("t_us={} x={} y={} on={}", e.t_us, e.x, e.y, e.on),
        None => "-".into(),
    }
}

/// Human-readable block.
pub fn print_text(i: &Info) {
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    println!("{}", i.path.display());
    println!("  format       {}", i.format);
    println!("  size         {}x{} ({})", i.width, i.height, i.size_source);
    println!("  events       {} ({} on, {} off)", i.events, i.on, i.off);
    println!(
        "  time         {} .. {} us ({:.6} s)",
        opt(i.t_first_us),
        opt(i.t_last_us),
        i.duration_us as f64 * 1e-6
    );
    println!("  rate         {:.0} events/s", i.event_rate_per_s);
    println!("  first event  {}", ev(&i.first_event));
    println!("  last event   {}", ev(&i.last_event));
    if let (Some(x), Some(y)) = (i.x_range, i.y_range) {
        println!("  extent       x {}..{}, y {}..{}", x[0], x[1], y[0], y[1]);
    }
    let s = &i.stats;
    println!(
        "  skipped      {} records, {} packets; {} invalid events; {} backwards timestamps; {} overflows",
        s.skipped_records, s.skipped_packets, s.invalid_events, s.backwards_timestamps, s.timestamp_overflows
    );
    println!(
        "  time jumps   {} beyond the maximum gap; largest step {:.6} s",
        i.time_jumps,
        i.largest_gap_us as f64 * 1e-6
    );
}
