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
//!
//! Why this file is long (about 850 lines): it holds one layer's three computations (forward,
//! weight gradient, input gradient) on both of its paths (im2col + GEMM, and the sparse
//! scatter of `sparse.rs`'s loops), and the cost model that picks a path per call. The choice
//! and what it chooses between stay side by side; the loops themselves are in `sparse.rs` and
//! the standardisation in `ws.rs`; its [`LayerOps`] implementation closes it.

use rayon::prelude::*;

use super::{uniform, Param};
use crate::gemm::matmul;
use crate::math::transpose;
use crate::optim::Update;
use crate::pool::Buf;
use crate::tensor::{Dims, Tensor};
use crate::workspace;

mod sparse;
mod winograd;
mod ws;

use super::{LayerMemory, LayerOps};
pub use sparse::PAIR_COST;
use sparse::{
    any_nonzero, for_each_nonzero, nonzeros, scatter_input_grad, sparse_forward, sparse_weight_grad,
    PixelList,
};
use ws::{
    ws_backward, ws_backward_adam, ws_forward, ws_forward_by_tap, ws_forward_channels, ws_forward_transposed,
    ws_stats_extend,
};

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
    /// `C_out × C_in × k × k`. Change the values through [`Self::params_mut`] (or
    /// [`Self::update`]): the convolution keeps values computed from them (layouts,
    /// statistics) until then.
    pub weight: Param,
    /// Per-output-channel gain (weight standardisation only).
    pub gain: Param,
    /// Per-output-channel bias.
    pub bias: Param,
    /// Dense (im2col + GEMM) or sparse (scatter of non-zero inputs) arithmetic.
    pub path: InputPath,
    /// How backward computes with the output gradient: by GEMMs (and [`Self::path`]'s
    /// weight gradient), or, [`InputPath::Sparse`], by scattering only its non-zero values
    /// (a surrogate with compact support makes most of them exactly zero).
    pub grad_path: InputPath,
    /// Whether backward computes the input gradient. The first layer of a subnetwork does
    /// not need it: its input is detached.
    pub input_grad: bool,
    /// Whether the input gradient by GEMM of a 3 × 3, stride-1, padding-1 convolution takes
    /// Winograd's F(4 × 4, 3 × 3) (`winograd.rs`: 1/4 of the multiply-adds, in the same
    /// scratch) where it fits and pays. On by default; off, it takes im2col's `K × P`
    /// columns and col2im (`cargo bench --bench input_grad` compares the two).
    pub winograd: bool,
    /// Forward passes taken by the dense and by the sparse path (diagnostics: which path
    /// [`InputPath::Auto`] picks as the input's density moves).
    pub path_calls: [u64; 2],
    /// Backward passes whose weight gradient and whose input gradient scattered the
    /// non-zero output gradients (diagnostics for [`Self::grad_path`]).
    pub grad_path_calls: [u64; 2],
    /// Seconds spent in the weight gradient and in the input gradient, summed over backward
    /// calls ([`crate::profile`]; two clock reads per call).
    pub grad_seconds: [f64; 2],
    /// Gradients accumulate over several backward passes between updates (`--update-every`
    /// above 1): the effective weights, in each layout a pass used, are kept from one pass
    /// to the next until the parameters are next borrowed mutably ([`Self::params_mut`], as
    /// an optimiser step does), and the standardisation's backward runs once then, on the
    /// summed gradient of the effective weights, instead of once per pass. Until then, the
    /// weights' and gains' gradients read through [`Self::params`] lack the passes since.
    /// Off by default.
    pub accumulate: bool,
    /// The standardisation's backward waits for the optimiser step, as with `accumulate`
    /// (set by STDL's stages): the gradient of the effective weights is kept, summed over
    /// backward passes, and [`Self::update`] runs the standardisation's backward channel by
    /// channel in the same pass as Adam's update, so the weights' gradient is never written
    /// and the weights are read once. [`Self::params_mut`] turns it into the weights' and
    /// gains' gradients instead, for whoever needs them. Off by default: until then, the
    /// gradients read through [`Self::params`] lack the passes since.
    pub defer_ws_grad: bool,
    /// The effective weights and the summed gradient kept between passes (boxed: the
    /// layer enum stays small).
    kept: Box<Kept>,
    pub(crate) caches: Vec<Tensor>,
}

