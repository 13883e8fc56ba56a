//! The input gradient of a 3 × 3, stride-1, padding-1 convolution by Winograd's minimal
//! filtering F(4 × 4, 3 × 3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural
//! Networks", CVPR 2016; interpolation points 0, ±1, ±2 and ∞).
//!
//! That input gradient is itself a 3 × 3 convolution with padding 1: of the output
//! gradient `dY` (the live output channels' planes) by the weights turned by 180°, with
//! input and output channels swapped. F(4 × 4, 3 × 3) computes each 4 × 4 tile of it from a
//! 6 × 6 tile of `dY` with 36 multiplications per pair of channels where the direct product
//! takes 144: the transformed weights `U = G g Gᵀ` and the transformed tiles `V = Bᵀ d B`
//! meet in 36 independent products `M_e = U_eᵀ · V_e` (one per position `e` of the 6 × 6
//! transform, each a GEMM over the output channels), and `Aᵀ M A` gives the tile. The GEMMs
//! are the GEMM crate's; the transforms are a few additions and multiplications by small
//! constants, written here so that each loop runs over contiguous values (a row of tiles,
//! or the input channels) and vectorises.
//!
//! Against im2col and one GEMM (`K × P` columns, then col2im), this takes 1/4 of the
//! multiply-adds and never writes the `K × P` columns. F(2 × 2, 3 × 3), which this module
//! computed before, takes 4/9: in `stdl bench realtime --profile` on the AVX2 path,
//! `dvs-gesture`'s first head's input gradient took 0.49 ms per step on the second
//! DVS128 walk, against 0.67 (docs/speed-log.md). The sums are taken in another order and
//! through the transforms' constants, so the values differ from the direct sum by more than
//! F(2 × 2, 3 × 3)'s did: within 32 units of `f32` rounding relative to the sum of the
//! terms' magnitudes (`tests`), where the direct sum is within 8.
//!
//! The work is cut into chunks of whole rows of tiles so that the transformed weights and
//! one chunk's transformed tiles and products fit in the scratch the im2col path takes
//! (`K × P` values): the convolution's memory is what it was ([`rows_per_chunk`]).

use crate::gemm::matmul;
use crate::math::transpose;

/// Values of one tile's transform (6 × 6), and so the number of GEMMs.
const E: usize = 36;

/// Tiles per chunk (the products' columns) below which this module is not taken.
/// `dvs-gesture`'s 64 → 128 head at 32 × 32 takes its 64 tiles in two chunks of 32, and
/// there `cargo bench --bench input_grad` measured 1.41× im2col's speed on the AVX2 path
/// and 1.05× with AVX-512; fewer tiles per chunk were not measured with F(4 × 4, 3 × 3)
/// (with F(2 × 2, 3 × 3), 27 took 1.3× im2col's time), so they take im2col.
const MIN_TILES: usize = 32;

/// The plan of one input gradient: how many rows of tiles each chunk takes ([`fit_rows`]),
/// or None when they do not fit or the products would have fewer than [`MIN_TILES`]
/// columns. `n` output channels (the live ones) into `c_in` input channels over an `h × w`
/// plane.
pub(super) fn rows_per_chunk(n: usize, c_in: usize, hw: (usize, usize), scratch: usize) -> Option<usize> {
    fit_rows(n, c_in, hw, scratch).filter(|&rows| rows * hw.1.div_ceil(4) >= MIN_TILES)
}

/// Scratch values for the column transforms of `rows` rows of tiles `tw` wide: the
/// `4·rows + 2` padded rows they read, six transformed values per tile each, and one row
/// split into its four phases.
fn cols_len(rows: usize, tw: usize) -> usize {
    6 * tw * (4 * rows + 2) + 4 * (tw + 1)
}

/// The rows of tiles per chunk, chunks as even as they can be, as many as fit in `scratch`
/// values beside the transformed weights; None when not even one row does.
pub(super) fn fit_rows(n: usize, c_in: usize, (h, w): (usize, usize), scratch: usize) -> Option<usize> {
    let (th, tw) = (h.div_ceil(4), w.div_ceil(4));
    // The transformed weights, one output channel's weights by tap and their `G g`, the
    // column transforms of the two padded rows beyond a chunk's and the phases of a row;
    // per row of tiles its transformed tiles, its products and four padded rows' column
    // transforms (the output transform takes its `24 · tw` from those).
    let fixed = E * n * c_in + 27 * c_in + cols_len(0, tw);
    let per_row = E * (n + c_in) * tw + cols_len(1, tw) - cols_len(0, tw);
    let rows = scratch.checked_sub(fixed)? / per_row;
    (rows > 0).then(|| th.div_ceil(th.div_ceil(rows)))
}

