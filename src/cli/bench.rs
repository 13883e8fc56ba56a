//! `stdl bench read`: decoder throughput.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use stdl::io::{Event, EventReader};

use super::ReadArgs;

#[derive(Args, Debug)]
pub struct BenchReadArgs {
    /// The recording (read into memory once, then decoded --runs times).
    #[arg(required_unless_present = "dataset")]
    pub file: Option<PathBuf>,
    /// Instead of one file, read every sample of this dataset (nmnist, dvs-gesture,
    /// ncaltech101, cifar10-dvs) from its files in each run, as a training loop does: the
    /// per-file cost (open, read, decode) of a small-file dataset.
    #[arg(long, requires = "root", conflicts_with = "file")]
    pub dataset: Option<String>,
    /// The dataset's root directory (with --dataset).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Decoding runs; the median is reported.
    #[arg(long, default_value_t = 7, value_parser = super::at_least_one::<usize>)]
    pub runs: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Open and read the file in every run (as the Python readers do) instead of decoding
    /// bytes already in memory.
    #[arg(long)]
    pub from_file: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Serialize)]
struct BenchRead {
    file: PathBuf,
    format: &'static str,
    bytes: usize,
    events: u64,
    runs: usize,
    from_file: bool,
    seconds: f64,
    seconds_min: f64,
    events_per_s: f64,
    mb_per_s: f64,
}

#[derive(Serialize)]
struct BenchReadDataset {
    dataset: String,
    root: PathBuf,
    files: usize,
    bytes: u64,
    events: u64,
    runs: usize,
    seconds: f64,
    seconds_min: f64,
    us_per_file: f64,
    events_per_s: f64,
}

/// `bench read --dataset`: every sample of both splits loaded from its file (open, read,
/// decode into a fresh vector, as [`stdl::io::datasets::Dataset::load`] does for training),
/// `--runs` times; the median run.
fn read_dataset(a: &BenchReadArgs, name: &str, root: &std::path::Path) -> Result<()> {
    let ds = stdl::io::datasets::Dataset::open(name, root)?;
    let samples: Vec<_> = ds.train.iter().chain(&ds.test).collect();
    let mut bytes = 0;
    for s in &samples {
        bytes += std::fs::metadata(&s.path)
            .with_context(|| format!("reading {}", s.path.display()))?
            .len();
    }
    let mut times = Vec::new();
    let mut events = 0u64;
    for _ in 0..a.runs {
        let t = Instant::now();
        events = 0;
        for s in &samples {
            let loaded = ds.load(s)?;
            events += loaded.events.len() as u64;
            std::hint::black_box(&loaded);
        }
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let out = BenchReadDataset {
        dataset: ds.name.to_owned(),
        root: root.to_path_buf(),
        files: samples.len(),
        bytes,
        events,
        runs: times.len(),
        seconds: median,
        seconds_min: times[0],
        us_per_file: 1e6 * median / samples.len().max(1) as f64,
        events_per_s: events as f64 / median,
    };
    if a.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "{} ({}): {} files, {} events in {:.4} s (median of {}): {:.1} us per file, {:.1} M events/s",
            out.dataset,
            out.root.display(),
            out.files,
            out.events,
            out.seconds,
            out.runs,
            out.us_per_file,
            out.events_per_s / 1e6
        );
    }
    Ok(())
}

