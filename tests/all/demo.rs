//! `stdl demo`, shortened: it runs without ../shared, learns (held-out accuracy far above
//! chance), draws both plots and the held-out animation, and ends with the accuracy line.

use std::process::Command;

/// The percentage on the last line of `out`, which must read `accuracy: NN.N%`.
fn accuracy_line(out: &str) -> f64 {
    let last = out.lines().last().unwrap_or_default();
    last.strip_prefix("accuracy: ")
        .and_then(|v| v.strip_suffix('%'))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("last line {last:?} is not `accuracy: NN.N%`"))
}

#[test]
fn demo_runs_on_built_in_data_and_ends_with_the_accuracy_line() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_stdl"))
        .args(["demo", "--train-steps", "16000", "--test-steps", "600", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    // It learns: seeds 0-3 at this length reach 70.0-78.8% on the held-out stream (chance
    // 9.1%); 4,000 steps gave 14.5-31.2%, too close to chance to test.
    let pct = accuracy_line(&out);
    assert!(pct > 40.0, "held-out accuracy {pct}%");
    for f in [
        "frames.png",
        "accuracy.png",
        "train_predictions.jsonl",
        "test_summary.json",
        "heldout.gif",
    ] {
        assert!(tmp.path().join(f).exists(), "{f} missing");
    }
    let png = std::fs::read(tmp.path().join("frames.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // The held-out stream's first 6 s (600 steps) in 20 ms frames, predictions under each.
    let mut d = gif::DecodeOptions::new()
        .read_info(std::fs::File::open(tmp.path().join("heldout.gif")).unwrap())
        .unwrap();
    assert_eq!((d.width(), d.height()), (256, 296));
    let mut frames = 0;
    while d.read_next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert!((295..=300).contains(&frames), "{frames} frames");
}

/// `stdl demo continual`, shortened (two learners, 2,000 steps a phase): it runs without
/// ../shared, forgets without replay, remembers more with it, writes the JSON and the plot,
/// and ends with the accuracy line (the replay learner's).
#[test]
fn demo_continual_forgets_without_replay_and_remembers_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_stdl"))
        .args([
            "demo",
            "continual",
            "--steps-per-phase",
            "2000",
            "--probe-every",
            "500",
            "--runs",
            "naive,replay",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let runs: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("continual.json")).unwrap()).unwrap();
    assert_eq!(runs.len(), 2);
    let m = |r: &serde_json::Value, i: usize, j: usize| r["accuracy_matrix"][i][j].as_f64().unwrap();
    let (naive, replay) = (&runs[0], &runs[1]);
    assert_eq!(
        (naive["name"].as_str(), replay["name"].as_str()),
        (Some("naive"), Some("replay"))
    );
    // Each phase is learned (above chance, 1/11) while it is on, and without replay the first
    // phase is gone once the third has been learned.
    for i in 0..3 {
        assert!(m(naive, i, i) > 0.2, "{}", naive["accuracy_matrix"]);
    }
    assert!(
        m(naive, 2, 0) < 0.5 * m(naive, 0, 0),
        "{}",
        naive["accuracy_matrix"]
    );
    let avg = |r: &serde_json::Value| r["average_accuracy"].as_f64().unwrap();
    // Seeds 0-3 at this length: every diagonal entry 0.30-0.49, replay 0.29-0.41 above naive.
    assert!(
        avg(replay) > avg(naive) + 0.15,
        "replay {} vs naive {}",
        avg(replay),
        avg(naive)
    );
    assert!(replay["replay"]["replayed_steps"].as_u64().unwrap() > 0);
    assert!(naive["replay"].is_null());
    // The probe curve: one point at the start, every 500 steps, and the phase ends.
    assert_eq!(naive["curve"].as_array().unwrap().len(), 1 + 12);
    assert!(naive["avalanche"]["StreamForgetting/eval_phase/test_stream"]
        .as_f64()
        .is_some());
    let png = std::fs::read(tmp.path().join("continual.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let pct = accuracy_line(&out);
    assert!(
        (100.0 * avg(replay) - pct).abs() < 0.06,
        "{pct} vs {}",
        avg(replay)
    );
}
