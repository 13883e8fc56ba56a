//! AEDAT 3.1 (libcaer / cAER), the DVS128-Gesture format.
//!
//! `#` header lines ending in `#!END-HEADER`, then packets, each a 28-byte little-endian
//! header (`eventType i16, eventSource i16, eventSize i32, eventTSOffset i32,
//! eventTSOverflow i32, eventCapacity i32, eventNumber i32, eventValid i32`) followed by
//! `eventCapacity × eventSize` bytes. Polarity packets (type 1, 8-byte events:
//! `u32 data, i32 timestamp`) are decoded; every other type is skipped without buffering.
//! Of a polarity packet, the first `eventNumber` events are decoded and those whose valid
//! bit (bit 0) is clear are dropped and counted; capacity beyond `eventNumber` is skipped.
//!
//! `x = (data >> 17) & 0x7FFF`, `y = (data >> 2) & 0x7FFF`, `on = bit 1`, and the time is
//! `eventTSOverflow << 31 | timestamp` (libcaer). The origin is already top-left in 3.1.
//! AEDAT 3.0 stored it at the bottom-left; for `#!AER-DAT3.0` files with a known sensor
//! height, `y` is flipped to keep the convention.

use super::{scan_marked_lines, Ctx, Decode, Header, ReadStats};
use crate::error::Result;
use crate::event::{Event, SensorSize};

const PACKET_HEADER: usize = 28;
/// Largest event size accepted in any packet (a 640×480 APS frame with its header fits).
const MAX_EVENT_SIZE: i32 = 1 << 24;

enum State {
    PacketHeader,
    Polarity { left: u32, tail: u64, overflow: u64 },
    Skip { left: u64 },
}

pub(crate) struct Decoder {
    state: State,
    first_line: bool,
    v30: bool,
    end_seen: bool,
    size: Option<SensorSize>,
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            state: State::PacketHeader,
            first_line: true,
            v30: false,
            end_seen: false,
            size: None,
        }
    }
}

