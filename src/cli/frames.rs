//! `stdl frames`: bin a recording into frames, print them, draw a PNG strip.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use stdl::io::frames::{
    frames_from_events, Channels, DenoiseFilter, Edge, EventFilter, Frame, Geometry, RefractoryFilter,
    Slicing, StreamBinner,
};
use stdl::io::{EventReader, SensorSize};

use super::ReadArgs;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum EdgeArg {
    /// The last bin runs to the end of the recording (SpikingJelly).
    ToLast,
    /// Only whole bins; the remainder is dropped (Tonic).
    Drop,
}

/// Frame settings shared with other commands.
#[derive(Args, Debug, Clone)]
pub struct FrameArgs {
    /// Fixed time bins of this many microseconds, closed on event time (streaming).
    #[arg(long, conflicts_with_all = ["time_bins", "event_bins"], value_parser = super::at_least_one::<u64>)]
    pub bin_us: Option<u64>,
    /// With --bin-us: each frame covers this many microseconds (a multiple of --bin-us).
    #[arg(long, requires = "bin_us", value_parser = super::at_least_one::<u64>)]
    pub window_us: Option<u64>,
    /// Cut the whole recording into this many bins of equal duration.
    #[arg(long, conflicts_with = "event_bins", value_parser = super::at_least_one::<usize>)]
    pub time_bins: Option<usize>,
    /// Cut the whole recording into this many bins of equal event count.
    #[arg(long, value_parser = super::at_least_one::<usize>)]
    pub event_bins: Option<usize>,
    /// With --time-bins / --event-bins: fraction of a bin each window extends into the next.
    #[arg(long, default_value_t = 0.0, value_parser = super::fraction)]
    pub overlap: f64,
    /// What happens to the remainder after the last whole bin.
    #[arg(long, value_enum, default_value_t = EdgeArg::ToLast)]
    pub edge: EdgeArg,
    /// One channel of all events instead of OFF and ON channels.
    #[arg(long)]
    pub merge_polarity: bool,
    /// Downsample by an integer factor.
    #[arg(long, conflicts_with = "resize", value_parser = super::at_least_one::<u16>)]
    pub downsample: Option<u16>,
    /// Resize to WxH.
    #[arg(long, value_parser = super::parse_size)]
    pub resize: Option<SensorSize>,
    /// Background-activity filter: keep events with a neighbour event at most this many us earlier.
    #[arg(long)]
    pub denoise_us: Option<u64>,
    /// Refractory filter: drop events within this many us of the pixel's previous event.
    #[arg(long)]
    pub refractory_us: Option<u64>,
}

impl FrameArgs {
    /// The geometry for a sensor.
    pub fn geometry(&self, sensor: SensorSize) -> Result<Geometry> {
        let ch = if self.merge_polarity {
            Channels::Merged
        } else {
            Channels::Split
        };
        Ok(match (self.downsample, self.resize) {
            (Some(f), _) => Geometry::downsampled(sensor, f, ch)?,
            (None, Some(s)) => Geometry::resized(sensor, s, ch)?,
            (None, None) => Geometry::new(sensor, ch)?,
        })
    }

    /// Event filters, in the order they apply.
    pub fn filters(&self, sensor: SensorSize) -> Vec<Box<dyn EventFilter>> {
        let mut f: Vec<Box<dyn EventFilter>> = Vec::new();
        if let Some(us) = self.refractory_us {
            f.push(Box::new(RefractoryFilter::new(sensor, us)));
        }
        if let Some(us) = self.denoise_us {
            f.push(Box::new(DenoiseFilter::new(sensor, us)));
        }
        f
    }

    fn edge(&self) -> Edge {
        match self.edge {
            EdgeArg::ToLast => Edge::ToLast,
            EdgeArg::Drop => Edge::Drop,
        }
    }
}

