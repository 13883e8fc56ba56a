//! Batch normalisation over `B × H × W` per channel (optional; the default normalisation is
//! scaled weight standardisation, which works at batch size 1).

use super::Param;
use super::{LayerMemory, LayerOps};
use crate::tensor::{Dims, Tensor};

const EPS: f32 = 1e-5;
const MOMENTUM: f32 = 0.1;

/// Batch normalisation with learnable scale and shift and running statistics for inference.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// Per-sample shape.
    pub dims: Dims,
    /// Scale, per channel.
    pub gamma: Param,
    /// Shift, per channel.
    pub beta: Param,
    /// Running mean (inference).
    pub running_mean: Vec<f32>,
    /// Running variance (inference).
    pub running_var: Vec<f32>,
    pub(crate) caches: Vec<(Tensor, Vec<f32>)>,
}

impl BatchNorm {
    /// Batch normalisation of `dims.c` channels.
    pub fn new(dims: Dims) -> Self {
        Self {
            dims,
            gamma: Param::new("gamma", vec![1.0; dims.c]),
            beta: Param::new("beta", vec![0.0; dims.c]),
            running_mean: vec![0.0; dims.c],
            running_var: vec![1.0; dims.c],
            caches: Vec::new(),
        }
    }

    /// Forward: batch statistics in training, running statistics otherwise.
    #[allow(clippy::needless_range_loop)] // one channel index into five per-channel arrays
    pub fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        let (c, hw) = (self.dims.c, self.dims.h * self.dims.w);
        let n = (x.b * hw) as f32;
        let mut y = Tensor::zeros(x.b, x.dims);
        let mut xhat = if train {
            Tensor::zeros(x.b, x.dims)
        } else {
            Tensor::zeros(0, x.dims)
        };
        let mut inv_std = vec![0.0; c];
        for ch in 0..c {
            let (mean, var) = if train {
                let mut s = 0.0f64;
                let mut ss = 0.0f64;
                for b in 0..x.b {
                    for &v in &x.sample(b)[ch * hw..(ch + 1) * hw] {
                        s += v as f64;
                        ss += (v as f64) * (v as f64);
                    }
                }
                let mean = (s / n as f64) as f32;
                let var = ((ss / n as f64) - (mean as f64) * (mean as f64)).max(0.0) as f32;
                self.running_mean[ch] = (1.0 - MOMENTUM) * self.running_mean[ch] + MOMENTUM * mean;
                let unbiased = if n > 1.0 { var * n / (n - 1.0) } else { var };
                self.running_var[ch] = (1.0 - MOMENTUM) * self.running_var[ch] + MOMENTUM * unbiased;
                (mean, var)
            } else {
                (self.running_mean[ch], self.running_var[ch])
            };
            let is = 1.0 / (var + EPS).sqrt();
            inv_std[ch] = is;
            let (g, bt) = (self.gamma.value[ch], self.beta.value[ch]);
            for b in 0..x.b {
                let off = b * c * hw + ch * hw;
                for j in off..off + hw {
                    let h = (x.data[j] - mean) * is;
                    if train {
                        xhat.data[j] = h;
                    }
                    y.data[j] = g * h + bt;
                }
            }
        }
        if train {
            self.caches.push((xhat, inv_std));
        }
        y
    }

    /// Backward pass (batch statistics).
    ///
    /// # Panics
    /// Without a forward step to go back through.
    #[allow(clippy::needless_range_loop)]
    pub fn backward(&mut self, dy: Tensor) -> Tensor {
        self.gamma.ensure_grad();
        self.beta.ensure_grad();
        let (xhat, inv_std) = self.caches.pop().expect("batchnorm backward without forward");
        let (c, hw) = (self.dims.c, self.dims.h * self.dims.w);
        let n = (dy.b * hw) as f32;
        let mut dx = Tensor::zeros(dy.b, dy.dims);
        for ch in 0..c {
            let (mut sd, mut sdx) = (0.0f32, 0.0f32);
            for b in 0..dy.b {
                let off = b * c * hw + ch * hw;
                for j in off..off + hw {
                    sd += dy.data[j];
                    sdx += dy.data[j] * xhat.data[j];
                }
            }
            self.beta.grad[ch] += sd;
            self.gamma.grad[ch] += sdx;
            let k = self.gamma.value[ch] * inv_std[ch] / n;
            for b in 0..dy.b {
                let off = b * c * hw + ch * hw;
                for j in off..off + hw {
                    dx.data[j] = k * (n * dy.data[j] - sd - xhat.data[j] * sdx);
                }
            }
        }
        dx
    }
}

impl LayerOps for BatchNorm {
    fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        BatchNorm::forward(self, x, train)
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        BatchNorm::backward(self, dy)
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.gamma, &mut self.beta]
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.gamma, &self.beta]
    }

    fn buffers(&self) -> Vec<(&'static str, &Vec<f32>)> {
        vec![
            ("running_mean", &self.running_mean),
            ("running_var", &self.running_var),
        ]
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut Vec<f32>)> {
        vec![
            ("running_mean", &mut self.running_mean),
            ("running_var", &mut self.running_var),
        ]
    }

    fn reset(&mut self) {
        self.caches.clear();
    }

    fn in_dims(&self) -> Dims {
        self.dims
    }

    fn out_dims(&self) -> Dims {
        self.dims
    }

    fn describe(&self) -> String {
        "batchnorm".into()
    }

    fn memory(&self, b: usize, m: &mut LayerMemory) {
        m.kept_per_step = super::pooled_bytes(b * self.dims.len());
    }

    fn kept(&self) -> usize {
        self.caches.len()
    }
}
