//! `stdl bench memory` and `stdl bench train`: peak memory and time of training on
//! synthetic input, with the optional per-stage, per-layer profile.

use std::time::Instant;

use anyhow::Result;
use clap::Args;

use super::cpu_model;

/// Settings shared by `bench memory` and `bench train`.
#[derive(Args, Debug)]
pub struct BenchModelArgs {
    /// Preset name or TOML file.
    #[arg(long, default_value = "nmnist")]
    pub preset: String,
    /// stdl or bptt.
    #[arg(long, value_parser = crate::cli::choice(&stdl::model::Method::ALL), default_value = "stdl")]
    pub method: stdl::model::Method,
    /// Time steps per sample.
    #[arg(long, default_value_t = 20, value_parser = crate::cli::at_least_one::<usize>)]
    pub t_bins: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16, value_parser = crate::cli::at_least_one::<usize>)]
    pub batch: usize,
    /// Batches to time (after one warm-up batch).
    #[arg(long, default_value_t = 3, value_parser = crate::cli::at_least_one::<usize>)]
    pub batches: usize,
    /// Fraction of input pixels with an event in a frame (synthetic input, seeded).
    #[arg(long, default_value_t = 0.1, value_parser = crate::cli::density)]
    pub density: f32,
    /// STDL: run the subnetworks as pipeline stages on worker threads (as `stdl stream`
    /// does; identical numbers), overlapping consecutive time steps.
    #[arg(long)]
    pub pipeline: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = crate::cli::at_least_one::<usize>)]
    pub threads: Option<usize>,
    /// STDL: auxiliary-network budget (bytes such as 4MiB, or a multiple like 2x; `0`: bare
    /// heads everywhere, the network `benches/python/torch_stdl_nmnist.py` builds).
    #[arg(long, value_parser = crate::cli::budget)]
    pub aux_budget: Option<stdl_models::preset::Budget>,
    /// `bench train`, STDL: time per stage, layer and phase, each layer's input density and
    /// dense-equivalent GFLOP/s, beside the GEMM crate's rate on this machine.
    #[arg(long)]
    pub profile: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Synthetic frames: each pixel has an event with probability `density`.
pub(super) fn synthetic_frame(
    b: usize,
    dims: stdl_models::Dims,
    density: f32,
    rng: &mut stdl_models::Rng,
) -> stdl_models::Tensor {
    let mut x = stdl_models::Tensor::uninit(b, dims);
    for v in x.data.iter_mut() {
        *v = (rng.next_f32() < density) as u8 as f32;
    }
    x
}

fn bench_model(a: &BenchModelArgs) -> Result<(stdl::model::Model, stdl_models::Dims, stdl_models::Preset)> {
    if let Some(t) = a.threads {
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global().ok();
    }
    let preset = stdl_models::Preset::load(&a.preset)?;
    let settings = stdl::model::ModelSettings {
        method: a.method,
        batch: a.batch,
        t_bins: a.t_bins,
        seed: 0,
        optimizer: preset.train.optimizer,
        update_every: 1,
        aux_budget: a.aux_budget.clone(),
        pipeline: a.pipeline,
    };
    let model = stdl::model::Model::build(&settings, &preset)?;
    let dims = stdl_models::Dims::new(preset.input[0], preset.input[1], preset.input[2]);
    Ok((model, dims, preset))
}

/// Trains `n` batches of `t` steps on synthetic input, as `stdl train` trains an epoch's
/// (overlapping with `--pipeline`), each step's frame made when it is learned (as `stdl
/// train` makes them from a sample's events).
fn run_batches(
    model: &mut stdl::model::Model,
    a: &BenchModelArgs,
    n: usize,
    dims: stdl_models::Dims,
    classes: usize,
    rng: &mut stdl_models::Rng,
) {
    let labels: Vec<usize> = (0..a.batch).map(|i| i % classes).collect();
    let batches = (0..n).map(|_| Ok::<_, std::convert::Infallible>(((), labels.clone())));
    let _ = model.train_batches(
        a.t_bins,
        batches,
        |_, _| synthetic_frame(a.batch, dims, a.density, rng),
        |r| {
            std::hint::black_box(r);
            Ok(())
        },
    );
}

