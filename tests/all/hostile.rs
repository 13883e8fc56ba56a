//! Hostile time, signals and faults (README, "Bad input and faults"): every command, given
//! hostile flag values or input, exits with a message (no panic, no abort), stays within a
//! memory bound, stops on Ctrl-C/SIGTERM in every state with its summary, and never damages
//! an earlier good output.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{stdl, stream, train_nmnist};
use crate::data;

/// Waits for `child`, killing it (and failing) if it runs past `limit`: a hang is a failure,
/// not a slow run (the limits are far above what the commands take).
fn finish(mut child: Child, limit: Duration, what: &str) -> Output {
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {limit:?}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(c: &mut Command) -> Child {
    c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn signal(child: &Child, sig: &str) {
    let s = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(s.success());
}

fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

/// No panic, no abort (an exit by signal), and an exit code of 0, 1 or 2.
fn assert_clean_exit(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("memory allocation of"),
        "{what}: {err}"
    );
    match o.status.code() {
        Some(0..=2) => {}
        c => panic!("{what}: exit {c:?} (killed by a signal?)\n{err}"),
    }
    if !o.status.success() {
        assert!(err.contains("error"), "{what}: failed without a message\n{err}");
    }
}

const BIG_INPUT: &str = "name = \"big\"\ninput = [2, 100000, 100000]\nclasses = 4\n\
    [[layers]]\ntype = \"conv\"\nchannels = 8\nkernel = 3\n[[layers]]\ntype = \"lif\"\n\
    [[layers]]\ntype = \"readout\"\n";

#[test]
fn no_flag_value_makes_any_command_panic() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = |p: &str| tmp.path().join(p).display().to_string();
    let big = t("big.toml");
    std::fs::write(&big, BIG_INPUT).unwrap();
    let wide = t("wide.toml");
    std::fs::write(
        &wide,
        BIG_INPUT
            .replace("[2, 100000, 100000]", "[2, 16, 16]")
            .replace("channels = 8", "channels = 1000000000"),
    )
    .unwrap();
    let nan_preset = t("nan.toml");
    let tiny =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/presets/tiny.toml"))
            .unwrap();
    std::fs::write(
        &nan_preset,
        tiny.replace("[train]", "[neuron]\ntau = nan\n[train]"),
    )
    .unwrap();
    let walk = d
        .join("aedat2/dvs128_alex_walking_again.aedat")
        .display()
        .to_string();
    let nmnist = d.join("nmnist/slayer_NMNISTsmall").display().to_string();
    let out = t("out");
    let mut cases: Vec<Vec<String>> = Vec::new();
    let mut add = |s: &str| cases.push(s.split_whitespace().map(str::to_owned).collect());
    // Flag templates, each tried with every hostile value in place of `{v}`.
    let floats = [
        "stream --preset tiny --max-steps 5 --speed {v}",
        "stream --preset tiny --max-steps 5 --lr {v}",
        "stream --preset tiny --max-steps 5 --ema-steps {v}",
        "stream --preset tiny --max-steps 5 --metrics-every-s {v}",
        "demo --lr {v} --train-steps 5 --test-steps 5 --out {out}",
        "bench memory --preset tiny --density {v}",
        "frames {walk} --time-bins 4 --overlap {v}",
        "train --dataset nmnist --root {nmnist} --lr {v} --epochs 1 --limit-samples 4 --out {out}",
    ];
    let counts = [
        "stream --preset tiny --max-steps {v}",
        "stream --preset tiny --max-steps 5 --bin-us {v}",
        "bench memory --preset tiny --t-bins {v}",
        "bench memory --preset tiny --batch {v}",
        "bench train --preset tiny --batches {v}",
        "demo --segment-ms {v} --out {out}",
        "train --dataset nmnist --root {nmnist} --t-bins {v} --epochs 1 --limit-samples 4 --out {out}",
        "train --dataset nmnist --root {nmnist} --batch {v} --epochs 1 --limit-samples 4 --out {out}",
        "frames {walk} --bin-us {v}",
        "frames {walk} --time-bins {v}",
        "frames {walk} --bin-us 1000 --downsample {v}",
        "plan tiny --batch {v}",
    ];
    let fill = |t: &str, v: &str| {
        t.replace("{v}", v)
            .replace("{out}", &out)
            .replace("{walk}", &walk)
            .replace("{nmnist}", &nmnist)
    };
    for (templates, values) in [
        (&floats[..], &["0", "nan", "-1", "inf", "1e400", "x"][..]),
        (&counts[..], &["0", "-1", "18446744073709551616"][..]),
    ] {
        for t in templates {
            for v in values {
                add(&fill(t, v));
            }
        }
    }
    // Sizes that would need gigabytes: refused before anything is allocated.
    add(&format!("frames {walk} --sensor-size 65535x65535 --bin-us 1000"));
    add(&format!("frames {walk} --time-bins 100000000"));
    add(&format!("frames {walk} --event-bins 100000000"));
    add(&format!("frames {walk} --window-us 1000000000 --bin-us 1000"));
    add(&format!("train --dataset nmnist --root {nmnist} --method bptt --t-bins 100000 --batch 64 --epochs 1 --out {out}"));
    for p in [&big, &wide, &nan_preset] {
        add(&format!("plan {p}"));
        add(&format!("stream --preset {p} --max-steps 3"));
        add(&format!("bench memory --preset {p}"));
    }
    // Labels the preset cannot learn.
    add(&format!(
        "train --dataset nmnist --root {nmnist} --preset tiny --epochs 1 --out {out}"
    ));
    add(&format!(
        "stream --dataset nmnist --root {nmnist} --preset tiny --max-steps 5"
    ));
    add(&format!(
        "eval --checkpoint {out} --dataset nmnist --root {nmnist}"
    ));
    add("info /dev/null");
    // An endless input that states no sensor size: refused at a cap, not read forever.
    add("frames /dev/urandom --format bin --time-bins 4");
    add(&format!("convert {walk} {walk} --to aedat31"));
    add(&format!(
        "stream --source {walk} --preset tiny --max-steps 5 --lr 1e30"
    ));
    for args in &cases {
        let what = args.join(" ");
        let child = spawn(
            stdl()
                .args(args)
                .env("RUST_BACKTRACE", "1")
                .current_dir(tmp.path())
                .stdin(Stdio::null()),
        );
        let o = finish(child, Duration::from_secs(120), &what);
        assert_clean_exit(&o, &what);
    }
    // The refusals say what to change.
    let o = stdl()
        .args(["frames", &walk, "--time-bins", "100000000"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--time-bins") && err.contains("GiB"), "{err}");
    let o = stdl()
        .args([
            "train",
            "--dataset",
            "nmnist",
            "--root",
            &nmnist,
            "--preset",
            "tiny",
            "--out",
            &out,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("at least 10 classes"), "{err}");
}

/// The real EVT 2.0 recording with one TIME_HIGH word set to a far-future value (about
/// 4.8 hours), as a corrupt word in a real stream would.
fn far_future_evt2(dir: &Path, d: &Path) -> PathBuf {
    let mut b = std::fs::read(d.join("evt2/gen3_faery_evt2.raw")).unwrap();
    let mut pos = 0;
    while b[pos] == b'%' {
        pos += b[pos..].iter().position(|&c| c == b'\n').unwrap() + 1;
    }
    let mut seen = 0;
    while pos + 4 <= b.len() {
        let w = u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap());
        if w >> 28 == 0x8 {
            seen += 1;
            if seen == 200 {
                b[pos..pos + 4].copy_from_slice(&(0x8000_0000u32 | 0x0FFF_FFFF).to_le_bytes());
                break;
            }
        }
        pos += 4;
    }
    assert_eq!(seen, 200, "the recording has TIME_HIGH words");
    let p = dir.join("far_future.raw");
    std::fs::write(&p, b).unwrap();
    p
}

/// A valid recording with a 1,000 s pause in the middle (the real DVS128 walk, its second
/// half shifted), written by our AEDAT 2.0 writer.
fn paused_recording(dir: &Path, d: &Path) -> PathBuf {
    let (mut ev, _, _) = stdl::io::read_file(d.join("aedat2/dvs128_alex_walking_again.aedat")).unwrap();
    let half = ev.len() / 2;
    for e in &mut ev[half..] {
        e.t_us += 1_000_000_000;
    }
    let mut w = stdl::io::formats::aedat2::Writer::new(Vec::new()).unwrap();
    w.write(&ev).unwrap();
    let p = dir.join("paused.aedat");
    std::fs::write(&p, w.finish().unwrap()).unwrap();
    p
}

/// Peak RSS bound for a `tiny` stream whatever its input's timing (about 15 MiB measured).
const STREAM_RSS_BOUND: u64 = 100 << 20;

#[test]
fn time_jumps_and_gaps_are_bounded_in_memory_and_stoppable() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = |file: &Path, extra: &[&str]| -> (Output, serde_json::Value) {
        let s = tmp.path().join("s.json");
        let _ = std::fs::remove_file(&s);
        let child = spawn(
            stdl()
                .args(["stream", "--preset", "tiny", "--predictions", "/dev/null"])
                .arg("--source")
                .arg(file)
                .arg("--summary")
                .arg(&s)
                .args(extra),
        );
        let o = finish(
            child,
            Duration::from_secs(120),
            &format!("{} {extra:?}", file.display()),
        );
        assert_clean_exit(&o, &format!("{extra:?}"));
        (o, summary(&s))
    };
    for file in [far_future_evt2(tmp.path(), &d), paused_recording(tmp.path(), &d)] {
        // `stdl info` counts the jumps the stream will skip.
        let o = stdl().args(["info", "--json"]).arg(&file).output().unwrap();
        assert!(o.status.success());
        let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(info["time_jumps"].as_u64().unwrap() >= 1, "{info}");
        // Default: the jump is skipped and reported; the rest of the recording is learned.
        let (o, s) = run(&file, &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(s["time_jumps"].as_u64().unwrap() >= 1, "{s}");
        assert!(s["skipped_bins"].as_u64().unwrap() > 10_000, "{s}");
        assert!(s["peak_rss_bytes"].as_u64().unwrap() < STREAM_RSS_BOUND, "{s}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("jumped"));
        // --strict: an error, after the summary that records it.
        let (o, s) = run(&file, &["--strict"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(s["error"].as_str().unwrap().contains("--strict"), "{s}");
        // Every gap binned: one empty bin per step, and --max-steps is looked at between any
        // two of them.
        let (o, s) = run(&file, &["--max-gap-us", "0", "--max-steps", "3000"]);
        assert!(o.status.success());
        assert_eq!(s["steps"], 3000, "{s}");
        assert!(s["peak_rss_bytes"].as_u64().unwrap() < STREAM_RSS_BOUND, "{s}");
    }
    // A 1 us bin over the real walk: memory bounded, stopped by --max-steps.
    let walk = d.join("aedat2/dvs128_alex_walking_again.aedat");
    let (o, s) = run(&walk, &["--bin-us", "1", "--max-steps", "2000"]);
    assert!(o.status.success());
    assert_eq!(s["steps"], 2000);
    assert!(s["peak_rss_bytes"].as_u64().unwrap() < STREAM_RSS_BOUND, "{s}");
    // `frames --bin-us` streams its rows, and skips the pause like the stream does.
    let paused = paused_recording(tmp.path(), &d);
    let o = stdl()
        .args(["frames", "--json", "--bin-us", "1000", "--downsample", "16"])
        .arg(&paused)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("jump"));
    let rows = crate::common::json_lines(&o.stdout);
    assert!((5_000..20_000).contains(&rows.len()), "{} rows", rows.len());
    let o = stdl()
        .args([
            "frames",
            "--json",
            "--bin-us",
            "1000",
            "--downsample",
            "16",
            "--max-gap-us",
            "0",
        ])
        .arg(&paused)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(crate::common::json_lines(&o.stdout).len() > 1_000_000);
}

/// The checkpoint in `dir` loads and streams a few steps.
fn assert_checkpoint_streams(dir: &Path) {
    let o = stdl()
        .args([
            "stream",
            "--source",
            "synthetic",
            "--max-steps",
            "3",
            "--predictions",
            "/dev/null",
        ])
        .arg("--checkpoint")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A stream in a state that waits (no source yet, a silent source, learning) stops on
/// `sig`, exits 0 and writes its summary.
fn stops_on(
    mut c: Command,
    sig: &str,
    after: Duration,
    summary_path: &Path,
    what: &str,
) -> serde_json::Value {
    let child = spawn(&mut c);
    std::thread::sleep(after);
    signal(&child, sig);
    let o = finish(child, Duration::from_secs(20), what);
    assert_clean_exit(&o, what);
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = summary(summary_path);
    assert_eq!(s["interrupted"], true, "{what}: {s}");
    s
}

#[test]
fn ctrl_c_and_sigterm_stop_a_stream_in_every_state() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("s.json");
    let stream = |source: &str| {
        let mut c = stream(source, "tiny");
        c.arg("--summary").arg(&s);
        c
    };
    // A FIFO without a writer: opening it blocks.
    let fifo = tmp.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    stops_on(
        stream(&fifo.display().to_string()),
        "-INT",
        Duration::from_millis(500),
        &s,
        "fifo",
    );
    // Silent standard input (a pipe that stays open).
    let mut c = stream("stdin");
    c.stdin(Stdio::piped());
    let child = spawn(&mut c);
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "-TERM");
    let o = finish(child, Duration::from_secs(20), "stdin");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(summary(&s)["interrupted"], true);
    // A DV server that accepts and never sends; one that is down.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    stops_on(
        stream(&format!("dv-tcp://{addr}")),
        "-INT",
        Duration::from_millis(800),
        &s,
        "silent server",
    );
    drop(server);
    stops_on(
        stream(&format!("dv-tcp://{addr}")),
        "-TERM",
        Duration::from_millis(800),
        &s,
        "no server",
    );
    // Learning, at seeded random moments: the summary and a checkpoint that loads.
    let ck = tmp.path().join("ck");
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..3 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let after = Duration::from_millis(400 + x % 1200);
        let mut c = stream("synthetic");
        c.arg("--checkpoint-dir")
            .arg(&ck)
            .args(["--checkpoint-every", "50"]);
        let sm = stops_on(
            c,
            if i % 2 == 0 { "-INT" } else { "-TERM" },
            after,
            &s,
            "learning",
        );
        assert!(sm["steps"].as_u64().unwrap() > 0, "{sm}");
        assert_checkpoint_streams(&ck);
        assert!(!ck.join(".lock").exists(), "the lock is released");
    }
}

/// Runs `cmd` with writes limited to `kib` KiB per file (`ulimit -f`, SIGXFSZ ignored: a
/// write past it fails with "File too large", as on a full disk).
fn with_file_limit(kib: u32, cmd: &mut Command) -> Output {
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$@\""))
        .arg("bash")
        .arg(prog)
        .args(args)
        .current_dir(cmd.get_current_dir().unwrap_or(Path::new(".")))
        .output()
        .unwrap();
    assert_clean_exit(&o, "with a file-size limit");
    o
}

