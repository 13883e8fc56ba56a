//! Gradients are proven: finite differences for every layer and a whole network (through
//! time, for BPTT), a hand-computed LIF voltage trace, and STDL = BPTT where they must agree.

use stdl_models::layers::lif::lif_step;
use stdl_models::layers::{AvgPool, BatchNorm, Conv2d, Lif, LifParams, Linear, TimeMode};
use stdl_models::loss::cross_entropy;
use stdl_models::network::{NetworkSpec, Sequential};
use stdl_models::{Dims, Layer, Preset, Rng, Tensor};

fn rand_tensor(b: usize, d: Dims, rng: &mut Rng, scale: f32) -> Tensor {
    Tensor::from_vec(
        b,
        d,
        (0..b * d.len())
            .map(|_| (rng.next_f32() * 2.0 - 1.0) * scale)
            .collect(),
    )
}

/// A batch of `b` binary spike maps, each value 1 with probability `density`.
fn spike_batch(b: usize, d: Dims, density: f32, rng: &mut Rng) -> Tensor {
    let data = (0..b * d.len())
        .map(|_| if rng.next_f32() < density { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_vec(b, d, data)
}

/// Sets each value of `t` to zero with probability `fraction` (drawn from `rng` in order),
/// as a surrogate with compact support leaves an output gradient.
fn zero_some(t: &mut Tensor, fraction: f32, rng: &mut Rng) {
    t.data.iter_mut().for_each(|v| {
        if rng.next_f32() < fraction {
            *v = 0.0
        }
    });
}

/// Loss = Σ r·y over `steps` time steps of the same input sequence (fresh state each call).
fn run_loss(seq: &mut Sequential, xs: &[Tensor], r: &[Tensor]) -> f64 {
    seq.reset();
    let mut total = 0.0f64;
    for (x, r) in xs.iter().zip(r) {
        let y = seq.forward(x.clone(), true);
        total += y
            .data
            .iter()
            .zip(&r.data)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum::<f64>();
    }
    // Training-mode forwards (batch statistics), whose caches are dropped here.
    seq.reset();
    total
}

/// Checks input and parameter gradients of `seq` over `xs.len()` steps against central
/// differences (in f64 accumulation of f32 evaluations).
fn check(name: &str, mut seq: Sequential, xs: Vec<Tensor>, rng: &mut Rng, tol: f64) {
    seq.reset();
    let outs: Vec<Tensor> = xs.iter().map(|x| seq.forward(x.clone(), true)).collect();
    let r: Vec<Tensor> = outs.iter().map(|o| rand_tensor(o.b, o.dims, rng, 1.0)).collect();
    seq.zero_grad();
    let mut dxs = vec![None; xs.len()];
    for t in (0..xs.len()).rev() {
        dxs[t] = Some(seq.backward(r[t].clone()));
    }
    let eps = 1e-2f32;
    let mut worst = 0.0f64;
    let cmp =
        |analytic: f64, numeric: f64| (analytic - numeric).abs() / (1e-2 + analytic.abs().max(numeric.abs()));
    // Input gradients.
    for t in 0..xs.len() {
        for _ in 0..8 {
            let i = rng.below(xs[t].data.len());
            let mut xp = xs.clone();
            xp[t].data[i] += eps;
            let mut xm = xs.clone();
            xm[t].data[i] -= eps;
            let num = (run_loss(&mut seq, &xp, &r) - run_loss(&mut seq, &xm, &r)) / (2.0 * eps as f64);
            let ana = dxs[t].as_ref().unwrap().data[i] as f64;
            worst = worst.max(cmp(ana, num));
            assert!(
                cmp(ana, num) < tol,
                "{name}: d/dx[{t}][{i}] analytic {ana} numeric {num}"
            );
        }
    }
    // Parameter gradients.
    let grads: Vec<Vec<f32>> = seq.params().iter().map(|p| p.grad.clone()).collect();
    for (pi, g) in grads.iter().enumerate() {
        for _ in 0..8.min(g.len()) {
            let i = rng.below(g.len());
            let orig = seq.params()[pi].value[i];
            seq.params_mut()[pi].value[i] = orig + eps;
            let lp = run_loss(&mut seq, &xs, &r);
            seq.params_mut()[pi].value[i] = orig - eps;
            let lm = run_loss(&mut seq, &xs, &r);
            seq.params_mut()[pi].value[i] = orig;
            let num = (lp - lm) / (2.0 * eps as f64);
            let ana = g[i] as f64;
            let name_p = seq.params()[pi].name;
            worst = worst.max(cmp(ana, num));
            assert!(
                cmp(ana, num) < tol,
                "{name}: d/d{name_p}[{i}] analytic {ana} numeric {num}"
            );
        }
    }
    eprintln!("{name}: worst relative error {worst:.2e}");
}

fn seq(layers: Vec<Layer>) -> Sequential {
    Sequential::new(layers)
}

#[test]
fn linear_gradients() {
    let mut rng = Rng::new(1);
    let l = Linear::new(7, 5, &mut rng);
    let x = vec![rand_tensor(3, Dims::flat(7), &mut rng, 1.0)];
    check("linear", seq(vec![Layer::Linear(l)]), x, &mut rng, 2e-2);
}

#[test]
fn linear_small_batch_path_agrees_with_the_gemm_path() {
    // Batches up to ROWS_MAX_BATCH take per-sample dot products and visit only non-zero
    // output gradients; the same two samples padded to a batch of 8 (padding without
    // gradient) take the GEMMs.
    let mut rng = Rng::new(31);
    let (n_in, n_out) = (37, 23);
    let base = Linear::new(n_in, n_out, &mut rng);
    let x = rand_tensor(2, Dims::flat(n_in), &mut rng, 1.0);
    let mut dy = rand_tensor(2, Dims::flat(n_out), &mut rng, 1.0);
    dy.data.iter_mut().for_each(|v| {
        if rng.next_f32() < 0.85 {
            *v = 0.0
        }
    });
    const { assert!(stdl_models::layers::linear::ROWS_MAX_BATCH >= 2) };
    let run = |x: Tensor, dy: Tensor| {
        let mut l = base.clone();
        let y = l.forward(x, true);
        let dx = l.backward(dy);
        let g: Vec<f32> = l.weight.grad.iter().chain(&l.bias.grad).copied().collect();
        (y.into_data(), dx.into_data(), g)
    };
    // `t`'s samples, then more drawn from `fill` up to a batch of 8.
    let pad = |t: &Tensor, fill: &mut dyn FnMut() -> f32| {
        let mut d = t.data.to_vec();
        d.extend((0..(8 - t.b) * t.dims.len()).map(|_| fill()));
        Tensor::from_vec(8, t.dims, d)
    };
    let small = run(x.clone(), dy.clone());
    let big = run(pad(&x, &mut || rng.next_f32()), pad(&dy, &mut || 0.0));
    let close = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + x.abs()))
    };
    assert!(close(&small.0, &big.0[..2 * n_out]), "outputs differ");
    assert!(close(&small.1, &big.1[..2 * n_in]), "input gradients differ");
    assert!(close(&small.2, &big.2), "parameter gradients differ");
    // At batch 1 the per-sample path takes dense output gradients too (a readout's are).
    let x1 = rand_tensor(1, Dims::flat(n_in), &mut rng, 1.0);
    let dy1 = rand_tensor(1, Dims::flat(n_out), &mut rng, 1.0);
    let one = run(x1.clone(), dy1.clone());
    let eight = run(pad(&x1, &mut || rng.next_f32()), pad(&dy1, &mut || 0.0));
    assert!(close(&one.0, &eight.0[..n_out]), "batch 1: outputs differ");
    assert!(close(&one.1, &eight.1[..n_in]), "batch 1: input gradients differ");
    assert!(close(&one.2, &eight.2), "batch 1: parameter gradients differ");
    // And the per-sample forward against finite differences, at batch 1.
    check(
        "linear batch 1",
        seq(vec![Layer::Linear(base.clone())]),
        vec![rand_tensor(1, Dims::flat(n_in), &mut rng, 1.0)],
        &mut rng,
        2e-2,
    );
}

