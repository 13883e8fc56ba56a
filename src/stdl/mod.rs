//! STDL: subnetworks at the cuts, auxiliary networks chosen under a memory budget, and the
//! online step that updates every subnetwork right after every time step.

pub mod pipeline;
pub mod plan;
pub mod strategy;

use std::collections::BTreeMap;

use stdl_models::loss::cross_entropy;
use stdl_models::network::{NetworkSpec, Sequential};
use stdl_models::optim::{OptimConfig, Optimizer};
use stdl_models::{Dims, Layer, Rng, Tensor};

pub use pipeline::{Pipeline, StageOutput, PIPELINE_QUEUE};
pub use plan::{build_stage_layers, plan, Plan, SubnetPlan};
pub use strategy::{StageStrategy, StrategyConfig, StrategyKind};

/// Which sequence a time step belongs to. The live stream is one sequence; a replayed
/// segment or a probe is another, run between two live steps. A stage keeps the live
/// membranes aside while the other runs and puts them back, bit for bit, at the next live
/// step: the other sequence's state never leaks into the live one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StepContext {
    /// A step of the live sequence.
    #[default]
    Live,
    /// The first step of another sequence (from zero membranes).
    SideStart,
    /// A further step of the sequence `SideStart` began.
    Side,
}

/// One subnetwork with its head (auxiliary network, or the readout for the last) and its
/// own optimiser.
#[derive(Clone, Debug)]
pub struct Stage {
    /// The subnetwork's layers.
    pub body: Sequential,
    /// Auxiliary network (or the readout).
    pub head: Sequential,
    /// Whether `head` is an auxiliary network (discarded at inference).
    pub aux: bool,
    /// Optimiser over `body` and `head`.
    pub opt: Optimizer,
    /// Labelled steps per update (1: every step).
    pub update_every: usize,
    /// Labelled steps seen.
    pub labelled_steps: u64,
    /// Seconds and calls of the optimiser updates, and seconds a pipeline thread running
    /// this stage waited for its input and for the next stage to take its output
    /// ([`StageProfile`]).
    pub timing: StageTiming,
    /// Continual-learning strategy state (EWC, LwF), if any.
    pub strategy: Option<StageStrategy>,
    /// Every step takes at least this long (sleeping out the rest): a learner slowed on
    /// purpose, so that tests of the overload policies do not depend on the machine's speed.
    pub min_step: Option<std::time::Duration>,
    /// The live membranes, kept here while another sequence runs ([`StepContext`]).
    side: Vec<Vec<f32>>,
    in_side: bool,
}

/// Clock readings of a stage outside its layers (always kept: a few clock reads per step).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTiming {
    /// Optimiser updates.
    pub updates: u64,
    /// Seconds in them.
    pub update_s: f64,
    /// Steps run.
    pub steps: u64,
    /// Seconds in [`Stage::advance`] (layers, loss and update).
    pub advance_s: f64,
    /// CPU seconds of the calling thread in [`Stage::advance`]: below `advance_s` when the
    /// thread waited for a core (more runnable threads than cores) or for workers.
    pub advance_cpu_s: f64,
    /// Pipeline: seconds waiting for the previous stage's output.
    pub wait_input_s: f64,
    /// Pipeline: seconds waiting for the next stage to take this one's output.
    pub wait_output_s: f64,
}

/// Every stage's [`StageProfile`], in order.
pub fn profile(stages: &[Stage]) -> Vec<StageProfile> {
    stages.iter().enumerate().map(|(k, s)| s.profile(k)).collect()
}

/// CPU seconds the calling thread has used (Linux with glibc: `CLOCK_THREAD_CPUTIME_ID`; 0
/// elsewhere).
fn thread_cpu_s() -> f64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec, which lives on this stack frame.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        }
    }
    0.0
}

/// Spikes counted in one LIF layer of a stage (on one forward call in
/// [`stdl_models::layers::lif::SPIKE_SAMPLE_EVERY`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpikeCount {
    /// The stage (subnetwork).
    pub stage: usize,
    /// `body` or `head`.
    pub part: &'static str,
    /// Layer index within the part.
    pub layer: usize,
    /// Spikes counted.
    pub spikes: u64,
    /// Neuron updates counted.
    pub neurons: u64,
}

impl Stage {
    /// The spike counts of every LIF layer of this stage (`k`: its index).
    pub fn spike_counts(&self, k: usize) -> Vec<SpikeCount> {
        let part = |name: &'static str, seq: &Sequential| {
            seq.spike_counts()
                .into_iter()
                .map(move |(layer, spikes, neurons)| SpikeCount {
                    stage: k,
                    part: name,
                    layer,
                    spikes,
                    neurons,
                })
        };
        part("body", &self.body).chain(part("head", &self.head)).collect()
    }
}

