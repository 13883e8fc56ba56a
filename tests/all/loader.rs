//! Datasets as streams of steps (src/data.rs): per-step frames equal the whole-sample
//! binning bit for bit, the loader follows its order and reports unreadable samples, and
//! training memory depends neither on T nor on the dataset's size.

use std::path::Path;
use std::sync::Arc;

use stdl::data::{frame_geometry, SampleCells, SampleSet};
use stdl::io::datasets::{Dataset, Split};
use stdl::io::formats::atis_bin;
use stdl::io::frames::{bin_ranges, frames_from_events, Edge, EventBins, Slicing};
use stdl::io::{read_file, Event, SensorSize};
use stdl_models::{Dims, Rng};

use crate::data;

/// Every step of `events` binned one step at a time equals `frames_from_events`.
fn check_per_step_frames(events: &[Event], sensor: SensorSize, dims: Dims) {
    let geom = frame_geometry(sensor, dims).unwrap();
    let cells = SampleCells::new(events, &geom, 0);
    let n = events.len();
    for t_bins in [1, 2, 7, 10, 100, n.saturating_sub(1).max(1), n, n + 5] {
        let whole = frames_from_events(
            events,
            &geom,
            Slicing::EventBins {
                n: t_bins,
                overlap: 0.0,
            },
            Edge::ToLast,
        )
        .unwrap();
        assert_eq!(whole.len(), t_bins);
        for (t, f) in whole.iter().enumerate() {
            let mut step = vec![0.0f32; dims.len()];
            cells.add_step(t, t_bins, &mut step);
            assert!(
                step.iter()
                    .map(|v| v.to_bits())
                    .eq(f.data.iter().map(|v| v.to_bits())),
                "T={t_bins}, step {t}: per-step frame differs"
            );
        }
        // The replay buffer's u8 copy: the same counts.
        let mut counts = vec![0u8; t_bins * dims.len()];
        cells.write_counts(t_bins, dims.len(), &mut counts);
        let want: Vec<u8> = whole
            .iter()
            .flat_map(|f| f.data.iter().map(|&v| v as u8))
            .collect();
        assert_eq!(counts, want, "T={t_bins}: u8 counts differ");
    }
}

#[test]
fn per_step_frames_equal_whole_sample_frames_on_real_recordings() {
    let Some(d) = data!() else { return };
    // N-MNIST at its own size.
    let ds = Dataset::open("nmnist", d.join("nmnist/slayer_NMNISTsmall")).unwrap();
    let s = ds.load(&ds.split(Split::Test)[3]).unwrap();
    check_per_step_frames(&s.events, s.sensor, Dims::new(2, 34, 34));
    // DVS128 resized to the demo's 32×32, and padded into a larger input.
    let (ev, _, _) = read_file(d.join("aedat2/dvs128_alex_walking_again.aedat")).unwrap();
    let ev = &ev[..15_000];
    check_per_step_frames(ev, SensorSize::new(128, 128), Dims::new(2, 32, 32));
    check_per_step_frames(&ev[..3_000], SensorSize::new(128, 128), Dims::new(2, 160, 140));
}

#[test]
fn event_bins_follow_both_edge_conventions() {
    // Independent statement of the two conventions: bins of ⌊n/T⌋ events from i·⌊n/T⌋, or
    // with an overlap Tonic's windows of w = ⌊⌊n/T⌋·(1+overlap)⌋ events every ⌊w·(1−overlap)⌋;
    // the last bin runs to the end (to-last, SpikingJelly) or stays whole (drop, Tonic).
    let mut rng = Rng::new(9);
    for _ in 0..500 {
        let n_ev = rng.below(300);
        let t = 1 + rng.below(40);
        let overlap = [0.0f64, 0.25, 0.5, 0.1][rng.below(4)];
        for edge in [Edge::ToLast, Edge::Drop] {
            let bins = EventBins::new(n_ev, t, overlap, edge).unwrap();
            let window = ((n_ev / t) as f64 * (1.0 + overlap)) as usize;
            let stride = (window as f64 * (1.0 - overlap)) as usize;
            for i in 0..t {
                let a = (i * stride).min(n_ev);
                let b = if edge == Edge::ToLast && i + 1 == t {
                    n_ev
                } else {
                    (a + window).min(n_ev)
                };
                assert_eq!(
                    bins.range(i),
                    a..b,
                    "n={n_ev} T={t} overlap={overlap} {edge:?} bin {i}"
                );
            }
            // The whole-sample binning cuts the same ranges.
            let events: Vec<Event> = (0..n_ev as u64)
                .map(|k| Event {
                    t_us: k,
                    x: 0,
                    y: 0,
                    on: true,
                })
                .collect();
            let whole = bin_ranges(&events, Slicing::EventBins { n: t, overlap }, edge).unwrap();
            for (i, (r, _, _)) in whole.iter().enumerate() {
                assert_eq!(*r, bins.range(i));
            }
        }
    }
    assert!(EventBins::new(10, 0, 0.0, Edge::ToLast).is_err());
    assert!(EventBins::new(10, 2, 1.0, Edge::ToLast).is_err());
}

fn write_bin(path: &Path, events: &[Event]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = atis_bin::Writer::new(std::fs::File::create(path).unwrap());
    w.write(events).unwrap();
    w.finish().unwrap();
}

