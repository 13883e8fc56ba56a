//! Leaky integrate-and-fire neurons with surrogate gradients.
//!
//! Per neuron and time step `t`, with input current `I_t`:
//!
//! ```text
//! u_t = λ · û_{t−1} + I_t        λ = 1 − 1/τ  (τ = 2: λ = 0.5)
//! s_t = H(u_t − θ)               θ = 1
//! û_t = u_t − θ · s_t            soft reset, û_0 = 0
//! ```
//!
//! Backward, `∂s/∂u = surrogate(u − θ)`. In [`TimeMode::Detached`] (STDL, SLTT) `û_{t−1}`
//! is a constant for the gradient: `∂L/∂I_t = ∂L/∂s_t · surrogate(u_t − θ)` and nothing flows
//! to earlier steps. In [`TimeMode::Bptt`] the gradient flows through `û` to `t − 1`, reset
//! path included: `∂L/∂u_t = (∂L/∂s_t − θ·∂L/∂û_t) · surrogate + ∂L/∂û_t` and
//! `∂L/∂û_{t−1} = λ · ∂L/∂u_t`.

use serde::{Deserialize, Serialize};

use super::{LayerMemory, LayerOps};
use crate::pool::Buf;
use crate::tensor::{Dims, Tensor};

/// Surrogate derivative of the Heaviside step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Surrogate {
    /// `α·σ(αx)·(1 − σ(αx))`.
    #[default]
    Sigmoid,
    /// `max(0, 1 − |x|)`.
    Triangle,
    /// `(α/2) / (1 + (π/2 · α · x)²)` (SpikingJelly's ATan).
    Atan,
    /// `1` for `|x| < 1/2`, else `0`.
    Rect,
}

impl std::str::FromStr for Surrogate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sigmoid" => Ok(Self::Sigmoid),
            "triangle" => Ok(Self::Triangle),
            "atan" => Ok(Self::Atan),
            "rect" => Ok(Self::Rect),
            _ => Err(format!("unknown surrogate `{s}` (sigmoid, triangle, atan, rect)")),
        }
    }
}

impl Surrogate {
    /// The derivative at `x = u − θ`, with sharpness `alpha`.
    #[inline(always)]
    pub fn grad(self, x: f32, alpha: f32) -> f32 {
        match self {
            Surrogate::Sigmoid => crate::math::sigmoid_grad(x, alpha),
            Surrogate::Triangle => (1.0 - x.abs()).max(0.0),
            Surrogate::Atan => {
                let z = std::f32::consts::FRAC_PI_2 * alpha * x;
                alpha / 2.0 / (1.0 + z * z)
            }
            Surrogate::Rect => (x.abs() < 0.5) as u8 as f32,
        }
    }
}

/// Neuron constants, with STDL.md's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifParams {
    /// Membrane time constant τ (λ = 1 − 1/τ). Default 2.
    pub tau: f32,
    /// Threshold θ. Default 1.
    pub threshold: f32,
    /// Surrogate gradient. Default sigmoid.
    pub surrogate: Surrogate,
    /// Surrogate sharpness α. Default 4.
    pub alpha: f32,
}

impl Default for LifParams {
    fn default() -> Self {
        Self {
            tau: 2.0,
            threshold: 1.0,
            surrogate: Surrogate::Sigmoid,
            alpha: 4.0,
        }
    }
}

impl LifParams {
    /// Leak factor λ = 1 − 1/τ.
    pub fn lambda(&self) -> f32 {
        1.0 - 1.0 / self.tau
    }
}

/// Whether gradients cross time steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeMode {
    /// `û_{t−1}` detached (STDL / SLTT): constant memory in time.
    Detached,
    /// Full backpropagation through time.
    Bptt,
}

/// One step of the neuron: updates `state` (û) in place and writes the spikes.
/// The pure function the layer is built on (and the one the voltage-trace test checks).
pub fn lif_step(input: &[f32], state: &mut [f32], spikes: &mut [f32], p: &LifParams) {
    let lambda = p.lambda();
    for ((&i, u_hat), s) in input.iter().zip(state.iter_mut()).zip(spikes.iter_mut()) {
        *s = update(i, u_hat, lambda, p.threshold).0;
    }
}

