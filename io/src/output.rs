//! Files the program writes, written so that a failure never damages a good one.
//!
//! [`AtomicFile`] writes to a temporary file beside the target, named
//! `NAME.<pid>.<random>.partial` (so two writers never share it and no unrelated file is
//! touched), and renames it over the target only when everything was written and synced:
//! a full disk, a crash or an interrupt leaves the earlier file as it was, and a temporary
//! file that was not committed is removed when it is dropped. A target that is a symbolic
//! link keeps its link: the file it points to is replaced. A target that is not a regular
//! file (`/dev/null`, `/dev/stdout`, a named pipe) is written in place, since replacing a
//! device by a regular file would break it for every other program. [`DirLock`] makes a
//! directory one process's at a time.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

fn output_error(op: &'static str, path: &Path, error: std::io::Error) -> Error {
    Error::Output {
        op,
        path: path.to_path_buf(),
        error,
    }
}

/// A unique temporary name beside `path`: `NAME.<pid>.<random>.partial`.
pub fn partial_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // SplitMix64 of the time and a per-process counter: distinct within and across processes.
    let mut z = nanos
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!("{name}.{}.{z:016x}.partial", std::process::id()))
}

/// A file that replaces its target only when [`AtomicFile::commit`] succeeds.
#[derive(Debug)]
pub struct AtomicFile {
    /// The target as given (named in messages).
    path: PathBuf,
    /// The temporary file and what it is renamed over (the target, or the file a symbolic
    /// link at the target points to); `None` when the target is written in place.
    rename: Option<(PathBuf, PathBuf)>,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path` (nothing at `path` changes until [`AtomicFile::commit`], unless
    /// it is a device or a pipe, which is written in place).
    ///
    /// # Errors
    /// The temporary file beside `path` cannot be created.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let special = std::fs::metadata(&path).is_ok_and(|m| !m.is_file() && !m.is_dir());
        if special {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| output_error("opening", &path, e))?;
            return Ok(Self {
                path,
                rename: None,
                file: Some(BufWriter::with_capacity(1 << 16, file)),
            });
        }
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        let target = match is_link {
            true => std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone()),
            false => path.clone(),
        };
        let tmp = partial_path(&target);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| output_error("creating", &path, e))?;
        Ok(Self {
            path,
            rename: Some((tmp, target)),
            file: Some(BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// The target.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs and renames the temporary file over the target.
    ///
    /// # Errors
    /// Flushing, syncing or renaming failed; the target is then unchanged and the temporary
    /// file removed.
    pub fn commit(self) -> Result<()> {
        commit_all(vec![self])
    }

    fn sync(&mut self) -> Result<()> {
        let w = self.file.as_mut().expect("not committed");
        w.flush().map_err(|e| output_error("writing", &self.path, e))?;
        if self.rename.is_none() {
            // A device or a pipe: nothing to sync.
            return Ok(());
        }
        w.get_ref()
            .sync_all()
            .map_err(|e| output_error("writing", &self.path, e))
    }
}

/// Commits files that belong together (a checkpoint's weights, optimiser state and state):
/// every one is written and synced before the first is renamed, so a failure to write any
/// of them (a full disk) leaves all the earlier files as they were.
///
/// # Errors
/// The first file that cannot be flushed or renamed; files renamed before it stay.
pub fn commit_all(mut files: Vec<AtomicFile>) -> Result<()> {
    for f in &mut files {
        f.sync()?;
    }
    for mut f in files {
        drop(f.file.take());
        if let Some((tmp, target)) = &f.rename {
            std::fs::rename(tmp, target).map_err(|e| {
                let _ = std::fs::remove_file(tmp);
                output_error("renaming over", &f.path, e)
            })?;
        }
    }
    Ok(())
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("not committed").write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file.as_mut().expect("not committed").write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let (Some(_), Some((tmp, _))) = (self.file.take(), &self.rename) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Writes `data` to `path` atomically (see [`AtomicFile`]).
///
/// # Errors
/// As [`AtomicFile::create`] and [`AtomicFile::commit`].
pub fn write_atomic(path: impl AsRef<Path>, data: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(data)
        .map_err(|e| output_error("writing", &f.path.clone(), e))?;
    f.commit()
}

/// An exclusive lock on a directory: a `.lock` file holding the owner's process id, created
/// with `create_new` (atomic on local file systems) and removed when the lock is dropped. A
/// lock whose process no longer runs (Linux: no `/proc/PID`) is taken over.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir` (created if missing), or fails naming the process that holds it.
    ///
    /// # Errors
    /// The directory cannot be created, or another process holds its lock (the message names
    /// its pid).
    pub fn acquire(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| output_error("creating", dir, e))?;
        let path = dir.join(".lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(format!("{}\n", std::process::id()).as_bytes())
                        .map_err(|e| output_error("writing", &path, e))?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let pid: Option<u32> = owner.trim().parse().ok();
                    let alive = match pid {
                        Some(p) if cfg!(target_os = "linux") => Path::new(&format!("/proc/{p}")).exists(),
                        // Unknown owner, or no way to tell: assume it runs.
                        _ => true,
                    };
                    if alive {
                        return Err(Error::InvalidArgument(format!(
                            "{} is in use by process {} ({}); give this run another directory, \
                             or remove the lock file if that process is gone",
                            dir.display(),
                            pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
                            path.display()
                        )));
                    }
                    // A stale lock: its process is gone.
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(output_error("creating", &path, e)),
            }
        }
        Err(Error::InvalidArgument(format!(
            "could not lock {}",
            dir.display()
        )))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory of this test's own (removed when dropped).
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!("stdl-io-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn partials(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().to_string_lossy().ends_with(".partial"))
            .count()
    }

    #[test]
    fn a_file_replaces_its_target_only_when_committed() {
        let dir = TempDir::new("atomic");
        let p = dir.path().join("out.json");
        std::fs::write(&p, b"good").unwrap();
        // Dropped before commit (a failure, an early return): the target is untouched and
        // the temporary file is gone.
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"half").unwrap();
        assert_eq!(partials(dir.path()), 1);
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"good");
        assert_eq!(partials(dir.path()), 0);
        // Committed: replaced.
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(partials(dir.path()), 0);
        // Two writers of one target never share a temporary name.
        assert_ne!(partial_path(&p), partial_path(&p));
        // An error names the operation and the target.
        let e = AtomicFile::create(dir.path().join("missing/out.json")).unwrap_err();
        let m = e.to_string();
        assert!(
            m.starts_with("creating ") && m.contains("missing/out.json"),
            "{m}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn links_devices_and_pipes_stay_what_they_are() {
        use std::os::unix::fs::FileTypeExt;
        let dir = TempDir::new("special");
        // A symbolic link keeps pointing where it did; the file it points to is replaced.
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        std::fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        assert_eq!(partials(dir.path()), 0);
        // The null device is written in place, and stays a device (it was once replaced by
        // a regular file when a test, run as root, sent predictions to /dev/null).
        let device = || {
            std::fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        };
        if device() {
            write_atomic("/dev/null", b"discarded").unwrap();
            assert!(device(), "/dev/null was replaced by a regular file");
        }
        // A named pipe: written in place, read at the other end.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let reader = {
                let fifo = fifo.clone();
                std::thread::spawn(move || std::fs::read(fifo).unwrap())
            };
            write_atomic(&fifo, b"through the pipe").unwrap();
            assert_eq!(reader.join().unwrap(), b"through the pipe");
            assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        }
    }

    #[test]
    fn a_directory_is_one_holders_at_a_time() {
        let dir = TempDir::new("lock");
        let lock = DirLock::acquire(dir.path()).unwrap();
        let e = DirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(&std::process::id().to_string()) && e.contains("in use"),
            "{e}"
        );
        drop(lock);
        assert!(!dir.path().join(".lock").exists());
        let again = DirLock::acquire(dir.path()).unwrap();
        drop(again);
        // A lock left by a process that no longer runs is taken over (Linux: /proc).
        if cfg!(target_os = "linux") {
            std::fs::write(dir.path().join(".lock"), "4294967\n").unwrap();
            let taken = DirLock::acquire(dir.path()).unwrap();
            let owner = std::fs::read_to_string(dir.path().join(".lock")).unwrap();
            assert_eq!(owner.trim(), std::process::id().to_string());
            drop(taken);
        }
    }
}
