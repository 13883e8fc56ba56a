//! `stdl`: online learning from event cameras with Spatio-Temporal Decoupled Learning.
pub use stdl_io as io;
