//! Matrix products through `matrixmultiply`, or `gemm` on CPUs without AVX-512 (row-major,
//! explicit transposes).
//!
//! `matrixmultiply` and `gemm` were both measured on this project's conv shapes
//! (`cargo bench --bench gemm`). With AVX-512, `matrixmultiply`'s AVX-512 kernel is about
//! 1.5× faster on the shapes that dominate the presets. Without it, `gemm`'s FMA kernel is
//! 1.1–1.6× faster than `matrixmultiply`'s AVX2 one on every shape (README, "Matrix
//! products"), so the AVX2 path ([`crate::math::simd`]) takes `gemm`, in `matrixmultiply`'s
//! blocks of the inner dimension, which makes the two give the same bits. The inner
//! kernels are theirs, never ours.

/// `C = alpha · op(A) · op(B) + beta · C`, all row-major.
///
/// `op(A)` is `m × k`: `A` is stored `m × k`, or `k × m` when `ta`. `op(B)` is `k × n`: `B` is
/// stored `k × n`, or `n × k` when `tb`. `C` is `m × n`.
///
/// While threads spin on the calling thread's [`crate::assist::Board`] (an idle pipeline
/// worker, when a layer has asked for help: [`crate::assist::want_help`]), `C`'s columns are
/// cut into one chunk per thread that can take part ([`crate::assist::helpers`]), each the
/// same product over its columns. A column's values do not depend on the others, so the
/// result is the same bit for bit however it is cut and whoever computes it (`tests`).
///
/// # Panics
/// When a slice is shorter than its dimensions say.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    beta: f32,
    c: &mut [f32],
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "matmul: slices too short"
    );
    if m == 0 || n == 0 {
        return;
    }
    /// `C`'s start, shared by the chunks, each writing only its own columns.
    struct Out(*mut f32);
    // SAFETY: the chunks write disjoint columns of `C` (see below).
    unsafe impl Sync for Out {}
    let parts = crate::assist::helpers().min(n.div_ceil(CHUNK_COLS));
    let width = n.div_ceil(parts).next_multiple_of(CHUNK_COLS);
    let chunks = n.div_ceil(width);
    // `gemm` takes a one-column product down another path (a matrix-vector product, which
    // sums in another order): a last chunk of one column joins the one before.
    let lone = chunks > 1 && n - (chunks - 1) * width == 1;
    let chunks = chunks - usize::from(lone);
    let out = Out(c.as_mut_ptr());
    let (sa, sb) = (strides(ta, m, k), strides(tb, k, n));
    let with = if crate::math::simd() == crate::math::Simd::Avx2 {
        Crate::Gemm
    } else {
        Crate::Matrixmultiply
    };
    crate::assist::split(chunks, |i| {
        let j0 = i * width;
        let nc = if i + 1 == chunks { n - j0 } else { width };
        let b0 = if tb { j0 * k } else { j0 };
        // SAFETY: the asserts above bound every index the strides reach: A spans m·k; this
        // chunk's columns j0..j0 + nc of op(B) start at b0 and stay within B's k·n values;
        // its columns of C (row stride n) stay within m·n, and no other chunk writes them.
        unsafe {
            let out = &out;
            let (a, b) = (a.as_ptr(), b.as_ptr().add(b0));
            product(
                with,
                (m, k, nc),
                alpha,
                (a, sa),
                (b, sb),
                beta,
                (out.0.add(j0), n),
            );
        }
    });
}

/// The crate a product is taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Crate {
    Matrixmultiply,
    Gemm,
}

/// Row and column strides of an `rows × cols` operand stored row-major, or transposed
/// (`cols × rows`) when `t`.
fn strides(t: bool, rows: usize, cols: usize) -> (isize, isize) {
    if t {
        (1, rows as isize)
    } else {
        (cols as isize, 1)
    }
}

