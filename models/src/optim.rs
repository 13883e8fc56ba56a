//! Optimisers: Adam (default, lr 1e-3) and SGD with momentum; optional weight decay (added
//! to the gradient, as PyTorch's `weight_decay`). A moment (Adam's two, SGD's velocity) that
//! falls below `f32`'s smallest normal value is set to 0 ([`crate::math::flush_subnormal`]):
//! with the default ε, such a moment moves its weight by less than 1e-28 times the learning
//! rate per step.

use serde::{Deserialize, Serialize};

use crate::layers::Param;
use crate::math::flush_subnormal;

/// Which optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam.
    #[default]
    Adam,
    /// SGD with momentum.
    Sgd,
}

/// Optimiser settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Adam or SGD.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// Adam β₁.
    pub beta1: f32,
    /// Adam β₂.
    pub beta2: f32,
    /// Adam ε.
    pub eps: f32,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            momentum: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl OptimConfig {
    /// Floats of state the optimiser keeps per parameter value: Adam's two moments, SGD's
    /// velocity (what the auxiliary-network plan charges for it).
    pub fn state_floats_per_param(&self) -> usize {
        match self.kind {
            OptimizerKind::Adam => 2,
            OptimizerKind::Sgd => 1,
        }
    }
}

/// Values of a parameter from which [`Update::apply`] offers pieces of its update to idle
/// threads ([`crate::assist`]): below it, the pieces would cost more to hand over than to
/// compute.
pub(crate) const SHARED_UPDATE_MIN: usize = 8192;

/// How a fused update of `values` parameters in `rows ≥ 1` independent rows (a
/// convolution's output channels, a linear layer's outputs) is cut for idle threads, as
/// [`Update::apply`] cuts a parameter: `(pieces, rows per piece)`.
pub(crate) fn row_pieces(values: usize, rows: usize) -> (usize, usize) {
    let parts = crate::assist::helpers()
        .min(values / SHARED_UPDATE_MIN)
        .clamp(1, rows);
    (parts, rows.div_ceil(parts))
}

/// An optimiser over a fixed list of parameters (in the order `step` receives them).
#[derive(Clone, Debug)]
pub struct Optimizer {
    /// Settings.
    pub cfg: OptimConfig,
    /// Steps taken.
    pub t: u64,
    /// First moments (Adam) or velocities (SGD), per parameter.
    pub m: Vec<Vec<f32>>,
    /// Second moments (Adam), per parameter.
    pub v: Vec<Vec<f32>>,
    /// Set (for good) once an update left a parameter value that is not finite: training
    /// diverged, and nothing it holds should be saved.
    pub diverged: bool,
}

impl Optimizer {
    /// A fresh optimiser.
    pub fn new(cfg: OptimConfig) -> Self {
        Self {
            cfg,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
            diverged: false,
        }
    }

    /// Floats of state per parameter value.
    pub fn state_floats_per_param(&self) -> usize {
        self.cfg.state_floats_per_param()
    }

    /// Updates the parameters from their gradients (gradients are left as they are).
    pub fn step(&mut self, params: &mut [&mut Param]) {
        let sizes: Vec<usize> = params.iter().map(|p| p.value.len()).collect();
        let update = self.begin_step(&sizes);
        let params = params.iter_mut().map(|p| &mut **p).collect();
        let finite = crate::layers::update_params(params, &update, &mut self.states());
        self.end_step(finite);
    }

    /// Starts a step over parameters of these sizes (in the order of [`Self::states`]):
    /// allocates the state at the first step, counts the step, and returns its element-wise
    /// update, which the caller applies to every parameter with [`Self::states`] (each
    /// parameter once, in any pieces), then reports with [`Self::end_step`].
    pub fn begin_step(&mut self, sizes: &[usize]) -> Update {
        if self.m.len() != sizes.len() {
            self.m = sizes.iter().map(|&n| vec![0.0; n]).collect();
            if self.cfg.kind == OptimizerKind::Adam {
                self.v = sizes.iter().map(|&n| vec![0.0; n]).collect();
            }
        }
        self.t += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        Update {
            cfg: c,
            step: c.lr / bc1,
            // PyTorch's form, sqrt(v) / sqrt(bc2) + eps, with the scalar division taken out
            // of the loop: one square root and one division per value.
            inv_sqrt_bc2: 1.0 / bc2.sqrt(),
        }
    }