#[test]
fn conv_gradients_plain_and_weight_standardised() {
    let mut rng = Rng::new(2);
    let d = Dims::new(3, 7, 6);
    for (ws, stride, pad) in [(false, 1, 1), (true, 1, 1), (true, 2, 0), (false, 2, 2)] {
        let c = Conv2d::new(d, 4, 3, stride, pad, ws, &mut rng);
        let x = vec![rand_tensor(2, d, &mut rng, 1.0)];
        check(
            &format!("conv ws={ws} s={stride} p={pad}"),
            seq(vec![Layer::Conv(c)]),
            x,
            &mut rng,
            3e-2,
        );
    }
}

#[test]
fn pool_and_batchnorm_gradients() {
    let mut rng = Rng::new(3);
    let d = Dims::new(2, 6, 5);
    let x = vec![rand_tensor(2, d, &mut rng, 1.0)];
    check(
        "avgpool",
        seq(vec![Layer::Pool(AvgPool::new(d, 2))]),
        x.clone(),
        &mut rng,
        1e-2,
    );
    check(
        "global pool",
        seq(vec![Layer::Pool(AvgPool::global(d))]),
        x.clone(),
        &mut rng,
        1e-2,
    );
    check(
        "batchnorm",
        seq(vec![Layer::BatchNorm(BatchNorm::new(d))]),
        x,
        &mut rng,
        3e-2,
    );
}