/// `C = alpha · A · B + beta · C` of an `m × k` A and a `k × n` B, each given by its start
/// and `(row, column)` strides, into C (row-major, row stride `rsc`), with `with`.
///
/// `gemm` blocks the inner dimension by sizes that depend on the product's shape, so a chunk
/// of columns could sum in other blocks than the whole product: the blocks ([`GEMM_KC`])
/// are cut here, the same for every chunk, and it takes each whole (`dst := alpha·dst +
/// beta·A·B` in its terms). With no inner dimension, `matrixmultiply` scales C by `beta`.
///
/// # Safety
/// Every element the strides reach lies inside the operands, and C's elements do not alias.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    with: Crate,
    (m, k, n): (usize, usize, usize),
    alpha: f32,
    (a, (rsa, csa)): (*const f32, (isize, isize)),
    (b, (rsb, csb)): (*const f32, (isize, isize)),
    beta: f32,
    (c, rsc): (*mut f32, usize),
) {
    if with == Crate::Matrixmultiply || k == 0 {
        // SAFETY: the caller's.
        unsafe { matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc as isize, 1) };
        return;
    }
    for k0 in (0..k).step_by(GEMM_KC) {
        let kn = GEMM_KC.min(k - k0);
        let (keep, read) = if k0 == 0 { (beta, beta != 0.0) } else { (1.0, true) };
        // SAFETY: the caller's, for this block's columns of A and rows of B.
        unsafe {
            gemm::gemm(
                m,
                n,
                kn,
                c,
                1,
                rsc as isize,
                read,
                a.offset(k0 as isize * csa),
                csa,
                rsa,
                b.offset(k0 as isize * rsb),
                csb,
                rsb,
                keep,
                alpha,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// The inner dimension's block in `gemm`'s products, the last one what is left: the blocks
/// `matrixmultiply` takes (`KC` 256 for `f32`), so that the two crates sum in the same order
/// (`tests`). Up to 512, `gemm` takes the whole inner dimension in one block whatever the
/// other two are.
const GEMM_KC: usize = 256;

/// Columns of `C` per chunk of [`matmul`] are a multiple of this (the widest micro-kernel's
/// columns), so that cutting changes no kernel's shape in the middle.
const CHUNK_COLS: usize = 16;

/// Runs one product as large as `matrixmultiply`'s packing blocks on this thread
/// (`kc × (mc + nc)` values for `f32`: 1.1 MiB), so that the memory its packing buffers take
/// at every product is this thread's from the start. The crate allocates and frees them per
/// product; without this, whether a thread's allocator arena had grown to hold them
/// depended on which threads had happened to run a large product at the same time, which
/// moved a training run's peak RSS by up to 2 MiB between identical runs.
pub fn prime_packing() {
    // matrixmultiply 0.3's f32 blocking (`archparam_defaults`: MC 64, KC 256, NC 1024).
    const M: usize = 64;
    const K: usize = 256;
    const N: usize = 1024;
    let (a, b) = ([0f32; 1], [0f32; 1]);
    let mut c = vec![0f32; M * N];
    // SAFETY: A and B are read through zero strides (one element each, which the crate
    // allows); C is M × N with row stride N, no two elements aliasing.
    unsafe {
        matrixmultiply::sgemm(
            M,
            K,
            N,
            1.0,
            a.as_ptr(),
            0,
            0,
            b.as_ptr(),
            0,
            0,
            0.0,
            c.as_mut_ptr(),
            N as isize,
            1,
        );
    }
    // `gemm`'s too, where it serves: its per-thread slab (the size of L2) on first use, and
    // packing buffers per product, as large as the inner-dimension block (GEMM_KC) times the
    // widest products' columns.
    if crate::math::simd() == crate::math::Simd::Avx2 {
        let (m, k, n) = (256, GEMM_KC, 1156);
        let a = vec![0f32; m * k];
        let b = vec![0f32; k * n];
        let mut c = vec![0f32; m * n];
        matmul(m, k, n, 1.0, &a, false, &b, false, 0.0, &mut c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], ta: bool, b: &[f32], tb: bool) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    c[i * n + j] += av * bv;
                }
            }
        }
        c
    }

    #[test]
    fn all_transpose_combinations() {
        // The second has an inner dimension of five blocks for `gemm` (the AVX2 path).
        for (m, k, n) in [(5, 7, 3), (9, 1100, 20)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.91).cos()).collect();
            let tol = 1e-6 * k as f32;
            for ta in [false, true] {
                for tb in [false, true] {
                    let want = naive(m, k, n, &a, ta, &b, tb);
                    let mut c = vec![1.0; m * n];
                    matmul(m, k, n, 1.0, &a, ta, &b, tb, 0.0, &mut c);
                    for (x, y) in c.iter().zip(&want) {
                        assert!((x - y).abs() < tol, "{m}×{k}×{n}: {x} against {y}");
                    }
                    // beta = 0.5 scales what is there, alpha the product.
                    matmul(m, k, n, 0.25, &a, ta, &b, tb, 0.5, &mut c);
                    for (x, y) in c.iter().zip(&want) {
                        assert!(
                            (x - 0.75 * y).abs() < tol,
                            "{m}×{k}×{n}: {x} against {}",
                            0.75 * y
                        );
                    }
                }
            }
        }
    }

    /// `gemm` in blocks of GEMM_KC gives the bits `matrixmultiply` gives on the products the
    /// convolutions make (both sum each block in order with fused multiply-adds, from zero,
    /// and add the blocks into `C` in order), so the AVX2 path learns what the AVX-512 path
    /// learns: forward (`C_out × K · K × P`, inner dimensions of one block and of nine),
    /// weight gradient (`dY · colᵀ`), input gradient by im2col (`Wᵀ · dY`) and Winograd's
    /// products, with `beta` 0 and 1. (Not every shape: with few rows and `B` transposed,
    /// `gemm` takes kernels that sum in another order.)
    #[test]
    fn both_crates_give_the_same_bits_on_the_convolutions_products() {
        let mut rng = crate::Rng::new(9);
        for (m, k, n, ta, tb) in [
            (64, 288, 289, false, false),
            (256, 2304, 16, false, false),
            (64, 289, 288, false, true),
            (128, 1024, 576, false, true),
            (576, 128, 1024, true, false),
            (64, 128, 128, true, false),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.next_f32() - 0.5).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.next_f32() - 0.5).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.next_f32()).collect();
            for beta in [0.0, 1.0] {
                let (sa, sb) = (strides(ta, m, k), strides(tb, k, n));
                let run = |with: Crate| {
                    let mut c = c0.clone();
                    // SAFETY: A is m × k, B k × n, C m × n, with the strides of their layouts.
                    unsafe {
                        let (a, b) = (a.as_ptr(), b.as_ptr());
                        product(with, (m, k, n), 1.0, (a, sa), (b, sb), beta, (c.as_mut_ptr(), n));
                    }
                    c
                };
                let (mm, g) = (run(Crate::Matrixmultiply), run(Crate::Gemm));
                let same = mm
                    .iter()
                    .zip(&g)
                    .filter(|(x, y)| x.to_bits() == y.to_bits())
                    .count();
                assert_eq!(same, m * n, "{m}×{k}×{n} ta {ta} tb {tb} beta {beta}");
            }
        }
    }

    /// Cut into chunks of columns, a product gives the same bits as whole, on the shapes the
    /// convolutions share (forward and weight gradient of `nmnist`'s second subnetwork), in
    /// every transpose combination, with and without accumulation, cut in two to four (as
    /// many as the threads that count as spinning on the board: here the calling thread
    /// itself, which then computes every chunk).
    #[test]
    fn chunks_of_columns_give_the_same_bits() {
        use crate::assist::{as_if_helped, helpers};
        let mut rng = crate::Rng::new(7);
        // With `gemm` (the AVX2 path): an inner dimension above its one-block size, with few rows
        // (chunks of 64 columns or fewer take its small-product path), and a last chunk of one
        // column (17 in 2).
        for (m, k, n) in [
            (64, 288, 289),
            (64, 289, 288),
            (32, 18, 1156),
            (5, 7, 40),
            (64, 1152, 256),
            (128, 2304, 16),
            (16, 600, 17),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.next_f32() - 0.5).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.next_f32() - 0.5).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.next_f32()).collect();
            for (ta, tb, beta) in [
                (false, false, 1.0),
                (false, true, 0.0),
                (true, false, 1.0),
                (true, true, 0.5),
            ] {
                let mut whole = c0.clone();
                matmul(m, k, n, 0.7, &a, ta, &b, tb, beta, &mut whole);
                for parts in 2..=4 {
                    let mut cut = c0.clone();
                    as_if_helped(parts, || {
                        assert_eq!(helpers(), parts);
                        matmul(m, k, n, 0.7, &a, ta, &b, tb, beta, &mut cut);
                    });
                    let same = whole.iter().zip(&cut).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{m}×{k}×{n} ta {ta} tb {tb} in {parts}");
                }
            }
        }
    }
}
