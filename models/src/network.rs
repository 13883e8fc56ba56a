//! From a preset to layers: units, subnetworks at the cuts, auxiliary networks.
//!
//! A **unit** is a `conv` (with its normalisation, LIF and optional pooling) or a spiking
//! `linear` (with its LIF). Subnetwork `k` is a contiguous range of units; the last one also
//! owns the readout. An auxiliary network for the cut after unit `l` is made of fresh copies
//! of a subset of the units after `l` (same type, width, kernel and stride), then global
//! average pooling and a linear classifier.

use std::ops::Range;

use crate::layers::{AvgPool, BatchNorm, Conv2d, Flatten, Layer, Lif, Linear, TimeMode};
use crate::preset::{LayerSpec, Norm, Preset};
pub use crate::sequential::Sequential;
use crate::tensor::Dims;
use crate::{Error, Result, Rng};

/// What a unit is, independent of its input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitSpec {
    /// Conv → norm → LIF → optional pool.
    Conv {
        /// Output channels.
        channels: usize,
        /// Kernel.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
        /// Pooling window after the LIF.
        pool: Option<usize>,
    },
    /// (Flatten →) linear → LIF.
    Linear {
        /// Output features.
        features: usize,
    },
}

/// A built unit.
#[derive(Clone, Debug)]
pub struct Unit {
    /// What it is.
    pub spec: UnitSpec,
    /// Its layers.
    pub layers: Sequential,
}

/// A preset, checked and grouped into units.
#[derive(Clone, Debug)]
pub struct NetworkSpec {
    /// The preset.
    pub preset: Preset,
    /// Input frame shape.
    pub input: Dims,
    /// Units in order.
    pub units: Vec<UnitSpec>,
    /// Unit indices at which subnetworks 1.. start.
    pub cuts: Vec<usize>,
}

impl NetworkSpec {
    /// Checks a preset and groups its layers into units.
    ///
    /// # Errors
    /// Layers whose shapes do not chain, a cut that is not a unit boundary, or numbers a
    /// network cannot train with.
    pub fn new(preset: &Preset) -> Result<Self> {
        let err = |m: String| Error::Preset {
            name: preset.name.clone(),
            message: m,
        };
        let [c, h, w] = preset.input;
        if c == 0 || h == 0 || w == 0 || preset.classes < 2 {
            return Err(err("input must be non-empty and classes at least 2".into()));
        }
        let mut units: Vec<UnitSpec> = Vec::new();
        let mut has_lif = true;
        let mut readout = false;
        for (i, l) in preset.layers.iter().enumerate() {
            if readout {
                return Err(err(format!("layer {i}: nothing may follow the readout")));
            }
            match *l {
                LayerSpec::Conv {
                    channels,
                    kernel,
                    stride,
                    padding,
                } => {
                    if !has_lif {
                        return Err(err(format!("layer {i}: the previous conv/linear has no lif")));
                    }
                    if channels == 0 || kernel == 0 || stride == 0 {
                        return Err(err(format!(
                            "layer {i}: conv channels, kernel and stride must be positive"
                        )));
                    }
                    units.push(UnitSpec::Conv {
                        channels,
                        kernel,
                        stride,
                        padding,
                        pool: None,
                    });
                    has_lif = false;
                }
                LayerSpec::Linear { features } => {
                    if !has_lif {
                        return Err(err(format!("layer {i}: the previous conv/linear has no lif")));
                    }
                    if features == 0 {
                        return Err(err(format!("layer {i}: linear features must be positive")));
                    }
                    units.push(UnitSpec::Linear { features });
                    has_lif = false;
                }
                LayerSpec::Lif => {
                    if has_lif {
                        return Err(err(format!("layer {i}: lif must follow a conv or linear layer")));
                    }
                    has_lif = true;
                }
                LayerSpec::Pool { kernel } => match units.last_mut() {
                    Some(UnitSpec::Conv {
                        pool: pool @ None, ..
                    }) if has_lif && kernel > 0 => *pool = Some(kernel),
                    _ => {
                        return Err(err(format!(
                            "layer {i}: pool must follow a conv unit's lif (once)"
                        )))
                    }
                },
                LayerSpec::Flatten => {}
                LayerSpec::Readout => {
                    if !has_lif {
                        return Err(err(format!("layer {i}: the previous conv/linear has no lif")));
                    }
                    readout = true;
                }
            }
        }
        if !readout {
            return Err(err("the last layer must be the readout".into()));
        }
        if units.is_empty() {
            return Err(err("at least one conv or linear unit is needed".into()));
        }
        let cuts = match &preset.cuts {
            Some(c) => {
                if c.windows(2).any(|w| w[0] >= w[1]) || c.iter().any(|&u| u == 0 || u >= units.len()) {
                    return Err(err(format!(
                        "cuts {c:?} must be increasing unit indices in 1..{} (units: {})",
                        units.len(),
                        units.len()
                    )));
                }
                c.clone()
            }
            None => (1..units.len())
                .filter(|&i| matches!(units[i], UnitSpec::Conv { .. }))
                .collect(),
        };
        let spec = Self {
            preset: preset.clone(),
            input: Dims::new(c, h, w),
            units,
            cuts,
        };
        spec.check_sizes()?;
        Ok(spec)
    }

