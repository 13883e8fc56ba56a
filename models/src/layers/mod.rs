//! Layers with explicit forward and backward passes over `f32` buffers.
//!
//! Every layer keeps, per forward call made in training mode, what its backward pass needs,
//! on a stack: `backward` pops the most recent entry. The online (STDL) trainer runs one
//! forward and one backward per time step, so the stack never holds more than one entry and
//! memory is constant in time; the BPTT trainer runs `T` forwards, then `T` backwards in
//! reverse order, so the same layers keep the whole unrolled graph.

pub mod conv;
pub mod flatten;
pub mod lif;
pub mod linear;
pub mod norm;
pub mod pool;

pub use conv::{Conv2d, InputPath};
pub use flatten::Flatten;
pub use lif::{Lif, LifParams, Surrogate, TimeMode};
pub use linear::Linear;
pub use norm::BatchNorm;
pub use pool::AvgPool;

use crate::optim::Update;
use crate::tensor::{Dims, Tensor};

/// A trainable parameter and its accumulated gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Name within its layer (`weight`, `bias`, `gain`, ...).
    pub name: &'static str,
    /// Values.
    pub value: Vec<f32>,
    /// Gradient accumulated since the last `zero_grad` or `release_grad`; empty until a
    /// backward pass allocates it (an empty gradient reads as zeros).
    pub grad: Vec<f32>,
}

impl Param {
    /// A parameter with zero gradient (allocated by the first backward pass).
    pub fn new(name: &'static str, value: Vec<f32>) -> Self {
        Self {
            name,
            value,
            grad: Vec::new(),
        }
    }
    /// Allocates a zero gradient if there is none (backward passes call this first), from
    /// the buffer pool: STDL allocates and frees every stage's gradients at every step.
    pub fn ensure_grad(&mut self) {
        if self.grad.len() != self.value.len() {
            crate::pool::give(std::mem::take(&mut self.grad));
            self.grad = crate::pool::zeros(self.value.len());
        }
    }
    /// Makes the gradient exist, like [`Param::ensure_grad`], but without zeroing a new one:
    /// returns `true` when it was just taken from the pool, its contents unspecified, and
    /// the caller then writes every value instead of adding to it (one pass over the
    /// gradient fewer per step, where a layer writes its whole gradient at once).
    pub fn grad_to_overwrite(&mut self) -> bool {
        if self.grad.len() == self.value.len() {
            return false;
        }
        crate::pool::give(std::mem::take(&mut self.grad));
        self.grad = crate::pool::take(self.value.len());
        true
    }
    /// Zeroes the gradient, keeping its memory (BPTT: one update per sequence).
    pub fn zero_grad(&mut self) {
        self.grad.iter_mut().for_each(|g| *g = 0.0);
    }
    /// Frees the gradient (STDL: a stage's gradients live only from its backward pass to its
    /// update, so the stages' gradients are never resident together).
    pub fn release_grad(&mut self) {
        crate::pool::give(std::mem::take(&mut self.grad));
    }
}

/// Applies one optimiser step's `update` to each parameter with the next of `states`;
/// whether every value is still finite. A parameter no backward pass reached has no
/// gradient yet: it reads as zeros.
pub(crate) fn update_params<'a>(
    params: Vec<&mut Param>,
    update: &Update,
    states: &mut impl Iterator<Item = (&'a mut [f32], &'a mut [f32])>,
) -> bool {
    let mut finite = true;
    for p in params {
        let (m, v) = states.next().expect("optimiser state of every parameter");
        p.ensure_grad();
        finite &= update.apply(&mut p.value, &p.grad, m, v);
    }
    finite
}

/// Bytes a layer needs during training, for the memory model of STDL's auxiliary-network
/// selection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerMemory {
    /// Kept from forward to backward, per time step.
    pub kept_per_step: usize,
    /// Persistent state: membrane potentials; a convolution with `accumulate` keeps its
    /// effective weights and summed gradient between updates.
    pub state: usize,
    /// Pooled buffers alive only inside one call, on one thread (partial weight gradients,
    /// effective weights).
    pub workspace: usize,
    /// The per-thread scratch one call needs ([`crate::workspace`]): a thread keeps one, as
    /// large as the largest any layer needs, so a network counts the largest, once.
    pub scratch: usize,
    /// What each worker thread beyond the first adds to `workspace` (its own im2col or
    /// scatter buffer, and a partial weight gradient where the batch is split). Kept apart
    /// so that the plan, which is chosen from the other figures, is the same on any machine.
    pub workspace_per_thread: usize,
    /// The output tensor.
    pub output: usize,
    /// Parameters.
    pub params: usize,
}

/// A layer of a spiking network.
#[derive(Clone, Debug)]
pub enum Layer {
    /// 2-D convolution (optionally scaled weight standardisation).
    Conv(Conv2d),
    /// Fully connected.
    Linear(Linear),
    /// Average pooling (global when the kernel covers the input).
    Pool(AvgPool),
    /// Leaky integrate-and-fire neurons.
    Lif(Lif),
    /// Batch normalisation.
    BatchNorm(BatchNorm),
    /// Reshape `C × H × W` to `C·H·W` features (no data movement).
    Flatten(Flatten),
}

