//! The streaming runtime, as sources → transforms → sinks: [`source`] (files, stdin, DV
//! network streams, datasets, synthetic scenes, cameras) into a [`ring`]; binning and
//! [`labels`] in [`stream`] (the wiring); the [`overload`] policy; the [`learner`] (the
//! pipeline of STDL stages, with [`replay`]); and the [`sink`]s (predictions, metrics, the
//! live [`view`], the summary). Settings: [`config`].

pub mod config;
pub mod labels;
pub mod learner;
pub mod overload;
pub mod replay;
pub mod ring;
pub mod sink;
pub mod source;
pub mod stream;
pub mod view;

/// The model's smoothed prediction: an exponential moving average of the logits, its
/// arg-max and softmax confidence (as `stdl stream` reports them).
#[derive(Debug, Default)]
pub struct Smoothed {
    ema: Option<Vec<f32>>,
}

impl Smoothed {
    /// Folds in one step's logits `z` with weight `alpha`; returns (class, confidence).
    pub fn update(&mut self, z: &[f32], alpha: f32) -> (usize, f32) {
        let e = self.ema.get_or_insert_with(|| z.to_vec());
        for (a, b) in e.iter_mut().zip(z) {
            *a += alpha * (b - *a);
        }
        let class = e
            .iter()
            .enumerate()
            .fold(0, |best, (i, v)| if *v > e[best] { i } else { best });
        let max = e[class];
        (class, 1.0 / e.iter().map(|v| (v - max).exp()).sum::<f32>())
    }

    /// The softmax of the smoothed logits (empty before the first update).
    pub fn probabilities(&self) -> Vec<f32> {
        let Some(e) = &self.ema else { return Vec::new() };
        let max = e.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = e.iter().map(|v| (v - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        exp.into_iter().map(|v| v / sum).collect()
    }
}