fn partial_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect()
}

#[test]
fn a_failed_write_keeps_the_earlier_good_file() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let walk = d.join("aedat2/dvs128_alex_walking_again.aedat");
    // A PNG.
    let png = tmp.path().join("walk.png");
    let frames = |c: &mut Command| {
        c.arg("frames")
            .arg(&walk)
            .args(["--time-bins", "12", "--png"])
            .arg(&png);
    };
    let mut c = stdl();
    frames(&mut c);
    assert!(c.output().unwrap().status.success());
    let good = std::fs::read(&png).unwrap();
    assert!(good.len() > 8 << 10);
    let mut c = stdl();
    frames(&mut c);
    let o = with_file_limit(8, &mut c);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&png.display().to_string()) && err.contains("too large"),
        "{err}"
    );
    assert_eq!(std::fs::read(&png).unwrap(), good, "the earlier PNG is intact");
    assert!(partial_files(tmp.path()).is_empty());
    // A converted recording, interrupted by the limit.
    let conv = tmp.path().join("walk.aedat31");
    std::fs::write(&conv, b"an earlier file").unwrap();
    let mut c = stdl();
    c.arg("convert").arg(&walk).arg(&conv).args(["--to", "aedat31"]);
    let o = with_file_limit(64, &mut c);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&conv).unwrap(), b"an earlier file");
    assert!(partial_files(tmp.path()).is_empty());
    // A stream checkpoint: the first run writes it; a resumed run that cannot write keeps
    // it (and says so in its summary), and it still loads.
    let ck = tmp.path().join("ck");
    let s = tmp.path().join("s.json");
    let run = |steps: &str| {
        let mut c = stream("synthetic", "dvs-gesture");
        c.args(["--max-steps", steps])
            .arg("--checkpoint-dir")
            .arg(&ck)
            .arg("--summary")
            .arg(&s);
        c
    };
    assert!(run("20").output().unwrap().status.success());
    let state = std::fs::read(ck.join("state.json")).unwrap();
    let mut c = run("40");
    c.arg("--resume");
    let o = with_file_limit(64, &mut c);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(summary(&s)["error"].as_str().unwrap().contains("too large"));
    assert_eq!(std::fs::read(ck.join("state.json")).unwrap(), state);
    assert!(partial_files(&ck).is_empty());
    assert_checkpoint_streams(&ck);
}

