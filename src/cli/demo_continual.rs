//! `stdl demo continual`: class-incremental learning on one synthetic stream, with and
//! without replay and with each strategy, side by side ([`stdl::scene`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use clap::Args;
use stdl::continual::{parse_learner, parse_tasks};
use stdl::runtime::replay::ReplaySettings;
use stdl::scene::{run_scene, Probe, SceneConfig, SceneRun};

#[derive(Args, Debug)]
pub struct ContinualDemoArgs {
    /// Output directory: continual.json, continual.png.
    #[arg(long, default_value = "out/demo-continual")]
    pub out: PathBuf,
    /// The phases: classes (directions) separated by commas, phases by slashes.
    #[arg(long, default_value = "0,1,2,3/4,5,6,7/8,9,10")]
    pub phases: String,
    /// Live steps (10 ms bins) per phase.
    #[arg(long, default_value_t = SceneConfig::default().steps_per_phase, value_parser = super::at_least_one::<u64>)]
    pub steps_per_phase: u64,
    /// Live steps between probes within a phase.
    #[arg(long, default_value_t = SceneConfig::default().probe_every, value_parser = super::at_least_one::<u64>)]
    pub probe_every: u64,
    /// Probe segments per class (each 25 steps of one direction, a held-out seed).
    #[arg(long, default_value_t = SceneConfig::default().probe_segments, value_parser = super::at_least_one::<usize>)]
    pub probe_segments: usize,
    /// Learners to run, in this order: naive, replay (naive with replay), ewc, lwf, and any
    /// strategy with replay as STRATEGY+replay.
    #[arg(long, value_delimiter = ',', default_value = "naive,replay,ewc,lwf")]
    pub runs: Vec<String>,
    /// Replay budget of the runs with replay.
    #[arg(long, value_parser = super::bytes, default_value = "4MiB")]
    pub replay_bytes: u64,
    /// Replayed steps per live step.
    #[arg(long, default_value_t = 1.0, value_parser = super::non_negative)]
    pub replay_ratio: f64,
    /// Bins per replayed segment.
    #[arg(long, default_value_t = 8, value_parser = super::at_least_one::<usize>)]
    pub replay_segment_bins: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = super::positive::<f32>)]
    pub lr: f32,
    /// Seed of the stream, the probe stream and the networks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub constants: super::StrategyConstants,
}

/// A run's settings from its name.
fn run_config(name: &str, base: &SceneConfig, a: &ContinualDemoArgs) -> Result<SceneConfig> {
    let (kind, replay) = parse_learner(name)?;
    Ok(SceneConfig {
        strategy: a.constants.config(kind),
        replay: replay.then_some(ReplaySettings {
            bytes: a.replay_bytes,
            ratio: a.replay_ratio,
            segment_bins: a.replay_segment_bins,
        }),
        ..base.clone()
    })
}

