//! The streaming runtime: subnetworks as pipeline stages on their own threads.

pub mod pipeline;

pub use pipeline::{Pipeline, StageOutput};