#[test]
fn one_checkpoint_directory_one_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("ck");
    let s = tmp.path().join("s.json");
    let run = || {
        let mut c = stream("synthetic", "tiny");
        c.arg("--checkpoint-dir").arg(&ck).arg("--summary").arg(&s);
        c
    };
    let first = spawn(&mut run());
    let t0 = Instant::now();
    while !ck.join(".lock").exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "no lock taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = run().output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("in use by process"), "{err}");
    signal(&first, "-INT");
    let o = finish(first, Duration::from_secs(20), "first stream");
    assert!(o.status.success());
    assert!(!ck.join(".lock").exists());
    // A custom preset's checkpoint reloads without the preset file (it is stored whole).
    let custom = tmp.path().join("custom.toml");
    let tiny =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/presets/tiny.toml"))
            .unwrap();
    std::fs::write(&custom, tiny.replace("name = \"tiny\"", "name = \"custom\"")).unwrap();
    let ck2 = tmp.path().join("ck2");
    let o = stream("synthetic", &custom)
        .args(["--max-steps", "20"])
        .arg("--checkpoint-dir")
        .arg(&ck2)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(&custom).unwrap();
    assert_checkpoint_streams(&ck2);
}

#[test]
fn learning_that_diverges_stops_and_writes_no_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("ck");
    let s = tmp.path().join("s.json");
    let o = stream("synthetic", "tiny")
        .args(["--lr", "1e30", "--max-steps", "2000"])
        .arg("--checkpoint-dir")
        .arg(&ck)
        .arg("--summary")
        .arg(&s)
        .output()
        .unwrap();
    assert_clean_exit(&o, "diverging stream");
    assert_eq!(o.status.code(), Some(1));
    let sm = summary(&s);
    assert!(sm["error"].as_str().unwrap().contains("diverged"), "{sm}");
    assert!(!ck.join("model.safetensors").exists());
}

