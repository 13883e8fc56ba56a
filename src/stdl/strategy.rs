//! Continual-learning strategies that act inside each stage's own update, so that they work
//! for an online learner that updates every subnetwork after every time step and is never
//! told where one task ends and the next begins (task-free):
//!
//! - **Online EWC** (elastic weight consolidation; Kirkpatrick et al. 2017, online form of
//!   Schwarz et al. 2018, "Progress & Compress"). Every update adds `λ F ⊙ (θ − θ*)` to the
//!   gradient: a quadratic pull towards the anchor `θ*`, weighted by each parameter's
//!   importance `F`, the diagonal empirical Fisher information. `F` is estimated from the
//!   squared gradients of the stage's own loss (its head's, as STDL trains it) over a window
//!   of `every_steps` updates; at the end of each window the estimate is consolidated,
//!   `F ← γ F + F_window`, and the anchor moves to the current weights. Without task
//!   boundaries the window stands in for a task: importance keeps accumulating (decayed by
//!   `γ`) over the whole stream. Memory: three floats per parameter (window estimate,
//!   consolidated `F`, anchor).
//! - **LwF** (learning without forgetting; Li & Hoiem 2017). A frozen copy of the stage (its
//!   subnetwork and head), refreshed every `every_steps` updates, sees the same input; the
//!   stage's loss gains `α T² KL(softmax(z_old / T) ‖ softmax(z / T))`, so the head keeps
//!   answering as the snapshot did while it learns the new label. STDL trains every
//!   subnetwork from its own head, so each stage distils against its own snapshot: local, like
//!   the rest of its learning. Memory: one float per parameter (the snapshot) and the
//!   snapshot's membranes; compute: one more forward pass per labelled step.

use serde::{Deserialize, Serialize};
use stdl_models::network::Sequential;
use stdl_models::{Layer, Tensor};

/// Which strategy a learner uses besides plain learning (replay is separate and combines
/// with any of them: `--replay-bytes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    /// Plain online learning.
    #[default]
    Naive,
    /// Online elastic weight consolidation.
    Ewc,
    /// Learning without forgetting (distillation against a periodic snapshot).
    Lwf,
}

impl std::fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StrategyKind::Naive => "naive",
            StrategyKind::Ewc => "ewc",
            StrategyKind::Lwf => "lwf",
        })
    }
}

impl std::str::FromStr for StrategyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "naive" | "none" => Ok(StrategyKind::Naive),
            "ewc" => Ok(StrategyKind::Ewc),
            "lwf" => Ok(StrategyKind::Lwf),
            _ => Err(format!("unknown strategy {s:?}; one of naive, ewc, lwf")),
        }
    }
}

/// A strategy and its constants.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StrategyConfig {
    /// Which strategy.
    pub kind: StrategyKind,
    /// EWC: strength λ of the pull towards the anchor.
    pub ewc_lambda: f32,
    /// EWC: decay γ of the consolidated importance at each consolidation (1: never forgets
    /// an old window's importance).
    pub ewc_decay: f32,
    /// LwF: weight α of the distillation loss.
    pub lwf_alpha: f32,
    /// LwF: temperature T.
    pub lwf_temperature: f32,
    /// EWC: updates per consolidation window; LwF: updates between snapshots.
    pub every_steps: u64,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        Self {
            kind: StrategyKind::Naive,
            ewc_lambda: 3.0,
            ewc_decay: 0.9,
            lwf_alpha: 1.0,
            lwf_temperature: 2.0,
            every_steps: 1000,
        }
    }
}

