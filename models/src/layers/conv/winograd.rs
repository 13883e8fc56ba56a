//! The input gradient of a 3 × 3, stride-1, padding-1 convolution by Winograd's minimal
//! filtering F(2 × 2, 3 × 3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural
//! Networks", CVPR 2016).
//!
//! That input gradient is itself a 3 × 3 convolution with padding 1: of the output
//! gradient `dY` (the live output channels' planes) by the weights turned by 180°, with
//! input and output channels swapped. F(2 × 2, 3 × 3) computes each 2 × 2 tile of it from a
//! 4 × 4 tile of `dY` with 16 multiplications per pair of channels where the direct product
//! takes 36: the transformed weights `U = G g Gᵀ` and the transformed tiles `V = Bᵀ d B`
//! meet in 16 independent products `M_e = U_eᵀ · V_e` (one per position `e` of the 4 × 4
//! transform, each a GEMM over the output channels), and `Aᵀ M A` gives the tile. The GEMMs
//! are the GEMM crate's; the transforms are additions and halvings, written here so that
//! each loop runs over contiguous values (a row of tiles, or the input channels) and
//! vectorises.
//!
//! Against im2col and one GEMM (`K × P` columns, then col2im), this takes 16/36 of the
//! multiply-adds and never writes the `K × P` columns. The sums are taken in another
//! order, so the values differ from it in the last bits (a few units of `f32` rounding
//! relative to the sum of the terms' magnitudes; `tests`).
//!
//! The work is cut into chunks of whole rows of tiles so that the transformed weights and
//! one chunk's transformed tiles and products fit in the scratch the im2col path takes
//! (`K × P` values): the convolution's memory is what it was ([`rows_per_chunk`]).

use crate::gemm::matmul;
use crate::math::transpose;

/// Values of one tile's transform (4 × 4), and so the number of GEMMs.
const E: usize = 16;

/// Tiles per chunk (the products' columns) below which the 16 products cost more than the
/// one im2col product they replace: `cargo bench --bench input_grad` on the AVX2 path,
/// `nmnist`'s 32 → 64 convolution at 17 × 17 (27 tiles per chunk in the scratch) took
/// 1.3× the time of im2col, `dvs-gesture`'s 64 → 128 head at 32 × 32 (128 tiles) 0.79×.
const MIN_TILES: usize = 64;

/// The plan of one input gradient: how many rows of tiles each chunk takes ([`fit_rows`]),
/// or None when they do not fit or the products would have fewer than [`MIN_TILES`]
/// columns. `n` output channels (the live ones) into `c_in` input channels over an `h × w`
/// plane.
pub(super) fn rows_per_chunk(n: usize, c_in: usize, hw: (usize, usize), scratch: usize) -> Option<usize> {
    fit_rows(n, c_in, hw, scratch).filter(|&rows| rows * hw.1.div_ceil(2) >= MIN_TILES)
}

/// The rows of tiles per chunk, chunks as even as they can be, as many as fit in `scratch`
/// values beside the transformed weights; None when not even one row does.
pub(super) fn fit_rows(n: usize, c_in: usize, (h, w): (usize, usize), scratch: usize) -> Option<usize> {
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    // The transformed weights, one output channel's weights by tap, and per row of tiles
    // its transformed tiles, its products and (for one channel at a time) two padded
    // rows' column transforms; one row split into its even and odd columns.
    let fixed = E * n * c_in + 9 * c_in + 8 * tw + 2 * (tw + 1);
    let per_row = E * (n + c_in) * tw + 8 * tw;
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
    let (p, th, tw) = (h * w, h.div_ceil(2), w.div_ceil(2));
    let (u, rest) = scratch.split_at_mut(E * n * c_in);
    let (by_tap, rest) = rest.split_at_mut(9 * c_in);
    kernel_transform(w_rows, live, c_in, by_tap, u);
    let tc = rows * tw;
    let (v, rest) = rest.split_at_mut(E * n * tc);
    let (m, rest) = rest.split_at_mut(E * c_in * tc);
    let cols = &mut rest[..8 * tw * (rows + 1) + 2 * (tw + 1)];
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
                &mut dx[ci * p..][..p],
            );
        }
    }
}

crate::math::widest! {
    /// `U = G g Gᵀ` of the weights of each output channel in `live` with each input channel,
    /// `g` the 3 × 3 kernel turned by 180°, into `u` as `E × n × c_in` (`n = live.len()`:
    /// the `e`-th product's left factor, transposed). Each channel's row of `w_rows`
    /// (`c_in × 9`) is first transposed into `by_tap` (`9 × c_in`), so that the loops run
    /// over input channels.
    fn kernel_transform(w_rows: &[f32], live: &[usize], c_in: usize, by_tap: &mut [f32], u: &mut [f32]) {
        let n = live.len();
        for (j, &co) in live.iter().enumerate() {
            transpose(&w_rows[co * 9 * c_in..][..9 * c_in], c_in, 9, by_tap);
            // g[a][b] = W[co, ci, 2 − a, 2 − b].
            let g = |a: usize, b: usize| &by_tap[(8 - 3 * a - b) * c_in..][..c_in];
            for ci in 0..c_in {
                // Rows: t = G g (4 × 3), column b of it from column b of g.
                let column = |b: usize| {
                    let (g0, g1, g2) = (g(0, b)[ci], g(1, b)[ci], g(2, b)[ci]);
                    [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2]
                };
                let (t0, t1, t2) = (column(0), column(1), column(2));
                let t: [[f32; 3]; 4] = std::array::from_fn(|xi| [t0[xi], t1[xi], t2[xi]]);
                // Columns: U = t Gᵀ (4 × 4).
                for (xi, t) in t.iter().enumerate() {
                    let row = [t[0], 0.5 * (t[0] + t[1] + t[2]), 0.5 * (t[0] - t[1] + t[2]), t[2]];
                    for (nu, &val) in row.iter().enumerate() {
                        u[((xi * 4 + nu) * n + j) * c_in + ci] = val;
                    }
                }
            }
        }
    }
}

