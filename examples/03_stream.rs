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
        max_steps: Some(20_000),
        ema_steps: 10.0,
        // speed: Some(1.0) would pace it at real time.
        predictions: Some("out/example03_predictions.jsonl".into()),
        metrics_every_s: 5.0,
        ..StreamConfig::new(
            Source::Synthetic(SyntheticConfig {
                segment_us: 100_000,
                ..Default::default()
            }),
            "demo",
        )
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
