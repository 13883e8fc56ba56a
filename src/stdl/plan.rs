//! Choosing the auxiliary networks under a memory budget (STDL.md §2).
//!
//! For the cut after unit `l` of `n`, the candidates are the units `l+1 … n−1`. For
//! `d = n − l − 1` down to 0, the uniformly spaced subset of size `d`
//! (`round_half_even(l + (n−l−1)/d · i)`, `i = 1..d`) is taken if the predicted training
//! memory of one time step of the subnetwork with that auxiliary network fits the budget;
//! `d = 0` is a bare pooling + linear head. The default budget is the cost of the most
//! expensive subnetwork with a bare head, so auxiliary networks never raise the peak.

use std::ops::Range;

use serde::Serialize;
use stdl_models::network::{spaced_subset, NetworkSpec, Sequential};
use stdl_models::preset::Budget;
use stdl_models::{Layer, Rng, TimeMode};

/// The plan of one subnetwork.
#[derive(Clone, Debug, Serialize)]
pub struct SubnetPlan {
    /// Units of the subnetwork.
    pub units: Range<usize>,
    /// Units copied into its auxiliary network (empty: bare head, or the readout).
    pub aux_units: Vec<usize>,
    /// Whether this is the last subnetwork (its head is the readout).
    pub is_last: bool,
    /// Predicted bytes of one training step with the chosen head.
    pub bytes: u64,
    /// Predicted bytes with a bare head.
    pub bare_bytes: u64,
    /// Of `bytes`, what stays allocated between steps: parameters, gradients, optimiser
    /// state and membranes.
    pub persistent_bytes: u64,
    /// What each worker thread beyond the first adds to `bytes` (its own workspaces). Not
    /// part of the choice of the auxiliary network, so the plan is the same on any machine.
    pub workspace_per_thread_bytes: u64,
    /// Parameters of the body and of the head.
    pub body_params: usize,
    /// Parameters of the head.
    pub head_params: usize,
}

/// The whole plan.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// Batch size the bytes are for.
    pub batch: usize,
    /// The budget used.
    pub budget_bytes: u64,
    /// The default budget (largest bare subnetwork).
    pub default_budget_bytes: u64,
    /// Per subnetwork.
    pub subnets: Vec<SubnetPlan>,
    /// Peak when subnetworks run in sequence: every subnetwork's persistent bytes plus the
    /// largest per-step part (step memory is reused from one subnetwork to the next).
    pub peak_sequential_bytes: u64,
    /// Peak when they run as concurrent pipeline stages (their step memory adds up).
    pub peak_pipelined_bytes: u64,
    /// What each worker thread beyond the first adds to the sequential peak (the largest
    /// subnetwork's per-thread workspaces; [`Plan::peak_sequential_bytes_on`]).
    pub workspace_per_thread_bytes: u64,
}

impl Plan {
    /// The sequential peak with `threads` worker threads.
    pub fn peak_sequential_bytes_on(&self, threads: usize) -> u64 {
        self.peak_sequential_bytes + threads.saturating_sub(1) as u64 * self.workspace_per_thread_bytes
    }
}

/// Predicted bytes of one training step of `body` + `head`.
pub fn cost(body: &Sequential, head: &Sequential, batch: usize, opt_floats: usize) -> u64 {
    Sequential::step_memory_of(&[body, head], batch, opt_floats) as u64
}

/// A subnetwork's layers as the trainer runs them: its input is detached, so its first
/// convolution computes no input gradient (and the memory model counts none); the
/// standardisation's backward waits for the update ([`Stage::update`](super::Stage::update)).
fn build_body(spec: &NetworkSpec, units: Range<usize>, rng: &mut Rng) -> crate::error::Result<Sequential> {
    let dims = spec.unit_dims()?;
    let mut s = Sequential::default();
    for u in units {
        s.extend(
            spec.build_unit(spec.units[u], dims[u], TimeMode::Detached, rng)
                .layers,
        );
    }
    if let Some(Layer::Conv(c)) = s.layers.first_mut() {
        c.input_grad = false;
    }
    s.set_defer_grads(true);
    Ok(s)
}

