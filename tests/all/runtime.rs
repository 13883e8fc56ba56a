//! The streaming runtime: pipeline stages on threads give the sequential results bit for bit.

use stdl::runtime::Pipeline;
use stdl_models::{Rng, Tensor};

use crate::training::tiny_model;

#[test]
fn pipeline_stages_equal_sequential_bit_for_bit() {
    for update_every in [1usize, 3] {
        let (mut seq, dims) = tiny_model(update_every);
        let par = seq.clone();
        let mut rng = Rng::new(21);
        let steps: Vec<(Tensor, Option<Vec<usize>>, bool)> = (0..24)
            .map(|t| {
                let x = Tensor::from_vec(
                    4,
                    dims,
                    (0..4 * dims.len())
                        .map(|_| (rng.next_f32() < 0.25) as u8 as f32 * (1 + rng.below(3)) as f32)
                        .collect(),
                );
                // Labelled, then unlabelled (prediction only); a reset between samples.
                let labels = (t < 18).then(|| vec![t % 4, 1, 2, 3]);
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
        let pipe = Pipeline::start(par.stages, 2);
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
                "update_every {update_every}: logits differ at step {t}"
            );
        }
        let stages = pipe.finish();
        for (k, (a, b)) in stages.iter().zip(&seq.stages).enumerate() {
            let pa: Vec<Vec<f32>> = a
                .body
                .params()
                .iter()
                .chain(a.head.params().iter())
                .map(|p| p.value.clone())
                .collect();
            let pb: Vec<Vec<f32>> = b
                .body
                .params()
                .iter()
                .chain(b.head.params().iter())
                .map(|p| p.value.clone())
                .collect();
            assert!(pa == pb, "stage {k}: parameters differ after the run");
            assert_eq!(a.labelled_steps, 18);
        }
    }
}

#[test]
fn warm_up_changes_no_number() {
    let (mut plain, dims) = tiny_model(1);
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
        let labels = [t % 4, 1, 2, 3];
        let a = plain.step(x.clone(), Some(&labels)).0;
        let b = warmed.step(x, Some(&labels)).0;
        assert_eq!(a, b, "step {t}: logits differ after warm_up");
    }
    assert!(
        plain.named_params() == warmed.named_params(),
        "weights differ after warm_up"
    );
}
