//! `stdl stream` end to end: synthetic scenes, a labelled replay of a real recording, stdin.

use std::process::{Command, Stdio};

use crate::common::{json_lines, last_json_line};
use crate::data;

use crate::common::stdl;

#[test]
fn synthetic_stream_learns_above_chance_and_summarises() {
    let tmp = tempfile::tempdir().unwrap();
    let (pred, summary) = (tmp.path().join("p.jsonl"), tmp.path().join("s.json"));
    let o = stdl()
        .args([
            "stream",
            "--source",
            "synthetic:3",
            "--preset",
            "tiny",
            "--max-steps",
            "1500",
            "--bin-us",
            "10000",
        ])
        .arg("--predictions")
        .arg(&pred)
        .arg("--summary")
        .arg(&summary)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    for k in ["events", "steps", "dropped_bins", "accuracy", "peak_rss_bytes"] {
        assert!(s.get(k).is_some(), "summary lacks {k}");
    }
    assert_eq!(s["steps"], 1500);
    assert_eq!(s["dropped_bins"], 0);
    // 4 classes (the tiny preset): chance is 0.25.
    let acc = s["accuracy"].as_f64().unwrap();
    assert!(acc > 0.4, "online accuracy {acc} on the synthetic scene");
    let lines = json_lines(std::fs::read(&pred).unwrap());
    assert_eq!(lines.len(), 1500);
    for k in ["t_us", "class", "confidence", "label"] {
        assert!(lines[0].get(k).is_some(), "prediction lacks {k}");
    }
    assert!(lines
        .windows(2)
        .all(|w| w[0]["t_us"].as_u64() < w[1]["t_us"].as_u64()));
}

#[test]
fn metrics_lines_carry_each_lif_layers_spike_density() {
    let tmp = tempfile::tempdir().unwrap();
    let metrics = tmp.path().join("m.jsonl");
    let run = |quiet: bool, metrics: &std::path::Path| {
        let mut c = crate::common::stream("synthetic:1", "tiny");
        c.args(["--max-steps", "600", "--speed", "4", "--metrics-every-s", "0.3"]);
        if quiet {
            c.arg("--quiet");
        }
        c.arg("--metrics").arg(metrics).output().unwrap()
    };
    let o = run(false, &metrics);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = json_lines(std::fs::read(&metrics).unwrap());
    assert!(lines.len() >= 2, "{} metrics lines", lines.len());
    // One entry per LIF layer of every stage, in stage order, each a density in [0, 1] over
    // the sampled steps since the previous line.
    let layers = lines[0]["spike_density"].as_array().unwrap().len();
    assert!(layers >= 2);
    let mut seen_spikes = false;
    for l in &lines {
        let d = l["spike_density"].as_array().unwrap();
        assert_eq!(d.len(), layers);
        let stages: Vec<u64> = d.iter().map(|e| e["stage"].as_u64().unwrap()).collect();
        assert!(stages.windows(2).all(|w| w[0] <= w[1]), "{stages:?}");
        for e in d {
            if let Some(x) = e["density"].as_f64() {
                assert!((0.0..=1.0).contains(&x), "{e}");
                seen_spikes |= x > 0.0;
            }
        }
    }
    assert!(seen_spikes, "some layer spikes");
    let stderr_lines = String::from_utf8_lossy(&o.stderr).lines().count();
    assert!(stderr_lines > lines.len(), "the lines go to standard error too");
    // --quiet: the file gets its lines, standard error only the summary.
    let quiet = tmp.path().join("q.jsonl");
    let o = run(true, &quiet);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(json_lines(std::fs::read(&quiet).unwrap()).len() >= 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("\"steps\":600"), "{err}");
}