    /// Every unit's activations (per sample) and weights within [`MAX_LAYER_VALUES`]: a
    /// preset that would need more is refused before anything is allocated.
    fn check_sizes(&self) -> Result<()> {
        let dims = self.unit_dims()?;
        let err = |m: String| Error::Preset {
            name: self.preset.name.clone(),
            message: m,
        };
        let len = |d: Dims| d.c.checked_mul(d.h).and_then(|v| v.checked_mul(d.w));
        let over = |v: Option<usize>| v.is_none_or(|v| v > MAX_LAYER_VALUES);
        if over(len(self.input)) {
            return Err(err(format!(
                "input {} has more than {MAX_LAYER_VALUES} values",
                self.input
            )));
        }
        for (i, (u, d)) in self.units.iter().zip(&dims).enumerate() {
            let weights = match *u {
                UnitSpec::Conv { channels, kernel, .. } => channels
                    .checked_mul(d.c)
                    .and_then(|v| v.checked_mul(kernel))
                    .and_then(|v| v.checked_mul(kernel)),
                UnitSpec::Linear { features } => len(*d).and_then(|v| v.checked_mul(features)),
            };
            if over(weights) || over(len(dims[i + 1])) {
                return Err(err(format!(
                    "unit {i} ({u:?}) on input {d} needs more than {MAX_LAYER_VALUES} values \
                     (1 GiB) for its weights or its output; use fewer channels or a smaller input"
                )));
            }
        }
        Ok(())
    }

    /// Refuses a batch of `batch` samples keeping `steps_kept` time steps of activations
    /// (1 for STDL, T for BPTT) above [`MAX_KEPT_VALUES`] in all, naming the flags to change.
    ///
    /// # Errors
    /// A batch of 0, or one that batch normalisation cannot use (a single value per channel).
    pub fn check_batch(&self, batch: usize, steps_kept: usize) -> Result<()> {
        let per_sample: usize = self.unit_dims()?.iter().map(|d| d.len()).sum();
        let total = per_sample
            .checked_mul(batch.max(1))
            .and_then(|v| v.checked_mul(steps_kept.max(1)));
        match total {
            Some(v) if v <= MAX_KEPT_VALUES => Ok(()),
            _ => Err(Error::Preset {
                name: self.preset.name.clone(),
                message: format!(
                    "batch {batch} × {steps_kept} time step(s) kept × {per_sample} activations per \
                     sample is more than {} GiB of activations; lower --batch{}",
                    (MAX_KEPT_VALUES * 4) >> 30,
                    if steps_kept > 1 {
                        " or --t-bins, or train with --method stdl (it keeps one step)"
                    } else {
                        ""
                    }
                ),
            }),
        }
    }

    /// Subnetworks as unit ranges.
    pub fn subnets(&self) -> Vec<Range<usize>> {
        let mut bounds = vec![0];
        bounds.extend(&self.cuts);
        bounds.push(self.units.len());
        bounds.windows(2).map(|w| w[0]..w[1]).collect()
    }

    /// Input shape of every unit, then the shape after the last one.
    ///
    /// # Errors
    /// A unit whose output shape cannot be computed from its input.
    ///
    /// # Panics
    /// Not in practice: a spec has at least its input shape.
    pub fn unit_dims(&self) -> Result<Vec<Dims>> {
        let mut d = vec![self.input];
        for (i, u) in self.units.iter().enumerate() {
            let next = spec_out_dims(*u, *d.last().unwrap()).ok_or_else(|| Error::Preset {
                name: self.preset.name.clone(),
                message: format!("unit {i} ({u:?}) does not fit its input {}", d.last().unwrap()),
            })?;
            d.push(next);
        }
        Ok(d)
    }

