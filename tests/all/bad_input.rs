//! Bad input: truncated files, wrong magic, corrupt packet headers, absurd sizes, timestamps
//! that go backwards, random mutations. Never a panic; every complete event before the
//! problem is yielded; every error names the format, the byte offset and the path.

use std::path::{Path, PathBuf};

use aedat::base::ioheader_generated::{Compression, Ioheader, IoheaderArgs};
use aedat::events_generated::{Event as FbEvent, EventPacket, EventPacketArgs};
use stdl::io::formats::{aedat2, aedat31};
use stdl::io::{Error, Event, EventReader, Format, ReadOptions};

use crate::common::{decode_chunked, drain};
use crate::data;

const XML: &str = r#"<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/"><node name="0" path="/mainloop/Recorder/outInfo/0/"><attr key="compression" type="string">NONE</attr><attr key="originalModuleName" type="string">cam</attr><attr key="originalOutputName" type="string">events</attr><attr key="typeDescription" type="string">Array of events.</attr><attr key="typeIdentifier" type="string">EVTS</attr><node name="info" path="/mainloop/Recorder/outInfo/0/info/"><attr key="sizeX" type="int">64</attr><attr key="sizeY" type="int">48</attr><attr key="source" type="string">synthetic</attr></node></node><node name="1" path="/mainloop/Recorder/outInfo/1/"><attr key="typeIdentifier" type="string">IMUS</attr></node></node></dv>"#;

/// A synthetic AEDAT 4 file: an IOHeader, one IMU packet, then event packets.
pub fn synthetic_aedat4(compression: Compression, packets: &[Vec<Event>]) -> Vec<u8> {
    let mut out = b"#!AER-DAT4.0\r\n".to_vec();
    let mut b = flatbuffers::FlatBufferBuilder::new();
    let desc = b.create_string(XML);
    let h = Ioheader::create(
        &mut b,
        &IoheaderArgs {
            compression,
            file_data_position: -1,
            description: Some(desc),
        },
    );
    b.finish_size_prefixed(h, Some("IOHE"));
    out.extend_from_slice(b.finished_data());
    let compress = |raw: &[u8]| -> Vec<u8> {
        match compression {
            Compression::Zstd => zstd::encode_all(raw, 3).unwrap(),
            Compression::Lz4 => {
                let mut enc = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
                std::io::Write::write_all(&mut enc, raw).unwrap();
                let (v, r) = enc.finish();
                r.unwrap();
                v
            }
            _ => raw.to_vec(),
        }
    };
    // An IMU packet of junk: must be skipped without being decompressed or decoded.
    out.extend_from_slice(&1i32.to_le_bytes());
    out.extend_from_slice(&5i32.to_le_bytes());
    out.extend_from_slice(b"junk!");
    for p in packets {
        let mut b = flatbuffers::FlatBufferBuilder::new();
        let ev: Vec<FbEvent> = p
            .iter()
            .map(|e| FbEvent::new(e.t_us as i64, e.x as i16, e.y as i16, e.on))
            .collect();
        let v = b.create_vector(&ev);
        let pk = EventPacket::create(&mut b, &EventPacketArgs { elements: Some(v) });
        b.finish_size_prefixed(pk, Some("EVTS"));
        let body = compress(b.finished_data());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&(body.len() as i32).to_le_bytes());
        out.extend_from_slice(&body);
    }
    out
}

fn sample_events(n: usize, t0: u64) -> Vec<Event> {
    (0..n)
        .map(|i| Event::new(t0 + i as u64 * 3, (i % 64) as u16, (i % 48) as u16, i % 3 == 0))
        .collect()
}

#[test]
fn aedat4_compression_variants() {
    let packets = vec![
        sample_events(100, 1_600_000_000_000_000),
        sample_events(57, 1_600_000_000_001_000),
    ];
    let want: Vec<Event> = packets.concat();
    for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let bytes = synthetic_aedat4(c, &packets);
        for chunk in [1, 13, 1 << 20] {
            let opts = ReadOptions {
                chunk_bytes: chunk,
                ..ReadOptions::default()
            };
            let mut r = EventReader::from_slice(&bytes, None, &opts).unwrap();
            assert_eq!(r.read_all().unwrap(), want, "{c:?} chunk {chunk}");
            assert_eq!(r.stats().skipped_packets, 1);
            assert_eq!(r.sensor_size().unwrap().width, 64);
        }
    }
}

