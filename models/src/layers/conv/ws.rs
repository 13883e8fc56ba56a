//! Scaled weight standardisation (see the module above): per output channel, statistics and
//! the affine map of its weights, forward and backward.

use crate::math::{transpose, transpose_strided};
use crate::optim::Update;
use crate::workspace;

/// The ε of the standardisation's variance.
const WS_EPS: f32 = 1e-4;

/// Mean and `sqrt(var_unbiased · n + ε)` of one output channel's weights (sums in the
/// interleaved order of [`crate::math::sum`], so they vectorise).
#[inline(always)]
fn ws_stats(w: &[f32]) -> (f32, f32) {
    let mean = crate::math::sum(w) / w.len() as f32;
    ws_stats_finish(w.len(), mean, crate::math::sum_of(w, |v| (v - mean) * (v - mean)))
}

/// [`ws_stats`] of `n` weights from their mean and the sum of their squared deviations
/// from it.
#[inline(always)]
fn ws_stats_finish(n: usize, mean: f32, ss: f32) -> (f32, f32) {
    let n = n as f32;
    let var = ss / (n - 1.0).max(1.0);
    (mean, (var * n + WS_EPS).sqrt())
}

crate::math::widest! {
    /// The [`ws_stats`] of each output channel in `rows` (`n` weights each), appended to
    /// `out`: what the layouts and the backward of one set of weights share.
    pub(super) fn ws_stats_extend(rows: &[f32], n: usize, out: &mut Vec<(f32, f32)>) {
        for w in rows.chunks_exact(n) {
            out.push(ws_stats(w));
        }
    }
}

/// Makes `stats` cover output channels `..c1` of `weight` (`n` weights each) when `gain` is
/// not empty (standardised weights), computing those it lacks: the layouts call it block
/// by block, just before they read the block, so that each channel's weights come from
/// memory once for both (`stats` is empty or complete between calls).
#[inline(always)]
fn stats_up_to(weight: &[f32], n: usize, gain: &[f32], c1: usize, stats: &mut Vec<(f32, f32)>) {
    if !gain.is_empty() && stats.len() < c1 {
        ws_stats_extend(&weight[stats.len() * n..c1 * n], n, stats);
    }
}

/// Per output channel, the `(shift, scale)` that make its effective weights
/// `(w − shift) · scale`, from its [`ws_stats`]: standardised with `gain` when it is not
/// empty, else `(0, 1)` (the raw weights, exactly).
#[inline(always)]
pub(super) fn ws_affine(stats: &[(f32, f32)], gain: &[f32], co: usize) -> (f32, f32) {
    if gain.is_empty() {
        return (0.0, 1.0);
    }
    let (mean, s) = stats[co];
    (mean, gain[co] / s)
}

/// Output channels × weights per tile of [`ws_forward_transposed`]: 16 channels make each
/// written segment a whole cache line, 64 weights keep the tile in L1.
const WS_TILE: (usize, usize) = (16, 64);

/// The effective weights transposed (`K × C_out`, `K = n`) straight from the raw ones
/// (`C_out × K`; standardised when `gain` is not empty): the same values as [`ws_forward`]
/// and a transpose, tile by tile (each tile's effective weights computed row-wise, then
/// transposed in L1). Statistics that `stats` lacks are computed on the way.
pub(super) fn ws_forward_transposed(
    weight: &[f32],
    stats: &mut Vec<(f32, f32)>,
    gain: &[f32],
    n: usize,
    out: &mut [f32],
) {
    let c_out = weight.len() / n;
    let (tc, tk) = WS_TILE;
    let mut affine = [(0.0f32, 0.0f32); WS_TILE.0];
    let mut tile = [0.0f32; WS_TILE.0 * WS_TILE.1];
    for c0 in (0..c_out).step_by(tc) {
        let cb = (c_out - c0).min(tc);
        stats_up_to(weight, n, gain, c0 + cb, stats);
        for (j, a) in affine[..cb].iter_mut().enumerate() {
            *a = ws_affine(stats, gain, c0 + j);
        }
        for k0 in (0..n).step_by(tk) {
            let kb = (n - k0).min(tk);
            for (j, &(shift, scale)) in affine[..cb].iter().enumerate() {
                affine_row(
                    &weight[(c0 + j) * n + k0..][..kb],
                    shift,
                    scale,
                    &mut tile[j * kb..][..kb],
                );
            }
            transpose_strided(&tile, cb, kb, &mut out[k0 * c_out + c0..], c_out);
        }
    }
}

