//! `stdl-models`: spiking-network layers with explicit forward and backward passes.
//!
//! The engine arrives with the STDL training issue; this crate is the workspace slot for it.