/// One neuron, one step: updates `û` and returns the spike and `u − θ`. Every forward path
/// of the layer (and [`lif_step`]) runs this.
#[inline(always)]
fn update(i: f32, u_hat: &mut f32, lambda: f32, threshold: f32) -> (f32, f32) {
    let u = lambda * *u_hat + i;
    let fire = if u >= threshold { 1.0 } else { 0.0 };
    *u_hat = u - threshold * fire;
    (fire, u - threshold)
}

crate::math::widest! {
    /// One training step over equal-length slices: spikes overwrite the input current, the
    /// membrane is updated, and `sg` gets the surrogate derivative at `u − θ`.
    fn train_step(v: &mut [f32], u_hat: &mut [f32], sg: &mut [f32], p: &LifParams) {
        match p.surrogate {
            Surrogate::Sigmoid => step_with(v, u_hat, sg, p, |x| Surrogate::Sigmoid.grad(x, p.alpha)),
            Surrogate::Triangle => step_with(v, u_hat, sg, p, |x| Surrogate::Triangle.grad(x, p.alpha)),
            Surrogate::Atan => step_with(v, u_hat, sg, p, |x| Surrogate::Atan.grad(x, p.alpha)),
            Surrogate::Rect => step_with(v, u_hat, sg, p, |x| Surrogate::Rect.grad(x, p.alpha)),
        }
    }
}

/// [`train_step`] with the surrogate's match hoisted out of the loop.
#[inline(always)]
fn step_with(v: &mut [f32], u_hat: &mut [f32], sg: &mut [f32], p: &LifParams, grad: impl Fn(f32) -> f32) {
    let lambda = p.lambda();
    for ((v, u_hat), g) in v.iter_mut().zip(u_hat.iter_mut()).zip(sg.iter_mut()) {
        let (fire, x) = update(*v, u_hat, lambda, p.threshold);
        *v = fire;
        *g = grad(x);
    }
}

/// A layer of LIF neurons.
#[derive(Clone, Debug)]
pub struct Lif {
    /// Per-sample shape.
    pub dims: Dims,
    /// Constants.
    pub params: LifParams,
    /// Gradient mode.
    pub mode: TimeMode,
    /// For gradient checking only: spikes are `σ(α(u − θ))` instead of the step, whose
    /// derivative is exactly the sigmoid surrogate, so finite differences can check the
    /// backward pass (reset path and time included).
    pub smooth: bool,
    state: Vec<f32>,
    /// Surrogate derivatives, one entry per kept forward.
    caches: Vec<Buf>,
    /// BPTT: ∂L/∂û of the step after the one being back-propagated.
    carry: Vec<f32>,
    /// Forward calls, and spikes and neurons counted on every [`SPIKE_SAMPLE_EVERY`]-th.
    calls: u64,
    spikes: u64,
    neurons: u64,
}

/// The spike count is taken on one forward call in this many (a scan of the output, too
/// costly on every step of a stream).
pub const SPIKE_SAMPLE_EVERY: u64 = 16;

impl Lif {
    /// A LIF layer.
    pub fn new(dims: Dims, params: LifParams, mode: TimeMode) -> Self {
        Self {
            dims,
            params,
            mode,
            smooth: false,
            state: Vec::new(),
            caches: Vec::new(),
            carry: Vec::new(),
            calls: 0,
            spikes: 0,
            neurons: 0,
        }
    }

    /// Spikes and neurons counted so far, on one forward call in [`SPIKE_SAMPLE_EVERY`]
    /// (their ratio estimates the layer's spike density).
    pub fn spike_counts(&self) -> (u64, u64) {
        (self.spikes, self.neurons)
    }

    /// Resets membranes to 0 and drops kept caches.
    pub fn reset(&mut self) {
        self.state.clear();
        self.caches.clear();
        self.carry.clear();
    }

    /// Exchanges the membrane state with `other` (a saved state, or an empty vector for a
    /// fresh sequence: an empty state reads as zeros at the next step). Lets a caller run
    /// another sequence (a replayed segment, a probe) and then put the first one back
    /// exactly as it was. Call it between steps: kept caches are not exchanged.
    pub fn swap_state(&mut self, other: &mut Vec<f32>) {
        std::mem::swap(&mut self.state, other);
    }

