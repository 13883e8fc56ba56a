//! `stdl render`: animated GIFs of recordings and of the synthetic stream with a model's
//! predictions, decoded back with the `gif` crate.

use crate::common::stdl;
use crate::data;

/// Runs `cmd`, asserts that it succeeded (its error output otherwise) and returns its output.
fn succeeded(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs `stdl render ... --json`, asserts that it succeeded and returns its summary.
fn rendered(cmd: &mut std::process::Command) -> serde_json::Value {
    serde_json::from_slice(&succeeded(cmd).stdout).unwrap()
}

/// A frame's delay (1/100 s) and palette indices.
type GifFrame = (u16, Vec<u8>);

/// Every frame of a GIF as palette indices, with its delay, and the global palette.
fn decode(path: &std::path::Path) -> (u16, u16, Vec<u8>, Vec<GifFrame>) {
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::Indexed);
    let mut d = opts.read_info(std::fs::File::open(path).unwrap()).unwrap();
    let (w, h) = (d.width(), d.height());
    let palette = d.global_palette().expect("a global palette").to_vec();
    let mut frames = Vec::new();
    while let Some(f) = d.read_next_frame().unwrap() {
        assert_eq!((f.width, f.height), (w, h), "whole-canvas frames");
        frames.push((f.delay, f.buffer.to_vec()));
    }
    (w, h, palette, frames)
}

#[test]
fn a_real_recording_becomes_a_real_time_gif() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let gif = tmp.path().join("walk.gif");
    let s = rendered(
        stdl()
            .arg("render")
            .arg(d.join("aedat2/dvs128_alex_walking_again.aedat"))
            .args(["--max-seconds", "1", "--scale", "1", "--json", "--out"])
            .arg(&gif),
    );
    let (w, h, palette, frames) = decode(&gif);
    assert_eq!((w, h), (128, 128));
    assert_eq!(palette.len(), 256 * 3);
    assert_eq!(&palette[..3], &[12, 12, 18], "dark background");
    // 10 ms bins shown two at a time: 20 ms frames, 2/100 s each, real time.
    assert_eq!(s["frame_us"], 20_000);
    assert_eq!(frames.len() as u64, s["frames"].as_u64().unwrap());
    assert!(
        (45..=50).contains(&frames.len()),
        "{} frames in 1 s",
        frames.len()
    );
    assert!(frames.iter().all(|(delay, _)| *delay == 2));
    // Mostly background, and the walking person lights up pixels in every frame.
    let lit: Vec<usize> = frames
        .iter()
        .map(|(_, px)| px.iter().filter(|&&i| i != 0).count())
        .collect();
    assert!(lit.iter().all(|&n| n > 0 && n < 128 * 128 / 2), "{lit:?}");
    assert!(lit.iter().sum::<usize>() > 50 * lit.len(), "{lit:?}");
    assert_ne!(frames[0].1, frames[10].1, "frames change");
    assert_eq!(s["model_steps"], 0);
    assert_eq!(h as u64, s["height"].as_u64().unwrap());
    // The light style's background is white; half speed doubles every delay.
    succeeded(
        stdl()
            .arg("render")
            .arg(d.join("aedat2/dvs128_alex_walking_again.aedat"))
            .args([
                "--max-seconds",
                "0.5",
                "--style",
                "light",
                "--speed",
                "0.5",
                "--out",
            ])
            .arg(&gif),
    );
    let (w, _, palette, frames) = decode(&gif);
    assert_eq!(w, 256, "scale 2 by default");
    assert_eq!(&palette[..3], &[255, 255, 255]);
    assert!(
        frames.iter().all(|(delay, _)| *delay == 2),
        "10 ms bins at half speed: 20 ms"
    );
}

