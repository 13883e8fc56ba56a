//! The error type of `stdl-io`.

use std::path::PathBuf;

use crate::format::Format;

/// Result alias used throughout `stdl-io`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in which input a decoding problem was found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// The file, if the input is a file.
    pub path: Option<PathBuf>,
    /// Byte offset from the start of the input.
    pub offset: u64,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{} at byte {}", p.display(), self.offset),
            None => write!(f, "<stream> at byte {}", self.offset),
        }
    }
}

/// Every failure `stdl-io` reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error from the operating system.
    #[error("{}: {error}", path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<stream>".into()))]
    Io {
        /// The file involved, if any.
        path: Option<PathBuf>,
        /// The underlying error (in the message, so not also a `source()`: printed chains
        /// would repeat it).
        error: std::io::Error,
    },
    /// The bytes do not follow the format's layout.
    #[error("{format}: {message} ({location})")]
    Corrupt {
        /// The format being decoded.
        format: Format,
        /// Where.
        location: Location,
        /// What is wrong.
        message: String,
    },
    /// The input ends inside a header or a record. Every complete event before it was
    /// already yielded.
    #[error("{format}: input ends mid-{what} ({location}); {}{missing} more byte(s) were expected, every complete event before it was read", if *at_least { "at least " } else { "" })]
    Truncated {
        /// The format being decoded.
        format: Format,
        /// Where the incomplete part starts.
        location: Location,
        /// What was cut short ("record", "packet", "header").
        what: &'static str,
        /// How many bytes were missing (exactly, unless `at_least`).
        missing: u64,
        /// Only a lower bound is known (the input ended before the length of what it cut).
        at_least: bool,
    },
    /// The format could not be recognised.
    #[error("{}: unknown event format ({reason}); pass --format to choose one", path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "<stream>".into()))]
    UnknownFormat {
        /// The file involved, if any.
        path: Option<PathBuf>,
        /// Why detection failed.
        reason: String,
    },
    /// The input is well-formed but uses a feature this crate does not read.
    #[error("{format}: unsupported: {message} ({location})")]
    Unsupported {
        /// The format being decoded.
        format: Format,
        /// Where.
        location: Location,
        /// What is not supported.
        message: String,
    },
    /// A dataset directory does not have the expected layout.
    #[error("dataset {dataset} at {}: {message}", root.display())]
    Dataset {
        /// The dataset's name.
        dataset: &'static str,
        /// The directory.
        root: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Writing an output file failed (the earlier file, if any, is unchanged).
    #[error("{op} {}: {error}", path.display())]
    Output {
        /// What was being done: "creating", "writing", "renaming over".
        op: &'static str,
        /// The file the program was writing (its target name, not the temporary one).
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// Invalid parameters (frame settings, writer arguments, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    pub(crate) fn io(path: Option<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path, error: source }
    }
}
