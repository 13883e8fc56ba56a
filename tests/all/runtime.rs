//! The streaming runtime: pipeline stages on threads give the sequential results bit for bit.

use stdl::stdl::Pipeline;
use stdl_models::{Rng, Tensor};

use crate::training::tiny_model;

/// At batch 1 the convolutions' products are cut into chunks that an idle worker may take
/// ([`stdl_models::assist`]); at batch 4 they are not.
#[test]
fn pipeline_stages_equal_sequential_bit_for_bit() {
    for (update_every, batch) in [(1usize, 4usize), (3, 4), (1, 1)] {
        let (mut seq, dims) = tiny_model(update_every);
        let par = seq.clone();
        let mut rng = Rng::new(21);
        let steps: Vec<(Tensor, Option<Vec<usize>>, bool)> = (0..24)
            .map(|t| {
                let x = Tensor::from_vec(
                    batch,
                    dims,
                    (0..batch * dims.len())
                        .map(|_| (rng.next_f32() < 0.25) as u8 as f32 * (1 + rng.below(3)) as f32)
                        .collect(),
                );
                // Labelled, then unlabelled (prediction only); a reset between samples.
                let labels = (t < 18).then(|| [t % 4, 1, 2, 3][..batch].to_vec());
                (x, labels, t == 12)
            })
            .collect();
        let mut want = Vec::new();
        for (x, labels, reset) in &steps {
            if *reset {
                seq.reset_state();
            }
            want.push(seq.step(x.clone(), labels.as_deref()).0);
        }
        // One worker runs every stage in turn; more take whichever stage is ready, in any
        // order between stages: the numbers are the same.
        for workers in [1, 2, seq.stages.len()] {
            let pipe = Pipeline::start_on(par.clone().stages, 2, workers);
            let got: Vec<Tensor> = std::thread::scope(|s| {
                let feeder = s.spawn(|| {
                    for (x, labels, reset) in &steps {
                        if *reset {
                            pipe.reset();
                        }
                        pipe.send(x.clone(), labels.clone());
                    }
                });
                let out: Vec<Tensor> = (0..steps.len()).map(|_| pipe.recv().unwrap().logits).collect();
                feeder.join().unwrap();
                out
            });
            assert_eq!(got.len(), want.len());
            for (t, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    a.data == b.data,
                    "update_every {update_every}, batch {batch}, {workers} workers: logits differ at step {t}"
                );
            }
            let stages = pipe.finish();
            let values = |s: &stdl::stdl::Stage| -> Vec<Vec<f32>> {
                let (body, head) = (s.body.params(), s.head.params());
                body.iter().chain(&head).map(|p| p.value.clone()).collect()
            };
            for (k, (a, b)) in stages.iter().zip(&seq.stages).enumerate() {
                assert!(
                    values(a) == values(b),
                    "batch {batch}, {workers} workers, stage {k}: parameters differ after the run"
                );
                assert_eq!(a.labelled_steps, 18);
            }
        }
    }
}

#[test]
fn warm_up_changes_no_number() {
    // `tiny`, and `tiny` with batch normalisation (whose running statistics the warm-up's
    // training steps move and must put back).
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/presets/tiny.toml")).unwrap();
    let bn = stdl_models::Preset::parse(
        &text.replace("classes = 4", "classes = 4\nnorm = \"bn\""),
        "tiny-bn",
    )
    .unwrap();
    assert!(format!("{bn:?}").contains("Bn"), "the preset has batch norm");
    for preset in [stdl_models::Preset::load("tiny").unwrap(), bn] {
        warm_up_on(&preset);
    }
}

