//! Every reader on the real recordings: counts, first and last events, every chunk size.

use std::path::Path;

use stdl::io::formats::{aedat2, aedat31, atis_bin};
use stdl::io::{Event, EventReader, Format, ReadOptions};

use crate::common::{decode_chunked, drain, Dribble};
use crate::data;

struct Expect {
    path: &'static str,
    format: Format,
    events: u64,
    on: Option<u64>,
    size: Option<(u16, u16)>,
    t_first: Option<u64>,
    t_last: Option<u64>,
}

const fn ex(path: &'static str, format: Format, events: u64) -> Expect {
    Expect {
        path,
        format,
        events,
        on: None,
        size: None,
        t_first: None,
        t_last: None,
    }
}

/// Figures from `shared/data/PROVENANCE.md` (independent decoders).
fn expectations() -> Vec<Expect> {
    vec![
        Expect {
            on: Some(55_023),
            size: Some((320, 240)),
            t_first: Some(1_605_537_493_718_345),
            t_last: Some(1_605_537_494_308_262),
            ..ex("aedat4/dvxplorer_tonic_sample.aedat4", Format::Aedat4, 111_954)
        },
        Expect {
            on: Some(72_363),
            size: Some((346, 260)),
            ..ex("aedat4/davis346_aestream_davis.aedat4", Format::Aedat4, 117_667)
        },
        Expect {
            on: Some(41_257),
            size: Some((346, 260)),
            t_first: Some(1_589_163_147_368_868),
            t_last: Some(1_589_163_149_728_813),
            ..ex(
                "aedat4/davis346_aedat_crate_test_data.aedat4",
                Format::Aedat4,
                78_830,
            )
        },
        Expect {
            size: Some((128, 128)),
            ..ex("aedat2/dvs128_alex_walking_again.aedat", Format::Aedat2, 19_182)
        },
        Expect {
            size: Some((128, 128)),
            ..ex(
                "aedat2/dvs128_alex_walking_for_10secs.aedat",
                Format::Aedat2,
                125_028,
            )
        },
        Expect {
            size: Some((240, 180)),
            ..ex(
                "aedat2/davis240c_IMU_translBoxes_truncated.aedat",
                Format::Aedat2,
                162_771,
            )
        },
        Expect {
            size: Some((346, 260)),
            ..ex("aedat2/davis346red_header_only_tonic.aedat", Format::Aedat2, 0)
        },
        Expect {
            size: Some((640, 480)),
            t_first: Some(1_317_888),
            t_last: Some(1_367_888),
            ..ex("evt2/gen3_expelliarmus_evt2_sample.raw", Format::Evt2, 539_481)
        },
        Expect {
            size: Some((640, 480)),
            t_first: Some(913_716_224),
            t_last: Some(913_812_095),
            ..ex("evt2/gen3_faery_evt2.raw", Format::Evt2, 521_252)
        },
        Expect {
            size: Some((1280, 720)),
            t_first: Some(11_718_656),
            t_last: Some(11_727_457),
            ..ex("evt3/gen41_expelliarmus_evt3_sample.raw", Format::Evt3, 219_596)
        },
        ex("dat/ncars_tonic_sample_ncars.dat", Format::Dat, 2_009),
        ex("dat/ncars_loris_NCARS_obj_004397_td.dat", Format::Dat, 4_407),
        Expect {
            t_first: Some(654),
            t_last: Some(311_175),
            ..ex("nmnist/tonic_sample_nmnist.bin", Format::AtisBin, 4_325)
        },
    ]
}

fn read_path(path: &Path) -> (Vec<Event>, EventReader<'static>) {
    let mut r = EventReader::open(path, &ReadOptions::default()).unwrap();
    let ev = r.read_all().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (ev, r)
}

