//! 01: read an event recording, whatever its format, and bin it into frames.
//!
//!     cargo run --release --example 01_read_events [FILE]
//!
//! Without FILE it reads the DVS128 recording in ../shared/data. The reader is a pull
//! iterator of bounded batches, so this works the same on a file of any size.

use std::path::PathBuf;

use stdl::io::frames::{Channels, Geometry, StreamBinner};
use stdl::io::{EventReader, ReadOptions};

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/aedat2/dvs128_alex_walking_again.aedat")
    });
    // The format is detected from the first bytes; the extension is only a hint.
    let mut reader = EventReader::open(&path, &ReadOptions::default())?;
    reader.read_header()?;
    let sensor = reader
        .sensor_size()
        .unwrap_or(stdl::io::SensorSize::new(128, 128));
    println!("{}: {} from a {} sensor", path.display(), reader.format(), sensor);

    // 10 ms frames with OFF and ON channels, closed on event time as the events stream in.
    let mut binner = StreamBinner::new(Geometry::new(sensor, Channels::Split)?, 10_000)?;
    let (mut frames, mut busiest) = (0usize, 0u64);
    let mut on_frame = |frame: stdl::io::frames::Frame| {
        frames += 1;
        busiest = busiest.max(frame.events);
    };
    for batch in reader.by_ref() {
        binner.push(&batch?, &mut on_frame);
    }
    // Emit the last, partial bin too.
    let stats = binner.finish(true, &mut on_frame);
    let read = reader.stats();
    println!(
        "{} events ({} skipped records), {} frames of 10 ms ({} empty), busiest frame {} events",
        read.events, read.skipped_records, frames, stats.empty_frames, busiest
    );
    Ok(())
}