fn warm_up_on(preset: &stdl_models::Preset) {
    let spec = stdl_models::network::NetworkSpec::new(preset).unwrap();
    let p = stdl::stdl::plan(&spec, 4, None, 2).unwrap();
    let dims = spec.input;
    let mut plain =
        stdl::stdl::StdlModel::new(spec, p, 1, stdl_models::optim::OptimConfig::default(), 1).unwrap();
    let mut warmed = plain.clone();
    warmed.warm_up(4, Some(4));
    let mut rng = Rng::new(5);
    for t in 0..8 {
        let x = Tensor::from_vec(
            4,
            dims,
            (0..4 * dims.len())
                .map(|_| (rng.next_f32() < 0.2) as u8 as f32)
                .collect(),
        );
        // Learning, then predicting (where batch norm uses its running statistics).
        let labels = [t % 4, 1, 2, 3];
        let labels = (t < 5).then_some(&labels[..]);
        let a = plain.step(x.clone(), labels).0;
        let b = warmed.step(x, labels).0;
        assert_eq!(a, b, "{}: step {t}: logits differ after warm_up", preset.name);
    }
    assert!(
        plain.named_params() == warmed.named_params(),
        "{}: weights differ after warm_up",
        preset.name
    );
}

/// Replayed segments run between live steps as their own sequences: the live membranes are
/// set aside and come back bit for bit, each segment starts from zero membranes, and the
/// pipeline does exactly what the sequential model does.
#[test]
fn replayed_segments_never_leak_into_the_live_membranes() {
    use stdl::stdl::StepContext::{Live, Side, SideStart};
    let (mut base, dims) = tiny_model(1);
    // No weight change: what differs can only come from membranes.
    base.stages.iter_mut().for_each(|s| s.opt.cfg.lr = 0.0);
    let mut rng = Rng::new(5);
    let mut input = || {
        Tensor::from_vec(
            4,
            dims,
            (0..4 * dims.len())
                .map(|_| (rng.next_f32() < 0.3) as u8 as f32 * 2.0)
                .collect(),
        )
    };
    let live: Vec<Tensor> = (0..16).map(|_| input()).collect();
    // After live step 4 one segment of three steps; after live step 9 two segments back to
    // back (the second starts from zero again).
    let seg_a: Vec<Tensor> = (0..3).map(|_| input()).collect();
    let seg_b: Vec<Tensor> = (0..2).map(|_| input()).collect();
    let seg_c: Vec<Tensor> = (0..2).map(|_| input()).collect();
    let labels = [0usize, 1, 2, 3];
    let mut plan: Vec<(stdl::stdl::StepContext, Tensor, bool)> = Vec::new();
    for (t, x) in live.iter().enumerate() {
        plan.push((Live, x.clone(), true));
        let segs: Vec<&Vec<Tensor>> = match t {
            4 => vec![&seg_a],
            9 => vec![&seg_b, &seg_c],
            _ => vec![],
        };
        for seg in segs {
            for (k, x) in seg.iter().enumerate() {
                plan.push((if k == 0 { SideStart } else { Side }, x.clone(), false));
            }
        }
    }
    let run = |ctx_of: &dyn Fn(stdl::stdl::StepContext) -> stdl::stdl::StepContext| {
        let mut m = base.clone();
        plan.iter()
            .map(|(ctx, x, is_live)| (m.step_in(ctx_of(*ctx), x.clone(), Some(&labels)).0, *is_live))
            .collect::<Vec<_>>()
    };
    let alone: Vec<Tensor> = {
        let mut m = base.clone();
        live.iter().map(|x| m.step(x.clone(), Some(&labels)).0).collect()
    };
    let mixed = run(&|c| c);
    let mixed_live: Vec<&Tensor> = mixed.iter().filter(|o| o.1).map(|o| &o.0).collect();
    for (t, (a, b)) in alone.iter().zip(&mixed_live).enumerate() {
        assert!(
            a.data == b.data,
            "live step {t}: replay changed the live sequence"
        );
    }
    // Each segment's steps are those of the segment run alone from zero membranes.
    let side: Vec<&Tensor> = mixed.iter().filter(|o| !o.1).map(|o| &o.0).collect();
    let mut want = Vec::new();
    for seg in [&seg_a, &seg_b, &seg_c] {
        let mut m = base.clone();
        want.extend(seg.iter().map(|x| m.step(x.clone(), Some(&labels)).0));
    }
    for (k, (a, b)) in side.iter().zip(&want).enumerate() {
        assert!(
            a.data == b.data,
            "replayed step {k} did not start from zero membranes"
        );
    }
    // Without the contexts (every step live) the membranes do leak: the check can fail.
    let leaky = run(&|_| Live);
    let leaky_live: Vec<&Tensor> = leaky.iter().filter(|o| o.1).map(|o| &o.0).collect();
    assert!(
        alone.iter().zip(&leaky_live).any(|(a, b)| a.data != b.data),
        "the sequences are too short to show a leak"
    );
    // The pipeline does the same, step for step.
    let pipe = Pipeline::start(base.clone().stages, 2);
    let got: Vec<Tensor> = std::thread::scope(|s| {
        let feeder = s.spawn(|| {
            for (ctx, x, _) in &plan {
                pipe.send_in(*ctx, x.clone(), Some(labels.to_vec()));
            }
        });
        let out = (0..plan.len()).map(|_| pipe.recv().unwrap().logits).collect();
        feeder.join().unwrap();
        out
    });
    for (k, (a, b)) in got.iter().zip(&mixed).enumerate() {
        assert!(
            a.data == b.0.data,
            "pipeline step {k} differs from the sequential model"
        );
    }
    pipe.finish();
}