#[test]
fn dv_tcp_delivers_packets_that_arrived_in_one_write() {
    let Some(d) = data!() else { return };
    // The network stream: the file without its magic line and its trailing table.
    let bytes = std::fs::read(d.join("aedat4/dvxplorer_tonic_sample.aedat4")).unwrap();
    let h = aedat::base::ioheader_generated::size_prefixed_root_as_ioheader(&bytes[14..]).unwrap();
    let net = &bytes[14..h.file_data_position() as usize];
    // The IOHeader and the packets that fit in 60 KB: less than one read of the client's.
    let mut end = 4 + u32::from_le_bytes(net[..4].try_into().unwrap()) as usize;
    loop {
        let size = i32::from_le_bytes(net[end + 4..end + 8].try_into().unwrap()) as usize;
        if end + 8 + size > 60_000 {
            break;
        }
        end += 8 + size;
    }
    let net = net[..end].to_vec();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    // Header and packets in one write, then nothing: the client must deliver what it has.
    let srv = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        s.write_all(&net).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut b = [0u8; 1];
        // The client closed first (having learned its steps without more bytes), not the
        // 60 s timeout.
        match s.read(&mut b) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    });
    let child =
        spawn(stream(format!("dv-tcp://{addr}"), "tiny").args(["--max-steps", "5", "--bin-us", "200"]));
    let o = finish(child, Duration::from_secs(50), "dv-tcp one write");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = crate::common::last_json_line(&o.stderr);
    assert_eq!(s["steps"], 5, "{s}");
    assert!(srv.join().unwrap());
}

