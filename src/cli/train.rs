//! `stdl plan`, `stdl train`, `stdl eval`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use stdl::stdl::plan;
use stdl::train::{evaluate, load_checkpoint, parse_budget, train, Method, TrainConfig};
use stdl_io::datasets::{Dataset, Split};
use stdl_models::network::NetworkSpec;
use stdl_models::{Dims, Preset};

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Built-in preset (tiny, nmnist, dvs-gesture, ncaltech101) or a TOML file.
    pub preset: String,
    /// Auxiliary-network budget: bytes, or a multiple of the default such as 2x.
    #[arg(long)]
    pub aux_budget: Option<String>,
    /// Batch size the memory is predicted for (default: the preset's).
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub batch: Option<usize>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

fn mib(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / (1 << 20) as f64)
}

pub fn run_plan(a: &PlanArgs) -> Result<()> {
    let preset = Preset::load(&a.preset)?;
    let spec = NetworkSpec::new(&preset)?;
    let batch = a.batch.unwrap_or(preset.train.batch);
    let budget = a.aux_budget.as_deref().map(parse_budget).transpose()?;
    let p = plan(
        &spec,
        batch,
        budget.as_ref(),
        preset.train.optimizer.state_floats_per_param(),
    )?;
    if a.json {
        // The plan, plus what this machine's worker threads add to it.
        let threads = rayon::current_num_threads();
        let mut v = serde_json::to_value(&p)?;
        v["threads"] = serde_json::json!({
            "count": threads,
            "peak_sequential_bytes": p.peak_sequential_bytes_on(threads),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let dims = spec.unit_dims()?;
    println!(
        "preset {} (input {}, {} classes), batch {batch}, Adam",
        preset.name, spec.input, preset.classes
    );
    println!("units:");
    for (i, u) in spec.units.iter().enumerate() {
        println!("  {i}: {:?}  {} -> {}", u, dims[i], dims[i + 1]);
    }
    println!(
        "budget {} ({}; default = largest subnetwork with a bare head: {})",
        mib(p.budget_bytes),
        if p.budget_bytes == p.default_budget_bytes {
            "default"
        } else {
            "set"
        },
        mib(p.default_budget_bytes)
    );
    for (k, s) in p.subnets.iter().enumerate() {
        let head = if s.is_last {
            "readout".to_string()
        } else if s.aux_units.is_empty() {
            "aux: bare (global pool + linear)".to_string()
        } else {
            format!("aux: copies of units {:?} + global pool + linear", s.aux_units)
        };
        println!(
            "subnetwork {k}: units {:?}, {head}; predicted {} per step (bare {}; +{} per extra thread), params {} + {}",
            s.units,
            mib(s.bytes),
            mib(s.bare_bytes),
            mib(s.workspace_per_thread_bytes),
            s.body_params,
            s.head_params
        );
    }
    let threads = rayon::current_num_threads();
    println!(
        "peak: {} in sequence on 1 thread ({} on this machine's {threads}), {} as concurrent pipeline stages",
        mib(p.peak_sequential_bytes),
        mib(p.peak_sequential_bytes_on(threads)),
        mib(p.peak_pipelined_bytes)
    );
    println!("(the plan is chosen from the 1-thread figures: it is the same on any number of threads)");
    Ok(())
}

/// Dataset, network and learning flags shared by `train` and `continual`.
#[derive(Args, Debug)]
pub struct LearnArgs {
    /// Dataset: nmnist, dvs-gesture, ncaltech101, cifar10-dvs.
    #[arg(long)]
    pub dataset: String,
    /// Dataset root directory.
    #[arg(long)]
    pub root: PathBuf,
    /// Preset name or TOML file.
    #[arg(long, default_value = "nmnist")]
    pub preset: String,
    /// stdl (online, local; default) or bptt (baseline).
    #[arg(long, value_enum, default_value_t = Method::Stdl)]
    pub method: Method,
    /// Time bins per sample (default: the preset's).
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub t_bins: Option<usize>,
    /// Batch size (default: the preset's).
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub batch: Option<usize>,
    /// Seed for initialisation, shuffling and sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Learning rate (default: the preset's).
    #[arg(long, value_parser = super::positive::<f32>)]
    pub lr: Option<f32>,
    /// STDL: accumulate gradients over N labelled steps per update (1: every step).
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub update_every: Option<usize>,
    /// STDL: auxiliary-network budget (bytes such as 4MiB, or a multiple like 2x).
    #[arg(long)]
    pub aux_budget: Option<String>,
    /// Surrogate gradient: sigmoid, triangle, atan or rect (default: the preset's).
    #[arg(long)]
    pub surrogate: Option<stdl_models::Surrogate>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl LearnArgs {
    /// The preset, and the optimiser with `--lr` applied.
    pub fn preset_and_optimizer(&self) -> Result<(Preset, stdl_models::optim::OptimConfig)> {
        let mut preset = Preset::load(&self.preset)?;
        if let Some(s) = self.surrogate {
            preset.neuron.surrogate = s;
        }
        let mut optimizer = preset.train.optimizer;
        if let Some(lr) = self.lr {
            optimizer.lr = lr;
        }
        Ok((preset, optimizer))
    }

    /// A progress bar (hidden with `--quiet`) with `template`.
    pub fn progress_bar(&self, template: &str) -> ProgressBar {
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub learn: LearnArgs,
    /// Epochs (default: the preset's).
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub epochs: Option<usize>,
    /// Use at most N training and N test samples.
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub limit_samples: Option<usize>,
    /// Learning-rate schedule over the epochs.
    #[arg(long, value_enum, default_value_t = stdl::train::LrSchedule::Cosine)]
    pub lr_schedule: stdl::train::LrSchedule,
    /// Output directory: metrics.jsonl, metrics.png, checkpoint/, result.json.
    #[arg(long, default_value = "out/train")]
    pub out: PathBuf,
    /// Continue from OUT/checkpoint (the configuration saved there wins, except --epochs).
    #[arg(long)]
    pub resume: bool,
    /// STDL: run the subnetworks as pipeline stages on their own threads: the same numbers
    /// bit for bit, about 1.35x faster on 2 cores, with the stages' step memory added up.
    #[arg(long)]
    pub pipeline: bool,
}

pub fn run_train(a: &TrainArgs) -> Result<()> {
    let l = &a.learn;
    let (preset, optimizer) = l.preset_and_optimizer()?;
    let d = &preset.train;
    let cfg = TrainConfig {
        method: l.method,
        dataset: l.dataset.clone(),
        root: l.root.clone(),
        preset: l.preset.clone(),
        epochs: a.epochs.unwrap_or(d.epochs),
        t_bins: l.t_bins.unwrap_or(d.t_bins),
        batch: l.batch.unwrap_or(d.batch).max(1),
        seed: l.seed,
        limit_samples: a.limit_samples,
        update_every: l.update_every.unwrap_or(d.update_every).max(1),
        optimizer,
        aux_budget: l.aux_budget.clone(),
        lr_schedule: a.lr_schedule,
        pipeline: a.pipeline,
    };
    eprintln!(
        "training {} with {} on {} ({}), {} epochs, T={}, batch {}, seed {}",
        cfg.preset,
        cfg.method,
        cfg.dataset,
        cfg.root.display(),
        cfg.epochs,
        cfg.t_bins,
        cfg.batch,
        cfg.seed
    );
    let bar = l.progress_bar("epoch {prefix} [{bar:30}] {pos}/{len} batches {elapsed_precise} eta {eta}");
    // Ctrl-C / SIGTERM: stop between two batches; the checkpoint keeps the last whole epoch.
    stdl::runtime::interrupt::install();
    let result = train(cfg, &a.out, a.resume, a.epochs, |epoch, b, n| {
        bar.set_prefix(epoch.to_string());
        bar.set_length(n as u64);
        bar.set_position(b as u64);
        if b == n {
            bar.finish_and_clear();
            bar.reset();
        }
    })?;
    bar.finish_and_clear();
    let m = std::fs::read_to_string(a.out.join("metrics.jsonl")).unwrap_or_default();
    for line in m.lines() {
        eprintln!("{line}");
    }
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint directory (OUT/checkpoint of a training run).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Dataset: nmnist, dvs-gesture, ncaltech101, cifar10-dvs.
    #[arg(long)]
    pub dataset: String,
    /// Dataset root directory.
    #[arg(long)]
    pub root: PathBuf,
    /// Split to evaluate.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Use at most N samples.
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub limit_samples: Option<usize>,
}

pub fn run_eval(a: &EvalArgs) -> Result<()> {
    let (state, preset, mut model) = load_checkpoint(&a.checkpoint, false)?;
    let ds = Dataset::open(&a.dataset, &a.root)?;
    let split: Split = a.split.parse()?;
    let samples: Vec<_> = ds
        .split(split)
        .iter()
        .take(a.limit_samples.unwrap_or(usize::MAX))
        .cloned()
        .collect();
    let dims = Dims::new(preset.input[0], preset.input[1], preset.input[2]);
    let set = stdl::data::SampleSet::new(std::sync::Arc::new(ds), samples, dims);
    set.check_labels(preset.classes, &preset.name)?;
    let (acc, loss) = evaluate(&mut model, &set, state.config.t_bins, state.config.batch)?;
    println!(
        "{}",
        serde_json::json!({
            "accuracy": acc, "loss": loss, "samples": set.len(), "split": a.split,
            "method": state.config.method, "epoch": state.epoch, "preset": preset.name,
        })
    );
    Ok(())
}