fn smooth_lif(d: Dims, mode: TimeMode) -> Layer {
    let mut l = Lif::new(d, LifParams::default(), mode);
    l.smooth = true;
    Layer::Lif(l)
}

#[test]
fn lif_gradients_one_step_and_through_time() {
    let mut rng = Rng::new(4);
    let d = Dims::flat(6);
    let x1 = vec![rand_tensor(2, d, &mut rng, 1.5)];
    check(
        "lif 1 step",
        seq(vec![smooth_lif(d, TimeMode::Detached)]),
        x1,
        &mut rng,
        2e-2,
    );
    let x4: Vec<Tensor> = (0..4).map(|_| rand_tensor(2, d, &mut rng, 1.5)).collect();
    check(
        "lif bptt 4 steps",
        seq(vec![smooth_lif(d, TimeMode::Bptt)]),
        x4,
        &mut rng,
        2e-2,
    );
}

#[test]
fn whole_network_gradients_through_time() {
    let mut rng = Rng::new(5);
    let p = Preset::load("tiny").unwrap();
    let mut preset = p.clone();
    preset.input = [2, 8, 8];
    let spec = NetworkSpec::new(&preset).unwrap();
    let dims = spec.unit_dims().unwrap();
    let mut layers = Vec::new();
    for (i, u) in spec.units.iter().enumerate() {
        layers.extend(
            spec.build_unit(*u, dims[i], TimeMode::Bptt, &mut rng)
                .layers
                .layers,
        );
    }
    layers.extend(spec.build_readout(*dims.last().unwrap(), &mut rng).layers);
    for l in &mut layers {
        if let Layer::Lif(lif) = l {
            lif.smooth = true;
        }
    }
    let xs: Vec<Tensor> = (0..3)
        .map(|_| rand_tensor(2, spec.input, &mut rng, 2.0))
        .collect();
    check("tiny network, BPTT over 3 steps", seq(layers), xs, &mut rng, 5e-2);
}

#[test]
fn lif_voltage_trace_by_hand() {
    // λ = 0.5, θ = 1, soft reset.
    let p = LifParams::default();
    let inputs = [0.6, 0.6, 0.6, 0.0, 1.5, 3.0];
    // u:      0.6   0.9   1.05 0.025 1.5125 3.25625
    // spike:  0     0     1    0     1      1
    // û:      0.6   0.9   0.05 0.025 0.5125 2.25625
    let want_s = [0.0, 0.0, 1.0, 0.0, 1.0, 1.0];
    let want_u = [0.6, 0.9, 0.05, 0.025, 0.5125, 2.25625];
    let mut state = [0.0f32];
    for (t, &i) in inputs.iter().enumerate() {
        let mut s = [0.0f32];
        lif_step(&[i], &mut state, &mut s, &p);
        assert_eq!(s[0], want_s[t], "spike at t={t}");
        assert!(
            (state[0] - want_u[t]).abs() < 1e-6,
            "û at t={t}: {} vs {}",
            state[0],
            want_u[t]
        );
    }
    // The layer gives the same trace.
    let mut l = Lif::new(Dims::flat(1), p, TimeMode::Detached);
    for (t, &i) in inputs.iter().enumerate() {
        let s = l.forward(Tensor::from_vec(1, Dims::flat(1), vec![i]), false);
        assert_eq!(s.data[0], want_s[t]);
        assert!((l.state()[0] - want_u[t]).abs() < 1e-6);
    }
    // Surrogate values: sigmoid α=4 at 0 is α/4 = 1; triangle at 0.5 is 0.5.
    assert!((stdl_models::Surrogate::Sigmoid.grad(0.0, 4.0) - 1.0).abs() < 1e-6);
    assert!((stdl_models::Surrogate::Triangle.grad(0.5, 4.0) - 0.5).abs() < 1e-6);
    assert!((stdl_models::Surrogate::Atan.grad(0.0, 2.0) - 1.0).abs() < 1e-6);
}

