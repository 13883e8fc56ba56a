//! `stdl bench sparse`: dense against sparse convolution per conv layer.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use super::model::synthetic_frame;

/// `stdl bench sparse` settings.
#[derive(Args, Debug)]
pub struct BenchSparseArgs {
    /// Presets whose conv layers are timed.
    #[arg(long, default_value = "nmnist,dvs-gesture")]
    pub presets: String,
    /// Batch size.
    #[arg(long, default_value_t = 16, value_parser = crate::cli::at_least_one::<usize>)]
    pub batch: usize,
    /// Input densities to time.
    #[arg(long, default_value = "0.01,0.05,0.2")]
    pub densities: String,
    /// Repetitions (median reported).
    #[arg(long, default_value_t = 5, value_parser = crate::cli::at_least_one::<usize>)]
    pub runs: usize,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// `stdl bench sparse`: dense (im2col + GEMM) against sparse (scatter) convolution,
/// forward + weight gradient, per conv layer of the presets, at several input densities.
pub fn sparse(a: &BenchSparseArgs) -> Result<()> {
    use stdl_models::layers::InputPath;
    use stdl_models::network::NetworkSpec;
    use stdl_models::{Layer, TimeMode};
    if !a.json {
        println!(
            "{:<12} {:<28} {:>8} {:>10} {:>10} {:>8}  auto picks",
            "preset", "layer", "density", "dense ms", "sparse ms", "speedup"
        );
    }
    for name in a.presets.split(',') {
        let preset = stdl_models::Preset::load(name.trim())?;
        let spec = NetworkSpec::new(&preset)?;
        let dims = spec.unit_dims()?;
        let mut rng = stdl_models::Rng::new(5);
        for (u, us) in spec.units.iter().enumerate() {
            let unit = spec.build_unit(*us, dims[u], TimeMode::Detached, &mut rng);
            let Some(Layer::Conv(conv)) = unit.layers.layers.first() else {
                continue;
            };
            for d in a.densities.split(',') {
                let density: f32 = d.trim().parse().context("density")?;
                let x = synthetic_frame(a.batch, conv.in_dims, density, &mut rng);
                let time = |path: InputPath| {
                    let mut c = conv.clone();
                    c.path = path;
                    c.input_grad = false;
                    let mut ts = Vec::new();
                    for _ in 0..a.runs.max(1) {
                        let t = Instant::now();
                        let y = c.forward(x.clone(), true);
                        std::hint::black_box(c.backward(y));
                        ts.push(t.elapsed().as_secs_f64());
                    }
                    ts.sort_by(|a, b| a.total_cmp(b));
                    ts[ts.len() / 2] * 1e3
                };
                let (dense, sparse) = (time(InputPath::Dense), time(InputPath::Sparse));
                let nnz = x.data.iter().filter(|&&v| v != 0.0).count();
                let auto = if conv.predicted_sparse_faster(x.b, nnz) {
                    "sparse"
                } else {
                    "dense"
                };
                let layer = format!("unit {u}: {}", Layer::Conv(conv.clone()).describe());
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"preset": preset.name, "layer": layer, "density": density,
                            "dense_ms": dense, "sparse_ms": sparse, "auto": auto})
                    );
                } else {
                    println!(
                        "{:<12} {:<28} {:>8.2} {:>10.2} {:>10.2} {:>7.2}x  {auto}",
                        preset.name,
                        layer,
                        density,
                        dense,
                        sparse,
                        dense / sparse
                    );
                }
            }
        }
    }
    Ok(())
}
