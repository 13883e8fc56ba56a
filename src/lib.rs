//! `stdl`: online learning from event cameras with Spatio-Temporal Decoupled Learning.
//!
//! This crate holds the learning core, the runtime and the command-line program; events and
//! frames come from [`stdl_io`] (re-exported as [`io`]), the spiking-network engine from
//! [`stdl_models`]. Its modules in layers, each importing only those above it in this list:
//!
//! - foundations: [`error`], [`heap`], [`interrupt`], [`store`];
//! - the learners: [`stdl`] (plan, stages, pipeline, strategies) and [`bptt`];
//! - the learning core: [`model`] and [`config`], then [`checkpoint`] and [`data`];
//! - the loops: [`train`] and [`continual`] (they return results and draw nothing);
//! - the streaming runtime: [`runtime`] (sources → transforms → sinks);
//! - pictures and experiments: [`picture`], [`render`], [`scene`], and [`viz`] (plots,
//!   imported only by the command line).
#![warn(missing_docs)]

pub use stdl_io as io;
pub use stdl_models as models;

pub mod bptt;
pub mod checkpoint;
pub mod config;
pub mod continual;
pub mod data;
pub mod error;
pub mod heap;
pub mod interrupt;
pub mod model;
pub mod picture;
pub mod render;
pub mod runtime;
pub mod scene;
pub mod stdl;
pub mod store;
pub mod train;
pub mod viz;

pub use error::{Error, Result};
