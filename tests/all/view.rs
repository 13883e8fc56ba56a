//! `stdl stream --view`: the live page in a real browser (headless Chromium), and a viewer
//! that never reads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::stream;

/// A paced synthetic stream with the page on a free loopback port; returns the child and
/// the page's address (read from the line the stream prints at start).
fn start_viewed_stream(steps: u32, summary: &std::path::Path) -> (Child, String) {
    let mut child = stream("synthetic:2", "tiny")
        .args([
            "--speed",
            "1",
            "--view",
            "127.0.0.1:0",
            "--metrics-every-s",
            "1000",
        ])
        .args(["--max-steps", &steps.to_string(), "--summary"])
        .arg(summary)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "the stream ended without a view line"
        );
        if let Some(rest) = line.strip_prefix("view: http://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    // Keep reading stderr so that the stream never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    (child, addr)
}

/// Headless Chromium: `chromium` on the PATH (Debian's package; `.ci/run` installs it).
fn chromium() -> Option<String> {
    let found = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("chromium".into());
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but `chromium` is not installed (.ci/run installs Debian's package)");
    }
    eprintln!("skipped: `chromium` not found (apt-get install chromium)");
    None
}

/// Runs Chromium headless with `args` on `url`, killed after a minute.
fn run_chromium(bin: &str, args: &[&str], url: &str) -> String {
    let mut c = Command::new(bin)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .arg("--virtual-time-budget=30000")
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut stdout = c.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            c.kill().unwrap();
            panic!("chromium did not finish within a minute on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The value of `attr="..."` in the page's `<body>` tag.
fn body_attr<'a>(dom: &'a str, attr: &str) -> Option<&'a str> {
    let body = &dom[dom.find("<body")?..];
    let body = &body[..body.find('>')?];
    let at = body.find(&format!("{attr}=\""))? + attr.len() + 2;
    Some(&body[at..at + body[at..].find('"')?])
}

#[test]
fn the_page_updates_live_in_a_real_browser() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_viewed_stream(3000, &tmp.path().join("s.json"));
    // The page stops listening after 12 updates (`?updates=12`) and the DOM is dumped.
    let dom = run_chromium(&bin, &["--dump-dom"], &format!("http://{addr}/?updates=12"));
    let attr = |a: &str| body_attr(&dom, a).unwrap_or_else(|| panic!("no {a} in {dom}"));
    assert_eq!(attr("data-done"), "1", "the page got its 12 updates");
    let updates: u32 = attr("data-updates").parse().unwrap();
    assert!(updates >= 12);
    let changed: u32 = attr("data-frames-changed").parse().unwrap();
    assert!(
        changed >= 2,
        "the frame canvas changed {changed} times in {updates} updates"
    );
    assert!(
        attr("data-prediction").starts_with("dir "),
        "a prediction is shown by class name"
    );
    let acc: f64 = attr("data-accuracy").parse().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert!(dom.contains("running accuracy"));
    // A screenshot of the same page (STDL_VIEW_SCREENSHOT=docs/view.png keeps it).
    let png = std::env::var("STDL_VIEW_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().join("view.png"));
    let shot = format!("--screenshot={}", png.display());
    run_chromium(
        &bin,
        &[&shot, "--window-size=1100,620"],
        &format!("http://{addr}/?updates=40"),
    );
    let bytes = std::fs::read(&png).expect("a screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Reads one HTTP response head from `s`; returns its status line.
fn status_line(s: &mut TcpStream) -> String {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

#[test]
fn a_viewer_that_never_reads_does_not_hold_up_the_stream_or_other_viewers() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("s.json");
    let (mut child, addr) = start_viewed_stream(1500, &summary);
    // Read-only: only GET of the page and the update stream.
    let mut post = TcpStream::connect(&addr).unwrap();
    post.write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    assert!(status_line(&mut post).contains(" 405 "));
    let mut page = TcpStream::connect(&addr).unwrap();
    page.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut html = String::new();
    page.read_to_string(&mut html).unwrap();
    assert!(html.starts_with("HTTP/1.1 200 OK") && html.contains("new EventSource(\"/events\")"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    // A viewer that subscribes and never reads a byte.
    let mut stuck = TcpStream::connect(&addr).unwrap();
    stuck
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // A second viewer that reads: it keeps getting updates while the first is stuck.
    let live = TcpStream::connect(&addr).unwrap();
    let mut w = live.try_clone().unwrap();
    w.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut updates = 0;
    let mut last_steps = 0;
    for line in BufReader::new(live).lines() {
        let Ok(line) = line else { break };
        if let Some(json) = line.strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            if v.get("steps").is_some() {
                let steps = v["steps"].as_u64().unwrap();
                assert!(steps >= last_steps);
                last_steps = steps;
                updates += 1;
            }
        }
    }
    // The stream ended (the server closed the connection) after all its steps.
    let st = child.wait().unwrap();
    assert!(st.success());
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["steps"], 1500);
    assert!(
        updates >= 100,
        "the reading viewer got {updates} updates over 15 s"
    );
    let dropped = s["view_updates_dropped"].as_u64().unwrap();
    assert!(
        dropped > 0,
        "the stuck viewer's oldest updates were dropped, not waited for"
    );
    drop(stuck);
}
