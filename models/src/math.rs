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

/// Defines a function whose body is compiled three times (for AVX-512, for AVX2 and for the
/// baseline) and dispatched at run time to the widest vector unit this CPU has, so that the
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
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { avx512($($a),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { avx2($($a),*) };
                }
            }
            baseline($($a),*)
        }
    };
}
pub(crate) use widest;

/// Writes the `rows × cols` row-major matrix `src` transposed into `dst` (`cols × rows`),
/// in 16 × 16 tiles so that neither side is walked with a long stride.
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const TILE: usize = 16;
    assert!(
        src.len() >= rows * cols && dst.len() >= rows * cols,
        "transpose sizes"
    );
    for r0 in (0..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            for c in c0..c1 {
                let out = &mut dst[c * rows + r0..c * rows + r1];
                for (o, r) in out.iter_mut().zip(r0..r1) {
                    *o = src[r * cols + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for (rows, cols) in [(1, 1), (3, 17), (33, 16), (40, 70)] {
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
