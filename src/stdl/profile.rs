//! Where a stage's steps go: clock readings kept always ([`StageTiming`]), the per-layer
//! profile of `--profile` ([`StageProfile`]) and spike counts per LIF layer ([`SpikeCount`]).
//! The records only: [`super::Stage`] fills them.

/// Clock readings of a stage outside its layers (always kept: a few clock reads per step).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTiming {
    /// Optimiser updates.
    pub updates: u64,
    /// Seconds in them.
    pub update_s: f64,
    /// Steps run.
    pub steps: u64,
    /// Seconds in [`super::Stage::advance`] (layers, loss and update).
    pub advance_s: f64,
    /// CPU seconds of the calling thread in [`super::Stage::advance`]: below `advance_s` when the
    /// thread waited for a core (more runnable threads than cores) or for workers.
    pub advance_cpu_s: f64,
    /// Pipeline: seconds its steps waited in its queue (for this stage's earlier steps, or
    /// for a worker while all were busy with other stages).
    pub queued_s: f64,
}

/// CPU seconds the calling thread has used (Linux with glibc: `CLOCK_THREAD_CPUTIME_ID`; 0
/// elsewhere).
pub(crate) fn thread_cpu_s() -> f64 {
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

/// Where one stage's steps went, over the steps profiled.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StageProfile {
    /// Subnetwork index.
    pub stage: usize,
    /// Steps run.
    pub steps: u64,
    /// Seconds per step in [`super::Stage::advance`].
    pub ms_per_step: f64,
    /// CPU time of the thread running the stage, per step (pipeline stages run their layers
    /// on that one thread: the stage's share of the cores).
    pub cpu_ms_per_step: f64,
    /// Optimiser: seconds per step.
    pub update_ms_per_step: f64,
    /// Pipeline: time its steps waited in its queue, per step.
    pub queued_ms_per_step: f64,
    /// The profile's own counting of each layer's non-zero inputs and output gradients, per
    /// step: inside `ms_per_step` and `cpu_ms_per_step`, and not spent without `--profile`.
    pub counting_ms_per_step: f64,
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
