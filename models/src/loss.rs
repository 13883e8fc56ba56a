//! Softmax cross-entropy.

use crate::tensor::Tensor;

/// Mean cross-entropy of `logits` (`B × classes`) against `labels`, and its gradient
/// multiplied by `scale` (`∂(scale · loss)/∂logits = scale · (softmax − onehot) / B`).
///
/// # Panics
/// When there is not one label per sample, or a label is not below the number of classes.
pub fn cross_entropy(logits: &Tensor, labels: &[usize], scale: f32) -> (f32, Tensor) {
    let classes = logits.dims.len();
    assert_eq!(labels.len(), logits.b, "one label per sample");
    let mut grad = Tensor::zeros(logits.b, logits.dims);
    let mut loss = 0.0f64;
    let inv_b = 1.0 / logits.b.max(1) as f32;
    for (i, &y) in labels.iter().enumerate() {
        assert!(y < classes, "label {y} out of {classes} classes");
        let z = logits.sample(i);
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = z.iter().map(|v| (v - max).exp()).sum();
        let log_sum = sum.ln() + max;
        loss += (log_sum - z[y]) as f64;
        let g = grad.sample_mut(i);
        for (j, (gv, zv)) in g.iter_mut().zip(z).enumerate() {
            let p = (zv - log_sum).exp();
            *gv = (p - (j == y) as u8 as f32) * inv_b * scale;
        }
    }
    ((loss / logits.b.max(1) as f64) as f32, grad)
}

/// Index of the largest value of each sample.
pub fn argmax(t: &Tensor) -> Vec<usize> {
    (0..t.b)
        .map(|i| {
            let s = t.sample(i);
            let mut best = 0;
            for (j, &v) in s.iter().enumerate() {
                if v > s[best] {
                    best = j;
                }
            }
            best
        })
        .collect()
}
