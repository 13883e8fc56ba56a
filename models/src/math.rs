//! Element-wise functions written so that the compiler vectorises the loops they sit in.
//!
//! `f32::exp` is a call into libm that no loop around it can vectorise; the sigmoid
//! surrogate evaluates one per neuron and time step, which made it the largest single cost
//! of a training step. [`exp`] is Cephes' `expf` (range reduction by `ln 2`, a degree-5
//! polynomial) with branch-free clamping and the power of two built from the exponent bits,
//! so it inlines into straight-line arithmetic. Its relative error is below 2 ulp over the
//! whole clamped range (a test checks it against `f64::exp`).

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split so that `n · LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5 · 2^23`: adding it rounds a float of magnitude below `2^22` to an integer, which
/// then sits in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;

/// `e^x` for `x` clamped to `[-87, 88]` (so the result is always a normal float:
/// `e^-87 ≈ 1.6e-38`, `e^88 ≈ 1.7e38`); NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // t's bits are 0x4B40_0000 + n with n in [-126, 127]: 2^n from the exponent field.
    let n_bits = t.to_bits().wrapping_sub(0x4B40_0000);
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    e * scale
}

/// `α·σ(αx)·(1 − σ(αx))`, the sigmoid surrogate, through [`exp`].
#[inline(always)]
pub fn sigmoid_grad(x: f32, alpha: f32) -> f32 {
    let s = 1.0 / (1.0 + exp(-alpha * x));
    alpha * s * (1.0 - s)
}

/// The vector units the `widest!` kernels are compiled for, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// The x86-64 baseline (SSE2), or the portable loops elsewhere.
    Baseline,
    /// AVX2.
    Avx2,
    /// AVX-512F.
    Avx512,
}

impl Simd {
    /// The name `STDL_SIMD` takes and benchmarks print.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Baseline => "baseline",
            Simd::Avx2 => "AVX2",
            Simd::Avx512 => "AVX-512",
        }
    }
}

/// The widest vector unit this CPU has among [`Simd`]'s.
pub fn cpu_simd() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Simd::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Simd::Avx2;
        }
    }
    Simd::Baseline
}

/// The variant the `widest!` kernels run: [`cpu_simd`], or narrower when the environment
/// variable `STDL_SIMD` says `avx2` or `baseline` (to measure and test the narrower paths on
/// a wider machine; never wider than the CPU has). The AVX2 path also takes its matrix
/// products from another crate ([`crate::gemm`]), so `STDL_SIMD=avx2` runs what a CPU
/// without AVX-512 runs. Read once per process.
pub fn simd() -> Simd {
    static LEVEL: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("STDL_SIMD")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            Ok("avx2") => Simd::Avx2,
            Ok("baseline") => Simd::Baseline,
            _ => Simd::Avx512,
        };
        cpu_simd().min(cap)
    })
}

/// Defines a function whose body is compiled three times (for AVX-512, for AVX2 and for the
/// baseline) and dispatched at run time to the widest vector unit this CPU has ([`simd`]), so that the
/// element-wise loops in it vectorise 16 or 8 lanes wide instead of the baseline's 4. Rust
/// never contracts `a * b + c` into a fused multiply-add, so every variant computes
/// bit-identical results. Helpers the body calls must be `#[inline(always)]` to be compiled
/// into each variant.
macro_rules! widest {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) {
            #[inline(always)]
            fn baseline($($a: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($a: $t),*) {
                    baseline($($a),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($a: $t),*) {
                    baseline($($a),*)
                }
                match $crate::math::simd() {
                    // SAFETY: the CPU has AVX-512F (`simd` never says more than it has).
                    $crate::math::Simd::Avx512 => return unsafe { avx512($($a),*) },
                    // SAFETY: the CPU has AVX2.
                    $crate::math::Simd::Avx2 => return unsafe { avx2($($a),*) },
                    $crate::math::Simd::Baseline => {}
                }
            }
            baseline($($a),*)
        }
    };
}
pub(crate) use widest;