/// The corrupt-input corpus: (file name, bytes, format to force or None, expected error text).
pub fn corpus() -> Vec<(&'static str, Vec<u8>, Option<Format>, &'static str)> {
    let good4 = synthetic_aedat4(Compression::None, &[sample_events(10, 100)]);
    let hdr_end = 14 + 4 + u32::from_le_bytes(good4[14..18].try_into().unwrap()) as usize;
    let mut v = Vec::new();
    // AEDAT 4: IOHeader claiming 4 GiB.
    let mut b = good4.clone();
    b[14..18].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    v.push(("aedat4_huge_ioheader.aedat4", b, None, "IOHeader claims"));
    // AEDAT 4: packet claiming 2 GiB.
    let mut b = good4.clone();
    let imu = hdr_end + 8 + 5;
    b[imu + 4..imu + 8].copy_from_slice(&0x7FFF_FFFFi32.to_le_bytes());
    v.push(("aedat4_huge_packet.aedat4", b, None, "packet header claims"));
    // AEDAT 4: negative packet size.
    let mut b = good4.clone();
    b[imu + 4..imu + 8].copy_from_slice(&(-8i32).to_le_bytes());
    v.push(("aedat4_negative_packet.aedat4", b, None, "packet header claims"));
    // AEDAT 4: unknown stream id.
    let mut b = good4.clone();
    b[imu..imu + 4].copy_from_slice(&7i32.to_le_bytes());
    v.push(("aedat4_unknown_stream.aedat4", b, None, "stream 7"));
    // AEDAT 4: garbage IOHeader flatbuffer.
    let mut b = good4.clone();
    for x in &mut b[18..60] {
        *x = 0xEE;
    }
    v.push(("aedat4_bad_ioheader.aedat4", b, None, "IOHeader"));
    // AEDAT 4: wrong magic.
    let mut b = good4.clone();
    b[10] = b'9';
    v.push(("aedat4_wrong_magic.aedat4", b, Some(Format::Aedat4), "magic"));
    // AEDAT 4: LZ4 header but garbage payload.
    let mut b = synthetic_aedat4(Compression::Lz4, &[sample_events(10, 100)]);
    let n = b.len();
    for x in &mut b[n - 20..] {
        *x ^= 0x5A;
    }
    v.push(("aedat4_bad_lz4.aedat4", b, None, "decompress"));
    // AEDAT 4: truncated mid-packet.
    let b = good4[..good4.len() - 7].to_vec();
    v.push(("aedat4_truncated.aedat4", b, None, "ends mid-packet"));
    // AEDAT 3.1: number > capacity; absurd event size; truncated.
    let mut w = aedat31::Writer::new(Vec::new(), "DVS128").unwrap();
    w.write(&sample_events(20, 5)).unwrap();
    let good3 = w.finish().unwrap();
    let p = good3.windows(14).position(|w| w == b"#!END-HEADER\r\n").unwrap() + 14;
    let mut b = good3.clone();
    b[p + 20..p + 24].copy_from_slice(&100i32.to_le_bytes());
    v.push((
        "aedat31_number_over_capacity.aedat",
        b,
        None,
        "inconsistent packet header",
    ));
    let mut b = good3.clone();
    b[p + 4..p + 8].copy_from_slice(&(1i32 << 30).to_le_bytes());
    v.push(("aedat31_huge_event_size.aedat", b, None, "event size"));
    v.push((
        "aedat31_truncated.aedat",
        good3[..good3.len() - 3].to_vec(),
        None,
        "ends mid-packet",
    ));
    v.push((
        "aedat31_no_end_header.aedat",
        b"#!AER-DAT3.1\r\n#Format: RAW\r\n".to_vec(),
        None,
        "ends mid-header",
    ));
    // AEDAT 2.0: truncated mid-record; wrong magic line.
    let mut w = aedat2::Writer::new(Vec::new()).unwrap();
    w.write(&sample_events(20, 5)).unwrap();
    let good2 = w.finish().unwrap();
    v.push((
        "aedat2_truncated.aedat",
        good2[..good2.len() - 5].to_vec(),
        None,
        "ends mid-record",
    ));
    let mut b = good2.clone();
    b[..12].copy_from_slice(b"#!AER-DAT3.1");
    v.push((
        "aedat2_forced_wrong_magic.aedat",
        b,
        Some(Format::Aedat2),
        "magic",
    ));
    // ATIS .bin: truncated record.
    v.push((
        "bin_truncated.bin",
        vec![1, 2, 0x80, 0, 16, 3, 4],
        Some(Format::AtisBin),
        "ends mid-record",
    ));
    // EVT 2.0 with an EVT 3.0 header forced; EVT 2 truncated.
    v.push((
        "evt2_says_evt3.raw",
        b"% evt 3.0\n\x00\x00\x00\x80".to_vec(),
        Some(Format::Evt2),
        "not 2.0",
    ));
    v.push((
        "evt2_truncated.raw",
        b"% evt 2.0\n\x02\x00\x00\x80\x01".to_vec(),
        None,
        "ends mid-word",
    ));
    v.push((
        "evt3_truncated.raw",
        b"% evt 3.0\n\x00\x80\x05".to_vec(),
        None,
        "ends mid-word",
    ));
    // DAT: event size 12.
    v.push((
        "dat_bad_event_size.dat",
        b"% Version 2\n\x0c\x0c".to_vec(),
        None,
        "event size 12",
    ));
    v.push((
        "dat_truncated.dat",
        b"% Version 2\n\x0c\x08\x01\x00\x00\x00\x05".to_vec(),
        None,
        "ends mid-record",
    ));
    // Unknown format.
    v.push((
        "unknown.xyz",
        b"hello world, not events".to_vec(),
        None,
        "unknown event format",
    ));
    v
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Regenerates `tests/corpus` (the seeds of the fuzz targets too): `cargo test -- --ignored write_corpus`.
#[test]
#[ignore]
fn write_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes, _, _) in corpus() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}

