//! Where a stream's events come from: files, stdin, DV network streams, dataset splits, the
//! synthetic scene and USB cameras, each read on a source thread of its own that writes
//! events into the ring and says everything else (sensor size, labels, failure) on a control
//! channel.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossbeam_channel::bounded;
use stdl_io::sources::{SyntheticConfig, SyntheticScene};
use stdl_io::{Event, EventReader, Format, ReadOptions, SensorSize};

use crate::runtime::ring::{event_ring, RingReader, RingWriter};

/// What a source thread needs of a stream's settings.
#[derive(Clone, Debug)]
pub(crate) struct SourceSettings {
    pub source: Source,
    pub format: Option<Format>,
    pub sensor_size: Option<SensorSize>,
    pub speed: Option<f64>,
    pub max_steps: Option<u64>,
    pub bin_us: u64,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// Where events come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A recording, replayed.
    File(PathBuf),
    /// Raw bytes of any supported format on standard input.
    Stdin,
    /// A DV (AEDAT 4) network stream, `HOST:PORT`.
    DvTcp(String),
    /// The seeded synthetic scene (labelled).
    Synthetic(SyntheticConfig),
    /// A USB event camera through neuromorphic-drivers (feature `camera`): `""` for the
    /// first one found, or its serial number.
    Camera(String),
    /// The samples of a dataset split, played one after another as one labelled stream
    /// (each sample's times shifted to follow the previous one).
    Dataset {
        /// Dataset name (`nmnist`, `dvs-gesture`, `ncaltech101`, `cifar10-dvs`).
        name: String,
        /// Its root directory.
        root: PathBuf,
        /// Which split.
        split: stdl_io::datasets::Split,
    },
}

impl Source {
    /// Parses `--source`: `file://PATH`, a plain path, `stdin`, `dv-tcp://HOST:PORT`,
    /// `camera://` or `camera://SERIAL`, `synthetic` or `synthetic:SEED`.
    pub fn parse(s: &str) -> Result<Source> {
        Ok(if let Some(p) = s.strip_prefix("file://") {
            Source::File(PathBuf::from(p))
        } else if s == "stdin" || s == "-" {
            Source::Stdin
        } else if let Some(a) = s.strip_prefix("dv-tcp://") {
            Source::DvTcp(a.to_owned())
        } else if s == "synthetic" || s.starts_with("synthetic:") {
            let seed = s
                .strip_prefix("synthetic:")
                .map(|v| v.parse())
                .transpose()
                .context("synthetic:SEED")?
                .unwrap_or(0);
            Source::Synthetic(SyntheticConfig {
                seed,
                ..Default::default()
            })
        } else if let Some(id) = s.strip_prefix("camera://") {
            if !cfg!(feature = "camera") {
                bail!(
                    "{s}: this binary was built without USB camera support; rebuild with \
                     `cargo build --release --features camera`"
                );
            }
            Source::Camera(id.trim_matches('/').to_owned())
        } else {
            Source::File(PathBuf::from(s))
        })
    }
}

/// The source as a user wrote it (for the page).
pub(crate) fn describe(source: &Source) -> String {
    match source {
        Source::File(p) => p.display().to_string(),
        Source::Stdin => "stdin".into(),
        Source::DvTcp(a) => format!("dv-tcp://{a}"),
        Source::Synthetic(c) => format!("synthetic:{}", c.seed),
        Source::Camera(id) => format!("camera://{id}"),
        Source::Dataset { name, split, .. } => format!("dataset {name} ({split:?})"),
    }
}

/// What the source thread says besides events (events travel in the ring).
pub(crate) enum Control {
    /// The sensor size, first.
    Size(SensorSize),
    /// From this time on, this label (sent before the events it labels).
    Label(u64, usize),
    /// The source failed after the events already written.
    Failed(String),
}

/// The source thread's outputs: the event ring and the control channel.
pub(crate) struct SourceOut {
    ring: RingWriter,
    ctl: crossbeam_channel::Sender<Control>,
    label: Option<usize>,
}

impl SourceOut {
    /// Sends the sensor size; false when the reader is gone.
    pub(crate) fn size(&self, s: SensorSize) -> bool {
        self.ctl.send(Control::Size(s)).is_ok()
    }

    /// Reports a failure (the reader keeps every event written before it).
    pub(crate) fn fail(&self, m: impl Into<String>) {
        let _ = self.ctl.send(Control::Failed(m.into()));
    }

    /// Writes events, after the label that holds from `label.0` on if it changed; false when
    /// the reader is gone.
    pub(crate) fn events(&mut self, events: &[Event], label: Option<(u64, usize)>) -> bool {
        if let Some((t, l)) = label {
            if self.label != Some(l) {
                self.label = Some(l);
                if self.ctl.send(Control::Label(t, l)).is_err() {
                    return false;
                }
            }
        }
        self.ring.push(events).is_ok()
    }

    /// Whether the reader is still there.
    pub(crate) fn alive(&self) -> bool {
        self.ring.reader_alive()
    }
}

/// Events the ring between the source and the binner holds (16 bytes each: 1 MiB).
pub const EVENT_RING_CAPACITY: usize = 1 << 16;