#[test]
fn counts_and_ranges_match_provenance() {
    let Some(d) = data!() else { return };
    for x in expectations() {
        let p = d.join(x.path);
        let (ev, r) = read_path(&p);
        assert_eq!(r.format(), x.format, "{}", x.path);
        assert_eq!(ev.len() as u64, x.events, "{}", x.path);
        assert_eq!(r.stats().events, x.events, "{}", x.path);
        if let Some(on) = x.on {
            assert_eq!(ev.iter().filter(|e| e.on).count() as u64, on, "{}", x.path);
        }
        if let Some((w, h)) = x.size {
            let s = r.sensor_size().unwrap();
            assert_eq!((s.width, s.height), (w, h), "{}", x.path);
            assert!(
                ev.iter().all(|e| e.x < w && e.y < h),
                "{}: event off the sensor",
                x.path
            );
        }
        if let Some(t) = x.t_first {
            assert_eq!(ev.first().unwrap().t_us, t, "{}", x.path);
        }
        if let Some(t) = x.t_last {
            assert_eq!(ev.last().unwrap().t_us, t, "{}", x.path);
        }
    }
}

#[test]
fn pinned_events() {
    let Some(d) = data!() else { return };
    // N-MNIST sample: FORMATS.md gives the first events.
    let (ev, _) = read_path(&d.join("nmnist/tonic_sample_nmnist.bin"));
    assert_eq!(ev[0], Event::new(654, 7, 15, true));
    assert_eq!(ev[1], Event::new(2999, 19, 18, false));
    assert_eq!(ev[2], Event::new(3017, 21, 17, false));
    // DAT extents from PROVENANCE.md.
    let (ev, _) = read_path(&d.join("dat/ncars_loris_NCARS_obj_004397_td.dat"));
    assert_eq!(ev.iter().map(|e| e.x).max(), Some(53));
    assert_eq!(
        (ev.iter().map(|e| e.y).min(), ev.iter().map(|e| e.y).max()),
        (Some(1), Some(60))
    );
    // EVT 2.0 extents.
    let (ev, _) = read_path(&d.join("evt2/gen3_expelliarmus_evt2_sample.raw"));
    let xs = (
        ev.iter().map(|e| e.x).min().unwrap(),
        ev.iter().map(|e| e.x).max().unwrap(),
    );
    let ys = (
        ev.iter().map(|e| e.y).min().unwrap(),
        ev.iter().map(|e| e.y).max().unwrap(),
    );
    assert_eq!((xs, ys), ((60, 599), (18, 475)));
    // EVT 3.0: monotonic timestamps with the reference time-base handling.
    let (ev, r) = read_path(&d.join("evt3/gen41_expelliarmus_evt3_sample.raw"));
    assert!(ev.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    assert_eq!(r.stats().backwards_timestamps, 0);
    // DAVIS240C: 33,837 IMU words skipped, file truncated mid-IMU-sample but record-aligned.
    let (_, r) = read_path(&d.join("aedat2/davis240c_IMU_translBoxes_truncated.aedat"));
    assert_eq!(r.stats().skipped_records, 33_837);
    // AEDAT 4: frame, IMU and trigger packets are skipped, not decoded as events.
    let (_, r) = read_path(&d.join("aedat4/davis346_aedat_crate_test_data.aedat4"));
    assert_eq!(r.stats().skipped_packets, 59 + 236 + 177);
}

#[test]
fn slayer_nmnist_counts_match_event_counts_csv() {
    let Some(d) = data!() else { return };
    let dir = d.join("nmnist/slayer_NMNISTsmall");
    let csv = std::fs::read_to_string(dir.join("event_counts.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.contains(name))
            .unwrap_or_else(|| panic!("no {name} column"))
    };
    let (c_sample, c_count, c_last) = (col("sample"), col("events"), col("t_last_us"));
    let mut checked = 0;
    let mut total = 0u64;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let path = dir.join(f[c_sample]);
        let (ev, _) = read_path(&path);
        assert_eq!(ev.len().to_string(), f[c_count], "{}", path.display());
        assert_eq!(
            ev.last().unwrap().t_us.to_string(),
            f[c_last],
            "{}",
            path.display()
        );
        total += ev.len() as u64;
        checked += 1;
    }
    assert_eq!(checked, 1100);
    assert_eq!(total, 4_518_827);
}

/// Every file, through every reading path and chunk size down to one byte: identical events.
#[test]
fn every_chunk_size_gives_identical_events() {
    let Some(d) = data!() else { return };
    for x in expectations() {
        let p = d.join(x.path);
        let bytes = std::fs::read(&p).unwrap();
        let (reference, _) = read_path(&p);
        let fmt = if x.format == Format::AtisBin {
            Some(Format::AtisBin)
        } else {
            None
        };
        for chunk in [1usize, 2, 3, 7, 64, 4093, 1 << 16] {
            let (ev, err) = decode_chunked(&bytes, fmt, chunk);
            assert!(err.is_none(), "{} chunk {chunk}: {err:?}", x.path);
            assert!(ev == reference, "{} chunk {chunk}: events differ", x.path);
        }
        // A stream that dribbles out odd-sized pieces, like a socket.
        let r = EventReader::from_reader(
            Dribble {
                inner: &bytes[..],
                n: 5,
            },
            fmt,
            &ReadOptions::default(),
        )
        .unwrap();
        let (ev, err, _) = drain(r);
        assert!(err.is_none() && ev == reference, "{} dribbled", x.path);
    }
}

#[test]
fn aedat4_network_stream_without_magic() {
    let Some(d) = data!() else { return };
    let bytes = std::fs::read(d.join("aedat4/dvxplorer_tonic_sample.aedat4")).unwrap();
    let (reference, _) = decode_chunked(&bytes, None, 1 << 20);
    // The DV network stream is the file without its magic line and without the trailing
    // FileDataTable (a stream has none: its IOHeader says -1).
    let h = aedat::base::ioheader_generated::size_prefixed_root_as_ioheader(&bytes[14..]).unwrap();
    let table = h.file_data_position() as usize;
    assert!(table > 14 && table < bytes.len());
    let stream = &bytes[14..table];
    for chunk in [1usize, 1000, 1 << 20] {
        let (ev, err) = decode_chunked(stream, None, chunk);
        assert!(err.is_none(), "{err:?}");
        assert!(ev == reference);
    }
}

#[test]
fn writers_round_trip() {
    let Some(d) = data!() else { return };
    // AEDAT 3.1 from a DVS128 recording.
    let (ev, _) = read_path(&d.join("aedat2/dvs128_alex_walking_again.aedat"));
    let mut w = aedat31::Writer::new(Vec::new(), "DVS128").unwrap();
    w.write(&ev).unwrap();
    let bytes = w.finish().unwrap();
    for chunk in [1, 29, 1 << 20] {
        let (back, err) = decode_chunked(&bytes, None, chunk);
        assert!(err.is_none(), "{err:?}");
        assert!(back == ev);
    }
    let r = EventReader::from_slice(&bytes, None, &ReadOptions::default()).unwrap();
    assert_eq!(r.format(), Format::Aedat31);
    // AEDAT 2.0 (DVS128 addresses).
    let mut w = aedat2::Writer::new(Vec::new()).unwrap();
    w.write(&ev).unwrap();
    let bytes = w.finish().unwrap();
    let (back, err) = decode_chunked(&bytes, None, 1 << 20);
    assert!(err.is_none() && back == ev);
    // ATIS .bin from N-MNIST.
    let (ev, _) = read_path(&d.join("nmnist/tonic_sample_nmnist.bin"));
    let mut w = atis_bin::Writer::new(Vec::new());
    w.write(&ev).unwrap();
    let bytes = w.finish().unwrap();
    assert_eq!(
        bytes,
        std::fs::read(d.join("nmnist/tonic_sample_nmnist.bin")).unwrap()
    );
}

#[test]
fn aedat31_timestamp_overflow_and_packet_types() {
    // Events past 2^31 us go into packets with eventTSOverflow set; a frame packet in between
    // is skipped.
    let ev = vec![
        Event::new(5, 1, 2, true),
        Event::new((1 << 31) - 1, 3, 4, false),
        Event::new(1 << 31, 5, 6, true),
        Event::new((3 << 31) + 17, 127, 127, false),
    ];
    let mut w = aedat31::Writer::new(Vec::new(), "DVS128").unwrap();
    w.write(&ev[..2]).unwrap();
    let mut bytes = w.finish().unwrap();
    // A frame packet (type 2) of 2 events of 40 bytes, then the rest.
    for v in [2i16, 1] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    for v in [40i32, 36, 0, 2, 2, 2] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&[0xAB; 80]);
    let mut w2 = aedat31::Writer::new(Vec::new(), "DVS128").unwrap();
    w2.write(&ev[2..]).unwrap();
    let tail = w2.finish().unwrap();
    let header_len = tail.windows(14).position(|w| w == b"#!END-HEADER\r\n").unwrap() + 14;
    bytes.extend_from_slice(&tail[header_len..]);
    for chunk in [1, 3, 1 << 20] {
        let opts = ReadOptions {
            chunk_bytes: chunk,
            ..ReadOptions::default()
        };
        let mut r = EventReader::from_slice(&bytes, None, &opts).unwrap();
        let back = r.read_all().unwrap();
        assert_eq!(back, ev);
        assert_eq!(r.stats().skipped_packets, 1);
        assert_eq!(r.sensor_size().unwrap().width, 128);
    }
}