#[derive(Args, Debug)]
pub struct FramesArgs {
    /// The recording.
    pub file: PathBuf,
    #[command(flatten)]
    pub frames: FrameArgs,
    /// Write a PNG strip of frames (dark style: ON amber, OFF blue on black).
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// PNG colours: dark (events light up black) or light (the earlier red and blue ink on
    /// white).
    #[arg(long, default_value = "dark")]
    pub png_style: stdl::picture::FrameStyle,
    /// At most this many frames in the PNG, evenly spaced over the recording.
    #[arg(long, default_value_t = 12, value_parser = super::at_least_one::<usize>)]
    pub max_frames: usize,
    /// With --bin-us: do not emit the final, partial bin.
    #[arg(long)]
    pub drop_partial: bool,
    /// Print one JSON object per frame instead of a table.
    #[arg(long)]
    pub json: bool,
    /// With --bin-us: a jump in event time larger than this many microseconds is skipped
    /// (counted, no empty frames for it). 0: every gap gives its empty frames.
    #[arg(long, default_value_t = stdl::runtime::stream::DEFAULT_MAX_GAP_US)]
    pub max_gap_us: u64,
    #[command(flatten)]
    pub read: ReadArgs,
}

/// The table shows every frame when there are at most `TABLE_HEAD + TABLE_TAIL`, otherwise
/// the first `TABLE_HEAD` and the last `TABLE_TAIL`.
const TABLE_HEAD: usize = 10;
const TABLE_TAIL: usize = 5;

#[derive(Serialize)]
struct FrameLine {
    index: usize,
    t_start_us: u64,
    t_end_us: u64,
    events: u64,
    max_count: f32,
}

