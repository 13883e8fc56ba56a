//! `stdl`: online learning from event cameras with Spatio-Temporal Decoupled Learning.
//!
//! This crate holds the runtime and the command-line program; events and frames come from
//! [`stdl_io`] (re-exported as [`io`]), the spiking-network engine from [`stdl_models`].
#![warn(missing_docs)]

pub use stdl_io as io;
pub use stdl_models as models;

pub mod bptt;
pub mod continual;
pub mod data;
pub mod heap;
pub mod render;
pub mod runtime;
pub mod stdl;
pub mod store;
pub mod train;
pub mod viz;
