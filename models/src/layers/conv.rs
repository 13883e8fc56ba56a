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

use rayon::prelude::*;

use super::{uniform, Param};
use crate::gemm::matmul;
use crate::math::transpose;
use crate::pool::Buf;
use crate::tensor::{Dims, Tensor};
use crate::workspace;

const WS_EPS: f32 = 1e-4;

/// How many times faster a multiply-add runs in the GEMM (im2col) path than in the sparse
/// scatter path, fitted to `stdl bench sparse` over the conv layers of `nmnist` and
/// `dvs-gesture` at densities 0.005–0.4 (README, "Sparsity": 4 picks the faster path with a
/// mean loss of 2.7% against the better choice; 10, the value before the scatter loops were
/// vectorised, lost 7.5%). [`InputPath::Auto`] uses it in a per-layer cost model.
pub const GEMM_SPEEDUP: f64 = 4.0;

/// How a convolution computes with its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InputPath {
    /// Whichever a per-layer cost model predicts faster for this input (see
    /// [`Conv2d::predicted_sparse_faster`]).
    #[default]
    Auto,
    /// Always im2col + GEMM.
    Dense,
    /// Always scatter the non-zero inputs (spikes, event counts).
    Sparse,
}

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
    /// Dense (im2col + GEMM) or sparse (scatter of non-zero inputs) arithmetic.
    pub path: InputPath,
    /// Whether backward computes the input gradient. The first layer of a subnetwork does
    /// not need it: its input is detached.
    pub input_grad: bool,
    /// Forward passes taken by the dense and by the sparse path (diagnostics: which path
    /// [`InputPath::Auto`] picks as the input's density moves).
    pub path_calls: [u64; 2],
    /// Seconds spent in the weight gradient and in the input gradient, summed over backward
    /// calls ([`crate::profile`]; two clock reads per call).
    pub grad_seconds: [f64; 2],
    /// The effective weights, from the pool while a forward or kept step needs them.
    w_eff: Buf,
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
            path: InputPath::Auto,
            input_grad: true,
            path_calls: [0; 2],
            grad_seconds: [0.0; 2],
            w_eff: Buf(Vec::new()),
            caches: Vec::new(),
        }
    }

    /// Trainable parameters (weight, gain when standardised, bias).
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        if self.ws {
            vec![&mut self.weight, &mut self.gain, &mut self.bias]
        } else {
            vec![&mut self.weight, &mut self.bias]
        }
    }

    /// Trainable parameters, read-only.
    pub fn params(&self) -> Vec<&Param> {
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
        let mut out = Vec::new();
        self.effective_weight_into(&mut out);
        out
    }

    /// [`Self::effective_weight`] into `out`, reusing its allocation.
    fn effective_weight_into(&self, out: &mut Vec<f32>) {
        out.resize(self.weight.value.len(), 0.0);
        if !self.ws {
            out.copy_from_slice(&self.weight.value);
            return;
        }
        ws_forward(&self.weight.value, &self.gain.value, self.fan_in(), out);
    }

    /// Gradient of the raw weights and gains from the gradient of the effective weights.
    fn ws_backward(&mut self, dw_eff: &[f32]) {
        ws_backward(
            &self.weight.value,
            &self.gain.value,
            self.fan_in(),
            dw_eff,
            &mut self.weight.grad,
            &mut self.gain.grad,
        );
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
                        if self.stride == 1 {
                            // ix = ox + kx − pad: one copy between zero borders.
                            let (lo, hi) = stride1_span(kx, self.pad, i.w, o.w);
                            dst[..lo].fill(0.0);
                            if hi > lo {
                                dst[lo..hi].copy_from_slice(&src[lo + kx - self.pad..hi + kx - self.pad]);
                            }
                            dst[hi..].fill(0.0);
                            continue;
                        }
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
                        if self.stride == 1 {
                            let (lo, hi) = stride1_span(kx, self.pad, i.w, o.w);
                            if hi == lo {
                                continue;
                            }
                            let src = &row[oy * o.w + lo..oy * o.w + hi];
                            for (d, &v) in dst[lo + kx - self.pad..hi + kx - self.pad].iter_mut().zip(src) {
                                *d += v;
                            }
                            continue;
                        }
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

    /// Whether this call takes the sparse path.
    fn sparse(&self, x: &Tensor) -> bool {
        match self.path {
            InputPath::Dense => false,
            InputPath::Sparse => true,
            InputPath::Auto => {
                self.predicted_sparse_faster(x.b, x.data.iter().filter(|&&v| v != 0.0).count())
            }
        }
    }

    /// The cost model behind [`InputPath::Auto`], in element operations for a batch of `b`
    /// with `nnz` non-zero inputs (forward and weight gradient):
    /// dense = `2·K·P·C_out·b / GEMM_SPEEDUP + 2·K·P·b` (GEMMs and im2col);
    /// sparse = `2·nnz·k²·C_out + 3·K·C_out + b·P·C_out` (scatters, weight transposes,
    /// output-gradient transposes).
    pub fn predicted_sparse_faster(&self, b: usize, nnz: usize) -> bool {
        let (kk, p, c) = (
            self.fan_in() as f64,
            (self.out_dims.h * self.out_dims.w) as f64,
            self.out_dims.c as f64,
        );
        let b = b as f64;
        let taps = (self.k * self.k) as f64 / (self.stride * self.stride) as f64;
        let dense = 2.0 * kk * p * c * b / GEMM_SPEEDUP + 2.0 * kk * p * b;
        let sparse = 2.0 * nnz as f64 * taps * c + 3.0 * kk * c + b * p * c;
        sparse < dense
    }

    /// Calls `f(tap, p)` for every kernel tap `(ky·k + kx)` through which input pixel
    /// `(iy, ix)` reaches output position `p`, taps in increasing order.
    #[inline(always)]
    fn taps(&self, iy: usize, ix: usize, mut f: impl FnMut(usize, usize)) {
        let (k, s, pad, o) = (self.k, self.stride, self.pad, self.out_dims);
        let (ny, nx) = (iy + pad, ix + pad);
        if s == 1 {
            // Output row oy = ny − ky for the ky that keep it inside: no division.
            let (ky_lo, ky_hi) = ((ny + 1).saturating_sub(o.h), k.min(ny + 1));
            let (kx_lo, kx_hi) = ((nx + 1).saturating_sub(o.w), k.min(nx + 1));
            for ky in ky_lo..ky_hi {
                let row = (ny - ky) * o.w + nx;
                for kx in kx_lo..kx_hi {
                    f(ky * k + kx, row - kx);
                }
            }
            return;
        }
        for ky in 0..k {
            if ny < ky || (ny - ky) % s != 0 || (ny - ky) / s >= o.h {
                continue;
            }
            let oy = (ny - ky) / s;
            for kx in 0..k {
                if nx < kx || (nx - kx) % s != 0 || (nx - kx) / s >= o.w {
                    continue;
                }
                f(ky * k + kx, oy * o.w + (nx - kx) / s);
            }
        }
    }

    /// Calls `f(weight_row, p, v)` for every non-zero input `v` of one sample and every
    /// output position `p` it reaches, where `weight_row = (c_in·k² + tap)` indexes the
    /// `C_in·k·k` rows of the transposed weights (and of the transposed weight gradient).
    #[inline(always)]
    fn for_each_nonzero_tap(&self, xs: &[f32], mut f: impl FnMut(usize, usize, f32)) {
        let (i, kk2) = (self.in_dims, self.k * self.k);
        for ci in 0..i.c {
            for iy in 0..i.h {
                for (ix, &v) in xs[(ci * i.h + iy) * i.w..][..i.w].iter().enumerate() {
                    if v != 0.0 {
                        self.taps(iy, ix, |tap, p| f(ci * kk2 + tap, p, v));
                    }
                }
            }
        }
    }

    /// The largest per-thread workspace a call needs (values): im2col columns, or the sparse
    /// path's `P × C_out` accumulator ([`crate::workspace`]).
    pub fn workspace_len(&self) -> usize {
        let p = self.out_dims.h * self.out_dims.w;
        (self.fan_in() * p).max(p * self.out_dims.c)
    }

    /// Computes the effective weights into a buffer from the pool.
    fn refresh_weights(&mut self) {
        let n = self.weight.value.len();
        if self.w_eff.len() != n {
            self.w_eff = Buf::take(n);
        }
        let mut w_eff = std::mem::replace(&mut self.w_eff, Buf(Vec::new()));
        self.effective_weight_into(&mut w_eff);
        self.w_eff = w_eff;
    }

    /// Returns the effective weights to the pool once no kept step needs them for an input
    /// gradient: they are recomputed at the next forward anyway (the weights change in
    /// between), and a network's copies would otherwise stay resident beside the weights.
    fn release_weights(&mut self) {
        if self.caches.is_empty() || !self.input_grad {
            self.w_eff = Buf(Vec::new());
        }
    }

    /// Forward pass. The batch is cut into one run of samples per thread, each with one
    /// workspace; every sample's output is computed alone, so the result does not depend on
    /// threads.
    pub fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        assert_eq!(x.dims, self.in_dims, "conv input shape");
        let sparse = self.sparse(&x);
        self.path_calls[sparse as usize] += 1;
        self.refresh_weights();
        let (o, kk) = (self.out_dims, self.fan_in());
        let p = o.h * o.w;
        // The sparse path scatters rows of the effective weights transposed to K × C_out;
        // they serve only this forward pass.
        let w_t = sparse.then(|| {
            let mut t = Buf::take(self.w_eff.len());
            transpose(&self.w_eff, o.c, kk, &mut t);
            t
        });
        // Every output value is written below (transpose or bias), so no zeroing.
        let mut y = Tensor::uninit(x.b, o);
        let (in_len, out_len) = (self.in_dims.len(), o.len());
        let per = x.b.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let this = &*self;
        y.data
            .par_chunks_mut(per * out_len)
            .zip(x.data.par_chunks(per * in_len))
            .for_each(|(ys, xs)| {
                workspace::with(if sparse { p * o.c } else { kk * p }, |buf| {
                    for (ys, xs) in ys.chunks_exact_mut(out_len).zip(xs.chunks_exact(in_len)) {
                        if let Some(w_t) = &w_t {
                            sparse_forward(this, w_t, xs, buf);
                            transpose(buf, p, o.c, ys);
                            for (co, row) in ys.chunks_exact_mut(p).enumerate() {
                                let b = this.bias.value[co];
                                row.iter_mut().for_each(|v| *v += b);
                            }
                        } else {
                            this.im2col(xs, buf);
                            for (co, row) in ys.chunks_exact_mut(p).enumerate() {
                                row.fill(this.bias.value[co]);
                            }
                            matmul(o.c, kk, p, 1.0, &this.w_eff, false, buf, false, 1.0, ys);
                        }
                    }
                });
            });
        // The effective weights serve a backward pass only when it computes an input gradient.
        if train {
            self.caches.push(x);
        }
        if !(train && self.input_grad) {
            self.release_weights();
        }
        y
    }

    /// The weight gradient (`C_out × K`) over blocks of output channels, one per thread:
    /// each block sums over the whole batch, samples in order, so there are no partial
    /// copies of the gradient, and the result does not depend on the number of threads.
    /// Every thread scans every sample's input, which costs little beside large weights.
    fn weight_grad_by_channel(&self, x: &Tensor, dy: &Tensor, sparse: bool, threads: usize) -> Buf {
        let (o, kk) = (self.out_dims, self.fan_in());
        let p = o.h * o.w;
        let (in_len, out_len) = (self.in_dims.len(), o.len());
        let per_c = o.c.div_ceil(threads.min(o.c)).max(1);
        let samples = || x.data.chunks_exact(in_len).zip(dy.data.chunks_exact(out_len));
        if sparse {
            // Per block, K × C_b (the scatter's natural layout), then transposed into place.
            let blocks: Vec<Buf> = (0..o.c.div_ceil(per_c))
                .into_par_iter()
                .map(|blk| {
                    let (c0, c1) = (blk * per_c, ((blk + 1) * per_c).min(o.c));
                    let cb = c1 - c0;
                    let mut dwt = Buf::zeros(kk * cb);
                    workspace::with(p * cb, |dyt| {
                        for (xb, dyb) in samples() {
                            transpose(&dyb[c0 * p..c1 * p], cb, p, dyt);
                            sparse_weight_grad(self, xb, dyt, cb, &mut dwt);
                        }
                    });
                    dwt
                })
                .collect();
            let mut dw = Buf::take(self.weight.value.len());
            for (dwt, out) in blocks.iter().zip(dw.chunks_mut(per_c * kk)) {
                transpose(dwt, kk, out.len() / kk, out);
            }
            dw
        } else {
            let mut dw = Buf::zeros(self.weight.value.len());
            dw.par_chunks_mut(per_c * kk).enumerate().for_each(|(blk, out)| {
                let (c0, cb) = (blk * per_c, out.len() / kk);
                workspace::with(kk * p, |col| {
                    for (xb, dyb) in samples() {
                        self.im2col(xb, col);
                        matmul(
                            cb,
                            p,
                            kk,
                            1.0,
                            &dyb[c0 * p..(c0 + cb) * p],
                            false,
                            col,
                            true,
                            1.0,
                            out,
                        );
                    }
                });
            });
            dw
        }
    }

    /// The weight gradient (`C_out × K`) over [`GRAD_CHUNKS`] fixed chunks of the batch, run
    /// in waves of one chunk per thread, whose partial gradients are added to a running sum
    /// in chunk order (the first partial is the sum: `0 + a = a` exactly): the result does not
    /// depend on the number of threads, and at most one partial per thread is alive. Each
    /// sample's input is scanned once; suits small weights.
    fn weight_grad_by_batch(&self, x: &Tensor, dy: &Tensor, sparse: bool, threads: usize) -> Buf {
        let (o, kk) = (self.out_dims, self.fan_in());
        let p = o.h * o.w;
        let (in_len, out_len) = (self.in_dims.len(), o.len());
        let per = x.b.div_ceil(GRAD_CHUNKS).max(1);
        let chunk_grad = |(xs, dys): (&[f32], &[f32])| {
            let mut dw = Buf::zeros(self.weight.value.len());
            workspace::with(if sparse { p * o.c } else { kk * p }, |buf| {
                for (xb, dyb) in xs.chunks_exact(in_len).zip(dys.chunks_exact(out_len)) {
                    if sparse {
                        // dw is accumulated transposed here (K × C_out) and turned back below.
                        transpose(dyb, o.c, p, buf);
                        sparse_weight_grad(self, xb, buf, o.c, &mut dw);
                    } else {
                        self.im2col(xb, buf);
                        matmul(o.c, p, kk, 1.0, dyb, false, buf, true, 1.0, &mut dw);
                    }
                }
            });
            dw
        };
        let mut work = x.data.chunks(per * in_len).zip(dy.data.chunks(per * out_len));
        let mut sum: Option<Buf> = None;
        loop {
            let wave: Vec<_> = work.by_ref().take(threads).collect();
            if wave.is_empty() {
                break;
            }
            let partials: Vec<Buf> = wave.into_par_iter().map(chunk_grad).collect();
            for dw in partials {
                match sum.as_mut() {
                    None => sum = Some(dw),
                    Some(acc) => acc.iter_mut().zip(dw.iter()).for_each(|(a, b)| *a += b),
                }
            }
        }
        let sum = sum.expect("a batch has at least one chunk");
        if !sparse {
            return sum;
        }
        let mut t = Buf::take(sum.len());
        transpose(&sum, kk, o.c, &mut t);
        t
    }

    /// Backward pass (recomputes im2col from the kept input).
    ///
    /// The weight gradient is split over blocks of output channels for large weights
    /// ([`CHANNEL_SPLIT_MIN_WEIGHTS`]), over chunks of the batch for small ones; either way
    /// the result is the same for any number of threads. The input gradient (when wanted)
    /// is split over samples.
    pub fn backward(&mut self, dy: Tensor) -> Tensor {
        self.weight.ensure_grad();
        self.gain.ensure_grad();
        self.bias.ensure_grad();
        let x = self.caches.pop().expect("conv backward without forward");
        let sparse = self.sparse(&x);
        if self.input_grad && self.w_eff.len() != self.weight.value.len() {
            self.refresh_weights();
        }
        let (o, kk) = (self.out_dims, self.fan_in());
        let p = o.h * o.w;
        let (in_len, out_len) = (self.in_dims.len(), o.len());
        for dyb in dy.data.chunks_exact(out_len) {
            for (g, row) in self.bias.grad.iter_mut().zip(dyb.chunks_exact(p)) {
                *g += crate::math::sum(row);
            }
        }
        let threads = rayon::current_num_threads().max(1);
        let t0 = std::time::Instant::now();
        let dw_eff = if self.weight.value.len() >= CHANNEL_SPLIT_MIN_WEIGHTS {
            self.weight_grad_by_channel(&x, &dy, sparse, threads)
        } else {
            self.weight_grad_by_batch(&x, &dy, sparse, threads)
        };
        let t1 = std::time::Instant::now();
        self.grad_seconds[0] += (t1 - t0).as_secs_f64();
        let this = &*self;
        // Without an input gradient, an empty batch is returned (nothing is allocated).
        let mut dx = Tensor::zeros(if self.input_grad { x.b } else { 0 }, self.in_dims);
        if self.input_grad {
            let per = x.b.div_ceil(threads).max(1);
            dx.data
                .par_chunks_mut(per * in_len)
                .zip(dy.data.par_chunks(per * out_len))
                .for_each(|(dxs, dys)| {
                    workspace::with(kk * p, |dcol| {
                        for (dxb, dyb) in dxs.chunks_exact_mut(in_len).zip(dys.chunks_exact(out_len)) {
                            matmul(kk, o.c, p, 1.0, &this.w_eff, true, dyb, false, 0.0, dcol);
                            this.col2im(dcol, dxb);
                        }
                    });
                });
        }
        self.grad_seconds[1] += t1.elapsed().as_secs_f64();
        if self.ws {
            self.ws_backward(&dw_eff);
        } else {
            for (g, d) in self.weight.grad.iter_mut().zip(dw_eff.iter()) {
                *g += d;
            }
        }
        drop(x);
        self.release_weights();
        dx
    }
}