/// The effective weights laid out `C_out × k² × C_in` (each output channel's taps outer,
/// input channels inner) straight from the raw ones (`C_out × C_in × k²`; standardised when
/// `gain` is not empty): the same values as [`ws_forward`], each row transposed in place.
/// Only the rows of the output channels `rows` (in increasing order) are written; the others
/// are left as they are. Statistics that `stats` lacks are computed on the way.
pub(super) fn ws_forward_by_tap(
    weight: &[f32],
    stats: &mut Vec<(f32, f32)>,
    gain: &[f32],
    (c_in, k2): (usize, usize),
    rows: impl Iterator<Item = usize>,
    out: &mut [f32],
) {
    let n = c_in * k2;
    workspace::with(n, |row| {
        for co in rows {
            stats_up_to(weight, n, gain, co + 1, stats);
            let (shift, scale) = ws_affine(stats, gain, co);
            affine_row(&weight[co * n..][..n], shift, scale, row);
            transpose(row, c_in, k2, &mut out[co * n..][..n]);
        }
    });
}

crate::math::widest! {
    /// `out = (w − shift) · scale`, element-wise.
    pub(super) fn affine_row(w: &[f32], shift: f32, scale: f32, out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(w) {
            *o = (v - shift) * scale;
        }
    }
}

/// Scaled weight standardisation: each output channel's `n` weights, less their mean, times
/// its gain over `sqrt(var · n + ε)`, into `out`. Statistics that `stats` lacks are computed
/// on the way.
pub(super) fn ws_forward(
    weight: &[f32],
    stats: &mut Vec<(f32, f32)>,
    gain: &[f32],
    n: usize,
    out: &mut [f32],
) {
    for (co, (w, o)) in weight.chunks_exact(n).zip(out.chunks_exact_mut(n)).enumerate() {
        stats_up_to(weight, n, gain, co + 1, stats);
        let (shift, scale) = ws_affine(stats, gain, co);
        affine_row(w, shift, scale, o);
    }
}

crate::math::widest! {
    /// [`ws_forward`] of the weights of the input channels `chans` only (`k2` weights each,
    /// `n` in all per output channel): each output channel's row holds the listed channels'
    /// weights in order, `chans.len()·k2` of them, the same values as in the whole row.
    pub(super) fn ws_forward_channels(weight: &[f32], stats: &mut Vec<(f32, f32)>, gain: &[f32], nk2: (usize, usize), chans: &[usize], out: &mut [f32]) {
        let (n, k2) = nk2;
        let m = chans.len() * k2;
        if m == 0 {
            return;
        }
        let runs = channel_runs(chans, k2);
        for (co, (w, o)) in weight.chunks_exact(n).zip(out.chunks_exact_mut(m)).enumerate() {
            stats_up_to(weight, n, gain, co + 1, stats);
            let (shift, scale) = ws_affine(stats, gain, co);
            let mut at = 0;
            for r in &runs {
                // What `affine_row` computes, a run of consecutive channels at a time
                // (inline: a call per run would cost more than its values).
                for (o, &v) in o[at..][..r.len()].iter_mut().zip(&w[r.clone()]) {
                    *o = (v - shift) * scale;
                }
                at += r.len();
            }
        }
    }
}