/// `spec`'s whole network (every unit and the readout) as one sequence, in `mode`, seeded.
fn whole_network(spec: &NetworkSpec, mode: TimeMode) -> Sequential {
    let dims = spec.unit_dims().unwrap();
    let mut rng = Rng::new(9);
    let mut s = Sequential::default();
    for (i, u) in spec.units.iter().enumerate() {
        s.extend(spec.build_unit(*u, dims[i], mode, &mut rng).layers);
    }
    s.extend(spec.build_readout(*dims.last().unwrap(), &mut rng));
    s
}

#[test]
fn stdl_equals_bptt_for_one_step_and_one_subnetwork() {
    // With a single time step there is no history: detached and full BPTT gradients agree.
    let spec = NetworkSpec::new(&Preset::load("tiny").unwrap()).unwrap();
    let build = |mode| whole_network(&spec, mode);
    let mut rng = Rng::new(10);
    let x = rand_tensor(3, spec.input, &mut rng, 3.0);
    let labels = [0usize, 2, 3];
    let mut grads = Vec::new();
    for mode in [TimeMode::Detached, TimeMode::Bptt] {
        let mut s = build(mode);
        let logits = s.forward(x.clone(), true);
        let (_, dl) = cross_entropy(&logits, &labels, 1.0);
        let dx = s.backward(dl);
        let g: Vec<f32> = s
            .params()
            .iter()
            .flat_map(|p| p.grad.clone())
            .chain(dx.into_data())
            .collect();
        grads.push(g);
    }
    assert!(grads[0].iter().any(|&v| v != 0.0));
    assert_eq!(grads[0], grads[1]);
}

#[test]
fn detached_training_passes_no_gradient_back_in_time_and_bptt_does() {
    // Three steps, a loss at the last only. STDL's detached membranes: the input gradients
    // of steps 1 and 2 are exactly zero (nothing reaches back through û_{t−1}), and the
    // parameter gradient is the last step's alone. BPTT: both reach back.
    let spec = NetworkSpec::new(&Preset::load("tiny").unwrap()).unwrap();
    let build = |mode| whole_network(&spec, mode);
    let mut rng = Rng::new(12);
    let xs: Vec<Tensor> = (0..3)
        .map(|_| rand_tensor(2, spec.input, &mut rng, 3.0))
        .collect();
    let labels = [1usize, 3];
    let param_grads =
        |s: &Sequential| -> Vec<f32> { s.params().iter().flat_map(|p| p.grad.clone()).collect() };
    let mut earlier = Vec::new();
    let mut last_only = Vec::new();
    for mode in [TimeMode::Detached, TimeMode::Bptt] {
        let mut s = build(mode);
        let logits: Vec<Tensor> = xs.iter().map(|x| s.forward(x.clone(), true)).collect();
        let (_, dl) = cross_entropy(&logits[2], &labels, 1.0);
        let mut dx = vec![s.backward(dl)];
        for t in (0..2).rev() {
            dx.push(s.backward(Tensor::zeros(2, logits[t].dims)));
        }
        earlier.push(dx[1..].iter().flat_map(|d| d.data.clone()).collect::<Vec<f32>>());
        last_only.push(param_grads(&s));
    }
    assert!(
        earlier[0].iter().all(|&v| v == 0.0),
        "detached: a gradient reached an earlier step"
    );
    assert!(
        earlier[1].iter().any(|&v| v != 0.0),
        "BPTT: no gradient reached an earlier step"
    );
    // Detached: the parameter gradient equals that of the last step with its membranes given
    // (the same forward history, backward of the last step only).
    let mut s = build(TimeMode::Detached);
    for x in &xs[..2] {
        s.forward(x.clone(), false);
    }
    let logits = s.forward(xs[2].clone(), true);
    let (_, dl) = cross_entropy(&logits, &labels, 1.0);
    s.backward(dl);
    assert_eq!(last_only[0], param_grads(&s));
    assert_ne!(last_only[1], param_grads(&s));
}

