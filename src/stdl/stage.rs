//! One subnetwork with its head and optimiser ([`Stage`]): the online step that learns from
//! one time step and updates right after it (STDL.md §3), and the sequences a stage keeps
//! apart ([`StepContext`]).

use std::collections::BTreeMap;

use stdl_models::loss::cross_entropy;
use stdl_models::network::Sequential;
use stdl_models::optim::{OptimConfig, Optimizer};
use stdl_models::{Layer, Tensor};

use super::profile::{thread_cpu_s, LayerRow, SpikeCount, StageProfile, StageTiming};
use super::strategy::{StageStrategy, StrategyConfig};

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
    /// Seconds and calls of the optimiser updates, and seconds its steps waited in a
    /// pipeline's queue ([`super::StageProfile`]).
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

impl Stage {
    /// A stage of `body` and its `head` (an auxiliary network when `aux`), with its own
    /// optimiser, updating every `update_every` labelled steps.
    pub fn new(
        mut body: Sequential,
        mut head: Sequential,
        aux: bool,
        opt: OptimConfig,
        update_every: usize,
    ) -> Self {
        // Between updates the weights stay as they are: their convolutions keep their
        // effective weights and sum their gradients before the standardisation's backward.
        body.set_accumulate(update_every > 1);
        head.set_accumulate(update_every > 1);
        // The standardisation's backward, and a linear layer's gradient at batch 1, run in
        // the optimiser's pass (`Stage::update`).
        body.set_defer_grads(true);
        head.set_defer_grads(true);
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

    /// Adds this stage's parameters and buffers (batch normalisation's running statistics)
    /// as `s{k}.body.{i}.{name}` / `s{k}.head.{i}.{name}`.
    pub fn save_params(&self, k: usize, out: &mut BTreeMap<String, Vec<f32>>) {
        self.body.save_named(&format!("s{k}.body"), out);
        self.head.save_named(&format!("s{k}.head"), out);
    }

    /// Loads what [`Stage::save_params`] wrote.
    ///
    /// # Errors
    /// A missing parameter, or a tensor of the wrong size.
    pub fn load_params(&mut self, k: usize, named: &BTreeMap<String, Vec<f32>>) -> crate::error::Result<()> {
        self.body.load_named(&format!("s{k}.body"), named)?;
        self.head.load_named(&format!("s{k}.head"), named)?;
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
        if let Some(StageStrategy::Ewc(e)) = self.strategy.as_mut() {
            // EWC adds its penalty's gradient to every parameter's first.
            let mut ps = self.body.params_mut();
            ps.extend(self.head.params_mut());
            e.before_update(&mut ps);
            self.opt.step(&mut ps);
            for p in ps {
                p.release_grad();
            }
        } else {
            // Layer by layer, each convolution's standardisation backward fused with the
            // update of its weights.
            let sizes: Vec<usize> = self
                .body
                .params()
                .iter()
                .chain(&self.head.params())
                .map(|p| p.value.len())
                .collect();
            let update = self.opt.begin_step(&sizes);
            let mut states = self.opt.states();
            let body = self.body.update(&update, &mut states);
            let head = self.head.update(&update, &mut states);
            drop(states);
            self.opt.end_step(body && head);
        }
        if let Some(StageStrategy::Lwf(l)) = self.strategy.as_mut() {
            l.after_update(&self.body, &self.head);
        }
        self.timing.updates += 1;
        self.timing.update_s += t.elapsed().as_secs_f64();
    }
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

impl Stage {
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
        let (mut layers, mut counting_s) = (Vec::new(), 0.0);
        for (part, seq) in [("body", &self.body), ("head", &self.head)] {
            for lp in seq.profile().unwrap_or_default() {
                counting_s += lp.counting_s;
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
            queued_ms_per_step: per(t.queued_s),
            counting_ms_per_step: per(counting_s),
            layers,
        }
    }
}
