//! AEDAT 4.0 (iniVation DV), from files and from the DV network stream.
//!
//! A file starts with `#!AER-DAT4.0\r\n`; the network stream (DV's and dv-processing's
//! `NetworkWriter`) starts directly with the next part: a `u32` length and an `IOHeader`
//! flatbuffer (identifier `IOHE`: compression, file data table position, and an XML
//! description of the streams). Then come packets: `{i32 streamId, i32 size}` and `size`
//! bytes, each (once decompressed with LZ4 or zstd, if the header says so) a size-prefixed
//! flatbuffer. Only packets of streams whose `typeIdentifier` is `EVTS` are decoded; frames,
//! IMU samples and triggers are skipped without being decompressed. Events are
//! `{i64 t (Unix µs), i16 x, i16 y, bool on}` with the origin at the top-left.
//!
//! The flatbuffer schemas (and their verifiers) are the `aedat` crate's. Framing,
//! decompression and size checks are ours: its own `Decoder` reads only from paths and
//! sockets, allocates whatever a packet header claims, and parses the IOHeader without
//! verification. Here an IOHeader is capped at 16 MiB, a packet at 64 MiB compressed and
//! 512 MiB decompressed, and every flatbuffer is verified before it is read.

use std::io::Read;

use aedat::base::ioheader_generated::{size_prefixed_root_as_ioheader, Compression};
use aedat::events_generated::size_prefixed_root_as_event_packet;

use super::{Ctx, Decode, Header, ReadStats};
use crate::error::Result;
use crate::event::{Event, SensorSize};

const MAGIC: &[u8] = b"#!AER-DAT4.0\r\n";
const MAX_IOHEADER: u32 = 16 << 20;
const MAX_PACKET: i32 = 64 << 20;
const MAX_DECOMPRESSED: u64 = 512 << 20;

/// Whether `head` looks like a DV network stream (no magic line; `IOHE` flatbuffer first).
pub(crate) fn looks_like_network_stream(head: &[u8]) -> bool {
    head.len() >= 12
        && &head[8..12] == b"IOHE"
        && u32::from_le_bytes([head[0], head[1], head[2], head[3]]) <= MAX_IOHEADER
}

/// What a stream of the file carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// Stream id used in packet headers.
    pub id: i32,
    /// `typeIdentifier`: `EVTS`, `FRME`, `IMUS`, `TRIG`, ...
    pub type_identifier: String,
    /// `info/sizeX` × `info/sizeY`, when given.
    pub size: Option<SensorSize>,
}

#[derive(Clone, Copy)]
enum Codec {
    None,
    Lz4,
    Zstd,
}

enum State {
    Magic,
    /// The IOHeader of a network stream (no magic line; no file data table).
    StreamIoHeader,
    IoHeader,
    PacketHeader,
    Skip {
        left: u64,
    },
    Table,
}

pub(crate) struct Decoder {
    state: State,
    codec: Codec,
    file_data_position: i64,
    streams: Vec<StreamInfo>,
    scratch: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            state: State::Magic,
            codec: Codec::None,
            file_data_position: -1,
            streams: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn parse_ioheader(&mut self, fb: &[u8], ctx: &Ctx, rel: usize) -> Result<()> {
        let h = size_prefixed_root_as_ioheader(fb)
            .map_err(|e| ctx.corrupt(rel, format!("invalid IOHeader flatbuffer: {e}")))?;
        self.codec = match h.compression() {
            Compression::None => Codec::None,
            Compression::Lz4 | Compression::Lz4High => Codec::Lz4,
            Compression::Zstd | Compression::ZstdHigh => Codec::Zstd,
            Compression(c) => return Err(ctx.corrupt(rel, format!("unknown compression {c}"))),
        };
        self.file_data_position = h.file_data_position();
        let desc = h
            .description()
            .ok_or_else(|| ctx.corrupt(rel, "IOHeader has no stream description"))?;
        self.streams = parse_description(desc).map_err(|m| ctx.corrupt(rel, m))?;
        if self.streams.is_empty() {
            return Err(ctx.corrupt(rel, "the stream description names no stream"));
        }
        Ok(())
    }

