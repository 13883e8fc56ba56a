//! Where a stream's events come from: files, stdin, DV network streams, dataset splits, the
//! synthetic scene and USB cameras, each read on a source thread of its own that writes
//! events into the ring and says everything else (sensor size, labels, failure) on a control
//! channel.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{bail, Context, Result};
use crossbeam_channel::bounded;
use serde::{Deserialize, Serialize};
use stdl_io::sources::SyntheticConfig;
use stdl_io::{EventReader, Format, ReadOptions, SensorSize};

use crate::runtime::ring::{event_ring, RingReader};

#[cfg_attr(not(feature = "camera"), path = "no_camera.rs")]
mod camera;
mod dataset;
mod dv_tcp;
mod file;
mod out;
mod stdin;
mod synthetic;

pub(crate) use out::{Control, SourceOut};

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

/// A source in a settings file: as `--source` writes it, or a dataset split.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SourceForm {
    /// `synthetic:SEED`, `file://PATH`, `stdin`, `dv-tcp://HOST:PORT`, `camera://SERIAL`.
    Spec(String),
    /// A dataset split.
    Dataset {
        /// Dataset name.
        dataset: String,
        /// Its root.
        root: PathBuf,
        /// The split.
        split: stdl_io::datasets::Split,
    },
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Source::Dataset { name, root, split } => SourceForm::Dataset {
                dataset: name.clone(),
                root: root.clone(),
                split: *split,
            },
            Source::File(p) => SourceForm::Spec(format!("file://{}", p.display())),
            other => SourceForm::Spec(describe(other)),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match SourceForm::deserialize(d)? {
            SourceForm::Spec(s) => Source::parse(&s).map_err(serde::de::Error::custom),
            SourceForm::Dataset { dataset, root, split } => Ok(Source::Dataset {
                name: dataset,
                root,
                split,
            }),
        }
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

/// One kind of source, run on the source thread: writes its events to `out` until it ends,
/// fails (reported on `out`) or the reader goes away. One file per kind.
pub(crate) trait RunSource: Send {
    /// Runs the source to its end.
    fn run(&self, out: &mut SourceOut, pump: &Pump);
}

impl Source {
    /// The source's runner.
    pub(crate) fn runner(&self) -> Box<dyn RunSource> {
        match self.clone() {
            Source::File(p) => Box::new(file::File(p)),
            Source::Stdin => Box::new(stdin::Stdin),
            Source::DvTcp(a) => Box::new(dv_tcp::DvTcp(a)),
            Source::Synthetic(c) => Box::new(synthetic::Synthetic(c)),
            Source::Camera(id) => Box::new(camera::Camera(id)),
            Source::Dataset { name, root, split } => Box::new(dataset::DatasetSplit { name, root, split }),
        }
    }
}

/// What every source thread is given besides its own settings.
#[derive(Clone, Debug)]
pub(crate) struct Pump {
    /// Forced file format.
    pub format: Option<Format>,
    /// Sensor size when the source does not state it (or to override it).
    pub size: Option<SensorSize>,
    /// Replay speed relative to event time (`None`: as fast as possible).
    pub speed: Option<f64>,
    /// The stream's step limit (a synthetic scene stops after it).
    pub max_steps: Option<u64>,
    /// The stream's time bin.
    pub bin_us: u64,
    /// DV network streams: connection and read timeouts.
    pub connect_timeout: Duration,
    /// See `connect_timeout`.
    pub read_timeout: Duration,
    /// Resume: events before this time are skipped.
    pub resume_t: u64,
}

impl Pump {
    /// Reader options for event files and byte streams.
    pub(crate) fn read_options(&self) -> ReadOptions {
        ReadOptions {
            chunk_bytes: 64 << 10,
            sensor_size: self.size,
            ..ReadOptions::default()
        }
    }

    /// Writes the events of one reader until its end (Ok) or its failure (the message),
    /// paced at `speed` and skipping events before `resume_t`.
    pub(crate) fn send_reader(
        &self,
        out: &mut SourceOut,
        mut r: EventReader<'_>,
    ) -> std::result::Result<(), String> {
        r.read_header().map_err(|e| e.to_string())?;
        match self.size.or(r.sensor_size()) {
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
            if self.resume_t > 0 {
                buf.retain(|e| e.t_us >= self.resume_t);
                if buf.is_empty() {
                    continue;
                }
            }
            if let (Some(speed), Some(last)) = (self.speed, buf.last()) {
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
    }
}

/// Waits for the source to state its sensor size. Until it does (a server that is down or
/// silent, a FIFO without a writer), Ctrl-C still stops the stream: `fallback` is returned,
/// and nothing will be binned. A source that fails before its first event (no such file, not
/// a recording) also gives `fallback`, with its message.
///
/// # Errors
/// The source thread ended without a word.
pub(crate) fn await_sensor(
    ctl: &crossbeam_channel::Receiver<Control>,
    fallback: SensorSize,
    stop: &crate::interrupt::Stop,
) -> Result<(SensorSize, Option<String>)> {
    loop {
        match ctl.recv_timeout(Duration::from_millis(50)) {
            Ok(Control::Size(s)) => return Ok((s, None)),
            Ok(Control::Failed(m)) => return Ok((fallback, Some(m))),
            Ok(Control::Label(..)) => {}
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if stop.requested() {
                    return Ok((fallback, None));
                }
            }
            Err(_) => bail!("the source ended before its first events"),
        }
    }
}

/// Events the ring between the source and the binner holds (16 bytes each: 1 MiB).
pub const EVENT_RING_CAPACITY: usize = 1 << 16;

/// Starts the source thread: events come out of the ring, everything else out of the
/// control channel; the thread ends with the source or once the ring's reader is dropped.
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
    let mut out = SourceOut::new(ring, ctl);
    let pump = Pump {
        format: cfg.format,
        size: cfg.sensor_size,
        speed: cfg.speed,
        max_steps: cfg.max_steps,
        bin_us: cfg.bin_us,
        connect_timeout: cfg.connect_timeout,
        read_timeout: cfg.read_timeout,
        resume_t: resume_t_us,
    };
    let source = cfg.source.runner();
    let h = std::thread::spawn(move || source.run(&mut out, &pump));
    (reader, ctl_rx, h)
}