#[test]
fn labelled_replay_of_a_real_recording_and_stdin() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let labels = tmp.path().join("labels.csv");
    std::fs::write(
        &labels,
        "class,startTime_usec,endTime_usec\n1,41300000,44000000\n2,44000000,48300000\n",
    )
    .unwrap();
    let file = d.join("aedat2/dvs128_alex_walking_again.aedat");
    let o = stdl()
        .args([
            "stream",
            "--preset",
            "tiny",
            "--bin-us",
            "20000",
            "--metrics-every-s",
            "0",
        ])
        .arg("--source")
        .arg(format!("file://{}", file.display()))
        .arg("--labels")
        .arg(&labels)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let preds = json_lines(&o.stdout);
    // 6.89 s of events in 20 ms bins.
    assert!(
        preds.len() >= 340 && preds.len() <= 346,
        "{} predictions",
        preds.len()
    );
    assert!(preds.iter().any(|p| p["label"] == 0) && preds.iter().any(|p| p["label"] == 1));
    // The same bytes through stdin give the same predictions.
    let child = stdl()
        .args([
            "stream",
            "--source",
            "stdin",
            "--preset",
            "tiny",
            "--bin-us",
            "20000",
            "--metrics-every-s",
            "0",
        ])
        .arg("--labels")
        .arg(&labels)
        .stdin(Stdio::from(std::fs::File::open(&file).unwrap()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let preds2 = json_lines(&out.stdout);
    assert_eq!(preds, preds2);
}

#[test]
fn soak_memory_is_flat_scaled_down() {
    // The full check is `stdl bench soak --steps 1000000` (README); CI runs 15,000 steps.
    let o = stdl()
        .args(["bench", "soak", "--json", "--preset", "tiny", "--steps", "15000"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["steps"], 15000);
    let g = v["growth"].as_f64().unwrap();
    assert!(
        g.abs() < 0.05,
        "peak RSS grew {:.1}% from step 10,000 to 15,000",
        g * 100.0
    );
}

#[test]
fn kill_9_then_resume_continues_from_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("ck");
    let mut child = checkpointing_stream(4, &ck)
        .arg("--predictions")
        .arg(tmp.path().join("p1.jsonl"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&ck, 1500, &mut child);
    child.kill().unwrap(); // SIGKILL: no chance to write anything more
    child.wait().unwrap();
    let saved = checkpoint_steps(&ck).expect("the last checkpoint is complete and readable");
    assert!(saved >= 1500 && saved % 500 == 0, "checkpoint at step {saved}");
    let o = stdl()
        .args([
            "stream",
            "--source",
            "synthetic:4",
            "--preset",
            "tiny",
            "--resume",
            "--metrics-every-s",
            "1000",
        ])
        .args(["--max-steps", &(saved + 1000).to_string()])
        .arg("--checkpoint-dir")
        .arg(&ck)
        .arg("--predictions")
        .arg(tmp.path().join("p2.jsonl"))
        .arg("--summary")
        .arg(tmp.path().join("s.json"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("at step {saved}")), "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(s["steps"].as_u64().unwrap(), saved + 1000);
    // 1000 new predictions, all after the checkpoint's time.
    let p2 = std::fs::read_to_string(tmp.path().join("p2.jsonl")).unwrap();
    assert_eq!(p2.lines().count(), 1000);
    assert_eq!(
        checkpoint_steps(&ck),
        Some(saved + 1000),
        "final checkpoint at the end of the resumed run"
    );
}

#[test]
fn ctrl_c_stops_cleanly_with_a_final_checkpoint_and_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("ck");
    let summary = tmp.path().join("s.json");
    let mut child = checkpointing_stream(5, &ck)
        .arg("--summary")
        .arg(&summary)
        .arg("--predictions")
        .arg(tmp.path().join("p.jsonl"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&ck, 1, &mut child);
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("state.json")).unwrap()).unwrap();
    // The final checkpoint is at the very step the run stopped.
    assert_eq!(s["steps"], c["progress"]["steps"]);
    assert!(s["steps"].as_u64().unwrap() >= 500);
}

#[test]
fn live_labels_from_a_followed_file() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let labels = tmp.path().join("live.txt");
    std::fs::write(&labels, "41300000 0\n44000000 1\n").unwrap();
    // Paced at 4x real time so the label thread has read the file long before those times.
    let o = stdl()
        .args([
            "stream",
            "--preset",
            "tiny",
            "--bin-us",
            "20000",
            "--metrics-every-s",
            "1000",
            "--speed",
            "4",
        ])
        .arg("--source")
        .arg(d.join("aedat2/dvs128_alex_walking_again.aedat"))
        .arg("--live-labels")
        .arg(&labels)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let preds = json_lines(&o.stdout);
    let labelled = preds.iter().filter(|p| p.get("label").is_some()).count();
    assert!(
        labelled as f64 > 0.9 * preds.len() as f64,
        "{labelled} of {} bins labelled",
        preds.len()
    );
    let first_1 = preds.iter().find(|p| p["label"] == 1).unwrap()["t_us"]
        .as_u64()
        .unwrap();
    assert!(
        (44_000_000..44_100_000).contains(&first_1),
        "label 1 starts at {first_1}"
    );
}