fn print_run(r: &SceneRun) {
    let n = r.config.phases.len();
    println!("{}:", r.name);
    let head: String = (0..n).map(|j| format!("  phase {j}")).collect();
    println!("  after phase |{head}");
    let fmt = |row: &[f32]| -> String {
        row.iter()
            .map(|a| format!("{:>7.1}%", 100.0 * a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("      initial | {}", fmt(&r.initial_accuracy));
    for (i, row) in r.accuracy_matrix.iter().enumerate() {
        println!("  {i:>11} | {}", fmt(row));
    }
}

pub fn run(a: &ContinualDemoArgs) -> Result<()> {
    stdl::interrupt::install();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let base = SceneConfig {
        phases: parse_tasks(&a.phases)?,
        steps_per_phase: a.steps_per_phase,
        probe_every: a.probe_every,
        probe_segments: a.probe_segments,
        seed: a.seed,
        lr: a.lr,
        ..Default::default()
    };
    base.validate()?;
    let configs: Vec<(String, SceneConfig)> = a
        .runs
        .iter()
        .map(|n| Ok((n.clone(), run_config(n, &base, a)?)))
        .collect::<Result<_>>()?;
    eprintln!(
        "stdl demo continual: the synthetic camera's directions arrive in phases {:?}, {} live \
         steps (10 ms bins) each, learned online with STDL from one stream; the learner is never \
         told where a phase ends. Every {} steps, and at the end of each phase, learning pauses \
         and a held-out probe stream of every class seen so far is predicted. Runs: {}.",
        base.phases,
        base.steps_per_phase,
        base.probe_every,
        a.runs.join(", ")
    );
    let started = std::time::Instant::now();
    let probe = Probe::new(&base)?;
    // The runs two at a time, one core each (each on a one-thread pool of its own).
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<stdl::error::Result<SceneRun>>> = (0..configs.len()).map(|_| None).collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(configs.len())
        .max(1);
    let done: Vec<Vec<(usize, stdl::error::Result<SceneRun>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .build()
                        .expect("a thread");
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((name, cfg)) = configs.get(i) else { break };
                        let r = pool.install(|| run_scene(cfg, &probe, name));
                        if let Ok(r) = &r {
                            eprintln!(
                                "{}: average accuracy {:.1}% ({:.0} s)",
                                r.name,
                                100.0 * r.average_accuracy,
                                r.seconds
                            );
                        }
                        out.push((i, r));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a run panicked"))
            .collect()
    });
    for (i, r) in done.into_iter().flatten() {
        results[i] = Some(r);
    }
    let runs: Vec<SceneRun> = results
        .into_iter()
        .map(|r| r.expect("every run ran"))
        .collect::<stdl::error::Result<_>>()?;
    for r in &runs {
        print_run(r);
    }
    println!();
    println!(
        "{:<14} {:>9} {:>11} {:>10} {:>10} {:>8} {:>11} {:>6}",
        "learner", "average", "forgetting", "BWT", "FWT", "online", "extra state", "time"
    );
    for r in &runs {
        let replay = r.replay.as_ref().map_or(0, |s| s.budget_bytes);
        let extra = r.config.strategy.floats_per_param() as u64 * 4 * r.params as u64 + replay;
        println!(
            "{:<14} {:>8.1}% {:>10.1}  {:>+9.1}  {:>+9.1}  {:>7.1}% {:>8.2} MiB {:>5.0}s",
            r.name,
            100.0 * r.average_accuracy,
            100.0 * r.forgetting,
            100.0 * r.backward_transfer,
            100.0 * r.forward_transfer,
            100.0 * r.online_accuracy.iter().sum::<f32>() / r.online_accuracy.len().max(1) as f32,
            extra as f64 / (1 << 20) as f64,
            r.seconds
        );
    }
    let json = a.out.join("continual.json");
    stdl::store::write_json(&json, &runs)?;
    let png = a.out.join("continual.png");
    match stdl::viz::plot_scene(
        &png,
        &runs,
        "stdl demo continual: class-incremental directions, one stream",
    ) {
        Ok(()) => eprintln!("wrote {} and {}", json.display(), png.display()),
        Err(e) => eprintln!("warning: {e:#}; wrote {}", json.display()),
    }
    println!(
        "{} learners in {:.0} s ({} at a time, one core each)",
        runs.len(),
        started.elapsed().as_secs_f64(),
        workers
    );
    let interrupted = runs.iter().any(|r| r.interrupted);
    let chance = 1.0 / 11.0;
    println!(
        "forgetting and transfer in points; chance {:.1}%; accuracy per step on the probe stream",
        100.0 * chance
    );
    // The last line: the replay learner's average accuracy (or the first run's).
    let main = runs.iter().find(|r| r.name == "replay").unwrap_or(&runs[0]);
    println!("accuracy: {:.1}%", 100.0 * main.average_accuracy);
    if interrupted {
        anyhow::bail!("interrupted: the figures cover the phases learned in full");
    }
    Ok(())
}