    /// Builds unit `spec` for input `dims`.
    pub fn build_unit(&self, spec: UnitSpec, dims: Dims, mode: TimeMode, rng: &mut Rng) -> Unit {
        let p = &self.preset;
        let mut layers = Vec::new();
        match spec {
            UnitSpec::Conv {
                channels,
                kernel,
                stride,
                padding,
                pool,
            } => {
                let mut conv = Conv2d::new(dims, channels, kernel, stride, padding, p.norm == Norm::Ws, rng);
                conv.gain.value.iter_mut().for_each(|g| *g = p.ws_gain);
                let od = conv.out_dims;
                layers.push(Layer::Conv(conv));
                if p.norm == Norm::Bn {
                    layers.push(Layer::BatchNorm(BatchNorm::new(od)));
                }
                layers.push(Layer::Lif(Lif::new(od, p.neuron, mode)));
                if let Some(k) = pool {
                    if od.h >= k && od.w >= k {
                        layers.push(Layer::Pool(AvgPool::new(od, k)));
                    }
                }
            }
            UnitSpec::Linear { features } => {
                if dims.is_spatial() {
                    layers.push(Layer::Flatten(Flatten::new(dims)));
                }
                layers.push(Layer::Linear(Linear::new(dims.len(), features, rng)));
                layers.push(Layer::Lif(Lif::new(Dims::flat(features), p.neuron, mode)));
            }
        }
        Unit {
            spec,
            layers: Sequential::new(layers),
        }
    }

    /// The readout for input `dims`: (flatten →) linear to the classes.
    pub fn build_readout(&self, dims: Dims, rng: &mut Rng) -> Sequential {
        let mut layers = Vec::new();
        if dims.is_spatial() {
            layers.push(Layer::Flatten(Flatten::new(dims)));
        }
        layers.push(Layer::Linear(Linear::new(dims.len(), self.preset.classes, rng)));
        Sequential::new(layers)
    }

    /// An auxiliary network for the cut after unit `after`, made of fresh copies of the units
    /// `subset` (indices > `after`), then global average pooling and a linear classifier.
    ///
    /// # Errors
    /// A unit that cannot be built at its input shape.
    ///
    /// # Panics
    /// When the auxiliary units do not start at the subnetwork's end.
    pub fn build_aux(
        &self,
        after: usize,
        subset: &[usize],
        mode: TimeMode,
        rng: &mut Rng,
    ) -> Result<Sequential> {
        let dims = self.unit_dims()?;
        let mut d = dims[after + 1];
        let mut seq = Sequential::default();
        for &u in subset {
            assert!(
                u > after && u < self.units.len(),
                "aux unit {u} is not after the cut {after}"
            );
            let spec = self.units[u];
            if spec_out_dims(spec, d).is_none() {
                continue;
            }
            // A copied linear unit reads globally pooled features: the copy keeps the
            // unit's width without a weight matrix sized by the cut's spatial extent.
            if matches!(spec, UnitSpec::Linear { .. }) {
                d = global_pool(&mut seq, d);
            }
            let unit = self.build_unit(spec, d, mode, rng);
            d = unit.layers.out_dims().unwrap_or(d);
            seq.extend(unit.layers);
        }
        d = global_pool(&mut seq, d);
        seq.layers
            .push(Layer::Linear(Linear::new(d.len(), self.preset.classes, rng)));
        Ok(seq)
    }
}

/// Appends global average pooling and a flatten when `d` is spatial; returns the new shape.
fn global_pool(seq: &mut Sequential, d: Dims) -> Dims {
    if !d.is_spatial() {
        return d;
    }
    seq.layers.push(Layer::Pool(AvgPool::global(d)));
    seq.layers
        .push(Layer::Flatten(Flatten::new(Dims::new(d.c, 1, 1))));
    Dims::flat(d.c)
}

