//! `stdl-models`: spiking networks with explicit forward and backward passes over `f32`
//! buffers, matrix products through a GEMM crate, and no dependency on the event I/O crate.
//!
//! - [`layers`]: convolution (im2col + GEMM, scaled weight standardisation), linear,
//!   average pooling, batch normalisation, and LIF neurons with surrogate gradients.
//! - [`network`]: presets (TOML) → units → subnetworks at the cuts, auxiliary networks.
//! - [`loss`], [`optim`], [`checkpoint`].
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]

pub mod assist;
pub mod checkpoint;
pub mod gemm;
pub mod layers;
pub mod loss;
pub mod math;
pub mod network;
pub mod optim;
pub mod pool;
pub mod preset;
pub mod profile;
pub mod sequential;
pub mod tensor;
pub mod workspace;

pub use layers::{Layer, LifParams, Param, Surrogate, TimeMode};
pub use network::{Sequential, Unit};
pub use preset::Preset;
pub use tensor::{Dims, Tensor};

/// Errors of `stdl-models`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A preset that cannot be parsed or built.
    #[error("preset {name}: {message}")]
    Preset {
        /// Preset name or path.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint that cannot be read or does not match the network.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// I/O.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The error (in the message, so not also a `source()`).
        error: std::io::Error,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// PCG-XSH-RR 32: a small, seeded generator for reproducible initialisation and shuffling.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    const MUL: u64 = 6364136223846793005;
    const INC: u64 = 1442695040888963407;

    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        let mut r = Self { state: 0 };
        r.next_u32();
        r.state = r.state.wrapping_add(seed);
        r.next_u32();
        r
    }

    /// 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old.wrapping_mul(Self::MUL).wrapping_add(Self::INC);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        xorshifted.rotate_right((old >> 59) as u32)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u32() as u64 * n as u64) >> 32) as usize
    }

    /// Uniform in `0..n` (n > 0) for counts beyond 32 bits (Lemire's multiply-shift on 64
    /// random bits).
    pub fn below_u64(&mut self, n: u64) -> u64 {
        let r = ((self.next_u32() as u64) << 32) | self.next_u32() as u64;
        ((r as u128 * n as u128) >> 64) as u64
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}