#[test]
fn a_source_that_fails_midway_exits_1_after_its_summary() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("s.json");
    // Half of a real recording on standard input: the events before the cut are learned.
    let bytes = std::fs::read(d.join("aedat2/dvs128_alex_walking_again.aedat")).unwrap();
    let cut = bytes.len() / 2 + 3;
    let mut child = spawn(
        stream("stdin", "tiny")
            .arg("--summary")
            .arg(&s)
            .stdin(Stdio::piped()),
    );
    child.stdin.take().unwrap().write_all(&bytes[..cut]).unwrap();
    let o = finish(child, Duration::from_secs(60), "truncated stdin");
    assert_clean_exit(&o, "truncated stdin");
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let sm = summary(&s);
    assert!(sm["steps"].as_u64().unwrap() > 50, "{sm}");
    assert!(sm["error"].as_str().unwrap().contains("ends mid-record"), "{sm}");
    // A live label the preset does not have is warned about and skipped.
    let labels = tmp.path().join("labels.txt");
    std::fs::write(&labels, "now 99\nnow 1\n").unwrap();
    let o = stream("synthetic", "tiny")
        .args(["--max-steps", "300", "--live-labels"])
        .arg(&labels)
        .output()
        .unwrap();
    assert_clean_exit(&o, "live label 99");
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("live label 99 ignored"));
}

