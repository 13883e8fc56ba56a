//! DVS128-Gesture (Amir et al. 2017): 29 users × lighting conditions, AEDAT 3.1 recordings
//! at 128×128, each with a `_labels.csv` of gesture intervals.
//!
//! Layout: `DvsGesture/userNN_<lighting>.aedat`, `DvsGesture/userNN_<lighting>_labels.csv`
//! (`class,startTime_usec,endTime_usec`, classes 1–11), and the trial lists
//! `trials_to_train.txt` / `trials_to_test.txt` (one `.aedat` name per line). A sample is
//! the events of one label row with `start <= t < end` (SpikingJelly's rule); labels are
//! `class − 1`. Without the trial lists, users 1–23 train and 24–29 test, which is what
//! the lists say.

use std::path::Path;

use super::{dataset_error, files_with_ext, Dataset, Sample};
use crate::error::Result;
use crate::event::SensorSize;

const NAME: &str = "dvs-gesture";

/// The 11 class names, in label order.
pub const CLASSES: [&str; 11] = [
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
];

/// One row of a labels CSV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelRow {
    /// Class 1..=11 as in the file.
    pub class: u32,
    /// Interval start (inclusive), µs.
    pub start_us: u64,
    /// Interval end (exclusive), µs.
    pub end_us: u64,
}

/// Parses a DVS128-Gesture labels CSV (`class,startTime_usec,endTime_usec`).
///
/// # Errors
/// A line that is not `class,start,end` with numbers (the message names the line).
pub fn parse_labels(text: &str) -> std::result::Result<Vec<LabelRow>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (i == 0 && line.starts_with("class")) {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = || {
            format!(
                "line {}: expected `class,startTime_usec,endTime_usec`, got {line:?}",
                i + 1
            )
        };
        if f.len() != 3 {
            return Err(bad());
        }
        let class: u32 = f[0].parse().map_err(|_| bad())?;
        let start_us: u64 = f[1].parse().map_err(|_| bad())?;
        let end_us: u64 = f[2].parse().map_err(|_| bad())?;
        if !(1..=11).contains(&class) {
            return Err(format!("line {}: class {class} is not in 1..=11", i + 1));
        }
        if end_us <= start_us {
            return Err(format!("line {}: empty interval {start_us}..{end_us}", i + 1));
        }
        rows.push(LabelRow {
            class,
            start_us,
            end_us,
        });
    }
    Ok(rows)
}

/// Opens `root` (the `DvsGesture` folder, or a folder containing it).
///
/// # Errors
/// No `trials_to_train.txt`/`trials_to_test.txt` layout under the root, a listed recording or
/// its labels file missing, or labels that do not parse.
pub fn open(root: &Path) -> Result<Dataset> {
    let dir = if root.join("DvsGesture").is_dir() {
        root.join("DvsGesture")
    } else {
        root.to_path_buf()
    };
    let read_list = |name: &str| -> Option<Vec<String>> {
        let text = std::fs::read_to_string(dir.join(name)).ok()?;
        Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    };
    let train_list = read_list("trials_to_train.txt");
    let test_list = read_list("trials_to_test.txt");
    let mut train = Vec::new();
    let mut test = Vec::new();
    for f in files_with_ext(NAME, &dir, &["aedat"])? {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned();
        let stem = f.file_stem().and_then(|n| n.to_str()).unwrap_or("").to_owned();
        let labels_path = dir.join(format!("{stem}_labels.csv"));
        let is_train = match (&train_list, &test_list) {
            (Some(tr), _) if tr.contains(&name) => true,
            (_, Some(te)) if te.contains(&name) => false,
            (Some(_), Some(_)) => continue, // listed in neither: not part of the dataset
            _ => {
                let user: u32 = stem
                    .strip_prefix("user")
                    .and_then(|s| s.get(..2))
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        dataset_error(
                            NAME,
                            &dir,
                            format!("{name}: expected a userNN_<lighting>.aedat name"),
                        )
                    })?;
                user <= 23
            }
        };
        let text = std::fs::read_to_string(&labels_path)
            .map_err(|e| dataset_error(NAME, &dir, format!("{}: {e}", labels_path.display())))?;
        let rows = parse_labels(&text)
            .map_err(|m| dataset_error(NAME, &dir, format!("{}: {m}", labels_path.display())))?;
        let target = if is_train { &mut train } else { &mut test };
        for r in rows {
            target.push(Sample {
                path: f.clone(),
                label: r.class as usize - 1,
                interval_us: Some((r.start_us, r.end_us)),
            });
        }
    }
    Dataset {
        name: NAME,
        root: dir,
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
        sensor: Some(SensorSize::new(128, 128)),
        format: None,
        train,
        test,
    }
    .validated()
}
