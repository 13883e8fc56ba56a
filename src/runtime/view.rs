//! `stdl stream --view`: a live page in the browser.
//!
//! A small HTTP/1.1 server on its own threads serves one embedded page (`view.html`: no
//! external assets, works offline) and a stream of server-sent events (`/events`): first
//! the stream's description (classes, frame size), then about twenty updates a second with
//! the events since the last update (a frame of counts), the smoothed prediction per class,
//! the label, running accuracy and the runtime's counters. The page is read-only: the server
//! answers `GET` of those two paths and nothing else.
//!
//! The learner never waits for a viewer. An update is serialised once and handed to every
//! viewer's queue of [`VIEWER_QUEUE`] updates; when a viewer's queue is full its oldest
//! update is dropped (counted in [`ViewServer::dropped`]). Each viewer has its own thread
//! that writes to its socket; a viewer that stops reading blocks only that thread, and is
//! disconnected once a write has waited [`WRITE_TIMEOUT`].

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Context, Result};
use serde::Serialize;
use stdl_io::{Event, SensorSize};

/// The page, embedded in the binary.
const PAGE: &str = include_str!("view.html");

/// Updates queued per viewer before its oldest is dropped.
pub const VIEWER_QUEUE: usize = 8;

/// How long a write to a viewer may block before the viewer is disconnected.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time between updates.
pub const UPDATE_EVERY: Duration = Duration::from_millis(50);

/// Largest frame side sent to the page; larger sensors are shown downscaled by a whole factor.
const MAX_VIEW_SIDE: u16 = 320;

/// Most viewers at once; more connections to `/events` are refused (503).
pub const MAX_VIEWERS: usize = 64;

/// One viewer's queue.
#[derive(Default)]
struct Viewer {
    queue: Mutex<VecDeque<Arc<str>>>,
    ready: Condvar,
}

#[derive(Default)]
struct Shared {
    viewers: Mutex<Vec<Arc<Viewer>>>,
    closed: AtomicBool,
    dropped: AtomicU64,
    connections: AtomicU64,
    /// The description every new viewer gets first.
    meta: Mutex<Arc<str>>,
}