/// Where one stage's steps went, over the steps profiled.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StageProfile {
    /// Subnetwork index.
    pub stage: usize,
    /// Steps run.
    pub steps: u64,
    /// Seconds per step in [`Stage::advance`].
    pub ms_per_step: f64,
    /// CPU time of the thread running the stage, per step (pipeline stages run their layers
    /// on that one thread: the stage's share of the cores).
    pub cpu_ms_per_step: f64,
    /// Optimiser: seconds per step.
    pub update_ms_per_step: f64,
    /// Pipeline: waiting for input, per step.
    pub wait_input_ms_per_step: f64,
    /// Pipeline: waiting for the next stage, per step.
    pub wait_output_ms_per_step: f64,
    /// The subnetwork's layers, then its head's (auxiliary network or readout).
    pub layers: Vec<LayerRow>,
}

/// One layer's row of a [`StageProfile`].
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LayerRow {
    /// `body` or `head`.
    pub part: &'static str,
    /// The layer.
    pub layer: String,
    /// Fraction of non-zero input values.
    pub input_density: f64,
    /// Fraction of non-zero values in the output gradient the layer's backward receives.
    pub grad_density: f64,
    /// Forward, per step.
    pub forward_ms: f64,
    /// Backward, per step (all of it).
    pub backward_ms: f64,
    /// Convolution: the weight gradient's part of `backward_ms`.
    pub weight_grad_ms: f64,
    /// Convolution: the input gradient's part of `backward_ms`.
    pub input_grad_ms: f64,
    /// Dense-equivalent GFLOP/s over forward and backward (0 without a product).
    pub dense_gflops: f64,
}

impl Stage {
    /// A stage of `body` and its `head` (an auxiliary network when `aux`), with its own
    /// optimiser, updating every `update_every` labelled steps.
    pub fn new(body: Sequential, head: Sequential, aux: bool, opt: OptimConfig, update_every: usize) -> Self {
        Self {
            body,
            head,
            aux,
            opt: Optimizer::new(opt),
            update_every: update_every.max(1),
            labelled_steps: 0,
            timing: StageTiming::default(),
            strategy: None,
            min_step: None,
            side: Vec::new(),
            in_side: false,
        }
    }

    /// Clears every membrane (the snapshot's too) and cache, and drops any live state set
    /// aside: a new sample or stream.
    pub fn reset(&mut self) {
        self.body.reset();
        self.head.reset();
        if let Some(StageStrategy::Lwf(l)) = self.strategy.as_mut() {
            if let Some(t) = l.teacher_mut() {
                t.0.reset();
                t.1.reset();
            }
        }
        self.side.iter_mut().for_each(Vec::clear);
        self.in_side = false;
    }

    /// Uses `cfg`'s strategy from now on (state starts empty).
    pub fn set_strategy(&mut self, cfg: &StrategyConfig) {
        self.strategy = StageStrategy::new(cfg);
    }

    /// Every LIF layer of the stage, its strategy's snapshot included, in a fixed order.
    fn lifs_mut(&mut self) -> impl Iterator<Item = &mut stdl_models::layers::Lif> {
        let teacher = match self.strategy.as_mut() {
            Some(StageStrategy::Lwf(l)) => l.teacher_mut(),
            _ => None,
        };
        let extra = teacher
            .into_iter()
            .flat_map(|t| t.0.layers.iter_mut().chain(t.1.layers.iter_mut()));
        self.body
            .layers
            .iter_mut()
            .chain(self.head.layers.iter_mut())
            .chain(extra)
            .filter_map(|l| match l {
                Layer::Lif(l) => Some(l),
                _ => None,
            })
    }

    /// Moves to the sequence a step belongs to ([`StepContext`]): the live membranes are set
    /// aside at the first step of another sequence and restored at the next live step. Call
    /// between steps. After the first switch no allocation is made (the aside buffers are
    /// reused).
    pub fn set_context(&mut self, ctx: StepContext) {
        match (ctx, self.in_side) {
            (StepContext::Live, false) | (StepContext::Side, true) => {}
            (StepContext::Live, true) => {
                let mut side = std::mem::take(&mut self.side);
                for (l, slot) in self.lifs_mut().zip(side.iter_mut()) {
                    l.swap_state(slot);
                    // The other sequence's state, emptied (its capacity kept for next time).
                    slot.clear();
                }
                self.side = side;
                self.in_side = false;
            }
            (StepContext::SideStart | StepContext::Side, false) => {
                let mut side = std::mem::take(&mut self.side);
                for (n, l) in self.lifs_mut().enumerate() {
                    if side.len() == n {
                        side.push(Vec::new());
                    }
                    l.swap_state(&mut side[n]);
                }
                self.side = side;
                self.in_side = true;
            }
            (StepContext::SideStart, true) => {
                // A new side sequence: its membranes from zero, the live ones still aside.
                for l in self.lifs_mut() {
                    l.reset();
                }
            }
        }
    }

