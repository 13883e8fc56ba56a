//! The files a run writes and reads back: checkpoints (safetensors), JSON, written atomically
//! ([`stdl_io::output`]: a temporary file beside the target, renamed when complete), so that
//! no failure (a full disk, Ctrl-C, a crash) damages an earlier good file.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Context, Result};

pub use stdl_io::output::{commit_all, write_atomic, AtomicFile, DirLock};

/// Files written together and committed together ([`commit_all`]): a checkpoint.
#[derive(Debug, Default)]
pub struct FileSet(Vec<AtomicFile>);

impl FileSet {
    /// Adds named parameters as a safetensors file (refused if any value is not finite).
    pub fn tensors(&mut self, path: &Path, tensors: &BTreeMap<String, Vec<f32>>) -> Result<()> {
        let bytes = stdl_models::checkpoint::to_bytes(tensors, &path.display().to_string())?;
        self.bytes(path, &bytes)
    }

    /// Adds `value` as pretty JSON.
    pub fn json(&mut self, path: &Path, value: &impl serde::Serialize) -> Result<()> {
        self.bytes(path, serde_json::to_string_pretty(value)?.as_bytes())
    }

    /// Adds a file of `data`.
    pub fn bytes(&mut self, path: &Path, data: &[u8]) -> Result<()> {
        use std::io::Write;
        let mut f = AtomicFile::create(path)?;
        f.write_all(data)
            .with_context(|| format!("writing {}", path.display()))?;
        self.0.push(f);
        Ok(())
    }

    /// Renames every file over its target once all are written.
    pub fn commit(self) -> Result<()> {
        Ok(commit_all(self.0)?)
    }
}

/// A safetensors file's `f32` tensors (refused if any value is not finite).
pub fn load_tensors(path: &Path) -> Result<BTreeMap<String, Vec<f32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(stdl_models::checkpoint::from_bytes(
        &bytes,
        &path.display().to_string(),
    )?)
}

/// `value` as pretty JSON at `path`.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    write_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())?;
    Ok(())
}

/// A JSON file read into `T`; errors name the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Reads a settings file: JSON when its name ends in `.json`, TOML otherwise.
///
/// # Errors
/// An unreadable file, or one that does not parse as `T`.
pub fn read_config<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        serde_json::from_str(&text).with_context(|| format!("parsing {} as JSON", path.display()))
    } else {
        toml::from_str(&text).with_context(|| format!("parsing {} as TOML", path.display()))
    }
}

/// Reads a settings file ([`read_config`]) and checks it with `validate`, whose message is
/// prefixed with the file's path.
///
/// # Errors
/// An unreadable or malformed file, or a setting `validate` refuses.
pub fn load_config<T: serde::de::DeserializeOwned>(
    path: &Path,
    validate: impl FnOnce(&T) -> std::result::Result<(), String>,
) -> Result<T> {
    let cfg: T = read_config(path)?;
    validate(&cfg).map_err(|e| crate::Error::Invalid(format!("{}: {e}", path.display())))?;
    Ok(cfg)
}

/// Writes a settings file as TOML (atomically).
///
/// # Errors
/// A value TOML cannot hold, or a file that cannot be written.
pub fn write_config(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text =
        toml::to_string_pretty(value).with_context(|| format!("writing {} as TOML", path.display()))?;
    Ok(write_atomic(path, text.as_bytes())?)
}
