//! Event file formats: detection and one streaming reader interface for all of them.
//!
//! Every format is a push decoder (private trait `Decode`) driven by [`EventReader`], a pull
//! iterator over [`EventBatch`]es. The reader owns a bounded byte buffer: it reads at most
//! `chunk_bytes` at a time, hands the decoder every complete record, and keeps the partial
//! tail for the next read. Memory therefore depends on the chunk size and on the largest
//! record a format allows (capped per format before anything is allocated), never on the
//! file size. The same decoders serve paths, [`Read`] streams and byte slices, and give
//! identical events for every chunk size down to one byte.
//!
//! | format | module | detected by |
//! |---|---|---|
//! | AEDAT 2.0 (jAER) | [`aedat2`] | `#!AER-DAT2` |
//! | AEDAT 3.1 (DVS128-Gesture) | [`aedat31`] | `#!AER-DAT3` |
//! | AEDAT 4.0 (DV), file or network stream | [`aedat4`] | `#!AER-DAT4.0`, or a length + `IOHE` flatbuffer |
//! | ATIS 40-bit `.bin` (N-MNIST, N-Caltech101) | [`atis_bin`] | extension `.bin` / `.bs2` (no header) |
//! | Prophesee EVT 2.0 `.raw` | [`evt2`] | `%` header with `evt 2.0` |
//! | Prophesee EVT 3.0 `.raw` | [`evt3`] | `%` header with `evt 3.0` |
//! | Prophesee DAT | [`dat`] | `%` header without an EVT version |

pub mod aedat2;
pub mod aedat31;
pub mod aedat4;
pub mod atis_bin;
pub mod dat;
pub mod evt2;
pub mod evt3;
pub(crate) mod prophesee;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Location, Result};
use crate::event::{Event, EventBatch, SensorSize};

pub use crate::format::Format;

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "aedat2" | "aedat2.0" | "aedat" => Format::Aedat2,
            "aedat3" | "aedat31" | "aedat3.1" => Format::Aedat31,
            "aedat4" | "aedat4.0" => Format::Aedat4,
            "bin" | "atis" | "bs2" | "nmnist" => Format::AtisBin,
            "evt2" | "evt2.0" => Format::Evt2,
            "evt3" | "evt3.0" => Format::Evt3,
            "dat" => Format::Dat,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown format {other:?}; expected one of aedat2, aedat31, aedat4, bin, evt2, evt3, dat"
                )))
            }
        })
    }
}

/// How many bytes [`detect`] wants to look at.
pub const DETECT_BYTES: usize = 4096;

/// Detects the format from the first bytes of the input, with the file extension (without
/// the dot) as a hint for formats that have no header (ATIS `.bin`) or whose header may not
/// say which variant it is (a Prophesee `.raw` without an `evt` line).
pub fn detect(head: &[u8], extension: Option<&str>) -> std::result::Result<Format, String> {
    let ext = extension.map(|e| e.to_ascii_lowercase());
    if head.starts_with(b"#!AER-DAT2") {
        return Ok(Format::Aedat2);
    }
    if head.starts_with(b"#!AER-DAT3") {
        return Ok(Format::Aedat31);
    }
    if head.starts_with(b"#!AER-DAT4") || aedat4::looks_like_network_stream(head) {
        return Ok(Format::Aedat4);
    }
    if head.starts_with(b"#!AER-DAT1") {
        return Err("AEDAT 1.0 is not supported (only 2.0, 3.1 and 4.0)".into());
    }
    if head.first() == Some(&b'%') {
        return match prophesee::sniff(head) {
            prophesee::Sniff::Evt2 => Ok(Format::Evt2),
            prophesee::Sniff::Evt3 => Ok(Format::Evt3),
            prophesee::Sniff::Other(v) => Err(format!("Prophesee encoding {v:?} is not supported")),
            prophesee::Sniff::NoEvt => match ext.as_deref() {
                Some("raw") => Err("Prophesee .raw header names no EVT version".into()),
                _ => Ok(Format::Dat),
            },
        };
    }
    match ext.as_deref() {
        Some("bin") | Some("bs2") => Ok(Format::AtisBin),
        Some("dat") => Ok(Format::Dat),
        Some("aedat4") => Ok(Format::Aedat4),
        Some("raw") => Err("a .raw file must start with a % header naming its EVT version".into()),
        _ if head.is_empty() => Err("the input is empty".into()),
        _ => Err("no known magic bytes, and the extension is no hint".into()),
    }
}