#[test]
fn atis_overflow_marker() {
    // Two events, a marker, one event: the marker shifts later times by the configured step.
    let raw: Vec<u8> = vec![
        1, 2, 0x80, 0x00, 0x10, // t=16 ON
        3, 4, 0x7F, 0xFF, 0xFF, // t=2^23-1 OFF
        0, 240, 0, 0, 0, // overflow marker
        5, 6, 0x80, 0x00, 0x05, // t=5 ON (+ overflow)
    ];
    for (step, t3) in [(1u64 << 23, (1u64 << 23) + 5), (1 << 13, (1 << 13) + 5)] {
        let opts = ReadOptions {
            atis_overflow_us: step,
            ..ReadOptions::default()
        };
        let mut r = EventReader::from_slice(&raw, Some(Format::AtisBin), &opts).unwrap();
        let ev = r.read_all().unwrap();
        assert_eq!(
            ev,
            vec![
                Event::new(16, 1, 2, true),
                Event::new((1 << 23) - 1, 3, 4, false),
                Event::new(t3, 5, 6, true)
            ]
        );
        assert_eq!(r.stats().timestamp_overflows, 1);
    }
    // Markers first, back to back and last: each counts once, none is an event.
    let raw: Vec<u8> = vec![
        0, 240, 0, 0, 0, //
        1, 2, 0x80, 0x00, 0x01, // t=1 ON (+1 step)
        0, 240, 0, 0, 0, //
        0, 240, 0, 0, 0, //
        3, 4, 0x00, 0x00, 0x02, // t=2 OFF (+3 steps)
        0, 240, 0, 0, 0,
    ];
    for chunk in [1, 5, 7, raw.len()] {
        let opts = ReadOptions {
            atis_overflow_us: 100,
            chunk_bytes: chunk,
            ..ReadOptions::default()
        };
        let mut r = EventReader::from_slice(&raw, Some(Format::AtisBin), &opts).unwrap();
        let ev = r.read_all().unwrap();
        assert_eq!(
            ev,
            vec![Event::new(101, 1, 2, true), Event::new(302, 3, 4, false)],
            "chunk {chunk}"
        );
        assert_eq!(r.stats().timestamp_overflows, 4);
    }
    // The writer inserts markers for long recordings and the reader undoes them.
    let ev = vec![
        Event::new(10, 1, 1, true),
        Event::new(20_000_000, 2, 2, false),
        Event::new(40_000_000, 3, 3, true),
    ];
    let mut w = atis_bin::Writer::new(Vec::new());
    w.write(&ev).unwrap();
    let bytes = w.finish().unwrap();
    let (back, err) = decode_chunked(&bytes, Some(Format::AtisBin), 1);
    assert!(err.is_none());
    assert_eq!(back, ev);
}

