//! `stdl-io`: events in, frames out.
//!
//! - [`formats`]: streaming readers for AEDAT 2.0 / 3.1 / 4.0, ATIS `.bin`, Prophesee
//!   EVT 2.0 / 3.0 and DAT, all behind one pull iterator ([`EventReader`]), plus writers for
//!   AEDAT 3.1, AEDAT 2.0 and ATIS `.bin`.
//! - [`frames`]: binning into frames (time windows, time bins, event-count bins), spatial
//!   downsampling, denoise and refractory filters, and a streaming binner that closes bins
//!   on event time.
//! - [`output`]: atomic output files and directory locks.
//! - [`datasets`]: DVS128-Gesture, N-Caltech101, N-MNIST and CIFAR10-DVS on-disk layouts.
//!
//! This crate knows nothing of neurons.
//!
//! ```no_run
//! use stdl_io::frames::{Channels, Geometry, StreamBinner};
//! use stdl_io::{EventReader, ReadOptions};
//!
//! # fn main() -> stdl_io::Result<()> {
//! // Any supported format; detected from the first bytes.
//! let mut reader = EventReader::open("recording.aedat4", &ReadOptions::default())?;
//! reader.read_header()?;
//! let sensor = reader.sensor_size().expect("AEDAT 4 states its size");
//! // 10 ms frames, OFF and ON channels, closed on event time.
//! let mut binner = StreamBinner::new(Geometry::new(sensor, Channels::Split)?, 10_000)?;
//! let mut events = Vec::new();
//! while let Some(n) = reader.read_into(&mut events) {
//!     n?;
//!     binner.push(&events, |frame| println!("{} events", frame.events));
//!     events.clear();
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]

pub mod datasets;
pub mod error;
pub mod event;
pub mod format;
pub mod formats;
pub mod frames;
pub mod info;
pub mod output;
pub mod sources;

pub use error::{Error, Location, Result};
pub use event::{Event, EventBatch, SensorSize};
pub use formats::{detect, read_file, EventReader, Format, ReadOptions, ReadStats};
