//! CIFAR10-DVS (Li et al. 2017): 10,000 DVS128 recordings of moving CIFAR-10 images.
//!
//! Both distributions are read: the original (per-class `airplane/ … truck/` folders of
//! `cifar10_<class>_<i>.aedat`, AEDAT 2.0 with DVS128 addresses) and Tonic's re-hosted one
//! (the same folders of `.aedat4` files). Events keep this crate's orientation convention;
//! SpikingJelly additionally transposes x and y for this dataset. There is no official
//! split: as SpikingJelly's non-random default, the first 90% of each class, by file
//! index, train and the rest test.

use std::path::Path;

use super::{dataset_error, files_with_ext, trailing_number, Dataset, Sample};
use crate::error::Result;
use crate::event::SensorSize;

const NAME: &str = "cifar10-dvs";

/// The 10 classes, in label order.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Opens `root` (the folder holding the class folders, or a `CIFAR10DVS` folder in it).
///
/// # Errors
/// The root has no class folders of AEDAT 2.0 files, or cannot be listed.
pub fn open(root: &Path) -> Result<Dataset> {
    let dir = if root.join("CIFAR10DVS").is_dir() {
        root.join("CIFAR10DVS")
    } else {
        root.to_path_buf()
    };
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (label, class) in CLASSES.iter().enumerate() {
        let cd = dir.join(class);
        if !cd.is_dir() {
            return Err(dataset_error(
                NAME,
                &dir,
                format!("missing class folder {class}/"),
            ));
        }
        let mut files = files_with_ext(NAME, &cd, &["aedat", "aedat4"])?;
        files.sort_by_key(|p| trailing_number(p));
        let n_train = (files.len() * 9).div_ceil(10);
        for (i, f) in files.into_iter().enumerate() {
            let s = Sample {
                path: f,
                label,
                interval_us: None,
            };
            if i < n_train {
                train.push(s);
            } else {
                test.push(s);
            }
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
