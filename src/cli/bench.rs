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
    pub file: PathBuf,
    /// Decoding runs; the median is reported.
    #[arg(long, default_value_t = 7)]
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

pub fn read(a: &BenchReadArgs) -> Result<()> {
    let bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let opts = a.read.options();
    let ext = a.file.extension().and_then(|e| e.to_str()).map(str::to_owned);
    let format = match a.read.format {
        Some(f) => f,
        None => stdl::io::detect(
            &bytes[..bytes.len().min(stdl::io::formats::DETECT_BYTES)],
            ext.as_deref(),
        )
        .map_err(|reason| anyhow::anyhow!("{}: unknown format ({reason})", a.file.display()))?,
    };
    let mut all: Vec<Event> = Vec::new();
    let mut times = Vec::new();
    let mut events = 0;
    for _ in 0..a.runs.max(1) {
        all.clear();
        let t = Instant::now();
        let mut r = if a.from_file {
            EventReader::open_as(&a.file, Some(format), &opts)?
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
        file: a.file.clone(),
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
