//! Fully connected layer: `y = x Wᵀ + b`, `W` stored `outputs × inputs`.
//!
//! Batches of up to [`ROWS_MAX_BATCH`] samples (a stream learns at batch 1) skip the GEMM,
//! whose packing copies the whole weight matrix for one row of input: the forward pass takes
//! one dot product per output, and backward visits only the outputs whose gradient is
//! non-zero (a surrogate with compact support zeroes most), adding their weight rows to the
//! input gradient and the input to their gradient rows. Larger batches use the GEMM, and so
//! does backward above batch 1 when more than a quarter of the output gradients are
//! non-zero; at batch 1 the rows read each weight once either way, and the GEMM would first
//! copy the whole matrix into its packing buffer for a product with one row (the `nmnist`
//! readout, 4096 → 10 with dense gradients: `stdl bench train --batch 1 --profile`).

use super::{uniform, Param};
use super::{LayerMemory, LayerOps};
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
    ///
    /// # Panics
    /// When `x` is not of the layer's input size.
    pub fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        assert_eq!(x.dims.len(), self.inputs, "linear input size");
        let b = x.b;
        let mut y = Tensor::zeros(b, Dims::flat(self.outputs));
        if b <= ROWS_MAX_BATCH {
            for (ys, xs) in y
                .data
                .chunks_exact_mut(self.outputs)
                .zip(x.data.chunks_exact(self.inputs))
            {
                dots(&self.weight.value, xs, &self.bias.value, ys);
            }
            if train {
                self.caches.push(x);
            }
            return y;
        }
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
    ///
    /// # Panics
    /// Without a forward step to go back through.
    pub fn backward(&mut self, dy: Tensor) -> Tensor {
        self.weight.ensure_grad();
        self.bias.ensure_grad();
        let x = self.caches.pop().expect("linear backward without forward");
        let b = x.b;
        if b == 1
            || (b <= ROWS_MAX_BATCH && 4 * dy.data.iter().filter(|&&v| v != 0.0).count() <= dy.data.len())
        {
            let mut dx = Tensor::zeros(b, x.dims);
            for ((dys, xs), dxs) in dy
                .data
                .chunks_exact(self.outputs)
                .zip(x.data.chunks_exact(self.inputs))
                .zip(dx.data.chunks_exact_mut(self.inputs))
            {
                for (g, d) in self.bias.grad.iter_mut().zip(dys) {
                    *g += d;
                }
                rows_backward(&self.weight.value, &mut self.weight.grad, xs, dys, dxs);
            }
            return dx;
        }
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

/// Largest batch that takes the per-sample path (see the module's documentation).
pub const ROWS_MAX_BATCH: usize = 4;

crate::math::widest! {
    /// `ys[o] = bias[o] + w[o, :] · xs` for every output `o` (`w` is `outputs × inputs`).
    fn dots(w: &[f32], xs: &[f32], bias: &[f32], ys: &mut [f32]) {
        for ((y, row), &b) in ys.iter_mut().zip(w.chunks_exact(xs.len())).zip(bias) {
            *y = b + crate::math::sum_of2(row, xs, |a, v| a * v);
        }
    }
}

crate::math::widest! {
    /// One sample's backward over its non-zero output gradients `dys[o]`: `dw[o, :] += dys[o] · xs`
    /// and `dxs += dys[o] · w[o, :]`.
    fn rows_backward(w: &[f32], dw: &mut [f32], xs: &[f32], dys: &[f32], dxs: &mut [f32]) {
        let n = xs.len();
        for (o, &d) in dys.iter().enumerate() {
            if d == 0.0 {
                continue;
            }
            for (g, &v) in dw[o * n..][..n].iter_mut().zip(xs) {
                *g += d * v;
            }
            for (g, &v) in dxs.iter_mut().zip(&w[o * n..][..n]) {
                *g += d * v;
            }
        }
    }
}

impl LayerOps for Linear {
    fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        Linear::forward(self, x, train)
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        Linear::backward(self, dy)
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn reset(&mut self) {
        self.caches.clear();
    }

    fn in_dims(&self) -> Dims {
        Dims::flat(self.inputs)
    }

    fn out_dims(&self) -> Dims {
        Dims::flat(self.outputs)
    }

    fn describe(&self) -> String {
        format!("linear {}→{}", self.inputs, self.outputs)
    }

    fn memory(&self, b: usize, m: &mut LayerMemory) {
        m.kept_per_step = super::pooled_bytes(b * self.inputs);
    }

    fn kept(&self) -> usize {
        self.caches.len()
    }
}
