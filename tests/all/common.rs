//! Shared helpers: locating `../shared/data`, and reading through every path.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

use stdl::io::{Event, EventReader, Format, ReadOptions, ReadStats};

/// The `stdl` binary under test.
pub fn stdl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stdl"))
}

/// `stdl stream --source SOURCE --preset PRESET --predictions /dev/null`: a stream whose
/// predictions are not looked at; the caller adds the rest.
pub fn stream(source: impl AsRef<std::ffi::OsStr>, preset: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = stdl();
    c.arg("stream")
        .arg("--source")
        .arg(source)
        .arg("--preset")
        .arg(preset)
        .args(["--predictions", "/dev/null"]);
    c
}

/// `stdl train --dataset nmnist --preset PRESET --quiet --root ROOT --out OUT`; the caller adds
/// the rest.
pub fn train_nmnist(root: &std::path::Path, preset: &str, out: &std::path::Path) -> Command {
    let mut c = stdl();
    c.args(["train", "--dataset", "nmnist", "--preset", preset, "--quiet"])
        .arg("--root")
        .arg(root)
        .arg("--out")
        .arg(out);
    c
}

/// `../shared/data`, or `None` (with a printed reason) when it is absent outside CI.
/// Under `CI=true` a missing directory fails the test.
pub fn shared_data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {} does not exist", dir.display());
    }
    eprintln!(
        "skipped: {} not found (tests on real recordings need it)",
        dir.display()
    );
    None
}

/// Shorthand: `let Some(d) = data!() else { return };`
#[macro_export]
macro_rules! data {
    () => {
        $crate::common::shared_data()
    };
}

/// One JSON value per line (predictions, metrics), from a file's text or a program's output.
pub fn json_lines(text: impl AsRef<[u8]>) -> Vec<serde_json::Value> {
    std::str::from_utf8(text.as_ref())
        .expect("UTF-8 JSON lines")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The JSON object on the last line of a program's standard error (`stdl stream`'s summary).
pub fn last_json_line(stderr: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stderr);
    let last = text.lines().last().expect("a line on stderr");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{last:?}: {e}"))
}

/// A reader that returns at most `n` bytes per call.
pub struct Dribble<R> {
    pub inner: R,
    pub n: usize,
}

impl<R: Read> Read for Dribble<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = buf.len().min(self.n);
        self.inner.read(&mut buf[..k])
    }
}

/// Decodes all events (and the final error, if any) from a reader.
pub fn drain(r: EventReader<'_>) -> (Vec<Event>, Option<stdl::io::Error>, ReadStats) {
    let mut r = r;
    let mut ev = Vec::new();
    let mut err = None;
    for b in r.by_ref() {
        match b {
            Ok(b) => ev.extend_from_slice(&b.events),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let stats = r.stats().clone();
    (ev, err, stats)
}

/// Decodes `bytes` with a given chunk size through `from_slice`.
pub fn decode_chunked(
    bytes: &[u8],
    format: Option<Format>,
    chunk: usize,
) -> (Vec<Event>, Option<stdl::io::Error>) {
    let opts = ReadOptions {
        chunk_bytes: chunk,
        ..ReadOptions::default()
    };
    match EventReader::from_slice(bytes, format, &opts) {
        Ok(r) => {
            let (e, err, _) = drain(r);
            (e, err)
        }
        Err(e) => (Vec::new(), Some(e)),
    }
}
