//! Layers run in order ([`Sequential`]): forward and backward through time steps, parameters,
//! state resets, the per-layer profile, and the memory it keeps.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::layers::{Layer, LayerMemory, Param};
use crate::profile::{dense_flops, since, LayerProfile};
use crate::tensor::{Dims, Tensor};

/// Layers run in order.
#[derive(Clone, Debug, Default)]
pub struct Sequential {
    /// The layers.
    pub layers: Vec<Layer>,
    /// Per layer, when profiling ([`Sequential::set_profiling`]).
    pub profile: Option<Vec<LayerProfile>>,
}

impl Sequential {
    /// Layers run in order.
    pub fn new(layers: Vec<Layer>) -> Self {
        Self {
            layers,
            profile: None,
        }
    }

    /// Starts (or stops) timing every layer's calls and measuring its input density
    /// ([`crate::profile`]); starting clears what was collected.
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(|| {
            self.layers
                .iter()
                .map(|l| LayerProfile {
                    layer: l.describe(),
                    ..Default::default()
                })
                .collect()
        });
        for l in &mut self.layers {
            if let Layer::Conv(c) = l {
                c.grad_seconds = [0.0; 2];
            }
        }
    }

    /// What profiling collected, with each convolution's gradient split.
    pub fn profile(&self) -> Option<Vec<LayerProfile>> {
        let mut p = self.profile.clone()?;
        for (lp, l) in p.iter_mut().zip(&self.layers) {
            if let Layer::Conv(c) = l {
                [lp.weight_grad_s, lp.input_grad_s] = c.grad_seconds;
            }
        }
        Some(p)
    }

    /// Forward through every layer.
    pub fn forward(&mut self, mut x: Tensor, train: bool) -> Tensor {
        let Some(prof) = self.profile.as_mut() else {
            for l in &mut self.layers {
                x = l.forward(x, train);
            }
            return x;
        };
        for (l, p) in self.layers.iter_mut().zip(prof.iter_mut()) {
            let t = Instant::now();
            p.input_nonzero += x.data.iter().filter(|&&v| v != 0.0).count() as u64;
            p.input_values += x.data.len() as u64;
            p.dense_flops_per_forward = dense_flops(l, x.b);
            p.counting_s += since(t);
            let t = Instant::now();
            x = l.forward(x, train);
            p.forward_s += since(t);
            p.forward_calls += 1;
        }
        x
    }
    /// Backward through every layer, in reverse.
    pub fn backward(&mut self, mut dy: Tensor) -> Tensor {
        let Some(prof) = self.profile.as_mut() else {
            for l in self.layers.iter_mut().rev() {
                dy = l.backward(dy);
            }
            return dy;
        };
        for (l, p) in self.layers.iter_mut().zip(prof.iter_mut()).rev() {
            let t = Instant::now();
            p.grad_nonzero += dy.data.iter().filter(|&&v| v != 0.0).count() as u64;
            p.grad_values += dy.data.len() as u64;
            p.counting_s += since(t);
            let t = Instant::now();
            dy = l.backward(dy);
            p.backward_s += since(t);
            p.backward_calls += 1;
        }
        dy
    }
    /// Parameters, in layer order.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.layers.iter_mut().flat_map(|l| l.params_mut()).collect()
    }
    /// One optimiser step's update of every parameter, in layer order, each with the next
    /// of `states` ([`crate::optim::Optimizer::states`]), then frees the gradients; whether
    /// every value is still finite ([`Layer::update`]).
    ///
    /// # Panics
    /// When `states` runs out before the parameters do.
    pub fn update<'a>(
        &mut self,
        update: &crate::optim::Update,
        states: &mut impl Iterator<Item = (&'a mut [f32], &'a mut [f32])>,
    ) -> bool {
        let mut finite = true;
        for l in &mut self.layers {
            finite &= l.update(update, states);
            l.release_grads();
        }
        finite
    }
    /// Frees every gradient, unused (a convolution's deferred one too).
    pub fn release_grads(&mut self) {
        self.layers.iter_mut().for_each(Layer::release_grads);
    }
    /// Parameters, read-only.
    pub fn params(&self) -> Vec<&Param> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }
    /// Sets [`crate::layers::Conv2d::accumulate`] on every convolution: on where several
    /// backward passes run between parameter updates.
    pub fn set_accumulate(&mut self, on: bool) {
        self.convs_mut().for_each(|c| c.accumulate = on);
    }
    /// Sets [`crate::layers::Conv2d::defer_ws_grad`] on every convolution and
    /// [`crate::layers::Linear::defer_grad`] on every linear layer: on where the parameters
    /// are updated through [`Self::update`].
    pub fn set_defer_grads(&mut self, on: bool) {
        for l in &mut self.layers {
            match l {
                Layer::Conv(c) => c.defer_ws_grad = on,
                Layer::Linear(f) => f.defer_grad = on,
                _ => {}
            }
        }
    }
    fn convs_mut(&mut self) -> impl Iterator<Item = &mut crate::layers::Conv2d> {
        self.layers.iter_mut().filter_map(|l| match l {
            Layer::Conv(c) => Some(c),
            _ => None,
        })
    }
    /// Zeroes every gradient.
    pub fn zero_grad(&mut self) {
        for p in self.params_mut() {
            p.zero_grad();
        }
    }
    /// Resets neuron state and caches.
    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(Layer::reset);
    }
    /// `(layer index, spikes, neurons)` of every LIF layer, counted on a sample of its
    /// forward calls ([`crate::layers::lif::Lif::spike_counts`]).
    pub fn spike_counts(&self) -> Vec<(usize, u64, u64)> {
        self.layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match l {
                Layer::Lif(lif) => {
                    let (s, n) = lif.spike_counts();
                    Some((i, s, n))
                }
                _ => None,
            })
            .collect()
    }
    /// Appends the layers of another sequence (not profiled until profiling is set again).
    pub fn extend(&mut self, other: Sequential) {
        self.layers.extend(other.layers);
        self.profile = None;
    }
    /// Output shape (the input shape when empty is unknown: `None`).
    pub fn out_dims(&self) -> Option<Dims> {
        self.layers.last().map(Layer::out_dims)
    }
    /// Number of parameter values.
    pub fn param_count(&self) -> usize {
        self.params().iter().map(|p| p.value.len()).sum()
    }
    /// Training memory of one time step for a batch of `b`, with `optimizer_floats` of
    /// optimiser state per parameter value (Adam 2, SGD 1): kept activations, state,
    /// parameters, gradients and optimiser state, plus the largest transient
    /// (one layer's workspace with its input and output).
    pub fn step_memory(&self, b: usize, optimizer_floats: usize) -> usize {
        Self::step_memory_of(&[self], b, optimizer_floats)
    }

    /// [`Sequential::step_memory`] of several sequences run one after the other (a
    /// subnetwork and its head).
    pub fn step_memory_of(parts: &[&Sequential], b: usize, optimizer_floats: usize) -> usize {
        let (persistent, step) = Self::memory_split(parts, b, optimizer_floats);
        persistent + step
    }

    /// What each worker thread beyond the first adds to [`Sequential::step_memory_of`]: its
    /// workspaces in every layer (they stay pooled between steps, like the first thread's).
    pub fn workspace_per_thread_of(parts: &[&Sequential], b: usize) -> usize {
        let mems: Vec<LayerMemory> = parts
            .iter()
            .flat_map(|s| s.layers.iter().map(|l| l.memory(b)))
            .collect();
        // Each thread's scratch is the largest one layer needs; the rest adds up.
        let scratch = mems.iter().map(|m| m.scratch).max().unwrap_or(0);
        mems.iter()
            .map(|m| m.workspace_per_thread.saturating_sub(m.scratch))
            .sum::<usize>()
            + if mems.iter().any(|m| m.workspace_per_thread > 0) {
                scratch
            } else {
                0
            }
    }

    /// The two parts of [`Sequential::step_memory_of`]: persistent bytes (parameters,
    /// optimiser state, membrane state, and the gradients alive at the peak) and per-step
    /// bytes (kept activations and transients), on one thread.
    pub fn memory_split(parts: &[&Sequential], b: usize, optimizer_floats: usize) -> (usize, usize) {
        let mems: Vec<LayerMemory> = parts
            .iter()
            .flat_map(|s| s.layers.iter().map(|l| l.memory(b)))
            .collect();
        let state: usize = mems.iter().map(|m| m.state).sum();
        let kept: usize = mems.iter().map(|m| m.kept_per_step).sum();
        let params: usize = mems.iter().map(|m| m.params).sum();
        // Gradients are allocated by the backward pass (Param::ensure_grad), last part first,
        // while it frees the caches: at the peak, the last part's (the head's) gradients and
        // at most the largest layer's of the earlier parts are allocated besides the caches.
        let n_last = parts.last().map_or(0, |s| s.layers.len());
        let (earlier, last) = mems.split_at(mems.len() - n_last);
        let grads: usize = last.iter().map(|m| m.params).sum::<usize>()
            + earlier.iter().map(|m| m.params).max().unwrap_or(0);
        // Outputs and workspaces return to the buffer pool (crate::pool) and stay there for
        // the next step: every layer's are counted, not only the largest.
        let mut transient: usize = mems.iter().map(|m| m.workspace + m.output).sum::<usize>()
            + mems.iter().map(|m| m.scratch).max().unwrap_or(0);
        // A subnetwork's output goes on to the next one and, copied, into its head.
        if parts.len() > 1 {
            transient += parts[0].layers.last().map_or(0, |l| b * l.out_dims().len() * 4);
        }
        (params * (1 + optimizer_floats) + grads + state, kept + transient)
    }

    /// Every parameter and buffer (batch normalisation's running statistics), named
    /// `{prefix}.{i}.{name}` for layer `i`: what a checkpoint's `model.safetensors` holds.
    pub fn save_named(&self, prefix: &str, out: &mut BTreeMap<String, Vec<f32>>) {
        for (i, l) in self.layers.iter().enumerate() {
            for p in l.params() {
                out.insert(format!("{prefix}.{i}.{}", p.name), p.value.clone());
            }
            for (name, v) in l.buffers() {
                out.insert(format!("{prefix}.{i}.{name}"), v.clone());
            }
        }
    }

    /// Loads what [`Sequential::save_named`] wrote. Every parameter must be there, with its
    /// size; a buffer is loaded when present (checkpoints written before buffers were saved
    /// lack them, and keep the fresh values).
    ///
    /// # Errors
    /// A missing parameter, or a tensor of the wrong size.
    pub fn load_named(&mut self, prefix: &str, named: &BTreeMap<String, Vec<f32>>) -> crate::Result<()> {
        let wrong = |key: &str, message: String| crate::Error::Checkpoint {
            path: "model.safetensors".into(),
            message: format!("{key}: {message}"),
        };
        for (i, l) in self.layers.iter_mut().enumerate() {
            for p in l.params_mut() {
                let key = format!("{prefix}.{i}.{}", p.name);
                let v = named.get(&key).ok_or_else(|| wrong(&key, "missing".into()))?;
                if v.len() != p.value.len() {
                    return Err(wrong(
                        &key,
                        format!("{} values, expected {}", v.len(), p.value.len()),
                    ));
                }
                p.value.copy_from_slice(v);
            }
            for (name, b) in l.buffers_mut() {
                let key = format!("{prefix}.{i}.{name}");
                if let Some(v) = named.get(&key) {
                    if v.len() != b.len() {
                        return Err(wrong(&key, format!("{} values, expected {}", v.len(), b.len())));
                    }
                    b.copy_from_slice(v);
                }
            }
        }
        Ok(())
    }

    /// Caches currently kept, summed over layers.
    pub fn kept(&self) -> usize {
        self.layers.iter().map(Layer::kept).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{BatchNorm, Lif, LifParams, TimeMode};

    fn net() -> Sequential {
        let d = Dims::new(2, 3, 3);
        Sequential::new(vec![
            Layer::BatchNorm(BatchNorm::new(d)),
            Layer::Lif(Lif::new(d, LifParams::default(), TimeMode::Detached)),
        ])
    }

    #[test]
    fn running_statistics_travel_with_the_weights() {
        let mut a = net();
        let mut rng = crate::Rng::new(1);
        for _ in 0..5 {
            let mut x = Tensor::zeros(4, Dims::new(2, 3, 3));
            x.data.iter_mut().for_each(|v| *v = 3.0 * rng.next_f32() + 1.0);
            let _ = a.forward(x, true);
            a.reset();
        }
        let mut saved = BTreeMap::new();
        a.save_named("s0.body", &mut saved);
        assert!(saved.contains_key("s0.body.0.running_mean") && saved.contains_key("s0.body.0.gamma"));
        let mut b = net();
        b.load_named("s0.body", &saved).unwrap();
        let mut x = Tensor::zeros(1, Dims::new(2, 3, 3));
        x.data
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = i as f32 * 0.4);
        assert_eq!(a.forward(x.clone(), false).data, b.forward(x.clone(), false).data);
        // Without the buffers (an older checkpoint), the fresh statistics stay: different.
        saved.retain(|k, _| !k.contains("running"));
        let mut c = net();
        c.load_named("s0.body", &saved).unwrap();
        a.reset();
        assert_ne!(a.forward(x.clone(), false).data, c.forward(x, false).data);
        saved.remove("s0.body.0.gamma");
        assert!(net().load_named("s0.body", &saved).is_err());
    }
}
