//! Datasets in their real layouts: the real labelled N-MNIST subset, and small fixture
//! datasets written with our writers from real recordings.

use std::path::Path;

use stdl::io::datasets::{dvs_gesture, ncaltech101, Dataset, Split};
use stdl::io::formats::{aedat2, aedat31, atis_bin};
use stdl::io::{read_file, Event};

use crate::data;

fn write_bin(path: &Path, events: &[Event]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = atis_bin::Writer::new(std::fs::File::create(path).unwrap());
    w.write(events).unwrap();
    w.finish().unwrap();
}

#[test]
fn slayer_list_layout_is_the_real_labelled_subset() {
    let Some(d) = data!() else { return };
    let ds = Dataset::open("nmnist", d.join("nmnist/slayer_NMNISTsmall")).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (1000, 100));
    let hist = |s: &[stdl::io::datasets::Sample]| {
        let mut h = [0usize; 10];
        for x in s {
            h[x.label] += 1;
        }
        h
    };
    assert_eq!(hist(&ds.train), [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]);
    assert_eq!(hist(&ds.test), [8, 14, 8, 11, 14, 7, 10, 15, 2, 11]);
    assert_eq!(ds.train[0].label, 5);
    assert_eq!(ds.test[0].label, 7);
    let s = ds.load(&ds.train[0]).unwrap();
    assert_eq!(s.events.len(), 4681);
    assert_eq!((s.sensor.width, s.sensor.height), (34, 34));
}

#[test]
fn nmnist_folder_layout_fixture() {
    let Some(d) = data!() else { return };
    let src = Dataset::open("nmnist", d.join("nmnist/slayer_NMNISTsmall")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (split, samples) in [("Train", &src.train[..20]), ("Test", &src.test[..10])] {
        for (i, s) in samples.iter().enumerate() {
            let (ev, _, _) = read_file(&s.path).unwrap();
            write_bin(
                &tmp.path()
                    .join(split)
                    .join(s.label.to_string())
                    .join(format!("{i:05}.bin")),
                &ev,
            );
        }
    }
    let ds = Dataset::open("nmnist", tmp.path()).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (20, 10));
    let mut want: Vec<usize> = src.train[..20].iter().map(|s| s.label).collect();
    let mut got: Vec<usize> = ds.train.iter().map(|s| s.label).collect();
    want.sort();
    got.sort();
    assert_eq!(want, got);
    for s in &ds.test {
        let loaded = ds.load(s).unwrap();
        assert!(!loaded.events.is_empty() && loaded.events.iter().all(|e| e.x < 34 && e.y < 34));
    }
}

#[test]
fn real_gesture_labels_csv() {
    let Some(d) = data!() else { return };
    let text = std::fs::read_to_string(d.join("dvsgesture/user01_natural_labels.csv")).unwrap();
    let rows = dvs_gesture::parse_labels(&text).unwrap();
    assert_eq!(rows.len(), 12);
    assert_eq!(
        (rows[0].class, rows[0].start_us, rows[0].end_us),
        (1, 53_036_986, 59_508_469)
    );
    assert_eq!(rows.iter().filter(|r| r.class == 8).count(), 2);
    let mut classes: Vec<u32> = rows.iter().map(|r| r.class).collect();
    classes.dedup();
    classes.sort();
    classes.dedup();
    assert_eq!(classes, (1..=11).collect::<Vec<_>>());
    assert!(dvs_gesture::parse_labels("class,startTime_usec,endTime_usec\n12,1,2\n").is_err());
    assert!(dvs_gesture::parse_labels("class,startTime_usec,endTime_usec\n1,5,2\n").is_err());
}

#[test]
fn dvs_gesture_layout_fixture() {
    let Some(d) = data!() else { return };
    // A real DVS128 recording, rewritten as AEDAT 3.1 trials in the DvsGesture layout.
    let (ev, _, _) = read_file(d.join("aedat2/dvs128_alex_walking_again.aedat")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("DvsGesture");
    std::fs::create_dir_all(&dir).unwrap();
    for trial in ["user01_natural", "user02_led", "user24_fluorescent"] {
        let mut w = aedat31::Writer::new(
            std::fs::File::create(dir.join(format!("{trial}.aedat"))).unwrap(),
            "DVS128",
        )
        .unwrap();
        w.write(&ev).unwrap();
        w.finish().unwrap();
        std::fs::write(
            dir.join(format!("{trial}_labels.csv")),
            "class,startTime_usec,endTime_usec\n3,41400000,43000000\n11,43000000,45500000\n8,45000000,48000000\n",
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("trials_to_train.txt"),
        "user01_natural.aedat\nuser02_led.aedat\n",
    )
    .unwrap();
    std::fs::write(dir.join("trials_to_test.txt"), "user24_fluorescent.aedat\n").unwrap();
    let ds = Dataset::open("dvs-gesture", tmp.path()).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (6, 3));
    assert_eq!(ds.classes.len(), 11);
    let labels: Vec<usize> = ds.test.iter().map(|s| s.label).collect();
    assert_eq!(labels, vec![2, 10, 7]);
    for s in &ds.test {
        let (a, b) = s.interval_us.unwrap();
        let want: Vec<Event> = ev.iter().copied().filter(|e| e.t_us >= a && e.t_us < b).collect();
        let got = ds.load(s).unwrap();
        assert!(!want.is_empty());
        assert!(got.events == want, "interval {a}..{b}");
        assert_eq!(got.sensor.width, 128);
    }
    // Without the trial lists, users 1-23 train.
    std::fs::remove_file(dir.join("trials_to_train.txt")).unwrap();
    std::fs::remove_file(dir.join("trials_to_test.txt")).unwrap();
    let ds = Dataset::open("dvs-gesture", &dir).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (6, 3));
}