    /// Runs one time step: forward, and with labels, the local loss and its backward.
    /// Returns the stage's spikes (detached: the next stage's input), its head logits and
    /// the loss.
    pub fn step(
        &mut self,
        x: Tensor,
        labels: Option<&[usize]>,
        loss_scale: f32,
    ) -> (Tensor, Tensor, Option<f32>) {
        let train = labels.is_some();
        // LwF: the snapshot's answer for the same input, before the stage moves it.
        let old = match (&mut self.strategy, labels) {
            (Some(StageStrategy::Lwf(l)), Some(_)) => l.teacher_logits(&x),
            _ => None,
        };
        let h = self.body.forward(x, train);
        let logits = self.head.forward(h.clone(), train);
        let loss = labels.map(|y| {
            let (mut l, mut dl) = cross_entropy(&logits, y, loss_scale);
            if let (Some(old), Some(StageStrategy::Lwf(lwf))) = (&old, &self.strategy) {
                l += lwf.distill(&logits, old, &mut dl, loss_scale);
            }
            let dh = self.head.backward(dl);
            self.body.backward(dh);
            l
        });
        (h, logits, loss)
    }

    /// One time step of this stage as the online trainer runs it: without labels, a
    /// non-last stage only runs its body (auxiliary heads are for learning); with labels it
    /// learns from its head's loss (scaled by `1/update_every`) and updates every
    /// `update_every`-th labelled step. Returns the spikes for the next stage, the head's
    /// logits (always for the last stage) and the loss. Running the stages in sequence or as
    /// pipeline threads calls exactly this, so both give the same numbers.
    pub fn advance(
        &mut self,
        x: Tensor,
        labels: Option<&[usize]>,
        is_last: bool,
    ) -> (Tensor, Option<Tensor>, Option<f32>) {
        let (t, cpu) = (std::time::Instant::now(), thread_cpu_s());
        let out = self.advance_untimed(x, labels, is_last);
        if let Some(min) = self.min_step {
            std::thread::sleep(min.saturating_sub(t.elapsed()));
        }
        self.timing.steps += 1;
        self.timing.advance_s += t.elapsed().as_secs_f64();
        self.timing.advance_cpu_s += thread_cpu_s() - cpu;
        out
    }

    fn advance_untimed(
        &mut self,
        x: Tensor,
        labels: Option<&[usize]>,
        is_last: bool,
    ) -> (Tensor, Option<Tensor>, Option<f32>) {
        if labels.is_none() && !is_last {
            return (self.body.forward(x, false), None, None);
        }
        let scale = 1.0 / self.update_every.max(1) as f32;
        let (h, logits, loss) = self.step(x, labels, scale);
        if labels.is_some() {
            self.labelled_steps += 1;
            if self.labelled_steps % self.update_every.max(1) as u64 == 0 {
                self.update();
            }
        }
        // Diverged weights read as a NaN loss, so that whoever runs the stage stops.
        (
            h,
            Some(logits),
            if self.opt.diverged { Some(f32::NAN) } else { loss },
        )
    }