#[test]
fn cross_entropy_gradient() {
    let mut rng = Rng::new(11);
    let z = rand_tensor(4, Dims::flat(5), &mut rng, 2.0);
    let labels = [0, 4, 2, 2];
    let (l0, g) = cross_entropy(&z, &labels, 1.0);
    for i in 0..z.data.len() {
        let mut zp = z.clone();
        zp.data[i] += 1e-3;
        let mut zm = z.clone();
        zm.data[i] -= 1e-3;
        let num = (cross_entropy(&zp, &labels, 1.0).0 - cross_entropy(&zm, &labels, 1.0).0) / 2e-3;
        assert!((num - g.data[i]).abs() < 1e-3, "{i}: {num} vs {}", g.data[i]);
    }
    assert!(l0 > 0.0);
}

#[test]
fn sparse_and_dense_conv_paths_agree_and_are_exact() {
    use stdl_models::layers::InputPath;
    let mut rng = Rng::new(12);
    let d = Dims::new(3, 9, 8);
    // 70 output channels: the sparse forward's register blocks of 64 and the rest.
    for (k, stride, pad, ws, cout) in [
        (3, 1, 1, true, 5),
        (3, 2, 1, false, 5),
        (3, 1, 0, true, 5),
        (5, 1, 2, false, 5),
        (1, 1, 0, true, 5),
        (4, 3, 2, false, 5),
        (3, 1, 4, true, 5),
        (3, 1, 1, true, 70),
    ] {
        let base = Conv2d::new(d, cout, k, stride, pad, ws, &mut rng);
        // Spike-like input: 10% ones, and a few real-valued counts.
        let x = Tensor::from_vec(
            3,
            d,
            (0..3 * d.len())
                .map(|_| {
                    if rng.next_f32() < 0.1 {
                        1.0 + (rng.below(3) as f32)
                    } else {
                        0.0
                    }
                })
                .collect(),
        );
        // Output gradients as a compact-support surrogate leaves them: mostly exactly zero.
        let mut outs = Vec::new();
        for (path, grad_path) in [
            (InputPath::Dense, InputPath::Dense),
            (InputPath::Sparse, InputPath::Dense),
            (InputPath::Dense, InputPath::Sparse),
            (InputPath::Sparse, InputPath::Sparse),
        ] {
            let mut c = base.clone();
            c.path = path;
            c.grad_path = grad_path;
            let y = c.forward(x.clone(), true);
            let mut r = Rng::new(77);
            let mut dy = rand_tensor(y.b, y.dims, &mut r, 1.0);
            zero_some(&mut dy, 0.8, &mut r);
            let dx = c.backward(dy);
            assert_eq!(c.grad_path_calls, [(grad_path == InputPath::Sparse) as u64; 2]);
            let grads: Vec<f32> = c.params().iter().flat_map(|p| p.grad.clone()).collect();
            outs.push((y.into_data(), dx.into_data(), grads));
        }
        let close = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + x.abs()))
        };
        for (n, out) in outs.iter().enumerate().skip(1) {
            let what = format!("path {n} (k={k} s={stride} p={pad})");
            assert!(close(&outs[0].0, &out.0), "outputs differ: {what}");
            assert!(close(&outs[0].1, &out.1), "input gradients differ: {what}");
            assert!(close(&outs[0].2, &out.2), "parameter gradients differ: {what}");
        }
        // Both gradient paths checked with the same draws.
        let before = rng.clone();
        for grad_path in [InputPath::Dense, InputPath::Sparse] {
            let mut c = base.clone();
            c.path = InputPath::Sparse;
            c.grad_path = grad_path;
            rng = before.clone();
            check(
                &format!("sparse conv k={k} s={stride} p={pad} ws={ws} {grad_path:?}"),
                seq(vec![Layer::Conv(c)]),
                vec![x.clone()],
                &mut rng,
                3e-2,
            );
        }
    }
}