impl Conv2d {
    /// A convolution of `in_dims` to `cout` channels.
    ///
    /// # Panics
    /// When the kernel or the stride is 0.
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
            grad_path: InputPath::Auto,
            input_grad: true,
            winograd: true,
            path_calls: [0; 2],
            grad_path_calls: [0; 2],
            grad_seconds: [0.0; 2],
            accumulate: false,
            defer_ws_grad: false,
            kept: Box::default(),
            caches: Vec::new(),
        }
    }

    /// Trainable parameters (weight, gain when standardised, bias). Their values may change
    /// through these borrows: the kept effective weights are let go, and a pending
    /// accumulated gradient (`accumulate`) is turned into the weights' and gains' first.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        let pending = std::mem::take(&mut self.kept.pending);
        if !pending.is_empty() {
            let overwrite = self.weight.grad_to_overwrite();
            self.gain.ensure_grad();
            self.ws_backward(&pending, overwrite);
        }
        self.kept.weights_in = Default::default();
        self.kept.stats.clear();
        if self.ws {
            vec![&mut self.weight, &mut self.gain, &mut self.bias]
        } else {
            vec![&mut self.weight, &mut self.bias]
        }
    }

    /// One optimiser step's update of the parameters, each with the next of `states` (in
    /// the order of [`Self::params_mut`]); whether every value is still finite. A deferred
    /// standardisation's backward ([`Self::defer_ws_grad`]) runs in the same pass as
    /// Adam's update of the weights (output channel by output channel), with the same
    /// numbers as [`Self::params_mut`] and [`Update::apply`] give.
    ///
    /// # Panics
    /// When `states` runs out before the parameters do.
    pub fn update<'a>(
        &mut self,
        update: &Update,
        states: &mut impl Iterator<Item = (&'a mut [f32], &'a mut [f32])>,
    ) -> bool {
        let fused = update.is_adam() && !self.kept.pending.is_empty() && self.weight.grad.is_empty();
        if !fused {
            return super::update_params(self.params_mut(), update, states);
        }
        let pending = std::mem::take(&mut self.kept.pending);
        self.ensure_stats();
        self.gain.ensure_grad();
        let (m, v) = states.next().expect("optimiser state of the weights");
        let (n, c_out) = (self.fan_in(), self.out_dims.c);
        // Output channels are independent here: they are cut into one piece per thread that
        // can take part ([`crate::assist`]), the same values whoever computes them.
        let (parts, per) = crate::optim::row_pieces(self.weight.value.len(), c_out);
        let pieces = self
            .weight
            .value
            .chunks_mut(per * n)
            .zip(self.kept.stats.chunks_mut(per))
            .zip(self.gain.value.chunks(per).zip(pending.chunks(per * n)))
            .zip(
                self.gain
                    .grad
                    .chunks_mut(per)
                    .zip(m.chunks_mut(per * n).zip(v.chunks_mut(per * n))),
            )
            .map(|(((w, stats), (gain, d)), (dgain, (m, v)))| (w, stats, gain, d, dgain, m, v));
        let finite = crate::assist::all_of(parts, pieces, |(w, stats, gain, d, dgain, m, v)| {
            let mut finite = true;
            ws_backward_adam(w, stats, gain, n, d, dgain, m, v, update, &mut finite);
            finite
        });
        drop(pending);
        // The weights changed: their layouts go (as `params_mut` lets them go); the
        // statistics are the new weights', kept for the next pass.
        self.kept.weights_in = Default::default();
        let finite = finite & super::update_params(vec![&mut self.gain, &mut self.bias], update, states);
        // The layout of every channel's weights that the last forward read, built now (from
        // the updated weights and gains) for the next forward, which then finds it built: the
        // next stage waits for this stage's forward, not its update. The same work, moved;
        // the real-time factor it gained was within the machine's noise (docs/speed-log.md).
        // A forward that takes another path lets it go unread.
        if let Some(layout) = self.kept.forward_layout {
            self.refresh_weights(layout);
        }
        finite
    }

    /// Frees the gradients, a deferred one ([`Self::defer_ws_grad`]) too, unused.
    pub fn release_grads(&mut self) {
        self.kept.pending = Buf::default();
        for p in [&mut self.weight, &mut self.gain, &mut self.bias] {
            p.release_grad();
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
        let mut out = vec![0.0; self.weight.value.len()];
        if self.ws {
            ws_forward(
                &self.weight.value,
                &mut Vec::new(),
                &self.gain.value,
                self.fan_in(),
                &mut out,
            );
        } else {
            out.copy_from_slice(&self.weight.value);
        }
        out
    }

    /// Makes `kept.stats` hold the current weights' standardisation statistics (when `ws`):
    /// computed once per set of weights, then shared by every layout and the backward.
    fn ensure_stats(&mut self) {
        if self.ws && self.kept.stats.len() != self.out_dims.c {
            self.kept.stats.clear();
            ws_stats_extend(&self.weight.value, self.fan_in(), &mut self.kept.stats);
        }
    }

    /// Gradient of the raw weights and gains from the gradient of the effective weights,
    /// added to the weights' gradient, or written over it when `overwrite`.
    fn ws_backward(&mut self, dw_eff: &[f32], overwrite: bool) {
        self.ensure_stats();
        ws_backward(
            &self.weight.value,
            &self.kept.stats,
            &self.gain.value,
            self.fan_in(),
            dw_eff,
            &mut self.weight.grad,
            &mut self.gain.grad,
            overwrite,
        );
    }

    fn im2col(&self, x: &[f32], col: &mut [f32]) {
        self.im2col_channels(0..self.in_dims.c, x, col);
    }

    /// [`Self::im2col`] of the input channels `chans` only: the `j`-th channel listed
    /// gives the `j`-th block of `k²` rows.
    fn im2col_channels(&self, chans: impl Iterator<Item = usize>, x: &[f32], col: &mut [f32]) {
        let (i, o, k) = (self.in_dims, self.out_dims, self.k);
        let p = o.h * o.w;
        if self.stride == 1 && o.w == i.w {
            // Each tap's row is the input plane shifted: one copy per row instead of one per
            // output row (17 × 3 small copies and fills for a 17 × 17 plane, whose calls
            // cost more than the bytes).
            let plane = i.h * i.w;
            for (j, c) in chans.enumerate() {
                for ky in 0..k {
                    for kx in 0..k {
                        let row = &mut col[((j * k + ky) * k + kx) * p..][..p];
                        let (dy, dx) = (ky as isize - self.pad as isize, kx as isize - self.pad as isize);
                        shifted_plane(&x[c * plane..][..plane], i.h, i.w, dy, dx, row);
                    }
                }
            }
            return;
        }
        for (j, c) in chans.enumerate() {
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut col[((j * k + ky) * k + kx) * p..][..p];
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

    /// Adds the `K × P` columns `col` back onto the input positions they were taken from.
    fn col2im(&self, col: &[f32], dx: &mut [f32]) {
        self.col2im_channels(0..self.in_dims.c, col, dx);
    }

    /// [`Self::col2im`] for the input channels `chans` only, whose `k²` rows each `col`
    /// holds from its start.
    fn col2im_channels(&self, chans: std::ops::Range<usize>, col: &[f32], dx: &mut [f32]) {
        let (i, o, k) = (self.in_dims, self.out_dims, self.k);
        let p = o.h * o.w;
        for c in chans.clone() {
            for ky in 0..k {
                for kx in 0..k {
                    let row = &col[(((c - chans.start) * k + ky) * k + kx) * p..][..p];
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

    /// Whether a call on a batch of `b` takes the sparse path; `nnz` counts its non-zero
    /// inputs, called only when [`InputPath::Auto`] needs it.
    fn sparse(&self, b: usize, nnz: impl FnOnce() -> usize) -> bool {
        match self.path {
            InputPath::Dense => false,
            InputPath::Sparse => true,
            InputPath::Auto => self.predicted_sparse_faster(b, nnz()),
        }
    }

    /// How backward computes, from the input's and the output gradient's non-zero counts:
    /// `(weight gradient, input gradient)`, each `true` where it scatters the non-zero output
    /// gradients. Element-operation counts for a batch of `b` (`P`, `P_in` output and input
    /// positions, `K = C_in·k²`, `C` output channels, `d_x = nnz_x / (b·P_in)` non-zero
    /// inputs per input position):
    /// weight gradient by pairs = `b·P·C + b·C_in·P_in + PAIR_COST·nnz_dy·k²·d_x` (scan both,
    /// then one scalar update per pair of a non-zero output gradient and a non-zero input it
    /// sees), against the input path's weight gradient (GEMM: `2·K·P·C·b / GEMM_SPEEDUP +
    /// K·P·b`; scatter of inputs: `2·nnz_x·k²/s²·C + K·C + b·P·C`); input gradient by scatter
    /// = `2·nnz_dy·k²·C_in + 2·b·P_in·C_in + K·C` (scatter, clear and transpose the
    /// accumulator, lay out the weights) against the GEMM's `2·K·P·C·b / GEMM_SPEEDUP + 2·K·P·b`.
    pub fn predicted_grad_sparse(
        &self,
        b: usize,
        nnz_x: usize,
        nnz_dy: usize,
        x_sparse: bool,
    ) -> (bool, bool) {
        let (kk, p, c) = (
            self.fan_in() as f64,
            (self.out_dims.h * self.out_dims.w) as f64,
            self.out_dims.c as f64,
        );
        let (cin, pin) = (self.in_dims.c as f64, (self.in_dims.h * self.in_dims.w) as f64);
        let (b, k2) = (b as f64, (self.k * self.k) as f64);
        let (nnz_x, nnz_dy) = (nnz_x as f64, nnz_dy as f64);
        let gemm = 2.0 * kk * p * c * b / GEMM_SPEEDUP;
        let dw_input_path = if x_sparse {
            2.0 * nnz_x * k2 / (self.stride * self.stride) as f64 * c + kk * c + b * p * c
        } else {
            gemm + kk * p * b
        };
        let dw_pairs = b * p * c + b * cin * pin + PAIR_COST * nnz_dy * k2 * nnz_x / (b * pin).max(1.0);
        let dx_scatter = 2.0 * nnz_dy * k2 * cin + 2.0 * b * pin * cin + kk * c;
        (dw_pairs < dw_input_path, dx_scatter < gemm + 2.0 * kk * p * b)
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

    /// The largest per-thread workspace a call needs (values): im2col columns, the sparse
    /// path's `P × C_out` accumulator, or the scattered input gradient's `P_in × C_in`
    /// ([`crate::workspace`]).
    pub fn workspace_len(&self) -> usize {
        let p = self.out_dims.h * self.out_dims.w;
        (self.fan_in() * p)
            .max(p * self.out_dims.c)
            .max(self.in_dims.len())
    }

    /// Calls `f(tap, q)` for every kernel tap `(ky·k + kx)` of output position `(oy, ox)`
    /// whose input pixel `q = iy·W_in + ix` lies inside the input, taps in increasing order.
    #[inline(always)]
    fn out_taps(&self, oy: usize, ox: usize, mut f: impl FnMut(usize, usize)) {
        let (k, s, pad, i) = (self.k, self.stride, self.pad, self.in_dims);
        for ky in 0..k {
            let Some(iy) = (oy * s + ky).checked_sub(pad).filter(|&iy| iy < i.h) else {
                continue;
            };
            for kx in 0..k {
                if let Some(ix) = (ox * s + kx).checked_sub(pad).filter(|&ix| ix < i.w) {
                    f(ky * k + kx, iy * i.w + ix);
                }
            }
        }
    }

    /// The weight gradient (`C_out × K`, the weights' layout) from pairs of a non-zero output
    /// gradient and a non-zero input under one of its taps: per sample, the non-zero inputs
    /// are listed by pixel, then every output channel's non-zero gradients visit their taps'
    /// lists. Output channels are split over threads in blocks, each summing over the samples
    /// in order, so the result does not depend on the number of threads. Added to `sum`
    /// when one is given (a gradient summed over earlier passes), else written fresh.
    fn weight_grad_by_pairs(
        &self,
        x: &Tensor,
        dy: &Tensor,
        threads: usize,
        sum: Option<Buf>,
        lists: Option<Vec<PixelList>>,
    ) -> Buf {
        let (i, o, kk) = (self.in_dims, self.out_dims, self.fan_in());
        let (p, pin, k2) = (o.h * o.w, i.h * i.w, self.k * self.k);
        let lists = lists.unwrap_or_else(|| {
            x.data
                .chunks_exact(i.len())
                .map(|xs| PixelList::new(xs, pin))
                .collect()
        });
        // A fresh gradient's rows are zeroed just before their sums, while in cache.
        let fresh = sum.is_none();
        let mut dw = sum.unwrap_or_else(|| Buf::take(self.weight.value.len()));
        let per_c = o.c.div_ceil(threads.min(o.c)).max(1);
        dw.par_chunks_mut(per_c * kk).enumerate().for_each(|(blk, out)| {
            let c0 = blk * per_c;
            for (j, row) in out.chunks_exact_mut(kk).enumerate() {
                if fresh {
                    row.fill(0.0);
                }
                for (list, dyb) in lists.iter().zip(dy.data.chunks_exact(o.len())) {
                    for_each_nonzero(&dyb[(c0 + j) * p..][..p], |q, dv| {
                        self.out_taps(q / o.w, q % o.w, |tap, pix| {
                            for &(ci, xv) in list.at(pix) {
                                row[ci as usize * k2 + tap] += dv * xv;
                            }
                        });
                    });
                }
            }
        });
        dw
    }

    /// The input gradient of a batch by scattering the non-zero output gradients: each adds
    /// its value times the weights of its channel and tap (laid out `C_out × k² × C_in`) to
    /// the input pixel's `C_in` gradients, accumulated pixel-major and transposed at the end.
    /// Samples are split over threads.
    fn input_grad_by_scatter(&mut self, dy: &Tensor, dx: &mut Tensor, threads: usize) {
        let (i, o) = (self.in_dims, self.out_dims);
        let pin = i.h * i.w;
        let by_tap = self.by_tap_for(dy);
        let w_r = by_tap
            .as_ref()
            .unwrap_or(&self.kept.weights_in[Layout::ByTap as usize]);
        let per = dx.b.div_ceil(threads).max(1);
        dx.data
            .par_chunks_mut(per * i.len())
            .zip(dy.data.par_chunks(per * o.len()))
            .for_each(|(dxs, dys)| {
                workspace::with(i.len(), |acc| {
                    for (dxb, dyb) in dxs.chunks_exact_mut(i.len()).zip(dys.chunks_exact(o.len())) {
                        scatter_input_grad(self, w_r, dyb, acc);
                        transpose(acc, pin, i.c, dxb);
                    }
                });
            });
    }

    /// Adds one sample's input gradient to `dx` (zeroed by the caller): `W^T · dY` into
    /// `K × P` columns of `col`, then col2im, over only the output channels whose gradient
    /// is not zero everywhere: the product's cost falls with the channels left out. Behind
    /// an auxiliary head's LIF layer whole channels can be so (a neuron far from threshold
    /// has a zero surrogate derivative, and where the input is sparse a channel's membranes
    /// follow its bias alike at every position). On the DVS128 walk recordings, 40–45% of
    /// the `dvs-gesture` heads' channels at most steps of one, 1–3% of the first head's in
    /// the other.
    ///
    /// The live channels' rows are moved to the front of `dy` (which is left so), their
    /// weights copied out per group of input channels: with `n` live channels a group of
    /// `g` input channels needs `g·k²·(P + n)` values, so the groups are as large as fit in
    /// the `K × P` of `col`, the scratch this pass always took. A left-out channel only
    /// adds zeros to each sum (`a + w · 0 = a` exactly), the GEMM kernels sum each value in
    /// channel order, and the groups write disjoint input channels: within one block of
    /// their inner dimension (256 channels) the result is the same bits as the product over
    /// every channel (`tests`; `gemm`, on the AVX2 path, takes a product over a few channels
    /// down kernels that round otherwise).
    fn input_grad_by_gemm(&self, w_eff: &[f32], dy: &mut [f32], dx: &mut [f32], col: &mut [f32]) {
        let (kk, c, c_in, k2) = (self.fan_in(), self.out_dims.c, self.in_dims.c, self.k * self.k);
        let (h, w) = (self.out_dims.h, self.out_dims.w);
        let p = h * w;
        let live = live_channels(dy, c, p);
        let n = live.len();
        if n == 0 {
            return;
        }
        if let Some(rows) = self.winograd_rows(n, col.len()) {
            return winograd::input_grad(w_eff, &live, c_in, (h, w), dy, dx, col, rows);
        }
        // Every channel when fewer than one in 16 is left out (that saves less than the
        // copies and each group's packing of dY cost), or when not even a group of one
        // input channel fits beside the live weights.
        if c - n < c.div_ceil(16) || c_in * p < p + n {
            matmul(kk, c, p, 1.0, w_eff, true, dy, false, 0.0, col);
            return self.col2im(col, dx);
        }
        for (j, &ch) in live.iter().enumerate() {
            if j < ch {
                dy.copy_within(ch * p..(ch + 1) * p, j * p);
            }
        }
        // Groups as even as they can be, each as large as fits beside its live weights.
        let groups = c_in.div_ceil(c_in * p / (p + n));
        let per = c_in.div_ceil(groups);
        let dy = &dy[..n * p];
        for c0 in (0..c_in).step_by(per) {
            let g = per.min(c_in - c0);
            let (cols, w_live) = col.split_at_mut(g * k2 * p);
            let w_live = &mut w_live[..n * g * k2];
            for (dst, &ch) in w_live.chunks_exact_mut(g * k2).zip(&live) {
                dst.copy_from_slice(&w_eff[ch * kk + c0 * k2..][..g * k2]);
            }
            matmul(g * k2, n, p, 1.0, w_live, true, dy, false, 0.0, cols);
            self.col2im_channels(c0..c0 + g, cols, dx);
        }
    }

    /// The rows of tiles per chunk of a Winograd input gradient over `n` live output
    /// channels within `scratch` values, when this convolution takes one ([`Self::winograd`]:
    /// a 3 × 3 kernel at stride 1 with padding 1, the transformed weights and enough tiles
    /// per chunk fit: [`winograd::rows_per_chunk`]).
    fn winograd_rows(&self, n: usize, scratch: usize) -> Option<usize> {
        let (c_in, o) = (self.in_dims.c, self.out_dims);
        let shape = self.k == 3 && self.stride == 1 && self.pad == 1;
        if !(self.winograd && shape) {
            return None;
        }
        winograd::rows_per_chunk(n, c_in, (o.h, o.w), scratch)
    }

    /// Makes `weights_in[layout]` hold the effective weights in that layout: kept ones
    /// while the weights have not changed, else computed into a buffer from the pool.
    fn refresh_weights(&mut self, layout: Layout) {
        let (l, n) = (layout as usize, self.weight.value.len());
        if self.kept.weights_in[l].len() == n {
            return;
        }
        let mut w = Buf::take(n);
        // Without standardisation, no gains: the layouts are the raw weights, and no
        // statistics are computed.
        let gain = if self.ws { &self.gain.value[..] } else { &[][..] };
        let (n, cin, k2) = (self.fan_in(), self.in_dims.c, self.k * self.k);
        let (weight, stats) = (&self.weight.value, &mut self.kept.stats);
        match layout {
            Layout::Rows => ws_forward(weight, stats, gain, n, &mut w),
            Layout::Transposed => ws_forward_transposed(weight, stats, gain, n, &mut w),
            Layout::ByTap => ws_forward_by_tap(weight, stats, gain, (cin, k2), 0..self.out_dims.c, &mut w),
        }
        self.kept.weights_in[l] = w;
    }

    /// The effective weights laid out [`Layout::ByTap`] for the scattered input gradient of
    /// `dy`, which reads the rows of the output channels with a gradient only. Where the
    /// layout serves this call alone (without `accumulate`, [`Self::release_weights`] lets it
    /// go at the end of the backward), only those rows are built, into a buffer returned
    /// here and never kept: on the DVS128 walk, the heads' sparse output gradients leave
    /// many channels without one. Otherwise None, with the whole layout in `kept`.
    fn by_tap_for(&mut self, dy: &Tensor) -> Option<Buf> {
        let l = Layout::ByTap as usize;
        if self.accumulate || self.kept.weights_in[l].len() == self.weight.value.len() {
            self.refresh_weights(Layout::ByTap);
            return None;
        }
        let o = self.out_dims;
        let rows = live_channels(&dy.data, o.c, o.h * o.w).into_iter();
        let mut w = Buf::take(self.weight.value.len());
        let gain = if self.ws { &self.gain.value[..] } else { &[][..] };
        let shape = (self.in_dims.c, self.k * self.k);
        ws_forward_by_tap(
            &self.weight.value,
            &mut self.kept.stats,
            gain,
            shape,
            rows,
            &mut w,
        );
        Some(w)
    }

    /// Returns effective weights to the pool that no kept step needs: the input gradient's
    /// layouts once no kept step will compute one (else they stay from forward to
    /// backward), the sparse forward's at once; nothing with `accumulate`, where they serve
    /// every pass until the weights change. Without `accumulate` they would be recomputed
    /// at the next forward anyway (the weights change in between), and a network's copies
    /// would otherwise stay resident beside the weights.
    fn release_weights(&mut self) {
        if self.accumulate {
            return;
        }
        let keep = !self.caches.is_empty() && self.input_grad;
        for l in [Layout::Rows, Layout::Transposed, Layout::ByTap] {
            if !(keep && l == Layout::Rows) {
                self.kept.weights_in[l as usize] = Buf::default();
            }
        }
        // The statistics serve the backward of a kept step and a deferred standardisation's
        // backward; else they go with the layouts (the next pass computes them again, unless
        // `update` has: it keeps the updated weights').
        if self.caches.is_empty() && self.kept.pending.is_empty() {
            self.kept.stats.clear();
        }
    }

    /// The input channels with a non-zero value in some sample of `x`, when the dense
    /// forward should take only those: at least one channel in 16 is zero everywhere (fewer
    /// save less than listing them costs), and the effective weights will not serve later
    /// passes unchanged (no `accumulate`, and no step kept before this one: a step history,
    /// BPTT's, reuses one layout of every channel's weights across its steps). A channel
    /// zero everywhere gives `k²` rows of zeros in im2col: leaving them and their weights
    /// out leaves out products by zero only. Spiking layers leave many channels silent:
    /// 50–74% of the inputs of `dvs-gesture`'s dense-path convolutions on the DVS128 walk
    /// recordings. The forward then builds no layout of every channel's weights; a
    /// backward that computes the input gradient by GEMM builds the one it reads (the
    /// scatter builds its own either way).
    fn live_inputs(&self, x: &Tensor) -> Option<Vec<usize>> {
        if self.accumulate || !self.caches.is_empty() {
            return None;
        }
        let c_in = self.in_dims.c;
        let live = live_channels(&x.data, c_in, self.in_dims.h * self.in_dims.w);
        (c_in - live.len() >= c_in.div_ceil(16)).then_some(live)
    }

    /// Forward pass. The batch is cut into one run of samples per thread, each with one
    /// workspace; every sample's output is computed alone, so the result does not depend on
    /// threads.
    ///
    /// # Panics
    /// When `x` is not of the layer's input shape.
    pub fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        assert_eq!(x.dims, self.in_dims, "conv input shape");
        if x.b == 1 {
            // One sample's few products are all a step of this layer has to share: idle
            // pipeline workers may take columns of them ([`crate::assist`]).
            crate::assist::want_help();
        }
        let sparse = self.sparse(x.b, || nonzeros(&x.data));
        self.path_calls[sparse as usize] += 1;
        let (o, kk) = (self.out_dims, self.fan_in());
        let (p, pin) = (o.h * o.w, self.in_dims.h * self.in_dims.w);
        // The dense path takes only the input channels with a spike somewhere in the batch,
        // when enough are silent ([`Self::live_inputs`]). (The sparse path reads the live
        // channels' rows only too, but making only those rows of its transposed weights did
        // not make it faster: docs/speed-log.md.)
        let live = (!sparse).then(|| self.live_inputs(&x)).flatten();
        // The sparse path scatters rows of the effective weights transposed to K × C_out,
        // computed in that layout; the dense path over live channels their columns only.
        // Taken as large as all the weights, as the effective weights of every channel would
        // be: a size that changed with the input would make the pool keep buffers of every
        // size the stream ever asked for ([`crate::pool`]).
        let w_live = live.as_ref().map(|chans| {
            let k2 = self.k * self.k;
            let mut w = Buf::take(self.weight.value.len());
            let gain = if self.ws { &self.gain.value[..] } else { &[][..] };
            let m = o.c * chans.len() * k2;
            let weight = &self.weight.value;
            ws_forward_channels(weight, &mut self.kept.stats, gain, (kk, k2), chans, &mut w[..m]);
            w
        });
        self.kept.forward_layout =
            live.is_none()
                .then_some(if sparse { Layout::Transposed } else { Layout::Rows });
        if let Some(layout) = self.kept.forward_layout {
            self.refresh_weights(layout);
        }
        // Every output value is written below (transpose or bias), so no zeroing.
        let mut y = Tensor::uninit(x.b, o);
        let (in_len, out_len) = (self.in_dims.len(), o.len());
        let per = x.b.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let this = &*self;
        let w_t = sparse.then_some(&this.kept.weights_in[Layout::Transposed as usize]);
        // The dense path's weights and their columns (`K`, or the live channels' `k²` each).
        let (w_eff, kk) = match (&w_live, &live) {
            (Some(w), Some(chans)) => (&w[..], chans.len() * self.k * self.k),
            _ => (&this.kept.weights_in[Layout::Rows as usize][..], kk),
        };
        // The sparse path's inputs listed by pixel; the backward of this step reuses them.
        let lists: Vec<PixelList> = if sparse {
            x.data
                .par_chunks(in_len)
                .map(|xs| PixelList::new(xs, pin))
                .collect()
        } else {
            Vec::new()
        };
        y.data
            .par_chunks_mut(per * out_len)
            .zip(x.data.par_chunks(per * in_len))
            .enumerate()
            .for_each(|(run, (ys, xs))| {
                workspace::with(if sparse { p * o.c } else { kk * p }, |buf| {
                    let samples = ys.chunks_exact_mut(out_len).zip(xs.chunks_exact(in_len));
                    for (j, (ys, xs)) in samples.enumerate() {
                        if let Some(w_t) = w_t {
                            sparse_forward(this, w_t, &lists[run * per + j], buf);
                            transpose(buf, p, o.c, ys);
                        } else {
                            match &live {
                                Some(chans) => this.im2col_channels(chans.iter().copied(), xs, buf),
                                None => this.im2col(xs, buf),
                            }
                            for (co, row) in ys.chunks_exact_mut(p).enumerate() {
                                row.fill(this.bias.value[co]);
                            }
                            // No live channel: the bias alone.
                            if kk > 0 {
                                matmul(o.c, kk, p, 1.0, w_eff, false, &buf[..kk * p], false, 1.0, ys);
                            }
                        }
                    }
                });
            });
        // The effective weights serve a backward pass only when it computes an input gradient.
        if train {
            // Kept for the backward of a lone kept step (online learning) only: a step
            // history (BPTT) keeps its inputs, not their lists as well.
            self.kept.lists = (sparse && self.caches.is_empty()).then_some(lists);
            self.caches.push(x);
        }
        self.release_weights();
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
    ///
    /// # Panics
    /// Without a forward step to go back through.
    pub fn backward(&mut self, mut dy: Tensor) -> Tensor {
        // Deferred, the weights' gradient is written by `params_mut` or `update`, not here.
        let deferred = self.ws && (self.accumulate || self.defer_ws_grad);
        let overwrite = !deferred && self.weight.grad_to_overwrite();
        self.gain.ensure_grad();
        self.bias.ensure_grad();
        let x = self.caches.pop().expect("conv backward without forward");
        // The forward's lists of this step's inputs, when it kept them.
        let lists = if self.caches.is_empty() {
            self.kept.lists.take()
        } else {
            None
        };
        let auto = |p: InputPath| p == InputPath::Auto;
        // The forward's lists already counted the non-zero inputs.
        let nnz_x = if auto(self.path) || auto(self.grad_path) {
            lists
                .as_ref()
                .map_or_else(|| nonzeros(&x.data), |l| l.iter().map(PixelList::len).sum())
        } else {
            0
        };
        let sparse = self.sparse(x.b, || nnz_x);
        let (dw_pairs, dx_scatter) = match self.grad_path {
            InputPath::Dense => (false, false),
            InputPath::Sparse => (true, true),
            InputPath::Auto => self.predicted_grad_sparse(x.b, nnz_x, nonzeros(&dy.data), sparse),
        };
        let dx_scatter = dx_scatter && self.input_grad;
        self.grad_path_calls[0] += dw_pairs as u64;
        self.grad_path_calls[1] += dx_scatter as u64;
        if self.input_grad && !dx_scatter {
            self.refresh_weights(Layout::Rows);
        }
        let (o, kk) = (self.out_dims, self.fan_in());
        let p = o.h * o.w;
        let (in_len, out_len) = (self.in_dims.len(), o.len());
        for dyb in dy.data.chunks_exact(out_len) {
            add_plane_sums(dyb, p, &mut self.bias.grad);
        }
        let threads = rayon::current_num_threads().max(1);
        let t0 = std::time::Instant::now();
        // Deferred, pairs add straight into the summed gradient.
        let sum = (deferred && dw_pairs && !self.kept.pending.is_empty())
            .then(|| std::mem::take(&mut self.kept.pending));
        let dw_eff = if dw_pairs {
            self.weight_grad_by_pairs(&x, &dy, threads, sum, lists)
        } else if self.weight.value.len() >= CHANNEL_SPLIT_MIN_WEIGHTS {
            self.weight_grad_by_channel(&x, &dy, sparse, threads)
        } else {
            self.weight_grad_by_batch(&x, &dy, sparse, threads)
        };
        let t1 = std::time::Instant::now();
        self.grad_seconds[0] += (t1 - t0).as_secs_f64();
        // Without an input gradient, an empty batch is returned (nothing is allocated).
        let mut dx = if dx_scatter {
            Tensor::uninit(x.b, self.in_dims)
        } else {
            Tensor::zeros(if self.input_grad { x.b } else { 0 }, self.in_dims)
        };
        if dx_scatter {
            self.input_grad_by_scatter(&dy, &mut dx, threads);
        } else if self.input_grad {
            let this = &*self;
            let w_eff = &this.kept.weights_in[Layout::Rows as usize];
            let per = x.b.div_ceil(threads).max(1);
            dx.data
                .par_chunks_mut(per * in_len)
                .zip(dy.data.par_chunks_mut(per * out_len))
                .for_each(|(dxs, dys)| {
                    workspace::with(kk * p, |col| {
                        for (dxb, dyb) in dxs.chunks_exact_mut(in_len).zip(dys.chunks_exact_mut(out_len)) {
                            this.input_grad_by_gemm(w_eff, dyb, dxb, col);
                        }
                    });
                });
        }
        self.grad_seconds[1] += t1.elapsed().as_secs_f64();
        if deferred {
            // Summed here; turned into the raw weights' gradient once, by `params_mut` or
            // `update`.
            if self.kept.pending.is_empty() {
                self.kept.pending = dw_eff;
            } else {
                self.kept
                    .pending
                    .iter_mut()
                    .zip(dw_eff.iter())
                    .for_each(|(a, b)| *a += b);
            }
        } else if self.ws {
            self.ws_backward(&dw_eff, overwrite);
        } else if overwrite {
            self.weight.grad.copy_from_slice(&dw_eff);
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

/// What a convolution keeps between passes.
#[derive(Clone, Debug, Default)]
struct Kept {
    /// The effective weights in the three layouts the paths read ([`Layout`]), from the pool
    /// while a pass (or, with `accumulate`, the weights' current values) needs them. A
    /// layout that is not empty holds the current weights' values: whatever changes the
    /// weights (through [`Conv2d::params_mut`]) empties all three.
    weights_in: [Buf; 3],
    /// The summed gradient of the effective weights that has not yet been turned into the
    /// raw weights' and gains' (standardisation with `accumulate` or `defer_ws_grad` only).
    pending: Buf,
    /// Per output channel, the current weights' standardisation statistics (mean and
    /// `sqrt(var·n + ε)`), or empty: the layouts and the backward of one step read the
    /// same weights, so they are computed once per step, kept as the layouts are (cleared,
    /// not freed, when they go); [`Conv2d::update`] computes the updated weights' and keeps
    /// them for the next pass.
    stats: Vec<(f32, f32)>,
    /// The sparse forward's inputs listed by pixel, one per sample, for the weight gradient
    /// by pairs of the same step: kept while that step is the only one kept.
    lists: Option<Vec<PixelList>>,
    /// The layout of every channel's effective weights the last forward read (none when it
    /// took the live input channels' only): [`Conv2d::update`]'s fused path builds it for
    /// the next.
    forward_layout: Option<Layout>,
}

/// The layouts of the effective weights that the paths read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `C_out × K` (the weights' own layout): the GEMMs.
    Rows = 0,
    /// `K × C_out`: the sparse forward's scatter.
    Transposed = 1,
    /// `C_out × k² × C_in`: the scattered input gradient.
    ByTap = 2,
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
    /// Adds the sum of each plane of `p` values in `planes` to its value in `out` (the
    /// bias's gradient of one sample), in the order of [`crate::math::sum`].
    fn add_plane_sums(planes: &[f32], p: usize, out: &mut [f32]) {
        for (g, plane) in out.iter_mut().zip(planes.chunks_exact(p)) {
            *g += crate::math::sum(plane);
        }
    }
}

/// The channels, in order, with a non-zero value somewhere in `data`: samples of `c`
/// planes of `p` values each.
fn live_channels(data: &[f32], c: usize, p: usize) -> Vec<usize> {
    (0..c)
        .filter(|&ch| data.chunks_exact(c * p).any(|s| any_nonzero(&s[ch * p..][..p])))
        .collect()
}

/// `row[oy · w + ox] = plane[(oy + dy) · w + ox + dx]` where that lies inside the `h_in × w`
/// plane, else 0, for the `row.len() / w` output rows: im2col's row of one channel and tap at
/// stride 1 when the output is as wide as the input. The rows that read the plane are one
/// contiguous run of it, copied at once; the columns shifted out of it are zeroed after.
fn shifted_plane(plane: &[f32], h_in: usize, w: usize, dy: isize, dx: isize, row: &mut [f32]) {
    let (h_out, wi) = ((row.len() / w) as isize, w as isize);
    let oy0 = (-dy).clamp(0, h_out);
    let oy1 = (h_in as isize - dy).clamp(oy0, h_out);
    let (a, b) = ((oy0 * wi) as usize, (oy1 * wi) as usize);
    row[..a].fill(0.0);
    row[b..].fill(0.0);
    if a == b {
        return;
    }
    if dx.unsigned_abs() >= w {
        row[a..b].fill(0.0);
        return;
    }
    // The run: dst a..b from plane a + shift.., trimmed where it would leave the plane (those
    // places are columns shifted out, zeroed below).
    let shift = dy * wi + dx;
    let lo = (-(a as isize + shift)).max(0) as usize;
    let hi = ((b as isize + shift) - plane.len() as isize).max(0) as usize;
    let src = (a as isize + shift + lo as isize) as usize;
    row[a + lo..b - hi].copy_from_slice(&plane[src..src + (b - hi) - (a + lo)]);
    let n = dx.unsigned_abs();
    for line in row[a..b].chunks_exact_mut(w) {
        let edge = if dx > 0 {
            &mut line[w - n..]
        } else {
            &mut line[..n]
        };
        edge.fill(0.0);
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

impl LayerOps for Conv2d {
    fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        Conv2d::forward(self, x, train)
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        Conv2d::backward(self, dy)
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        Conv2d::params_mut(self)
    }

    fn params(&self) -> Vec<&Param> {
        Conv2d::params(self)
    }

    fn reset(&mut self) {
        self.caches.clear();
        self.kept.lists = None;
    }

    fn in_dims(&self) -> Dims {
        self.in_dims
    }

    fn out_dims(&self) -> Dims {
        self.out_dims
    }

    fn describe(&self) -> String {
        format!(
            "conv {}→{} k{} s{} p{}{}",
            self.in_dims.c,
            self.out_dims.c,
            self.k,
            self.stride,
            self.pad,
            if self.ws { " ws" } else { "" }
        )
    }

    fn memory(&self, b: usize, m: &mut LayerMemory) {
        let pooled = super::pooled_bytes;
        m.kept_per_step = pooled(b * self.in_dims.len());
        // Per thread, one scratch buffer for whichever path the layer takes (im2col
        // columns or the sparse accumulator; the larger, since a stream warms up both).
        // The weight gradient: split over channels, itself and (sparse path) its
        // transposed blocks; split over the batch, one partial per chunk in flight besides
        // the running sum, and the transpose. And the effective weights.
        let w = pooled(self.weight.value.len());
        let chunks = b.div_ceil(b.div_ceil(GRAD_CHUNKS).max(1));
        // Weight-gradient buffers with `threads` workers.
        let grads = |threads: usize| {
            if self.weight.value.len() >= CHANNEL_SPLIT_MIN_WEIGHTS {
                2
            } else {
                let in_flight = threads.min(chunks);
                (if chunks > in_flight { in_flight + 1 } else { chunks }) + 1
            }
        };
        // The scratch is one buffer per thread, not pooled: no class rounding.
        m.scratch = self.workspace_len() * 4;
        // Deferred ([`Self::defer_ws_grad`]), the effective weights' gradient is kept until
        // the update in place of the weights' own, which is never allocated: it is counted
        // with the parameters' gradients, not here. Beside it in the backward pass: the
        // other weight-gradient buffers, and the effective weights when the input gradient
        // reads them; the forward's layout is gone by then, and is no larger.
        let deferred = self.ws && self.defer_ws_grad && !self.accumulate;
        m.workspace = if deferred {
            (grads(1) - 1 + usize::from(self.input_grad)).max(1) * w
        } else {
            (grads(1) + 1) * w
        };
        // `accumulate` keeps, between updates, the summed gradient of the effective weights
        // and the effective weights in the layouts the passes read: up to two of them (the
        // forward's and the input gradient's) besides the one counted above.
        if self.accumulate {
            m.state += 2 * w;
        }
        // A second thread adds its scratch only if the batch gives it a sample.
        if b > 1 {
            m.workspace_per_thread = m.scratch + (grads(2) - grads(1)) * w;
        }
    }

    fn kept(&self) -> usize {
        self.caches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{OptimConfig, Optimizer};

    /// The dense forward over the input channels with a spike only gives the outputs of
    /// the dense forward over every channel (effective weights, im2col, one GEMM onto the
    /// bias, as the forward computed them before): the same bits while `K` stays within one
    /// block of the GEMM crate's inner dimension (256), within rounding above it (the blocks
    /// then fall elsewhere); at batch 1 and 3 (channels live in one sample only count), with
    /// weight standardisation and without, stride 1 and 2, with an input gradient and
    /// without; and, with no channel live, the bias alone.
    #[test]
    fn dense_forward_over_live_input_channels_gives_the_same_outputs() {
        let mut rng = crate::Rng::new(12);
        for (c_in, h, c_out, stride, ws, b) in [
            (16, 8, 24, 1, true, 1),
            (24, 6, 32, 2, false, 3),
            (128, 8, 64, 1, true, 1),
            (64, 5, 16, 1, true, 3),
        ] {
            let d = Dims::new(c_in, h, h);
            let mut conv = Conv2d::new(d, c_out, 3, stride, 1, ws, &mut rng);
            conv.path = InputPath::Dense;
            // A third of the channels silent in every sample, one live in the last only.
            let x: Vec<f32> = (0..b * d.len())
                .map(|i| {
                    let (s, c) = (i / d.len(), i % d.len() / (h * h));
                    let silent = c % 3 == 0 || (c == 1 && s + 1 < b);
                    (!silent && rng.next_f32() < 0.3) as u8 as f32
                })
                .collect();
            let chans = conv.live_inputs(&Tensor::from_vec(b, d, x.clone())).unwrap();
            assert_eq!(chans.len(), c_in - c_in.div_ceil(3), "{chans:?}");
            let (kk, p) = (conv.fan_in(), conv.out_dims.len() / c_out);
            let w = conv.effective_weight();
            let mut whole = vec![0.0; b * conv.out_dims.len()];
            let mut col = vec![0.0; kk * p];
            for (xs, ys) in x.chunks_exact(d.len()).zip(whole.chunks_exact_mut(c_out * p)) {
                conv.im2col(xs, &mut col);
                for (co, row) in ys.chunks_exact_mut(p).enumerate() {
                    row.fill(conv.bias.value[co]);
                }
                matmul(c_out, kk, p, 1.0, &w, false, &col, false, 1.0, ys);
            }
            let exact = kk <= 256;
            for input_grad in [true, false] {
                let mut c = conv.clone();
                c.input_grad = input_grad;
                let y = c.forward(Tensor::from_vec(b, d, x.clone()), true);
                // With this step kept (a step history), the next takes every channel.
                assert!(c.live_inputs(&Tensor::from_vec(b, d, x.clone())).is_none());
                for (j, (a, l)) in whole.iter().zip(y.data.iter()).enumerate() {
                    let same = if exact {
                        a.to_bits() == l.to_bits()
                    } else {
                        (a - l).abs() <= 1e-5 * (1.0 + a.abs())
                    };
                    assert!(
                        same,
                        "{c_in}→{c_out}, input gradient {input_grad}, at {j}: {a} vs {l}"
                    );
                }
            }
        }
        // No channel live: the bias alone.
        let d = Dims::new(8, 5, 5);
        let mut c = Conv2d::new(d, 4, 3, 1, 1, true, &mut rng);
        c.path = InputPath::Dense;
        let y = c.forward(Tensor::zeros(2, d), false);
        let bias: Vec<f32> = (0..2 * 4 * 25).map(|i| c.bias.value[i / 25 % 4]).collect();
        assert_eq!(y.data.to_vec(), bias);
    }

    /// An output gradient of `c_out` planes of `p` values with a fraction `dead` of the
    /// channels zero everywhere; the live ones have zeros too, as a surrogate's derivative
    /// gives.
    fn output_grad(rng: &mut crate::Rng, c_out: usize, p: usize, dead: f32) -> Vec<f32> {
        let mut dy = Vec::with_capacity(c_out * p);
        for _ in 0..c_out {
            let off = rng.next_f32() < dead;
            dy.extend((0..p).map(|_| match rng.next_f32() - 0.5 {
                v if off || v > 0.3 => 0.0,
                v => v,
            }));
        }
        dy
    }

    /// The input gradient over the live output channels only gives the same bits as the
    /// product over all of them (the old way: one GEMM of `W^T` and the whole `dY` into the
    /// same `K × P` scratch, then col2im), with none, some, most and all channels'
    /// gradients zero everywhere, up to 256 channels (one block of the GEMM crate's inner
    /// dimension), stride 1 and 2, in one group of input channels and in many (few output
    /// positions), and with one input channel (no room: every channel).
    #[test]
    fn input_grad_over_live_channels_gives_the_same_bits() {
        let mut rng = crate::Rng::new(11);
        for (c_in, h, c_out, stride) in [
            (8, 9, 16, 1),
            (16, 9, 128, 1),
            (12, 9, 256, 1),
            (8, 9, 40, 2),
            (8, 4, 64, 1),
            (1, 9, 16, 1),
        ] {
            let d = Dims::new(c_in, h, h + 2);
            let mut conv = Conv2d::new(d, c_out, 3, stride, 1, true, &mut rng);
            // The im2col path's (Winograd's is tested below).
            conv.winograd = false;
            let (kk, p) = (conv.fan_in(), conv.out_dims.h * conv.out_dims.w);
            let w: Vec<f32> = (0..c_out * kk).map(|_| rng.next_f32() - 0.5).collect();
            for dead in [0.0, 0.5, 0.9, 1.0] {
                let mut dy = output_grad(&mut rng, c_out, p, dead);
                let mut whole = vec![0.0; d.len()];
                let mut col = vec![0.0; kk * p];
                matmul(kk, c_out, p, 1.0, &w, true, &dy, false, 0.0, &mut col);
                conv.col2im(&col, &mut whole);
                let mut live = vec![0.0; d.len()];
                col.fill(f32::NAN);
                conv.input_grad_by_gemm(&w, &mut dy, &mut live, &mut col);
                // `gemm` (the AVX2 path) takes a product over a few channels down other
                // kernels, which round otherwise: there, within rounding.
                let exact = crate::math::simd() != crate::math::Simd::Avx2;
                let same = whole.iter().zip(&live).all(|(a, b)| {
                    a.to_bits() == b.to_bits() || (!exact && (a - b).abs() <= 1e-6 * (1.0 + a.abs()))
                });
                assert!(
                    same,
                    "{c_in}→{c_out} at {h}×{}, stride {stride}, {dead} of the channels dead",
                    h + 2
                );
            }
        }
    }

    /// Winograd's input gradient is the convolution's input gradient: against the sum in
    /// `f64`, within a few units of `f32` rounding relative to the sum of the terms'
    /// magnitudes (32 for Winograd, 8 for im2col); on planes odd and even in each direction
    /// (the last row or column of tiles partly outside), as small as 1 × 1, with dead output
    /// channels and every channel dead, one input channel, and in chunks of every size down
    /// to one row of tiles.
    #[test]
    fn winograd_input_grad_is_the_input_gradient() {
        let mut rng = crate::Rng::new(5);
        for (c_in, c_out, h, w) in [
            (3, 5, 1, 1),
            (2, 4, 2, 3),
            (4, 6, 5, 4),
            (1, 8, 7, 9),
            (32, 64, 17, 17),
            (64, 128, 32, 32),
        ] {
            let d = Dims::new(c_in, h, w);
            let conv = Conv2d::new(d, c_out, 3, 1, 1, true, &mut rng);
            let (kk, p) = (conv.fan_in(), h * w);
            let wt: Vec<f32> = (0..c_out * kk).map(|_| rng.next_f32() - 0.5).collect();
            for dead in [0.0, 0.5, 1.0] {
                let dy = output_grad(&mut rng, c_out, p, dead);
                // dX[ci, y, x] = Σ W[co, ci, ky, kx] · dY[co, y + 1 − ky, x + 1 − kx].
                let mut exact = vec![0.0f64; d.len()];
                let mut scale = vec![0.0f64; d.len()];
                for co in 0..c_out {
                    for ci in 0..c_in {
                        for (tap, &wv) in wt[co * kk + ci * 9..][..9].iter().enumerate() {
                            let (ky, kx) = (tap / 3, tap % 3);
                            for y in 0..h {
                                for x in 0..w {
                                    let (oy, ox) = ((y + 1).wrapping_sub(ky), (x + 1).wrapping_sub(kx));
                                    if oy < h && ox < w {
                                        let t = f64::from(wv) * f64::from(dy[(co * h + oy) * w + ox]);
                                        exact[(ci * h + y) * w + x] += t;
                                        scale[(ci * h + y) * w + x] += t.abs();
                                    }
                                }
                            }
                        }
                    }
                }
                let check = |got: &[f32], what: &str| {
                    // Winograd's transforms round through their constants (up to 8 and
                    // 1/24): within 32 units, where the direct sums are within 8.
                    let units = if what.contains("winograd") { 32.0 } else { 8.0 };
                    for (i, ((&g, &e), &s)) in got.iter().zip(&exact).zip(&scale).enumerate() {
                        let bound = units * f64::from(f32::EPSILON) * s;
                        assert!(
                            (f64::from(g) - e).abs() <= bound,
                            "{what}: {c_in}→{c_out} at {h}×{w}, {dead} dead, value {i}: {g} against {e} (bound {bound})"
                        );
                    }
                };
                let live = live_channels(&dy, c_out, p);
                let scratch = kk * p;
                let most = winograd::fit_rows(live.len(), c_in, (h, w), scratch);
                for rows in (1..=h.div_ceil(4)).filter(|&r| most.is_some_and(|m| r <= m)) {
                    let mut got = vec![0.0; d.len()];
                    let mut col = vec![f32::NAN; scratch];
                    winograd::input_grad(&wt, &live, c_in, (h, w), &dy, &mut got, &mut col, rows);
                    check(&got, &format!("winograd, {rows} rows of tiles per chunk"));
                }
                let (mut via, mut col) = (vec![0.0; d.len()], vec![f32::NAN; scratch]);
                let mut dy2 = dy.clone();
                conv.input_grad_by_gemm(&wt, &mut dy2, &mut via, &mut col);
                check(
                    &via,
                    if conv.winograd_rows(live.len(), scratch).is_some() {
                        "by gemm (winograd)"
                    } else {
                        "by gemm (im2col)"
                    },
                );
                let mut im2col = conv.clone();
                im2col.winograd = false;
                let (mut via, mut col) = (vec![0.0; d.len()], vec![f32::NAN; scratch]);
                im2col.input_grad_by_gemm(&wt, &mut dy.clone(), &mut via, &mut col);
                check(&via, "im2col");
            }
        }
        // The 64 → 128 layer at 32 × 32 takes Winograd in two chunks of four rows of tiles;
        // beside the 32 → 64 at 17 × 17's transformed weights not one row fits.
        let conv = Conv2d::new(Dims::new(64, 32, 32), 128, 3, 1, 1, true, &mut rng);
        assert_eq!(conv.winograd_rows(128, 576 * 1024), Some(4));
        let conv = Conv2d::new(Dims::new(32, 17, 17), 64, 3, 1, 1, true, &mut rng);
        assert_eq!(winograd::fit_rows(64, 32, (17, 17), 288 * 289), None);
        assert_eq!(conv.winograd_rows(64, 288 * 289), None);
    }

    /// A channel is live when its plane has a non-zero value in any sample of the batch,
    /// the last one included; listed in order.
    #[test]
    fn live_channels_looks_at_every_sample() {
        let (c, p) = (4, 5);
        let mut data = vec![0.0f32; 3 * c * p];
        data[2 * p + 4] = 1.0; // sample 0, channel 2
        data[2 * c * p + p] = -2.0; // sample 2, channel 1
        assert_eq!(live_channels(&data, c, p), vec![1, 2]);
        assert_eq!(live_channels(&data[..c * p], c, p), vec![2]);
        assert!(live_channels(&vec![0.0; c * p], c, p).is_empty());
    }

    /// A plane is live when any of its values is not zero, wherever it lies (in the first
    /// block of 64, the last, a partial tail), a NaN included; -0.0 is a zero.
    #[test]
    fn any_nonzero_finds_one_value_anywhere() {
        for len in [1, 63, 64, 65, 130, 1024] {
            let mut xs = vec![0.0f32; len];
            xs[len / 2] = -0.0;
            assert!(!any_nonzero(&xs), "{len} zeros");
            for at in [0, len / 2, len - 1] {
                for v in [1.0, -3e-38, f32::NAN] {
                    let mut one = xs.clone();
                    one[at] = v;
                    assert!(any_nonzero(&one), "{v} at {at} of {len}");
                }
            }
        }
        assert!(!any_nonzero(&[]));
    }

    /// The values' bit patterns (comparisons that tell -0.0 from 0.0 and any NaN apart).
    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// One learning step of a batch of 1 as a stage takes it: forward `x`, backward `dy`,
    /// the update (fused with the standardisation's backward where `defer_ws_grad`), and
    /// the gradients freed.
    fn learn_step(c: &mut Conv2d, opt: &mut Optimizer, x: &[f32], dy: &[f32]) {
        c.forward(Tensor::from_vec(1, c.in_dims, x.to_vec()), true);
        c.backward(Tensor::from_vec(1, c.out_dims, dy.to_vec()));
        let sizes: Vec<usize> = c.params().iter().map(|p| p.value.len()).collect();
        let update = opt.begin_step(&sizes);
        let finite = c.update(&update, &mut opt.states());
        opt.end_step(finite);
        c.release_grads();
    }

    /// The fused standardisation backward and Adam update, cut over output channels for
    /// helpers (and the products of the passes cut over columns), gives the same weights
    /// and moments bit for bit as whole: `nmnist`'s second convolution at batch 1.
    #[test]
    fn a_fused_update_in_pieces_gives_the_same_bits() {
        let mut rng = crate::Rng::new(9);
        let d = Dims::new(32, 17, 17);
        let base = Conv2d::new(d, 64, 3, 1, 1, true, &mut rng);
        assert!(base.weight.value.len() >= 2 * crate::optim::SHARED_UPDATE_MIN);
        let x: Vec<f32> = (0..d.len())
            .map(|_| (rng.next_f32() < 0.3) as u8 as f32)
            .collect();
        let dy: Vec<f32> = (0..64 * 17 * 17).map(|_| rng.next_f32() - 0.5).collect();
        let run = |parts: usize| {
            let mut c = base.clone();
            c.defer_ws_grad = true;
            let mut opt = Optimizer::new(OptimConfig::default());
            for _ in 0..3 {
                crate::assist::as_if_helped(parts, || learn_step(&mut c, &mut opt, &x, &dy));
            }
            let mut all: Vec<Vec<u32>> = c.params().iter().map(|p| bits(&p.value)).collect();
            all.extend(opt.m.iter().chain(&opt.v).map(|v| bits(v)));
            all
        };
        let whole = run(1);
        for parts in [2, 3] {
            assert!(run(parts) == whole, "in {parts}");
        }
    }

    /// The update leaves the next forward's layout of the effective weights (the one the
    /// last forward read) built from the updated weights and gains: the same bits as built
    /// from scratch, on both paths, with the update in one piece and in pieces for helpers
    /// (40 channels: two whole tiles of the transposed layout and a ragged one); and none
    /// after a forward that took the live input channels only.
    #[test]
    fn an_update_builds_the_next_forwards_layout() {
        let mut rng = crate::Rng::new(21);
        let d = Dims::new(12, 9, 9);
        let base = Conv2d::new(d, 40, 3, 1, 1, true, &mut rng);
        let x: Vec<f32> = (0..d.len())
            .map(|_| (rng.next_f32() < 0.3) as u8 as f32)
            .collect();
        let dy: Vec<f32> = (0..base.out_dims.len()).map(|_| rng.next_f32() - 0.5).collect();
        for (path, silent) in [
            (InputPath::Sparse, false),
            (InputPath::Dense, false),
            (InputPath::Dense, true),
        ] {
            for parts in [1, 2] {
                let mut c = base.clone();
                (c.path, c.defer_ws_grad) = (path, true);
                let mut x = x.clone();
                if silent {
                    // Every other input channel without a spike: the forward takes the others.
                    x.chunks_exact_mut(81).step_by(2).for_each(|p| p.fill(0.0));
                }
                let mut opt = Optimizer::new(OptimConfig::default());
                for _ in 0..2 {
                    crate::assist::as_if_helped(parts, || learn_step(&mut c, &mut opt, &x, &dy));
                }
                let what = format!("{path:?}, silent channels {silent}, in {parts}");
                let layout = if path == InputPath::Sparse {
                    Layout::Transposed
                } else {
                    Layout::Rows
                };
                let kept = std::mem::take(&mut c.kept.weights_in);
                if silent {
                    assert!(kept.iter().all(|w| w.is_empty()), "{what}");
                    continue;
                }
                assert!(
                    kept.iter()
                        .enumerate()
                        .all(|(l, w)| w.is_empty() == (l != layout as usize)),
                    "{what}"
                );
                c.kept.stats.clear();
                c.refresh_weights(layout);
                let fresh = &c.kept.weights_in[layout as usize];
                assert!(bits(&kept[layout as usize]) == bits(fresh), "{what}");
            }
        }
    }
}
