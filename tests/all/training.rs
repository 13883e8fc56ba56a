//! Training on real data with a reduced budget (the full accuracy run is
//! `benches/accuracy_nmnist.sh`), checkpoints and resume, evaluation, the memory claims.

use stdl::stdl::{plan, StdlModel};
use stdl_models::network::NetworkSpec;
use stdl_models::optim::OptimConfig;
use stdl_models::{Dims, Preset, Rng, Tensor};

use crate::data;

use crate::common::stdl;

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn train_resume_and_eval_on_real_nmnist() {
    let Some(d) = data!() else { return };
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let tmp = tempfile::tempdir().unwrap();
    for method in ["stdl", "bptt"] {
        let out = tmp.path().join(method);
        let run = |epochs: &str, resume: bool| {
            let mut c = crate::common::train_nmnist(&root, "nmnist", &out);
            c.args(["--method", method]).args([
                "--limit-samples",
                "160",
                "--t-bins",
                "6",
                "--batch",
                "16",
                "--epochs",
                epochs,
                "--seed",
                "3",
            ]);
            if resume {
                c.arg("--resume");
            }
            let o = c.output().unwrap();
            assert!(
                o.status.success(),
                "{method}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        // One epoch, then resume for the second (as after an interruption).
        run("1", false);
        assert_eq!(json(&out.join("checkpoint/state.json"))["progress"]["epoch"], 1);
        run("2", true);
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        let lines = crate::common::json_lines(&metrics);
        assert_eq!(lines.len(), 2, "{method}: {metrics}");
        for (i, m) in lines.iter().enumerate() {
            assert_eq!(m["epoch"], i + 1);
            for k in [
                "train_loss",
                "train_accuracy",
                "test_loss",
                "test_accuracy",
                "seconds",
                "peak_rss_bytes",
            ] {
                assert!(m.get(k).is_some(), "{method}: metrics lack {k}");
            }
        }
        let r = json(&out.join("result.json"));
        for k in ["test_accuracy", "train_accuracy", "epochs", "method", "seconds"] {
            assert!(r.get(k).is_some(), "result lacks {k}");
        }
        assert_eq!(r["method"], method);
        assert_eq!(r["epochs"], 2);
        let acc = r["test_accuracy"].as_f64().unwrap();
        // Chance is 0.1; with 100 test samples, 0.2 is more than 3 standard deviations above it.
        assert!(
            acc > 0.2,
            "{method}: test accuracy {acc} after 2 short epochs is not above chance (0.1)"
        );
        assert!(out.join("metrics.png").exists());
        // Evaluating the checkpoint on the same 100 test samples gives the same accuracy.
        let o = stdl()
            .args(["eval", "--dataset", "nmnist", "--limit-samples", "160"])
            .arg("--root")
            .arg(&root)
            .arg("--checkpoint")
            .arg(out.join("checkpoint"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let eval_acc = e["accuracy"].as_f64().unwrap();
        assert!(
            (eval_acc - acc).abs() < 1e-6,
            "{method}: eval {eval_acc} differs from the run's last test {acc}"
        );
    }
}

/// Peak RSS of `stdl bench memory` training `batches` sequences of `t` steps.
fn bench_memory(method: &str, t: usize, batches: usize) -> u64 {
    let o = stdl()
        // One worker thread: with two, how many pooled buffers are in flight at once depends
        // on scheduling, which adds run-to-run noise of a few percent (README, "Memory").
        .args([
            "bench",
            "memory",
            "--json",
            "--preset",
            "nmnist",
            "--batch",
            "16",
            "--batches",
            &batches.to_string(),
            "--threads",
            "1",
        ])
        .args(["--method", method])
        .args(["--t-bins", &t.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["peak_rss_bytes"].as_u64().unwrap()
}

#[test]
fn stdl_memory_is_constant_in_time_and_bptt_is_not() {
    // Each measurement is a fresh process. The two STDL runs take the same number of steps
    // (20 × 10 and 2 × 100): a convolution switches between its sparse and dense paths as
    // its input's density changes while the network learns, and the dense path's first use
    // allocates its buffers; equal step counts visit the same paths, so only T differs.
    let (s10, s100) = (bench_memory("stdl", 10, 20), bench_memory("stdl", 100, 2));
    let rel = (s100 as f64 - s10 as f64).abs() / s10 as f64;
    assert!(
        rel < 0.05,
        "STDL peak RSS T=10 {s10} vs T=100 {s100}: {:.1}% apart",
        rel * 100.0
    );
    let (b10, b50) = (bench_memory("bptt", 10, 2), bench_memory("bptt", 50, 2));
    assert!(
        b50 as f64 > 1.5 * b10 as f64,
        "BPTT peak RSS T=10 {b10} vs T=50 {b50} should grow with T"
    );
}

#[test]
fn plan_json_names_every_subnetwork() {
    let o = stdl()
        .args(["plan", "dvs-gesture", "--json", "--batch", "8"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let subnets = v["subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 5);
    assert!(subnets.last().unwrap()["is_last"].as_bool().unwrap());
    // A larger budget never chooses smaller auxiliary networks.
    let o = stdl()
        .args([
            "plan",
            "dvs-gesture",
            "--json",
            "--batch",
            "8",
            "--aux-budget",
            "4x",
        ])
        .output()
        .unwrap();
    let big: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for (a, b) in subnets.iter().zip(big["subnets"].as_array().unwrap()) {
        assert!(b["aux_units"].as_array().unwrap().len() >= a["aux_units"].as_array().unwrap().len());
    }
}

/// The auxiliary networks chosen under a budget are the largest that fit: each non-last
/// subnetwork's predicted step memory is within the budget (unless even a bare head is not),
/// the next larger spaced subset of units would not fit, and the predicted bytes are those
/// of the network actually built from the plan. At several budgets, so the choice moves.
#[test]
fn the_plan_takes_the_largest_auxiliary_network_within_the_budget() {
    use stdl::stdl::plan::cost;
    use stdl_models::network::spaced_subset;
    use stdl_models::preset::Budget;
    let preset = Preset::load("dvs-gesture").unwrap();
    let spec = NetworkSpec::new(&preset).unwrap();
    let n = spec.units.len();
    let mut sizes = std::collections::BTreeSet::new();
    for multiple in ["0.5x", "1x", "1.5x", "3x", "10x"] {
        let budget = Budget::Multiple(multiple.into());
        let p = plan(&spec, 8, Some(&budget), 2).unwrap();
        for sp in p.subnets.iter().filter(|s| !s.is_last) {
            let mut rng = Rng::new(0);
            let (body, head) = stdl::stdl::build_stage_layers(&spec, sp, &mut rng).unwrap();
            assert_eq!(
                sp.bytes,
                cost(&body, &head, 8, 2),
                "{multiple}: predicted bytes of another network"
            );
            let d = sp.aux_units.len();
            assert!(
                sp.bytes <= p.budget_bytes || d == 0,
                "{multiple}: units {:?} with aux {:?}: {} B over the budget {} B",
                sp.units,
                sp.aux_units,
                sp.bytes,
                p.budget_bytes
            );
            let l = sp.units.end - 1;
            for bigger in d + 1..n - l {
                let aux = spaced_subset(l, n, bigger);
                if aux.len() <= d {
                    continue;
                }
                let try_sp = stdl::stdl::SubnetPlan {
                    aux_units: aux.clone(),
                    ..sp.clone()
                };
                let (body, head) = stdl::stdl::build_stage_layers(&spec, &try_sp, &mut Rng::new(0)).unwrap();
                let c = cost(&body, &head, 8, 2);
                assert!(
                    c > p.budget_bytes,
                    "{multiple}: units {:?}: aux {aux:?} ({c} B) fits the budget {} B but {:?} was chosen",
                    sp.units,
                    p.budget_bytes,
                    sp.aux_units
                );
            }
            sizes.insert(d);
        }
    }
    assert!(
        sizes.len() >= 3,
        "the budgets chose only auxiliary sizes {sizes:?}"
    );
}

pub(crate) fn tiny_model(update_every: usize) -> (StdlModel, Dims) {
    let preset = Preset::load("tiny").unwrap();
    let spec = NetworkSpec::new(&preset).unwrap();
    let p = plan(&spec, 4, None, 2).unwrap();
    let input = spec.input;
    (
        StdlModel::new(spec, p, 1, OptimConfig::default(), update_every).unwrap(),
        input,
    )
}

#[test]
fn every_subnetwork_updates_after_every_step_or_every_nth() {
    let mut rng = Rng::new(4);
    let labels = [0usize, 1, 2, 3];
    for n in [1usize, 3] {
        let (mut m, dims) = tiny_model(n);
        let mut before: Vec<Vec<f32>> = m
            .stages
            .iter()
            .map(|s| s.body.params()[0].value.clone())
            .collect();
        for step in 1..=6 {
            let x = Tensor::from_vec(
                4,
                dims,
                (0..4 * dims.len())
                    .map(|_| (rng.next_f32() < 0.3) as u8 as f32 * 2.0)
                    .collect(),
            );
            m.step(x, Some(&labels));
            let now: Vec<Vec<f32>> = m
                .stages
                .iter()
                .map(|s| s.body.params()[0].value.clone())
                .collect();
            for (k, (b, a)) in before.iter().zip(&now).enumerate() {
                assert_eq!(
                    b != a,
                    step % n == 0,
                    "update_every {n}, step {step}, subnetwork {k}"
                );
            }
            before = now;
            // Nothing from earlier steps is kept: one forward cache at most, consumed.
            assert!(m.stages.iter().all(|s| s.body.kept() == 0 && s.head.kept() == 0));
        }
    }
}

#[test]
fn pipelined_training_gives_the_same_weights_bit_for_bit() {
    let Some(d) = data!() else { return };
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let tmp = tempfile::tempdir().unwrap();
    // The checkpoint's weights, and the metrics of the epoch (the pipeline overlaps
    // consecutive batches: each batch's loss and accuracy must still be its own).
    let weights = |pipeline: bool, batch: &str| -> (Vec<u8>, Vec<serde_json::Value>) {
        let out = tmp.path().join(format!("p{pipeline}b{batch}"));
        let mut c = stdl();
        c.args(["train", "--dataset", "nmnist", "--preset", "nmnist", "--quiet"])
            .args([
                "--limit-samples",
                "64",
                "--t-bins",
                "4",
                "--epochs",
                "1",
                "--seed",
                "5",
            ])
            .args(["--batch", batch])
            .arg("--root")
            .arg(&root)
            .arg("--out")
            .arg(&out);
        if pipeline {
            c.arg("--pipeline");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        let metrics = metrics
            .lines()
            .map(|l| {
                let m: serde_json::Value = serde_json::from_str(l).unwrap();
                let keys = ["train_loss", "train_accuracy", "test_loss", "test_accuracy"];
                serde_json::json!(keys.map(|k| m[k].clone()))
            })
            .collect();
        (
            std::fs::read(out.join("checkpoint/model.safetensors")).unwrap(),
            metrics,
        )
    };
    // At batch 1 the convolutions' products are cut into chunks an idle worker may take.
    for batch in ["16", "1"] {
        let (piped, seq) = (weights(true, batch), weights(false, batch));
        assert!(piped.0 == seq.0, "pipelined training differs at batch {batch}");
        assert_eq!(
            piped.1, seq.1,
            "pipelined training's metrics differ at batch {batch}"
        );
    }
}

#[test]
fn the_plan_and_checkpoints_do_not_depend_on_the_number_of_threads() {
    // The plan is chosen from one thread's figures: the same on any machine.
    let plan_on = |threads: &str| -> serde_json::Value {
        let o = stdl()
            .env("RAYON_NUM_THREADS", threads)
            .args(["plan", "dvs-gesture", "--json", "--batch", "8"])
            .output()
            .unwrap();
        assert!(o.status.success());
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_object_mut().unwrap().remove("threads");
        v
    };
    let one = plan_on("1");
    assert_eq!(one, plan_on("2"));
    assert_eq!(one, plan_on("16"));
    assert!(one["workspace_per_thread_bytes"].as_u64().unwrap() > 0);
    // A checkpoint trained on 1 thread continues on 16, and the other way round.
    let Some(d) = data!() else { return };
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let tmp = tempfile::tempdir().unwrap();
    for (first, then) in [("1", "16"), ("16", "1")] {
        let out = tmp.path().join(format!("from{first}"));
        for (threads, epochs, resume) in [(first, "1", false), (then, "2", true)] {
            let mut c = crate::common::train_nmnist(&root, "dvs-gesture", &out);
            c.env("RAYON_NUM_THREADS", threads)
                .args(["--batch", "8", "--t-bins", "2", "--limit-samples", "16"])
                .args(["--epochs", epochs]);
            if resume {
                c.arg("--resume");
            }
            let o = c.output().unwrap();
            assert!(
                o.status.success(),
                "{threads} threads after {first}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert_eq!(json(&out.join("checkpoint/state.json"))["progress"]["epoch"], 2);
    }
}

/// Settings are data: a run's `OUT/config.toml` repeats it exactly through `--config`, a flag
/// given overrides the file, `--surrogate` reaches the network (and its checkpoint), and one
/// checkpoint format serves `eval` for a training run's and a stream's checkpoint alike.
#[test]
fn a_saved_config_repeats_a_run_and_every_command_reads_one_checkpoint_format() {
    let Some(d) = data!() else { return };
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let ok = |cmd: &mut std::process::Command| {
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o
    };
    let mut first = crate::common::train_nmnist(&root, "nmnist", &a);
    first.args([
        "--limit-samples",
        "32",
        "--epochs",
        "1",
        "--t-bins",
        "4",
        "--batch",
        "8",
    ]);
    first.args([
        "--seed",
        "5",
        "--surrogate",
        "triangle",
        "--lr-schedule",
        "constant",
    ]);
    ok(&mut first);
    let cfg = std::fs::read_to_string(a.join("config.toml")).unwrap();
    assert!(
        cfg.contains("surrogate = \"triangle\"") && cfg.contains("seed = 5"),
        "{cfg}"
    );
    let preset = std::fs::read_to_string(a.join("checkpoint/preset.toml")).unwrap();
    assert!(
        preset.contains("triangle"),
        "the surrogate flag must reach the network: {preset}"
    );
    // The same run from the file alone: the same weights, bit for bit.
    ok(stdl()
        .args(["train", "--quiet", "--config"])
        .arg(a.join("config.toml"))
        .arg("--out")
        .arg(&b));
    let weights = |dir: &std::path::Path| std::fs::read(dir.join("checkpoint/model.safetensors")).unwrap();
    assert_eq!(weights(&a), weights(&b), "--config must repeat the run");
    // A flag over the file wins, and changes the run.
    ok(stdl()
        .args(["train", "--quiet", "--seed", "6", "--config"])
        .arg(a.join("config.toml"))
        .arg("--out")
        .arg(&c));
    assert!(std::fs::read_to_string(c.join("config.toml"))
        .unwrap()
        .contains("seed = 6"));
    assert_ne!(weights(&a), weights(&c));
    // A bad file names itself and the setting.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, cfg.replace("batch = 8", "batch = 0")).unwrap();
    let o = stdl().args(["train", "--config"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("bad.toml") && err.contains("--batch"),
        "{err}"
    );

    // A stream's checkpoint, evaluated like a training run's.
    let ck = tmp.path().join("stream-ck");
    ok(stdl()
        .args([
            "stream",
            "--source",
            "synthetic:1",
            "--preset",
            "nmnist",
            "--max-steps",
            "40",
        ])
        .arg("--checkpoint-dir")
        .arg(&ck)
        .arg("--predictions")
        .arg(tmp.path().join("p.jsonl")));
    let state = json(&ck.join("state.json"));
    assert_eq!(
        (state["version"].as_u64(), &state["progress"]["kind"]),
        (Some(2), &serde_json::json!("stream"))
    );
    assert_eq!(state["progress"]["steps"], 40);
    for dir in [a.join("checkpoint"), ck] {
        let o = ok(stdl()
            .args([
                "eval",
                "--dataset",
                "nmnist",
                "--limit-samples",
                "8",
                "--checkpoint",
            ])
            .arg(&dir)
            .arg("--root")
            .arg(&root));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["samples"], 8, "{v}");
        assert!(
            v["accuracy"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)),
            "{v}"
        );
    }
}