impl StrategyConfig {
    /// Checks the constants.
    ///
    /// # Errors
    /// A negative or non-finite weight, a decay outside `[0, 1]`, a temperature that is not
    /// positive, or a window of 0 updates.
    pub fn validate(&self) -> Result<(), String> {
        let ok = self.ewc_lambda.is_finite()
            && self.ewc_lambda >= 0.0
            && (0.0..=1.0).contains(&self.ewc_decay)
            && self.lwf_alpha.is_finite()
            && self.lwf_alpha >= 0.0
            && self.lwf_temperature.is_finite()
            && self.lwf_temperature > 0.0
            && self.every_steps > 0;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "strategy constants out of range: {self:?} (λ ≥ 0, 0 ≤ γ ≤ 1, α ≥ 0, T > 0, every ≥ 1)"
            ))
        }
    }

    /// Floats of state per parameter the strategy keeps (for the memory it costs).
    pub fn floats_per_param(&self) -> usize {
        match self.kind {
            StrategyKind::Naive => 0,
            StrategyKind::Ewc => 3,
            StrategyKind::Lwf => 1,
        }
    }
}

/// A stage's strategy state.
#[derive(Clone, Debug)]
pub enum StageStrategy {
    /// Online EWC.
    Ewc(Ewc),
    /// LwF.
    Lwf(Lwf),
}

impl StageStrategy {
    /// The state for `cfg` (`None` for plain learning).
    pub fn new(cfg: &StrategyConfig) -> Option<Self> {
        match cfg.kind {
            StrategyKind::Naive => None,
            StrategyKind::Ewc => Some(StageStrategy::Ewc(Ewc {
                cfg: *cfg,
                window: Vec::new(),
                window_steps: 0,
                fisher: Vec::new(),
                anchor: Vec::new(),
                consolidations: 0,
            })),
            StrategyKind::Lwf => Some(StageStrategy::Lwf(Lwf {
                cfg: *cfg,
                teacher: None,
                since: 0,
                snapshots: 0,
            })),
        }
    }
}

/// Online EWC state of one stage (per parameter, in the optimiser's order).
#[derive(Clone, Debug)]
pub struct Ewc {
    cfg: StrategyConfig,
    /// Sum of squared gradients over the current window.
    window: Vec<Vec<f32>>,
    window_steps: u64,
    /// Consolidated importance `F`.
    fisher: Vec<Vec<f32>>,
    /// Anchor `θ*`.
    anchor: Vec<Vec<f32>>,
    /// Windows consolidated so far.
    pub consolidations: u64,
}

impl Ewc {
    /// Before an optimiser step: adds the gradient to the window's estimate, then the
    /// penalty's gradient to the gradient; consolidates at the end of a window.
    pub fn before_update(&mut self, params: &mut [&mut stdl_models::layers::Param]) {
        if self.window.len() != params.len() {
            self.window = params.iter().map(|p| vec![0.0; p.value.len()]).collect();
        }
        let lambda = self.cfg.ewc_lambda;
        for (j, p) in params.iter_mut().enumerate() {
            p.ensure_grad();
            for (w, g) in self.window[j].iter_mut().zip(&p.grad) {
                *w += g * g;
            }
            if let (Some(f), Some(a)) = (self.fisher.get(j), self.anchor.get(j)) {
                for (((g, &v), &f), &a) in p.grad.iter_mut().zip(&p.value).zip(f).zip(a) {
                    *g += lambda * f * (v - a);
                }
            }
        }
        self.window_steps += 1;
        if self.window_steps >= self.cfg.every_steps {
            self.consolidate(params);
        }
    }

    fn consolidate(&mut self, params: &[&mut stdl_models::layers::Param]) {
        let (gamma, n) = (self.cfg.ewc_decay, self.window_steps.max(1) as f32);
        if self.fisher.len() != params.len() {
            self.fisher = params.iter().map(|p| vec![0.0; p.value.len()]).collect();
            self.anchor = params.iter().map(|p| p.value.clone()).collect();
        }
        for (j, p) in params.iter().enumerate() {
            for (f, w) in self.fisher[j].iter_mut().zip(self.window[j].iter_mut()) {
                *f = gamma * *f + *w / n;
                *w = 0.0;
            }
            self.anchor[j].copy_from_slice(&p.value);
        }
        self.window_steps = 0;
        self.consolidations += 1;
    }
}

