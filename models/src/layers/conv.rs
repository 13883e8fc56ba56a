//! 2-D convolution by im2col and GEMM, with optional scaled weight standardisation.
//!
//! Scaled weight standardisation (Qiao et al.; used by OTTT so that normalisation works at
//! batch size 1): per output channel, over its `n = C_in·k·k` weights,
//!
//! ```text
//! ŵ = g · (w − mean(w)) / sqrt(var(w) · n + ε),   var unbiased (n − 1), ε = 1e-4
//! ```
//!
//! with a learnable gain `g` per output channel (initialised to 1).

use super::{uniform, Param};
use crate::gemm::matmul;
use crate::tensor::{Dims, Tensor};

const WS_EPS: f32 = 1e-4;

/// 2-D convolution.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Input shape.
    pub in_dims: Dims,
    /// Output shape.
    pub out_dims: Dims,
    /// Kernel size (square).
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding.
    pub pad: usize,
    /// Scaled weight standardisation on.
    pub ws: bool,
    /// `C_out × C_in × k × k`.
    pub weight: Param,
    /// Per-output-channel gain (weight standardisation only).
    pub gain: Param,
    /// Per-output-channel bias.
    pub bias: Param,
    w_eff: Vec<f32>,
    col: Vec<f32>,
    pub(crate) caches: Vec<Tensor>,
}

impl Conv2d {
    /// A convolution of `in_dims` to `cout` channels.
    pub fn new(
        in_dims: Dims,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        ws: bool,
        rng: &mut crate::Rng,
    ) -> Self {
        assert!(k >= 1 && stride >= 1, "conv kernel and stride must be positive");
        assert!(
            in_dims.h + 2 * pad >= k && in_dims.w + 2 * pad >= k,
            "conv kernel larger than its input"
        );
        let oh = (in_dims.h + 2 * pad - k) / stride + 1;
        let ow = (in_dims.w + 2 * pad - k) / stride + 1;
        let fan_in = in_dims.c * k * k;
        let bound = 1.0 / (fan_in as f32).sqrt();
        Self {
            in_dims,
            out_dims: Dims::new(cout, oh, ow),
            k,
            stride,
            pad,
            ws,
            weight: Param::new("weight", uniform(cout * fan_in, bound, rng)),
            gain: Param::new("gain", vec![1.0; if ws { cout } else { 0 }]),
            bias: Param::new("bias", uniform(cout, bound, rng)),
            w_eff: Vec::new(),
            col: Vec::new(),
            caches: Vec::new(),
        }
    }

    pub(crate) fn params_mut(&mut self) -> Vec<&mut Param> {
        if self.ws {
            vec![&mut self.weight, &mut self.gain, &mut self.bias]
        } else {
            vec![&mut self.weight, &mut self.bias]
        }
    }

    pub(crate) fn params(&self) -> Vec<&Param> {
        if self.ws {
            vec![&self.weight, &self.gain, &self.bias]
        } else {
            vec![&self.weight, &self.bias]
        }
    }

    fn fan_in(&self) -> usize {
        self.in_dims.c * self.k * self.k
    }

    /// The weights the convolution applies (standardised when `ws`).
    pub fn effective_weight(&self) -> Vec<f32> {
        if !self.ws {
            return self.weight.value.clone();
        }
        let n = self.fan_in();
        let mut out = vec![0.0; self.weight.value.len()];
        for (co, (w, o)) in self
            .weight
            .value
            .chunks_exact(n)
            .zip(out.chunks_exact_mut(n))
            .enumerate()
        {
            let (mean, s) = ws_stats(w);
            let a = self.gain.value[co] / s;
            for (o, &v) in o.iter_mut().zip(w) {
                *o = (v - mean) * a;
            }
        }
        out
    }

    /// Gradient of the raw weights and gains from the gradient of the effective weights.
    fn ws_backward(&mut self, dw_eff: &[f32]) {
        let n = self.fan_in();
        let nf = n as f32;
        for co in 0..self.out_dims.c {
            let w = &self.weight.value[co * n..(co + 1) * n];
            let d = &dw_eff[co * n..(co + 1) * n];
            let (mean, s) = ws_stats(w);
            let g = self.gain.value[co];
            let dsum: f32 = d.iter().sum();
            let dz: f32 = d.iter().zip(w).map(|(d, w)| d * (w - mean)).sum();
            self.gain.grad[co] += dz / s;
            let a = g / s;
            let c = g * nf * dz / (s * s * s * (nf - 1.0).max(1.0));
            for ((gw, &dv), &wv) in self.weight.grad[co * n..(co + 1) * n].iter_mut().zip(d).zip(w) {
                *gw += a * (dv - dsum / nf) - c * (wv - mean);
            }
        }
    }

