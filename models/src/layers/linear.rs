//! Fully connected layer: `y = x Wᵀ + b`, `W` stored `outputs × inputs`.

use super::{uniform, Param};
use crate::gemm::matmul;
use crate::tensor::{Dims, Tensor};

/// Fully connected layer.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// `outputs × inputs`.
    pub weight: Param,
    /// `outputs`.
    pub bias: Param,
    pub(crate) caches: Vec<Tensor>,
}

impl Linear {
    /// PyTorch's default initialisation: uniform `±1/√inputs` for weights and bias.
    pub fn new(inputs: usize, outputs: usize, rng: &mut crate::Rng) -> Self {
        let bound = 1.0 / (inputs as f32).sqrt();
        Self {
            inputs,
            outputs,
            weight: Param::new("weight", uniform(inputs * outputs, bound, rng)),
            bias: Param::new("bias", uniform(outputs, bound, rng)),
            caches: Vec::new(),
        }
    }

    /// Forward pass.
    pub fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        assert_eq!(x.dims.len(), self.inputs, "linear input size");
        let b = x.b;
        let mut y = Tensor::zeros(b, Dims::flat(self.outputs));
        for row in y.data.chunks_exact_mut(self.outputs) {
            row.copy_from_slice(&self.bias.value);
        }
        matmul(
            b,
            self.inputs,
            self.outputs,
            1.0,
            &x.data,
            false,
            &self.weight.value,
            true,
            1.0,
            &mut y.data,
        );
        if train {
            self.caches.push(x);
        }
        y
    }

    /// Backward pass.
    pub fn backward(&mut self, dy: Tensor) -> Tensor {
        self.weight.ensure_grad();
        self.bias.ensure_grad();
        let x = self.caches.pop().expect("linear backward without forward");
        let b = x.b;
        // dW += dyᵀ x ; db += Σ dy ; dx = dy W
        matmul(
            self.outputs,
            b,
            self.inputs,
            1.0,
            &dy.data,
            true,
            &x.data,
            false,
            1.0,
            &mut self.weight.grad,
        );
        for row in dy.data.chunks_exact(self.outputs) {
            for (g, d) in self.bias.grad.iter_mut().zip(row) {
                *g += d;
            }
        }
        let mut dx = Tensor::zeros(b, x.dims);
        matmul(
            b,
            self.outputs,
            self.inputs,
            1.0,
            &dy.data,
            false,
            &self.weight.value,
            false,
            0.0,
            &mut dx.data,
        );
        dx
    }
}