    /// Per parameter, in [`Self::begin_step`]'s order, its state: Adam's first and second
    /// moments, or SGD's velocity and an empty slice.
    pub fn states(&mut self) -> impl Iterator<Item = (&mut [f32], &mut [f32])> {
        let mut v = self.v.iter_mut().map(|v| &mut v[..]);
        self.m
            .iter_mut()
            .map(move |m| (&mut m[..], v.next().unwrap_or(&mut [])))
    }

    /// Ends a step: `finite` is whether every updated value is still finite.
    pub fn end_step(&mut self, finite: bool) {
        self.diverged |= !finite;
    }
}

/// The element-wise update of one optimiser step ([`Optimizer::begin_step`]).
#[derive(Clone, Copy, Debug)]
pub struct Update {
    cfg: OptimConfig,
    /// Adam: the learning rate over the first moment's bias correction.
    step: f32,
    /// Adam: one over the square root of the second moment's bias correction.
    inv_sqrt_bc2: f32,
}

impl Update {
    /// Updates `w` from its gradient `g` and its state (`m`, and `v` for Adam); whether
    /// every value is still finite.
    ///
    /// Large parameters are cut into one piece per thread that can take part
    /// ([`crate::assist::helpers`]): the update is element-wise, so the values are the same.
    pub fn apply(&self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) -> bool {
        let parts = crate::assist::helpers().min(w.len() / SHARED_UPDATE_MIN).max(1);
        let per = w.len().div_ceil(parts).max(1);
        // SGD has no second moment: `v` is empty, and its pieces are too.
        let v = v
            .chunks_mut(per)
            .chain(std::iter::repeat_with(<&mut [f32]>::default));
        let pieces = w.chunks_mut(per).zip(g.chunks(per)).zip(m.chunks_mut(per)).zip(v);
        crate::assist::all_of(parts, pieces, |(((w, g), m), v)| self.apply_whole(w, g, m, v))
    }

    /// [`Update::apply`] on this thread.
    fn apply_whole(&self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) -> bool {
        let mut finite = true;
        match self.cfg.kind {
            OptimizerKind::Adam => adam_into(w, g, m, v, self, &mut finite),
            OptimizerKind::Sgd => {
                let (c, mut ok) = (self.cfg, crate::math::Finite::default());
                for ((w, g), m) in w.iter_mut().zip(g).zip(m.iter_mut()) {
                    let g = g + c.weight_decay * *w;
                    *m = flush_subnormal(c.momentum * *m + g);
                    *w -= c.lr * *m;
                    ok.see(*w);
                }
                finite = ok.all();
            }
        }
        finite
    }

    /// Whether this is Adam's update ([`Update::adam`] then applies it value by value).
    pub fn is_adam(&self) -> bool {
        self.cfg.kind == OptimizerKind::Adam
    }

    /// Adam's update of one value `w` from its gradient `g` and its moments: the same
    /// arithmetic as [`Update::apply`], for kernels that compute the gradient value by value
    /// and update in the same pass (no fused multiply-adds, so every CPU gives the same
    /// numbers). Subnormal moments are set to 0 ([`crate::math::flush_subnormal`]).
    #[inline(always)]
    pub fn adam(&self, w: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        let c = &self.cfg;
        let g = g + c.weight_decay * *w;
        *m = flush_subnormal(c.beta1 * *m + (1.0 - c.beta1) * g);
        *v = flush_subnormal(c.beta2 * *v + (1.0 - c.beta2) * g * g);
        *w -= self.step * *m / (v.sqrt() * self.inv_sqrt_bc2 + c.eps);
    }
}

