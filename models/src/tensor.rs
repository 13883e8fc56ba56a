//! A batch of `C × H × W` `f32` values (features are `C × 1 × 1`).

use serde::{Deserialize, Serialize};

/// Per-sample shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dims {
    /// Channels (or features).
    pub c: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
}

impl Dims {
    /// A `c × h × w` shape.
    pub const fn new(c: usize, h: usize, w: usize) -> Self {
        Self { c, h, w }
    }
    /// A flat feature vector of `n`.
    pub const fn flat(n: usize) -> Self {
        Self { c: n, h: 1, w: 1 }
    }
    /// Values per sample.
    pub const fn len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Whether a sample holds no value.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the shape is spatial (more than one pixel).
    pub const fn is_spatial(&self) -> bool {
        self.h * self.w > 1
    }
}

impl std::fmt::Display for Dims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_spatial() {
            write!(f, "{}x{}x{}", self.c, self.h, self.w)
        } else {
            write!(f, "{}", self.c)
        }
    }
}

/// `b` samples of shape `dims`, sample-major. Its buffer comes from and returns to
/// [`crate::pool`].
#[derive(Debug, PartialEq)]
pub struct Tensor {
    /// Batch size.
    pub b: usize,
    /// Per-sample shape.
    pub dims: Dims,
    /// `b × dims.len()` values.
    pub data: Vec<f32>,
}

impl Tensor {
    /// Zeros.
    pub fn zeros(b: usize, dims: Dims) -> Self {
        Self {
            b,
            dims,
            data: crate::pool::zeros(b * dims.len()),
        }
    }
    /// Unspecified contents, to be overwritten entirely by the caller.
    pub fn uninit(b: usize, dims: Dims) -> Self {
        Self {
            b,
            dims,
            data: crate::pool::take(b * dims.len()),
        }
    }
    /// The same values with another per-sample shape of equal size (no copy).
    ///
    /// # Panics
    /// When `dims` holds a different number of values.
    pub fn reshaped(mut self, dims: Dims) -> Self {
        assert_eq!(dims.len(), self.dims.len(), "reshape must keep the size");
        Self {
            b: self.b,
            dims,
            data: std::mem::take(&mut self.data),
        }
    }
    /// Takes the buffer out (it no longer returns to the pool on drop).
    pub fn into_data(mut self) -> Vec<f32> {
        std::mem::take(&mut self.data)
    }
    /// Wraps data (panics if the length does not match).
    ///
    /// # Panics
    /// When `data` is not `b × dims` long.
    pub fn from_vec(b: usize, dims: Dims, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), b * dims.len(), "tensor data length");
        Self { b, dims, data }
    }
    /// One sample's values.
    pub fn sample(&self, i: usize) -> &[f32] {
        let n = self.dims.len();
        &self.data[i * n..(i + 1) * n]
    }
    /// One sample's values, mutable.
    pub fn sample_mut(&mut self, i: usize) -> &mut [f32] {
        let n = self.dims.len();
        &mut self.data[i * n..(i + 1) * n]
    }
    /// Fraction of non-zero values.
    pub fn density(&self) -> f32 {
        if self.data.is_empty() {
            return 0.0;
        }
        self.data.iter().filter(|&&v| v != 0.0).count() as f32 / self.data.len() as f32
    }
    /// Bytes of payload.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }
}

impl Clone for Tensor {
    fn clone(&self) -> Self {
        let mut data = crate::pool::take(self.data.len());
        data.copy_from_slice(&self.data);
        Self {
            b: self.b,
            dims: self.dims,
            data,
        }
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        crate::pool::give(std::mem::take(&mut self.data));
    }
}
