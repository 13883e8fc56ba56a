//! `stdl plan`, `stdl train`, `stdl eval`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use stdl::checkpoint::Progress;
use stdl::config::LearnConfig;
use stdl::stdl::plan;
use stdl::train::{evaluate, train, EpochMetrics, LrSchedule, Method, TrainConfig};
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
    let budget = a
        .aux_budget
        .as_deref()
        .map(stdl::config::parse_budget)
        .transpose()
        .map_err(anyhow::Error::msg)?;
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

/// Dataset, network and learning flags shared by `train` and `continual`. Each overrides
/// the `--config` file; without one, the defaults are the preset's.
#[derive(Args, Debug)]
pub struct LearnArgs {
    /// Dataset: nmnist, dvs-gesture, ncaltech101, cifar10-dvs (required unless --config).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Dataset root directory (required unless --config).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Preset name or TOML file [default: nmnist].
    #[arg(long)]
    pub preset: Option<String>,
    /// stdl (online, local) or bptt (baseline) [default: stdl].
    #[arg(long, value_parser = super::choice(&Method::ALL))]
    pub method: Option<Method>,
    /// Time bins per sample (default: the preset's).
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub t_bins: Option<usize>,
    /// Batch size (default: the preset's).
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub batch: Option<usize>,
    /// Seed for initialisation, shuffling and sampling [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Learning rate (default: the preset's).
    #[arg(long, value_parser = super::positive::<f32>)]
    pub lr: Option<f32>,
    /// STDL: accumulate gradients over N labelled steps per update (1: every step).
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub update_every: Option<usize>,
    /// STDL: auxiliary-network budget (bytes such as 4MiB, or a multiple like 2x).
    #[arg(long, value_parser = super::budget)]
    pub aux_budget: Option<stdl_models::preset::Budget>,
    /// Surrogate gradient: sigmoid, triangle, atan or rect (default: the preset's).
    #[arg(long)]
    pub surrogate: Option<stdl_models::Surrogate>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl LearnArgs {
    /// `base` (a `--config` file's settings, else the defaults with the preset's) with every
    /// flag given applied over it.
    ///
    /// # Errors
    /// A preset that cannot be loaded, or no dataset or root from either source.
    pub fn apply(&self, mut l: LearnConfig, from_file: bool) -> Result<LearnConfig> {
        if let Some(p) = &self.preset {
            l.preset = p.clone();
        }
        if !from_file {
            let preset = Preset::load(&l.preset)?;
            l = l.with_preset_defaults(&preset);
        }
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { l.$f = v.clone().into(); } )* };
        }
        over!(dataset, method, t_bins, batch, seed, update_every);
        if let Some(r) = &self.root {
            l.root = r.clone();
        }
        if let Some(lr) = self.lr {
            l.optimizer.lr = lr;
        }
        if self.aux_budget.is_some() {
            l.aux_budget = self.aux_budget.clone();
        }
        if self.surrogate.is_some() {
            l.surrogate = self.surrogate;
        }
        if !from_file {
            anyhow::ensure!(
                self.dataset.is_some(),
                "--dataset is required (or a --config file)"
            );
            anyhow::ensure!(self.root.is_some(), "--root is required (or a --config file)");
        }
        Ok(l)
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
    /// Settings from a file (TOML, or JSON by extension), such as the OUT/config.toml every
    /// run writes; flags given override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Epochs (default: the preset's).
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub epochs: Option<usize>,
    /// Use at most N training and N test samples.
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub limit_samples: Option<usize>,
    /// Learning-rate schedule over the epochs: cosine or constant [default: cosine].
    #[arg(long, value_parser = super::choice(&LrSchedule::ALL))]
    pub lr_schedule: Option<LrSchedule>,
    /// Output directory: config.toml, metrics.jsonl, metrics.png, checkpoint/, result.json.
    #[arg(long, default_value = "out/train")]
    pub out: PathBuf,
    /// Continue from OUT/checkpoint (the configuration saved there wins, except --epochs).
    #[arg(long)]
    pub resume: bool,
    /// STDL: run the subnetworks as pipeline stages on worker threads: the same numbers
    /// bit for bit, about 1.35x faster on 2 cores, with the stages' step memory added up.
    #[arg(long)]
    pub pipeline: bool,
}

