//! Layers with explicit forward and backward passes over `f32` buffers.
//!
//! Every layer keeps, per forward call made in training mode, what its backward pass needs,
//! on a stack: `backward` pops the most recent entry. The online (STDL) trainer runs one
//! forward and one backward per time step, so the stack never holds more than one entry and
//! memory is constant in time; the BPTT trainer runs `T` forwards, then `T` backwards in
//! reverse order, so the same layers keep the whole unrolled graph.

pub mod conv;
pub mod lif;
pub mod linear;
pub mod norm;
pub mod pool;

pub use conv::{Conv2d, InputPath};
pub use lif::{Lif, LifParams, Surrogate, TimeMode};
pub use linear::Linear;
pub use norm::BatchNorm;
pub use pool::AvgPool;

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

/// Bytes a layer needs during training, for the memory model of STDL's auxiliary-network
/// selection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerMemory {
    /// Kept from forward to backward, per time step.
    pub kept_per_step: usize,
    /// Persistent state (membrane potentials).
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
    Flatten(Dims),
}

impl Layer {
    /// Forward pass; in training mode, keeps what backward needs.
    pub fn forward(&mut self, x: Tensor, train: bool) -> Tensor {
        match self {
            Layer::Conv(l) => l.forward(x, train),
            Layer::Linear(l) => l.forward(x, train),
            Layer::Pool(l) => l.forward(x),
            Layer::Lif(l) => l.forward(x, train),
            Layer::BatchNorm(l) => l.forward(x, train),
            Layer::Flatten(d) => {
                let n = d.len();
                x.reshaped(Dims::flat(n))
            }
        }
    }

    /// Backward pass for the most recent training-mode forward; accumulates parameter
    /// gradients and returns the gradient of the input.
    pub fn backward(&mut self, dy: Tensor) -> Tensor {
        match self {
            Layer::Conv(l) => l.backward(dy),
            Layer::Linear(l) => l.backward(dy),
            Layer::Pool(l) => l.backward(dy),
            Layer::Lif(l) => l.backward(dy),
            Layer::BatchNorm(l) => l.backward(dy),
            Layer::Flatten(d) => dy.reshaped(*d),
        }
    }

