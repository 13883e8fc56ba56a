//! A convolution's backward pass with its input gradient by Winograd's F(2 × 2, 3 × 3)
//! against im2col and col2im (`Conv2d::winograd` on and off), on the 3 × 3 convolutions of
//! the presets whose input gradient is computed (one thread, batch 1 and 16). Run:
//! `cargo bench --bench input_grad`.
//!
//! Both sides take the same weight gradient, so the difference between them is the input
//! gradient's. Where the transformed weights do not fit in the im2col scratch, or its chunks
//! would be too narrow (`models/src/layers/conv/winograd.rs`), both sides take im2col and
//! the ratio is 1. The output gradient is what a LIF layer's surrogate gives behind a spiking
//! layer: 60% of the values non-zero, every channel live.

use stdl_models::layers::{Conv2d, InputPath};
use stdl_models::{Dims, Rng, Tensor};

/// Median seconds of `reps` backward passes of `conv`, each after an untimed forward.
fn backward_secs(conv: &mut Conv2d, x: &Tensor, dy: &Tensor, reps: usize) -> f64 {
    let mut ts: Vec<f64> = (0..reps)
        .map(|_| {
            drop(conv.forward(x.clone(), true));
            let t = std::time::Instant::now();
            std::hint::black_box(conv.backward(dy.clone()));
            t.elapsed().as_secs_f64()
        })
        .collect();
    ts.sort_by(|a, b| a.total_cmp(b));
    ts[ts.len() / 2]
}

fn main() {
    // (what, c_in, c_out, h = w, batch)
    let shapes = [
        ("dvs-gesture head 64→128 at 32×32", 64, 128, 32, 1),
        ("dvs-gesture head 128→256 at 16×16", 128, 256, 16, 1),
        ("dvs-gesture 128→128 at 16×16", 128, 128, 16, 1),
        ("dvs-gesture head 128→256 at 8×8", 128, 256, 8, 1),
        ("dvs-gesture 256→256 at 4×4", 256, 256, 4, 1),
        ("nmnist 32→64 at 17×17", 32, 64, 17, 1),
        ("nmnist 32→64 at 17×17, batch 16", 32, 64, 17, 16),
    ];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("one thread");
    let cpu = stdl_models::profile::cpu_model();
    println!("conv backward (weight and input gradient), one thread, on {cpu}");
    println!(
        "{:<40} {:>12} {:>12} {:>8}",
        "shape", "winograd ms", "im2col ms", "ratio"
    );
    for (what, c_in, c_out, hw, b) in shapes {
        let mut rng = Rng::new(1);
        let d = Dims::new(c_in, hw, hw);
        let mut conv = Conv2d::new(d, c_out, 3, 1, 1, true, &mut rng);
        conv.grad_path = InputPath::Dense;
        conv.path = InputPath::Sparse;
        let x: Vec<f32> = (0..b * d.len())
            .map(|_| f32::from(u8::from(rng.next_f32() < 0.1)))
            .collect();
        let x = Tensor::from_vec(b, d, x);
        let o = conv.out_dims;
        let dy: Vec<f32> = (0..b * o.len())
            .map(|_| {
                if rng.next_f32() < 0.6 {
                    rng.next_f32() - 0.5
                } else {
                    0.0
                }
            })
            .collect();
        let dy = Tensor::from_vec(b, o, dy);
        let reps = (200_000_000 / (c_in * c_out * hw * hw * b * 18)).clamp(10, 2_000);
        let (mut on, mut off) = (Vec::new(), Vec::new());
        pool.install(|| {
            // Alternated, five times each.
            for _ in 0..5 {
                conv.winograd = true;
                on.push(backward_secs(&mut conv, &x, &dy, reps));
                conv.winograd = false;
                off.push(backward_secs(&mut conv, &x, &dy, reps));
            }
        });
        on.sort_by(|a, b| a.total_cmp(b));
        off.sort_by(|a, b| a.total_cmp(b));
        let (on, off) = (on[2], off[2]);
        println!(
            "{what:<40} {:>12.3} {:>12.3} {:>7.2}x",
            on * 1e3,
            off * 1e3,
            off / on
        );
    }
}