#[test]
fn training_keeps_metrics_and_checkpoint_consistent_through_faults_and_interrupts() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let root = d.join("nmnist/slayer_NMNISTsmall");
    let train = |epochs: &str| {
        let mut c = train_nmnist(&root, "nmnist", &out);
        c.args(["--limit-samples", "48", "--epochs", epochs, "--resume"]);
        c
    };
    // Epochs in metrics.jsonl and in the checkpoint: always the same.
    let consistent = || -> usize {
        let lines = crate::common::json_lines(std::fs::read(out.join("metrics.jsonl")).unwrap());
        let epochs: Vec<u64> = lines.iter().map(|l| l["epoch"].as_u64().unwrap()).collect();
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("checkpoint/state.json")).unwrap()).unwrap();
        let n = state["progress"]["epoch"].as_u64().unwrap() as usize;
        assert_eq!(
            epochs,
            (1..=n as u64).collect::<Vec<_>>(),
            "metrics.jsonl against the checkpoint"
        );
        n
    };
    assert!(train("1").output().unwrap().status.success());
    assert_eq!(consistent(), 1);
    // Epoch 2's checkpoint cannot be written: the run fails naming the file, epoch 1 stays.
    let o = with_file_limit(64, &mut train("2"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("safetensors") && err.contains("too large"), "{err}");
    assert_eq!(consistent(), 1);
    assert!(partial_files(&out.join("checkpoint")).is_empty());
    // Interrupted in a later epoch: exit 1 with the way on, the last whole epoch kept.
    let child = spawn(&mut train("40"));
    std::thread::sleep(Duration::from_millis(2500));
    signal(&child, "-INT");
    let o = finish(child, Duration::from_secs(30), "interrupted training");
    assert_clean_exit(&o, "interrupted training");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("interrupted") && err.contains("--resume"), "{err}");
    let n = consistent();
    assert!((1..40).contains(&n), "{n} epochs kept");
    // And the resume runs the rest once each.
    assert!(train(&(n + 1).to_string()).output().unwrap().status.success());
    assert_eq!(consistent(), n + 1);
}

