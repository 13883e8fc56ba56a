//! AEDAT 2.0, the jAER format: `#` header lines, then big-endian `u32 address, u32 timestamp`
//! pairs (8 bytes per record, timestamps in µs).
//!
//! The address layout depends on the chip named in the header (`# AEChip: ...`):
//!
//! - **DVS128** (`...retina.DVS128`, also the CIFAR10-DVS recordings): `x_raw = (a >> 1) & 0x7F`,
//!   `y_raw = (a >> 8) & 0x7F`, bit 0 is the raw polarity and bit 15 marks an external
//!   (special) event. jAER's extractor flips x and polarity (raw polarity 0 is ON) and keeps
//!   y with its origin at the bottom. In this crate's top-left convention:
//!   `x = 127 − x_raw`, `y = 127 − y_raw`, `on = bit0 == 0`.
//! - **DAVIS** (`eu.seebetter.ini.chips.davis.*`): bit 31 set marks an APS or IMU word,
//!   bit 10 set a special event; otherwise a DVS event with `x_raw = (a >> 12) & 0x3FF`,
//!   `y_raw = (a >> 22) & 0x1FF`, `on = bit11 == 1`. jAER flips x; with the origin moved to
//!   the top: `x = W − 1 − x_raw`, `y = H − 1 − y_raw`.
//!
//! Timestamps are unsigned 32-bit and unwrapped into 64 bits. A file that ends inside a
//! record yields every complete event, then [`crate::Error::Truncated`].

use super::{scan_marked_lines, Ctx, Decode, Header, ReadStats, Widen32};
use crate::error::Result;
use crate::event::{Event, SensorSize};

/// Address layout of an AEDAT 2.0 file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// 128×128 DVS128 addresses (15-bit).
    Dvs128,
    /// DAVIS addresses (32-bit), with the sensor size of the chip.
    Davis(SensorSize),
}

impl Layout {
    /// The layout for a jAER `AEChip` class name, if it is known.
    pub fn from_chip(chip: &str) -> Option<Layout> {
        let c = chip.to_ascii_lowercase();
        if c.contains("dvs128") || c.contains("tmpdiff128") {
            Some(Layout::Dvs128)
        } else if c.contains("davis") || c.contains("sbret10") {
            super::inivation_sensor_size(&c).map(Layout::Davis)
        } else {
            None
        }
    }

    /// Sensor size of the layout.
    pub fn sensor_size(&self) -> SensorSize {
        match self {
            Layout::Dvs128 => SensorSize::new(128, 128),
            Layout::Davis(s) => *s,
        }
    }
}

pub(crate) struct Decoder {
    forced: Option<Layout>,
    layout: Option<Layout>,
    first_line: bool,
    time: Widen32,
}

impl Decoder {
    pub fn new(forced: Option<Layout>) -> Self {
        Self {
            forced,
            layout: None,
            first_line: true,
            time: Widen32::default(),
        }
    }
}

impl Decode for Decoder {
    fn header(&mut self, buf: &[u8], eof: bool, ctx: &Ctx) -> Result<Header> {
        let first_line = &mut self.first_line;
        let layout = &mut self.layout;
        let progress = scan_marked_lines(buf, eof, b'#', |line| {
            if *first_line {
                *first_line = false;
                if !line.starts_with(b"#!AER-DAT2") {
                    return Err(ctx.corrupt(0, "missing #!AER-DAT2.0 magic line"));
                }
            }
            let text = String::from_utf8_lossy(line);
            if let Some(i) = text.find("AEChip:") {
                if layout.is_none() {
                    *layout = Layout::from_chip(text[i + 7..].trim());
                }
            }
            Ok(false)
        })?;
        if matches!(progress, Header::Done(_)) {
            if self.first_line {
                return Err(ctx.corrupt(0, "missing #!AER-DAT2.0 magic line"));
            }
            if let Some(f) = self.forced {
                self.layout = Some(f);
            }
            // jAER's default chip, and the chip of DVS128-Gesture's predecessors and
            // CIFAR10-DVS, is the DVS128.
            self.layout.get_or_insert(Layout::Dvs128);
        }
        Ok(progress)
    }

