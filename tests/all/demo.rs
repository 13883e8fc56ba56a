//! `stdl demo`, shortened: it runs without ../shared, draws both plots and the held-out
//! animation, and ends with the accuracy line.

use std::process::Command;

#[test]
fn demo_runs_on_built_in_data_and_ends_with_the_accuracy_line() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_stdl"))
        .args(["demo", "--train-steps", "4000", "--test-steps", "600", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let last = out.lines().last().unwrap();
    let pct: f64 = last
        .strip_prefix("accuracy: ")
        .and_then(|v| v.strip_suffix('%'))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("last line {last:?} is not `accuracy: NN.N%`"));
    assert!((0.0..=100.0).contains(&pct));
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