/// An N-MNIST folder dataset of `per_class` copies of `sample` per digit, written with our
/// ATIS writer (each copy shifted in time so no two files are equal).
fn fixture_nmnist(root: &Path, sample: &[Event], per_class: usize, test_per_class: usize) {
    for (split, n) in [("Train", per_class), ("Test", test_per_class)] {
        for c in 0..10 {
            for i in 0..n {
                let shifted: Vec<Event> = sample
                    .iter()
                    .map(|e| Event {
                        t_us: e.t_us + i as u64,
                        ..*e
                    })
                    .collect();
                write_bin(
                    &root.join(split).join(c.to_string()).join(format!("{i:05}.bin")),
                    &shifted,
                );
            }
        }
    }
}

#[test]
fn the_loader_follows_its_order_and_names_a_bad_sample() {
    let Some(d) = data!() else { return };
    let (ev, _, _) = read_file(d.join("nmnist/tonic_sample_nmnist.bin")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    fixture_nmnist(tmp.path(), &ev, 3, 1);
    let ds = Arc::new(Dataset::open("nmnist", tmp.path()).unwrap());
    let samples = ds.split(Split::Train).to_vec();
    let set = SampleSet::new(ds.clone(), samples.clone(), Dims::new(2, 34, 34));
    let order: Vec<usize> = (0..30).rev().collect();
    let batches: Vec<_> = set.loader(order.clone(), 4).map(Result::unwrap).collect();
    assert_eq!(
        batches.iter().map(|b| b.samples.len()).collect::<Vec<_>>(),
        [4, 4, 4, 4, 4, 4, 4, 2]
    );
    let seen: Vec<usize> = batches.iter().flat_map(|b| b.index.clone()).collect();
    assert_eq!(seen, order);
    for b in &batches {
        for (s, &i) in b.samples.iter().zip(&b.index) {
            assert_eq!(s.label, samples[i].label);
            assert_eq!(s.len(), ev.len());
        }
    }
    // Stopping early (dropping the loader mid-epoch) returns at once.
    let mut l = set.loader(order, 1);
    assert!(l.next().unwrap().is_ok());
    drop(l);
    // A sample that cannot be read ends the epoch with an error naming its file.
    let bad = &samples[7].path;
    std::fs::write(bad, [0u8; 7]).unwrap();
    let errs: Vec<String> = set
        .loader((0..30).collect(), 4)
        .filter_map(|b| b.err().map(|e| format!("{e:#}")))
        .collect();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains(&bad.display().to_string()), "{}", errs[0]);
}

/// Peak RSS (`result.json`) of one STDL epoch of `stdl train` on `root`.
fn train_peak_rss(root: &Path, t_bins: usize, limit: Option<usize>, out: &Path) -> u64 {
    let mut c = crate::common::train_nmnist(root, "nmnist", out);
    c.args([
        "--method", "stdl", "--epochs", "1", "--batch", "16", "--seed", "1",
    ])
    .args(["--t-bins", &t_bins.to_string()]);
    if let Some(n) = limit {
        c.args(["--limit-samples", &n.to_string()]);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    r["peak_rss_bytes"].as_u64().unwrap()
}

#[test]
fn stdl_training_memory_depends_neither_on_t_nor_on_the_dataset_size() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // T: the real N-MNIST samples at T = 10 and T = 200 (each step's frame is made when it
    // is learned; before, T frames per sample were held).
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let r10 = train_peak_rss(&root, 10, Some(48), &tmp.path().join("t10"));
    let r200 = train_peak_rss(&root, 200, Some(48), &tmp.path().join("t200"));
    // Held for a batch of 16, the 190 further f32 frames (2 × 34 × 34) would add 28 MB; a
    // fifth of that is above the 1–2 MB by which one run's peak varies with how its threads
    // overlapped (a 5% bound on the ~32 MB peak failed once on that noise alone).
    let held = 16 * (200 - 10) * 2 * 34 * 34 * 4;
    assert!(
        r200.abs_diff(r10) < held / 5,
        "peak RSS T=10 {r10} B, T=200 {r200} B: {:+} B, T = 200's frames of a batch are {held} B",
        r200 as i64 - r10 as i64
    );
    // Size: 30 and 2,010 files of one real recording (0.65 MB and 43 MB); the loader reads
    // them a batch at a time, so the peak does not follow the dataset.
    let (ev, _, _) = read_file(d.join("nmnist/tonic_sample_nmnist.bin")).unwrap();
    let (small, large) = (tmp.path().join("small"), tmp.path().join("large"));
    fixture_nmnist(&small, &ev, 2, 1);
    fixture_nmnist(&large, &ev, 200, 1);
    let rs = train_peak_rss(&small, 4, None, &tmp.path().join("rs"));
    let rl = train_peak_rss(&large, 4, None, &tmp.path().join("rl"));
    // Held whole, the large set would add its 43 MB; a tenth of that is far above both the
    // list of 2,000 paths and the few MB by which the peak of one run varies with how its
    // threads overlapped on a loaded machine (README, "Memory").
    let bytes = ev.len() as u64 * 5 * 2_010;
    assert!(
        rl.saturating_sub(rs) < bytes / 10,
        "peak RSS 20 samples {rs} B, 2,000 samples {rl} B: +{} B, the set is {bytes} B",
        rl as i64 - rs as i64
    );
}