    /// Trainable parameters.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        match self {
            Layer::Conv(l) => l.params_mut(),
            Layer::Linear(l) => vec![&mut l.weight, &mut l.bias],
            Layer::BatchNorm(l) => vec![&mut l.gamma, &mut l.beta],
            _ => Vec::new(),
        }
    }

    /// Trainable parameters, read-only.
    pub fn params(&self) -> Vec<&Param> {
        match self {
            Layer::Conv(l) => l.params(),
            Layer::Linear(l) => vec![&l.weight, &l.bias],
            Layer::BatchNorm(l) => vec![&l.gamma, &l.beta],
            _ => Vec::new(),
        }
    }

    /// Clears neuron state and every kept forward cache (a new sample or stream).
    pub fn reset(&mut self) {
        match self {
            Layer::Conv(l) => l.caches.clear(),
            Layer::Linear(l) => l.caches.clear(),
            Layer::Lif(l) => l.reset(),
            Layer::BatchNorm(l) => l.caches.clear(),
            Layer::Pool(_) | Layer::Flatten(_) => {}
        }
    }

    /// Per-sample input shape.
    pub fn in_dims(&self) -> Dims {
        match self {
            Layer::Conv(l) => l.in_dims,
            Layer::Linear(l) => Dims::flat(l.inputs),
            Layer::Pool(l) => l.in_dims,
            Layer::Lif(l) => l.dims,
            Layer::BatchNorm(l) => l.dims,
            Layer::Flatten(d) => *d,
        }
    }

    /// Per-sample output shape.
    pub fn out_dims(&self) -> Dims {
        match self {
            Layer::Conv(l) => l.out_dims,
            Layer::Linear(l) => Dims::flat(l.outputs),
            Layer::Pool(l) => l.out_dims,
            Layer::Lif(l) => l.dims,
            Layer::BatchNorm(l) => l.dims,
            Layer::Flatten(d) => Dims::flat(d.len()),
        }
    }

    /// Short description for plans and logs.
    pub fn describe(&self) -> String {
        match self {
            Layer::Conv(l) => format!(
                "conv {}→{} k{} s{} p{}{}",
                l.in_dims.c,
                l.out_dims.c,
                l.k,
                l.stride,
                l.pad,
                if l.ws { " ws" } else { "" }
            ),
            Layer::Linear(l) => format!("linear {}→{}", l.inputs, l.outputs),
            Layer::Pool(l) => format!("avgpool {}x{}", l.kh, l.kw),
            Layer::Lif(_) => "lif".into(),
            Layer::BatchNorm(_) => "batchnorm".into(),
            Layer::Flatten(_) => "flatten".into(),
        }
    }

    /// Memory this layer needs for a batch of `b` during training.
    pub fn memory(&self, b: usize) -> LayerMemory {
        let f = 4;
        // Bytes of a pooled buffer of `n` values: its size class (crate::pool).
        let pooled = |n: usize| crate::pool::class_of(n) * f;
        let out = pooled(b * self.out_dims().len());
        let params: usize = self.params().iter().map(|p| p.value.len() * f).sum();
        let mut m = LayerMemory {
            output: out,
            params,
            ..Default::default()
        };
        match self {
            Layer::Conv(l) => {
                m.kept_per_step = pooled(b * l.in_dims.len());
                // Per thread, one scratch buffer for whichever path the layer takes (im2col
                // columns or the sparse accumulator; the larger, since a stream warms up
                // both). The weight gradient: split over channels, itself and (sparse path)
                // its transposed blocks; split over the batch, one partial per chunk in
                // flight besides the running sum, and the transpose. And the effective weights.
                let w = pooled(l.weight.value.len());
                let chunks = b.div_ceil(b.div_ceil(conv::GRAD_CHUNKS).max(1));
                // Weight-gradient buffers with `threads` workers.
                let grads = |threads: usize| {
                    if l.weight.value.len() >= conv::CHANNEL_SPLIT_MIN_WEIGHTS {
                        2
                    } else {
                        let in_flight = threads.min(chunks);
                        (if chunks > in_flight { in_flight + 1 } else { chunks }) + 1
                    }
                };
                // The scratch is one buffer per thread, not pooled: no class rounding.
                m.scratch = l.workspace_len() * f;
                m.workspace = (grads(1) + 1) * w;
                // A second thread adds its scratch only if the batch gives it a sample.
                if b > 1 {
                    m.workspace_per_thread = m.scratch + (grads(2) - grads(1)) * w;
                }
            }
            Layer::Linear(l) => m.kept_per_step = pooled(b * l.inputs),
            Layer::Lif(l) => {
                m.kept_per_step = pooled(b * l.dims.len());
                m.state = b * l.dims.len() * f;
                // Spikes overwrite the input current, gradients the output gradient.
                m.output = 0;
            }
            Layer::BatchNorm(l) => m.kept_per_step = pooled(b * l.dims.len()),
            Layer::Pool(_) | Layer::Flatten(_) => {}
        }
        m
    }

    /// Number of forward caches currently kept.
    pub fn kept(&self) -> usize {
        match self {
            Layer::Conv(l) => l.caches.len(),
            Layer::Linear(l) => l.caches.len(),
            Layer::Lif(l) => l.kept(),
            Layer::BatchNorm(l) => l.caches.len(),
            Layer::Pool(_) | Layer::Flatten(_) => 0,
        }
    }
}

/// Deterministic initialisation: uniform in `[-bound, bound]` from a seeded generator.
pub(crate) fn uniform(n: usize, bound: f32, rng: &mut crate::Rng) -> Vec<f32> {
    (0..n).map(|_| (rng.next_f32() * 2.0 - 1.0) * bound).collect()
}