/// Where whole channels are silent (input channels with no spike in the batch, output
/// channels with no gradient), the dense forward and the scattered input gradient compute
/// only the live channels' effective weights (the dense forward's columns, the input
/// gradient's rows by tap): outputs and input gradients are those of a convolution that
/// builds every channel's (with `accumulate`, whose layouts serve later passes), bit for bit
/// on the sparse paths.
#[test]
fn silent_channels_leave_outputs_and_input_gradients_as_they_were() {
    use stdl_models::layers::InputPath;
    let mut rng = Rng::new(31);
    let d = Dims::new(20, 7, 6);
    let silent_in = [0, 3, 4, 11, 19];
    let silent_out = [1, 2, 9, 16];
    for ws in [true, false] {
        let base = Conv2d::new(d, 18, 3, 1, 1, ws, &mut rng);
        let mut x = spike_batch(2, d, 0.2, &mut rng);
        for (j, plane) in x.data.chunks_exact_mut(7 * 6).enumerate() {
            if silent_in.contains(&(j % 20)) {
                plane.fill(0.0);
            }
        }
        let y_dims = base.out_dims;
        let mut dy = rand_tensor(2, y_dims, &mut rng, 1.0);
        zero_some(&mut dy, 0.5, &mut rng);
        for (j, plane) in dy.data.chunks_exact_mut(7 * 6).enumerate() {
            if silent_out.contains(&(j % 18)) {
                plane.fill(0.0);
            }
        }
        for path in [InputPath::Dense, InputPath::Sparse] {
            for grad_path in [InputPath::Dense, InputPath::Sparse] {
                let run = |every_channel: bool| {
                    let mut c = base.clone();
                    (c.path, c.grad_path, c.accumulate) = (path, grad_path, every_channel);
                    let y = c.forward(x.clone(), true);
                    let dx = c.backward(dy.clone());
                    (y.into_data(), dx.into_data())
                };
                let (live, every) = (run(false), run(true));
                let what = format!("ws={ws} {path:?}/{grad_path:?}");
                let same =
                    |a: &[f32], b: &[f32]| a.iter().map(|v| v.to_bits()).eq(b.iter().map(|v| v.to_bits()));
                let close = |a: &[f32], b: &[f32]| {
                    a.len() == b.len()
                        && a.iter()
                            .zip(b)
                            .all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + x.abs()))
                };
                if path == InputPath::Sparse {
                    assert!(same(&live.0, &every.0), "{what}: outputs differ");
                } else {
                    assert!(close(&live.0, &every.0), "{what}: outputs differ");
                }
                if grad_path == InputPath::Sparse {
                    assert!(same(&live.1, &every.1), "{what}: input gradients differ");
                } else {
                    assert!(close(&live.1, &every.1), "{what}: input gradients differ");
                }
            }
        }
    }
}

#[test]
fn conv_results_do_not_depend_on_the_number_of_threads() {
    use stdl_models::layers::InputPath;
    let mut rng = Rng::new(21);
    // Small weights: the weight gradient is split over the batch; large ones (64·9·120 ≥
    // CHANNEL_SPLIT_MIN_WEIGHTS): over output channels.
    for (d, c_out) in [(Dims::new(6, 10, 9), 13), (Dims::new(64, 5, 4), 120)] {
        let base = Conv2d::new(d, c_out, 3, 1, 1, true, &mut rng);
        let x = Tensor::from_vec(
            5,
            d,
            (0..5 * d.len())
                .map(|_| (rng.next_f32() < 0.15) as u8 as f32)
                .collect(),
        );
        let mut dy = rand_tensor(5, base.out_dims, &mut Rng::new(8), 1.0);
        let mut r = Rng::new(9);
        zero_some(&mut dy, 0.7, &mut r);
        for (path, grad_path) in [
            (InputPath::Dense, InputPath::Dense),
            (InputPath::Sparse, InputPath::Dense),
            (InputPath::Sparse, InputPath::Sparse),
        ] {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let mut c = base.clone();
                    c.path = path;
                    c.grad_path = grad_path;
                    let y = c.forward(x.clone(), true);
                    let dx = c.backward(dy.clone());
                    let grads: Vec<Vec<f32>> = c.params().iter().map(|p| p.grad.clone()).collect();
                    (y.into_data(), dx.into_data(), grads)
                })
            };
            let one = run(1);
            for threads in [2, 3, 4] {
                assert!(
                    run(threads) == one,
                    "{path:?}/{grad_path:?}, {c_out} channels: {threads} threads differ from 1"
                );
            }
        }
    }
}