/// `stdl bench memory`: peak resident memory of training in this (fresh) process.
pub fn memory(a: &BenchModelArgs) -> Result<()> {
    let baseline = stdl::heap::proc_status_bytes("VmRSS:");
    let (mut model, dims, preset) = bench_model(a)?;
    let built = stdl::heap::proc_status_bytes("VmHWM:");
    let mut rng = stdl_models::Rng::new(1);
    run_batches(&mut model, a, a.batches.max(1), dims, preset.classes, &mut rng);
    let peak = stdl::heap::proc_status_bytes("VmHWM:");
    if std::env::var_os("STDL_DEBUG_MEMORY").is_some() {
        eprintln!(
            "peak after building the model: {built} B; pooled spares now: {} B",
            stdl_models::pool::spare_bytes()
        );
        for (cap, n) in stdl_models::pool::histogram() {
            eprintln!(
                "  pooled: {n} x {cap} floats ({:.2} MiB)",
                (n * cap * 4) as f64 / (1 << 20) as f64
            );
        }
    }
    let out = serde_json::json!({
        "preset": preset.name, "method": a.method, "t_bins": a.t_bins, "batch": a.batch,
        "peak_rss_bytes": peak, "baseline_rss_bytes": baseline, "training_bytes": peak.saturating_sub(baseline),
    });
    if a.json {
        println!("{out}");
    } else {
        println!(
            "{} {:?} T={} batch {}: peak RSS {:.1} MiB ({:.1} MiB above the {:.1} MiB baseline)",
            preset.name,
            a.method,
            a.t_bins,
            a.batch,
            peak as f64 / 1048576.0,
            peak.saturating_sub(baseline) as f64 / 1048576.0,
            baseline as f64 / 1048576.0
        );
    }
    Ok(())
}

/// `stdl bench train`: training time per sample and per time step.
pub fn train(a: &BenchModelArgs) -> Result<()> {
    let (mut model, dims, preset) = bench_model(a)?;
    let mut rng = stdl_models::Rng::new(1);
    run_batches(&mut model, a, 1, dims, preset.classes, &mut rng);
    if a.profile {
        let stdl::model::Model::Stdl(m) = &mut model else {
            anyhow::bail!("--profile times STDL's stages; use --method stdl");
        };
        m.stages.iter_mut().for_each(|s| s.set_profiling(true));
    }
    let t = Instant::now();
    run_batches(&mut model, a, a.batches.max(1), dims, preset.classes, &mut rng);
    let secs = t.elapsed().as_secs_f64();
    let samples = a.batches.max(1) * a.batch;
    let per_sample = secs / samples as f64;
    let profile = match &model {
        stdl::model::Model::Stdl(m) if a.profile => Some((stdl::stdl::profile(&m.stages), gemm_gflops())),
        _ => None,
    };
    let mut out = serde_json::json!({
        "preset": preset.name, "method": a.method, "t_bins": a.t_bins, "batch": a.batch,
        "threads": rayon::current_num_threads(), "samples": samples, "seconds": secs,
        "seconds_per_sample": per_sample, "seconds_per_step": per_sample / a.t_bins as f64,
        "density": a.density, "pipeline": a.pipeline, "cpu": cpu_model(),
    });
    if let stdl::model::Model::Stdl(m) = &model {
        // Which auxiliary network each subnetwork trains with (empty: a bare head), so a
        // comparison can check that it runs the same network.
        let aux: Vec<_> = m.plan.subnets.iter().map(|s| &s.aux_units).collect();
        out["aux_units"] = serde_json::json!(aux);
    }
    if let Some((rows, gemm)) = &profile {
        out["profile"] = serde_json::json!({"stages": rows, "gemm_gflops": gemm});
    }
    if a.json {
        println!("{out}");
    } else {
        if let Some((rows, gemm)) = &profile {
            print_profile(rows, *gemm, a.batch);
        }
        println!(
            "{} {:?} T={} batch {} on {} threads: {:.2} ms per sample, {:.3} ms per sample-step ({} samples in {:.2} s)",
            preset.name,
            a.method,
            a.t_bins,
            a.batch,
            rayon::current_num_threads(),
            per_sample * 1e3,
            per_sample * 1e3 / a.t_bins as f64,
            samples,
            secs
        );
    }
    Ok(())
}