pub fn read(a: &BenchReadArgs) -> Result<()> {
    let file = match (&a.file, &a.dataset, &a.root) {
        (_, Some(name), Some(root)) => return read_dataset(a, name, root),
        (Some(file), _, _) => file,
        _ => anyhow::bail!("give a FILE, or --dataset NAME --root DIR"),
    };
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let opts = a.read.options();
    let ext = file.extension().and_then(|e| e.to_str()).map(str::to_owned);
    let format = match a.read.format {
        Some(f) => f,
        None => stdl::io::detect(
            &bytes[..bytes.len().min(stdl::io::formats::DETECT_BYTES)],
            ext.as_deref(),
        )
        .map_err(|reason| anyhow::anyhow!("{}: unknown format ({reason})", file.display()))?,
    };
    let mut all: Vec<Event> = Vec::new();
    let mut times = Vec::new();
    let mut events = 0;
    for _ in 0..a.runs.max(1) {
        all.clear();
        let t = Instant::now();
        let mut r = if a.from_file {
            EventReader::open_as(file, Some(format), &opts)?
        } else {
            EventReader::from_slice(&bytes, Some(format), &opts)?
        };
        while let Some(n) = r.read_into(&mut all) {
            n?;
        }
        times.push(t.elapsed().as_secs_f64());
        events = all.len() as u64;
        std::hint::black_box(&all);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let out = BenchRead {
        file: file.clone(),
        format: format.name(),
        bytes: bytes.len(),
        events,
        runs: times.len(),
        from_file: a.from_file,
        seconds: median,
        seconds_min: times[0],
        events_per_s: events as f64 / median,
        mb_per_s: bytes.len() as f64 / median / 1e6,
    };
    if a.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "{}: {} {} events in {:.6} s (median of {}): {:.1} M events/s, {:.0} MB/s",
            out.file.display(),
            out.format,
            out.events,
            out.seconds,
            out.runs,
            out.events_per_s / 1e6,
            out.mb_per_s
        );
    }
    Ok(())
}