    fn im2col(&self, x: &[f32], col: &mut [f32]) {
        let (i, o, k) = (self.in_dims, self.out_dims, self.k);
        let p = o.h * o.w;
        for c in 0..i.c {
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut col[((c * k + ky) * k + kx) * p..][..p];
                    for oy in 0..o.h {
                        let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                        let dst = &mut row[oy * o.w..(oy + 1) * o.w];
                        if iy < 0 || iy >= i.h as isize {
                            dst.iter_mut().for_each(|v| *v = 0.0);
                            continue;
                        }
                        let src = &x[(c * i.h + iy as usize) * i.w..][..i.w];
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                            *d = if ix < 0 || ix >= i.w as isize {
                                0.0
                            } else {
                                src[ix as usize]
                            };
                        }
                    }
                }
            }
        }
    }

    fn col2im(&self, col: &[f32], dx: &mut [f32]) {
        let (i, o, k) = (self.in_dims, self.out_dims, self.k);
        let p = o.h * o.w;
        for c in 0..i.c {
            for ky in 0..k {
                for kx in 0..k {
                    let row = &col[((c * k + ky) * k + kx) * p..][..p];
                    for oy in 0..o.h {
                        let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                        if iy < 0 || iy >= i.h as isize {
                            continue;
                        }
                        let dst = &mut dx[(c * i.h + iy as usize) * i.w..][..i.w];
                        for (ox, &v) in row[oy * o.w..(oy + 1) * o.w].iter().enumerate() {
                            let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                            if ix >= 0 && ix < i.w as isize {
                                dst[ix as usize] += v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Forward pass.
    pub fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        assert_eq!(x.dims, self.in_dims, "conv input shape");
        self.w_eff = self.effective_weight();
        let (o, kk) = (self.out_dims, self.fan_in());
        let p = o.h * o.w;
        let mut col = std::mem::take(&mut self.col);
        col.resize(kk * p, 0.0);
        let mut y = Tensor::zeros(x.b, o);
        for b in 0..x.b {
            self.im2col(x.sample(b), &mut col);
            let ys = y.sample_mut(b);
            for (co, row) in ys.chunks_exact_mut(p).enumerate() {
                row.iter_mut().for_each(|v| *v = self.bias.value[co]);
            }
            matmul(o.c, kk, p, 1.0, &self.w_eff, false, &col, false, 1.0, ys);
        }
        self.col = col;
        if train {
            self.caches.push(x);
        }
        y
    }

    /// Backward pass (recomputes im2col from the kept input).
    pub fn backward(&mut self, dy: Tensor) -> Tensor {
        let x = self.caches.pop().expect("conv backward without forward");
        if self.w_eff.len() != self.weight.value.len() {
            self.w_eff = self.effective_weight();
        }
        let (o, kk) = (self.out_dims, self.fan_in());
        let p = o.h * o.w;
        let mut col = std::mem::take(&mut self.col);
        col.resize(kk * p, 0.0);
        let mut dcol = vec![0.0; kk * p];
        let mut dw_eff = vec![0.0; self.weight.value.len()];
        let mut dx = Tensor::zeros(x.b, self.in_dims);
        for b in 0..x.b {
            let ds = dy.sample(b);
            for (co, row) in ds.chunks_exact(p).enumerate() {
                self.bias.grad[co] += row.iter().sum::<f32>();
            }
            self.im2col(x.sample(b), &mut col);
            matmul(o.c, p, kk, 1.0, ds, false, &col, true, 1.0, &mut dw_eff);
            matmul(kk, o.c, p, 1.0, &self.w_eff, true, ds, false, 0.0, &mut dcol);
            self.col2im(&dcol, dx.sample_mut(b));
        }
        self.col = col;
        if self.ws {
            self.ws_backward(&dw_eff);
        } else {
            for (g, d) in self.weight.grad.iter_mut().zip(&dw_eff) {
                *g += d;
            }
        }
        dx
    }
}

/// Mean and `sqrt(var_unbiased · n + ε)` of one output channel's weights.
fn ws_stats(w: &[f32]) -> (f32, f32) {
    let n = w.len() as f32;
    let mean = w.iter().sum::<f32>() / n;
    let ss: f32 = w.iter().map(|v| (v - mean) * (v - mean)).sum();
    let var = ss / (n - 1.0).max(1.0);
    (mean, (var * n + WS_EPS).sqrt())
}
