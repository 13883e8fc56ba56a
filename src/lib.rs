//! `stdl`: online learning from event cameras with Spatio-Temporal Decoupled Learning.
//!
//! This crate holds the runtime and the command-line program; events and frames come from
//! [`stdl_io`] (re-exported as [`io`]), the spiking-network engine from [`stdl_models`].
#![warn(missing_docs)]

pub use stdl_io as io;
pub use stdl_models as models;

pub mod bptt;
pub mod checkpoint;
pub mod config;
pub mod continual;
pub mod data;
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