impl Shared {
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// The stream's description, sent to each viewer when it connects.
#[derive(Clone, Debug, Serialize)]
pub struct ViewMeta {
    /// Class names, by label.
    pub classes: Vec<String>,
    /// The sensor's size.
    pub sensor: [u16; 2],
    /// The size of the frames sent (the sensor's, or downscaled by `downscale`).
    pub frame: [u16; 2],
    /// Sensor pixels per frame pixel along each side.
    pub downscale: u16,
    /// The network preset.
    pub preset: String,
    /// The source, as given.
    pub source: String,
    /// Whether the learner learns (false: predicting only).
    pub learn: bool,
}

/// The server: started by [`ViewServer::start`], stopped when dropped.
pub struct ViewServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl ViewServer {
    /// Binds `addr` (`HOST:PORT`; port 0 picks a free one) and serves in the background.
    pub fn start(addr: &str, meta: &ViewMeta) -> Result<Self> {
        let listener = TcpListener::bind(addr).with_context(|| format!("--view: cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        *shared.meta.lock().expect("view meta") =
            Arc::from(format!("event: meta\ndata: {}\n\n", serde_json::to_string(meta)?));
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("view-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.closed() {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    s.connections.fetch_add(1, Ordering::Relaxed);
                    let s = s.clone();
                    // A thread per connection: a slow viewer holds only its own.
                    let _ = std::thread::Builder::new()
                        .name("view-conn".into())
                        .spawn(move || serve(conn, &s));
                }
            })?;
        Ok(Self {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Viewers connected to the update stream now.
    pub fn viewers(&self) -> usize {
        self.shared.viewers.lock().map_or(0, |v| v.len())
    }

    /// Updates dropped because a viewer's queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Hands one update to every viewer (never blocks on a viewer).
    pub fn publish(&self, update: &impl Serialize) -> Result<()> {
        let viewers = self.shared.viewers.lock().map(|v| v.clone()).unwrap_or_default();
        if viewers.is_empty() {
            return Ok(());
        }
        let msg: Arc<str> = Arc::from(format!("data: {}\n\n", serde_json::to_string(update)?));
        for v in viewers {
            let mut q = v.queue.lock().expect("viewer queue");
            if q.len() >= VIEWER_QUEUE {
                q.pop_front();
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(msg.clone());
            v.ready.notify_one();
        }
        Ok(())
    }
}

impl Drop for ViewServer {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        if let Ok(v) = self.shared.viewers.lock() {
            v.iter().for_each(|v| v.ready.notify_all());
        }
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Answers one connection: the page, the update stream, or an error status.
fn serve(conn: TcpStream, s: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = conn.set_nodelay(true);
    let Ok(read_half) = conn.try_clone() else { return };
    let mut reader = BufReader::new(read_half.take(16 << 10));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // The rest of the request head (ignored).
    let mut header = String::new();
    loop {
        header.clear();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let mut conn = conn;
    let reply = |conn: &mut TcpStream, status: &str, ctype: &str, body: &[u8]| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(body));
    };
    match (method, path) {
        ("GET", "/" | "/index.html") => {
            reply(&mut conn, "200 OK", "text/html; charset=utf-8", PAGE.as_bytes())
        }
        ("GET", "/events") => stream_updates(conn, s),
        ("GET", "/favicon.ico") => reply(&mut conn, "204 No Content", "text/plain", b""),
        ("GET" | "HEAD", _) => reply(&mut conn, "404 Not Found", "text/plain", b"not found\n"),
        _ => reply(
            &mut conn,
            "405 Method Not Allowed",
            "text/plain",
            b"read-only: GET / and /events\n",
        ),
    }
}

/// Server-sent events: the description, then every update queued for this viewer.
fn stream_updates(mut conn: TcpStream, s: &Shared) {
    let viewer = Arc::new(Viewer::default());
    {
        let Ok(mut all) = s.viewers.lock() else { return };
        if all.len() >= MAX_VIEWERS {
            drop(all);
            let _ = conn.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        all.push(viewer.clone());
    }
    let meta = s.meta.lock().map(|m| m.clone()).unwrap_or_else(|_| Arc::from(""));
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
                Connection: keep-alive\r\n\r\n";
    let mut ok = conn
        .write_all(head.as_bytes())
        .and_then(|_| conn.write_all(meta.as_bytes()))
        .is_ok();
    let mut last_write = Instant::now();
    while ok && !s.closed() {
        let next = {
            let mut q = viewer.queue.lock().expect("viewer queue");
            if q.is_empty() {
                q = viewer
                    .ready
                    .wait_timeout(q, Duration::from_secs(1))
                    .expect("viewer queue")
                    .0;
            }
            q.pop_front()
        };
        ok = match next {
            Some(msg) => conn.write_all(msg.as_bytes()).is_ok(),
            // A comment now and then: a closed page is noticed even when nothing happens.
            None if last_write.elapsed() > Duration::from_secs(5) => conn.write_all(b": idle\n\n").is_ok(),
            None => continue,
        };
        last_write = Instant::now();
    }
    if let Ok(mut all) = s.viewers.lock() {
        all.retain(|v| !Arc::ptr_eq(v, &viewer));
    }
}

/// The events since the last update, counted per frame pixel, and when the next update is
/// due.
pub struct ViewFrame {
    sensor: SensorSize,
    downscale: u16,
    size: [u16; 2],
    /// OFF counts then ON counts, `u8` saturating.
    counts: Vec<u8>,
    touched: Vec<u32>,
    /// Event time of the first and last event counted.
    span: Option<(u64, u64)>,
    next_update: Instant,
}

impl ViewFrame {
    /// For a sensor of `sensor`.
    pub fn new(sensor: SensorSize) -> Self {
        let side = sensor.width.max(sensor.height);
        let downscale = side.div_ceil(MAX_VIEW_SIDE).max(1);
        let size = [
            sensor.width.div_ceil(downscale),
            sensor.height.div_ceil(downscale),
        ];
        let n = size[0] as usize * size[1] as usize;
        Self {
            sensor,
            downscale,
            size,
            counts: vec![0; 2 * n],
            touched: Vec::new(),
            span: None,
            next_update: Instant::now(),
        }
    }

    /// The frame's size in pixels.
    pub fn size(&self) -> [u16; 2] {
        self.size
    }

    /// Sensor pixels per frame pixel.
    pub fn downscale(&self) -> u16 {
        self.downscale
    }

    /// Counts `events` (those off the sensor are ignored).
    pub fn add(&mut self, events: &[Event]) {
        let (w, n) = (
            self.size[0] as usize,
            self.size[0] as usize * self.size[1] as usize,
        );
        if let (Some(f), Some(l)) = (events.first(), events.last()) {
            let (a, b) = self.span.get_or_insert((f.t_us, l.t_us));
            *b = (*b).max(l.t_us);
            *a = (*a).min(f.t_us);
        }
        for e in events {
            if e.x >= self.sensor.width || e.y >= self.sensor.height {
                continue;
            }
            let p = (e.y / self.downscale) as usize * w + (e.x / self.downscale) as usize;
            let i = p + if e.on { n } else { 0 };
            if self.counts[i] == 0 {
                self.touched.push(i as u32);
            }
            self.counts[i] = self.counts[i].saturating_add(1);
        }
    }

    /// Whether an update is due now.
    pub fn due(&self) -> bool {
        Instant::now() >= self.next_update
    }

    /// The counts as base64 (OFF plane then ON plane, one byte per pixel), the saturation
    /// level, and the event time they span (µs); clears them and schedules the next update.
    pub fn take(&mut self) -> (String, f32, u64) {
        let span = self.span.take().map_or(0, |(a, b)| b - a);
        let sat =
            crate::picture::saturation_of(self.touched.iter().map(|&i| f32::from(self.counts[i as usize])));
        let data = base64(&self.counts);
        for &i in &self.touched {
            self.counts[i as usize] = 0;
        }
        self.touched.clear();
        self.next_update = Instant::now() + UPDATE_EVERY;
        (data, sat, span)
    }
}

/// Standard base64 with padding (RFC 4648), for bytes in JSON.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= c.len() {
                out.push(A[(v >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn large_sensors_are_downscaled_and_counts_clear_after_each_update() {
        let mut f = ViewFrame::new(SensorSize::new(1280, 720));
        assert_eq!((f.size(), f.downscale()), ([320, 180], 4));
        f.add(&[
            Event::new(0, 1279, 719, true),
            Event::new(1, 3, 2, false),
            Event::new(2, 2000, 0, true),
        ]);
        let n = 320 * 180;
        assert_eq!(f.counts[n + 179 * 320 + 319], 1);
        assert_eq!(f.counts[0], 1);
        assert_eq!(
            f.counts.iter().map(|&c| c as u32).sum::<u32>(),
            2,
            "off-sensor event ignored"
        );
        let (data, sat, span) = f.take();
        assert_eq!(span, 2);
        assert_eq!(data.len(), (2 * n).div_ceil(3) * 4);
        assert_eq!(sat, 1.0);
        assert!(f.counts.iter().all(|&c| c == 0));
    }
}