fn le_i32(b: &[u8]) -> i32 {
    i32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl Decode for Decoder {
    fn header(&mut self, buf: &[u8], eof: bool, ctx: &Ctx) -> Result<Header> {
        let first_line = &mut self.first_line;
        let v30 = &mut self.v30;
        let size = &mut self.size;
        let end_seen = &mut self.end_seen;
        let p = scan_marked_lines(buf, eof, b'#', |line| {
            if *first_line {
                *first_line = false;
                if !line.starts_with(b"#!AER-DAT3") {
                    return Err(ctx.corrupt(0, "missing #!AER-DAT3.x magic line"));
                }
                *v30 = line.starts_with(b"#!AER-DAT3.0");
                return Ok(false);
            }
            if line == b"#!END-HEADER" {
                *end_seen = true;
                return Ok(true);
            }
            let text = String::from_utf8_lossy(line);
            if let Some(rest) = text.strip_prefix("#Source ") {
                if let Some((_, name)) = rest.split_once(':') {
                    if size.is_none() {
                        *size = super::inivation_sensor_size(name.trim());
                    }
                }
            }
            Ok(false)
        })?;
        match p {
            Header::Done(_) if self.first_line => Err(ctx.corrupt(0, "missing #!AER-DAT3.x magic line")),
            // The input ended inside the header: no #!END-HEADER line.
            Header::Done(n) if eof && !self.end_seen && n == buf.len() => {
                Err(ctx.truncated_at_least(n, "header", "#!END-HEADER\r\n".len() as u64))
            }
            other => Ok(other),
        }
    }

    fn body(&mut self, buf: &[u8], ctx: &Ctx, out: &mut Vec<Event>, stats: &mut ReadStats) -> Result<usize> {
        let mut pos = 0;
        loop {
            match &mut self.state {
                State::PacketHeader => {
                    if buf.len() - pos < PACKET_HEADER {
                        return Ok(pos);
                    }
                    let h = &buf[pos..pos + PACKET_HEADER];
                    let ty = i16::from_le_bytes([h[0], h[1]]);
                    let size = le_i32(&h[4..]);
                    let ts_off = le_i32(&h[8..]);
                    let overflow = le_i32(&h[12..]);
                    let capacity = le_i32(&h[16..]);
                    let number = le_i32(&h[20..]);
                    let valid = le_i32(&h[24..]);
                    let at = pos;
                    let bad = |m: String| Err(ctx.corrupt(at, m));
                    if ty < 0 {
                        return bad(format!("packet header with negative event type {ty}"));
                    }
                    if !(1..=MAX_EVENT_SIZE).contains(&size) {
                        return bad(format!("packet header claims an event size of {size} bytes"));
                    }
                    if capacity < 0 || number < 0 || number > capacity || valid < 0 || valid > number {
                        return bad(format!(
                            "inconsistent packet header: capacity {capacity}, number {number}, valid {valid}"
                        ));
                    }
                    if overflow < 0 {
                        return bad(format!("negative timestamp overflow {overflow}"));
                    }
                    let total = size as u64 * capacity as u64;
                    pos += PACKET_HEADER;
                    if ty == 1 {
                        if size != 8 || ts_off != 4 {
                            return bad(format!(
                                "polarity packet with event size {size} and timestamp offset {ts_off} (expected 8 and 4)"
                            ));
                        }
                        self.state = State::Polarity {
                            left: number as u32,
                            tail: (capacity - number) as u64 * 8,
                            overflow: overflow as u64,
                        };
                    } else {
                        stats.skipped_packets += 1;
                        self.state = State::Skip { left: total };
                    }
                }
                State::Polarity { left, tail, overflow } => {
                    let avail = ((buf.len() - pos) / 8).min(*left as usize);
                    out.reserve(avail);
                    let base = *overflow << 31;
                    for r in buf[pos..pos + avail * 8].chunks_exact(8) {
                        let data = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
                        let ts = u32::from_le_bytes([r[4], r[5], r[6], r[7]]) & 0x7FFF_FFFF;
                        if data & 1 == 0 {
                            stats.invalid_events += 1;
                            continue;
                        }
                        let x = ((data >> 17) & 0x7FFF) as u16;
                        let mut y = ((data >> 2) & 0x7FFF) as u16;
                        if self.v30 {
                            if let Some(s) = self.size {
                                y = s.height.saturating_sub(1).saturating_sub(y);
                            }
                        }
                        out.push(Event::new(base | ts as u64, x, y, data & 2 != 0));
                    }
                    pos += avail * 8;
                    *left -= avail as u32;
                    if *left > 0 {
                        return Ok(pos);
                    }
                    let t = *tail;
                    self.state = State::Skip { left: t };
                }
                State::Skip { left } => {
                    let n = (*left).min((buf.len() - pos) as u64);
                    pos += n as usize;
                    *left -= n;
                    if *left > 0 {
                        return Ok(pos);
                    }
                    self.state = State::PacketHeader;
                }
            }
        }
    }

    fn finish(
        &mut self,
        rest: &[u8],
        ctx: &Ctx,
        _out: &mut Vec<Event>,
        _stats: &mut ReadStats,
    ) -> Result<()> {
        match &self.state {
            State::PacketHeader if rest.is_empty() => Ok(()),
            State::PacketHeader => {
                Err(ctx.truncated(0, "packet header", (PACKET_HEADER - rest.len()) as u64))
            }
            State::Polarity { left, tail, .. } => {
                Err(ctx.truncated(0, "packet", *left as u64 * 8 - rest.len() as u64 + tail))
            }
            State::Skip { left } => Err(ctx.truncated(0, "packet", *left)),
        }
    }

    fn sensor_size(&self) -> Option<SensorSize> {
        self.size
    }
}

/// Writes AEDAT 3.1 files of polarity packets, as cAER records a DVS128 (the
/// DVS128-Gesture layout). Timestamps must fit in 63 bits.
pub struct Writer<W: std::io::Write> {
    out: W,
    pending: Vec<Event>,
}

/// Events per packet written.
const PACKET_EVENTS: usize = 4096;

impl<W: std::io::Write> Writer<W> {
    /// Writes the header. `source` names the camera, e.g. `DVS128`.
    ///
    /// # Errors
    /// Writing the header to `out` failed.
    pub fn new(mut out: W, source: &str) -> std::io::Result<Self> {
        write!(
            out,
            "#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: {source}\r\n#Start-Time: 1970-01-01 00:00:00 (TZ+0000)\r\n#!END-HEADER\r\n"
        )?;
        Ok(Self {
            out,
            pending: Vec::with_capacity(PACKET_EVENTS),
        })
    }

    /// Appends events (buffered into packets of up to 4096 events).
    ///
    /// # Errors
    /// An event outside the format's 15-bit coordinates, or a failed write.
    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        for &e in events {
            if let Some(last) = self.pending.last() {
                if last.t_us >> 31 != e.t_us >> 31 || self.pending.len() == PACKET_EVENTS {
                    self.flush_packet()?;
                }
            }
            self.pending.push(e);
        }
        Ok(())
    }

    fn flush_packet(&mut self) -> std::io::Result<()> {
        let n = self.pending.len();
        if n == 0 {
            return Ok(());
        }
        let overflow = (self.pending[0].t_us >> 31) as i32;
        let mut buf = Vec::with_capacity(PACKET_HEADER + n * 8);
        for v in [1i16, 1] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        for v in [8i32, 4, overflow, n as i32, n as i32, n as i32] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        for e in &self.pending {
            let data =
                1u32 | ((e.on as u32) << 1) | ((e.y as u32 & 0x7FFF) << 2) | ((e.x as u32 & 0x7FFF) << 17);
            buf.extend_from_slice(&data.to_le_bytes());
            buf.extend_from_slice(&((e.t_us & 0x7FFF_FFFF) as u32).to_le_bytes());
        }
        self.pending.clear();
        self.out.write_all(&buf)
    }

    /// Writes the last packet, flushes, and returns the inner writer.
    ///
    /// # Errors
    /// Writing the last packet or flushing `out` failed.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.flush_packet()?;
        self.out.flush()?;
        Ok(self.out)
    }
}