    fn decode_events(
        &mut self,
        payload: &[u8],
        ctx: &Ctx,
        rel: usize,
        out: &mut Vec<Event>,
        stats: &mut ReadStats,
    ) -> Result<()> {
        let data: &[u8] = match self.codec {
            Codec::None => payload,
            Codec::Lz4 | Codec::Zstd => {
                self.scratch.clear();
                let res = match self.codec {
                    Codec::Lz4 => lz4::Decoder::new(payload)
                        .and_then(|d| d.take(MAX_DECOMPRESSED + 1).read_to_end(&mut self.scratch)),
                    _ => zstd::stream::Decoder::new(payload)
                        .and_then(|d| d.take(MAX_DECOMPRESSED + 1).read_to_end(&mut self.scratch)),
                };
                res.map_err(|e| ctx.corrupt(rel, format!("packet does not decompress: {e}")))?;
                if self.scratch.len() as u64 > MAX_DECOMPRESSED {
                    return Err(ctx.corrupt(rel, "packet decompresses to more than 512 MiB"));
                }
                &self.scratch
            }
        };
        if data.len() < 8 || &data[8.min(data.len())..12.min(data.len())] != b"EVTS" {
            return Err(ctx.corrupt(rel, "events packet without the EVTS flatbuffer identifier"));
        }
        let packet = size_prefixed_root_as_event_packet(data)
            .map_err(|e| ctx.corrupt(rel, format!("invalid event packet flatbuffer: {e}")))?;
        let elements = packet.elements().unwrap_or(&[]);
        out.reserve(elements.len());
        for e in elements {
            let (t, x, y) = (e.t(), e.x(), e.y());
            if t < 0 || x < 0 || y < 0 {
                stats.invalid_events += 1;
                continue;
            }
            out.push(Event::new(t as u64, x as u16, y as u16, e.on()));
        }
        Ok(())
    }
}

/// Parses the IOHeader's XML description into its streams.
fn parse_description(xml: &str) -> std::result::Result<Vec<StreamInfo>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("stream description is not XML: {e}"))?;
    let dv = doc.root_element();
    let out_info = dv
        .children()
        .find(|n| n.has_tag_name("node") && n.attribute("name") == Some("outInfo"))
        .ok_or("stream description has no outInfo node")?;
    let mut streams = Vec::new();
    for node in out_info.children().filter(|n| n.has_tag_name("node")) {
        let id: i32 = node
            .attribute("name")
            .and_then(|s| s.parse().ok())
            .ok_or("stream node without a numeric name")?;
        let attr = |parent: roxmltree::Node, key: &str| {
            parent
                .children()
                .find(|n| n.has_tag_name("attr") && n.attribute("key") == Some(key))
                .and_then(|n| n.text())
                .map(str::to_owned)
        };
        let type_identifier = attr(node, "typeIdentifier").ok_or("stream node without typeIdentifier")?;
        let size = node
            .children()
            .find(|n| n.has_tag_name("node") && n.attribute("name") == Some("info"))
            .and_then(|info| {
                let w = attr(info, "sizeX")?.parse().ok()?;
                let h = attr(info, "sizeY")?.parse().ok()?;
                Some(SensorSize::new(w, h))
            });
        if streams.iter().any(|s: &StreamInfo| s.id == id) {
            return Err(format!("stream id {id} is described twice"));
        }
        streams.push(StreamInfo {
            id,
            type_identifier,
            size,
        });
    }
    Ok(streams)
}

