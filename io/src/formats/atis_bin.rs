//! ATIS 40-bit `.bin` events: N-MNIST, N-Caltech101 (and SLAYER's `.bs2` copies).
//!
//! No header; 5 bytes per event: `x` (u8), `y` (u8), then a big-endian 24-bit word whose
//! bit 23 is the polarity (1 = ON) and bits 22..0 the timestamp in µs
//! (Orchard et al., the N-MNIST page: "bit 39-32 Xaddress, 31-24 Yaddress, 23 Polarity,
//! 22-0 Timestamp"). The origin is the top-left, as the datasets' own tools display it.
//!
//! A record with `y == 240` is a **timestamp-overflow marker**, not an event: it is dropped,
//! counted in [`super::ReadStats::timestamp_overflows`], and every later timestamp is
//! shifted by `ReadOptions::atis_overflow_us` (default `1 << 23`, the wrap of the 23-bit
//! field; Orchard's MATLAB reader and Tonic add `1 << 13`). The N-MNIST and N-Caltech101
//! samples are about 300 ms long and contain no marker.

use super::{Ctx, Decode, ReadStats};
use crate::error::Result;
use crate::event::{Event, SensorSize};

pub(crate) struct Decoder {
    overflow_us: u64,
    offset_us: u64,
}

impl Decoder {
    pub fn new(overflow_us: u64) -> Self {
        Self {
            overflow_us,
            offset_us: 0,
        }
    }
}

impl Decode for Decoder {
    fn header(&mut self, _buf: &[u8], _eof: bool, _ctx: &Ctx) -> Result<super::Header> {
        Ok(super::Header::Done(0))
    }

    fn body(&mut self, buf: &[u8], _ctx: &Ctx, out: &mut Vec<Event>, stats: &mut ReadStats) -> Result<usize> {
        let n = buf.len() / 5;
        out.reserve(n);
        let mut rest = &buf[..n * 5];
        while !rest.is_empty() {
            // Decode the run up to the next overflow marker in one `extend` over a
            // fixed-size chunk iterator (no capacity check per event), then apply the marker.
            let run = rest
                .chunks_exact(5)
                .position(|r| r[1] == 240)
                .unwrap_or(rest.len() / 5);
            let offset = self.offset_us;
            out.extend(rest[..run * 5].chunks_exact(5).map(|r| {
                let w = u32::from_be_bytes([0, r[2], r[3], r[4]]);
                Event::new(
                    (w & 0x7F_FFFF) as u64 + offset,
                    r[0] as u16,
                    r[1] as u16,
                    w & 0x80_0000 != 0,
                )
            }));
            rest = &rest[run * 5..];
            if !rest.is_empty() {
                self.offset_us += self.overflow_us;
                stats.timestamp_overflows += 1;
                rest = &rest[5..];
            }
        }
        Ok(n * 5)
    }

    fn record(&self) -> Option<(usize, &'static str)> {
        Some((5, "record"))
    }

    fn sensor_size(&self) -> Option<SensorSize> {
        None
    }
}

/// Writes ATIS 40-bit `.bin` files (the N-MNIST / N-Caltech101 layout).
///
/// Coordinates must fit in a byte (and `y` must not be 240, the overflow marker);
/// timestamps past the 23-bit range get overflow markers of `overflow_us` (default 2^23).
pub struct Writer<W: std::io::Write> {
    out: W,
    overflow_us: u64,
    written_offset_us: u64,
}

impl<W: std::io::Write> Writer<W> {
    /// A writer that uses the reader's default overflow step (2^23 µs).
    pub fn new(out: W) -> Self {
        Self::with_overflow(out, 1 << 23)
    }

    /// A writer whose overflow markers each stand for `overflow_us` (>= 1).
    pub fn with_overflow(out: W, overflow_us: u64) -> Self {
        Self {
            out,
            overflow_us: overflow_us.max(1),
            written_offset_us: 0,
        }
    }

    /// Appends events in time order.
    ///
    /// # Errors
    /// An event outside the format's 8-bit coordinates, or a failed write.
    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(events.len() * 5);
        for e in events {
            if e.x > 255 || e.y > 255 || e.y == 240 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "event at ({}, {}) cannot be stored in an ATIS .bin file",
                        e.x, e.y
                    ),
                ));
            }
            if e.t_us < self.written_offset_us {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "ATIS .bin writer: timestamps must not go back past an overflow marker",
                ));
            }
            while e.t_us - self.written_offset_us > 0x7F_FFFF {
                buf.extend_from_slice(&[0, 240, 0, 0, 0]);
                self.written_offset_us += self.overflow_us;
            }
            let t = (e.t_us - self.written_offset_us) as u32;
            let w = t | ((e.on as u32) << 23);
            buf.extend_from_slice(&[e.x as u8, e.y as u8, (w >> 16) as u8, (w >> 8) as u8, w as u8]);
        }
        self.out.write_all(&buf)
    }

    /// Flushes and returns the inner writer.
    ///
    /// # Errors
    /// Writing the last overflow markers or flushing `out` failed.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
