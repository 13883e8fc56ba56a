//! The streaming runtime: subnetworks as pipeline stages on their own threads.

#[cfg_attr(not(feature = "camera"), path = "no_camera.rs")]
pub mod camera;
pub mod interrupt;
pub mod pipeline;
pub mod ring;
pub mod stream;

pub use pipeline::{Pipeline, StageOutput};
