//! `stdl continual`: tasks learned one after another, online; accuracy matrix and summaries.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use stdl::continual::{parse_tasks, run, ContinualConfig, Protocol};

use super::train::LearnArgs;

#[derive(Args, Debug)]
pub struct ContinualArgs {
    #[command(flatten)]
    pub learn: LearnArgs,
    /// Settings from a file (TOML, or JSON by extension: a `continual.json`'s `config`
    /// part works too once extracted); flags given override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Tasks in order: classes separated by commas, tasks by slashes [default: 0,1/2,3/4,5/6,7/8,9].
    #[arg(long)]
    pub tasks: Option<String>,
    /// class: one head over all classes (class-incremental); domain: the label is the class's
    /// position within its task (domain-incremental); task: as class, but a test sample is
    /// classified among its own task's classes (task-incremental, task given at test).
    /// [default: class]
    #[arg(long, value_parser = super::choice(&Protocol::ALL))]
    pub protocol: Option<Protocol>,
    /// Passes over each task's training stream [default: 1].
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub epochs_per_task: Option<usize>,
    /// Reservoir replay buffer of this many bytes (e.g. 2MiB; 0: none). Each learned batch is
    /// joined by as many samples drawn from the buffer [default: 0].
    #[arg(long, value_parser = super::bytes)]
    pub replay_bytes: Option<u64>,
    /// Use at most N training and N test samples of each class.
    #[arg(long)]
    pub samples_per_class: Option<usize>,
    /// Output directory: config.toml, continual.json, continual.png.
    #[arg(long, default_value = "out/continual")]
    pub out: PathBuf,
    /// Print continual.json to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub strategy: super::StrategyArgs,
    /// Run several learners one after another and print one table: naive, replay (naive
    /// with --replay-bytes, default 2MiB), ewc, lwf, or STRATEGY+replay. Each run's JSON goes
    /// to OUT/NAME/continual.json; the table to OUT/compare.json.
    #[arg(long, value_delimiter = ',', conflicts_with = "json")]
    pub compare: Vec<String>,
}

impl ContinualArgs {
    /// The run's settings: the `--config` file's, or the defaults with the preset's, with the
    /// flags given over them.
    pub fn config(&self) -> Result<ContinualConfig> {
        let (base, from_file) = match &self.config {
            Some(p) => (ContinualConfig::load(p)?, true),
            None => (ContinualConfig::default(), false),
        };
        let mut cfg = ContinualConfig {
            learn: self.learn.apply(base.learn.clone(), from_file)?,
            ..base
        };
        if let Some(t) = &self.tasks {
            cfg.tasks = parse_tasks(t)?;
        }
        if let Some(p) = self.protocol {
            cfg.protocol = p;
        }
        if let Some(e) = self.epochs_per_task {
            cfg.epochs_per_task = e;
        }
        if let Some(b) = self.replay_bytes {
            cfg.replay_bytes = b;
        }
        if self.samples_per_class.is_some() {
            cfg.samples_per_class = self.samples_per_class;
        }
        if !from_file || self.strategy.strategy.is_some() {
            cfg.strategy = self.strategy.config();
        }
        cfg.validate().map_err(anyhow::Error::msg)?;
        Ok(cfg)
    }
}

