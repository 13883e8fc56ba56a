//! Where a stream's results go: predictions ([`predictions`]), metrics lines
//! ([`metrics`]), the live page ([`live_view`]) and the summary ([`summary`]).

pub mod live_view;
pub mod metrics;
pub mod predictions;
pub mod summary;

pub use predictions::{Output, Prediction, Predictor};
pub use summary::Summary;

use crate::error::Result;
use crate::runtime::config::StreamConfig;

/// The predictions' output (a channel, a file or standard output) and the metrics file, created once the source is known to work
/// (`source_failed`: nothing is created). An earlier file of the same name is replaced only
/// when the stream ends: every output is written atomically.
///
/// # Errors
/// A file that cannot be created.
pub fn open_outputs(
    cfg: &StreamConfig,
    source_failed: bool,
) -> Result<(Output, Option<crate::store::AtomicFile>)> {
    let predictions = match (&cfg.on_prediction, &cfg.predictions) {
        _ if source_failed => Output::None,
        (Some(tx), _) => Output::Channel {
            tx: tx.clone(),
            stop: cfg.stop.clone(),
        },
        (None, Some(p)) => Output::File(crate::store::AtomicFile::create(p)?),
        (None, None) => Output::Stdout(std::io::BufWriter::new(std::io::stdout())),
    };
    let metrics = match &cfg.metrics {
        Some(p) if !source_failed => Some(crate::store::AtomicFile::create(p)?),
        _ => None,
    };
    Ok((predictions, metrics))
}
