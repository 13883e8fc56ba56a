//! Prophesee EVT 3.0 `.raw`: a `%` header, then little-endian 16-bit words (ADDR_Y, ADDR_X,
//! VECT_BASE_X, VECT_12, VECT_8, TIME_LOW, TIME_HIGH, EXT_TRIGGER, OTHERS, CONTINUED).
//!
//! The words are decoded by the `evt3` crate (MIT), whose decoder matches Prophesee's C++
//! reference, including the 24-bit time-base wrap (TIME_HIGH loops every 16.78 s); on the
//! real Gen4.1 sample in `shared/data` it agrees event for event with an independent
//! spec decoder. Header parsing, framing and error reporting are ours. Words before the
//! first TIME_HIGH carry no time base and are ignored (as in the reference). The origin is
//! the top-left.

use evt3::{EventSink, Evt3Decoder};

use super::prophesee::PropheseeHeader;
use super::{Ctx, Decode, Header, ReadStats};
use crate::error::Result;
use crate::event::{Event, SensorSize};

pub(crate) struct Decoder {
    header: PropheseeHeader,
    inner: Evt3Decoder,
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            header: PropheseeHeader::default(),
            inner: Evt3Decoder::new(),
        }
    }
}

struct Sink<'a> {
    out: &'a mut Vec<Event>,
    triggers: u64,
}

impl EventSink for Sink<'_> {
    fn reserve_cd(&mut self, additional: usize) {
        self.out.reserve(additional);
    }
    fn cd_len(&self) -> usize {
        self.out.len()
    }
    fn trigger_len(&self) -> usize {
        self.triggers as usize
    }
    #[inline(always)]
    fn push_cd(&mut self, x: u16, y: u16, polarity: u8, timestamp: u64) {
        self.out.push(Event::new(timestamp, x, y, polarity != 0));
    }
    fn push_trigger(&mut self, _value: u8, _id: u8, _timestamp: u64) {
        self.triggers += 1;
    }
}

/// EVT 3.0 words as a camera sends them, without a file header: feed byte slices of any
/// length (an odd trailing byte is kept for the next slice), get events.
pub struct RawStream {
    inner: Evt3Decoder,
    carry: Option<u8>,
    triggers: u64,
}

impl Default for RawStream {
    fn default() -> Self {
        Self::new()
    }
}

impl RawStream {
    /// A decoder at the start of a stream (events wait for the first TIME_HIGH word).
    pub fn new() -> Self {
        Self {
            inner: Evt3Decoder::new(),
            carry: None,
            triggers: 0,
        }
    }

    /// Decodes `bytes`, appending events to `out`.
    pub fn decode(&mut self, mut bytes: &[u8], out: &mut Vec<Event>) {
        let mut sink = Sink { out, triggers: 0 };
        if let (Some(lo), Some((&hi, rest))) = (self.carry, bytes.split_first()) {
            self.inner.decode_bytes_into(&[lo, hi], &mut sink);
            self.carry = None;
            bytes = rest;
        }
        let even = bytes.len() & !1;
        sink.out.reserve(even / 2);
        self.inner.decode_bytes_into(&bytes[..even], &mut sink);
        if even < bytes.len() {
            self.carry = Some(bytes[even]);
        }
        self.triggers += sink.triggers;
    }

    /// Trigger events seen (not returned as events).
    pub fn triggers(&self) -> u64 {
        self.triggers
    }
}

impl Decode for Decoder {
    fn header(&mut self, buf: &[u8], eof: bool, ctx: &Ctx) -> Result<Header> {
        self.header.parse_expecting(buf, eof, ctx, "3.0")
    }

    fn body(&mut self, buf: &[u8], _ctx: &Ctx, out: &mut Vec<Event>, stats: &mut ReadStats) -> Result<usize> {
        let even = buf.len() & !1;
        // One word yields at most 12 events (VECT_12).
        out.reserve(even / 2);
        let mut sink = Sink { out, triggers: 0 };
        self.inner.decode_bytes_into(&buf[..even], &mut sink);
        stats.skipped_records += sink.triggers;
        Ok(even)
    }

    fn finish(
        &mut self,
        rest: &[u8],
        ctx: &Ctx,
        _out: &mut Vec<Event>,
        _stats: &mut ReadStats,
    ) -> Result<()> {
        if rest.is_empty() {
            Ok(())
        } else {
            Err(ctx.truncated_at_least(0, "word", 1))
        }
    }

    fn sensor_size(&self) -> Option<SensorSize> {
        self.header.sensor_size()
    }
}
