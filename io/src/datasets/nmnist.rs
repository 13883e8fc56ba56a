//! N-MNIST (Orchard et al. 2015): 34×34 ATIS recordings of MNIST digits, 3 saccades each.
//!
//! Two layouts are read:
//! - the published one: `Train/<digit>/*.bin` and `Test/<digit>/*.bin`; the label is the
//!   last character of the folder name (as Tonic does);
//! - SLAYER's list-file layout (`shared/data/nmnist/slayer_NMNISTsmall`): `train*.txt` and
//!   `test*.txt` with lines `<sample> <class>` (lines starting with `#` are comments), and
//!   files `<sample>.bs2` (or `.bin`) beside them.

use std::path::{Path, PathBuf};

use super::{dataset_error, files_with_ext, list_dir, Dataset, Sample};
use crate::error::Result;
use crate::event::SensorSize;
use crate::formats::Format;

const NAME: &str = "nmnist";

/// Opens either layout under `root`.
///
/// # Errors
/// Neither `Train/`/`Test/` digit folders nor SLAYER's list files under the root.
pub fn open(root: &Path) -> Result<Dataset> {
    let (train, test) = if root.join("Train").is_dir() || root.join("Test").is_dir() {
        (folder_split(root, "Train")?, folder_split(root, "Test")?)
    } else {
        let lists = list_dir(NAME, root)?;
        let find = |prefix: &str| {
            lists.iter().find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.to_ascii_lowercase().starts_with(prefix) && n.ends_with(".txt"))
            })
        };
        match (find("train"), find("test")) {
            (Some(tr), Some(te)) => (list_split(root, tr)?, list_split(root, te)?),
            _ => {
                return Err(dataset_error(
                    NAME,
                    root,
                    "expected Train/ and Test/ folders, or train*.txt and test*.txt list files",
                ))
            }
        }
    };
    Dataset {
        name: NAME,
        root: root.to_path_buf(),
        classes: (0..10).map(|d| d.to_string()).collect(),
        sensor: Some(SensorSize::new(34, 34)),
        format: Some(Format::AtisBin),
        train,
        test,
    }
    .validated()
}

fn folder_split(root: &Path, name: &str) -> Result<Vec<Sample>> {
    let dir = root.join(name);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for class_dir in list_dir(NAME, &dir)?.into_iter().filter(|p| p.is_dir()) {
        let dname = class_dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(label) = dname.chars().last().and_then(|c| c.to_digit(10)) else {
            continue;
        };
        for f in files_with_ext(NAME, &class_dir, &["bin", "bs2"])? {
            out.push(Sample {
                path: f,
                label: label as usize,
                interval_us: None,
            });
        }
    }
    Ok(out)
}

fn list_split(root: &Path, list: &PathBuf) -> Result<Vec<Sample>> {
    let text = std::fs::read_to_string(list)
        .map_err(|e| dataset_error(NAME, root, format!("{}: {e}", list.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(id), Some(class)) = (it.next(), it.next()) else {
            return Err(dataset_error(
                NAME,
                root,
                format!("{} line {}: expected `<sample> <class>`", list.display(), i + 1),
            ));
        };
        let label: usize = class.parse().map_err(|_| {
            dataset_error(
                NAME,
                root,
                format!("{} line {}: bad class {class:?}", list.display(), i + 1),
            )
        })?;
        let path = ["bs2", "bin"]
            .iter()
            .map(|ext| root.join(format!("{id}.{ext}")))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                dataset_error(
                    NAME,
                    root,
                    format!("{} line {}: no file {id}.bs2 or {id}.bin", list.display(), i + 1),
                )
            })?;
        out.push(Sample {
            path,
            label,
            interval_us: None,
        });
    }
    Ok(out)
}