    pub(crate) fn kept(&self) -> usize {
        self.caches.len()
    }

    /// Membrane state û (after reset) of the last step.
    pub fn state(&self) -> &[f32] {
        &self.state
    }

    /// Forward one time step.
    ///
    /// # Panics
    /// When `x` is not of the layer's size.
    pub fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        assert_eq!(x.dims.len(), self.dims.len(), "lif input size");
        if self.state.len() != x.data.len() {
            // After a reset: zeros in the same allocation (no churn of membrane-sized
            // buffers from one sequence to the next).
            self.state.clear();
            self.state.resize(x.data.len(), 0.0);
        }
        let p = self.params;
        let lambda = p.lambda();
        // The spikes overwrite the input current in place.
        let mut s = x;
        let mut sg = if train {
            Buf::take(s.data.len())
        } else {
            Buf(Vec::new())
        };
        if self.smooth {
            // Finite-difference tests: a differentiable spike.
            for (j, (v, u_hat)) in s.data.iter_mut().zip(self.state.iter_mut()).enumerate() {
                let u = lambda * *u_hat + *v;
                let fire = 1.0 / (1.0 + (-p.alpha * (u - p.threshold)).exp());
                *v = fire;
                *u_hat = u - p.threshold * fire;
                if train {
                    sg[j] = p.surrogate.grad(u - p.threshold, p.alpha);
                }
            }
        } else if train {
            // The hot loop: the surrogate's match hoisted out of it, so that each arm is
            // straight-line arithmetic the compiler vectorises.
            let n = s.data.len();
            train_step(&mut s.data[..n], &mut self.state[..n], &mut sg[..n], &p);
        } else {
            for (v, u_hat) in s.data.iter_mut().zip(self.state.iter_mut()) {
                *v = update(*v, u_hat, lambda, p.threshold).0;
            }
        }
        if train {
            self.caches.push(sg);
        }
        if self.calls % SPIKE_SAMPLE_EVERY == 0 {
            self.spikes += s.data.iter().filter(|&&v| v != 0.0).count() as u64;
            self.neurons += s.data.len() as u64;
        }
        self.calls += 1;
        s
    }

    /// Backward one time step (the most recent kept forward).
    ///
    /// # Panics
    /// Without a forward step to go back through.
    pub fn backward(&mut self, ds: Tensor) -> Tensor {
        let sg = self.caches.pop().expect("lif backward without forward");
        let mut di = ds;
        match self.mode {
            TimeMode::Detached => {
                for (d, g) in di.data.iter_mut().zip(sg.iter()) {
                    *d *= g;
                }
            }
            TimeMode::Bptt => {
                if self.carry.len() != sg.len() {
                    self.carry.clear();
                    self.carry.resize(sg.len(), 0.0);
                }
                let (theta, lambda) = (self.params.threshold, self.params.lambda());
                for ((d, g), c) in di.data.iter_mut().zip(sg.iter()).zip(self.carry.iter_mut()) {
                    let du = (*d - theta * *c) * g + *c;
                    *d = du;
                    *c = lambda * du;
                }
                if self.caches.is_empty() {
                    self.carry.clear();
                }
            }
        }
        di
    }
}

impl LayerOps for Lif {
    fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        Lif::forward(self, x, train)
    }

    fn backward(&mut self, ds: Tensor) -> Tensor {
        Lif::backward(self, ds)
    }

    fn reset(&mut self) {
        Lif::reset(self);
    }

    fn in_dims(&self) -> Dims {
        self.dims
    }

    fn out_dims(&self) -> Dims {
        self.dims
    }

    fn describe(&self) -> String {
        "lif".into()
    }

    fn memory(&self, b: usize, m: &mut LayerMemory) {
        m.kept_per_step = super::pooled_bytes(b * self.dims.len());
        m.state = b * self.dims.len() * 4;
        // Spikes overwrite the input current, gradients the output gradient.
        m.output = 0;
    }

    fn kept(&self) -> usize {
        Lif::kept(self)
    }
}
