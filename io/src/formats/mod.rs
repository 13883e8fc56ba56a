//! Event file formats: detection and one streaming reader interface for all of them.
//!
//! Every format is a push decoder (the private trait `Decode`) driven by one reader,
//! [`EventReader`] (`reader.rs`), a pull iterator over [`EventBatch`](crate::EventBatch)es.
//! The reader owns a bounded byte buffer: it reads at most `chunk_bytes` at a time, hands the
//! decoder every complete record, and keeps the partial tail for the next read. Memory
//! therefore depends on the chunk size and on the largest record a format allows (capped per
//! format before anything is allocated), never on the file size. The same decoders serve
//! paths, [`Read`](std::io::Read) streams and byte slices, and give identical events for
//! every chunk size down to one byte. This module keeps detection, the options and
//! statistics, and the helpers several decoders share.
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
mod reader;

use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::event::SensorSize;

pub use crate::format::Format;
pub use reader::{read_file, EventReader, MAX_READ_ALL_EVENTS};
pub(crate) use reader::{Ctx, Decode, Header};

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
///
/// # Errors
/// The bytes match no format (the reason says what was seen).
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
pub(crate) fn finish_records(rest: &[u8], ctx: &Ctx, record: usize, what: &'static str) -> Result<()> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(ctx.truncated(0, what, (record - rest.len() % record) as u64))
    }
}

/// Widens a wrapping 32-bit microsecond counter to 64 bits: a decrease of more than half the
/// range is taken as a wrap.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Widen32 {
    last: u32,
    high: u64,
}

impl Widen32 {
    /// The 64-bit time of the next 32-bit reading `t`, counting a wrap in `stats_overflows`.
    #[inline(always)]
    pub fn widen(&mut self, t: u32, stats_overflows: &mut u64) -> u64 {
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
    fn widen32_wraps_only_on_large_decreases() {
        let mut u = Widen32::default();
        let mut n = 0;
        assert_eq!(u.widen(10, &mut n), 10);
        assert_eq!(u.widen(5, &mut n), 5, "a small step back is not a wrap");
        assert_eq!(u.widen(u32::MAX - 1, &mut n), (u32::MAX - 1) as u64);
        assert_eq!(u.widen(3, &mut n), (1 << 32) + 3);
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