#[test]
fn a_dataset_split_streams_with_its_labels() {
    let Some(d) = data!() else { return };
    let o = stdl()
        .args([
            "stream",
            "--dataset",
            "nmnist",
            "--split",
            "test",
            "--preset",
            "nmnist",
            "--bin-us",
            "30000",
        ])
        .args(["--metrics-every-s", "1000"])
        .arg("--root")
        .arg(d.join("nmnist/slayer_NMNISTsmall"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let preds = json_lines(&o.stdout);
    // 100 samples of about 0.3 s each, back to back, in 30 ms bins.
    assert!(preds.len() > 900 && preds.len() < 1200, "{} bins", preds.len());
    // The first test digits are 7, 2, 1, 0 (MNIST's test order).
    let mut labels: Vec<u64> = preds.iter().filter_map(|p| p["label"].as_u64()).collect();
    labels.dedup();
    assert_eq!(&labels[..4], &[7, 2, 1, 0]);
}

/// An endless synthetic stream (tiny preset) that checkpoints into `ck` every 500 steps.
fn checkpointing_stream(seed: u32, ck: &std::path::Path) -> Command {
    let mut c = stdl();
    c.args([
        "stream",
        "--source",
        &format!("synthetic:{seed}"),
        "--preset",
        "tiny",
        "--max-steps",
        "10000000",
    ])
    .args(["--checkpoint-every", "500", "--metrics-every-s", "1000"])
    .arg("--checkpoint-dir")
    .arg(ck);
    c
}

/// Steps recorded in a checkpoint's `state.json`, once it exists.
fn checkpoint_steps(ck: &std::path::Path) -> Option<u64> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("state.json")).ok()?).ok()?;
    v["progress"]["steps"].as_u64()
}

