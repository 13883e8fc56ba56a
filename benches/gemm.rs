//! `matrixmultiply` against `gemm` on the matrix products of this project's convolutions
//! (single thread, f32, row-major `C = A·B`). Run: `cargo bench --bench gemm`; for
//! `matrixmultiply`'s AVX2 kernel on a CPU with AVX-512, build it without the AVX-512 one:
//! `MMTEST_FEATURE=sse2,avx,avx2,fma CARGO_TARGET_DIR=target/avx2 cargo bench --bench gemm`
//! (`gemm` is built without its AVX-512 kernel, feature `x86-v4`, and always runs its FMA one).
//!
//! The engine (`models/src/gemm.rs`) takes `matrixmultiply` where the CPU has AVX-512 and
//! `gemm` on the AVX2 path; this is the measurement behind that choice.

mod common;
use common::median_secs;

fn main() {
    // (name, m, k, n): conv forward is C_out × (C_in·k²) · (C_in·k²) × P.
    let shapes = [
        ("nmnist conv 2→32 fwd", 32, 18, 1156),
        ("nmnist conv 32→64 fwd", 64, 288, 289),
        ("nmnist conv 32→64 wgrad", 64, 289, 288),
        ("dvs conv 64→128 fwd", 128, 576, 1024),
        ("dvs conv 128→256 fwd", 256, 1152, 64),
        ("dvs conv 256→256 fwd", 256, 2304, 16),
    ];
    let mm = match std::env::var("MMTEST_FEATURE") {
        Ok(f) => format!("matrixmultiply built with MMTEST_FEATURE={f}"),
        Err(_) => "matrixmultiply with every kernel the CPU has".to_string(),
    };
    println!(
        "one thread on {}; {mm}; gemm's FMA kernel",
        stdl_models::profile::cpu_model()
    );
    println!(
        "{:<26} {:>16} {:>16} {:>8}",
        "shape (m×k·k×n)", "matrixmultiply", "gemm 0.19", "ratio"
    );
    for (name, m, k, n) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1).collect();
        let mut c1 = vec![0f32; m * n];
        let mut c2 = vec![0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        let reps = ((2e8 / flops) as usize).clamp(5, 2000);
        let t_mm = median_secs(
            || unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    c1.as_mut_ptr(),
                    n as isize,
                    1,
                );
            },
            reps,
        );
        let t_g = median_secs(
            || unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c2.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            },
            reps,
        );
        let max_diff = c1
            .iter()
            .zip(&c2)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-2,
            "{name}: the two libraries disagree by {max_diff}"
        );
        println!(
            "{:<26} {:>10.1} GF/s {:>10.1} GF/s {:>7.2}×",
            name,
            flops / t_mm / 1e9,
            flops / t_g / 1e9,
            t_g / t_mm
        );
    }
}
