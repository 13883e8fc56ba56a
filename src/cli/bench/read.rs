//! `stdl bench read`: decoder throughput, on one file held in memory or on every sample
//! file of a dataset (the per-file cost).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use stdl::io::{Event, EventReader};

use super::super::ReadArgs;

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
    #[arg(long, default_value_t = 7, value_parser = crate::cli::at_least_one::<usize>)]
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
