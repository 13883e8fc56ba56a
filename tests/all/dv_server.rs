//! `dv-tcp://` against a real DV network-stream server: iniVation's dv-processing
//! (`NetworkWriter`, from PyPI) serves a real AEDAT 4 recording; the server then goes away
//! and a second one serves it again, later in time, on the same port. `stdl stream` must
//! receive every event of both, say that it reconnects, and cover the served time range.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::data;

/// `python3` with dv_processing, or `None` (a printed reason) outside CI.
fn dv_python() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import dv_processing"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some("python3");
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but python3 cannot import dv_processing (.ci/run installs it with pip)");
    }
    eprintln!("skipped: python3 cannot import dv_processing (pip install dv-processing)");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a server and waits until it listens.
fn serve(
    py: &str,
    recording: &std::path::Path,
    port: u16,
    offset_us: u64,
    compression: &str,
) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(py)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/dv_server.py"))
        .arg(recording)
        .arg(port.to_string())
        .args([
            "--offset-us",
            &offset_us.to_string(),
            "--compression",
            compression,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "listening", "server did not start");
    (child, out)
}

/// The server's report after it served everything.
fn report(mut child: Child, mut out: BufReader<std::process::ChildStdout>) -> serde_json::Value {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(child.wait().unwrap().success(), "server failed");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("server said {line:?}: {e}"))
}

fn wait_for(path: &std::path::Path, needle: &str, times: usize, child: &mut Child) -> String {
    let start = Instant::now();
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.matches(needle).count() >= times {
            return s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{needle:?} did not appear {times} times: {s}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dv_processing_server_reconnect_and_every_event() {
    let Some(d) = data!() else { return };
    let Some(py) = dv_python() else { return };
    let recording = d.join("aedat4/dvxplorer_tonic_sample.aedat4");
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let (server, out) = serve(py, &recording, port, 0, "lz4");
    let (summary, log) = (tmp.path().join("s.json"), tmp.path().join("stderr.txt"));
    let mut client = Command::new(env!("CARGO_BIN_EXE_stdl"))
        .args(["stream", "--source", &format!("dv-tcp://127.0.0.1:{port}")])
        .args([
            "--preset",
            "tiny",
            "--no-learn",
            "--overload",
            "block",
            "--metrics-every-s",
            "100",
        ])
        .arg("--predictions")
        .arg(tmp.path().join("p.jsonl"))
        .arg("--summary")
        .arg(&summary)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let first = report(server, out);
    wait_for(&log, "stream ended; reconnecting", 1, &mut client);
    // The server went away; a new one comes up on the same port, continuing in time, with
    // the other compression DV offers.
    let span = first["last"][0].as_u64().unwrap() - first["first"][0].as_u64().unwrap();
    let (server, out) = serve(py, &recording, port, span + 10_000, "zstd");
    let second = report(server, out);
    let err = wait_for(&log, "stream ended; reconnecting", 2, &mut client);
    assert!(err.matches("connected to 127.0.0.1").count() >= 2, "{err}");
    let st = Command::new("kill")
        .args(["-INT", &client.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        client.wait().unwrap().success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let served = first["events"].as_u64().unwrap() + second["events"].as_u64().unwrap();
    assert_eq!(first["events"], 111_954, "PROVENANCE.md's count");
    assert_eq!(
        s["events"].as_u64().unwrap(),
        served,
        "every served event arrived"
    );
    // The time range the client saw is the one served: first event of the first server to
    // the last of the second.
    let served_s = (second["last"][0].as_u64().unwrap() - first["first"][0].as_u64().unwrap()) as f64 * 1e-6;
    assert!(
        (s["stream_seconds"].as_f64().unwrap() - served_s).abs() < 1e-6,
        "{s} vs {served_s}"
    );
    // 10 ms bins over that range, all learned from (block: none dropped).
    let bins = s["bins"].as_u64().unwrap();
    assert!(
        bins as f64 >= served_s * 100.0 - 2.0,
        "{bins} bins for {served_s} s"
    );
    assert_eq!(s["dropped_bins"], 0);
}