/// Options shared by every reader. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Bytes read from the source per read call (default 1 MiB). Batches hold the events of
    /// about one chunk.
    pub chunk_bytes: usize,
    /// Sensor size to use when the file does not state one, or to override it.
    pub sensor_size: Option<SensorSize>,
    /// ATIS `.bin`: microseconds added to later timestamps at each overflow marker
    /// (`y == 240`). Default `1 << 23`, the wrap of the 23-bit field; Orchard's MATLAB
    /// reader and Tonic add `1 << 13`.
    pub atis_overflow_us: u64,
    /// AEDAT 2.0: force the address layout instead of reading the chip from the header.
    pub aedat2_layout: Option<aedat2::Layout>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            chunk_bytes: 1 << 20,
            sensor_size: None,
            atis_overflow_us: 1 << 23,
            aedat2_layout: None,
        }
    }
}

/// Counters a reader keeps while decoding: what it skipped, repaired or noticed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReadStats {
    /// Bytes consumed from the input.
    pub bytes: u64,
    /// Events yielded.
    pub events: u64,
    /// Records that are not polarity events and were skipped: special/external events,
    /// IMU and APS words, triggers, timer words.
    pub skipped_records: u64,
    /// Whole packets of other stream types skipped (AEDAT 3.1 / 4.0: frames, IMU, triggers).
    pub skipped_packets: u64,
    /// Events marked invalid by the format or with coordinates it cannot represent, dropped.
    pub invalid_events: u64,
    /// Events whose timestamp is smaller than the previous event's. They are yielded as
    /// they are; the binner assigns them to the open bin (see `frames`).
    pub backwards_timestamps: u64,
    /// Timestamp overflows applied (overflow markers, 32-bit wraps).
    pub timestamp_overflows: u64,
}

/// Where the decoder is, for error messages.
pub(crate) struct Ctx<'a> {
    pub format: Format,
    pub path: Option<&'a Path>,
    /// Stream offset of the first byte of the buffer handed to the decoder.
    pub offset: u64,
}

impl Ctx<'_> {
    pub fn loc(&self, rel: usize) -> Location {
        Location {
            path: self.path.map(Path::to_path_buf),
            offset: self.offset + rel as u64,
        }
    }
    pub fn corrupt(&self, format: Format, rel: usize, message: impl Into<String>) -> Error {
        Error::Corrupt {
            format,
            location: self.loc(rel),
            message: message.into(),
        }
    }
    pub fn truncated(&self, format: Format, rel: usize, what: &'static str, missing: u64) -> Error {
        Error::Truncated {
            format,
            location: self.loc(rel),
            what,
            missing,
            at_least: false,
        }
    }
    /// [`Ctx::truncated`] when only a lower bound of the missing bytes is known.
    pub fn truncated_at_least(&self, format: Format, rel: usize, what: &'static str, missing: u64) -> Error {
        Error::Truncated {
            format,
            location: self.loc(rel),
            what,
            missing,
            at_least: true,
        }
    }
}

/// Progress of header parsing.
pub(crate) enum Header {
    /// Consumed this many bytes; the header goes on.
    More(usize),
    /// Consumed this many bytes; the header is complete.
    Done(usize),
}