/// Input density (fraction of non-zero values) the memory model assumes when it predicts
/// which path a convolution takes: spiking layers fire at a few percent to a few tens.
pub const PLAN_INPUT_DENSITY: f64 = 0.1;

/// Fixed number of batch chunks whose weight gradients are computed in parallel
/// (small weights; see [`CHANNEL_SPLIT_MIN_WEIGHTS`]).
pub const GRAD_CHUNKS: usize = 4;

/// From this many weights up, the weight gradient is split over output channels rather
/// than over the batch: per-thread partial gradients would cost more memory than the
/// repeated input scans cost time (`stdl bench memory` / `stdl bench train`, README).
pub const CHANNEL_SPLIT_MIN_WEIGHTS: usize = 1 << 16;

crate::math::widest! {
    /// Sparse forward of one sample: `acc` (`P × C_out`) gets `Σ v · w_t[tap]` for every
    /// non-zero input `v`; `w_t` is the effective weights as `C_in·k·k × C_out`.
    fn sparse_forward(conv: &Conv2d, w_t: &[f32], xs: &[f32], acc: &mut [f32]) {
        let c_out = conv.out_dims.c;
        acc.iter_mut().for_each(|v| *v = 0.0);
        conv.for_each_nonzero_tap(xs, |row, p, v| {
            let w = &w_t[row * c_out..][..c_out];
            for (a, &wv) in acc[p * c_out..][..c_out].iter_mut().zip(w) {
                *a += v * wv;
            }
        });
    }
}

