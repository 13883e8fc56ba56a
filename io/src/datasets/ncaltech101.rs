//! N-Caltech101 (Orchard et al. 2015): ATIS recordings of Caltech101 images.
//!
//! Layout: `Caltech101/<class>/*.bin` (or the class folders directly under the root); the
//! classes are the sorted folder names (101 in the published set). Image sizes differ, so
//! the sensor size is each sample's own extent (`max x + 1`, `max y + 1`); Tonic declares
//! 233×173 for all. There is no official split: a seeded, stratified split keeps
//! `round(test_fraction × n)` samples of each class (at least one for classes of two or
//! more) for testing.

use std::path::Path;

use super::{dataset_error, files_with_ext, list_dir, Dataset, Sample, SplitMix64};
use crate::error::Result;
use crate::formats::Format;

const NAME: &str = "ncaltech101";
/// Seed of the default split.
pub const DEFAULT_SEED: u64 = 0x5EED;

/// Opens `root` with a stratified split.
///
/// # Errors
/// No class folders of `.bin` files under the root, or a test fraction outside 0..1.
pub fn open(root: &Path, seed: u64, test_fraction: f64) -> Result<Dataset> {
    let dir = if root.join("Caltech101").is_dir() {
        root.join("Caltech101")
    } else {
        root.to_path_buf()
    };
    if !(0.0..1.0).contains(&test_fraction) {
        return Err(dataset_error(
            NAME,
            root,
            format!("test fraction {test_fraction} is not in [0, 1)"),
        ));
    }
    let class_dirs: Vec<_> = list_dir(NAME, &dir)?.into_iter().filter(|p| p.is_dir()).collect();
    let mut rng = SplitMix64(seed);
    let (mut train, mut test, mut classes) = (Vec::new(), Vec::new(), Vec::new());
    for cd in class_dirs {
        let mut files = files_with_ext(NAME, &cd, &["bin"])?;
        if files.is_empty() {
            continue;
        }
        let label = classes.len();
        classes.push(cd.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned());
        rng.shuffle(&mut files);
        let mut n_test = (test_fraction * files.len() as f64).round() as usize;
        if test_fraction > 0.0 && n_test == 0 && files.len() >= 2 {
            n_test = 1;
        }
        for (i, f) in files.into_iter().enumerate() {
            let s = Sample {
                path: f,
                label,
                interval_us: None,
            };
            if i < n_test {
                test.push(s);
            } else {
                train.push(s);
            }
        }
    }
    Dataset {
        name: NAME,
        root: dir,
        classes,
        sensor: None,
        format: Some(Format::AtisBin),
        train,
        test,
    }
    .validated()
}