/// A push decoder for one format. Implementations see only complete input they asked for:
/// `body` returns how many bytes it consumed and is called again with the rest plus new
/// bytes.
pub(crate) trait Decode: Send {
    /// Parses header bytes. At `eof` the whole remaining input is in `buf`.
    fn header(&mut self, buf: &[u8], eof: bool, ctx: &Ctx) -> Result<Header>;
    /// Decodes as many complete records as `buf` holds, pushing events to `out`.
    /// On error, the events already pushed are still yielded.
    fn body(&mut self, buf: &[u8], ctx: &Ctx, out: &mut Vec<Event>, stats: &mut ReadStats) -> Result<usize>;
    /// End of input; `rest` is what `body` did not consume.
    fn finish(&mut self, rest: &[u8], ctx: &Ctx, out: &mut Vec<Event>, stats: &mut ReadStats) -> Result<()> {
        let _ = (out, stats);
        match self.record() {
            Some((format, len, what)) => finish_records(rest, ctx, format, len, what),
            None if rest.is_empty() => Ok(()),
            None => Err(ctx.truncated_at_least(ctx.format, 0, "record", 1)),
        }
    }
    /// For formats of fixed-size records: the format, the record length and its name, which
    /// the default `finish` uses to report a cut record. Others implement `finish`.
    fn record(&self) -> Option<(Format, usize, &'static str)> {
        None
    }
    /// Sensor size, once the header is parsed (if the format states one).
    fn sensor_size(&self) -> Option<SensorSize>;
}

fn make_decoder(format: Format, opts: &ReadOptions) -> Box<dyn Decode> {
    match format {
        Format::Aedat2 => Box::new(aedat2::Decoder::new(opts.aedat2_layout)),
        Format::Aedat31 => Box::new(aedat31::Decoder::new()),
        Format::Aedat4 => Box::new(aedat4::Decoder::new()),
        Format::AtisBin => Box::new(atis_bin::Decoder::new(opts.atis_overflow_us)),
        Format::Evt2 => Box::new(evt2::Decoder::new()),
        Format::Evt3 => Box::new(evt3::Decoder::new()),
        Format::Dat => Box::new(dat::Decoder::new()),
    }
}

/// The chunk size for an input of `len` bytes: `chunk`, or the input's size plus one byte
/// (so that the first read already sees the end), rounded up to 4 KiB, when that is smaller.
fn chunk_for_len(chunk: usize, len: u64) -> usize {
    let fit = usize::try_from(len.saturating_add(1))
        .unwrap_or(usize::MAX)
        .checked_next_multiple_of(4096)
        .unwrap_or(usize::MAX);
    chunk.min(fit)
}

/// Upper bound on bytes buffered while waiting for one header line or record. Every size a
/// file claims is checked against its format's own smaller cap first; this is the last line
/// of defence.
const MAX_BUFFER: usize = 512 << 20;

/// A streaming reader of any supported format: an iterator of `Result<EventBatch>`.
///
/// After the first error the iterator ends; every complete event before the error was
/// yielded first.
pub struct EventReader<'a> {
    src: Box<dyn Read + Send + 'a>,
    dec: Box<dyn Decode>,
    path: Option<PathBuf>,
    format: Format,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
    chunk: usize,
    header_done: bool,
    eof: bool,
    done: bool,
    pending: Option<Error>,
    stats: ReadStats,
    last_t: u64,
    size_override: Option<SensorSize>,
}

impl std::fmt::Debug for EventReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("format", &self.format)
            .field("path", &self.path)
            .field("offset", &self.offset)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl EventReader<'static> {
    /// Opens a file, detecting its format from its first bytes (the extension is a hint).
    pub fn open(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Self> {
        Self::open_as(path, None, opts)
    }

    /// Opens a file as `format`, or detects the format when `format` is `None`.
    pub fn open_as(path: impl AsRef<Path>, format: Option<Format>, opts: &ReadOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(Some(path.to_path_buf()), e))?;
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
        // A small regular file is read in one chunk of its own size (rounded up to 4 KiB),
        // not into a zeroed buffer of the default 1 MiB: N-MNIST's files are about 20 KB, and
        // a data set has tens of thousands of them. A file that grows while read still is
        // read whole, a chunk at a time.
        let mut opts = opts.clone();
        if let Ok(m) = file.metadata() {
            if m.is_file() && m.len() > 0 {
                opts.chunk_bytes = chunk_for_len(opts.chunk_bytes, m.len());
            }
        }
        EventReader::build(
            Box::new(file),
            Some(path.to_path_buf()),
            format,
            ext.as_deref(),
            &opts,
        )
    }
}

