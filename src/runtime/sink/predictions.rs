//! Predictions: the smoothed class after every live step, one JSON line each, to standard
//! output or a file, or one value each to a channel ([`Output`]), and their running accuracy
//! ([`Predictor`]).

use std::io::Write;

use crate::error::Result;
use serde::Serialize;

/// One prediction line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// End of the time bin.
    pub t_us: u64,
    /// Predicted class (label index, 0-based).
    pub class: usize,
    /// Softmax probability of that class under the smoothed logits.
    pub confidence: f32,
    /// The known label of the bin, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<usize>,
}

/// Where predictions go: standard output, a file renamed into place at the end, or a
/// channel.
#[derive(Debug)]
pub enum Output {
    /// Standard output.
    Stdout(std::io::BufWriter<std::io::Stdout>),
    /// A file, renamed into place by [`Output::finish`].
    File(crate::store::AtomicFile),
    /// A channel (waiting while it is full); once its receiver is gone, `stop` is requested.
    Channel {
        /// The predictions' way out.
        tx: crossbeam_channel::Sender<Prediction>,
        /// The run's stop token.
        stop: crate::interrupt::Stop,
    },
    /// The source failed before its first event: nothing is created.
    None,
}

impl Output {
    /// Flushes standard output, or renames the file into place.
    ///
    /// # Errors
    /// A write that failed.
    pub fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => Ok(w.flush()?),
            Output::File(f) => Ok(f.commit()?),
            Output::Channel { .. } | Output::None => Ok(()),
        }
    }

    /// Sends one prediction on its way: a JSON line, or a value on the channel.
    ///
    /// # Errors
    /// A failed write (a closed channel is not an error: it stops the run).
    pub fn emit(&mut self, p: Prediction) -> Result<()> {
        match self {
            Output::Stdout(w) => writeln!(w, "{}", serde_json::to_string(&p)?)?,
            Output::File(f) => writeln!(f, "{}", serde_json::to_string(&p)?)?,
            Output::Channel { tx, stop } => {
                if tx.send(p).is_err() {
                    stop.request();
                }
            }
            Output::None => {}
        }
        Ok(())
    }
}

/// Smoothed predictions and their running accuracy.
#[derive(Debug)]
pub struct Predictor {
    /// The smoothed logits.
    pub smooth: crate::runtime::Smoothed,
    /// The latest prediction (class, confidence) and the label of its bin.
    pub last: Option<((usize, f32), Option<usize>)>,
    alpha: f32,
    /// Labelled live steps.
    pub labelled: u64,
    correct: u64,
}

impl Predictor {
    /// Smoothing over `ema_steps` steps (an exponential moving average of the logits).
    pub fn new(ema_steps: f32) -> Self {
        Self {
            smooth: Default::default(),
            last: None,
            alpha: 1.0 / ema_steps.max(1.0),
            labelled: 0,
            correct: 0,
        }
    }

    /// Accuracy of the smoothed predictions over labelled steps.
    pub fn accuracy(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.correct as f64 / self.labelled as f64)
    }

    /// Folds in a live step's output, scores it against the bin's label, and emits its
    /// prediction; `meta` is the bin's end and label.
    ///
    /// # Errors
    /// A failed write.
    pub fn handle(
        &mut self,
        out: crate::stdl::StageOutput,
        meta: (u64, Option<usize>),
        w: &mut Output,
    ) -> Result<()> {
        let (class, confidence) = self.smooth.update(&out.logits.data, self.alpha);
        self.last = Some(((class, confidence), meta.1));
        if let Some(l) = meta.1 {
            self.labelled += 1;
            self.correct += (l == class) as u64;
        }
        w.emit(Prediction {
            t_us: meta.0,
            class,
            confidence,
            label: meta.1,
        })
    }
}