/// Adds to `dx` (`c_in` planes of `h × w`) the input gradient of a 3 × 3, stride-1,
/// padding-1 convolution over the output channels `live` only: `w_rows` is its effective
/// weights (`C_out × c_in × 9`), `dy` one sample's output gradient (`C_out` planes of
/// `h × w`; the channels not listed are not read). `scratch` is at least what
/// [`rows_per_chunk`] was given, and `rows` what it returned.
#[allow(clippy::too_many_arguments)]
pub(super) fn input_grad(
    w_rows: &[f32],
    live: &[usize],
    c_in: usize,
    (h, w): (usize, usize),
    dy: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
    rows: usize,
) {
    let n = live.len();
    let (p, th, tw) = (h * w, h.div_ceil(4), w.div_ceil(4));
    let (u, rest) = scratch.split_at_mut(E * n * c_in);
    let (by_tap, rest) = rest.split_at_mut(27 * c_in);
    kernel_transform(w_rows, live, c_in, by_tap, u);
    let tc = rows * tw;
    let (v, rest) = rest.split_at_mut(E * n * tc);
    let (m, rest) = rest.split_at_mut(E * c_in * tc);
    let cols = &mut rest[..cols_len(rows, tw)];
    for ty0 in (0..th).step_by(rows) {
        let r = rows.min(th - ty0);
        let t = r * tw;
        // This chunk's tiles are laid out `E × n × t` (`t` ≤ `tc` in the last chunk).
        for (j, &co) in live.iter().enumerate() {
            tile_transform(&dy[co * p..][..p], (h, w), ty0, r, cols, v, (j * t, n * t));
        }
        for e in 0..E {
            let (ue, ve) = (&u[e * n * c_in..][..n * c_in], &v[e * n * t..][..n * t]);
            matmul(
                c_in,
                n,
                t,
                1.0,
                ue,
                true,
                ve,
                false,
                0.0,
                &mut m[e * c_in * t..][..c_in * t],
            );
        }
        for ci in 0..c_in {
            output_transform(
                &m[..E * c_in * t],
                (ci * t, c_in * t),
                tw,
                ty0,
                r,
                (h, w),
                cols,
                &mut dx[ci * p..][..p],
            );
        }
    }
}

/// `G x` for one column `x` of three values: the kernel's transform along one direction.
#[inline(always)]
fn g_times(x0: f32, x1: f32, x2: f32) -> [f32; 6] {
    const SIXTH: f32 = 1.0 / 6.0;
    const TWELFTH: f32 = 1.0 / 12.0;
    const TWENTY_FOURTH: f32 = 1.0 / 24.0;
    [
        0.25 * x0,
        -SIXTH * (x0 + x1 + x2),
        -SIXTH * (x0 - x1 + x2),
        TWENTY_FOURTH * x0 + TWELFTH * x1 + SIXTH * x2,
        TWENTY_FOURTH * x0 - TWELFTH * x1 + SIXTH * x2,
        x2,
    ]
}

/// `Bᵀ d` for one column `d` of six values: a tile's transform along one direction.
#[inline(always)]
fn bt_times(d: [f32; 6]) -> [f32; 6] {
    let [d0, d1, d2, d3, d4, d5] = d;
    [
        4.0 * d0 - 5.0 * d2 + d4,
        -4.0 * (d1 + d2) + d3 + d4,
        4.0 * (d1 - d2) - d3 + d4,
        2.0 * (d3 - d1) - d2 + d4,
        2.0 * (d1 - d3) - d2 + d4,
        4.0 * d1 - 5.0 * d3 + d5,
    ]
}