/// `Conv2d::accumulate` (several backward passes per update): kept effective weights and one
/// standardisation backward on the summed gradient give the gradients and outputs of the
/// plain mode, on every path, and a change to the weights through `params_mut` is seen by
/// the next pass (the kept weights are let go).
#[test]
fn conv_accumulate_mode_matches_per_pass_gradients() {
    use stdl_models::layers::InputPath;
    let mut rng = Rng::new(41);
    let d = Dims::new(4, 6, 5);
    let spikes = |rng: &mut Rng| spike_batch(2, d, 0.15, rng);
    for ws in [true, false] {
        let base = Conv2d::new(d, 6, 3, 1, 1, ws, &mut rng);
        for (path, grad_path) in [
            (InputPath::Dense, InputPath::Dense),
            (InputPath::Sparse, InputPath::Dense),
            (InputPath::Dense, InputPath::Sparse),
            (InputPath::Sparse, InputPath::Sparse),
        ] {
            let mut convs = [base.clone(), base.clone()];
            convs[1].accumulate = true;
            let mut outs: [Vec<Vec<f32>>; 2] = [Vec::new(), Vec::new()];
            // Both copies see the same draws.
            let seed = rng.below(1 << 30) as u64;
            for (c, out) in convs.iter_mut().zip(&mut outs) {
                c.path = path;
                c.grad_path = grad_path;
                let mut r = Rng::new(seed);
                for _update in 0..2 {
                    for _ in 0..3 {
                        let y = c.forward(spikes(&mut r), true);
                        let mut dy = rand_tensor(y.b, y.dims, &mut r, 1.0);
                        zero_some(&mut dy, 0.7, &mut r);
                        out.push(y.into_data());
                        out.push(c.backward(dy).into_data());
                    }
                    // An update: read the summed gradients, then change the weights.
                    for p in c.params_mut() {
                        out.push(p.grad.clone());
                        let g = p.grad.clone();
                        p.value.iter_mut().zip(&g).for_each(|(w, g)| *w -= 0.1 * g);
                        p.release_grad();
                    }
                    out.push(c.forward(spikes(&mut r), false).into_data());
                }
            }
            assert_eq!(outs[0].len(), outs[1].len());
            for (n, (a, b)) in outs[0].iter().zip(&outs[1]).enumerate() {
                let close = a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + x.abs()));
                assert!(close, "ws={ws} {path:?}/{grad_path:?}: output {n} differs");
            }
        }
    }
}

/// A linear layer whose weights' gradient at batch 1 waits for the optimiser step
/// (`defer_grad`, computed inside Adam's pass by `Linear::update`) ends every step with the
/// same weights, optimiser state, outputs and input gradients, bit for bit, as one that
/// writes its gradient and is then updated by `Optimizer::step`: with Adam and SGD (not
/// fused), one or two backward passes per update (the second writes the first's), at batch
/// 1 and 2 (not deferred), with output gradients that are mostly zero, signed zeros among
/// them, and a parameter count that cuts into pieces for helpers.
#[test]
fn linear_deferred_update_matches_gradient_then_optimizer_step() {
    use stdl_models::layers::Linear;
    use stdl_models::optim::{OptimConfig, Optimizer, OptimizerKind};
    let mut rng = Rng::new(44);
    let base = Linear::new(300, 70, &mut rng);
    for kind in [OptimizerKind::Adam, OptimizerKind::Sgd] {
        for (b, passes) in [(1, 1), (1, 2), (2, 1)] {
            let cfg = OptimConfig {
                kind,
                lr: 0.01,
                weight_decay: 0.01,
                ..OptimConfig::default()
            };
            let seed = rng.below(1 << 30) as u64;
            let mut outs: [Vec<Vec<f32>>; 2] = [Vec::new(), Vec::new()];
            for (deferred, out) in [false, true].into_iter().zip(&mut outs) {
                let mut l = base.clone();
                l.defer_grad = deferred;
                let mut opt = Optimizer::new(cfg);
                let mut r = Rng::new(seed);
                for _update in 0..4 {
                    for _ in 0..passes {
                        let x = spike_batch(b, Dims::flat(300), 0.3, &mut r);
                        let y = l.forward(x, true);
                        let mut dy = rand_tensor(y.b, y.dims, &mut r, 1.0);
                        zero_some(&mut dy, 0.8, &mut r);
                        dy.data[3] = -0.0;
                        out.push(y.into_data());
                        out.push(l.backward(dy).into_data());
                    }
                    let sizes = [l.weight.value.len(), l.bias.value.len()];
                    let update = opt.begin_step(&sizes);
                    let finite = l.update(&update, &mut opt.states());
                    opt.end_step(finite);
                    l.release_grads();
                    out.extend([l.weight.value.clone(), l.bias.value.clone()]);
                    out.extend(opt.m.iter().chain(&opt.v).cloned());
                }
                assert!(!opt.diverged);
            }
            let what = format!("{kind:?} batch {b}, {passes} passes");
            assert_eq!(outs[0].len(), outs[1].len(), "{what}");
            for (n, (a, c)) in outs[0].iter().zip(&outs[1]).enumerate() {
                let same = a.len() == c.len() && a.iter().zip(c).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{what}: output {n} differs");
            }
        }
    }
}

