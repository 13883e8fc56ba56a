//! What the `cargo bench` programs share.

use std::time::Instant;

/// Median wall-clock seconds of `reps` calls of `f`.
pub fn median_secs(mut f: impl FnMut(), reps: usize) -> f64 {
    let mut ts: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    ts.sort_by(|a, b| a.total_cmp(b));
    ts[ts.len() / 2]
}