#[test]
fn evt2_words_by_hand() {
    let mut raw = b"% evt 2.0\n% geometry 640x480\n% end\n".to_vec();
    let words: [u32; 6] = [
        0x0000_0105,                                // CD before any TIME_HIGH: dropped
        0x8000_0002,                                // TIME_HIGH: 2 << 6 = 128
        (1 << 28) | (5 << 22) | (300 << 11) | 200,  // CD_ON t=133 x=300 y=200
        (5 << 22) | (7 << 11) | 9,                  // CD_OFF t=133 x=7 y=9
        0xA000_0000,                                // EXT_TRIGGER: skipped
        (1 << 28) | (63 << 22) | (639 << 11) | 479, // CD_ON t=191
    ];
    for w in words {
        raw.extend_from_slice(&w.to_le_bytes());
    }
    let mut r = EventReader::from_slice(&raw, None, &ReadOptions::default()).unwrap();
    let ev = r.read_all().unwrap();
    assert_eq!(r.format(), Format::Evt2);
    assert_eq!(
        ev,
        vec![
            Event::new(133, 300, 200, true),
            Event::new(133, 7, 9, false),
            Event::new(191, 639, 479, true)
        ]
    );
    assert_eq!(r.stats().invalid_events, 1);
    assert_eq!(r.stats().skipped_records, 1);
    assert_eq!(r.sensor_size().unwrap().width, 640);
}