    fn body(&mut self, buf: &[u8], _ctx: &Ctx, out: &mut Vec<Event>, stats: &mut ReadStats) -> Result<usize> {
        let n = buf.len() / 8;
        out.reserve(n);
        let records = buf[..n * 8].chunks_exact(8);
        match self.layout.unwrap_or(Layout::Dvs128) {
            Layout::Dvs128 => {
                for r in records {
                    let a = u32::from_be_bytes([r[0], r[1], r[2], r[3]]);
                    let t = self.time.widen(
                        u32::from_be_bytes([r[4], r[5], r[6], r[7]]),
                        &mut stats.timestamp_overflows,
                    );
                    if a & 0xFFFF_8000 != 0 {
                        stats.skipped_records += 1;
                        continue;
                    }
                    let x = 127 - ((a >> 1) & 0x7F) as u16;
                    let y = 127 - ((a >> 8) & 0x7F) as u16;
                    out.push(Event::new(t, x, y, a & 1 == 0));
                }
            }
            Layout::Davis(size) => {
                let (w, h) = (size.width as u32, size.height as u32);
                for r in records {
                    let a = u32::from_be_bytes([r[0], r[1], r[2], r[3]]);
                    let t = self.time.widen(
                        u32::from_be_bytes([r[4], r[5], r[6], r[7]]),
                        &mut stats.timestamp_overflows,
                    );
                    if a & 0x8000_0400 != 0 {
                        // APS/IMU word (bit 31) or special event (bit 10).
                        stats.skipped_records += 1;
                        continue;
                    }
                    let xr = (a >> 12) & 0x3FF;
                    let yr = (a >> 22) & 0x1FF;
                    if xr >= w || yr >= h {
                        stats.invalid_events += 1;
                        continue;
                    }
                    out.push(Event::new(
                        t,
                        (w - 1 - xr) as u16,
                        (h - 1 - yr) as u16,
                        a & 0x800 != 0,
                    ));
                }
            }
        }
        Ok(n * 8)
    }

    fn record(&self) -> Option<(usize, &'static str)> {
        Some((8, "record"))
    }

    fn sensor_size(&self) -> Option<SensorSize> {
        self.layout.map(|l| l.sensor_size())
    }
}

/// Writes AEDAT 2.0 files with DVS128 addresses (the CIFAR10-DVS layout), the inverse of
/// this module's reader. Events must lie on a 128×128 sensor.
pub struct Writer<W: std::io::Write> {
    out: W,
}

impl<W: std::io::Write> Writer<W> {
    /// Writes the header and returns the writer.
    ///
    /// # Errors
    /// Writing the header to `out` failed.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all(
            b"#!AER-DAT2.0\r\n# This is a raw AE data file created by stdl\r\n\
# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n\
# Timestamps tick is 1 us\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n",
        )?;
        Ok(Self { out })
    }

    /// Appends events. Timestamps are stored modulo 2^32.
    ///
    /// # Errors
    /// An event outside the format's 15-bit coordinates, a time that does not fit 32 bits, or
    /// a failed write.
    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(events.len() * 8);
        for e in events {
            if e.x > 127 || e.y > 127 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("event at ({}, {}) is off the 128x128 DVS128 sensor", e.x, e.y),
                ));
            }
            let a = ((127 - e.x as u32) << 1) | ((127 - e.y as u32) << 8) | (!e.on as u32);
            buf.extend_from_slice(&a.to_be_bytes());
            buf.extend_from_slice(&(e.t_us as u32).to_be_bytes());
        }
        self.out.write_all(&buf)
    }

    /// Flushes and returns the inner writer.
    ///
    /// # Errors
    /// Flushing `out` failed.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