#[test]
fn ncaltech101_layout_fixture_and_seeded_stratified_split() {
    let Some(d) = data!() else { return };
    let src = Dataset::open("nmnist", d.join("nmnist/slayer_NMNISTsmall")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("Caltech101");
    let classes = ["BACKGROUND_Google", "accordion", "airplanes"];
    let sizes = [10usize, 20, 5];
    let mut k = 0;
    for (c, n) in classes.iter().zip(sizes) {
        for i in 0..n {
            let (ev, _, _) = read_file(&src.train[k].path).unwrap();
            k += 1;
            write_bin(&root.join(c).join(format!("image_{:04}.bin", i + 1)), &ev);
        }
    }
    let ds = Dataset::open("ncaltech101", tmp.path()).unwrap();
    assert_eq!(ds.classes, classes);
    let per_class = |s: &[stdl::io::datasets::Sample]| {
        let mut h = [0usize; 3];
        for x in s {
            h[x.label] += 1;
        }
        h
    };
    assert_eq!(per_class(&ds.test), [1, 2, 1]);
    assert_eq!(per_class(&ds.train), [9, 18, 4]);
    // Same seed, same split; another seed, another split.
    let again = ncaltech101::open(&root, ncaltech101::DEFAULT_SEED, 0.1).unwrap();
    assert_eq!(again.test, ds.test);
    let other = ncaltech101::open(&root, 12345, 0.1).unwrap();
    assert_ne!(other.test, ds.test);
    // Per-sample sensor size: the extent of the sample's events.
    let s = ds.load(&ds.test[0]).unwrap();
    let w = s.events.iter().map(|e| e.x).max().unwrap() + 1;
    assert_eq!(s.sensor.width, w);
    assert!(ds.sensor.is_none());
}

#[test]
fn cifar10_dvs_both_distributions() {
    let Some(d) = data!() else { return };
    let (ev, _, _) = read_file(d.join("aedat2/dvs128_alex_walking_for_10secs.aedat")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let classes = stdl::io::datasets::cifar10_dvs::CLASSES;
    for (ci, c) in classes.iter().enumerate() {
        for i in 0..10 {
            let dir = tmp.path().join(c);
            std::fs::create_dir_all(&dir).unwrap();
            let mut w = aedat2::Writer::new(
                std::fs::File::create(dir.join(format!("cifar10_{c}_{i}.aedat"))).unwrap(),
            )
            .unwrap();
            let k = (ci * 10 + i) * 1000;
            w.write(&ev[k..k + 1000]).unwrap();
            w.finish().unwrap();
        }
    }
    let ds = Dataset::open("cifar10-dvs", tmp.path()).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (90, 10));
    // Numeric order: the test sample of each class is index 9, not "cifar10_x_9" < "..._10".
    assert!(ds
        .test
        .iter()
        .all(|s| s.path.to_str().unwrap().ends_with("_9.aedat")));
    let s = ds.load(&ds.test[3]).unwrap();
    assert_eq!(s.label, 3);
    assert_eq!(
        s.events,
        ev[(3 * 10 + 9) * 1000..(3 * 10 + 9) * 1000 + 1000].to_vec()
    );
    // Tonic's distribution: AEDAT 4 files in the same folders.
    let tmp4 = tempfile::tempdir().unwrap();
    for c in classes {
        std::fs::create_dir_all(tmp4.path().join(c)).unwrap();
        std::os::unix::fs::symlink(
            d.join("aedat4/dvxplorer_tonic_sample.aedat4")
                .canonicalize()
                .unwrap(),
            tmp4.path().join(c).join("0.aedat4"),
        )
        .unwrap();
    }
    let ds = Dataset::open("cifar10-dvs", tmp4.path()).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (10, 0));
    assert_eq!(ds.load(&ds.train[0]).unwrap().events.len(), 111_954);
    assert_eq!(ds.split(Split::Train).len(), 10);
}

#[test]
fn dataset_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Dataset::open("nmnist", tmp.path()).unwrap_err().to_string();
    assert!(e.contains("nmnist") && e.contains("Train/"), "{e}");
    let e = Dataset::open("cifar10-dvs", tmp.path()).unwrap_err().to_string();
    assert!(e.contains("airplane"), "{e}");
    let e = Dataset::open("imagenet", tmp.path()).unwrap_err().to_string();
    assert!(e.contains("unknown dataset"), "{e}");
    std::fs::write(tmp.path().join("train.txt"), "1 5\n").unwrap();
    std::fs::write(tmp.path().join("test.txt"), "2 3\n").unwrap();
    let e = Dataset::open("nmnist", tmp.path()).unwrap_err().to_string();
    assert!(e.contains("1.bs2"), "{e}");
}
