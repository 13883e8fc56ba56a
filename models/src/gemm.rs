//! Matrix products through `matrixmultiply` (row-major, explicit transposes).
//!
//! `matrixmultiply` and `gemm` were both measured on this project's conv shapes
//! (`cargo bench --bench gemm`): `matrixmultiply` is 1.5–1.6× faster on the shapes that
//! dominate the `nmnist` preset, `gemm` on products with a long inner dimension and few
//! columns (README, "Benchmarks"). The inner kernels are theirs, never ours.

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
    let out = Out(c.as_mut_ptr());
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    crate::assist::split(n.div_ceil(width), |i| {
        let j0 = i * width;
        let nc = width.min(n - j0);
        let b0 = if tb { j0 * k } else { j0 };
        // SAFETY: the asserts above bound every index the strides reach: A spans m·k; this
        // chunk's columns j0..j0 + nc of op(B) start at b0 and stay within B's k·n values;
        // its columns of C (row stride n) stay within m·n, and no other chunk writes them.
        unsafe {
            let out = &out;
            matrixmultiply::sgemm(
                m,
                k,
                nc,
                alpha,
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr().add(b0),
                rsb,
                csb,
                beta,
                out.0.add(j0),
                n as isize,
                1,
            );
        }
    });
}

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
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.91).cos()).collect();
        for ta in [false, true] {
            for tb in [false, true] {
                let want = naive(m, k, n, &a, ta, &b, tb);
                let mut c = vec![1.0; m * n];
                matmul(m, k, n, 1.0, &a, ta, &b, tb, 0.0, &mut c);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-5);
                }
                // beta = 1 accumulates.
                matmul(m, k, n, 1.0, &a, ta, &b, tb, 1.0, &mut c);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 1e-4);
                }
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
        for (m, k, n) in [(64, 288, 289), (64, 289, 288), (32, 18, 1156), (5, 7, 40)] {
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
