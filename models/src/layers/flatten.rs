//! Flatten: `C × H × W` to `C·H·W` features, without moving data.

use super::LayerOps;
use crate::tensor::{Dims, Tensor};

/// Reshapes its input of shape `dims` to one row of features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten {
    /// The input shape.
    pub dims: Dims,
}

impl Flatten {
    /// Flattens inputs of shape `dims`.
    pub fn new(dims: Dims) -> Self {
        Self { dims }
    }
}

impl LayerOps for Flatten {
    fn forward(&mut self, x: Tensor, _train: bool) -> Tensor {
        x.reshaped(Dims::flat(self.dims.len()))
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        dy.reshaped(self.dims)
    }

    fn in_dims(&self) -> Dims {
        self.dims
    }

    fn out_dims(&self) -> Dims {
        Dims::flat(self.dims.len())
    }

    fn describe(&self) -> String {
        "flatten".into()
    }
}
