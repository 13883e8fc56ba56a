//! Prophesee EVT 2.0 `.raw`: a `%` header, then little-endian 32-bit words; the type is
//! the top 4 bits.
//!
//! | type | word | meaning |
//! |---|---|---|
//! | `0x0` / `0x1` | CD_OFF / CD_ON | `t_lsb = (w >> 22) & 0x3F`, `x = (w >> 11) & 0x7FF`, `y = w & 0x7FF` |
//! | `0x8` | EVT_TIME_HIGH | `t_high = (w & 0x0FFF_FFFF) << 6` |
//! | `0xA` | EXT_TRIGGER | skipped (counted) |
//! | `0xE`, `0xF` | OTHERS, CONTINUED | skipped (counted) |
//!
//! The time is `t_high + t_lsb` (34 bits, unwrapped into 64 when TIME_HIGH goes back by
//! more than half its range). CD words before the first TIME_HIGH have no time base: like
//! Prophesee's decoder, we drop them (counted as invalid). The origin is the top-left.

use super::prophesee::PropheseeHeader;
use super::{Ctx, Decode, Header, ReadStats};
use crate::error::Result;
use crate::event::{Event, SensorSize};

const HIGH_PERIOD: u64 = 1 << 34;

pub(crate) struct Decoder {
    header: PropheseeHeader,
    t_high: u64,
    loops: u64,
    have_high: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            header: PropheseeHeader::default(),
            t_high: 0,
            loops: 0,
            have_high: false,
        }
    }
}

impl Decode for Decoder {
    fn header(&mut self, buf: &[u8], eof: bool, ctx: &Ctx) -> Result<Header> {
        self.header.parse_expecting(buf, eof, ctx, "2.0")
    }

    fn body(&mut self, buf: &[u8], _ctx: &Ctx, out: &mut Vec<Event>, stats: &mut ReadStats) -> Result<usize> {
        let n = buf.len() / 4;
        out.reserve(n);
        for w in buf[..n * 4].chunks_exact(4) {
            let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            match w >> 28 {
                ty @ (0x0 | 0x1) => {
                    if !self.have_high {
                        stats.invalid_events += 1;
                        continue;
                    }
                    let t = self.t_high + ((w >> 22) & 0x3F) as u64;
                    out.push(Event::new(
                        t,
                        ((w >> 11) & 0x7FF) as u16,
                        (w & 0x7FF) as u16,
                        ty == 1,
                    ));
                }
                0x8 => {
                    let high = ((w & 0x0FFF_FFFF) as u64) << 6;
                    let mut t = high + self.loops * HIGH_PERIOD;
                    if self.have_high && t + HIGH_PERIOD / 2 < self.t_high {
                        self.loops += 1;
                        t += HIGH_PERIOD;
                        stats.timestamp_overflows += 1;
                    }
                    self.t_high = t;
                    self.have_high = true;
                }
                _ => stats.skipped_records += 1,
            }
        }
        Ok(n * 4)
    }

    fn record(&self) -> Option<(usize, &'static str)> {
        Some((4, "word"))
    }

    fn sensor_size(&self) -> Option<SensorSize> {
        self.header.sensor_size()
    }
}
