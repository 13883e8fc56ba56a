//! `stdl continual` on the real N-MNIST samples: the accuracy matrix, its summaries, the
//! replay buffer's budget, the domain and task protocols, the strategies, and errors for bad
//! task lists.

use std::process::Command;

use crate::data;

/// `stdl continual` on N-MNIST at `root`, writing to `out`, without a progress bar.
fn continual(root: &std::path::Path, out: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stdl"));
    c.args(["continual", "--dataset", "nmnist", "--quiet"])
        .arg("--root")
        .arg(root)
        .arg("--out")
        .arg(out);
    c
}

fn run(root: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let o = continual(root, out)
        .args(["--tasks", "0,1/2,3/4,5"])
        .args(["--samples-per-class", "40", "--t-bins", "6", "--seed", "1"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.lines().last().unwrap().starts_with("average accuracy "),
        "{stdout}"
    );
    let png = std::fs::read(out.join("continual.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    serde_json::from_str(&std::fs::read_to_string(out.join("continual.json")).unwrap()).unwrap()
}

fn matrix(r: &serde_json::Value) -> Vec<Vec<f64>> {
    r["accuracy_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn class_incremental_forgets_and_replay_within_its_budget_remembers() {
    let Some(d) = data!() else { return };
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let tmp = tempfile::tempdir().unwrap();
    let plain = run(&root, &tmp.path().join("plain"), &[]);
    let budget = 1u64 << 20;
    let replay = run(&root, &tmp.path().join("replay"), &["--replay-bytes", "1MiB"]);
    for r in [&plain, &replay] {
        let m = matrix(r);
        assert_eq!(m.len(), 3);
        assert!(m.iter().flatten().all(|a| (0.0..=1.0).contains(a)));
        // Each task is learned: right after it, its accuracy is far above chance (10%).
        let diag = (0..3).map(|i| m[i][i]).sum::<f64>() / 3.0;
        assert!(diag > 0.6, "diagonal {m:?}");
        // Tasks not yet seen are never predicted in class-incremental learning.
        assert_eq!(m[0][1] + m[0][2] + m[1][2], 0.0, "{m:?}");
        // The summaries are those of the matrix.
        let avg = m[2].iter().sum::<f64>() / 3.0;
        assert!((r["average_accuracy"].as_f64().unwrap() - avg).abs() < 1e-5);
        let bwt = ((m[2][0] - m[0][0]) + (m[2][1] - m[1][1])) / 2.0;
        assert!((r["backward_transfer"].as_f64().unwrap() - bwt).abs() < 1e-5);
        assert_eq!(r["label_space"], 6, "the classes of the experiment");
        let per_task = r["samples_per_task"].as_array().unwrap();
        assert!(
            per_task.iter().all(|p| p[0].as_u64().unwrap() == 80),
            "{per_task:?}"
        );
    }
    // Without replay the first task is forgotten once two others have been learned.
    let m = matrix(&plain);
    assert!(
        m[2][0] < 0.2 && plain["forgetting"].as_f64().unwrap() > 0.5,
        "{m:?}"
    );
    assert!(plain["replay"].is_null());
    // Replay keeps a reservoir of the whole stream within its budget, and it helps.
    let b = &replay["replay"];
    let per = b["bytes_per_sample"].as_u64().unwrap();
    assert_eq!(per, 6 * 2 * 34 * 34 + 8);
    assert_eq!(b["capacity_samples"].as_u64().unwrap(), budget / per);
    assert_eq!(b["held_samples"], b["capacity_samples"]);
    assert!(b["allocated_bytes"].as_u64().unwrap() <= budget);
    let classes: Vec<u64> = b["held_per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_u64().unwrap())
        .collect();
    assert_eq!(classes, vec![0, 1, 2, 3, 4, 5], "the reservoir spans every task");
    assert!(
        replay["average_accuracy"].as_f64().unwrap() > plain["average_accuracy"].as_f64().unwrap() + 0.1,
        "replay {} vs none {}",
        replay["average_accuracy"],
        plain["average_accuracy"]
    );
}

#[test]
fn domain_incremental_has_one_label_space_for_all_tasks() {
    let Some(d) = data!() else { return };
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let tmp = tempfile::tempdir().unwrap();
    let r = run(&root, tmp.path(), &["--protocol", "domain"]);
    assert_eq!(r["label_space"], 2);
    assert!((r["chance"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    let m = matrix(&r);
    // Every task is judged in the shared label space from the start: no structural zeros.
    assert!(m[0][1] > 0.0 || m[0][2] > 0.0, "{m:?}");
    assert!((0..3).map(|i| m[i][i]).sum::<f64>() / 3.0 > 0.6, "{m:?}");
}

#[test]
fn bad_task_lists_and_budgets_say_what_is_wrong() {
    let Some(d) = data!() else { return };
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let tmp = tempfile::tempdir().unwrap();
    for (args, expect) in [
        (vec!["--tasks", "0,1"], "at least two tasks"),
        (vec!["--tasks", "0,1/1,2"], "more than one task"),
        (vec!["--tasks", "0,1/10,11"], "class 10 is not in nmnist"),
        (
            vec!["--tasks", "0/1", "--replay-bytes", "1000"],
            "cannot hold one sample",
        ),
        (
            vec!["--tasks", "0/1", "--replay-bytes", "2 parsecs"],
            "unknown unit",
        ),
    ] {
        let o = continual(&root, tmp.path())
            .args(["--samples-per-class", "4"])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn task_incremental_is_judged_within_each_task_and_names_avalanche_metrics() {
    let Some(d) = data!() else { return };
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let tmp = tempfile::tempdir().unwrap();
    let class = run(&root, &tmp.path().join("c"), &[]);
    let task = run(&root, &tmp.path().join("t"), &["--protocol", "task"]);
    assert_eq!(task["label_space"], 2);
    // The same learning (the same seed, no masking in training): given its task, an old
    // sample only has to be told from the other class of its pair.
    let (mc, mt) = (matrix(&class), matrix(&task));
    for j in 0..3 {
        assert!(mt[2][j] >= mc[2][j], "task {j}: {mt:?} vs {mc:?}");
    }
    assert!(
        task["average_accuracy"].as_f64().unwrap() > class["average_accuracy"].as_f64().unwrap() + 0.1,
        "{mt:?} vs {mc:?}"
    );
    let av = &task["avalanche"];
    assert!(
        av["Top1_Acc_Exp/eval_phase/test_stream/Task002/Exp002"]
            .as_f64()
            .is_some(),
        "{av}"
    );
    // Avalanche's forgetting is against the accuracy right after learning: minus BWT.
    let f = av["StreamForgetting/eval_phase/test_stream"].as_f64().unwrap();
    assert!((f + task["backward_transfer"].as_f64().unwrap()).abs() < 1e-6);
    assert_eq!(
        class["avalanche"]["Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp002"],
        class["accuracy_matrix"][2][2]
    );
}

#[test]
fn strategies_run_compare_in_one_table_and_refuse_bptt() {
    let Some(d) = data!() else { return };
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let tmp = tempfile::tempdir().unwrap();
    let o = continual(&root, tmp.path())
        .args(["--tasks", "0,1/2,3", "--samples-per-class", "20", "--t-bins", "6"])
        .args(["--compare", "naive,ewc,lwf+replay", "--replay-bytes", "256KiB"])
        .args(["--consolidate-every", "10"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let table: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("compare.json")).unwrap()).unwrap();
    let names: Vec<&str> = table.iter().map(|r| r["learner"].as_str().unwrap()).collect();
    assert_eq!(names, ["naive", "ewc", "lwf+replay"]);
    for name in names {
        assert!(stdout.lines().any(|l| l.starts_with(name)), "{stdout}");
        let r: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join(name).join("continual.json")).unwrap(),
        )
        .unwrap();
        let kind = name.trim_end_matches("+replay");
        assert_eq!(r["config"]["strategy"]["kind"], kind);
        assert_eq!(r["replay"].is_null(), !name.ends_with("+replay"), "{name}");
    }
    // The strategies act inside STDL's per-step updates.
    let o = continual(&root, tmp.path())
        .args([
            "--tasks",
            "0/1",
            "--samples-per-class",
            "4",
            "--method",
            "bptt",
            "--strategy",
            "ewc",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("use --method stdl"));
}
