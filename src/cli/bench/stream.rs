//! `stdl bench soak` and `stdl bench realtime`: constant memory over a long stream, and the
//! real-time factor of learning on recordings.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::cpu_model;
use super::model::{cores, gemm_gflops, print_profile};

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
    #[arg(long, default_value_t = 1_000_000, value_parser = crate::cli::at_least_one::<u64>)]
    pub steps: u64,
    /// Preset.
    #[arg(long, default_value = "demo")]
    pub preset: String,
    /// Time bin.
    #[arg(long, default_value_t = 10_000, value_parser = crate::cli::at_least_one::<u64>)]
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
    #[arg(long, default_value_t = 10_000, value_parser = crate::cli::at_least_one::<u64>)]
    pub bin_us: u64,
    /// Adam updates every N labelled steps (1: after every step, the default).
    #[arg(long, default_value_t = 1, value_parser = crate::cli::at_least_one::<usize>)]
    pub update_every: usize,
    /// Auxiliary-network budget: bytes, or a multiple of the default such as 0.5x (default:
    /// the preset's).
    #[arg(long, value_parser = crate::cli::budget)]
    pub aux_budget: Option<stdl_models::preset::Budget>,
    /// Also print where each stage's steps went (per layer and phase, input densities).
    #[arg(long)]
    pub profile: bool,
    /// Worker threads for the stages (default: one per core; at most one per stage).
    #[arg(long, value_parser = crate::cli::at_least_one::<usize>)]
    pub workers: Option<usize>,
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
        cfg.workers = a.workers;
        cfg.update_every = a.update_every;
        cfg.aux_budget = a.aux_budget.clone();
        let s = stdl::runtime::stream::run(&cfg)?;
        let rtf = s.stream_seconds / s.seconds.max(1e-9);
        if a.json {
            println!(
                "{}",
                serde_json::json!({"file": f, "preset": a.preset, "steps": s.steps, "stream_seconds": s.stream_seconds,
                    "seconds": s.seconds, "real_time_factor": rtf, "dropped_bins": s.dropped_bins,
                    "update_every": a.update_every, "workers": s.workers, "workers_idle_s": s.workers_idle_s, "workers_helped_s": s.workers_helped_s,
                    "cpu": cpu_model(), "profile": s.profile})
            );
        } else {
            if let Some(rows) = &s.profile {
                print_profile(rows, gemm_gflops(), 1);
                // How well the stages fill the cores: their CPU time per bin (and the time
                // idle workers spent on their products) against the cores' wall time per bin.
                let cpu: f64 = rows.iter().map(|r| r.cpu_ms_per_step).sum();
                let wall = s.seconds * 1e3 / s.steps.max(1) as f64;
                let share = |secs: f64| 100.0 * secs / (s.seconds * s.workers as f64).max(1e-9);
                println!(
                    "balance: {wall:.3} ms of wall time per bin; the stages' CPU time kept the {} cores busy {:.0}% of it; \
                     {} worker{}, idle {:.0}% of it with no stage ready, {:.0}% helping a running stage's products",
                    cores(),
                    100.0 * cpu / (wall * cores() as f64),
                    s.workers,
                    if s.workers == 1 { "" } else { "s" },
                    share(s.workers_idle_s),
                    share(s.workers_helped_s)
                );
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
