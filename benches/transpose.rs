//! `stdl_models::math::transpose` against a copy of the same bytes, on the shapes this
//! project's convolutions transpose (single thread, f32). Run: `cargo bench --bench transpose`.
//!
//! A transpose reads and writes what a copy does; the ratio says how far its access order
//! costs beyond that. The sparse forward turns its `P × C_out` accumulator into `C_out × P`
//! and the scattered input gradient `P_in × C_in` into `C_in × P_in`: with `P` a power of
//! two, the destination rows share cache sets (`models/src/math.rs`, `sse_blocks`).

mod common;
use common::median_secs;

fn main() {
    // (what, rows, cols): the source is rows × cols, the destination cols × rows.
    let shapes = [
        ("dvs 64 ch at 32×32 (conv output, input grad)", 1024, 64),
        ("dvs conv 64→128 output, 32×32", 1024, 128),
        ("dvs conv 128→128 output, 16×16", 256, 128),
        ("dvs conv 128→256 output, 16×16", 256, 256),
        ("dvs conv 128→256 output, 8×8", 64, 256),
        ("nmnist conv 2→32 output, 34×34", 1156, 32),
        ("nmnist conv 32→64 output, 17×17", 289, 64),
        ("weights 128×576 to 576×128", 128, 576),
        ("weights 256×1152 to 1152×256", 256, 1152),
        ("4096 × 128 (P = 64×64)", 4096, 128),
        ("4100 × 128 (no power of two)", 4100, 128),
    ];
    let cpu = stdl_models::profile::cpu_model();
    println!("transpose against a copy of the same bytes, one thread, on {cpu}");
    println!(
        "{:<46} {:>12} {:>12} {:>8}",
        "shape (rows × cols)", "transpose µs", "copy µs", "ratio"
    );
    for (what, rows, cols) in shapes {
        let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let mut dst = vec![0f32; rows * cols];
        let mut copy = vec![0f32; rows * cols];
        let reps = (50_000_000 / (rows * cols)).clamp(20, 20_000);
        stdl_models::math::transpose(&src, rows, cols, &mut dst);
        assert!((0..rows).all(|r| (0..cols).all(|c| dst[c * rows + r] == src[r * cols + c])));
        // Alternated: one transpose, one copy, each timed on its own.
        let (mut t, mut k) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            t.push(median_secs(
                || {
                    stdl_models::math::transpose(&src, rows, cols, &mut dst);
                    std::hint::black_box(&mut dst);
                },
                reps,
            ));
            k.push(median_secs(
                || {
                    copy.copy_from_slice(&src);
                    std::hint::black_box(&mut copy);
                },
                reps,
            ));
        }
        t.sort_by(|a, b| a.total_cmp(b));
        k.sort_by(|a, b| a.total_cmp(b));
        let (t, k) = (t[2], k[2]);
        println!("{what:<46} {:>12.2} {:>12.2} {:>7.1}x", t * 1e6, k * 1e6, t / k);
    }
}