pub fn run_continual(a: &ContinualArgs) -> Result<()> {
    let l = &a.learn;
    let cfg = a.config()?;
    // The run's settings beside its results: `stdl continual --config OUT/config.toml`.
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    stdl::store::write_config(&a.out.join("config.toml"), &cfg)?;
    if !a.compare.is_empty() {
        return compare(a, cfg);
    }
    eprintln!(
        "{}-incremental: {} tasks {:?} of {} with {} ({}), T={}, batch {}, {} pass(es) per task, replay {}",
        cfg.protocol,
        cfg.tasks.len(),
        cfg.tasks,
        cfg.learn.dataset,
        cfg.learn.method,
        cfg.learn.preset,
        cfg.learn.t_bins,
        cfg.learn.batch,
        cfg.epochs_per_task,
        if cfg.replay_bytes > 0 {
            format!("{} bytes", cfg.replay_bytes)
        } else {
            "off".into()
        }
    );
    stdl::interrupt::install();
    let bar = l.progress_bar("task {prefix} [{bar:30}] {pos}/{len} batches {elapsed_precise}");
    let r = run(cfg, |task, b, n| {
        bar.set_prefix(task.to_string());
        bar.set_length(n as u64);
        bar.set_position(b as u64);
    })?;
    bar.finish_and_clear();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let json = a.out.join("continual.json");
    stdl::store::write_json(&json, &r)?;
    let png = a.out.join("continual.png");
    let title = format!(
        "{} {}-incremental, {}, replay {}{}",
        r.config.learn.dataset,
        r.config.protocol,
        r.config.learn.method,
        r.replay
            .as_ref()
            .map_or("off".to_string(), |b| format!("{} samples", b.capacity_samples)),
        if r.interrupted {
            format!(
                " (interrupted after {} of {} tasks)",
                r.tasks_learned,
                r.config.tasks.len()
            )
        } else {
            String::new()
        }
    );
    if let Err(e) = stdl::viz::plot_continual(&png, &r, &title) {
        eprintln!("warning: {e:#} (continual.json has the figures)");
    }
    // Interrupted: what was learned in full is written and shown, then the exit status says
    // the run did not finish.
    let finished = || -> Result<()> {
        if r.interrupted {
            anyhow::bail!(
                "interrupted after {} of {} tasks; {} covers the tasks learned",
                r.tasks_learned,
                r.config.tasks.len(),
                json.display()
            );
        }
        Ok(())
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return finished();
    }
    // The matrix as a table, percent.
    let t = r.config.tasks.len();
    print!("after task |");
    for j in 0..t {
        print!(" task {j:<2}");
    }
    println!();
    let row = |name: String, v: &[f32]| {
        print!("{name:>10} |");
        for a in v {
            print!(" {:>6.1}%", a * 100.0);
        }
        println!();
    };
    row("initial".into(), &r.initial_accuracy);
    for (i, v) in r.accuracy_matrix.iter().enumerate() {
        row(i.to_string(), v);
    }
    if let Some(b) = &r.replay {
        println!(
            "replay: {} of {} samples held ({} bytes each, {} bytes allocated of {}), per class {:?}",
            b.held_samples,
            b.capacity_samples,
            b.bytes_per_sample,
            b.allocated_bytes,
            b.budget_bytes,
            b.held_per_class
        );
    }
    println!(
        "chance {:.1}%, {:.1} s, peak RSS {:.1} MiB; wrote {} and {}",
        r.chance * 100.0,
        r.seconds,
        r.peak_rss_bytes as f64 / (1 << 20) as f64,
        json.display(),
        png.display()
    );
    println!(
        "average accuracy {:.1}%, forgetting {:.1} points, backward transfer {:+.1} points, forward transfer {:+.1} points",
        r.average_accuracy * 100.0,
        r.forgetting * 100.0,
        r.backward_transfer * 100.0,
        r.forward_transfer * 100.0
    );
    finished()
}

/// `--compare`: each learner in turn, one table.
fn compare(a: &ContinualArgs, base: ContinualConfig) -> Result<()> {
    stdl::interrupt::install();
    let mut rows = Vec::new();
    for name in &a.compare {
        let (kind, replay) = stdl::continual::parse_learner(name)?;
        let cfg = ContinualConfig {
            strategy: a.strategy.constants.config(kind),
            replay_bytes: match (replay, base.replay_bytes) {
                (false, _) => 0,
                (true, 0) => 2 << 20,
                (true, b) => b,
            },
            ..base.clone()
        };
        eprintln!("{name}: learning {} tasks...", cfg.tasks.len());
        let r = run(cfg, |_, _, _| {})?;
        let dir = a.out.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        stdl::store::write_json(&dir.join("continual.json"), &r)?;
        eprintln!(
            "{name}: average accuracy {:.1}% ({:.1} s)",
            100.0 * r.average_accuracy,
            r.seconds
        );
        let interrupted = r.interrupted;
        rows.push((name.clone(), r));
        if interrupted {
            break;
        }
    }
    println!(
        "{:<14} {:>9} {:>11} {:>10} {:>10} {:>9}",
        "learner", "average", "forgetting", "BWT", "FWT", "time"
    );
    for (name, r) in &rows {
        println!(
            "{:<14} {:>8.1}% {:>10.1}  {:>+9.1}  {:>+9.1}  {:>8.1}s",
            name,
            100.0 * r.average_accuracy,
            100.0 * r.forgetting,
            100.0 * r.backward_transfer,
            100.0 * r.forward_transfer,
            r.seconds
        );
    }
    let table: Vec<serde_json::Value> = rows
        .iter()
        .map(|(name, r)| {
            serde_json::json!({
                "learner": name, "average_accuracy": r.average_accuracy, "forgetting": r.forgetting,
                "backward_transfer": r.backward_transfer, "forward_transfer": r.forward_transfer,
                "avalanche": r.avalanche, "seconds": r.seconds, "interrupted": r.interrupted,
            })
        })
        .collect();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    stdl::store::write_json(&a.out.join("compare.json"), &table)?;
    if rows.iter().any(|r| r.1.interrupted) {
        anyhow::bail!("interrupted: the table covers the learners run");
    }
    Ok(())
}
