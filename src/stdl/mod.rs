//! STDL: subnetworks at the cuts, auxiliary networks chosen under a memory budget, and the
//! online step that updates every subnetwork right after every time step.

pub mod pipeline;
pub mod plan;
pub mod profile;
pub mod stage;
pub mod strategy;

use std::collections::BTreeMap;

use stdl_models::network::NetworkSpec;
use stdl_models::optim::OptimConfig;
use stdl_models::{Dims, Layer, Rng, Tensor};

pub use pipeline::{Pipeline, StageOutput, PIPELINE_QUEUE};
pub use plan::{build_stage_layers, plan, Plan, SubnetPlan};
pub use profile::{LayerRow, SpikeCount, StageProfile, StageTiming};
pub use stage::{Stage, StepContext};
pub use strategy::{StageStrategy, StrategyConfig, StrategyKind};

/// Every stage's [`StageProfile`], in order.
pub fn profile(stages: &[Stage]) -> Vec<StageProfile> {
    stages.iter().enumerate().map(|(k, s)| s.profile(k)).collect()
}

/// A network trained with STDL.
#[derive(Clone, Debug)]
pub struct StdlModel {
    /// The checked preset.
    pub spec: NetworkSpec,
    /// The auxiliary-network plan it was built from.
    pub plan: Plan,
    /// One stage per subnetwork.
    pub stages: Vec<Stage>,
    /// Labelled steps per update (1: every step).
    pub update_every: usize,
    /// Train batches with the subnetworks as pipeline stages on worker threads (same
    /// numbers; faster on several cores; the stages' step memory adds up).
    pub pipeline: bool,
}

impl StdlModel {
    /// Builds every stage from a plan, seeded.
    pub fn new(
        spec: NetworkSpec,
        plan: Plan,
        seed: u64,
        opt: OptimConfig,
        update_every: usize,
    ) -> crate::error::Result<Self> {
        let mut rng = Rng::new(seed);
        let mut stages = Vec::new();
        for sp in &plan.subnets {
            // As planned: a subnetwork's first convolution computes no input gradient.
            let (body, head) = plan::build_stage_layers(&spec, sp, &mut rng)?;
            stages.push(Stage::new(body, head, !sp.is_last, opt, update_every));
        }
        Ok(Self {
            spec,
            plan,
            stages,
            update_every: update_every.max(1),
            pipeline: false,
        })
    }

    /// Runs one training step of every stage on an all-zero batch of `batch` through each
    /// convolution path in turn (dense, then sparse), without any update, then clears
    /// membranes, caches and gradients and restores everything it touched (paths, batch-norm
    /// statistics). Afterwards the buffers of both paths are in the buffer pool, and the GEMM
    /// crate's packing buffers have been through the heap once: memory is at its plateau from
    /// the first step, instead of rising the first time a layer's input density moves it onto
    /// its other path, 10,000 or more steps in (README, "Streaming").
    ///
    /// With `pipelined` (the stages will run on worker threads, [`crate::stdl::Pipeline`]
    /// with queues of `queue` steps), the pool also reserves what every stage needs at its peak
    /// at the same time, plus the steps queued between stages: however the stages' steps come
    /// to overlap, none needs a new buffer (`tests/steady_heap.rs`).
    pub fn warm_up(&mut self, batch: usize, pipelined: Option<usize>) {
        use stdl_models::layers::InputPath;
        // Overlapping stages keep to their own buffer classes ([`stdl_models::pool::Fit`]);
        // in sequence, the caller's fit holds.
        let _fit = pipelined.map(|_| stdl_models::pool::FitScope::enter(stdl_models::pool::Fit::OWN_CLASS));
        let p = &self.spec.preset;
        let dims = Dims::new(p.input[0], p.input[1], p.input[2]);
        let labels = vec![0; batch];
        let saved: Vec<Vec<Layer>> = self
            .stages
            .iter()
            .map(|st| {
                st.body
                    .layers
                    .iter()
                    .chain(&st.head.layers)
                    .filter(|l| keeps_state(l))
                    .cloned()
                    .collect()
            })
            .collect();
        // Every worker thread's scratch (and this thread's: a batch too small to split runs
        // on the calling thread) as large as the largest workspace of any layer.
        let scratch = self.stages.iter().map(Stage::workspace_len).max().unwrap_or(0);
        // And the GEMM crate's packing space on each (stdl_models::gemm::prime_packing).
        let prime = || {
            stdl_models::workspace::reserve(scratch);
            stdl_models::gemm::prime_packing();
        };
        rayon::broadcast(|_| prime());
        prime();
        // Per stage, its peak use of each buffer class over both paths of the input and
        // both of the output gradient, in every pairing (a sparse input with a dense output
        // gradient holds the most weight-sized buffers at once: the weight gradient's
        // transposed blocks beside the effective weights the input gradient reads).
        let mut peaks: Vec<BTreeMap<usize, usize>> = vec![BTreeMap::new(); self.stages.len()];
        let pairs = [InputPath::Dense, InputPath::Sparse]
            .map(|p| [InputPath::Dense, InputPath::Sparse].map(|g| (p, g)));
        for (path, grad_path) in pairs.into_iter().flatten() {
            let mut x = Tensor::zeros(batch, dims);
            let n = self.stages.len();
            for (k, (st, peak)) in self.stages.iter_mut().zip(&mut peaks).enumerate() {
                // Both ways of using the input and of using the output gradient.
                let originals: Vec<(InputPath, InputPath)> = convs_mut(st)
                    .map(|c| {
                        (
                            std::mem::replace(&mut c.path, path),
                            std::mem::replace(&mut c.grad_path, grad_path),
                        )
                    })
                    .collect();
                let x_len = x.data.len();
                let ((h, logits, _), used) = stdl_models::pool::measure(|| st.step(x, Some(&labels), 1.0));
                for (class, n) in used {
                    let e = peak.entry(class).or_default();
                    *e = (*e).max(n);
                }
                for (c, (path, grad_path)) in convs_mut(st).zip(originals) {
                    (c.path, c.grad_path) = (path, grad_path);
                }
                st.body.release_grads();
                st.head.release_grads();
                // Queued into each stage and out of the last: up to `queue` steps waiting and
                // one being handed over.
                if let Some(queue) = pipelined {
                    *peak.entry(stdl_models::pool::class_of(x_len)).or_default() += queue + 1;
                    if k + 1 == n {
                        *peak
                            .entry(stdl_models::pool::class_of(logits.data.len()))
                            .or_default() += queue + 1;
                    }
                }
                x = h;
            }
            self.reset_state();
        }
        if pipelined.is_some() {
            let mut total = BTreeMap::new();
            for (class, n) in peaks.into_iter().flatten() {
                *total.entry(class).or_default() += n;
            }
            stdl_models::pool::reserve(&total);
        }
        // Batch normalisation updated its running statistics in those steps: put them back.
        for (st, saved) in self.stages.iter_mut().zip(saved) {
            let mut saved = saved.into_iter();
            for l in st.body.layers.iter_mut().chain(st.head.layers.iter_mut()) {
                if keeps_state(l) {
                    *l = saved.next().expect("one saved copy per batch-norm layer");
                }
            }
        }
    }