impl Decode for Decoder {
    fn header(&mut self, buf: &[u8], eof: bool, ctx: &Ctx) -> Result<Header> {
        match self.state {
            State::Magic => {
                if buf.len() < MAGIC.len() && !eof && MAGIC.starts_with(buf) {
                    return Ok(Header::More(0));
                }
                self.state = State::IoHeader;
                if buf.starts_with(MAGIC) {
                    Ok(Header::More(MAGIC.len()))
                } else if looks_like_network_stream(buf) {
                    // Parse it from the bytes at hand: asking for more could wait forever on
                    // a server that sent its header and first packets in one write.
                    self.state = State::StreamIoHeader;
                    self.header(buf, eof, ctx)
                } else if buf.len() < 12 && !eof {
                    self.state = State::Magic;
                    Ok(Header::More(0))
                } else {
                    Err(ctx.corrupt(
                        0,
                        "neither the #!AER-DAT4.0 magic line nor a network-stream IOHeader",
                    ))
                }
            }
            State::IoHeader | State::StreamIoHeader => {
                if buf.len() < 4 {
                    if eof {
                        return Err(ctx.truncated_at_least(buf.len(), "header", 4 - buf.len() as u64));
                    }
                    return Ok(Header::More(0));
                }
                let n = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if n > MAX_IOHEADER {
                    return Err(ctx.corrupt(0, format!("IOHeader claims {n} bytes (limit {MAX_IOHEADER})")));
                }
                let total = 4 + n as usize;
                if buf.len() < total {
                    if eof {
                        // The IOHeader's size prefix says exactly how much is missing.
                        return Err(ctx.truncated(0, "header", (total - buf.len()) as u64));
                    }
                    return Ok(Header::More(0));
                }
                // The length is the flatbuffer's own size prefix (alignment is relative to it).
                self.parse_ioheader(&buf[..total], ctx, 0)?;
                if matches!(self.state, State::StreamIoHeader) {
                    // Offsets in a stream are not file offsets, and a stream has no table.
                    self.file_data_position = -1;
                }
                self.state = State::PacketHeader;
                Ok(Header::Done(total))
            }
            _ => Ok(Header::Done(0)),
        }
    }

    fn body(&mut self, buf: &[u8], ctx: &Ctx, out: &mut Vec<Event>, stats: &mut ReadStats) -> Result<usize> {
        let mut pos = 0;
        loop {
            match self.state {
                State::PacketHeader => {
                    let abs = ctx.offset + pos as u64;
                    if self.file_data_position >= 0 && abs >= self.file_data_position as u64 {
                        self.state = State::Table;
                        continue;
                    }
                    if buf.len() - pos < 8 {
                        return Ok(pos);
                    }
                    let id = i32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap());
                    let size = i32::from_le_bytes(buf[pos + 4..pos + 8].try_into().unwrap());
                    if !(0..=MAX_PACKET).contains(&size) {
                        return Err(ctx.corrupt(
                            pos,
                            format!("packet header claims {size} bytes (limit {MAX_PACKET})"),
                        ));
                    }
                    let Some(stream) = self.streams.iter().find(|s| s.id == id) else {
                        return Err(ctx.corrupt(
                            pos,
                            format!("packet of stream {id}, which the header does not describe"),
                        ));
                    };
                    if stream.type_identifier != "EVTS" {
                        stats.skipped_packets += 1;
                        pos += 8;
                        self.state = State::Skip { left: size as u64 };
                        continue;
                    }
                    let end = pos + 8 + size as usize;
                    if buf.len() < end {
                        return Ok(pos);
                    }
                    self.decode_events(&buf[pos + 8..end], ctx, pos, out, stats)?;
                    pos = end;
                }
                State::Skip { left } => {
                    let n = left.min((buf.len() - pos) as u64);
                    pos += n as usize;
                    if n < left {
                        self.state = State::Skip { left: left - n };
                        return Ok(pos);
                    }
                    self.state = State::PacketHeader;
                }
                State::Table => return Ok(buf.len()),
                State::Magic | State::IoHeader | State::StreamIoHeader => return Ok(pos),
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
        match self.state {
            State::PacketHeader if rest.is_empty() => Ok(()),
            State::Table => Ok(()),
            State::PacketHeader if rest.len() < 8 => {
                Err(ctx.truncated(0, "packet header", (8 - rest.len()) as u64))
            }
            State::PacketHeader => {
                let size = i32::from_le_bytes(rest[4..8].try_into().unwrap()) as u64;
                Err(ctx.truncated(0, "packet", size + 8 - rest.len() as u64))
            }
            State::Skip { left } => Err(ctx.truncated(0, "packet", left)),
            State::Magic | State::IoHeader | State::StreamIoHeader => {
                Err(ctx.truncated_at_least(0, "header", 1))
            }
        }
    }

    fn sensor_size(&self) -> Option<SensorSize> {
        self.streams
            .iter()
            .find(|s| s.type_identifier == "EVTS")
            .and_then(|s| s.size)
    }
}
