//! The one reader every format goes through ([`EventReader`]): a bounded byte buffer that
//! reads at most `chunk_bytes` at a time, hands the format's push decoder ([`Decode`]) every
//! complete record, and keeps the partial tail for the next read; and the decoder's context
//! for error messages ([`Ctx`]: format, path and byte offset).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{
    aedat2, aedat31, aedat4, atis_bin, dat, detect, evt2, evt3, finish_records, ReadOptions, ReadStats,
    DETECT_BYTES,
};
use crate::error::{Error, Location, Result};
use crate::event::{Event, EventBatch, SensorSize};
use crate::format::Format;

/// Where the decoder is, for error messages.
pub(crate) struct Ctx<'a> {
    pub format: Format,
    pub path: Option<&'a Path>,
    /// Stream offset of the first byte of the buffer handed to the decoder.
    pub offset: u64,
}

impl<'a> Ctx<'a> {
    /// The context of `format` read from `path` (if a file), at stream offset `offset`.
    pub fn at(format: Format, path: Option<&'a Path>, offset: u64) -> Self {
        Self { format, path, offset }
    }

    /// Where `rel` bytes into the buffer is.
    pub fn loc(&self, rel: usize) -> Location {
        Location {
            path: self.path.map(Path::to_path_buf),
            offset: self.offset + rel as u64,
        }
    }
    /// The input is not valid `format` at `rel`.
    pub fn corrupt(&self, rel: usize, message: impl Into<String>) -> Error {
        Error::Corrupt {
            format: self.format,
            location: self.loc(rel),
            message: message.into(),
        }
    }
    /// The input ends `missing` bytes short of a complete `what` at `rel`.
    pub fn truncated(&self, rel: usize, what: &'static str, missing: u64) -> Error {
        Error::Truncated {
            format: self.format,
            location: self.loc(rel),
            what,
            missing,
            at_least: false,
        }
    }
    /// [`Ctx::truncated`] when only a lower bound of the missing bytes is known.
    pub fn truncated_at_least(&self, rel: usize, what: &'static str, missing: u64) -> Error {
        Error::Truncated {
            format: self.format,
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
            Some((len, what)) => finish_records(rest, ctx, len, what),
            None if rest.is_empty() => Ok(()),
            None => Err(ctx.truncated_at_least(0, "record", 1)),
        }
    }
    /// For formats of fixed-size records: the format, the record length and its name, which
    /// the default `finish` uses to report a cut record. Others implement `finish`.
    fn record(&self) -> Option<(usize, &'static str)> {
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
    ///
    /// # Errors
    /// The file cannot be opened, or its format cannot be detected.
    pub fn open(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Self> {
        Self::open_as(path, None, opts)
    }

    /// Opens a file as `format`, or detects the format when `format` is `None`.
    ///
    /// # Errors
    /// The file cannot be opened, or (without `format`) its format cannot be detected.
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
    ///
    /// # Errors
    /// Without `format`: the first bytes cannot be read or match no format.
    pub fn from_reader(
        reader: impl Read + Send + 'a,
        format: Option<Format>,
        opts: &ReadOptions,
    ) -> Result<Self> {
        Self::build(Box::new(reader), None, format, None, opts)
    }

    /// Reads from bytes already in memory (in chunks no larger than the bytes: a small
    /// slice does not cost a zeroed buffer of the default chunk size).
    ///
    /// # Errors
    /// Without `format`: the bytes match no format.
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
    ///
    /// # Errors
    /// The header is malformed, cut short or unsupported, or reading fails.
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
    ///
    /// # Errors
    /// The first decoding error (after which no events are returned), or more than
    /// [`MAX_READ_ALL_EVENTS`] events.
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
        Ctx::at(self.format, self.path.as_deref(), self.offset)
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
        let ctx = Ctx::at(self.format, self.path.as_deref(), self.offset);
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
                        return Err(self.ctx().truncated_at_least(avail, "header", 1));
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
                // Not `self.ctx()`: the decoder and the statistics are borrowed mutably beside it.
                let ctx = Ctx::at(self.format, self.path.as_deref(), self.offset);
                let res = self
                    .dec
                    .body(&self.buf[self.start..self.end], &ctx, out, &mut self.stats);
                match res {
                    Ok(n) => self.advance(n),
                    Err(e) => self.pending = Some(e),
                }
            }
            if self.pending.is_none() && self.eof {
                // Not `self.ctx()`: the decoder and the statistics are borrowed mutably beside it.
                let ctx = Ctx::at(self.format, self.path.as_deref(), self.offset);
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
///
/// # Errors
/// As [`EventReader::open`] and [`EventReader::read_all`].
pub fn read_file(path: impl AsRef<Path>) -> Result<(Vec<Event>, Option<SensorSize>, Format)> {
    let mut r = EventReader::open(path, &ReadOptions::default())?;
    let events = r.read_all()?;
    Ok((events, r.sensor_size(), r.format()))
}
