//! 03: learn online from an event stream while predicting, with the subnetworks running as
//! pipeline stages on their own threads.
//!
//!     cargo run --release --example 03_stream
//!
//! The source is the built-in synthetic scene (11 directions of motion); swap in
//! `Source::File(path)` with `labels_csv` for a recording, or `Source::DvTcp(addr)` for a
//! DV network stream.

use stdl::io::sources::SyntheticConfig;
use stdl::runtime::stream::{run, Source, StreamConfig};

fn main() -> anyhow::Result<()> {
    let cfg = StreamConfig {
        source: Source::Synthetic(SyntheticConfig {
            segment_us: 100_000,
            ..Default::default()
        }),
        format: None,
        sensor_size: None,
        preset: "demo".into(),
        bin_us: 10_000,
        max_steps: Some(20_000),
        learn: true,
        labels_csv: None,
        speed: None, // Some(1.0) paces it at real time
        ema_steps: 10.0,
        seed: 0,
        lr: 1e-3,
        predictions: Some("out/example03_predictions.jsonl".into()),
        metrics: None,
        summary: None,
        metrics_every_s: 5.0,
        constant_label: None,
        report_at_steps: Vec::new(),
        checkpoint_dir: None,
        checkpoint_every_steps: None,
        checkpoint_every_s: None,
        resume: false,
        live_labels: None,
    };
    std::fs::create_dir_all("out")?;
    let s = run(&cfg)?;
    println!(
        "{} events, {} steps in {:.1} s; running accuracy {:.1}% (chance 9.1%), peak RSS {:.1} MiB",
        s.events,
        s.steps,
        s.seconds,
        100.0 * s.accuracy.unwrap_or(0.0),
        s.peak_rss_bytes as f64 / 1048576.0
    );
    Ok(())
}