#[test]
fn dat_v1_and_v2_layouts() {
    let rec = |t: u32, d: u32| [t.to_le_bytes(), d.to_le_bytes()].concat();
    let mut v2 = b"% Version 2\n% Width 304\n% Height 240\n".to_vec();
    v2.extend_from_slice(&[0x0C, 8]);
    v2.extend(rec(10, 303 | (239 << 14) | (1 << 28)));
    let mut r = EventReader::from_slice(&v2, Some(Format::Dat), &ReadOptions::default()).unwrap();
    assert_eq!(r.read_all().unwrap(), vec![Event::new(10, 303, 239, true)]);
    assert_eq!(r.sensor_size().unwrap().height, 240);
    let mut v1 = b"% Date 2014\n".to_vec();
    v1.extend_from_slice(&[0x00, 8]);
    v1.extend(rec(11, 303 | (239 << 9)));
    let mut r = EventReader::from_slice(&v1, Some(Format::Dat), &ReadOptions::default()).unwrap();
    assert_eq!(r.read_all().unwrap(), vec![Event::new(11, 303, 239, false)]);
}

#[test]
fn detection() {
    use stdl::io::detect;
    assert_eq!(detect(b"#!AER-DAT2.0\r\n", None), Ok(Format::Aedat2));
    assert_eq!(detect(b"#!AER-DAT3.1\r\n", None), Ok(Format::Aedat31));
    assert_eq!(detect(b"#!AER-DAT4.0\r\n", None), Ok(Format::Aedat4));
    assert_eq!(detect(b"% evt 3.0\n", Some("raw")), Ok(Format::Evt3));
    assert_eq!(
        detect(b"% format EVT2;height=480;width=640\n", None),
        Ok(Format::Evt2)
    );
    assert_eq!(
        detect(b"% Data file containing X\n% Version 2\n", None),
        Ok(Format::Dat)
    );
    assert_eq!(detect(&[1, 2, 3, 4, 5], Some("bin")), Ok(Format::AtisBin));
    assert_eq!(detect(&[1, 2, 3, 4, 5], Some("BS2")), Ok(Format::AtisBin));
    assert!(detect(&[1, 2, 3, 4, 5], None).is_err());
    assert!(detect(b"% plugin_name x\n", Some("raw")).is_err());
    assert!(detect(b"% evt 2.1\n", Some("raw")).is_err());
    // Magic beats the extension hint.
    assert_eq!(detect(b"#!AER-DAT2.0\r\n", Some("bin")), Ok(Format::Aedat2));
}

#[test]
fn evt3_raw_stream_without_header_matches_the_file_reader() {
    // What a Prophesee camera sends: the words of a .raw file without its `%` header, in
    // slices of any length (odd ones split a word).
    let Some(d) = data!() else { return };
    let bytes = std::fs::read(d.join("evt3/gen41_expelliarmus_evt3_sample.raw")).unwrap();
    let mut body = 0;
    while bytes[body] == b'%' {
        body += bytes[body..].iter().position(|&b| b == b'\n').unwrap() + 1;
    }
    let (want, err) = decode_chunked(&bytes, Some(Format::Evt3), 65536);
    assert!(err.is_none());
    for step in [1usize, 3, 4097] {
        let mut s = stdl::io::formats::evt3::RawStream::new();
        let mut got = Vec::new();
        for part in bytes[body..].chunks(step) {
            s.decode(part, &mut got);
        }
        assert_eq!(got.len(), want.len(), "slices of {step}");
        assert!(got == want, "slices of {step}: events differ");
    }
}