impl<'a> EventReader<'a> {
    /// Reads from any byte stream (a socket, stdin, a decompressor). Without `format`, the
    /// format is detected from the first bytes (ATIS `.bin` cannot be detected: name it).
    pub fn from_reader(
        reader: impl Read + Send + 'a,
        format: Option<Format>,
        opts: &ReadOptions,
    ) -> Result<Self> {
        Self::build(Box::new(reader), None, format, None, opts)
    }

    /// Reads from bytes already in memory (in chunks no larger than the bytes: a small
    /// slice does not cost a zeroed buffer of the default chunk size).
    pub fn from_slice(bytes: &'a [u8], format: Option<Format>, opts: &ReadOptions) -> Result<Self> {
        let mut opts = opts.clone();
        opts.chunk_bytes = chunk_for_len(opts.chunk_bytes, bytes.len() as u64);
        Self::build(Box::new(bytes), None, format, None, &opts)
    }

    fn build(
        src: Box<dyn Read + Send + 'a>,
        path: Option<PathBuf>,
        format: Option<Format>,
        ext: Option<&str>,
        opts: &ReadOptions,
    ) -> Result<Self> {
        let chunk = opts.chunk_bytes.max(1);
        let mut r = EventReader {
            src,
            dec: make_decoder(Format::Dat, opts), // replaced below
            path,
            format: Format::Dat,
            buf: Vec::new(),
            start: 0,
            end: 0,
            offset: 0,
            chunk,
            header_done: false,
            eof: false,
            done: false,
            pending: None,
            stats: ReadStats::default(),
            last_t: 0,
            size_override: opts.sensor_size,
        };
        let format = match format {
            Some(f) => f,
            None => {
                // Read until DETECT_BYTES are buffered or the input ends.
                while r.end < DETECT_BYTES && !r.eof {
                    r.fill()?;
                }
                detect(&r.buf[..r.end], ext).map_err(|reason| Error::UnknownFormat {
                    path: r.path.clone(),
                    reason,
                })?
            }
        };
        r.format = format;
        r.dec = make_decoder(format, opts);
        Ok(r)
    }

    /// The format being decoded.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The file path, when reading a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Sensor size: the override from [`ReadOptions`], else the file's own once its header
    /// has been read (call after the first batch, or after [`EventReader::read_header`]).
    pub fn sensor_size(&self) -> Option<SensorSize> {
        self.size_override.or_else(|| self.dec.sensor_size())
    }

    /// Counters so far.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// Parses the header now (it is otherwise parsed by the first `next()`), so that
    /// [`EventReader::sensor_size`] is known before any event is read.
    pub fn read_header(&mut self) -> Result<()> {
        while !self.header_done {
            self.step_header()?;
        }
        Ok(())
    }