/// The GEMM crate's rate on this machine, GFLOP/s, on a product the size of a middle
/// convolution's (256 × 1152 weights times 1152 × 256 columns), on the threads the
/// convolutions use: the reference for the profile's dense-equivalent rates.
pub(super) fn gemm_gflops() -> f64 {
    use rayon::prelude::*;
    let (m, k, n) = (256, 1152, 256);
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0f32; m * n];
    let threads = rayon::current_num_threads().max(1);
    let run = |c: &mut [f32]| {
        // One product per thread, as the convolutions split their batch.
        c.par_chunks_mut(m * n / threads.min(m).max(1)).for_each(|cs| {
            let rows = cs.len() / n;
            stdl_models::gemm::matmul(rows, k, n, 1.0, &a[..rows * k], false, &b, false, 0.0, cs);
        });
    };
    run(&mut c);
    let reps = 20;
    let t = Instant::now();
    for _ in 0..reps {
        run(&mut c);
    }
    std::hint::black_box(&c);
    2.0 * (m * k * n * reps) as f64 / t.elapsed().as_secs_f64() / 1e9
}

/// The profile as a table: ms per step of the batch, per stage and layer.
pub(super) fn print_profile(rows: &[stdl::stdl::StageProfile], gemm: f64, batch: usize) {
    println!(
        "profile on {}, ms per time step of a batch of {batch} (density: non-zero inputs; \
         grad: non-zero output gradients; \
         GFLOP/s: dense equivalent of forward + backward; the GEMM crate reaches {gemm:.1} GFLOP/s \
         here):",
        cpu_model()
    );
    println!(
        "(wall-clock times: where stages share cores, each includes time spent waiting for one; \
         a stage's CPU time is its share of the cores)"
    );
    println!(
        "{:>5} {:<4} {:<26} {:>7} {:>7} {:>8} {:>8} {:>7} {:>7} {:>7}",
        "stage", "part", "layer", "density", "grad", "forward", "backward", "dW", "dX", "GFLOP/s"
    );
    for st in rows {
        for l in &st.layers {
            let conv = l.layer.starts_with("conv");
            let opt = |v: f64| {
                if conv {
                    format!("{v:>7.3}")
                } else {
                    format!("{:>7}", "")
                }
            };
            println!(
                "{:>5} {:<4} {:<26} {:>7.3} {:>7.3} {:>8.3} {:>8.3} {} {} {:>7}",
                st.stage,
                l.part,
                l.layer,
                l.input_density,
                l.grad_density,
                l.forward_ms,
                l.backward_ms,
                opt(l.weight_grad_ms),
                opt(l.input_grad_ms),
                if l.dense_gflops > 0.0 {
                    format!("{:.1}", l.dense_gflops)
                } else {
                    String::new()
                }
            );
        }
        let in_layers: f64 = st.layers.iter().map(|l| l.forward_ms + l.backward_ms).sum();
        println!(
            "{:>5} step {:.3} ms ({:.3} ms CPU): layers {:.3}, optimiser {:.3}, profiler's counting {:.3}, other {:.3}; queued {:.3} before it",
            st.stage,
            st.ms_per_step,
            st.cpu_ms_per_step,
            in_layers,
            st.update_ms_per_step,
            st.counting_ms_per_step,
            (st.ms_per_step - in_layers - st.update_ms_per_step - st.counting_ms_per_step).max(0.0),
            st.queued_ms_per_step
        );
    }
    let cpu: f64 = rows.iter().map(|s| s.cpu_ms_per_step).sum();
    let counting: f64 = rows.iter().map(|s| s.counting_ms_per_step).sum();
    println!(
        "all stages: {cpu:.3} ms CPU per step, {counting:.3} of it the profiler's counting ({:.3} ms per step on {} cores at best without it)",
        (cpu - counting).max(0.0) / cores() as f64,
        cores()
    );
}

/// Cores this process may run on.
pub(super) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
