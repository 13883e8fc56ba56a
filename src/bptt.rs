//! The BPTT baseline: the same network unrolled over `T` steps with nothing detached, one
//! readout loss `CE(mean_t logits_t, y)`, one backward and one update per sequence.

use std::collections::BTreeMap;

use stdl_models::loss::cross_entropy;
use stdl_models::network::{NetworkSpec, Sequential};
use stdl_models::optim::{OptimConfig, Optimizer};
use stdl_models::{Rng, Tensor, TimeMode};

/// A network trained with BPTT.
#[derive(Clone, Debug)]
pub struct BpttModel {
    /// The checked preset.
    pub spec: NetworkSpec,
    /// Every unit, then the readout.
    pub net: Sequential,
    /// Optimiser.
    pub opt: Optimizer,
}

impl BpttModel {
    /// Builds the network, seeded.
    pub fn new(spec: NetworkSpec, seed: u64, opt: OptimConfig) -> crate::error::Result<Self> {
        let mut rng = Rng::new(seed);
        let dims = spec.unit_dims()?;
        let mut net = Sequential::default();
        for (i, u) in spec.units.iter().enumerate() {
            net.extend(spec.build_unit(*u, dims[i], TimeMode::Bptt, &mut rng).layers);
        }
        net.extend(spec.build_readout(*dims.last().unwrap(), &mut rng));
        // The input frames need no gradient.
        if let Some(stdl_models::Layer::Conv(c)) = net.layers.first_mut() {
            c.input_grad = false;
        }
        Ok(Self {
            spec,
            net,
            opt: Optimizer::new(opt),
        })
    }

    /// Trains on one sequence of `t_len` steps (`frame(t)` is step `t`'s batch, made when
    /// the forward pass reaches it); returns the summed
    /// logits and the loss. Keeps all `T` steps' activations until the backward pass.
    pub fn train_sequence(
        &mut self,
        t_len: usize,
        mut frame: impl FnMut(usize) -> Tensor,
        labels: &[usize],
    ) -> (Tensor, f32) {
        self.net.reset();
        let mut sum: Option<Tensor> = None;
        let mut t_len_run = 0;
        for t in 0..t_len {
            // Ctrl-C ends a long sequence early (the caller stops before saving anything).
            if t > 0 && crate::interrupt::requested() {
                break;
            }
            let y = self.net.forward(frame(t), true);
            t_len_run += 1;
            match &mut sum {
                Some(s) => s.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a += b),
                None => sum = Some(y),
            }
        }
        let t_len = t_len_run;
        let sum = sum.expect("at least one time step");
        let mut mean = sum.clone();
        mean.data.iter_mut().for_each(|v| *v /= t_len as f32);
        let (loss, dmean) = cross_entropy(&mean, labels, 1.0);
        for _ in 0..t_len {
            let mut d = dmean.clone();
            d.data.iter_mut().for_each(|v| *v /= t_len as f32);
            self.net.backward(d);
        }
        let mut ps = self.net.params_mut();
        self.opt.step(&mut ps);
        for p in ps {
            p.zero_grad();
        }
        (sum, loss)
    }

    /// Inference over a sequence of `t_len` steps; returns the summed logits.
    pub fn infer_sequence(&mut self, t_len: usize, mut frame: impl FnMut(usize) -> Tensor) -> Tensor {
        self.net.reset();
        let mut sum: Option<Tensor> = None;
        for t in 0..t_len {
            if t > 0 && crate::interrupt::requested() {
                break;
            }
            let y = self.net.forward(frame(t), false);
            match &mut sum {
                Some(s) => s.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a += b),
                None => sum = Some(y),
            }
        }
        sum.expect("at least one time step")
    }

    /// Named parameters (`net.{i}.{name}`).
    pub fn named_params(&self) -> BTreeMap<String, Vec<f32>> {
        let mut out = BTreeMap::new();
        self.net.save_named("net", &mut out);
        out
    }

    /// Loads [`BpttModel::named_params`].
    ///
    /// # Errors
    /// A missing parameter, or a tensor of the wrong size.
    pub fn load_params(&mut self, named: &BTreeMap<String, Vec<f32>>) -> crate::error::Result<()> {
        Ok(self.net.load_named("net", named)?)
    }
}