/// The weights of the input channels `chans` (increasing, `k2` weights each) as ranges of
/// one output channel's row, consecutive channels in one range.
fn channel_runs(chans: &[usize], k2: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for &c in chans {
        match runs.last_mut() {
            Some(r) if r.end == c * k2 => r.end += k2,
            _ => runs.push(c * k2..(c + 1) * k2),
        }
    }
    runs
}

/// One output channel's standardisation backward: each raw weight's gradient from its value
/// `w` and the gradient `d` of its standardised value ([`RowBackward::grad`]).
struct RowBackward {
    a: f32,
    dmean: f32,
    c: f32,
    mean: f32,
}

impl RowBackward {
    /// From the channel's weights `w`, their statistics, its gain `g` and `d`, the gradient
    /// of its standardised weights; with the gain's gradient.
    #[inline(always)]
    fn new(w: &[f32], stats: (f32, f32), g: f32, d: &[f32]) -> (Self, f32) {
        let (dsum, dz) = Self::sums(w, stats.0, d);
        Self::from_sums(w.len(), stats, g, dsum, dz)
    }

    /// The two sums [`Self::from_sums`] takes, one at a time.
    #[inline(always)]
    fn sums(w: &[f32], mean: f32, d: &[f32]) -> (f32, f32) {
        (
            crate::math::sum(d),
            crate::math::sum_of2(d, w, |d, w| d * (w - mean)),
        )
    }

    /// [`Self::new`] from the channel's `n` and the two sums it takes: `dsum = Σ d` and
    /// `dz = Σ d · (w − mean)`, each in the order of [`crate::math::sum`].
    #[inline(always)]
    fn from_sums(n: usize, (mean, s): (f32, f32), g: f32, dsum: f32, dz: f32) -> (Self, f32) {
        let nf = n as f32;
        let a = g / s;
        let c = g * nf * dz / (s * s * s * (nf - 1.0).max(1.0));
        (
            Self {
                a,
                dmean: dsum / nf,
                c,
                mean,
            },
            dz / s,
        )
    }

    /// `a · (d − dmean) − c · (w − mean)`: the raw weight's gradient.
    #[inline(always)]
    fn grad(&self, d: f32, w: f32) -> f32 {
        self.a * (d - self.dmean) - self.c * (w - self.mean)
    }
}

crate::math::widest! {
    /// The gradients of the raw weights and the gains from `d`, the gradient of the
    /// standardised weights, added into `dw` and `dgain`; `stats` are the weights'
    /// [`ws_stats`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ws_backward(weight: &[f32], stats: &[(f32, f32)], gain: &[f32], n: usize, d: &[f32], dw: &mut [f32], dgain: &mut [f32], overwrite: bool) {
        for (co, ((w, d), dw)) in weight
            .chunks_exact(n)
            .zip(d.chunks_exact(n))
            .zip(dw.chunks_exact_mut(n))
            .enumerate()
        {
            let (row, dg) = RowBackward::new(w, stats[co], gain[co], d);
            dgain[co] += dg;
            if overwrite {
                for ((gw, &dv), &wv) in dw.iter_mut().zip(d).zip(w) {
                    *gw = row.grad(dv, wv);
                }
            } else {
                for ((gw, &dv), &wv) in dw.iter_mut().zip(d).zip(w) {
                    *gw += row.grad(dv, wv);
                }
            }
        }
    }
}

