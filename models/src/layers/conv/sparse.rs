//! The sparse path of a convolution: inputs listed by pixel, and scatter loops that touch only
//! non-zero inputs (forward, weight gradient) or non-zero output gradients (input gradient).

use super::Conv2d;

/// Non-zero values in `xs`.
pub(super) fn nonzeros(xs: &[f32]) -> usize {
    let mut n = 0;
    count_nonzeros(xs, &mut n);
    n
}

crate::math::widest! {
    /// [`nonzeros`], compiled for the widest vector unit (at the baseline's width, counting
    /// a layer's input was a fifth of the forward's own time).
    fn count_nonzeros(xs: &[f32], n: &mut usize) {
        *n = xs.iter().filter(|&&v| v != 0.0).count();
    }
}

/// Whether `xs` holds a non-zero value (a channel's plane with a spike or a gradient).
pub(super) fn any_nonzero(xs: &[f32]) -> bool {
    let mut found = false;
    nonzero_in(xs, &mut found);
    found
}

crate::math::widest! {
    /// [`any_nonzero`], compiled for the widest vector unit: 64 values at a time without a
    /// branch each (a scalar loop that stops at the first took most of a backward's own
    /// time where most channels have no gradient), up to the first block with one.
    fn nonzero_in(xs: &[f32], found: &mut bool) {
        *found = xs
            .chunks(64)
            .any(|c| c.iter().fold(0u32, |m, &v| m | u32::from(v != 0.0)) != 0);
    }
}

/// Cost of one scalar weight-gradient update by pairs, in the cost model's element
/// operations (a vectorised scatter's multiply-add counts 2) ([`Conv2d::predicted_grad_sparse`]).
pub const PAIR_COST: f64 = 8.0;

/// Calls `f(i, v)` for every non-zero `v = xs[i]`, in order: 32 values are compared at a
/// time into a bit mask whose set bits are then visited, so zeros cost no branch each.
#[inline(always)]
pub(super) fn for_each_nonzero(xs: &[f32], mut f: impl FnMut(usize, f32)) {
    let chunks = xs.chunks_exact(32);
    let tail = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        let mut mask = chunk
            .iter()
            .enumerate()
            .fold(0u32, |m, (j, &v)| m | (u32::from(v != 0.0) << j));
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            f(c * 32 + j, chunk[j]);
            mask &= mask - 1;
        }
    }
    let base = xs.len() - tail.len();
    for (j, &v) in tail.iter().enumerate() {
        if v != 0.0 {
            f(base + j, v);
        }
    }
}

/// One sample's non-zero inputs listed by pixel: `(channel, value)` in channel order.
#[derive(Clone, Debug)]
pub(super) struct PixelList {
    start: Vec<u32>,
    entries: Vec<(u32, f32)>,
}

impl PixelList {
    /// From one sample `xs` (channels × `pixels`).
    pub(super) fn new(xs: &[f32], pixels: usize) -> Self {
        let mut start = vec![0u32; pixels + 1];
        for plane in xs.chunks_exact(pixels) {
            for_each_nonzero(plane, |q, _| start[q + 1] += 1);
        }
        for q in 0..pixels {
            start[q + 1] += start[q];
        }
        let mut entries = vec![(0u32, 0.0f32); start[pixels] as usize];
        let mut next = start.clone();
        for (ci, plane) in xs.chunks_exact(pixels).enumerate() {
            for_each_nonzero(plane, |q, v| {
                entries[next[q] as usize] = (ci as u32, v);
                next[q] += 1;
            });
        }
        Self { start, entries }
    }

    /// Non-zero inputs listed, over all pixels.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
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
            for_each_nonzero(dyc, |q, dv| {
                conv.out_taps(q / o.w, q % o.w, |tap, pix| {
                    let w = &w_r[(co * k2 + tap) * cin..][..cin];
                    for (a, &wv) in acc[pix * cin..][..cin].iter_mut().zip(w) {
                        *a += dv * wv;
                    }
                });
            });
        }
    }
}

/// Output channels summed in registers at a time by [`sparse_forward`].
const FORWARD_BLOCK: usize = 64;

crate::math::widest! {
    /// Sparse forward of one sample: `acc` (`P × C_out`) gets the bias plus `Σ v · w_t[tap]`
    /// for every non-zero input `v`; `w_t` is the effective weights as `C_in·k·k × C_out`.
    /// Pixel by pixel: for each tap of an input pixel, its non-zero channels' weight rows are
    /// summed in registers, [`FORWARD_BLOCK`] output channels at a time, and the output
    /// position's row is read and written once for all of them (scattering channel by
    /// channel read and wrote it once per channel).
    pub(super) fn sparse_forward(conv: &Conv2d, w_t: &[f32], list: &PixelList, acc: &mut [f32]) {
        let (c_out, k2, i) = (conv.out_dims.c, conv.k * conv.k, conv.in_dims);
        for row in acc.chunks_exact_mut(c_out) {
            row.copy_from_slice(&conv.bias.value);
        }
        // The taps of a pixel are listed first: the summing loop below stays in this
        // function's body (compiled for the widest instructions), not in a closure.
        let mut hits: Vec<(usize, usize)> = Vec::with_capacity(k2);
        for q in 0..i.h * i.w {
            let entries = list.at(q);
            if entries.is_empty() {
                continue;
            }
            hits.clear();
            conv.taps(q / i.w, q % i.w, |tap, p| hits.push((tap, p)));
            for &(tap, p) in &hits {
                let out = &mut acc[p * c_out..][..c_out];
                let mut blocks = out.chunks_exact_mut(FORWARD_BLOCK);
                for (b, block) in (&mut blocks).enumerate() {
                    let mut r = [0.0f32; FORWARD_BLOCK];
                    r.copy_from_slice(block);
                    for &(ci, v) in entries {
                        let w = &w_t[(ci as usize * k2 + tap) * c_out + b * FORWARD_BLOCK..][..FORWARD_BLOCK];
                        for (x, &wv) in r.iter_mut().zip(w) {
                            *x += v * wv;
                        }
                    }
                    block.copy_from_slice(&r);
                }
                let rest = blocks.into_remainder();
                let c0 = c_out - rest.len();
                for &(ci, v) in entries {
                    let w = &w_t[(ci as usize * k2 + tap) * c_out + c0..][..rest.len()];
                    for (x, &wv) in rest.iter_mut().zip(w) {
                        *x += v * wv;
                    }
                }
            }
        }
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
