//! Where a stream's results go: predictions ([`predictions`]), metrics lines
//! ([`metrics`]), the live page ([`live_view`]) and the summary ([`summary`]).

pub mod live_view;
pub mod metrics;
pub mod predictions;
pub mod summary;

pub use predictions::{Output, Prediction, Predictor};
pub use summary::Summary;