crate::math::widest! {
    /// Sparse weight gradient of one sample for a block of `cb` output channels: `dwt`
    /// (`C_in·k·k × cb`) gets `Σ v · dyt[p]` over non-zero inputs `v`; `dyt` is the block's
    /// output gradient as `P × cb`.
    fn sparse_weight_grad(conv: &Conv2d, xs: &[f32], dyt: &[f32], cb: usize, dwt: &mut [f32]) {
        conv.for_each_nonzero_tap(xs, |row, p, v| {
            let d = &dyt[p * cb..][..cb];
            for (a, &dv) in dwt[row * cb..][..cb].iter_mut().zip(d) {
                *a += v * dv;
            }
        });
    }
}

/// For stride 1, the output columns `lo..hi` whose input column `ox + kx − pad` lies inside
/// `0..in_w` (`lo ≤ hi`; when `lo < hi`, `lo + kx ≥ pad`).
#[inline]
fn stride1_span(kx: usize, pad: usize, in_w: usize, out_w: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(kx).min(out_w);
    let hi = (in_w + pad).saturating_sub(kx).min(out_w).max(lo);
    (lo, hi)
}

/// Mean and `sqrt(var_unbiased · n + ε)` of one output channel's weights (sums in the
/// interleaved order of [`crate::math::sum`], so they vectorise).
#[inline(always)]
fn ws_stats(w: &[f32]) -> (f32, f32) {
    let n = w.len() as f32;
    let mean = crate::math::sum(w) / n;
    let ss = crate::math::sum_of(w, |v| (v - mean) * (v - mean));
    let var = ss / (n - 1.0).max(1.0);
    (mean, (var * n + WS_EPS).sqrt())
}