    /// Reads the whole remaining input into one vector (convenience for small files: a
    /// sample, a recording to cut into equal bins). More than [`MAX_READ_ALL_EVENTS`] events
    /// (512 MiB) is an error rather than an allocation that follows the input (an endless
    /// stream, a corrupt file): read such input batch by batch.
    pub fn read_all(&mut self) -> Result<Vec<Event>> {
        let mut all = Vec::new();
        while let Some(r) = self.read_into(&mut all) {
            r?;
            if all.len() > MAX_READ_ALL_EVENTS {
                return Err(Error::InvalidArgument(format!(
                    "{}: more than {MAX_READ_ALL_EVENTS} events to hold at once; read it as a \
                     stream (`--bin-us`), or give --sensor-size so that it need not be read whole",
                    self.path
                        .as_ref()
                        .map_or_else(|| "<stream>".into(), |p| p.display().to_string())
                )));
            }
        }
        Ok(all)
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            format: self.format,
            path: self.path.as_deref(),
            offset: self.offset,
        }
    }

    /// Reads up to `chunk` more bytes into the buffer.
    fn fill(&mut self) -> Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end + self.chunk > self.buf.len() {
            if self.end + self.chunk > MAX_BUFFER {
                return Err(self.ctx().corrupt(
                    self.format,
                    self.end,
                    format!("a single header or record exceeds the {MAX_BUFFER}-byte buffer limit"),
                ));
            }
            self.buf.resize(self.end + self.chunk, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..self.end + self.chunk]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(self.path.clone(), e)),
            }
        }
    }

    fn advance(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
        self.stats.bytes += n as u64;
    }

    fn step_header(&mut self) -> Result<()> {
        let ctx = Ctx {
            format: self.format,
            path: self.path.as_deref(),
            offset: self.offset,
        };
        let progress = self.dec.header(&self.buf[self.start..self.end], self.eof, &ctx)?;
        match progress {
            Header::Done(n) => {
                self.advance(n);
                self.header_done = true;
            }
            Header::More(n) => {
                self.advance(n);
                if n == 0 {
                    if self.eof {
                        let avail = self.end - self.start;
                        return Err(self.ctx().truncated_at_least(self.format, avail, "header", 1));
                    }
                    self.fill()?;
                }
            }
        }
        Ok(())
    }

    fn account(&mut self, events: &[Event]) {
        self.stats.events += events.len() as u64;
        let Some(first) = events.first() else { return };
        // Pairs of neighbours, no value carried from one iteration to the next.
        let back = (first.t_us < self.last_t) as u64
            + events
                .iter()
                .zip(&events[1..])
                .map(|(a, b)| (b.t_us < a.t_us) as u64)
                .sum::<u64>();
        self.last_t = events[events.len() - 1].t_us;
        self.stats.backwards_timestamps += back;
    }

    /// Decodes the next batch, appending its events to `out` (whose allocation is reused:
    /// the fast path for callers that keep one buffer). Returns the number of events
    /// appended (at least one), an error (after which the reader is done), or `None` at the
    /// end of the input.
    pub fn read_into(&mut self, out: &mut Vec<Event>) -> Option<Result<usize>> {
        let before = out.len();
        loop {
            if let Some(e) = self.pending.take() {
                self.done = true;
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            if !self.header_done {
                if let Err(e) = self.step_header() {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            }
            let avail = self.end - self.start;
            if avail > 0 {
                let ctx = Ctx {
                    format: self.format,
                    path: self.path.as_deref(),
                    offset: self.offset,
                };
                let res = self
                    .dec
                    .body(&self.buf[self.start..self.end], &ctx, out, &mut self.stats);
                match res {
                    Ok(n) => self.advance(n),
                    Err(e) => self.pending = Some(e),
                }
            }
            if self.pending.is_none() && self.eof {
                let ctx = Ctx {
                    format: self.format,
                    path: self.path.as_deref(),
                    offset: self.offset,
                };
                let rest_len = self.end - self.start;
                let res = self
                    .dec
                    .finish(&self.buf[self.start..self.end], &ctx, out, &mut self.stats);
                self.advance(rest_len);
                self.done = true;
                if let Err(e) = res {
                    self.pending = Some(e);
                }
            }
            if out.len() > before {
                self.account(&out[before..]);
                return Some(Ok(out.len() - before));
            }
            if self.pending.is_some() || self.done {
                continue;
            }
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

impl Iterator for EventReader<'_> {
    type Item = Result<EventBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut events = Vec::new();
        self.read_into(&mut events)
            .map(|r| r.map(|_| EventBatch::new(events)))
    }
}

impl std::iter::FusedIterator for EventReader<'_> {}

/// The most events [`EventReader::read_all`] holds: 2^25 (512 MiB of events; a DVS128-Gesture
/// recording has a few million).
pub const MAX_READ_ALL_EVENTS: usize = 1 << 25;

/// Reads a whole file into memory as events (convenience for tests and small samples).
pub fn read_file(path: impl AsRef<Path>) -> Result<(Vec<Event>, Option<SensorSize>, Format)> {
    let mut r = EventReader::open(path, &ReadOptions::default())?;
    let events = r.read_all()?;
    Ok((events, r.sensor_size(), r.format()))
}

/// Scans header lines that start with `marker` (`#` or `%`), one complete line at a time.
/// Calls `on_line` with each line (without the line ending). Returns the progress: `Done`
/// once the next byte is not `marker` (the line is not consumed).
pub(crate) fn scan_marked_lines(
    buf: &[u8],
    eof: bool,
    marker: u8,
    mut on_line: impl FnMut(&[u8]) -> Result<bool>,
) -> Result<Header> {
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        match rest.first() {
            None if eof => return Ok(Header::Done(pos)),
            None => return Ok(Header::More(pos)),
            Some(&b) if b != marker => return Ok(Header::Done(pos)),
            Some(_) => {}
        }
        let line_end = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if eof => rest.len(),
            None => return Ok(Header::More(pos)),
        };
        let mut line = &rest[..line_end];
        while let Some((&last, init)) = line.split_last() {
            if last == b'\n' || last == b'\r' {
                line = init;
            } else {
                break;
            }
        }
        pos += line_end;
        if on_line(line)? {
            return Ok(Header::Done(pos));
        }
    }
}