/// Whether every value seen was finite, kept as the largest exponent field seen (all ones
/// only for an infinity or a NaN): an unsigned maximum, which vectorises into one
/// instruction per vector, where `ok &= v.is_finite()` packed each vector's comparison
/// down to bytes first (a quarter of the fused Adam update's time, in `perf annotate`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Finite(u32);

impl Finite {
    const EXPONENT: u32 = 0x7f80_0000;

    /// Takes `v` into account.
    #[inline(always)]
    pub fn see(&mut self, v: f32) {
        self.0 = self.0.max(v.to_bits() & Self::EXPONENT);
    }

    /// Whether every value seen was finite.
    #[inline(always)]
    pub fn all(self) -> bool {
        self.0 != Self::EXPONENT
    }
}

/// `x`, or 0 where `x` is subnormal (`|x|` below [`f32::MIN_POSITIVE`], about 1.2e-38).
///
/// For state that decays geometrically step after step, as the optimisers' moments do where
/// a gradient stays 0: without it, such a value passes through the subnormal range over
/// about 150 steps (`β₁ = 0.9`) on its way to 0, and Intel CPUs take a microcode assist for
/// each vector instruction that reads or writes a subnormal. On the DVS128 walk, 7% of the
/// fused Adam update's values had a subnormal first moment, and the update took twice as
/// long (docs/speed-log.md). An explicit select, not the CPU's flush-to-zero mode: Rust
/// assumes the default floating-point environment, and the same bits come out on every CPU.
#[inline(always)]
pub fn flush_subnormal(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

/// Sum of `xs` in 16 interleaved partial sums (element `i` into partial `i mod 16`, the
/// partials then added in order): a fixed order, so the same result on every CPU, that
/// vectorises where a strict left-to-right sum is one long dependency chain.
#[inline(always)]
pub fn sum(xs: &[f32]) -> f32 {
    sum_of(xs, |v| v)
}

/// The 16 interleaved partial sums of [`sum`]: a loop that takes several sums in one pass
/// adds element `i` into partial `i mod 16` of each and ends with [`Partials::total`], and
/// gives the same bits as [`sum`], [`sum_of`] and [`sum_of2`] taken one by one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Partials(pub [f32; 16]);

impl Partials {
    /// The partials added in order.
    #[inline(always)]
    pub fn total(&self) -> f32 {
        self.0.iter().sum()
    }
}

/// `Σ f(x)` over `xs`, in the order of [`sum`].
#[inline(always)]
pub fn sum_of(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = Partials::default();
    let chunks = xs.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.0.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    for (a, &v) in acc.0.iter_mut().zip(tail) {
        *a += f(v);
    }
    acc.total()
}

/// `Σ f(a, b)` over pairs of `a` and `b` (of equal length), in the order of [`sum`].
///
/// # Panics
/// When the slices differ in length.
#[inline(always)]
pub fn sum_of2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    assert_eq!(a.len(), b.len(), "sum_of2 lengths");
    let mut acc = Partials::default();
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &u), &v) in acc.0.iter_mut().zip(x).zip(y) {
            *s += f(u, v);
        }
    }
    for ((s, &u), &v) in acc.0.iter_mut().zip(ta).zip(tb) {
        *s += f(u, v);
    }
    acc.total()
}

/// Writes the `rows × cols` row-major matrix `src` transposed into `dst` (`cols × rows`).
/// On x86-64, whole 4 × 4 blocks are transposed in SSE registers (four loads, eight
/// shuffles, four stores: the compiler does not find this itself); edges element by element.
///
/// # Panics
/// When a slice is shorter than `rows × cols`.
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    transpose_strided(src, rows, cols, dst, rows);
}