pub fn run(a: &FramesArgs) -> Result<()> {
    let opts = a.read.options();
    let mut r = EventReader::open_as(&a.file, a.read.format, &opts)?;
    r.read_header()
        .with_context(|| format!("reading {}", a.file.display()))?;
    // Files that do not state their size (ATIS .bin, N-CARS .dat) are per-sample files:
    // read them whole and take the events' extent.
    let mut preloaded = None;
    let sensor = match r.sensor_size() {
        Some(s) => s,
        None => {
            let events = r
                .read_all()
                .with_context(|| format!("reading {}", a.file.display()))?;
            let s = stdl::io::datasets::extent(&events);
            eprintln!(
                "note: {} states no sensor size; using the events' extent {s}",
                a.file.display()
            );
            preloaded = Some(events);
            s
        }
    };
    let geom = a.frames.geometry(sensor)?;
    let mut filters = a.frames.filters(sensor);
    let mut keep = Vec::new();
    // Rows stream out (JSON) or only the table's first and last ones are kept: memory does
    // not follow the number of frames.
    let mut total = 0usize;
    let (mut head, mut tail) = (Vec::new(), std::collections::VecDeque::new());
    let mut json_out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed: Option<std::io::Error> = None;
    let json = a.json;
    let mut record = |f: Frame, keep: &mut Vec<Frame>| {
        let max_count = f.data.iter().copied().fold(0.0, f32::max);
        let line = FrameLine {
            index: total,
            t_start_us: f.t_start_us,
            t_end_us: f.t_end_us,
            events: f.events,
            max_count,
        };
        total += 1;
        if json {
            if failed.is_none() {
                use std::io::Write;
                let text = serde_json::to_string(&line).expect("a frame line serialises");
                if let Err(e) = writeln!(json_out, "{text}") {
                    failed = Some(e);
                }
            }
        } else if head.len() < TABLE_HEAD + TABLE_TAIL {
            head.push(line);
        } else {
            tail.push_back(line);
            if tail.len() > TABLE_TAIL {
                tail.pop_front();
            }
        }
        keep.push(f);
    };
    let filter = |events: &mut Vec<stdl::io::Event>, filters: &mut Vec<Box<dyn EventFilter>>| {
        for f in filters.iter_mut() {
            f.retain(events);
        }
    };
    match (a.frames.bin_us, a.frames.time_bins, a.frames.event_bins) {
        (Some(bin_us), _, _) => {
            let window = a.frames.window_us.unwrap_or(bin_us);
            let mut binner = StreamBinner::windowed(geom, bin_us, window)?
                .with_max_gap((a.max_gap_us > 0).then_some(a.max_gap_us));
            // Frames stream through; only a bounded, evenly thinned set is kept for the PNG.
            let mut stride = 1usize;
            let mut seen = 0usize;
            let cap = 4 * a.max_frames.max(1);
            let mut push =
                |f: Frame, keep: &mut Vec<Frame>, record: &mut dyn FnMut(Frame, &mut Vec<Frame>)| {
                    let mut scratch = Vec::new();
                    let keep_it = seen % stride == 0;
                    record(f, if keep_it { &mut *keep } else { &mut scratch });
                    seen += 1;
                    if keep.len() > cap {
                        stride *= 2;
                        let mut i = 0;
                        keep.retain(|_| {
                            i += 1;
                            (i - 1) % 2 == 0
                        });
                    }
                };
            if let Some(mut events) = preloaded.take() {
                filter(&mut events, &mut filters);
                binner.push(&events, |f| push(f, &mut keep, &mut record));
            }
            for batch in r.by_ref() {
                let mut events = batch
                    .with_context(|| format!("reading {}", a.file.display()))?
                    .events;
                filter(&mut events, &mut filters);
                binner.push(&events, |f| push(f, &mut keep, &mut record));
            }
            let stats = binner.finish(!a.drop_partial, |f| push(f, &mut keep, &mut record));
            if stats.time_jumps > 0 {
                eprintln!(
                    "note: {} jump(s) in event time beyond --max-gap-us {} skipped ({} empty frames not made)",
                    stats.time_jumps, a.max_gap_us, stats.skipped_bins
                );
            }
        }
        (None, Some(n), _) | (None, None, Some(n)) => {
            let mut events = match preloaded.take() {
                Some(e) => e,
                None => r
                    .read_all()
                    .with_context(|| format!("reading {}", a.file.display()))?,
            };
            filter(&mut events, &mut filters);
            let slicing = if a.frames.time_bins.is_some() {
                Slicing::TimeBins {
                    n,
                    overlap: a.frames.overlap,
                }
            } else {
                Slicing::EventBins {
                    n,
                    overlap: a.frames.overlap,
                }
            };
            for f in frames_from_events(&events, &geom, slicing, a.frames.edge())? {
                record(f, &mut keep);
            }
        }
        (None, None, None) => bail!("choose the binning: --bin-us N, --time-bins T or --event-bins T"),
    }
    if let Some(e) = failed {
        return Err(e).context("writing frames to standard output");
    }
    {
        use std::io::Write;
        json_out.flush().context("writing frames to standard output")?;
    }
    if !a.json {
        println!(
            "{}: {} frames of {}x{}x{} ({} sensor {})",
            a.file.display(),
            total,
            geom.channels.count(),
            geom.out.height,
            geom.out.width,
            r.format().name(),
            sensor
        );
        println!(
            "{:>6} {:>14} {:>14} {:>9} {:>6}",
            "frame", "t_start_us", "t_end_us", "events", "max"
        );
        let row = |l: &FrameLine| {
            println!(
                "{:>6} {:>14} {:>14} {:>9} {:>6}",
                l.index, l.t_start_us, l.t_end_us, l.events, l.max_count
            )
        };
        if tail.is_empty() {
            head.iter().for_each(row);
        } else {
            head.iter().take(TABLE_HEAD).for_each(row);
            println!("{:>6}", "...");
            // The last TABLE_TAIL of the frames after the first TABLE_HEAD.
            let n = tail.len();
            head.iter().skip(TABLE_HEAD).chain(&tail).skip(n).for_each(row);
        }
    }
    if let Some(png) = &a.png {
        let picked = pick_evenly(&keep, a.max_frames.max(1));
        let img = stdl::picture::render_strip(&picked, &geom, 128, a.png_style);
        stdl::picture::write_png(png, &img)?;
        eprintln!(
            "wrote {} ({} frames, {}x{} px)",
            png.display(),
            picked.len(),
            img.width,
            img.height
        );
    }
    Ok(())
}

/// Up to `n` frames evenly spaced through `frames`.
fn pick_evenly(frames: &[Frame], n: usize) -> Vec<Frame> {
    if frames.len() <= n {
        return frames.to_vec();
    }
    (0..n)
        .map(|i| frames[i * (frames.len() - 1) / (n - 1).max(1)].clone())
        .collect()
}