#[test]
fn predictions_of_a_trained_stream_are_drawn_under_each_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("ck");
    succeeded(
        crate::common::stream("synthetic:3", "tiny")
            .args([
                "--max-steps",
                "300",
                "--metrics-every-s",
                "1000",
                "--checkpoint-dir",
            ])
            .arg(&ck),
    );
    let gif = tmp.path().join("held.gif");
    let s = rendered(
        stdl()
            .args([
                "render",
                "--source",
                "synthetic:9",
                "--max-seconds",
                "1",
                "--json",
                "--checkpoint",
            ])
            .arg(&ck)
            .arg("--out")
            .arg(&gif),
    );
    let n = s["frames"].as_u64().unwrap();
    assert!(n >= 45, "{s}");
    // Every 10 ms bin up to the last frame shown went through the model; every frame of the
    // synthetic stream has a label.
    assert_eq!(s["model_steps"].as_u64().unwrap(), 2 * n, "{s}");
    assert_eq!(s["labelled_frames"].as_u64().unwrap(), n);
    let (w, h, _, frames) = decode(&gif);
    assert_eq!((w, h), (256, 256 + 40), "frame and banner");
    // The banner: text (greys brighter than its background) and the confidence bar (one of
    // the three bar colours at the palette's end) on every frame.
    for (_, px) in &frames {
        let banner = &px[256 * 256..];
        assert!(
            banner.iter().any(|&i| (235..252).contains(&i)),
            "no text in the banner"
        );
        assert!(
            banner.iter().any(|&i| (252..255).contains(&i)),
            "no bar in the banner"
        );
    }
}

#[test]
fn render_fails_clearly_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let gif = tmp.path().join("x.gif");
    let missing = tmp.path().join("missing.aedat");
    let out = stdl()
        .arg("render")
        .arg(&missing)
        .arg("--out")
        .arg(&gif)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.aedat"), "{err}");
    // Less input than one frame: an error, and no file.
    let out = stdl()
        .args([
            "render",
            "--source",
            "synthetic",
            "--max-seconds",
            "0.001",
            "--out",
        ])
        .arg(&gif)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no complete frame"));
    assert!(!gif.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no partial file left"
    );
}

#[test]
fn a_dataset_split_with_a_trained_checkpoint() {
    let Some(d) = data!() else { return };
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let tmp = tempfile::tempdir().unwrap();
    succeeded(crate::common::train_nmnist(&root, "nmnist", tmp.path()).args([
        "--epochs",
        "1",
        "--limit-samples",
        "160",
    ]));
    let gif = tmp.path().join("test.gif");
    let s = rendered(
        stdl()
            .args([
                "render",
                "--dataset",
                "nmnist",
                "--split",
                "test",
                "--bin-us",
                "30000",
            ])
            .args(["--max-seconds", "3", "--scale", "3", "--json", "--root"])
            .arg(&root)
            .arg("--checkpoint")
            .arg(tmp.path().join("checkpoint"))
            .arg("--out")
            .arg(&gif),
    );
    // 30 ms frames of 34 x 34 samples one after another: one model step per frame, every
    // frame labelled with its sample's digit.
    let n = s["frames"].as_u64().unwrap();
    assert!((95..=100).contains(&n), "{s}");
    assert_eq!(s["model_steps"].as_u64().unwrap(), n);
    assert_eq!(s["labelled_frames"].as_u64().unwrap(), n);
    let (w, h, _, frames) = decode(&gif);
    assert_eq!((w, h), (102, 102 + 40));
    assert_eq!(frames.len() as u64, n);
    assert!(
        frames.iter().all(|(delay, _)| *delay == 3),
        "30 ms frames in real time"
    );
}

#[test]
fn memory_does_not_grow_with_the_length_rendered() {
    let tmp = tempfile::tempdir().unwrap();
    let peak = |seconds: &str| {
        let s = rendered(
            stdl()
                .args([
                    "render",
                    "--source",
                    "synthetic:5",
                    "--scale",
                    "1",
                    "--json",
                    "--max-seconds",
                    seconds,
                ])
                .arg("--out")
                .arg(tmp.path().join(format!("{seconds}.gif"))),
        );
        (
            s["frames"].as_u64().unwrap(),
            s["peak_rss_bytes"].as_u64().unwrap(),
        )
    };
    let (short_frames, short) = peak("2");
    let (long_frames, long) = peak("40");
    assert!(
        long_frames >= 19 * short_frames,
        "{short_frames} and {long_frames} frames"
    );
    // Twenty times the frames, the same memory give or take 2 MiB (frames go to the file as
    // they are made).
    assert!(
        short > 0 && long < short + (2 << 20),
        "peak RSS {short} B after 2 s, {long} B after 40 s"
    );
}