/// [`transpose`] into rows of `dst` that are `stride ≥ rows` apart: `dst[c·stride + r] =
/// src[r·cols + c]`, the rest of `dst` untouched (a block of a wider matrix, written in
/// place rather than through a copy).
///
/// # Panics
/// When `stride < rows` or a slice is too short.
pub fn transpose_strided(src: &[f32], rows: usize, cols: usize, dst: &mut [f32], stride: usize) {
    assert!(
        stride >= rows && src.len() >= rows * cols && (cols == 0 || dst.len() >= (cols - 1) * stride + rows),
        "transpose sizes"
    );
    #[cfg(target_arch = "x86_64")]
    let (rb, cb) = {
        sse_blocks(src, rows, cols, dst, stride);
        (rows / 4 * 4, cols / 4 * 4)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (rb, cb) = (0, 0);
    for r in 0..rows {
        let c_from = if r < rb { cb } else { 0 };
        for c in c_from..cols {
            dst[c * stride + r] = src[r * cols + c];
        }
    }
}

/// Destination rows this many values apart, or a multiple of it (2 KiB), fall in the same
/// few cache sets: [`sse_blocks`] then sweeps a few destination rows at a time.
#[cfg(target_arch = "x86_64")]
const ALIASING_STRIDE: usize = 512;

/// The whole 4 × 4 blocks of [`transpose_strided`], in one of two orders.
///
/// Both take a tile of source rows at a time and sweep its columns 4 at a time, each
/// sweep finishing 4 destination rows over the tile's span.
///
/// - In general, 16 source rows: each pass over the columns then completes one 64-byte line
///   of each destination row it writes, and reads 16 source lines that stay in L1.
/// - When the destination rows are a multiple of [`ALIASING_STRIDE`] apart (a convolution's
///   `P × C` accumulator turned into `C × P`, with `P` a power of two), that pass would
///   write one line into each of up to `C` destination rows that all map to the same cache
///   set, and come back for the next line of each after they were evicted: 8–10× slower than
///   a copy of the same bytes (`cargo bench --bench transpose`). There, 64 source rows: each
///   sweep writes 4 lines into each of its 4 destination rows (4 rows of one set stay
///   below any L1's associativity).
#[cfg(target_arch = "x86_64")]
fn sse_blocks(src: &[f32], rows: usize, cols: usize, dst: &mut [f32], stride: usize) {
    use std::arch::x86_64::{_mm_loadu_ps, _mm_movehl_ps, _mm_movelh_ps, _mm_storeu_ps};
    use std::arch::x86_64::{_mm_unpackhi_ps, _mm_unpacklo_ps};
    let (rb, cb) = (rows / 4 * 4, cols / 4 * 4);
    if rb == 0 || cb == 0 {
        return;
    }
    // Every read is below `(rb − 1)·cols + cb ≤ rows·cols` and every write below
    // `(cb − 1)·stride + rb ≤ (cols − 1)·stride + rows`: the caller's bounds.
    assert!(src.len() >= rows * cols && dst.len() >= (cols - 1) * stride + rows);
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let tile = if stride % ALIASING_STRIDE == 0 { 64 } else { 16 };
    for rt in (0..rb).step_by(tile) {
        let r_end = (rt + tile).min(rb);
        for c0 in (0..cb).step_by(4) {
            for r0 in (rt..r_end).step_by(4) {
                // SAFETY: in bounds (above); SSE is part of the x86-64 baseline.
                unsafe {
                    let at = s.add(r0 * cols + c0);
                    let (a, b) = (_mm_loadu_ps(at), _mm_loadu_ps(at.add(cols)));
                    let (c, e) = (_mm_loadu_ps(at.add(2 * cols)), _mm_loadu_ps(at.add(3 * cols)));
                    let (ab_lo, ce_lo) = (_mm_unpacklo_ps(a, b), _mm_unpacklo_ps(c, e));
                    let (ab_hi, ce_hi) = (_mm_unpackhi_ps(a, b), _mm_unpackhi_ps(c, e));
                    let to = d.add(c0 * stride + r0);
                    _mm_storeu_ps(to, _mm_movelh_ps(ab_lo, ce_lo));
                    _mm_storeu_ps(to.add(stride), _mm_movehl_ps(ce_lo, ab_lo));
                    _mm_storeu_ps(to.add(2 * stride), _mm_movelh_ps(ab_hi, ce_hi));
                    _mm_storeu_ps(to.add(3 * stride), _mm_movehl_ps(ce_hi, ab_hi));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_tells_infinities_and_nans_from_every_finite_value() {
        let finite = [
            0.0,
            -0.0,
            1.0,
            -3.5,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-45,
            -1e-45,
        ];
        let mut all = Finite::default();
        assert!(all.all(), "nothing seen");
        for v in finite {
            all.see(v);
        }
        assert!(all.all());
        let nan_payload = f32::from_bits(0x7f80_0001);
        for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN, nan_payload] {
            let mut one = all;
            one.see(bad);
            for v in finite {
                one.see(v);
            }
            assert!(!one.all(), "{bad}");
        }
    }

    fn ulps(a: f32, exact: f64) -> f64 {
        let ulp = f64::from(f32::EPSILON) * exact.abs().max(f64::from(f32::MIN_POSITIVE));
        (f64::from(a) - exact).abs() / ulp
    }

    #[test]
    fn exp_within_two_ulp_over_the_range() {
        let mut worst: f64 = 0.0;
        let mut x = -87.0f32;
        while x <= 88.0 {
            worst = worst.max(ulps(exp(x), f64::from(x).exp()));
            x += 0.000_7;
        }
        for x in [-1e-30f32, 0.0, 1e-30, 1e-7, -1e-7, 0.5, -0.5, 0.346_57, -0.346_57] {
            worst = worst.max(ulps(exp(x), f64::from(x).exp()));
        }
        assert!(worst < 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn transpose_of_ragged_shapes() {
        for (rows, cols) in [(1, 1), (3, 17), (33, 16), (40, 70), (4, 4), (16, 20), (37, 5)] {
            let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
            let mut dst = vec![0.0; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c * rows + r], src[r * cols + c]);
                }
            }
        }
    }

    #[test]
    fn strided_transpose_writes_its_block_only() {
        // The last three take the order for rows a multiple of 512 apart.
        for (rows, cols, stride) in [
            (4, 4, 9),
            (17, 6, 20),
            (8, 33, 8),
            (3, 2, 5),
            (67, 9, 512),
            (1024, 6, 1024),
            (130, 7, 1536),
        ] {
            let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
            let mut dst = vec![-1.0; cols * stride];
            transpose_strided(&src, rows, cols, &mut dst, stride);
            for c in 0..cols {
                for j in 0..stride {
                    let want = if j < rows { src[j * cols + c] } else { -1.0 };
                    assert_eq!(dst[c * stride + j], want, "{rows}x{cols} stride {stride}");
                }
            }
        }
    }

    #[test]
    fn sum_matches_f64() {
        for n in [0usize, 1, 15, 16, 17, 1000, 1157] {
            let xs: Vec<f32> = (0..n).map(|i| ((i * 7919) % 101) as f32 * 0.01 - 0.5).collect();
            let exact: f64 = xs.iter().map(|&v| f64::from(v)).sum();
            assert!((f64::from(sum(&xs)) - exact).abs() < 1e-4, "n = {n}");
        }
    }

    #[test]
    fn exp_clamps_instead_of_overflowing() {
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_grad_matches_the_libm_formula() {
        for i in -4000..=4000 {
            let x = i as f32 * 0.005;
            let s = 1.0 / (1.0 + (-4.0 * f64::from(x)).exp());
            let exact = 4.0 * s * (1.0 - s);
            let got = f64::from(sigmoid_grad(x, 4.0));
            // The f32 formula itself loses digits in `1 − s`; libm's exp does no better.
            let s32 = 1.0 / (1.0 + (-4.0 * x).exp());
            let libm = f64::from(4.0 * s32 * (1.0 - s32));
            let bound = 2.0 * (libm - exact).abs() + 4.0 * f64::from(f32::EPSILON) * exact;
            assert!(
                (got - exact).abs() <= bound,
                "x = {x}: {got} vs {exact} (libm {libm})"
            );
        }
    }
}
