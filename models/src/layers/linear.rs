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
//!
//! At batch 1 the weights' gradient is the outer product of the output gradient and the
//! input, and a surrogate with compact support leaves most of its rows zero. With
//! [`Linear::defer_grad`] (STDL's stages, which update after every backward pass), backward
//! keeps the two vectors instead of writing it, and [`Linear::update`] computes each value
//! of it inside Adam's pass: the gradient is never zeroed, written or read.

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
    /// The weights' gradient of a batch of 1 waits for the optimiser step as the input and
    /// the output gradient it is the product of ([`Self::update`] computes it in Adam's
    /// pass); [`Self::params_mut`] writes it for whoever needs it. Off by default: until
    /// then, the gradient read through [`LayerOps::params`] lacks that pass.
    pub defer_grad: bool,
    /// The deferred pass: its input and output gradient.
    pending: Option<(Tensor, Tensor)>,
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
            defer_grad: false,
            pending: None,
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
        self.bias.ensure_grad();
        let x = self.caches.pop().expect("linear backward without forward");
        let b = x.b;
        if self.defer_grad && b == 1 && self.pending.is_none() && self.weight.grad.is_empty() {
            let mut dx = Tensor::zeros(1, x.dims);
            for (g, d) in self.bias.grad.iter_mut().zip(&dy.data) {
                *g += d;
            }
            rows_input_grad(&self.weight.value, &dy.data, &mut dx.data);
            self.pending = Some((x, dy));
            return dx;
        }
        self.write_pending();
        self.weight.ensure_grad();
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
                rows_weight_grad(&mut self.weight.grad, xs, dys);
                rows_input_grad(&self.weight.value, dys, dxs);
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

impl Linear {
    /// Adds a deferred pass's gradient ([`Self::defer_grad`]) to the weights' gradient.
    fn write_pending(&mut self) {
        if let Some((x, dy)) = self.pending.take() {
            self.weight.ensure_grad();
            rows_weight_grad(&mut self.weight.grad, &x.data, &dy.data);
        }
    }

    /// Trainable parameters (weight, bias), a deferred gradient written first.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.write_pending();
        vec![&mut self.weight, &mut self.bias]
    }

    /// Frees the gradients, a deferred one too, unused.
    pub fn release_grads(&mut self) {
        self.pending = None;
        self.weight.release_grad();
        self.bias.release_grad();
    }

    /// One optimiser step's update of the weights and the bias, each with the next of
    /// `states`; whether every value is still finite. A deferred gradient
    /// ([`Self::defer_grad`]) is computed value by value inside Adam's pass, with the same
    /// numbers as [`Self::params_mut`] and [`crate::optim::Update::apply`] give.
    ///
    /// # Panics
    /// When `states` runs out before the parameters do.
    pub fn update<'a>(
        &mut self,
        update: &crate::optim::Update,
        states: &mut impl Iterator<Item = (&'a mut [f32], &'a mut [f32])>,
    ) -> bool {
        let fused = update.is_adam() && self.pending.is_some() && self.weight.grad.is_empty();
        let Some((x, dy)) = fused.then(|| self.pending.take()).flatten() else {
            return super::update_params(self.params_mut(), update, states);
        };
        let (m, v) = states.next().expect("optimiser state of the weights");
        let n = self.inputs;
        // Rows are independent: one piece of them per thread that can take part.
        let (parts, per) = crate::optim::row_pieces(self.weight.value.len(), self.outputs);
        let pieces = self
            .weight
            .value
            .chunks_mut(per * n)
            .zip(dy.data.chunks(per))
            .zip(m.chunks_mut(per * n).zip(v.chunks_mut(per * n)));
        let finite = crate::assist::all_of(parts, pieces, |((w, dys), (m, v))| {
            let mut finite = true;
            adam_outer(w, &x.data, dys, m, v, update, &mut finite);
            finite
        });
        finite & super::update_params(vec![&mut self.bias], update, states)
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
    /// One sample's input gradient over its non-zero output gradients: `dxs += dys[o] ·
    /// w[o, :]`, in the order of `o`.
    fn rows_input_grad(w: &[f32], dys: &[f32], dxs: &mut [f32]) {
        let n = dxs.len();
        for (o, &d) in dys.iter().enumerate() {
            if d != 0.0 {
                for (g, &v) in dxs.iter_mut().zip(&w[o * n..][..n]) {
                    *g += d * v;
                }
            }
        }
    }
}

crate::math::widest! {
    /// One sample's weight gradient over its non-zero output gradients: `dw[o, :] += dys[o]
    /// · xs` (a deferred pass's too: [`Linear::defer_grad`]).
    fn rows_weight_grad(dw: &mut [f32], xs: &[f32], dys: &[f32]) {
        let n = xs.len();
        for (o, &d) in dys.iter().enumerate() {
            if d != 0.0 {
                for (g, &v) in dw[o * n..][..n].iter_mut().zip(xs) {
                    *g += d * v;
                }
            }
        }
    }
}

crate::math::widest! {
    /// Adam's update ([`crate::optim::Update::adam`]) of the rows `w` (moments `m`, `v`)
    /// whose gradient is `dys[o] · xs`, each value computed as the backward pass would add
    /// it to a zeroed gradient (`0 + d · x`; a row with `d = 0` has gradient 0).
    fn adam_outer(w: &mut [f32], xs: &[f32], dys: &[f32], m: &mut [f32], v: &mut [f32], update: &crate::optim::Update, finite: &mut bool) {
        let n = xs.len();
        let mut ok = crate::math::Finite::default();
        let rows = w.chunks_exact_mut(n).zip(m.chunks_exact_mut(n).zip(v.chunks_exact_mut(n)));
        for ((w, (m, v)), &d) in rows.zip(dys) {
            if d == 0.0 {
                for ((w, m), v) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()) {
                    update.adam(w, 0.0, m, v);
                    ok.see(*w);
                }
            } else {
                for (((w, m), v), &x) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(xs) {
                    update.adam(w, 0.0 + d * x, m, v);
                    ok.see(*w);
                }
            }
        }
        *finite &= ok.all();
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
        Linear::params_mut(self)
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
