//! The `stdl` library's error ([`Error`]), its [`Result`], and what builds one: [`Context`]
//! (what was being done, as anyhow's `context`), and the crate-internal `bail!` and `ensure!`.
//! `anyhow` is the binary's alone (`src/cli/`): it takes an [`Error`] with `?`.
//!
//! The message of an error carries its whole chain (`"loading the weights of checkpoint
//! out/ck: checkpoint out/ck/model.safetensors: ..."`), so printing it once says everything;
//! the variant says what kind of failure it was.

use std::fmt::Display;

/// Why a `stdl` library call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading events, a dataset or a file (format, byte offset and path in the message).
    #[error(transparent)]
    Io(#[from] stdl_io::Error),
    /// Building a network from a preset, or loading its weights.
    #[error(transparent)]
    Model(#[from] stdl_models::Error),
    /// A file, socket or thread operation of the system.
    #[error("{0}")]
    System(#[from] std::io::Error),
    /// JSON that does not parse or cannot be written.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// A setting, an input or a request out of range, or a file of the wrong kind.
    #[error("{0}")]
    Invalid(String),
    /// Ctrl-C or SIGTERM asked to stop (what was kept is in the message).
    #[error("{0}")]
    Interrupted(String),
    /// Learning diverged: a loss or weight that is not finite.
    #[error("{0}")]
    Diverged(String),
    /// A picture, animation or plot that could not be drawn or encoded.
    #[error("{0}")]
    Picture(String),
    /// Memory for a buffer of a requested size could not be reserved.
    #[error("{0}")]
    OutOfMemory(#[from] std::collections::TryReserveError),
    /// What was being done when `cause` happened.
    #[error("{context}: {cause}")]
    Context {
        /// What was being done.
        context: String,
        /// What went wrong (in the message, so not also a `source()`).
        cause: Box<Error>,
    },
}

impl Error {
    /// An [`Error::Invalid`] with `message`.
    pub fn msg(message: impl Display) -> Self {
        Error::Invalid(message.to_string())
    }

    /// The innermost error, below every [`Error::Context`].
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { cause, .. } => cause.root(),
            e => e,
        }
    }
}

/// Conversions into one variant, by what failed.
macro_rules! from_display {
    ($variant:ident: $($t:ty),*) => {
        $(impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::$variant(e.to_string())
            }
        })*
    };
}
from_display!(Invalid: std::num::ParseIntError, std::num::ParseFloatError, toml::de::Error, toml::ser::Error);
from_display!(Picture: png::EncodingError, gif::EncodingError);

/// The result of a `stdl` library call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Says what was being done when an error happened (as anyhow's `Context`).
pub trait Context<T> {
    /// The error, or an absent value, with `context` before it.
    ///
    /// # Errors
    /// The error of `self`, wrapped.
    fn context(self, context: impl Display) -> Result<T>;

    /// As [`Context::context`], the context made only on failure.
    ///
    /// # Errors
    /// The error of `self`, wrapped.
    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Display) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context.to_string(),
            cause: Box::new(e.into()),
        })
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context().to_string(),
            cause: Box::new(e.into()),
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Display) -> Result<T> {
        self.ok_or_else(|| Error::Invalid(context.to_string()))
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| Error::Invalid(context().to_string()))
    }
}

/// Returns an [`Error::Invalid`] with a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::Invalid(format!($($arg)*)))
    };
}
pub(crate) use bail;

/// Returns an [`Error::Invalid`] with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::error::bail!($($arg)*);
        }
    };
}
pub(crate) use ensure;

#[cfg(test)]
mod tests {
    use super::*;

    fn fails() -> Result<()> {
        ensure!(1 + 1 == 3, "arithmetic is {}", "fine");
        Ok(())
    }

    #[test]
    fn context_carries_the_chain_in_the_message() {
        let e = fails().context("checking").context("starting").unwrap_err();
        assert_eq!(e.to_string(), "starting: checking: arithmetic is fine");
        assert!(matches!(e.root(), Error::Invalid(_)));
        assert!(
            std::error::Error::source(&e).is_none(),
            "the chain is in the message only"
        );
        let missing: Option<u8> = None;
        assert_eq!(missing.context("no value").unwrap_err().to_string(), "no value");
    }

    #[test]
    fn the_binary_takes_it_with_question_mark() {
        let run = || -> anyhow::Result<()> { Ok(fails()?) };
        assert_eq!(format!("{:#}", run().unwrap_err()), "arithmetic is fine");
    }
}