/// Waits until the checkpoint records at least `steps` (kills `child` and fails after 2 minutes).
fn wait_for_checkpoint(ck: &std::path::Path, steps: u64, child: &mut std::process::Child) {
    let t0 = std::time::Instant::now();
    while checkpoint_steps(ck).unwrap_or(0) < steps {
        if t0.elapsed().as_secs() > 120 {
            let _ = child.kill();
            panic!("no checkpoint at {steps} steps within 2 minutes");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn overload_run(policy: &str) -> serde_json::Value {
    // A camera paced at real time with 1 ms bins, and a learner slowed on purpose to at
    // least 4 ms a step: it falls behind on any machine.
    let o = stdl()
        .args([
            "stream",
            "--source",
            "synthetic:5",
            "--speed",
            "1",
            "--bin-us",
            "1000",
            "--debug-min-step-ms",
            "4",
        ])
        .args(["--preset", "tiny", "--max-steps", "150", "--overload", policy])
        .args(["--predictions", "/dev/null", "--metrics-every-s", "100"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    last_json_line(&o.stderr)
}

#[test]
fn live_overload_drops_or_coalesces_whole_bins_and_counts_them() {
    let n = |s: &serde_json::Value, k: &str| s[k].as_u64().unwrap();
    let block = overload_run("block");
    assert_eq!(block["overload"], "block");
    assert_eq!((n(&block, "dropped_bins"), n(&block, "coalesced_bins")), (0, 0));
    assert_eq!(n(&block, "steps"), n(&block, "bins"));
    // A policy's own counter is non-zero, the other's zero, and every bin is learned or counted.
    let counted = |policy: &str, own: &str, other: &str| {
        let s = overload_run(policy);
        assert!(n(&s, own) > 0, "{s}");
        assert_eq!(n(&s, other), 0, "{s}");
        assert_eq!(n(&s, "steps") + n(&s, own), n(&s, "bins"), "{s}");
        s
    };
    let drop = counted("drop-oldest", "dropped_bins", "coalesced_bins");
    let merge = counted("coalesce", "coalesced_bins", "dropped_bins");
    // Every policy reads every event; only what reaches the learner differs.
    assert_eq!(block["events"], drop["events"]);
    assert_eq!(block["events"], merge["events"]);
    // The learner keeps pace with the camera instead of falling behind it: at 4 ms a step
    // for 1 ms bins, at most about a quarter of the bins (and those held back) are learned.
    assert!(n(&drop, "dropped_bins") > n(&drop, "steps"), "{drop}");
    assert!(n(&merge, "coalesced_bins") > n(&merge, "steps"), "{merge}");
}

#[test]
fn camera_source_without_a_device_fails_clearly() {
    let o = stdl()
        .args(["stream", "--source", "camera://", "--preset", "tiny"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    if cfg!(feature = "camera") {
        assert!(
            err.contains("no event camera found") || err.contains("no USB access"),
            "{err}"
        );
    } else {
        assert!(err.contains("--features camera"), "{err}");
    }
}

#[test]
fn a_trained_checkpoint_streams_better_than_a_fresh_network() {
    let Some(d) = data!() else { return };
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("train");
    let o = stdl()
        .args(["train", "--dataset", "nmnist", "--preset", "nmnist", "--quiet"])
        .args([
            "--limit-samples",
            "200",
            "--epochs",
            "2",
            "--t-bins",
            "6",
            "--seed",
            "2",
        ])
        .arg("--root")
        .arg(&root)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let accuracy = |model: &[&str]| -> f64 {
        let o = stdl()
            .args(["stream", "--dataset", "nmnist", "--split", "test", "--no-learn"])
            .args([
                "--bin-us",
                "10000",
                "--predictions",
                "/dev/null",
                "--metrics-every-s",
                "100",
            ])
            .arg("--root")
            .arg(&root)
            .args(model)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        let s = last_json_line(&o.stderr);
        s["accuracy"].as_f64().unwrap()
    };
    let ck = out.join("checkpoint");
    let trained = accuracy(&["--checkpoint", ck.to_str().unwrap()]);
    let fresh = accuracy(&["--preset", "nmnist"]);
    assert!(trained > fresh + 0.2, "trained {trained} vs fresh {fresh}");
}

#[test]
fn replay_in_a_stream_keeps_its_budget_and_memory_flat_over_100000_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("s.json");
    let o = crate::common::stream("synthetic", "tiny")
        .args([
            "--max-steps",
            "100000",
            "--replay-bytes",
            "256KiB",
            "--replay-ratio",
            "0.25",
            "--strategy",
            "ewc",
            "--report-at-steps",
            "10000,100000",
            "--metrics-every-s",
            "1000",
            "--summary",
        ])
        .arg(&summary)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["steps"], 100000, "replayed steps are not live steps");
    assert_eq!(s["strategy"], "ewc");
    let r = &s["replay"];
    let (held, cap) = (
        r["held_segments"].as_u64().unwrap(),
        r["capacity_segments"].as_u64().unwrap(),
    );
    assert_eq!(held, cap, "{r}");
    assert!(r["allocated_bytes"].as_u64().unwrap() <= 256 << 10, "{r}");
    // Every live step earns 0.25 replayed steps, paid out in whole 8-bin segments.
    let replayed = r["replayed_steps"].as_u64().unwrap();
    assert!((24_992..=25_000).contains(&replayed), "{r}");
    assert!(r["segments_seen"].as_u64().unwrap() > 100 * cap, "{r}");
    // Reservoir sampling keeps every class of the stream.
    assert_eq!(r["held_per_class"].as_array().unwrap().len(), 4, "{r}");
    // Memory: the heap after 10^5 steps is not above the heap after 10^4 (the binary counts
    // its heap; what the source has read ahead moves it by a few KiB), and peak RSS is flat.
    let at = |k: &str, i: usize| s[k][i][1].as_u64().unwrap();
    assert!(
        at("heap_bytes_at_steps", 1) <= at("heap_bytes_at_steps", 0) + (16 << 10),
        "heap grew: {}",
        s["heap_bytes_at_steps"]
    );
    assert!(
        at("peak_rss_at_steps", 1) <= at("peak_rss_at_steps", 0) + (1 << 20),
        "peak RSS grew: {}",
        s["peak_rss_at_steps"]
    );
    // A budget below one segment is a clear error.
    let o = crate::common::stream("synthetic", "tiny")
        .args(["--max-steps", "10", "--replay-bytes", "1000"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--replay-bytes 1000 cannot hold one segment"),
        "{err}"
    );
    // Replay is learning: not without a budget, not with --no-learn (usage errors, exit 2).
    for args in [
        &["--replay-ratio", "2"][..],
        &["--replay-bytes", "1MiB", "--no-learn"],
    ] {
        let o = crate::common::stream("synthetic", "tiny")
            .args(["--max-steps", "10"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn the_last_partial_bin_is_learned_unless_dropped() {
    let Some(d) = data!() else { return };
    // 6.89 s of events in 1 s bins: six full bins and a partial seventh.
    let file = d.join("aedat2/dvs128_alex_walking_again.aedat");
    let run = |extra: &[&str]| {
        let tmp = tempfile::tempdir().unwrap();
        let summary = tmp.path().join("s.json");
        let o = crate::common::stream(&file, "tiny")
            .args(["--bin-us", "1000000", "--no-learn", "--summary"])
            .arg(&summary)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&summary).unwrap()).unwrap()
    };
    let kept = run(&[]);
    let dropped = run(&["--drop-partial"]);
    assert_eq!(
        (kept["steps"].as_u64(), kept["bins"].as_u64()),
        (Some(7), Some(7)),
        "{kept}"
    );
    assert_eq!(
        (dropped["steps"].as_u64(), dropped["bins"].as_u64()),
        (Some(6), Some(6)),
        "{dropped}"
    );
    assert_eq!(kept["events"], dropped["events"]);
}

/// A stream's settings saved with `--save-config` repeat the run through `--config`; a flag
/// given over the file wins; a bad file names itself and the setting.
#[test]
fn a_saved_stream_config_repeats_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name);
    let run = |extra: &[&str], pred: &std::path::Path| {
        let o = stdl()
            .args(extra)
            .arg("--predictions")
            .arg(pred)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(pred).unwrap()
    };
    let cfg = p("stream.toml");
    let first = run(
        &[
            "stream",
            "--source",
            "synthetic:4",
            "--preset",
            "tiny",
            "--max-steps",
            "300",
            "--bin-us",
            "5000",
            "--lr",
            "0.002",
            "--ema-steps",
            "5",
            "--save-config",
            cfg.to_str().unwrap(),
        ],
        &p("a.jsonl"),
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("source = \"synthetic:4\"") && text.contains("bin_us = 5000"),
        "{text}"
    );
    assert_eq!(first.lines().count(), 300);
    // The file alone: the same predictions, line for line.
    let again = run(&["stream", "--config", cfg.to_str().unwrap()], &p("b.jsonl"));
    assert_eq!(first, again, "--config must repeat the run");
    // A flag over the file wins.
    let shorter = run(
        &["stream", "--max-steps", "100", "--config", cfg.to_str().unwrap()],
        &p("c.jsonl"),
    );
    assert_eq!(shorter.lines().count(), 100);
    assert_eq!(
        shorter.lines().collect::<Vec<_>>(),
        first.lines().take(100).collect::<Vec<_>>()
    );
    // A bad value names the file and the flag.
    let bad = p("bad.toml");
    std::fs::write(&bad, text.replace("bin_us = 5000", "bin_us = 0")).unwrap();
    let o = stdl().args(["stream", "--config"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("bad.toml") && err.contains("--bin-us"),
        "{err}"
    );
}

#[test]
fn predictions_to_a_channel_equal_the_file_and_a_closed_channel_stops_the_run() {
    use stdl::runtime::stream::{run, Prediction, Source, StreamConfig};
    let tmp = tempfile::tempdir().unwrap();
    let base = StreamConfig {
        max_steps: Some(200),
        bin_us: 5000,
        ..StreamConfig::new(Source::parse("synthetic:5").unwrap(), "tiny")
    };
    let file = tmp.path().join("p.jsonl");
    run(&StreamConfig {
        predictions: Some(file.clone()),
        ..base.clone()
    })
    .unwrap();
    let want = json_lines(std::fs::read(&file).unwrap());
    let (tx, rx) = crossbeam_channel::bounded::<Prediction>(8);
    let got = std::thread::scope(|s| {
        let cfg = StreamConfig {
            on_prediction: Some(tx),
            ..base.clone()
        };
        let h = s.spawn(move || run(&cfg).unwrap());
        // As the file's lines are read back (an f32 confidence printed, then parsed).
        let got: Vec<serde_json::Value> = rx
            .iter()
            .map(|p| serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap())
            .collect();
        let summary = h.join().unwrap();
        assert!(!summary.interrupted && summary.error.is_none(), "{summary:?}");
        got
    });
    assert_eq!(got.len(), 200);
    assert!(got == want, "the channel carries what the file gets");
    // The receiver goes away after 20 predictions: the run stops soon after, cleanly, with
    // its final checkpoint.
    let (tx, rx) = crossbeam_channel::bounded::<Prediction>(1);
    let ck = tmp.path().join("ck");
    let cfg = StreamConfig {
        on_prediction: Some(tx),
        max_steps: Some(100_000),
        checkpoint_dir: Some(ck.clone()),
        ..base
    };
    let h = std::thread::spawn(move || run(&cfg));
    for _ in 0..20 {
        rx.recv().unwrap();
    }
    drop(rx);
    let summary = h.join().unwrap().unwrap();
    assert!(summary.interrupted, "{summary:?}");
    assert!((20..1000).contains(&summary.steps), "{}", summary.steps);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["progress"]["steps"], summary.steps);
}

#[test]
fn update_every_reaches_a_fresh_stream_network_and_its_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |n: &str, ck: &std::path::Path| {
        let o = crate::common::stream("synthetic:6", "tiny")
            .args(["--max-steps", "60", "--update-every", n, "--checkpoint-dir"])
            .arg(ck)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ck.join("state.json")).unwrap()).unwrap();
        state["model"]["update_every"].as_u64()
    };
    assert_eq!(run("3", &tmp.path().join("a")), Some(3));
    assert_eq!(run("1", &tmp.path().join("b")), Some(1));
    let o = crate::common::stream("synthetic:6", "tiny")
        .args(["--max-steps", "6", "--update-every", "0"])
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("update-every"));
}

#[test]
fn aux_budget_reaches_a_fresh_stream_network_and_its_checkpoint() {
    // `demo` at batch 1 gives subnetwork 0 a copied conv unit under the default budget and
    // a bare head under 0: the checkpoint stores the resolved budget and smaller weights.
    let tmp = tempfile::tempdir().unwrap();
    let run = |budget: Option<&str>, ck: &std::path::Path| {
        let mut c = crate::common::stream("synthetic:6", "demo");
        c.args(["--max-steps", "5", "--quiet", "--checkpoint-dir"])
            .arg(ck);
        if let Some(b) = budget {
            c.args(["--aux-budget", b]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ck.join("state.json")).unwrap()).unwrap();
        let weights = std::fs::metadata(ck.join("model.safetensors")).unwrap().len();
        (state["model"]["aux_budget"].as_u64().unwrap(), weights)
    };
    let (default_budget, default_weights) = run(None, &tmp.path().join("a"));
    let (zero, bare_weights) = run(Some("0"), &tmp.path().join("b"));
    let (half, _) = run(Some("0.5x"), &tmp.path().join("c"));
    assert!(default_budget > 0);
    assert_eq!(zero, 0);
    assert!(
        half.abs_diff(default_budget / 2) <= 1,
        "{half} against {default_budget}"
    );
    assert!(
        bare_weights < default_weights,
        "{bare_weights} >= {default_weights}"
    );
    let o = crate::common::stream("synthetic:6", "demo")
        .args(["--max-steps", "5", "--aux-budget", "lots"])
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("aux-budget"));
}

/// The AVX-512, AVX2 and baseline variants of the element-wise kernels (`STDL_SIMD` narrows
/// what a run uses) learn the same stream to the same bits: predictions, weights and Adam
/// moments. On a CPU without AVX-512 the first two are the same path; the baseline differs
/// on every x86-64 CPU this runs on.
#[test]
fn every_vector_path_learns_the_same_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |simd: &str| {
        let ck = tmp.path().join(format!("ck-{simd}"));
        let o = stdl()
            .env("STDL_SIMD", simd)
            .args(["stream", "--source", "synthetic", "--preset", "demo"])
            .args(["--max-steps", "300", "--quiet", "--metrics-every-s", "0"])
            .arg("--checkpoint-dir")
            .arg(&ck)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{simd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let read = |f: &str| std::fs::read(ck.join(f)).unwrap();
        (o.stdout, read("model.safetensors"), read("optimizer.safetensors"))
    };
    let widest = run("avx512");
    assert!(!widest.0.is_empty());
    for simd in ["avx2", "baseline"] {
        let got = run(simd);
        assert!(got.0 == widest.0, "{simd}: predictions differ");
        assert!(got.1 == widest.1, "{simd}: weights differ");
        assert!(got.2 == widest.2, "{simd}: optimiser state differs");
    }
}
