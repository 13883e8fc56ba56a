//! The sparse path of a convolution: inputs listed by pixel, and scatter loops that touch only
//! non-zero inputs (forward, weight gradient) or non-zero output gradients (input gradient).

use super::Conv2d;

/// Non-zero values in `xs`.
pub(super) fn nonzeros(xs: &[f32]) -> usize {
    xs.iter().filter(|&&v| v != 0.0).count()
}

/// Cost of one scalar weight-gradient update by pairs, in the cost model's element
/// operations (a vectorised scatter's multiply-add counts 2) ([`Conv2d::predicted_grad_sparse`]).
pub const PAIR_COST: f64 = 8.0;

/// One sample's non-zero inputs listed by pixel: `(channel, value)` in channel order.
pub(super) struct PixelList {
    start: Vec<u32>,
    entries: Vec<(u32, f32)>,
}

impl PixelList {
    /// From one sample `xs` (channels × `pixels`).
    pub(super) fn new(xs: &[f32], pixels: usize) -> Self {
        let mut start = vec![0u32; pixels + 1];
        for plane in xs.chunks_exact(pixels) {
            for (q, &v) in plane.iter().enumerate() {
                start[q + 1] += (v != 0.0) as u32;
            }
        }
        for q in 0..pixels {
            start[q + 1] += start[q];
        }
        let mut entries = vec![(0u32, 0.0f32); start[pixels] as usize];
        let mut next = start.clone();
        for (ci, plane) in xs.chunks_exact(pixels).enumerate() {
            for (q, &v) in plane.iter().enumerate() {
                if v != 0.0 {
                    entries[next[q] as usize] = (ci as u32, v);
                    next[q] += 1;
                }
            }
        }
        Self { start, entries }
    }

    /// The non-zero inputs at pixel `q`.
    #[inline(always)]
    pub(super) fn at(&self, q: usize) -> &[(u32, f32)] {
        &self.entries[self.start[q] as usize..self.start[q + 1] as usize]
    }
}

crate::math::widest! {
    /// Scattered input gradient of one sample: `acc` (`P_in × C_in`) gets, for every non-zero
    /// output gradient `d` of channel `c` at an output position, `d · w_r[c, tap]` at the
    /// input pixel of each tap; `w_r` is the effective weights as `C_out × k² × C_in`.
    pub(super) fn scatter_input_grad(conv: &Conv2d, w_r: &[f32], dyb: &[f32], acc: &mut [f32]) {
        let (cin, o, k2) = (conv.in_dims.c, conv.out_dims, conv.k * conv.k);
        let p = o.h * o.w;
        acc.iter_mut().for_each(|v| *v = 0.0);
        for (co, dyc) in dyb.chunks_exact(p).enumerate() {
            for (q, &dv) in dyc.iter().enumerate() {
                if dv == 0.0 {
                    continue;
                }
                conv.out_taps(q / o.w, q % o.w, |tap, pix| {
                    let w = &w_r[(co * k2 + tap) * cin..][..cin];
                    for (a, &wv) in acc[pix * cin..][..cin].iter_mut().zip(w) {
                        *a += dv * wv;
                    }
                });
            }
        }
    }
}

crate::math::widest! {
    /// Sparse forward of one sample: `acc` (`P × C_out`) gets the bias plus `Σ v · w_t[tap]`
    /// for every non-zero input `v`; `w_t` is the effective weights as `C_in·k·k × C_out`.
    pub(super) fn sparse_forward(conv: &Conv2d, w_t: &[f32], xs: &[f32], acc: &mut [f32]) {
        let c_out = conv.out_dims.c;
        for row in acc.chunks_exact_mut(c_out) {
            row.copy_from_slice(&conv.bias.value);
        }
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
    pub(super) fn sparse_weight_grad(conv: &Conv2d, xs: &[f32], dyt: &[f32], cb: usize, dwt: &mut [f32]) {
        conv.for_each_nonzero_tap(xs, |row, p, v| {
            let d = &dyt[p * cb..][..cb];
            for (a, &dv) in dwt[row * cb..][..cb].iter_mut().zip(d) {
                *a += v * dv;
            }
        });
    }
}