    /// Sets every subnetwork's learning rate.
    pub fn set_lr(&mut self, lr: f32) {
        self.stages.iter_mut().for_each(|s| s.opt.cfg.lr = lr);
    }

    /// The learning rate (the first subnetwork's; [`StdlModel::set_lr`] sets them all).
    pub fn lr(&self) -> f32 {
        self.stages.first().map_or(0.0, |s| s.opt.cfg.lr)
    }

    /// Clears every membrane and cache (a new sample or stream).
    pub fn reset_state(&mut self) {
        for s in &mut self.stages {
            s.reset();
        }
    }

    /// One time step through every stage in sequence. With labels, every stage learns
    /// from its own head's loss (scaled by 1/N) and, every N-th labelled step, updates.
    /// Returns the readout logits and the per-stage losses.
    pub fn step(&mut self, x: Tensor, labels: Option<&[usize]>) -> (Tensor, Vec<f32>) {
        let mut x = x;
        let mut losses = Vec::new();
        let mut logits = None;
        let last = self.stages.len() - 1;
        for (k, st) in self.stages.iter_mut().enumerate() {
            let (h, l, loss) = st.advance(x, labels, k == last);
            losses.extend(loss);
            x = h;
            if k == last {
                logits = l;
            }
        }
        (logits.expect("the last stage returns logits"), losses)
    }

    /// [`StdlModel::step`] as a step of the sequence `ctx` names ([`StepContext`]).
    pub fn step_in(&mut self, ctx: StepContext, x: Tensor, labels: Option<&[usize]>) -> (Tensor, Vec<f32>) {
        for s in &mut self.stages {
            s.set_context(ctx);
        }
        self.step(x, labels)
    }

    /// Every stage uses `cfg`'s strategy from now on.
    pub fn set_strategy(&mut self, cfg: &StrategyConfig) {
        for s in &mut self.stages {
            s.set_strategy(cfg);
        }
    }

    /// Named parameters (`s{k}.body.{i}.{name}`, `s{k}.head.{i}.{name}`), for checkpoints.
    pub fn named_params(&self) -> BTreeMap<String, Vec<f32>> {
        let mut out = BTreeMap::new();
        for (k, st) in self.stages.iter().enumerate() {
            st.save_params(k, &mut out);
        }
        out
    }

    /// Loads parameters saved by [`StdlModel::named_params`].
    pub fn load_params(&mut self, named: &BTreeMap<String, Vec<f32>>) -> crate::error::Result<()> {
        for (k, st) in self.stages.iter_mut().enumerate() {
            st.load_params(k, named)?;
        }
        Ok(())
    }

    /// Optimiser state, named, for checkpoints (`s{k}.m{j}`, `s{k}.v{j}`, `s{k}.t`, `s{k}.steps`).
    pub fn optimizer_state(&self) -> BTreeMap<String, Vec<f32>> {
        let mut out = BTreeMap::new();
        for (k, st) in self.stages.iter().enumerate() {
            st.save_optimizer(k, &mut out);
        }
        out
    }

    /// Restores [`StdlModel::optimizer_state`].
    pub fn load_optimizer_state(&mut self, named: &BTreeMap<String, Vec<f32>>) {
        for (k, st) in self.stages.iter_mut().enumerate() {
            st.load_optimizer(k, named);
        }
    }
}

/// Layers whose training-mode forward pass changes more than caches: batch normalisation's
/// running statistics.
fn keeps_state(l: &Layer) -> bool {
    matches!(l, Layer::BatchNorm(_))
}

/// The convolutions of a stage, body then head.
fn convs_mut(st: &mut Stage) -> impl Iterator<Item = &mut stdl_models::layers::Conv2d> {
    st.body
        .layers
        .iter_mut()
        .chain(st.head.layers.iter_mut())
        .filter_map(|l| match l {
            Layer::Conv(c) => Some(c),
            _ => None,
        })
}