fn check_error(name: &str, err: &Error, path: Option<&Path>, expect: &str) {
    let msg = err.to_string();
    assert!(msg.contains(expect), "{name}: {msg:?} does not say {expect:?}");
    if let Some(p) = path {
        assert!(
            msg.contains(&p.display().to_string()),
            "{name}: {msg:?} does not name the path"
        );
    }
    if !matches!(err, Error::UnknownFormat { .. } | Error::Io { .. }) {
        assert!(msg.contains("at byte "), "{name}: {msg:?} has no byte offset");
    }
}

#[test]
fn corpus_files_fail_cleanly_with_format_offset_and_path() {
    let dir = corpus_dir();
    for (name, bytes, format, expect) in corpus() {
        let path = dir.join(name);
        let on_disk =
            std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing: run write_corpus", path.display()));
        assert_eq!(
            on_disk, bytes,
            "{name} differs from the generator: run write_corpus"
        );
        let res = EventReader::open_as(&path, format, &ReadOptions::default());
        let err = match res {
            Err(e) => e,
            Ok(r) => drain(r).1.unwrap_or_else(|| panic!("{name}: no error")),
        };
        check_error(name, &err, Some(&path), expect);
        // Same through every chunk size, without a path.
        for chunk in [1, 5, 1 << 16] {
            let (_, e) = decode_chunked(
                &bytes,
                format.or(if name.ends_with(".bin") {
                    Some(Format::AtisBin)
                } else {
                    None
                }),
                chunk,
            );
            let e = e.unwrap_or_else(|| panic!("{name} chunk {chunk}: no error"));
            check_error(name, &e, None, expect);
        }
    }
}

#[test]
fn truncated_real_files_keep_every_complete_event() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let files = [
        ("aedat2/dvs128_alex_walking_again.aedat", None, 8usize),
        ("aedat4/davis346_aestream_davis.aedat4", None, 0),
        ("evt2/gen3_faery_evt2.raw", None, 4),
        ("evt3/gen41_expelliarmus_evt3_sample.raw", None, 0),
        ("dat/ncars_tonic_sample_ncars.dat", None, 8),
        ("nmnist/tonic_sample_nmnist.bin", Some(Format::AtisBin), 5),
    ];
    for (f, fmt, _rec) in files {
        let bytes = std::fs::read(d.join(f)).unwrap();
        let (full, err) = decode_chunked(&bytes, fmt, 1 << 20);
        assert!(err.is_none());
        for frac in [0.0005, 0.3, 0.77, 0.999] {
            let cut = ((bytes.len() as f64 * frac) as usize).max(1);
            let path = tmp.path().join(format!(
                "cut_{cut}_{}",
                Path::new(f).file_name().unwrap().to_str().unwrap()
            ));
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let r = EventReader::open_as(&path, fmt, &ReadOptions::default()).unwrap();
            let (ev, err, _) = drain(r);
            assert!(
                ev.len() <= full.len() && ev[..] == full[..ev.len()],
                "{f} cut at {cut}: not a prefix"
            );
            if let Some(e) = err {
                check_error(f, &e, Some(&path), "ends mid-");
            }
        }
    }
    // The DAVIS240C copy really ends inside an IMU sample but on a record boundary: no error,
    // and a copy cut mid-record reports it after yielding the complete events.
    let bytes = std::fs::read(d.join("aedat2/davis240c_IMU_translBoxes_truncated.aedat")).unwrap();
    let (full, err) = decode_chunked(&bytes, None, 1 << 20);
    assert!(err.is_none());
    let (ev, err) = decode_chunked(&bytes[..bytes.len() - 3], None, 1 << 20);
    assert!(
        matches!(err, Some(Error::Truncated { missing: 3, .. })),
        "{err:?}"
    );
    assert_eq!(ev.len(), full.len());
}

