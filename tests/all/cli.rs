//! The `stdl` program as a user runs it.

use crate::data;

use crate::common::stdl;

#[test]
fn info_json_has_the_documented_keys() {
    let Some(d) = data!() else { return };
    let out = stdl()
        .args(["info", "--json"])
        .arg(d.join("evt3/gen41_expelliarmus_evt3_sample.raw"))
        .arg(d.join("nmnist/tonic_sample_nmnist.bin"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    for k in [
        "format",
        "width",
        "height",
        "events",
        "on",
        "off",
        "t_first_us",
        "t_last_us",
        "duration_us",
        "first_event",
        "last_event",
        "event_rate_per_s",
    ] {
        assert!(v.get(k).is_some(), "missing key {k}");
    }
    assert_eq!(v["format"], "evt3");
    assert_eq!(v["events"], 219_596);
    assert_eq!(v["width"], 1280);
    assert_eq!(v["t_last_us"], 11_727_457);
    assert_eq!(v["first_event"]["t_us"], 11_718_656);
    let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(v["format"], "bin");
    assert_eq!(
        v["first_event"],
        serde_json::json!({"t_us": 654, "x": 7, "y": 15, "on": true})
    );
    assert_eq!(v["on"].as_u64().unwrap() + v["off"].as_u64().unwrap(), 4325);
}

#[test]
fn frames_writes_a_png() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("walk.png");
    let out = stdl()
        .arg("frames")
        .arg(d.join("aedat2/dvs128_alex_walking_again.aedat"))
        .args(["--bin-us", "50000", "--max-frames", "6", "--png"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("138 frames of 2x128x128"), "{stdout}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn bench_read_reports_throughput() {
    let Some(d) = data!() else { return };
    let out = stdl()
        .args(["bench", "read", "--json", "--runs", "1"])
        .arg(d.join("dat/ncars_tonic_sample_ncars.dat"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["events"], 2009);
    assert!(v["events_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_read_dataset_reads_every_file() {
    let Some(d) = data!() else { return };
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let out = stdl()
        .args([
            "bench",
            "read",
            "--json",
            "--runs",
            "1",
            "--dataset",
            "nmnist",
            "--root",
        ])
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Every sample of both splits, and every one of its events (5 bytes each, no marker).
    let ds = stdl::io::datasets::Dataset::open("nmnist", &root).unwrap();
    let files: Vec<_> = ds.train.iter().chain(&ds.test).collect();
    assert_eq!(files.len(), 1100);
    let bytes: u64 = files
        .iter()
        .map(|s| std::fs::metadata(&s.path).unwrap().len())
        .sum();
    assert_eq!(v["files"], 1100);
    assert_eq!(v["bytes"], bytes);
    assert_eq!(v["events"], bytes / 5);
    // Neither or both: a file, or a dataset with its root.
    let out = stdl()
        .args(["bench", "read", "--dataset", "nmnist"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn convert_then_info_round_trips() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out31 = tmp.path().join("walk31.aedat");
    let st = stdl()
        .arg("convert")
        .arg(d.join("aedat2/dvs128_alex_walking_again.aedat"))
        .arg(&out31)
        .args(["--to", "aedat31"])
        .status()
        .unwrap();
    assert!(st.success());
    let out = stdl().args(["info", "--json"]).arg(&out31).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "aedat31");
    assert_eq!(v["events"], 19_182);
}

#[test]
fn errors_exit_nonzero_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("junk.xyz");
    std::fs::write(&f, b"not events").unwrap();
    let out = stdl().arg("info").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("unknown event format") && err.contains("--format"),
        "{err}"
    );
    let out = stdl().args(["info"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_subcommand_has_help_with_an_example_and_exit_codes_are_documented() {
    let top = stdl().arg("--help").output().unwrap();
    let top = String::from_utf8(top.stdout).unwrap();
    assert!(top.contains("Exit codes: 0 success"), "{top}");
    let commands = [
        "demo",
        "info",
        "frames",
        "convert",
        "plan",
        "train",
        "eval",
        "continual",
        "stream",
        "bench",
    ];
    let bench = ["read", "memory", "train", "sparse", "soak", "realtime"];
    let mut paths: Vec<Vec<&str>> = commands.iter().map(|c| vec![*c]).collect();
    paths.extend(bench.iter().map(|b| vec!["bench", *b]));
    for p in paths {
        let o = stdl().args(&p).arg("--help").output().unwrap();
        assert!(o.status.success(), "{p:?}");
        let help = String::from_utf8(o.stdout).unwrap();
        assert!(
            help.contains("Example: stdl "),
            "{p:?} --help has no example:\n{help}"
        );
        // Every subcommand appears in the top-level help.
        assert!(top.contains(p[0]), "{p:?} missing from stdl --help");
    }
    // A missing file fails with 1 and says which file; the message is not repeated.
    let o = stdl().args(["info", "/nonexistent/x.aedat"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/x.aedat"), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

#[test]
fn bench_train_profile_accounts_for_every_stage_and_layer() {
    let o = stdl()
        .args([
            "bench", "train", "--preset", "tiny", "--t-bins", "4", "--batch", "2",
        ])
        .args(["--batches", "2", "--density", "0.2", "--profile", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let stages = v["profile"]["stages"].as_array().unwrap();
    assert!(stages.len() >= 2, "{v}");
    assert!(v["profile"]["gemm_gflops"].as_f64().unwrap() > 0.0);
    for (k, st) in stages.iter().enumerate() {
        assert_eq!(st["stage"], k);
        // Two timed batches of 4 steps, every one labelled, one update each.
        assert_eq!(st["steps"], 8, "{st}");
        let step = st["ms_per_step"].as_f64().unwrap();
        let layers = st["layers"].as_array().unwrap();
        // The profiler's own counting is timed apart from the layers and the update.
        let counting = st["counting_ms_per_step"].as_f64().unwrap();
        assert!(counting > 0.0, "{st}");
        let mut in_layers = st["update_ms_per_step"].as_f64().unwrap() + counting;
        for l in layers {
            let d = l["input_density"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&d), "{l}");
            let (f, b) = (
                l["forward_ms"].as_f64().unwrap(),
                l["backward_ms"].as_f64().unwrap(),
            );
            let (dw, dx) = (
                l["weight_grad_ms"].as_f64().unwrap(),
                l["input_grad_ms"].as_f64().unwrap(),
            );
            assert!(f >= 0.0 && b >= 0.0 && dw + dx <= b + 1e-9, "{l}");
            in_layers += f + b;
            if l["layer"].as_str().unwrap().starts_with("conv") {
                assert!(l["dense_gflops"].as_f64().unwrap() > 0.0, "{l}");
            }
        }
        // The parts are inside the whole (clock reads nest).
        assert!(
            in_layers <= step + 1e-6,
            "stage {k}: parts {in_layers} ms of {step} ms"
        );
    }
    // The first layer sees the synthetic input: 20% of its pixels have an event.
    let first = &stages[0]["layers"][0];
    let d = first["input_density"].as_f64().unwrap();
    assert!((d - 0.2).abs() < 0.03, "{first}");
    // LIF layers take currents (dense); the layer after a LIF takes its spikes.
    let layers = stages[0]["layers"].as_array().unwrap();
    let lif = layers.iter().position(|l| l["layer"] == "lif").unwrap();
    assert!(
        layers[lif]["input_density"].as_f64().unwrap() > 0.9,
        "{}",
        layers[lif]
    );
    assert!(
        layers[lif + 1]["input_density"].as_f64().unwrap() < 0.9,
        "{}",
        layers[lif + 1]
    );
}

#[test]
fn stream_profile_is_in_the_summary() {
    let o = crate::common::stream("synthetic", "tiny")
        .args(["--max-steps", "30", "--profile"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = crate::common::last_json_line(&o.stderr);
    let stages = s["profile"].as_array().unwrap_or_else(|| panic!("{s}"));
    assert!(stages.len() >= 2, "{s}");
    for st in stages {
        // Every step of the stream went through every stage (after the warm-up, not counted).
        assert_eq!(st["steps"], 30, "{st}");
        assert!(!st["layers"].as_array().unwrap().is_empty());
    }
    // Without the flag, no profile.
    let o = crate::common::stream("synthetic", "tiny")
        .args(["--max-steps", "3"])
        .output()
        .unwrap();
    assert!(crate::common::last_json_line(&o.stderr).get("profile").is_none());
}
