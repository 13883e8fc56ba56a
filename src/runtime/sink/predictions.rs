//! Predictions: the smoothed class after every live step, one JSON line each, to standard
//! output or a file ([`Output`]), and their running accuracy ([`Predictor`]).

use std::io::Write;

use crate::error::Result;
use serde::Serialize;

/// One prediction line.
#[derive(Debug, Serialize)]
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

/// Where predictions go: standard output, or a file renamed into place at the end.
#[derive(Debug)]
pub enum Output {
    /// Standard output.
    Stdout(std::io::BufWriter<std::io::Stdout>),
    /// A file, renamed into place by [`Output::finish`].
    File(crate::store::AtomicFile),
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
            Output::None => Ok(()),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File(f) => f.write(buf),
            Output::None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File(f) => f.flush(),
            Output::None => Ok(()),
        }
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

    /// Folds in a live step's output, scores it against the bin's label, and writes its
    /// prediction line; `meta` is the bin's end and label.
    ///
    /// # Errors
    /// A failed write.
    pub fn handle(
        &mut self,
        out: crate::stdl::StageOutput,
        meta: (u64, Option<usize>),
        w: &mut dyn Write,
    ) -> Result<()> {
        let (class, confidence) = self.smooth.update(&out.logits.data, self.alpha);
        self.last = Some(((class, confidence), meta.1));
        if let Some(l) = meta.1 {
            self.labelled += 1;
            self.correct += (l == class) as u64;
        }
        writeln!(
            w,
            "{}",
            serde_json::to_string(&Prediction {
                t_us: meta.0,
                class,
                confidence,
                label: meta.1
            })?
        )?;
        Ok(())
    }
}