/// What every layer does, implemented in the layer's own file; [`Layer`] dispatches to it.
/// A new layer is a file with a type that implements this, one variant of [`Layer`], and one
/// line in the dispatch below (the enum keeps dispatch static: every call in a step is a
/// `match`, which the compiler inlines, where a `dyn` call could not be).
pub trait LayerOps {
    /// Forward pass; in training mode, keeps what backward needs.
    fn forward(&mut self, x: Tensor, train: bool) -> Tensor;
    /// Backward pass for the most recent training-mode forward; accumulates parameter
    /// gradients and returns the gradient of the input.
    fn backward(&mut self, dy: Tensor) -> Tensor;
    /// Trainable parameters (none by default).
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }
    /// Trainable parameters, read-only (none by default).
    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }
    /// Values that are not trained but must be saved with the weights, by name: batch
    /// normalisation's running statistics (none by default).
    fn buffers(&self) -> Vec<(&'static str, &Vec<f32>)> {
        Vec::new()
    }
    /// The same values, to load them.
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut Vec<f32>)> {
        Vec::new()
    }
    /// Clears state and caches: a new sequence (nothing to clear by default).
    fn reset(&mut self) {}
    /// Input shape per sample.
    fn in_dims(&self) -> Dims;
    /// Output shape per sample.
    fn out_dims(&self) -> Dims;
    /// Short description for plans and logs.
    fn describe(&self) -> String;
    /// The layer's own part of [`Layer::memory`] for a batch of `b` (`m` holds the output
    /// and the parameters already; nothing more by default).
    fn memory(&self, _b: usize, _m: &mut LayerMemory) {}
    /// Number of forward caches currently kept (none by default).
    fn kept(&self) -> usize {
        0
    }
}

/// Calls `$e` with `$l` bound to the layer inside `$self`, whatever its kind.
macro_rules! dispatch {
    ($self:expr, $l:ident => $e:expr) => {
        match $self {
            Layer::Conv($l) => $e,
            Layer::Linear($l) => $e,
            Layer::Pool($l) => $e,
            Layer::Lif($l) => $e,
            Layer::BatchNorm($l) => $e,
            Layer::Flatten($l) => $e,
        }
    };
}

impl Layer {
    /// Forward pass; in training mode, keeps what backward needs.
    pub fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        dispatch!(self, l => LayerOps::forward(l, x, train))
    }

    /// Backward pass for the most recent training-mode forward; accumulates parameter
    /// gradients and returns the gradient of the input.
    pub fn backward(&mut self, dy: Tensor) -> Tensor {
        dispatch!(self, l => LayerOps::backward(l, dy))
    }

    /// Trainable parameters.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        dispatch!(self, l => LayerOps::params_mut(l))
    }

    /// Trainable parameters, read-only.
    pub fn params(&self) -> Vec<&Param> {
        dispatch!(self, l => LayerOps::params(l))
    }

    /// Frees the gradients, unused ([`Conv2d::release_grads`]).
    pub fn release_grads(&mut self) {
        match self {
            Layer::Conv(c) => c.release_grads(),
            Layer::Linear(l) => l.release_grads(),
            l => l.params_mut().into_iter().for_each(Param::release_grad),
        }
    }

    /// One optimiser step's update of the parameters, each with the next of `states` (in
    /// the order of [`Layer::params_mut`]); whether every value is still finite. A
    /// convolution fuses its standardisation's backward with the update
    /// ([`Conv2d::update`]), a linear layer its deferred gradient ([`Linear::update`]);
    /// other layers apply it to their gradients.
    ///
    /// # Panics
    /// When `states` runs out before the parameters do.
    pub fn update<'a>(
        &mut self,
        update: &Update,
        states: &mut impl Iterator<Item = (&'a mut [f32], &'a mut [f32])>,
    ) -> bool {
        match self {
            Layer::Conv(c) => c.update(update, states),
            Layer::Linear(l) => l.update(update, states),
            l => update_params(l.params_mut(), update, states),
        }
    }

    /// Saved values that are not trained ([`LayerOps::buffers`]).
    pub fn buffers(&self) -> Vec<(&'static str, &Vec<f32>)> {
        dispatch!(self, l => LayerOps::buffers(l))
    }

    /// The same values, to load them.
    pub fn buffers_mut(&mut self) -> Vec<(&'static str, &mut Vec<f32>)> {
        dispatch!(self, l => LayerOps::buffers_mut(l))
    }

    /// Clears state and caches (new sequence).
    pub fn reset(&mut self) {
        dispatch!(self, l => LayerOps::reset(l))
    }

    /// Input shape per sample.
    pub fn in_dims(&self) -> Dims {
        dispatch!(self, l => LayerOps::in_dims(l))
    }

    /// Output shape per sample.
    pub fn out_dims(&self) -> Dims {
        dispatch!(self, l => LayerOps::out_dims(l))
    }

    /// Short description for plans and logs.
    pub fn describe(&self) -> String {
        dispatch!(self, l => LayerOps::describe(l))
    }

    /// Memory this layer needs for a batch of `b` during training.
    pub fn memory(&self, b: usize) -> LayerMemory {
        let out = pooled_bytes(b * self.out_dims().len());
        let params: usize = self.params().iter().map(|p| p.value.len() * 4).sum();
        let mut m = LayerMemory {
            output: out,
            params,
            ..Default::default()
        };
        dispatch!(self, l => LayerOps::memory(l, b, &mut m));
        m
    }

    /// Number of forward caches currently kept.
    pub fn kept(&self) -> usize {
        dispatch!(self, l => LayerOps::kept(l))
    }
}

/// Bytes of a pooled buffer of `n` values: its size class ([`crate::pool`]).
pub(crate) fn pooled_bytes(n: usize) -> usize {
    crate::pool::class_of(n) * 4
}

/// Deterministic initialisation: uniform in `[-bound, bound]` from a seeded generator.
pub(crate) fn uniform(n: usize, bound: f32, rng: &mut crate::Rng) -> Vec<f32> {
    (0..n).map(|_| (rng.next_f32() * 2.0 - 1.0) * bound).collect()
}