/// Output shape of a unit for an input shape, `None` if it does not fit.
pub fn spec_out_dims(spec: UnitSpec, d: Dims) -> Option<Dims> {
    match spec {
        UnitSpec::Conv {
            channels,
            kernel,
            stride,
            padding,
            pool,
        } => {
            let (ph, pw) = (
                d.h.checked_add(padding.checked_mul(2)?)?,
                d.w.checked_add(padding.checked_mul(2)?)?,
            );
            if ph < kernel || pw < kernel || stride == 0 {
                return None;
            }
            let oh = (ph - kernel) / stride + 1;
            let ow = (pw - kernel) / stride + 1;
            Some(match pool {
                Some(k) if oh >= k && ow >= k => Dims::new(channels, oh / k, ow / k),
                _ => Dims::new(channels, oh, ow),
            })
        }
        UnitSpec::Linear { features } => Some(Dims::flat(features)),
    }
}

/// The most `f32` values one unit's weights, or its output for one sample, may hold: 2^28
/// (1 GiB).
pub const MAX_LAYER_VALUES: usize = 1 << 28;

/// The most `f32` activation values a training step may keep over its batch (and, for BPTT,
/// its time steps): 2^31 (8 GiB).
pub const MAX_KEPT_VALUES: usize = 1 << 31;

/// `round_half_even` for non-negative values.
pub fn round_half_even(x: f64) -> usize {
    let f = x.floor();
    let diff = x - f;
    let r = if (diff - 0.5).abs() < 1e-9 {
        if (f as i64) % 2 == 0 {
            f
        } else {
            f + 1.0
        }
    } else {
        x.round()
    };
    r as usize
}

/// STDL.md's uniformly spaced subset of size `d` of the units after `l` out of `n`:
/// `idx_i = round_half_even(l + (n − l − 1)/d · i)`, `i = 1..d` (the last unit is always in it).
pub fn spaced_subset(l: usize, n: usize, d: usize) -> Vec<usize> {
    if d == 0 {
        return Vec::new();
    }
    let span = (n - l - 1) as f64;
    let mut v: Vec<usize> = (1..=d)
        .map(|i| round_half_even(l as f64 + span / d as f64 * i as f64))
        .collect();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaced_subsets() {
        // 5 units after the cut at 0 (n = 6): d = 5 takes all, d = 1 the last.
        assert_eq!(spaced_subset(0, 6, 5), vec![1, 2, 3, 4, 5]);
        assert_eq!(spaced_subset(0, 6, 1), vec![5]);
        assert_eq!(spaced_subset(0, 6, 2), vec![2, 5]); // 2.5 rounds to 2 (half even)
        assert_eq!(spaced_subset(1, 6, 3), vec![2, 4, 5]); // 2.33, 3.67, 5
        assert!(spaced_subset(3, 6, 0).is_empty());
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(3.5), 4);
    }

    #[test]
    fn presets_build() {
        for (name, _) in crate::preset::BUILTIN {
            let p = Preset::load(name).unwrap();
            let s = NetworkSpec::new(&p).unwrap();
            assert!(!s.subnets().is_empty(), "{name}");
            let dims = s.unit_dims().unwrap();
            assert_eq!(dims.len(), s.units.len() + 1);
        }
    }

    #[test]
    fn bad_presets_are_rejected_clearly() {
        let bad = [
            ("name='x'\ninput=[2,8,8]\nclasses=2\nbogus=1\n[[layers]]\ntype='readout'\n", "bogus"),
            ("name='x'\ninput=[2,8,8]\nclasses=2\n[[layers]]\ntype='conv'\nchannels=4\nkernel=3\n[[layers]]\ntype='readout'\n", "no lif"),
            ("name='x'\ninput=[2,8,8]\nclasses=2\n[[layers]]\ntype='lif'\n[[layers]]\ntype='readout'\n", "lif must follow"),
            ("name='x'\ninput=[2,8,8]\nclasses=2\n[[layers]]\ntype='conv'\nchannels=4\nkernel=3\nsize=2\n", "size"),
            ("name='x'\ninput=[2,8,8]\nclasses=2\ncuts=[5]\n[[layers]]\ntype='conv'\nchannels=4\nkernel=3\n[[layers]]\ntype='lif'\n[[layers]]\ntype='readout'\n", "cuts"),
        ];
        for (text, want) in bad {
            let e = Preset::parse(text, "x")
                .and_then(|p| NetworkSpec::new(&p).map(|_| ()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e:?} should mention {want:?}");
        }
    }
}