crate::math::widest! {
    /// `V = Bᵀ d B` of the tiles in rows `ty0..ty0 + r` of one channel's plane `plane`
    /// (`h × w`, zero outside), tile `(ty, tx)` reading rows `2ty − 1 ..= 2ty + 2` and columns
    /// `2tx − 1 ..= 2tx + 2`: value `e` of the tile at `v[e · stride + at + (ty − ty0) · tw +
    /// tx]`. `cols` holds each padded row's column transforms (`Bᵀ` along the row: four rows of
    /// `tw`), computed once for the two rows of tiles that share it, from the row split into
    /// its even and odd padded columns (so that every loop reads consecutive values).
    fn tile_transform(plane: &[f32], hw: (usize, usize), ty0: usize, r: usize, cols: &mut [f32], v: &mut [f32], place: (usize, usize)) {
        let ((h, w), (at, stride)) = (hw, place);
        let tw = w.div_ceil(2);
        let (split, cols) = cols.split_at_mut(2 * (tw + 1));
        let (even, odd) = split.split_at_mut(tw + 1);
        // Padded row `pr` is the plane's row `pr − 1`; tile row `ty` reads padded rows
        // `2ty ..= 2ty + 3`.
        for (k, c) in cols[..4 * tw * (2 * r + 2)].chunks_exact_mut(4 * tw).enumerate() {
            let pr = 2 * ty0 + k;
            if pr == 0 || pr > h {
                c.fill(0.0);
                continue;
            }
            // Padded column `pc` is the plane's column `pc − 1`: even[x] is padded column 2x,
            // odd[x] 2x + 1; tile column `tx` reads even[tx], odd[tx], even[tx + 1],
            // odd[tx + 1].
            let row = &plane[(pr - 1) * w..][..w];
            even.fill(0.0);
            odd.fill(0.0);
            for (x, pair) in row.chunks_exact(2).enumerate() {
                odd[x] = pair[0];
                even[x + 1] = pair[1];
            }
            if w % 2 == 1 {
                odd[tw - 1] = row[w - 1];
            }
            let (e0, e1, o0, o1) = (&even[..tw], &even[1..][..tw], &odd[..tw], &odd[1..][..tw]);
            let (c0, rest) = c.split_at_mut(tw);
            let (c1, rest) = rest.split_at_mut(tw);
            let (c2, c3) = rest.split_at_mut(tw);
            for x in 0..tw {
                c0[x] = e0[x] - e1[x];
                c1[x] = o0[x] + e1[x];
                c2[x] = e1[x] - o0[x];
                c3[x] = o0[x] - o1[x];
            }
        }
        for ty in 0..r {
            let rows = &cols[2 * ty * 4 * tw..][..16 * tw];
            for nu in 0..4 {
                let d = |k: usize| &rows[(k * 4 + nu) * tw..][..tw];
                let (d0, d1, d2, d3) = (d(0), d(1), d(2), d(3));
                // Values nu, 4 + nu, 8 + nu, 12 + nu of this row's tiles: 4·stride apart.
                let mut outs = v[nu * stride + at + ty * tw..].chunks_mut(4 * stride);
                let mut next = || &mut outs.next().expect("four rows of V")[..tw];
                let (v0, v1, v2, v3) = (next(), next(), next(), next());
                for x in 0..tw {
                    v0[x] = d0[x] - d2[x];
                    v1[x] = d1[x] + d2[x];
                    v2[x] = d2[x] - d1[x];
                    v3[x] = d1[x] - d3[x];
                }
            }
        }
    }
}

crate::math::widest! {
    /// `Aᵀ M A` of one input channel's products in rows `ty0..ty0 + r` of tiles (value `e`
    /// of tile `(ty, tx)` at `m[e · stride + at + (ty − ty0) · tw + tx]`), added to its plane
    /// `out` (`h × w`) where the tiles lie inside it.
    fn output_transform(m: &[f32], place: (usize, usize), tw: usize, ty0: usize, r: usize, hw: (usize, usize), out: &mut [f32]) {
        let ((h, w), (at, stride)) = (hw, place);
        let half = w / 2;
        for ty in 0..r {
            // s[k]: value k of this row's tiles.
            let s: [&[f32]; E] = std::array::from_fn(|k| &m[k * stride + at + ty * tw..][..tw]);
            for i in 0..2 {
                let oy = 2 * (ty0 + ty) + i;
                if oy >= h {
                    continue;
                }
                // Row i of Aᵀ M: M's rows 0 + 1 + 2 (i = 0), or 1 − 2 − 3 (i = 1).
                let t: [&[f32]; 12] = std::array::from_fn(|k| s[4 * i + k]);
                let t = |nu: usize, tx: usize| {
                    let (x, y, z) = (t[nu][tx], t[4 + nu][tx], t[8 + nu][tx]);
                    if i == 0 {
                        x + y + z
                    } else {
                        x - y - z
                    }
                };
                let row = &mut out[oy * w..][..w];
                let (pairs, last) = row.split_at_mut(2 * half);
                for (tx, pair) in pairs.chunks_exact_mut(2).enumerate() {
                    let (t0, t1, t2, t3) = (t(0, tx), t(1, tx), t(2, tx), t(3, tx));
                    pair[0] += t0 + t1 + t2;
                    pair[1] += t1 - t2 - t3;
                }
                if let [last] = last {
                    let tx = tw - 1;
                    *last += t(0, tx) + t(1, tx) + t(2, tx);
                }
            }
        }
    }
}