crate::math::widest! {
    /// Adam's update over whole slices, compiled for the widest vector unit (one pass over
    /// the four arrays).
    fn adam_into(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], u: &Update, finite: &mut bool) {
        let mut ok = crate::math::Finite::default();
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            u.adam(w, g, m, v);
            ok.see(*w);
        }
        *finite &= ok.all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cut into pieces for helpers, an update gives the same bits as whole: Adam and SGD
    /// (whose second moment is empty), with weight decay, on a length that does not divide.
    #[test]
    fn an_update_in_pieces_gives_the_same_bits() {
        let n = 3 * SHARED_UPDATE_MIN + 5;
        let mut rng = crate::Rng::new(3);
        let init: Vec<f32> = (0..n).map(|_| rng.next_f32() - 0.5).collect();
        let grad: Vec<f32> = (0..n).map(|_| rng.next_f32() - 0.5).collect();
        for kind in [OptimizerKind::Adam, OptimizerKind::Sgd] {
            let cfg = OptimConfig {
                kind,
                weight_decay: 0.01,
                ..OptimConfig::default()
            };
            let run = |parts: usize| {
                let mut opt = Optimizer::new(cfg);
                let mut p = Param::new("w", init.clone());
                p.grad = grad.clone();
                for _ in 0..3 {
                    crate::assist::as_if_helped(parts, || opt.step(&mut [&mut p]));
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
                (bits(&p.value), bits(&opt.m[0]), opt.v.first().map(|v| bits(v)))
            };
            let whole = run(1);
            for parts in 2..=4 {
                assert!(run(parts) == whole, "{kind:?} in {parts}");
            }
        }
    }

    /// Adam as PyTorch's `torch.optim.Adam` writes it (`weight_decay` added to the gradient),
    /// in f64, over several steps; the optimiser must follow it to f32 rounding, with and
    /// without weight decay, on values of several magnitudes and a length that is not a
    /// multiple of any vector width.
    #[test]
    fn adam_follows_the_reference_over_steps() {
        for weight_decay in [0.0f32, 0.01] {
            let cfg = OptimConfig {
                weight_decay,
                lr: 3e-3,
                ..OptimConfig::default()
            };
            let n = 37usize;
            let init: Vec<f32> = (0..n)
                .map(|i| (i as f32 * 0.7).sin() * 10f32.powi(i as i32 % 3 - 1))
                .collect();
            let grad_at = |t: usize, i: usize| {
                ((t * 31 + i * 7) as f32 * 0.37).cos() * if i % 5 == 0 { 1e-3 } else { 1.0 }
            };
            let mut p = Param::new("w", init.clone());
            let mut opt = Optimizer::new(cfg);
            let (mut w, mut m, mut v) = (
                init.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>(),
                vec![0f64; n],
                vec![0f64; n],
            );
            let (b1, b2) = (f64::from(cfg.beta1), f64::from(cfg.beta2));
            for t in 1..=20usize {
                p.grad = (0..n).map(|i| grad_at(t, i)).collect();
                opt.step(&mut [&mut p]);
                for i in 0..n {
                    let g = f64::from(grad_at(t, i)) + f64::from(weight_decay) * w[i];
                    m[i] = b1 * m[i] + (1.0 - b1) * g;
                    v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                    let (bc1, bc2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
                    let denom = v[i].sqrt() / bc2.sqrt() + f64::from(cfg.eps);
                    w[i] -= f64::from(cfg.lr) / bc1 * m[i] / denom;
                }
            }
            for (i, (&got, &want)) in p.value.iter().zip(&w).enumerate() {
                let moved = (want - f64::from(init[i])).abs();
                assert!(
                    (f64::from(got) - want).abs() <= 1e-6 * want.abs().max(1.0) + 1e-3 * moved,
                    "weight decay {weight_decay}, value {i}: {got} against {want} (moved {moved})"
                );
            }
            assert!(!opt.diverged);
        }
    }

    /// A moment left to decay (gradient 0) goes from a normal value straight to 0, never
    /// through `f32`'s subnormal range (whose arithmetic takes a microcode assist on Intel
    /// CPUs): Adam's two moments and SGD's velocity, over the steps in which each would
    /// have crossed it.
    #[test]
    fn decaying_moments_skip_the_subnormal_range() {
        for kind in [OptimizerKind::Adam, OptimizerKind::Sgd] {
            let mut opt = Optimizer::new(OptimConfig {
                kind,
                ..OptimConfig::default()
            });
            let mut p = Param::new("w", vec![0.5; 19]);
            p.grad = vec![0.0; 19];
            opt.begin_step(&[19]);
            // Adam's second moment decays by 0.999 a step: start it 1.5x above the range.
            for (m, v) in opt.states() {
                m.iter_mut()
                    .enumerate()
                    .for_each(|(i, m)| *m = 1e-36 * (i as f32 + 1.0));
                v.iter_mut().for_each(|v| *v = 1.5 * f32::MIN_POSITIVE);
            }
            for t in 0..1000 {
                opt.step(&mut [&mut p]);
                for x in opt.m[0].iter().chain(opt.v.iter().flatten()) {
                    assert!(!x.is_subnormal(), "{kind:?}, step {t}: a moment is {x:e}");
                }
            }
            assert!(
                opt.m.iter().chain(&opt.v).flatten().all(|&x| x == 0.0),
                "{kind:?}"
            );
            assert!(p.value.iter().all(|w| w.is_finite()) && !opt.diverged);
        }
    }
}