/// A convolution whose standardisation's backward waits for the optimiser step
/// (`defer_ws_grad`, fused with Adam's update by `Conv2d::update`) ends every step with the
/// same weights, optimiser state, outputs and input gradients, bit for bit, as one that
/// writes its gradients and is then updated by `Optimizer::step`: on both paths, with and
/// without standardisation, with Adam and SGD (not fused), one or several backward passes
/// per update.
#[test]
fn conv_fused_update_matches_gradient_then_optimizer_step() {
    use stdl_models::layers::InputPath;
    use stdl_models::optim::{OptimConfig, Optimizer, OptimizerKind};
    let mut rng = Rng::new(43);
    let d = Dims::new(5, 6, 5);
    let spikes = |rng: &mut Rng| spike_batch(2, d, 0.2, rng);
    for ws in [true, false] {
        let base = Conv2d::new(d, 7, 3, 1, 1, ws, &mut rng);
        for path in [InputPath::Dense, InputPath::Sparse] {
            for kind in [OptimizerKind::Adam, OptimizerKind::Sgd] {
                for passes in [1, 3] {
                    let cfg = OptimConfig {
                        kind,
                        lr: 0.05,
                        weight_decay: 0.01,
                        ..OptimConfig::default()
                    };
                    let seed = rng.below(1 << 30) as u64;
                    let mut outs: [Vec<Vec<f32>>; 2] = [Vec::new(), Vec::new()];
                    for (fused, out) in [false, true].into_iter().zip(&mut outs) {
                        let mut c = base.clone();
                        (c.path, c.grad_path) = (path, path);
                        c.accumulate = passes > 1;
                        c.defer_ws_grad = fused;
                        let mut opt = Optimizer::new(cfg);
                        let mut r = Rng::new(seed);
                        for _update in 0..4 {
                            for _ in 0..passes {
                                let y = c.forward(spikes(&mut r), true);
                                let mut dy = rand_tensor(y.b, y.dims, &mut r, 1.0);
                                zero_some(&mut dy, 0.6, &mut r);
                                out.push(y.into_data());
                                out.push(c.backward(dy).into_data());
                            }
                            if fused {
                                let sizes: Vec<usize> = c.params().iter().map(|p| p.value.len()).collect();
                                let update = opt.begin_step(&sizes);
                                let finite = c.update(&update, &mut opt.states());
                                opt.end_step(finite);
                                // As a stage does: the statistics the update computed stay.
                                c.release_grads();
                            } else {
                                let mut ps = c.params_mut();
                                opt.step(&mut ps);
                                ps.into_iter().for_each(|p| p.release_grad());
                            }
                            out.extend(c.params().iter().map(|p| p.value.clone()));
                            out.extend(opt.m.iter().chain(&opt.v).cloned());
                            out.push(c.forward(spikes(&mut r), false).into_data());
                        }
                        assert!(!opt.diverged);
                    }
                    let what = format!("ws={ws} {path:?} {kind:?} {passes} passes");
                    assert_eq!(outs[0].len(), outs[1].len(), "{what}");
                    for (n, (a, b)) in outs[0].iter().zip(&outs[1]).enumerate() {
                        let same =
                            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{what}: output {n} differs");
                    }
                }
            }
        }
    }
}