/// Sensor size from an iniVation camera or chip name (`DVS128`, `DAVIS346`, jAER's
/// `eu.seebetter.ini.chips.davis.DAVIS240C`, `DVXplorer`, ...), if known.
pub(crate) fn inivation_sensor_size(name: &str) -> Option<SensorSize> {
    let n = name.to_ascii_lowercase();
    let (w, h) = if n.contains("dvs128") || n.contains("tmpdiff128") || n.contains("davis128") {
        (128, 128)
    } else if n.contains("davis240") || n.contains("sbret10") {
        (240, 180)
    } else if n.contains("davis346") {
        (346, 260)
    } else if n.contains("davis640") {
        (640, 480)
    } else if n.contains("davis208") {
        (208, 192)
    } else if n.contains("dvxplorer") && n.contains("lite") {
        (320, 240)
    } else if n.contains("dvxplorer") {
        (640, 480)
    } else {
        return None;
    };
    Some(SensorSize::new(w, h))
}

/// `Decode::finish` of a format of fixed-size records: leftover bytes are a cut record.
pub(crate) fn finish_records(
    rest: &[u8],
    ctx: &Ctx,
    format: Format,
    record: usize,
    what: &'static str,
) -> Result<()> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(ctx.truncated(format, 0, what, (record - rest.len() % record) as u64))
    }
}

/// Unwraps a 32-bit microsecond counter into 64 bits: a decrease of more than half the
/// range is taken as a wrap.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Unwrap32 {
    last: u32,
    high: u64,
}

impl Unwrap32 {
    #[inline(always)]
    pub fn unwrap(&mut self, t: u32, stats_overflows: &mut u64) -> u64 {
        if t < self.last && self.last - t > (1 << 31) {
            self.high += 1 << 32;
            *stats_overflows += 1;
        }
        self.last = t;
        self.high | t as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwrap32_wraps_only_on_large_decreases() {
        let mut u = Unwrap32::default();
        let mut n = 0;
        assert_eq!(u.unwrap(10, &mut n), 10);
        assert_eq!(u.unwrap(5, &mut n), 5, "a small step back is not a wrap");
        assert_eq!(u.unwrap(u32::MAX - 1, &mut n), (u32::MAX - 1) as u64);
        assert_eq!(u.unwrap(3, &mut n), (1 << 32) + 3);
        assert_eq!(n, 1);
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
        }
        assert!("evt4".parse::<Format>().is_err());
    }

    #[test]
    fn scan_lines_handles_crlf_and_partial_lines() {
        let mut seen = Vec::new();
        let p = scan_marked_lines(b"#a\r\n#bb\n#c", false, b'#', |l| {
            seen.push(l.to_vec());
            Ok(false)
        })
        .unwrap();
        assert!(matches!(p, Header::More(8)));
        assert_eq!(seen, vec![b"#a".to_vec(), b"#bb".to_vec()]);
    }
}
