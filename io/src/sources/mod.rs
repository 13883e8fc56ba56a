//! Event sources beyond files: synthetic scenes for demos, tests and benchmarks.

pub mod synthetic;

pub use synthetic::{SyntheticConfig, SyntheticScene};