/// With [`Pipeline::in_flight`] steps sent and none received, a message that follows them
/// through every stage (spike counts, a snapshot) still gets its answer: the last stage never
/// blocks on the output queue while the caller waits for that answer (it did once the
/// stream kept more steps in flight than the output queue held).
#[test]
fn messages_through_a_full_pipeline_are_answered() {
    let (model, dims) = tiny_model(1);
    let n = model.stages.len();
    let pipe = Pipeline::start(model.stages, 2);
    assert_eq!(pipe.in_flight(), 2 * n);
    let mut rng = Rng::new(5);
    for t in 0..pipe.in_flight() {
        let x = Tensor::from_vec(
            4,
            dims,
            (0..4 * dims.len())
                .map(|_| (rng.next_f32() < 0.25) as u8 as f32)
                .collect(),
        );
        pipe.send(x, Some(vec![t % 4, 1, 2, 3]));
    }
    // A hang is the failure: the answers are awaited on a helper thread, at most a minute.
    let (done_tx, done) = crossbeam_channel::bounded(1);
    std::thread::scope(|s| {
        s.spawn(|| {
            let counts = pipe.spike_counts();
            let snapshot = pipe.snapshot();
            let _ = done_tx.send((counts.is_some(), snapshot.is_some()));
        });
        let answered = done.recv_timeout(std::time::Duration::from_secs(60));
        if answered.is_err() {
            // Unblock the helper (its messages get through once outputs are taken), then fail.
            while pipe.try_recv().is_some() || done.is_empty() {
                let _ = pipe.recv_timeout(std::time::Duration::from_millis(10));
            }
        }
        assert_eq!(
            answered.ok(),
            Some((true, true)),
            "no answer from a full pipeline"
        );
    });
    for _ in 0..pipe.in_flight() {
        assert!(pipe.recv().is_some());
    }
    pipe.finish();
}

/// A stage that panics on a worker fails the pipeline: the caller's waits for outputs end
/// (`recv` gives `None`, `recv_timeout` says disconnected) instead of hanging, sending no
/// longer blocks, and `finish` reports the panic; with one worker or several.
#[test]
fn a_stage_that_panics_fails_the_pipeline() {
    for workers in [1, 2] {
        let (model, dims) = tiny_model(1);
        let pipe = Pipeline::start_on(model.stages, 2, workers);
        let good = Tensor::zeros(4, dims);
        // Not the network's input shape: the first convolution asserts on it.
        let bad = Tensor::zeros(4, stdl_models::Dims::new(dims.c + 1, dims.h, dims.w));
        pipe.send(good.clone(), Some(vec![0, 1, 2, 3]));
        pipe.send(bad, Some(vec![0, 1, 2, 3]));
        // The good step's output may or may not come out before the failure shows (a worker
        // may take the bad step through the first stage before the good one through the
        // rest); nothing after it does, and the wait ends (a hang is the failure: a minute).
        let wait = || pipe.recv_timeout(std::time::Duration::from_secs(60));
        let mut outputs = 0;
        let end = loop {
            match wait() {
                Ok(_) if outputs == 0 => outputs += 1,
                other => break other.map(|_| ()),
            }
        };
        assert_eq!(
            end,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected),
            "{workers} workers"
        );
        assert!(pipe.recv().is_none(), "{workers} workers: recv after the failure");
        // More input than the queues hold is taken (and dropped) without blocking.
        for _ in 0..4 * pipe.in_flight() {
            pipe.send(good.clone(), None);
        }
        let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pipe.finish()));
        assert!(finished.is_err(), "{workers} workers: finish reports the panic");
    }
}