crate::math::widest! {
    /// Scaled weight standardisation: each output channel's `n` weights, less their mean,
    /// times its gain over `sqrt(var · n + ε)`, into `out`.
    fn ws_forward(weight: &[f32], gain: &[f32], n: usize, out: &mut [f32]) {
        for (co, (w, o)) in weight.chunks_exact(n).zip(out.chunks_exact_mut(n)).enumerate() {
            let (mean, s) = ws_stats(w);
            let a = gain[co] / s;
            for (o, &v) in o.iter_mut().zip(w) {
                *o = (v - mean) * a;
            }
        }
    }
}

crate::math::widest! {
    /// The gradients of the raw weights and the gains from `d`, the gradient of the
    /// standardised weights, added into `dw` and `dgain`.
    fn ws_backward(weight: &[f32], gain: &[f32], n: usize, d: &[f32], dw: &mut [f32], dgain: &mut [f32]) {
        let nf = n as f32;
        for (co, ((w, d), dw)) in weight
            .chunks_exact(n)
            .zip(d.chunks_exact(n))
            .zip(dw.chunks_exact_mut(n))
            .enumerate()
        {
            let (mean, s) = ws_stats(w);
            let g = gain[co];
            let dsum = crate::math::sum(d);
            let dz = crate::math::sum_of2(d, w, |d, w| d * (w - mean));
            dgain[co] += dz / s;
            let a = g / s;
            let c = g * nf * dz / (s * s * s * (nf - 1.0).max(1.0));
            let dmean = dsum / nf;
            for ((gw, &dv), &wv) in dw.iter_mut().zip(d).zip(w) {
                *gw += a * (dv - dmean) - c * (wv - mean);
            }
        }
    }
}