/// LwF state of one stage.
#[derive(Clone, Debug)]
pub struct Lwf {
    cfg: StrategyConfig,
    /// The frozen snapshot: subnetwork and head, with their own membranes.
    teacher: Option<Box<(Sequential, Sequential)>>,
    since: u64,
    /// Snapshots taken so far.
    pub snapshots: u64,
}

impl Lwf {
    /// The snapshot's logits for the stage input `x` (evaluation mode: no caches kept), or
    /// `None` before the first snapshot.
    pub fn teacher_logits(&mut self, x: &Tensor) -> Option<Tensor> {
        let t = self.teacher.as_mut()?;
        let h = t.0.forward(x.clone(), false);
        Some(t.1.forward(h, false))
    }

    /// Adds the distillation loss of `logits` against the snapshot's `old` to `dl` (the
    /// loss's gradient so far, scaled by `scale`); returns the distillation loss.
    pub fn distill(&self, logits: &Tensor, old: &Tensor, dl: &mut Tensor, scale: f32) -> f32 {
        let (alpha, temp) = (self.cfg.lwf_alpha, self.cfg.lwf_temperature);
        let inv_b = 1.0 / logits.b.max(1) as f32;
        let mut loss = 0.0f64;
        let c = logits.dims.len();
        let (mut p, mut q) = (vec![0.0f32; c], vec![0.0f32; c]);
        for i in 0..logits.b {
            softmax_t(logits.sample(i), temp, &mut p);
            softmax_t(old.sample(i), temp, &mut q);
            // T² KL(q ‖ p); its gradient in z is T (p − q).
            let kl: f64 = q
                .iter()
                .zip(&p)
                .filter(|(q, _)| **q > 0.0)
                .map(|(&q, &p)| q as f64 * ((q as f64).ln() - (p.max(1e-30) as f64).ln()))
                .sum();
            loss += (alpha * temp * temp) as f64 * kl;
            for ((g, &p), &q) in dl.sample_mut(i).iter_mut().zip(&p).zip(&q) {
                *g += alpha * temp * (p - q) * inv_b * scale;
            }
        }
        (loss * inv_b as f64) as f32
    }

    /// After an optimiser step: takes a new snapshot of `body` and `head` every
    /// `every_steps` updates (the first after `every_steps`: there is nothing to keep before).
    pub fn after_update(&mut self, body: &Sequential, head: &Sequential) {
        self.since += 1;
        if self.since < self.cfg.every_steps {
            return;
        }
        self.since = 0;
        self.snapshots += 1;
        match self.teacher.as_mut() {
            // Into the same buffers: no allocation after the first snapshot.
            Some(t) => {
                for (dst, src) in [(&mut t.0, body), (&mut t.1, head)] {
                    for (d, s) in dst.params_mut().into_iter().zip(src.params()) {
                        d.value.copy_from_slice(&s.value);
                    }
                    for (d, s) in dst.layers.iter_mut().zip(&src.layers) {
                        if let (Layer::BatchNorm(d), Layer::BatchNorm(s)) = (d, s) {
                            d.running_mean.copy_from_slice(&s.running_mean);
                            d.running_var.copy_from_slice(&s.running_var);
                        }
                    }
                    dst.reset();
                }
            }
            None => {
                let (mut b, mut h) = (body.clone(), head.clone());
                b.reset();
                h.reset();
                for p in b.params_mut().into_iter().chain(h.params_mut()) {
                    p.release_grad();
                }
                self.teacher = Some(Box::new((b, h)));
            }
        }
    }

    /// The snapshot's layers (its membranes follow the stage's sequences).
    pub fn teacher_mut(&mut self) -> Option<&mut (Sequential, Sequential)> {
        self.teacher.as_deref_mut()
    }
}