crate::math::widest! {
    /// [`ws_backward`] and Adam's update ([`Update::adam`]) of the raw weights in one pass,
    /// output channel by output channel: each weight's gradient (exactly what `ws_backward`
    /// writes over a gradient) is computed and applied at once, with its moments `m` and
    /// `v`, so the weights' gradient is never written and each channel's weights are read
    /// from memory once. Each channel's `stats` are then replaced by its updated weights'.
    /// The gains' gradients are added into `dgain`, to be applied after; `finite` is cleared
    /// if an updated weight is not finite.
    ///
    /// The sums the standardisation needs take two passes per channel after its update,
    /// where they took four: the updated weights' sum, then one pass ([`row_sums`]) for
    /// their squared deviations and the next channel's two backward sums. Each sum gets its
    /// values in the order of [`crate::math::sum`], so the bits are those of the passes one
    /// by one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ws_backward_adam(weight: &mut [f32], stats: &mut [(f32, f32)], gain: &[f32], n: usize, d: &[f32], dgain: &mut [f32], m: &mut [f32], v: &mut [f32], update: &Update, finite: &mut bool) {
        let c_out = weight.len().checked_div(n).unwrap_or(0);
        if c_out == 0 {
            return;
        }
        let mut ok = crate::math::Finite::default();
        let mut sums = RowBackward::sums(&weight[..n], stats[0].0, &d[..n]);
        for co in 0..c_out {
            let (row, dg) = RowBackward::from_sums(n, stats[co], gain[co], sums.0, sums.1);
            dgain[co] += dg;
            let (w, after) = weight[co * n..].split_at_mut(n);
            let dr = &d[co * n..][..n];
            let (m, v) = (&mut m[co * n..][..n], &mut v[co * n..][..n]);
            for (((wv, &dv), mv), vv) in w.iter_mut().zip(dr).zip(m.iter_mut()).zip(v.iter_mut()) {
                update.adam(wv, row.grad(dv, *wv), mv, vv);
                ok.see(*wv);
            }
            let mean = crate::math::sum(w) / n as f32;
            // Past the last channel, the next one's sums are taken over this one's
            // gradient and dropped.
            let next = if co + 1 < c_out {
                (&d[(co + 1) * n..][..n], &after[..n], stats[co + 1].0)
            } else {
                (dr, dr, 0.0)
            };
            let acc = row_sums(w, mean, next);
            stats[co] = ws_stats_finish(n, mean, acc[0].total());
            sums = (acc[1].total(), acc[2].total());
        }
        *finite &= ok.all();
    }
}

/// One pass of [`ws_backward_adam`] over a channel's updated weights `w` and the next
/// channel's gradient, weights and mean `next`: `Σ (w − mean)²`, and the next channel's
/// `Σ d` and `Σ d · (w − mean)` ([`RowBackward::from_sums`]).
#[inline(always)]
fn row_sums(w: &[f32], mean: f32, next: (&[f32], &[f32], f32)) -> [crate::math::Partials; 3] {
    let n = w.len();
    let (d1, w1, mean1) = (&next.0[..n], &next.1[..n], next.2);
    // Three arrays of its own, not one captured by a closure: the closure's array was
    // written to the stack at every step of the loop, and with it two changes elsewhere in
    // the fused update measured 8–15% slower, the update stalling on the loads after those
    // stores (docs/speed-log.md).
    let mut acc = ([0.0f32; 16], [0.0f32; 16], [0.0f32; 16]);
    let full = n / 16 * 16;
    for i in (0..full).step_by(16) {
        let (w, d1, w1) = (&w[i..][..16], &d1[i..][..16], &w1[i..][..16]);
        for j in 0..16 {
            row_sums_add(&mut acc, j, (w[j], mean), (d1[j], w1[j], mean1));
        }
    }
    for k in full..n {
        row_sums_add(&mut acc, k - full, (w[k], mean), (d1[k], w1[k], mean1));
    }
    [
        crate::math::Partials(acc.0),
        crate::math::Partials(acc.1),
        crate::math::Partials(acc.2),
    ]
}

/// Adds value `j`'s terms to [`row_sums`]'s three sums.
#[inline(always)]
fn row_sums_add(
    acc: &mut ([f32; 16], [f32; 16], [f32; 16]),
    j: usize,
    (w, mean): (f32, f32),
    (d1, w1, mean1): (f32, f32, f32),
) {
    acc.0[j] += (w - mean) * (w - mean);
    acc.1[j] += d1;
    acc.2[j] += d1 * (w1 - mean1);
}
