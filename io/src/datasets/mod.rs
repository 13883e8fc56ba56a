//! Event datasets in their real on-disk layouts: which files, which labels, which split.
//!
//! | dataset | layout | classes | split |
//! |---|---|---|---|
//! | [`dvs_gesture`] | `DvsGesture/userNN_<lighting>.aedat` + `_labels.csv` + `trials_to_{train,test}.txt` | 11 | the trial lists (users 1–23 / 24–29 without them) |
//! | [`ncaltech101`] | `Caltech101/<class>/*.bin` | one per folder (101) | seeded stratified, 90/10 by default |
//! | [`nmnist`] | `Train/<digit>/*.bin`, `Test/<digit>/*.bin`, or SLAYER's list files | 10 | the folders / lists |
//! | [`cifar10_dvs`] | `<class>/*.aedat` (AEDAT 2.0) or `<class>/*.aedat4` | 10 | first 90% of each class (by index) train |
//!
//! A [`Dataset`] lists [`Sample`]s; [`Dataset::load`] reads one sample's events.

pub mod cifar10_dvs;
pub mod dvs_gesture;
pub mod ncaltech101;
pub mod nmnist;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::event::{Event, SensorSize};
use crate::formats::{EventReader, Format, ReadOptions};

/// Train or test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

impl std::str::FromStr for Split {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            o => Err(Error::InvalidArgument(format!(
                "split must be train or test, got {o:?}"
            ))),
        }
    }
}

/// One labelled sample: a file, or a time interval of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The recording.
    pub path: PathBuf,
    /// Class index, `0..classes.len()`.
    pub label: usize,
    /// Only events with `start <= t < end` belong to the sample (DVS128-Gesture).
    pub interval_us: Option<(u64, u64)>,
}

/// A sample's events, with the sensor size that applies to it.
#[derive(Clone, Debug)]
pub struct LoadedSample {
    /// Events in file order.
    pub events: Vec<Event>,
    /// The dataset's sensor size, or (N-Caltech101) the sample's own extent.
    pub sensor: SensorSize,
    /// The label.
    pub label: usize,
}

/// A dataset: classes, and the samples of each split.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Short name (`nmnist`, `dvs-gesture`, ...).
    pub name: &'static str,
    /// Root directory.
    pub root: PathBuf,
    /// Class names; a label indexes this.
    pub classes: Vec<String>,
    /// Fixed sensor size, or `None` when it varies per sample (N-Caltech101).
    pub sensor: Option<SensorSize>,
    /// Format to read the files as (`None`: detect).
    pub format: Option<Format>,
    /// Training samples.
    pub train: Vec<Sample>,
    /// Test samples.
    pub test: Vec<Sample>,
}

impl Dataset {
    /// Opens a dataset by name: `nmnist`, `dvs-gesture`, `ncaltech101`, `cifar10-dvs`.
    ///
    /// # Errors
    /// An unknown dataset name, or a root without that dataset's layout.
    pub fn open(name: &str, root: impl AsRef<Path>) -> Result<Dataset> {
        let root = root.as_ref();
        match name {
            "nmnist" | "n-mnist" => nmnist::open(root),
            "dvs-gesture" | "dvsgesture" | "dvs128-gesture" => dvs_gesture::open(root),
            "ncaltech101" | "n-caltech101" => ncaltech101::open(root, ncaltech101::DEFAULT_SEED, 0.1),
            "cifar10-dvs" | "cifar10dvs" => cifar10_dvs::open(root),
            other => Err(Error::InvalidArgument(format!(
                "unknown dataset {other:?}; expected nmnist, dvs-gesture, ncaltech101 or cifar10-dvs"
            ))),
        }
    }

    /// The samples of a split.
    pub fn split(&self, split: Split) -> &[Sample] {
        match split {
            Split::Train => &self.train,
            Split::Test => &self.test,
        }
    }

    /// Reads one sample's events.
    ///
    /// # Errors
    /// The sample's file cannot be read or decoded ([`Error`] names the format, offset and
    /// path).
    pub fn load(&self, sample: &Sample) -> Result<LoadedSample> {
        let mut r = EventReader::open_as(&sample.path, self.format, &ReadOptions::default())?;
        let mut events = Vec::new();
        match sample.interval_us {
            None => events = r.read_all()?,
            Some((start, end)) => {
                for batch in r.by_ref() {
                    let batch = batch?;
                    events.extend(batch.iter().filter(|e| e.t_us >= start && e.t_us < end));
                    // Recordings are time-ordered: stop once the whole batch is past the end.
                    if batch.first().is_some_and(|e| e.t_us >= end) {
                        break;
                    }
                }
            }
        }
        let sensor = match self.sensor.or(r.sensor_size()) {
            Some(s) => s,
            None => extent(&events),
        };
        Ok(LoadedSample {
            events,
            sensor,
            label: sample.label,
        })
    }

    fn err(&self, message: impl Into<String>) -> Error {
        dataset_error(self.name, &self.root, message)
    }

    /// Checks that the dataset has samples and labels in range.
    fn validated(self) -> Result<Self> {
        if self.train.is_empty() && self.test.is_empty() {
            return Err(self.err("no samples found"));
        }
        if let Some(s) = self
            .train
            .iter()
            .chain(&self.test)
            .find(|s| s.label >= self.classes.len())
        {
            return Err(self.err(format!(
                "{} has label {} of {} classes",
                s.path.display(),
                s.label,
                self.classes.len()
            )));
        }
        Ok(self)
    }
}

/// The smallest sensor that holds every event (1×1 for no event).
pub fn extent(events: &[Event]) -> SensorSize {
    let (w, h) = events
        .iter()
        .fold((0u16, 0u16), |(w, h), e| (w.max(e.x), h.max(e.y)));
    SensorSize::new(w.saturating_add(1), h.saturating_add(1))
}

pub(crate) fn dataset_error(dataset: &'static str, root: &Path, message: impl Into<String>) -> Error {
    Error::Dataset {
        dataset,
        root: root.to_path_buf(),
        message: message.into(),
    }
}

/// Sorted entries of a directory, with a dataset-flavoured error.
pub(crate) fn list_dir(dataset: &'static str, dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| dataset_error(dataset, dir, format!("cannot list directory: {e}")))?;
    let mut v = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(Some(dir.to_path_buf()), e))?;
        v.push(entry.path());
    }
    v.sort();
    Ok(v)
}

/// Files in `dir` whose extension is one of `exts`, sorted by name.
pub(crate) fn files_with_ext(dataset: &'static str, dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    Ok(list_dir(dataset, dir)?
        .into_iter()
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.iter().any(|x| x.eq_ignore_ascii_case(e)))
        })
        .collect())
}

/// The trailing number of a file stem (`cifar10_cat_12` → 12), for numeric ordering.
pub(crate) fn trailing_number(p: &Path) -> u64 {
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let digits: String = stem.chars().rev().take_while(|c| c.is_ascii_digit()).collect();
    digits.chars().rev().collect::<String>().parse().unwrap_or(0)
}

/// SplitMix64: a tiny, well-known seeded generator for reproducible splits.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}