/// `softmax(z / t)` into `out`.
fn softmax_t(z: &[f32], t: f32, out: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (o, &v) in out.iter_mut().zip(z) {
        *o = ((v - max) / t).exp();
        sum += *o;
    }
    out.iter_mut().for_each(|o| *o /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;
    use stdl_models::layers::Param;
    use stdl_models::Dims;

    #[test]
    fn ewc_pulls_towards_the_anchor_by_importance() {
        let cfg = StrategyConfig {
            kind: StrategyKind::Ewc,
            ewc_lambda: 10.0,
            ewc_decay: 0.5,
            every_steps: 2,
            ..Default::default()
        };
        let Some(StageStrategy::Ewc(mut e)) = StageStrategy::new(&cfg) else {
            unreachable!()
        };
        let mut p = Param::new("w", vec![1.0, 1.0]);
        // Two updates with gradients (1, 0) then (3, 0): window mean of g² = (5, 0).
        for g in [1.0, 3.0] {
            p.grad = vec![g, 0.0];
            e.before_update(&mut [&mut p]);
            // No penalty before the first consolidation.
            assert_eq!(p.grad, vec![g, 0.0]);
        }
        assert_eq!(e.consolidations, 1);
        assert_eq!(e.fisher[0], vec![5.0, 0.0]);
        assert_eq!(e.anchor[0], vec![1.0, 1.0]);
        // Moved away from the anchor: the pull is λ F (θ − θ*) where F > 0 only.
        p.value = vec![2.0, 3.0];
        p.grad = vec![0.0, 0.0];
        e.before_update(&mut [&mut p]);
        assert_eq!(p.grad, vec![10.0 * 5.0 * 1.0, 0.0]);
        // The next window: F ← γ F + mean g², where g is the loss's gradient (here 0 and 2),
        // taken before the penalty is added.
        p.grad = vec![2.0, 0.0];
        e.before_update(&mut [&mut p]);
        assert_eq!(e.consolidations, 2);
        assert_eq!(e.fisher[0][0], 0.5 * 5.0 + 4.0 / 2.0);
        assert_eq!(e.anchor[0], vec![2.0, 3.0]);
    }

    #[test]
    fn distillation_gradient_matches_finite_differences() {
        let cfg = StrategyConfig {
            kind: StrategyKind::Lwf,
            lwf_alpha: 0.7,
            lwf_temperature: 2.0,
            ..Default::default()
        };
        let Some(StageStrategy::Lwf(l)) = StageStrategy::new(&cfg) else {
            unreachable!()
        };
        let z = Tensor::from_vec(2, Dims::flat(3), vec![0.3, -1.0, 2.0, 1.5, 0.1, -0.4]);
        let old = Tensor::from_vec(2, Dims::flat(3), vec![1.0, 0.5, -0.2, -1.0, 2.0, 0.0]);
        let mut dl = Tensor::zeros(2, Dims::flat(3));
        let loss = l.distill(&z, &old, &mut dl, 1.0);
        assert!(loss > 0.0);
        let h = 1e-3;
        for k in 0..6 {
            let mut zp = z.clone();
            zp.data[k] += h;
            let mut zm = z.clone();
            zm.data[k] -= h;
            let mut scratch = Tensor::zeros(2, Dims::flat(3));
            let fd = (l.distill(&zp, &old, &mut scratch, 1.0) - l.distill(&zm, &old, &mut scratch, 1.0))
                / (2.0 * h);
            assert!((fd - dl.data[k]).abs() < 2e-3, "{k}: {fd} vs {}", dl.data[k]);
        }
        // Against itself the loss and its gradient are zero.
        let mut dl = Tensor::zeros(2, Dims::flat(3));
        assert!(l.distill(&z, &z, &mut dl, 1.0).abs() < 1e-6);
        assert!(dl.data.iter().all(|g| g.abs() < 1e-6));
    }
}
