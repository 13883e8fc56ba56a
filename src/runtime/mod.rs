//! The streaming runtime: subnetworks as pipeline stages on their own threads.

pub mod interrupt;
pub mod pipeline;
pub mod stream;

pub use pipeline::{Pipeline, StageOutput};