fn build_head(
    spec: &NetworkSpec,
    units: &Range<usize>,
    is_last: bool,
    aux: &[usize],
    rng: &mut Rng,
) -> crate::error::Result<Sequential> {
    let mut s = if is_last {
        let dims = spec.unit_dims()?;
        spec.build_readout(dims[units.end], rng)
    } else {
        spec.build_aux(units.end - 1, aux, TimeMode::Detached, rng)?
    };
    s.set_defer_grads(true);
    Ok(s)
}

/// Builds the layers of a planned subnetwork: its body and its head (auxiliary network, or
/// the readout for the last), fresh from `rng` (body first).
pub fn build_stage_layers(
    spec: &NetworkSpec,
    sp: &SubnetPlan,
    rng: &mut Rng,
) -> crate::error::Result<(Sequential, Sequential)> {
    let body = build_body(spec, sp.units.clone(), rng)?;
    let head = build_head(spec, &sp.units, sp.is_last, &sp.aux_units, rng)?;
    Ok((body, head))
}

/// Plans the auxiliary networks of `spec` for a batch of `batch`, with `budget` (or the
/// preset's, or the default) and `opt_floats` optimiser values per parameter.
pub fn plan(
    spec: &NetworkSpec,
    batch: usize,
    budget: Option<&Budget>,
    opt_floats: usize,
) -> crate::error::Result<Plan> {
    let mut rng = Rng::new(0);
    let ranges = spec.subnets();
    let k = ranges.len();
    let n = spec.units.len();
    let mut bodies = Vec::new();
    let mut bare = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        let body = build_body(spec, r.clone(), &mut rng)?;
        let head = build_head(spec, r, i + 1 == k, &[], &mut rng)?;
        bare.push(cost(&body, &head, batch, opt_floats));
        bodies.push(body);
    }
    let default_budget = *bare.iter().max().unwrap();
    let budget = match budget.or(spec.preset.aux_budget.as_ref()) {
        Some(b) => b.resolve(default_budget).map_err(crate::error::Error::msg)?,
        None => default_budget,
    };
    let mut subnets = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        let is_last = i + 1 == k;
        let l = r.end - 1;
        let mut chosen = (Vec::new(), bare[i]);
        if !is_last {
            for d in (0..n - l).rev() {
                let s = spaced_subset(l, n, d);
                let head = build_head(spec, r, false, &s, &mut rng)?;
                let c = cost(&bodies[i], &head, batch, opt_floats);
                if c <= budget || d == 0 {
                    chosen = (s, c);
                    break;
                }
            }
        }
        let head = build_head(spec, r, is_last, &chosen.0, &mut rng)?;
        let (persistent, _) = Sequential::memory_split(&[&bodies[i], &head], batch, opt_floats);
        subnets.push(SubnetPlan {
            persistent_bytes: persistent as u64,
            workspace_per_thread_bytes: Sequential::workspace_per_thread_of(&[&bodies[i], &head], batch)
                as u64,
            units: r.clone(),
            aux_units: chosen.0,
            is_last,
            bytes: chosen.1,
            bare_bytes: bare[i],
            body_params: bodies[i].param_count(),
            head_params: head.param_count(),
        });
    }
    Ok(Plan {
        batch,
        budget_bytes: budget,
        default_budget_bytes: default_budget,
        peak_sequential_bytes: subnets.iter().map(|s| s.persistent_bytes).sum::<u64>()
            + subnets
                .iter()
                .map(|s| s.bytes - s.persistent_bytes)
                .max()
                .unwrap_or(0),
        peak_pipelined_bytes: subnets.iter().map(|s| s.bytes).sum(),
        workspace_per_thread_bytes: subnets
            .iter()
            .map(|s| s.workspace_per_thread_bytes)
            .max()
            .unwrap_or(0),
        subnets,
    })
}