/// `Aᵀ m` for one column `m` of six values: the products' transform back along one
/// direction.
#[inline(always)]
fn at_times(m: [f32; 6]) -> [f32; 4] {
    let [m0, m1, m2, m3, m4, m5] = m;
    let (p12, d12, p34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
    [
        m0 + p12 + p34,
        d12 + 2.0 * d34,
        p12 + 4.0 * p34,
        d12 + 8.0 * d34 + m5,
    ]
}

crate::math::widest! {
    /// `U = G g Gᵀ` of the weights of each output channel in `live` with each input channel,
    /// `g` the 3 × 3 kernel turned by 180°, into `u` as `E × n × c_in` (`n = live.len()`:
    /// the `e`-th product's left factor, transposed). Each channel's row of `w_rows`
    /// (`c_in × 9`) is first transposed into the first `9 · c_in` values of `by_tap`, and
    /// `t = G g` goes into the next `18 · c_in`, so that every loop runs over input channels.
    fn kernel_transform(w_rows: &[f32], live: &[usize], c_in: usize, by_tap: &mut [f32], u: &mut [f32]) {
        let n = live.len();
        let (by_tap, t) = by_tap.split_at_mut(9 * c_in);
        for (j, &co) in live.iter().enumerate() {
            transpose(&w_rows[co * 9 * c_in..][..9 * c_in], c_in, 9, by_tap);
            // t = G g (6 × 3): column b of it from column b of g, where
            // g[a][b] = W[co, ci, 2 − a, 2 − b].
            for b in 0..3 {
                let g = |a: usize| &by_tap[(8 - 3 * a - b) * c_in..][..c_in];
                let (g0, g1, g2) = (g(0), g(1), g(2));
                let mut rows = t.chunks_exact_mut(c_in).skip(b).step_by(3);
                let mut next = || rows.next().expect("six rows of t");
                let (t0, t1, t2, t3, t4, t5) = (next(), next(), next(), next(), next(), next());
                for ci in 0..c_in {
                    let v = g_times(g0[ci], g1[ci], g2[ci]);
                    (t0[ci], t1[ci], t2[ci], t3[ci], t4[ci], t5[ci]) = (v[0], v[1], v[2], v[3], v[4], v[5]);
                }
            }
            // U = t Gᵀ (6 × 6): row xi of it from row xi of t.
            for xi in 0..6 {
                let row = |b: usize| &t[(xi * 3 + b) * c_in..][..c_in];
                let (r0, r1, r2) = (row(0), row(1), row(2));
                let mut outs = u[(xi * 6 * n + j) * c_in..].chunks_mut(n * c_in);
                let mut next = || &mut outs.next().expect("six values of U's row")[..c_in];
                let (u0, u1, u2, u3, u4, u5) = (next(), next(), next(), next(), next(), next());
                for ci in 0..c_in {
                    let v = g_times(r0[ci], r1[ci], r2[ci]);
                    (u0[ci], u1[ci], u2[ci], u3[ci], u4[ci], u5[ci]) = (v[0], v[1], v[2], v[3], v[4], v[5]);
                }
            }
        }
    }
}

crate::math::widest! {
    /// `V = Bᵀ d B` of the tiles in rows `ty0..ty0 + r` of one channel's plane `plane`
    /// (`h × w`, zero outside), tile `(ty, tx)` reading rows `4ty − 1 ..= 4ty + 4` and columns
    /// `4tx − 1 ..= 4tx + 4`: value `e` of the tile at `v[e · stride + at + (ty − ty0) · tw +
    /// tx]`. `cols` holds each padded row's transforms along the row (six rows of `tw`),
    /// computed once for the two rows of tiles that share it, from the row split into its
    /// four phases of padded columns (so that every loop reads consecutive values).
    fn tile_transform(plane: &[f32], hw: (usize, usize), ty0: usize, r: usize, cols: &mut [f32], v: &mut [f32], place: (usize, usize)) {
        let ((h, w), (at, stride)) = (hw, place);
        let tw = w.div_ceil(4);
        let (phases, cols) = cols.split_at_mut(4 * (tw + 1));
        // Padded row `pr` is the plane's row `pr − 1`; tile row `ty` reads padded rows
        // `4ty ..= 4ty + 5`.
        for (k, c) in cols[..6 * tw * (4 * r + 2)].chunks_exact_mut(6 * tw).enumerate() {
            let pr = 4 * ty0 + k;
            if pr == 0 || pr > h {
                c.fill(0.0);
                continue;
            }
            // Padded column `pc` is the plane's column `pc − 1`, in phase `pc mod 4` at
            // `pc / 4`: tile column `tx` reads phases 0–3 at `tx`, then 0 and 1 at `tx + 1`.
            let row = &plane[(pr - 1) * w..][..w];
            phases.fill(0.0);
            {
                let mut ph = phases.chunks_exact_mut(tw + 1);
                let mut next = || ph.next().expect("four phases");
                let (p0, p1, p2, p3) = (next(), next(), next(), next());
                let quads = row.chunks_exact(4);
                let rest = quads.remainder();
                let q_full = row.len() / 4;
                for (q, c) in quads.enumerate() {
                    (p1[q], p2[q], p3[q], p0[q + 1]) = (c[0], c[1], c[2], c[3]);
                }
                // The last columns: padded columns 4·q_full + 1 …
                for (k, &val) in rest.iter().enumerate() {
                    [&mut *p1, &mut *p2, &mut *p3][k][q_full] = val;
                }
            }
            let ph = |k: usize, off: usize| &phases[k * (tw + 1) + off..][..tw];
            let (d0, d1, d2, d3, d4, d5) = (ph(0, 0), ph(1, 0), ph(2, 0), ph(3, 0), ph(0, 1), ph(1, 1));
            let mut outs = c.chunks_exact_mut(tw);
            let mut next = || outs.next().expect("six rows of column transforms");
            let (c0, c1, c2, c3, c4, c5) = (next(), next(), next(), next(), next(), next());
            for x in 0..tw {
                let t = bt_times([d0[x], d1[x], d2[x], d3[x], d4[x], d5[x]]);
                (c0[x], c1[x], c2[x], c3[x], c4[x], c5[x]) = (t[0], t[1], t[2], t[3], t[4], t[5]);
            }
        }
        for ty in 0..r {
            let rows = &cols[4 * ty * 6 * tw..][..36 * tw];
            for nu in 0..6 {
                let d = |k: usize| &rows[(k * 6 + nu) * tw..][..tw];
                let (d0, d1, d2, d3, d4, d5) = (d(0), d(1), d(2), d(3), d(4), d(5));
                // Values nu, 6 + nu, …, 30 + nu of this row's tiles: 6·stride apart.
                let mut outs = v[nu * stride + at + ty * tw..].chunks_mut(6 * stride);
                let mut next = || &mut outs.next().expect("six rows of V")[..tw];
                let (v0, v1, v2, v3, v4, v5) = (next(), next(), next(), next(), next(), next());
                for x in 0..tw {
                    let t = bt_times([d0[x], d1[x], d2[x], d3[x], d4[x], d5[x]]);
                    (v0[x], v1[x], v2[x], v3[x], v4[x], v5[x]) = (t[0], t[1], t[2], t[3], t[4], t[5]);
                }
            }
        }
    }
}

crate::math::widest! {
    /// `Aᵀ M A` of one input channel's products in rows `ty0..ty0 + r` of tiles (value `e`
    /// of tile `(ty, tx)` at `m[e · stride + at + (ty − ty0) · tw + tx]`), added to its plane
    /// `out` (`h × w`) where the tiles lie inside it. `tmp` takes `24 · tw` values: `Aᵀ M`
    /// of one row of tiles.
    #[allow(clippy::too_many_arguments)]
    fn output_transform(m: &[f32], place: (usize, usize), tw: usize, ty0: usize, r: usize, hw: (usize, usize), tmp: &mut [f32], out: &mut [f32]) {
        let ((h, w), (at, stride)) = (hw, place);
        let full = w / 4;
        let tmp = &mut tmp[..24 * tw];
        for ty in 0..r {
            let s = |e: usize| &m[e * stride + at + ty * tw..][..tw];
            // Aᵀ M: row i of it, column nu, at tmp[(i · 6 + nu) · tw + tx].
            for nu in 0..6 {
                let (s0, s1, s2, s3, s4, s5) = (s(nu), s(6 + nu), s(12 + nu), s(18 + nu), s(24 + nu), s(30 + nu));
                let mut rows = tmp.chunks_exact_mut(tw).skip(nu).step_by(6);
                let mut next = || rows.next().expect("four rows of Aᵀ M");
                let (a0, a1, a2, a3) = (next(), next(), next(), next());
                for tx in 0..tw {
                    let v = at_times([s0[tx], s1[tx], s2[tx], s3[tx], s4[tx], s5[tx]]);
                    (a0[tx], a1[tx], a2[tx], a3[tx]) = (v[0], v[1], v[2], v[3]);
                }
            }
            for i in 0..4 {
                let oy = 4 * (ty0 + ty) + i;
                if oy >= h {
                    break;
                }
                let c = |nu: usize| &tmp[(i * 6 + nu) * tw..][..tw];
                let (c0, c1, c2, c3, c4, c5) = (c(0), c(1), c(2), c(3), c(4), c(5));
                let row = &mut out[oy * w..][..w];
                let (whole, rest) = row.split_at_mut(4 * full);
                for (tx, o) in whole.chunks_exact_mut(4).enumerate() {
                    let y = at_times([c0[tx], c1[tx], c2[tx], c3[tx], c4[tx], c5[tx]]);
                    for (o, &val) in o.iter_mut().zip(&y) {
                        *o += val;
                    }
                }
                if !rest.is_empty() {
                    let tx = full;
                    let y = at_times([c0[tx], c1[tx], c2[tx], c3[tx], c4[tx], c5[tx]]);
                    for (o, &val) in rest.iter_mut().zip(&y) {
                        *o += val;
                    }
                }
            }
        }
    }
}