    /// The largest per-thread workspace of its layers (values; [`stdl_models::workspace`]).
    pub fn workspace_len(&self) -> usize {
        self.body
            .layers
            .iter()
            .chain(&self.head.layers)
            .filter_map(|l| match l {
                Layer::Conv(c) => Some(c.workspace_len()),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Adds this stage's parameters as `s{k}.body.{i}.{name}` / `s{k}.head.{i}.{name}`.
    pub fn save_params(&self, k: usize, out: &mut BTreeMap<String, Vec<f32>>) {
        for (part, seq) in [("body", &self.body), ("head", &self.head)] {
            for (i, l) in seq.layers.iter().enumerate() {
                for p in l.params() {
                    out.insert(format!("s{k}.{part}.{i}.{}", p.name), p.value.clone());
                }
            }
        }
    }

    /// Loads what [`Stage::save_params`] wrote.
    pub fn load_params(&mut self, k: usize, named: &BTreeMap<String, Vec<f32>>) -> crate::error::Result<()> {
        for (part, seq) in [("body", &mut self.body), ("head", &mut self.head)] {
            for (i, l) in seq.layers.iter_mut().enumerate() {
                for p in l.params_mut() {
                    let key = format!("s{k}.{part}.{i}.{}", p.name);
                    let v = named
                        .get(&key)
                        .ok_or_else(|| crate::error::Error::msg(format!("checkpoint lacks {key}")))?;
                    crate::error::ensure!(
                        v.len() == p.value.len(),
                        "{key}: {} values, expected {}",
                        v.len(),
                        p.value.len()
                    );
                    p.value.copy_from_slice(v);
                }
            }
        }
        Ok(())
    }

    /// Adds this stage's optimiser state and step count (`s{k}.m{j}`, `s{k}.v{j}`, `s{k}.t`,
    /// `s{k}.steps`).
    pub fn save_optimizer(&self, k: usize, out: &mut BTreeMap<String, Vec<f32>>) {
        for (j, m) in self.opt.m.iter().enumerate() {
            out.insert(format!("s{k}.m{j}"), m.clone());
        }
        for (j, v) in self.opt.v.iter().enumerate() {
            out.insert(format!("s{k}.v{j}"), v.clone());
        }
        out.insert(format!("s{k}.t"), vec![self.opt.t as f32]);
        out.insert(format!("s{k}.steps"), vec![self.labelled_steps as f32]);
    }

    /// Restores what [`Stage::save_optimizer`] wrote.
    pub fn load_optimizer(&mut self, k: usize, named: &BTreeMap<String, Vec<f32>>) {
        self.opt.m = (0..)
            .map_while(|j| named.get(&format!("s{k}.m{j}")).cloned())
            .collect();
        self.opt.v = (0..)
            .map_while(|j| named.get(&format!("s{k}.v{j}")).cloned())
            .collect();
        self.opt.t = named.get(&format!("s{k}.t")).map_or(0, |v| v[0] as u64);
        self.labelled_steps = named.get(&format!("s{k}.steps")).map_or(0, |v| v[0] as u64);
    }

    /// Optimiser step over body and head, then free the gradients: the next backward pass
    /// allocates them again, so only the stage being updated holds gradients.
    pub fn update(&mut self) {
        let t = std::time::Instant::now();
        let mut ps = self.body.params_mut();
        ps.extend(self.head.params_mut());
        if let Some(StageStrategy::Ewc(e)) = self.strategy.as_mut() {
            e.before_update(&mut ps);
        }
        self.opt.step(&mut ps);
        for p in ps {
            p.release_grad();
        }
        if let Some(StageStrategy::Lwf(l)) = self.strategy.as_mut() {
            l.after_update(&self.body, &self.head);
        }
        self.timing.updates += 1;
        self.timing.update_s += t.elapsed().as_secs_f64();
    }

    /// Starts profiling this stage's layers ([`stdl_models::profile`]) and clears its
    /// timing; `false` stops.
    pub fn set_profiling(&mut self, on: bool) {
        self.body.set_profiling(on);
        self.head.set_profiling(on);
        self.timing = StageTiming::default();
    }

    /// What was collected since [`Stage::set_profiling`], per step.
    pub fn profile(&self, stage: usize) -> StageProfile {
        let t = self.timing;
        let per = |s: f64| 1e3 * s / t.steps.max(1) as f64;
        let mut layers = Vec::new();
        for (part, seq) in [("body", &self.body), ("head", &self.head)] {
            for lp in seq.profile().unwrap_or_default() {
                layers.push(LayerRow {
                    part,
                    input_density: lp.input_density(),
                    grad_density: lp.grad_density(),
                    forward_ms: per(lp.forward_s),
                    backward_ms: per(lp.backward_s),
                    weight_grad_ms: per(lp.weight_grad_s),
                    input_grad_ms: per(lp.input_grad_s),
                    dense_gflops: lp.dense_gflops(),
                    layer: lp.layer,
                });
            }
        }
        StageProfile {
            stage,
            steps: t.steps,
            ms_per_step: per(t.advance_s),
            cpu_ms_per_step: per(t.advance_cpu_s),
            update_ms_per_step: per(t.update_s),
            wait_input_ms_per_step: per(t.wait_input_s),
            wait_output_ms_per_step: per(t.wait_output_s),
            layers,
        }
    }
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
    /// Train batches with the subnetworks as pipeline stages on their own threads (same
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
    /// With `pipelined` (the stages will run on their own threads, [`crate::stdl::Pipeline`]
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
        // Per stage, its peak use of each buffer class over both paths.
        let mut peaks: Vec<BTreeMap<usize, usize>> = vec![BTreeMap::new(); self.stages.len()];
        for path in [InputPath::Dense, InputPath::Sparse] {
            let mut x = Tensor::zeros(batch, dims);
            let n = self.stages.len();
            for (k, (st, peak)) in self.stages.iter_mut().zip(&mut peaks).enumerate() {
                // Both ways of using the input and of using the output gradient.
                let originals: Vec<(InputPath, InputPath)> = convs_mut(st)
                    .map(|c| {
                        (
                            std::mem::replace(&mut c.path, path),
                            std::mem::replace(&mut c.grad_path, path),
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
                for p in st.body.params_mut().into_iter().chain(st.head.params_mut()) {
                    p.release_grad();
                }
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