/// `Model::train_batches` with the pipeline overlaps consecutive batches (the first stage
/// starts on the next while the last finishes this one): each batch still gives what it
/// gives trained alone in sequence, bit for bit, handed over in order; an error from the
/// batches ends the run after handing over every batch before it.
#[test]
fn overlapping_batches_give_what_each_gives_alone() {
    use stdl::model::{Model, Trained};
    for batch in [4usize, 1] {
        let (seq, dims) = tiny_model(1);
        let mut rng = Rng::new(33);
        let t_bins = 5;
        // Frames and labels of 6 batches; the iterator fails at the fifth.
        let batches: Vec<(Vec<Tensor>, Vec<usize>)> = (0..6)
            .map(|b| {
                let frames = (0..t_bins)
                    .map(|_| {
                        Tensor::from_vec(
                            batch,
                            dims,
                            (0..batch * dims.len())
                                .map(|_| (rng.next_f32() < 0.3) as u8 as f32 * (1 + rng.below(3)) as f32)
                                .collect(),
                        )
                    })
                    .collect();
                (frames, (0..batch).map(|i| (b + i) % 4).collect())
            })
            .collect();
        let mut par = seq.clone();
        par.pipeline = true;
        assert!(
            par.stages.len() > 1,
            "the test needs a pipeline of several stages"
        );
        let mut seq = Model::Stdl(Box::new(seq));
        let want: Vec<(Tensor, f32)> = batches[..4]
            .iter()
            .map(|(frames, labels)| seq.train_batch(t_bins, |t| frames[t].clone(), labels))
            .collect();
        let mut par = Model::Stdl(Box::new(par));
        let mut got: Vec<Trained> = Vec::new();
        let items = batches.iter().enumerate().map(|(k, (frames, labels))| {
            if k == 4 {
                Err("stop")
            } else {
                Ok((frames, labels.clone()))
            }
        });
        let end = par.train_batches(
            t_bins,
            items,
            |frames, t| frames[t].clone(),
            |r| {
                got.push(r);
                Ok(())
            },
        );
        assert_eq!(end, Err("stop"), "batch {batch}: the batches' error comes back");
        assert_eq!(
            got.len(),
            4,
            "batch {batch}: every batch before the error is handed over"
        );
        for (k, (r, (logits, loss))) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                r.labels, batches[k].1,
                "batch {batch}: batch {k} handed over out of order"
            );
            assert!(
                r.logits.data == logits.data && r.loss.to_bits() == loss.to_bits(),
                "batch {batch}: batch {k} differs from training it alone in sequence"
            );
            assert!(!r.diverged);
        }
        // The stages are back in the model, with the weights the sequence gave.
        assert!(
            par.named_params() == seq.named_params(),
            "batch {batch}: the weights differ after the run"
        );
        // An error from `done` stops sending; the pipeline still ends cleanly.
        let mut calls = 0;
        let end = par.train_batches(
            t_bins,
            batches
                .iter()
                .map(|(frames, labels)| Ok((frames, labels.clone()))),
            |frames, t| frames[t].clone(),
            |_| {
                calls += 1;
                if calls == 2 {
                    Err("enough")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!((end, calls), (Err("enough"), 2), "batch {batch}");
        assert!(par
            .named_params()
            .values()
            .all(|v| v.iter().all(|x| x.is_finite())));
    }
}