pub(crate) fn spawn_source(
    cfg: &SourceSettings,
    resume_t_us: u64,
) -> (
    RingReader,
    crossbeam_channel::Receiver<Control>,
    std::thread::JoinHandle<()>,
) {
    let (ring, reader) = event_ring(EVENT_RING_CAPACITY);
    let (ctl, ctl_rx) = bounded::<Control>(1024);
    let mut out = SourceOut {
        ring,
        ctl,
        label: None,
    };
    let source = cfg.source.clone();
    let (format, size, speed, max_steps, bin_us) =
        (cfg.format, cfg.sensor_size, cfg.speed, cfg.max_steps, cfg.bin_us);
    let (connect_timeout, read_timeout) = (cfg.connect_timeout, cfg.read_timeout);
    let resume_t = resume_t_us;
    let h = std::thread::spawn(move || {
        // Events of one reader until its end (Ok) or its failure (the message).
        let send_reader = |out: &mut SourceOut, mut r: EventReader<'_>| -> std::result::Result<(), String> {
            r.read_header().map_err(|e| e.to_string())?;
            match size.or(r.sensor_size()) {
                Some(s) => {
                    out.size(s);
                }
                None => return Err("the source states no sensor size; pass --sensor-size WxH".into()),
            }
            let start = Instant::now();
            let mut t0 = None;
            let mut buf = Vec::new();
            while let Some(res) = r.read_into(&mut buf) {
                res.map_err(|e| e.to_string())?;
                if resume_t > 0 {
                    buf.retain(|e| e.t_us >= resume_t);
                    if buf.is_empty() {
                        continue;
                    }
                }
                if let (Some(speed), Some(last)) = (speed, buf.last()) {
                    let first = *t0.get_or_insert(buf[0].t_us);
                    let due = Duration::from_secs_f64(last.t_us.saturating_sub(first) as f64 * 1e-6 / speed);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                if !out.events(&buf, None) {
                    return Ok(());
                }
                buf.clear();
            }
            Ok(())
        };
        let opts = ReadOptions {
            chunk_bytes: 64 << 10,
            sensor_size: size,
            ..ReadOptions::default()
        };
        match source {
            Source::File(p) => {
                if let Err(m) = EventReader::open_as(&p, format, &opts)
                    .map_err(|e| e.to_string())
                    .and_then(|r| send_reader(&mut out, r))
                {
                    out.fail(m);
                }
            }
            Source::Stdin => {
                if let Err(m) = EventReader::from_reader(std::io::stdin(), format, &opts)
                    .map_err(|e| e.to_string())
                    .and_then(|r| send_reader(&mut out, r))
                {
                    out.fail(format!("standard input: {m}"));
                }
            }
            Source::DvTcp(addr) => {
                // Reconnect with backoff when the server goes away.
                let mut backoff = Duration::from_millis(200);
                loop {
                    match connect(&addr, connect_timeout, read_timeout) {
                        Ok(s) => {
                            eprintln!("connected to {addr}");
                            backoff = Duration::from_millis(200);
                            // A failure here is the connection's, not the stream's: reconnect.
                            match EventReader::from_reader(s, Some(Format::Aedat4), &opts)
                                .map_err(|e| e.to_string())
                                .and_then(|r| send_reader(&mut out, r))
                            {
                                Ok(()) => eprintln!("dv-tcp {addr}: stream ended; reconnecting"),
                                Err(m) => eprintln!("dv-tcp {addr}: {m}; reconnecting"),
                            }
                        }
                        Err(e) => eprintln!("dv-tcp {addr}: {e}; retrying in {:.1} s", backoff.as_secs_f64()),
                    }
                    if !out.alive() {
                        return;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            Source::Camera(id) => crate::runtime::camera::run(&id, &mut out),
            Source::Dataset { name, root, split } => {
                let ds = match stdl_io::datasets::Dataset::open(&name, &root) {
                    Ok(d) => d,
                    Err(e) => return out.fail(format!("{e}")),
                };
                let Some(sensor) = size.or(ds.sensor) else {
                    return out.fail(format!("{name}: samples differ in size; pass --sensor-size WxH"));
                };
                out.size(sensor);
                let mut cursor = 0u64;
                for sample in ds.split(split) {
                    let loaded = match ds.load(sample) {
                        Ok(l) => l,
                        Err(e) => return out.fail(format!("{e}")),
                    };
                    let Some(first) = loaded.events.first().map(|e| e.t_us) else {
                        continue;
                    };
                    let start = cursor;
                    let mut events: Vec<Event> = loaded
                        .events
                        .iter()
                        .map(|e| Event {
                            t_us: e.t_us.saturating_sub(first) + start,
                            ..*e
                        })
                        .collect();
                    cursor = events.last().map_or(start, |e| e.t_us) + 1;
                    if resume_t > 0 {
                        events.retain(|e| e.t_us >= resume_t);
                    }
                    if !out.events(&events, Some((start, loaded.label))) {
                        return;
                    }
                }
            }
            Source::Synthetic(c) => {
                let mut scene = SyntheticScene::new(c.clone());
                out.size(c.size);
                let start = Instant::now();
                let ticks_per_bin = (bin_us / c.tick_us).max(1);
                let limit = max_steps.map(|s| (s + 2) * ticks_per_bin);
                let mut n = 0u64;
                loop {
                    let tick_start = scene.t_us();
                    let (events, label) = scene.next_tick();
                    if scene.t_us() <= resume_t {
                        continue; // fast-forward the deterministic scene to the checkpoint
                    }
                    if let Some(speed) = speed {
                        let due = Duration::from_secs_f64(scene.t_us() as f64 * 1e-6 / speed);
                        if let Some(wait) = due.checked_sub(start.elapsed()) {
                            std::thread::sleep(wait);
                        }
                    }
                    if !out.events(&events, Some((tick_start, label))) {
                        return;
                    }
                    n += 1;
                    if limit.is_some_and(|l| n >= l) {
                        return;
                    }
                }
            }
        }
    });
    (reader, ctl_rx, h)
}

/// Connects to a DV server within `timeout` (each of its addresses in turn); reads on the
/// socket then time out after `read_timeout` without a byte (a stalled server is reconnected).
fn connect(addr: &str, timeout: Duration, read_timeout: Duration) -> std::io::Result<std::net::TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                s.set_read_timeout(Some(read_timeout))?;
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address")))
}