/// Runs `c`, sends `sig` after `after`, and returns its output: it must stop well before it
/// would have finished (the limit is a hang detector: each run asked for far more work).
fn interrupted(mut c: Command, sig: &str, after: Duration, what: &str) -> Output {
    let child = spawn(&mut c);
    std::thread::sleep(after);
    signal(&child, sig);
    let o = finish(child, Duration::from_secs(20), what);
    assert_clean_exit(&o, what);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{what}: {err}");
    assert!(err.contains("interrupted"), "{what}: {err}");
    o
}

#[test]
fn demo_continual_and_pipelined_training_stop_on_a_signal_with_what_they_learned() {
    let Some(d) = data!() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // The demo, learning (a million steps asked for): the summary and plot of what it learned.
    let out = tmp.path().join("demo");
    let mut c = stdl();
    c.args(["demo", "--train-steps", "1000000"])
        .arg("--out")
        .arg(&out);
    let o = interrupted(c, "-INT", Duration::from_millis(2500), "demo");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("learning steps"), "{err}");
    let s = summary(&out.join("train_summary.json"));
    assert_eq!(s["interrupted"], true, "{s}");
    assert!(out.join("accuracy.png").is_file());
    assert!(partial_files(&out).is_empty());
    // Continual learning of ten one-class tasks: the tasks learned in full, and their figures.
    let out = tmp.path().join("continual");
    let mut c = stdl();
    c.args([
        "continual",
        "--dataset",
        "nmnist",
        "--preset",
        "nmnist",
        "--quiet",
    ])
    .args(["--tasks", "0/1/2/3/4/5/6/7/8/9", "--samples-per-class", "10"])
    // Several epochs per task: the whole run must take well over the 3.5 s before the
    // signal on any machine (one epoch each finished in under that once the engine sped up).
    .args(["--t-bins", "40", "--epochs-per-task", "12"])
    .arg("--root")
    .arg(d.join("nmnist/slayer_NMNISTsmall"))
    .arg("--out")
    .arg(&out);
    let o = interrupted(c, "-TERM", Duration::from_millis(3500), "continual");
    let err = String::from_utf8_lossy(&o.stderr);
    let json = out.join("continual.json");
    if json.exists() {
        let r = summary(&json);
        let learned = r["tasks_learned"].as_u64().unwrap() as usize;
        let rows = r["accuracy_matrix"].as_array().unwrap();
        assert_eq!(r["interrupted"], true, "{r}");
        assert!((1..10).contains(&learned), "{learned} tasks learned");
        assert_eq!(rows.len(), learned);
        assert!(rows.iter().all(|row| row.as_array().unwrap().len() == 10));
        assert!(err.contains(&format!("after {learned} of 10 tasks")), "{err}");
        assert!(out.join("continual.png").is_file());
    } else {
        assert!(err.contains("no task was learned in full"), "{err}");
    }
    // Pipelined training inside one long batch (T = 100000: over a minute per batch).
    let out = tmp.path().join("train");
    let mut c = train_nmnist(&d.join("nmnist/slayer_NMNISTsmall"), "nmnist", &out);
    c.args([
        "--pipeline",
        "--t-bins",
        "100000",
        "--batch",
        "4",
        "--limit-samples",
        "8",
    ]);
    interrupted(c, "-INT", Duration::from_millis(5000), "train --pipeline");
    // Pipelined training over many short batches, which overlap in the pipeline (the signal
    // lands between batches, or inside one): the batches in flight are taken, the epoch
    // before is kept, and the way on is named.
    let out = tmp.path().join("train-batches");
    let mut c = train_nmnist(&d.join("nmnist/slayer_NMNISTsmall"), "nmnist", &out);
    c.args([
        "--pipeline",
        "--t-bins",
        "4",
        "--batch",
        "1",
        "--limit-samples",
        "1000",
        "--epochs",
        "1000",
    ]);
    let o = interrupted(
        c,
        "-INT",
        Duration::from_millis(4000),
        "train --pipeline, short batches",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--resume") || err.contains("nothing was saved"),
        "{err}"
    );
}
