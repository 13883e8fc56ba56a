//! Where a learned step goes, when asked (`stdl bench train --profile`,
//! `stdl stream --profile`): time per layer and phase, the layer's input density, and the
//! arithmetic a dense implementation of the layer would do, so that the achieved rate can be
//! set against the machine's.
//!
//! Off by default: [`crate::Sequential::set_profiling`] turns it on for one sequence. Timing
//! a layer costs two clock reads; the density costs one scan of the layer's input, which is
//! why it is not always on.

use std::time::Instant;

use crate::layers::Layer;

/// What one layer did over the calls profiled.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerProfile {
    /// The layer ([`Layer::describe`]).
    pub layer: String,
    /// Forward calls and their seconds.
    pub forward_calls: u64,
    /// Seconds in forward.
    pub forward_s: f64,
    /// Backward calls.
    pub backward_calls: u64,
    /// Seconds in backward (all of it; a convolution's split follows).
    pub backward_s: f64,
    /// Convolution: seconds of the weight gradient (inside `backward_s`).
    pub weight_grad_s: f64,
    /// Convolution: seconds of the input gradient (inside `backward_s`).
    pub input_grad_s: f64,
    /// Non-zero values in the inputs of the forward calls.
    pub input_nonzero: u64,
    /// Values in the inputs of the forward calls.
    pub input_values: u64,
    /// Non-zero values in the output gradients the backward calls received.
    pub grad_nonzero: u64,
    /// Values in the output gradients the backward calls received.
    pub grad_values: u64,
    /// Multiply-adds ×2 of one forward call at the batch seen, done densely (0 for layers
    /// without a product).
    pub dense_flops_per_forward: f64,
    /// Seconds the profile itself spent counting the non-zero values (outside `forward_s`
    /// and `backward_s`, but inside the step's time: the profiler's own cost).
    pub counting_s: f64,
}

impl LayerProfile {
    /// Fraction of non-zero input values.
    pub fn input_density(&self) -> f64 {
        self.input_nonzero as f64 / self.input_values.max(1) as f64
    }

    /// Fraction of non-zero values in the output gradient reaching the layer.
    pub fn grad_density(&self) -> f64 {
        self.grad_nonzero as f64 / self.grad_values.max(1) as f64
    }

    /// Dense-equivalent rate of forward and backward together (backward does twice the
    /// forward's products: the weight and the input gradient), in GFLOP/s.
    pub fn dense_gflops(&self) -> f64 {
        let flops = self.dense_flops_per_forward * (self.forward_calls + 2 * self.backward_calls) as f64;
        let s = self.forward_s + self.backward_s;
        if s > 0.0 {
            flops / s / 1e9
        } else {
            0.0
        }
    }

    /// Adds another profile of the same layer.
    pub fn add(&mut self, o: &LayerProfile) {
        self.forward_calls += o.forward_calls;
        self.forward_s += o.forward_s;
        self.backward_calls += o.backward_calls;
        self.backward_s += o.backward_s;
        self.weight_grad_s += o.weight_grad_s;
        self.input_grad_s += o.input_grad_s;
        self.input_nonzero += o.input_nonzero;
        self.input_values += o.input_values;
        self.grad_nonzero += o.grad_nonzero;
        self.grad_values += o.grad_values;
        self.counting_s += o.counting_s;
        if self.layer.is_empty() {
            self.layer = o.layer.clone();
        }
        self.dense_flops_per_forward = self.dense_flops_per_forward.max(o.dense_flops_per_forward);
    }
}

/// Dense multiply-adds ×2 of one forward call of `l` on a batch of `b`.
pub fn dense_flops(l: &Layer, b: usize) -> f64 {
    match l {
        Layer::Conv(c) => {
            let o = c.out_dims;
            2.0 * (b * o.c * o.h * o.w * c.in_dims.c * c.k * c.k) as f64
        }
        Layer::Linear(l) => 2.0 * (b * l.inputs * l.outputs) as f64,
        _ => 0.0,
    }
}

/// Seconds since `t`.
pub(crate) fn since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// The CPU as benchmarks print it beside their figures: its model name (`/proc/cpuinfo`),
/// then in brackets its family and model numbers where the kernel gives them (a virtual
/// machine's model name is often just the vendor's line, "AMD EPYC", where the family and
/// model tell Zen 3 from Zen 4), the logical CPUs this process may use, and the vector
/// extension the kernels run on it (the widest it has, unless `STDL_SIMD` narrows it:
/// [`crate::math::simd`]).
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    describe_cpu(&info, cpus)
}

/// [`cpu_model`] from the text of `/proc/cpuinfo` (empty where there is none) and the number
/// of logical CPUs (0: unknown).
fn describe_cpu(cpuinfo: &str, cpus: usize) -> String {
    use crate::math::{cpu_simd, simd, Simd};
    // A field's first line: the first processor's (every processor of a machine has the same).
    let field = |key: &str| {
        cpuinfo
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let name = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let mut parts = Vec::new();
    if let (Some(family), Some(model)) = (field("cpu family"), field("model")) {
        parts.push(format!("family {family}, model {model}"));
    }
    match cpus {
        0 => {}
        1 => parts.push("1 CPU".into()),
        n => parts.push(format!("{n} CPUs")),
    }
    match (simd(), cpu_simd()) {
        (Simd::Baseline, Simd::Baseline) => {}
        (run, has) if run == has => parts.push(run.name().into()),
        (run, has) => parts.push(format!(
            "{}, running the {} path: STDL_SIMD",
            has.name(),
            run.name()
        )),
    }
    if parts.is_empty() {
        name
    } else {
        format!("{name} ({})", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::describe_cpu;

    /// The first processor's fields, "model" told from "model name" (listed before it here).
    #[test]
    fn the_cpu_line_names_family_model_and_cpus() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\
                    model name\t: AMD EPYC\nmodel\t\t: 17\nflags\t\t: fpu sse2\n\nprocessor\t: 1\n\
                    cpu family\t: 6\nmodel\t\t: 207\nmodel name\t: Other\n";
        let line = describe_cpu(info, 2);
        assert!(
            line.starts_with("AMD EPYC (family 25, model 17; 2 CPUs"),
            "{line}"
        );
        let line = describe_cpu("model name\t: Some CPU\n", 1);
        assert!(line.starts_with("Some CPU (1 CPU"), "{line}");
        assert!(describe_cpu("", 0).starts_with("unknown CPU"));
    }
}
