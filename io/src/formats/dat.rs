//! Prophesee DAT (ATIS / N-CARS): a `%` header, two bytes `event_type` and `event_size`
//! (must be 8), then 8-byte little-endian records `u32 t (µs), u32 data`.
//!
//! - Version 2 (`% Version 2`): `x = data & 0x3FFF`, `y = (data >> 14) & 0x3FFF`,
//!   `p = data >> 28`.
//! - Older files (no `Version` line, or a version below 2): `x = data & 0x1FF`,
//!   `y = (data >> 9) & 0xFF`, `p = (data >> 17) & 0xF`.
//!
//! `on = p != 0`. The 32-bit time is unwrapped into 64 bits on a large decrease. The
//! origin is the top-left. The sensor size comes from `% Width` / `% Height` when present
//! (N-CARS samples have none: their size follows from the events).

use super::prophesee::PropheseeHeader;
use super::{Ctx, Decode, Header, ReadStats, Widen32};
use crate::error::Result;
use crate::event::{Event, SensorSize};

pub(crate) struct Decoder {
    header: PropheseeHeader,
    text_done: bool,
    time: Widen32,
    v2: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            header: PropheseeHeader::default(),
            text_done: false,
            time: Widen32::default(),
            v2: true,
        }
    }
}

impl Decode for Decoder {
    fn header(&mut self, buf: &[u8], eof: bool, ctx: &Ctx) -> Result<Header> {
        if !self.text_done {
            return match self.header.parse(buf, eof, ctx)? {
                Header::Done(n) => {
                    self.text_done = true;
                    self.v2 = self.header.version.is_some_and(|v| v >= 2);
                    Ok(Header::More(n))
                }
                more => Ok(more),
            };
        }
        if buf.len() < 2 {
            return if eof {
                Err(ctx.truncated(0, "header", (2 - buf.len()) as u64))
            } else {
                Ok(Header::More(0))
            };
        }
        let (ty, size) = (buf[0], buf[1]);
        if size != 8 {
            return Err(ctx.corrupt(
                1,
                format!("event size {size} (type {ty:#04x}); only 8-byte events are defined"),
            ));
        }
        Ok(Header::Done(2))
    }

    fn body(&mut self, buf: &[u8], _ctx: &Ctx, out: &mut Vec<Event>, stats: &mut ReadStats) -> Result<usize> {
        let n = buf.len() / 8;
        out.reserve(n);
        for r in buf[..n * 8].chunks_exact(8) {
            let t = self.time.widen(
                u32::from_le_bytes([r[0], r[1], r[2], r[3]]),
                &mut stats.timestamp_overflows,
            );
            let d = u32::from_le_bytes([r[4], r[5], r[6], r[7]]);
            let (x, y, p) = if self.v2 {
                (d & 0x3FFF, (d >> 14) & 0x3FFF, d >> 28)
            } else {
                (d & 0x1FF, (d >> 9) & 0xFF, (d >> 17) & 0xF)
            };
            out.push(Event::new(t, x as u16, y as u16, p != 0));
        }
        Ok(n * 8)
    }

    fn record(&self) -> Option<(usize, &'static str)> {
        Some((8, "record"))
    }

    fn sensor_size(&self) -> Option<SensorSize> {
        self.header.sensor_size()
    }
}