/// Settings shared by `bench memory` and `bench train`.
#[derive(Args, Debug)]
pub struct BenchModelArgs {
    /// Preset name or TOML file.
    #[arg(long, default_value = "nmnist")]
    pub preset: String,
    /// stdl or bptt.
    #[arg(long, value_parser = super::choice(&stdl::model::Method::ALL), default_value = "stdl")]
    pub method: stdl::model::Method,
    /// Time steps per sample.
    #[arg(long, default_value_t = 20, value_parser = super::at_least_one::<usize>)]
    pub t_bins: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16, value_parser = super::at_least_one::<usize>)]
    pub batch: usize,
    /// Batches to time (after one warm-up batch).
    #[arg(long, default_value_t = 3, value_parser = super::at_least_one::<usize>)]
    pub batches: usize,
    /// Fraction of input pixels with an event in a frame (synthetic input, seeded).
    #[arg(long, default_value_t = 0.1, value_parser = super::density)]
    pub density: f32,
    /// STDL: run the subnetworks as pipeline stages on their own threads (as `stdl stream`
    /// does; identical numbers), overlapping consecutive time steps.
    #[arg(long)]
    pub pipeline: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub threads: Option<usize>,
    /// STDL: auxiliary-network budget (bytes such as 4MiB, or a multiple like 2x; `0`: bare
    /// heads everywhere, the network `benches/python/torch_stdl_nmnist.py` builds).
    #[arg(long, value_parser = super::budget)]
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
fn synthetic_frame(
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

/// Trains one batch of `t` steps on synthetic input, each step's frame made when it is
/// learned (as `stdl train` makes them from a sample's events).
fn run_batch(
    model: &mut stdl::model::Model,
    a: &BenchModelArgs,
    dims: stdl_models::Dims,
    classes: usize,
    rng: &mut stdl_models::Rng,
) {
    let labels: Vec<usize> = (0..a.batch).map(|i| i % classes).collect();
    std::hint::black_box(model.train_batch(
        a.t_bins,
        |_| synthetic_frame(a.batch, dims, a.density, rng),
        &labels,
    ));
}

/// `stdl bench memory`: peak resident memory of training in this (fresh) process.
pub fn memory(a: &BenchModelArgs) -> Result<()> {
    let baseline = stdl::heap::proc_status_bytes("VmRSS:");
    let (mut model, dims, preset) = bench_model(a)?;
    let built = stdl::heap::proc_status_bytes("VmHWM:");
    let mut rng = stdl_models::Rng::new(1);
    for _ in 0..a.batches.max(1) {
        run_batch(&mut model, a, dims, preset.classes, &mut rng);
    }
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
    run_batch(&mut model, a, dims, preset.classes, &mut rng);
    if a.profile {
        let stdl::model::Model::Stdl(m) = &mut model else {
            anyhow::bail!("--profile times STDL's stages; use --method stdl");
        };
        m.stages.iter_mut().for_each(|s| s.set_profiling(true));
    }
    let t = Instant::now();
    for _ in 0..a.batches.max(1) {
        run_batch(&mut model, a, dims, preset.classes, &mut rng);
    }
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
fn gemm_gflops() -> f64 {
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
fn print_profile(rows: &[stdl::stdl::StageProfile], gemm: f64, batch: usize) {
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
            "{:>5} step {:.3} ms ({:.3} ms CPU of its thread): layers {:.3}, optimiser {:.3}, other {:.3}; pipeline waits: input {:.3}, output {:.3}",
            st.stage,
            st.ms_per_step,
            st.cpu_ms_per_step,
            in_layers,
            st.update_ms_per_step,
            (st.ms_per_step - in_layers - st.update_ms_per_step).max(0.0),
            st.wait_input_ms_per_step,
            st.wait_output_ms_per_step
        );
    }
    let cpu: f64 = rows.iter().map(|s| s.cpu_ms_per_step).sum();
    println!(
        "all stages: {cpu:.3} ms CPU per step ({:.3} ms per step on {} cores at best)",
        cpu / cores() as f64,
        cores()
    );
}

/// Cores this process may run on.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `stdl bench sparse` settings.
#[derive(Args, Debug)]
pub struct BenchSparseArgs {
    /// Presets whose conv layers are timed.
    #[arg(long, default_value = "nmnist,dvs-gesture")]
    pub presets: String,
    /// Batch size.
    #[arg(long, default_value_t = 16, value_parser = super::at_least_one::<usize>)]
    pub batch: usize,
    /// Input densities to time.
    #[arg(long, default_value = "0.01,0.05,0.2")]
    pub densities: String,
    /// Repetitions (median reported).
    #[arg(long, default_value_t = 5, value_parser = super::at_least_one::<usize>)]
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

fn bench_stream_config(
    source: stdl::runtime::stream::Source,
    preset: &str,
    bin_us: u64,
) -> stdl::runtime::stream::StreamConfig {
    stdl::runtime::stream::StreamConfig {
        bin_us,
        ema_steps: 10.0,
        predictions: Some(PathBuf::from("/dev/null")),
        metrics_every_s: 1e9,
        ..stdl::runtime::stream::StreamConfig::new(source, preset)
    }
}

/// `stdl bench soak` settings.
#[derive(Args, Debug)]
pub struct BenchSoakArgs {
    /// Time steps to run (learning on, synthetic labelled stream).
    #[arg(long, default_value_t = 1_000_000, value_parser = super::at_least_one::<u64>)]
    pub steps: u64,
    /// Preset.
    #[arg(long, default_value = "demo")]
    pub preset: String,
    /// Time bin.
    #[arg(long, default_value_t = 10_000, value_parser = super::at_least_one::<u64>)]
    pub bin_us: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `stdl bench soak`: peak resident memory after 10^4 steps and after `--steps`.
pub fn soak(a: &BenchSoakArgs) -> Result<()> {
    let mut cfg = bench_stream_config(
        stdl::runtime::stream::Source::Synthetic(Default::default()),
        &a.preset,
        a.bin_us,
    );
    let early = 10_000.min(a.steps);
    cfg.max_steps = Some(a.steps);
    cfg.report_at_steps = vec![early, a.steps];
    let s = stdl::runtime::stream::run(&cfg)?;
    let at = |n: u64| {
        s.peak_rss_at_steps
            .iter()
            .find(|(k, _)| *k == n)
            .map_or(0, |(_, v)| *v)
    };
    let (p0, p1) = (at(early), at(a.steps));
    let growth = (p1 as f64 - p0 as f64) / p0.max(1) as f64;
    let heap = |n: u64| {
        s.heap_bytes_at_steps
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| *v)
    };
    let (h0, h1) = (heap(early), heap(a.steps));
    let out = serde_json::json!({
        "preset": a.preset, "steps": s.steps, "events": s.events, "seconds": s.seconds,
        "peak_rss_bytes_at_1e4": p0, "peak_rss_bytes_at_end": p1, "growth": growth,
        "heap_bytes_at_1e4": h0, "heap_bytes_at_end": h1,
        "accuracy": s.accuracy, "cpu": cpu_model(),
    });
    if a.json {
        println!("{out}");
    } else {
        println!(
            "{} steps ({} events, {:.0} s on {}): peak RSS {:.2} MiB after {early} steps, {:.2} MiB after {} ({:+.2}%); live heap {} B and {} B",
            s.steps,
            s.events,
            s.seconds,
            cpu_model(),
            p0 as f64 / 1048576.0,
            p1 as f64 / 1048576.0,
            s.steps,
            growth * 100.0,
            h0.map_or("?".into(), |v| v.to_string()),
            h1.map_or("?".into(), |v| v.to_string()),
        );
    }
    Ok(())
}

/// `stdl bench realtime` settings.
#[derive(Args, Debug)]
pub struct BenchRealtimeArgs {
    /// Recordings (default: the DVS128 recordings in ../shared/data/aedat2).
    pub files: Vec<PathBuf>,
    /// Preset.
    #[arg(long, default_value = "dvs-gesture")]
    pub preset: String,
    /// Time bin.
    #[arg(long, default_value_t = 10_000, value_parser = super::at_least_one::<u64>)]
    pub bin_us: u64,
    /// Also print where each stage's steps went (per layer and phase, input densities).
    #[arg(long)]
    pub profile: bool,
    /// Print JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// `stdl bench realtime`: replays recordings as fast as possible with learning on (every
/// bin labelled) and reports event time over wall time.
pub fn realtime(a: &BenchRealtimeArgs) -> Result<()> {
    let files = if a.files.is_empty() {
        let dir = PathBuf::from("../shared/data/aedat2");
        vec![
            dir.join("dvs128_alex_walking_again.aedat"),
            dir.join("dvs128_alex_walking_for_10secs.aedat"),
        ]
    } else {
        a.files.clone()
    };
    if !a.json {
        println!(
            "{}, preset {}, {} us bins, learning on every bin:",
            cpu_model(),
            a.preset,
            a.bin_us
        );
    }
    for f in files {
        let mut cfg = bench_stream_config(
            stdl::runtime::stream::Source::File(f.clone()),
            &a.preset,
            a.bin_us,
        );
        cfg.constant_label = Some(0);
        cfg.profile = a.profile;
        let s = stdl::runtime::stream::run(&cfg)?;
        let rtf = s.stream_seconds / s.seconds.max(1e-9);
        if a.json {
            println!(
                "{}",
                serde_json::json!({"file": f, "preset": a.preset, "steps": s.steps, "stream_seconds": s.stream_seconds,
                    "seconds": s.seconds, "real_time_factor": rtf, "dropped_bins": s.dropped_bins,
                    "cpu": cpu_model(), "profile": s.profile})
            );
        } else {
            if let Some(rows) = &s.profile {
                print_profile(rows, gemm_gflops(), 1);
            }
            println!(
                "{}: {} bins, {:.2} s of events in {:.2} s: real-time factor {:.2} ({} dropped)",
                f.display(),
                s.steps,
                s.stream_seconds,
                s.seconds,
                rtf,
                s.dropped_bins
            );
        }
    }
    Ok(())
}

/// The CPU's model name (`/proc/cpuinfo`) and the widest vector extension our kernels use
/// on it, for the figures benchmarks print.
pub fn cpu_model() -> String {
    #[cfg(target_arch = "x86_64")]
    let simd = if std::arch::is_x86_feature_detected!("avx512f") {
        " (AVX-512)"
    } else if std::arch::is_x86_feature_detected!("avx2") {
        " (AVX2)"
    } else {
        ""
    };
    #[cfg(not(target_arch = "x86_64"))]
    let simd = "";
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{name}{simd}")
}