impl TrainArgs {
    /// The run's settings: the `--config` file's, or the defaults with the preset's, with the
    /// flags given over them.
    pub fn config(&self) -> Result<TrainConfig> {
        let (base, from_file) = match &self.config {
            Some(p) => (TrainConfig::load(p)?, true),
            None => (TrainConfig::default(), false),
        };
        let mut cfg = TrainConfig {
            learn: self.learn.apply(base.learn.clone(), from_file)?,
            ..base
        };
        if !from_file {
            cfg.epochs = Preset::load(&cfg.learn.preset)?.train.epochs;
        }
        if let Some(e) = self.epochs {
            cfg.epochs = e;
        }
        if self.limit_samples.is_some() {
            cfg.limit_samples = self.limit_samples;
        }
        if let Some(s) = self.lr_schedule {
            cfg.lr_schedule = s;
        }
        cfg.pipeline |= self.pipeline;
        cfg.validate().map_err(anyhow::Error::msg)?;
        Ok(cfg)
    }
}

/// Redraws `OUT/metrics.png` from the metrics after each epoch (a plot that cannot be drawn
/// is a warning: `metrics.jsonl` has the figures).
pub fn plot_each_epoch(out: &std::path::Path, title: &str) -> impl FnMut(&[EpochMetrics]) {
    let (png, title) = (out.join("metrics.png"), title.to_owned());
    move |metrics| {
        if let Err(e) = stdl::viz::plot_metrics(&png, metrics, &title) {
            eprintln!("warning: {e:#} (metrics.jsonl has the figures)");
        }
    }
}

pub fn run_train(a: &TrainArgs) -> Result<()> {
    let l = &a.learn;
    let cfg = a.config()?;
    eprintln!(
        "training {} with {} on {} ({}), {} epochs, T={}, batch {}, seed {}",
        cfg.learn.preset,
        cfg.learn.method,
        cfg.learn.dataset,
        cfg.learn.root.display(),
        cfg.epochs,
        cfg.learn.t_bins,
        cfg.learn.batch,
        cfg.learn.seed
    );
    let bar = l.progress_bar("epoch {prefix} [{bar:30}] {pos}/{len} batches {elapsed_precise} eta {eta}");
    // Ctrl-C / SIGTERM: stop between two batches; the checkpoint keeps the last whole epoch.
    stdl::interrupt::install();
    let title = format!("{} {}", cfg.learn.preset, cfg.learn.method);
    let progress = |epoch: usize, b: usize, n: usize| {
        bar.set_prefix(epoch.to_string());
        bar.set_length(n as u64);
        bar.set_position(b as u64);
        if b == n {
            bar.finish_and_clear();
            bar.reset();
        }
    };
    let result = train(
        cfg,
        &a.out,
        a.resume,
        a.epochs,
        progress,
        plot_each_epoch(&a.out, &title),
    )?;
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
    /// Checkpoint directory: OUT/checkpoint of a training run, or a stream's --checkpoint-dir.
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
    let stdl::checkpoint::Loaded {
        state,
        preset,
        mut model,
    } = stdl::checkpoint::load(&a.checkpoint, false)?;
    // A stream's checkpoint has no training run's time bins: it is evaluated with the
    // preset's, at its own batch.
    let (t_bins, epoch, steps) = match &state.progress {
        Progress::Train { epoch, config, .. } => (config.learn.t_bins, Some(*epoch), None),
        Progress::Stream { steps, .. } => (preset.train.t_bins, None, Some(*steps)),
    };
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
    let (acc, loss) = evaluate(&mut model, &set, t_bins, state.model.batch)?;
    println!(
        "{}",
        serde_json::json!({
            "accuracy": acc, "loss": loss, "samples": set.len(), "split": a.split,
            "method": state.model.method, "kind": state.progress.kind(), "epoch": epoch,
            "steps": steps, "preset": preset.name,
        })
    );
    Ok(())
}