#[test]
fn backwards_timestamps_are_counted_not_hidden() {
    let ev = vec![
        Event::new(100, 1, 1, true),
        Event::new(90, 2, 2, true),
        Event::new(95, 3, 3, false),
        Event::new(50, 4, 4, true),
    ];
    let mut w = aedat2::Writer::new(Vec::new()).unwrap();
    w.write(&ev).unwrap();
    let bytes = w.finish().unwrap();
    let mut r = EventReader::from_slice(&bytes, None, &ReadOptions::default()).unwrap();
    assert_eq!(r.read_all().unwrap(), ev);
    assert_eq!(r.stats().backwards_timestamps, 2);
    assert_eq!(r.stats().timestamp_overflows, 0);
    // A real 32-bit wrap is unwrapped instead.
    let ev = vec![
        Event::new(u32::MAX as u64 - 5, 1, 1, true),
        Event::new(3, 1, 1, true),
    ];
    let mut w = aedat2::Writer::new(Vec::new()).unwrap();
    w.write(&ev).unwrap();
    let bytes = w.finish().unwrap();
    let mut r = EventReader::from_slice(&bytes, None, &ReadOptions::default()).unwrap();
    let back = r.read_all().unwrap();
    assert_eq!(back[1].t_us, (1u64 << 32) + 3);
    assert_eq!(r.stats().timestamp_overflows, 1);
}

/// Seeded mutation fuzzing of every decoder (the cargo-fuzz targets do this open-ended).
#[test]
fn random_mutations_never_panic() {
    let mut seeds: Vec<(Vec<u8>, Option<Format>)> = corpus().into_iter().map(|(_, b, f, _)| (b, f)).collect();
    seeds.push((synthetic_aedat4(Compression::Zstd, &[sample_events(30, 7)]), None));
    if let Some(d) = crate::common::shared_data() {
        for f in [
            "aedat2/davis240c_IMU_translBoxes_truncated.aedat",
            "aedat4/dvxplorer_tonic_sample.aedat4",
            "evt2/gen3_faery_evt2.raw",
            "evt3/gen41_expelliarmus_evt3_sample.raw",
            "dat/ncars_tonic_sample_ncars.dat",
        ] {
            let b = std::fs::read(d.join(f)).unwrap();
            seeds.push((b[..b.len().min(1 << 16)].to_vec(), None));
        }
        let b = std::fs::read(d.join("nmnist/tonic_sample_nmnist.bin")).unwrap();
        seeds.push((b, Some(Format::AtisBin)));
    }
    let mut rng = stdl::io::datasets::SplitMix64(2024);
    for (seed, fmt) in &seeds {
        for _ in 0..60 {
            let mut b = seed.clone();
            let n = 1 + rng.below(8);
            for _ in 0..n {
                if b.is_empty() {
                    break;
                }
                let i = rng.below(b.len() as u64) as usize;
                match rng.below(4) {
                    0 => b[i] = rng.next_u64() as u8,
                    1 => b[i] ^= 1 << rng.below(8),
                    2 => b.truncate(i),
                    _ => b.insert(i, rng.next_u64() as u8),
                }
            }
            for chunk in [7usize, 1 << 16] {
                let _ = decode_chunked(&b, *fmt, chunk);
            }
            for f in Format::ALL {
                let _ = decode_chunked(&b[..b.len().min(4096)], Some(f), 64);
            }
        }
    }
}
