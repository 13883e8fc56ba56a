//! Optimisers: Adam (default, lr 1e-3) and SGD with momentum; optional weight decay (added
//! to the gradient, as PyTorch's `weight_decay`).

use serde::{Deserialize, Serialize};

use crate::layers::Param;

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
        if self.m.len() != params.len() {
            self.m = params.iter().map(|p| vec![0.0; p.value.len()]).collect();
            if self.cfg.kind == OptimizerKind::Adam {
                self.v = params.iter().map(|p| vec![0.0; p.value.len()]).collect();
            }
        }
        self.t += 1;
        let c = self.cfg;
        let mut finite = true;
        // A parameter no backward pass reached has no gradient yet: it reads as zeros.
        for p in params.iter_mut() {
            p.ensure_grad();
        }
        match c.kind {
            OptimizerKind::Adam => {
                let bc1 = 1.0 - c.beta1.powi(self.t as i32);
                let bc2 = 1.0 - c.beta2.powi(self.t as i32);
                let step = c.lr / bc1;
                for ((p, m), v) in params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
                    finite &= adam(&mut p.value, &p.grad, m, v, &c, step, bc2);
                }
            }
            OptimizerKind::Sgd => {
                for (p, m) in params.iter_mut().zip(&mut self.m) {
                    for ((w, g), m) in p.value.iter_mut().zip(&p.grad).zip(m.iter_mut()) {
                        let g = g + c.weight_decay * *w;
                        *m = c.momentum * *m + g;
                        *w -= c.lr * *m;
                        finite &= w.is_finite();
                    }
                }
            }
        }
        self.diverged |= !finite;
    }
}

/// One Adam update of `w` from `g` in one pass over the four arrays; whether every value is
/// still finite.
fn adam(
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: &OptimConfig,
    step: f32,
    bc2: f32,
) -> bool {
    let mut finite = true;
    adam_into(w, g, m, v, c, step, bc2, &mut finite);
    finite
}

crate::math::widest! {
    /// [`adam`], compiled for the widest vector unit (one pass; no fused multiply-adds, so
    /// every CPU gives the same numbers).
    #[allow(clippy::too_many_arguments)]
    fn adam_into(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &OptimConfig, step: f32, bc2: f32, finite: &mut bool) {
        let mut ok = true;
        for (((w, g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g + c.weight_decay * *w;
            *m = c.beta1 * *m + (1.0 - c.beta1) * g;
            *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
            *w -= step * *m / ((*v / bc2).sqrt() + c.eps);
            ok &= w.is_finite();
        }
        *finite &= ok;
    }
}
