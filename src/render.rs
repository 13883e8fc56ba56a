//! Animated GIFs of event streams (`stdl render`, the demo's `heldout.gif`).
//!
//! Events are binned twice from the same batches: into display frames at the sensor's own
//! resolution, coloured in a [`FrameStyle`], and (with a model) into the model's input frames
//! of `bin_us`, on which it predicts without learning. Below each display frame a banner
//! shows the prediction (class and confidence, smoothed over time as `stdl stream` smooths
//! it) and the label when the source has one. Frames go to the file as they are made (a GIF
//! is a sequence of frames), so memory does not grow with the stream's length.
//!
//! The GIF has one fixed palette: 15 × 15 levels of ON × OFF in the style's colours, 27 greys
//! for the banner's text and four colours for its bar, so frames are written without colour
//! quantisation (exact, and fast).
//!
//! Why this file is a little over 500 lines: the palette, the painter and the loop that
//! bins, predicts and writes are one pipeline, each part sized to the others (the palette's
//! levels are the painter's colours and the banner's text).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::PathBuf;

use crate::error::{bail, Context, Result};
use plotters::prelude::*;
use stdl_io::datasets::{Dataset, Split};
use stdl_io::frames::{Channels, Frame, Geometry, StreamBinner};
use stdl_io::sources::synthetic::{SyntheticConfig, SyntheticScene};
use stdl_io::{Event, EventReader, Format, ReadOptions, SensorSize};
use stdl_models::{Dims, Tensor};

use crate::picture::FrameStyle;
use crate::stdl::StdlModel;

/// Levels per polarity in the palette.
const LEVELS: usize = 15;
/// Greys in the palette (for the banner's anti-aliased text).
const GREYS: usize = 27;
/// The bar's colours: right, wrong, and no label.
const BAR: [[u8; 3]; 3] = [[80, 200, 120], [230, 80, 80], [150, 150, 160]];
/// Height of the banner under each frame, in pixels.
const BANNER_PX: u32 = 40;
/// The shortest frame delay browsers honour (10 ms is shown as 100 ms by most).
const MIN_DELAY_CS: u64 = 2;

/// Where the events come from.
#[derive(Clone, Debug)]
pub enum RenderInput {
    /// A recording.
    File {
        /// The file.
        path: PathBuf,
        /// Its format (`None`: detect).
        format: Option<Format>,
        /// Reader options (sensor size, ...).
        opts: ReadOptions,
    },
    /// The synthetic scene (labelled).
    Synthetic(SyntheticConfig),
    /// The samples of a dataset split, one after another, each labelled and each a
    /// sequence of its own (the model's state is reset at its start, as in training).
    Dataset {
        /// Dataset name (`nmnist`, `dvs-gesture`, ...).
        name: String,
        /// Its root directory.
        root: PathBuf,
        /// Which split.
        split: Split,
    },
}

/// Settings of a render.
#[derive(Clone, Debug)]
pub struct RenderConfig {
    /// The input.
    pub input: RenderInput,
    /// The GIF to write.
    pub out: PathBuf,
    /// The model's time bin (µs); display frames are a whole number of these, at least
    /// 20 ms of playback each.
    pub bin_us: u64,
    /// Playback speed (1: real time).
    pub speed: f64,
    /// Stop after this much of the input's time (synthetic input: 10 s when `None`).
    pub max_seconds: Option<f64>,
    /// Pixels per sensor pixel.
    pub scale: u32,
    /// Colours.
    pub style: FrameStyle,
    /// Prediction smoothing horizon in model steps (as `stdl stream --ema-steps`).
    pub ema_steps: f32,
    /// Class names, by label (`class N` where missing).
    pub class_names: Vec<String>,
}

impl RenderConfig {
    /// Defaults: 10 ms bins, real time, scale 2, dark frames.
    pub fn new(input: RenderInput, out: impl Into<PathBuf>) -> Self {
        Self {
            input,
            out: out.into(),
            bin_us: 10_000,
            speed: 1.0,
            max_seconds: None,
            scale: 2,
            style: FrameStyle::Dark,
            ema_steps: 20.0,
            class_names: Vec::new(),
        }
    }
}

/// What was written.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RenderSummary {
    /// The GIF.
    pub out: PathBuf,
    /// Frames in it.
    pub frames: u64,
    /// Its size in pixels.
    pub width: u32,
    /// Its size in pixels.
    pub height: u32,
    /// Events read.
    pub events: u64,
    /// Input time covered, in seconds.
    pub input_seconds: f64,
    /// Display frame length (µs of input).
    pub frame_us: u64,
    /// Model steps (0 without a model).
    pub model_steps: u64,
    /// Display frames whose shown prediction matched the label, and frames with a label.
    pub correct_frames: u64,
    /// Frames with a label.
    pub labelled_frames: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Peak resident memory of the process at the end (Linux; 0 elsewhere).
    pub peak_rss_bytes: u64,
}

/// The palette index of ON level `i` and OFF level `j`.
fn level_index(i: usize, j: usize) -> u8 {
    (i * LEVELS + j) as u8
}

/// The GIF's global palette (256 RGB entries).
fn palette(style: FrameStyle) -> Vec<u8> {
    let mut p = Vec::with_capacity(256 * 3);
    let l = |i: usize| i as f32 / (LEVELS - 1) as f32;
    for i in 0..LEVELS {
        for j in 0..LEVELS {
            p.extend(style.mix(l(i), l(j), false));
        }
    }
    for g in 0..GREYS {
        let v = (255 * g / (GREYS - 1)) as u8;
        p.extend([v, v, v]);
    }
    for c in BAR {
        p.extend(c);
    }
    p.resize(256 * 3, 0);
    p
}

/// The palette index of a banner pixel: a bar colour exactly, else the nearest grey.
fn banner_index(rgb: &[u8]) -> u8 {
    if let Some(k) = BAR.iter().position(|c| c == rgb) {
        return (LEVELS * LEVELS + GREYS + k) as u8;
    }
    let y = (299 * rgb[0] as u32 + 587 * rgb[1] as u32 + 114 * rgb[2] as u32) / 1000;
    (LEVELS * LEVELS) as u8 + ((y as usize * (GREYS - 1) + 127) / 255) as u8
}

/// Events in batches with the label that holds (synthetic input, datasets) and, for a
/// dataset, the start of each sample.
enum Events {
    File(Box<EventReader<'static>>),
    Synthetic(Box<SyntheticScene>),
    Dataset {
        ds: Box<Dataset>,
        split: Split,
        next: usize,
        /// Where the next sample starts: samples start on the frame grid, so that no frame
        /// holds events of two.
        cursor: u64,
    },
}

/// A batch's label, and the time its sample starts (a new sequence) if it starts one.
type BatchInfo = (Option<usize>, Option<u64>);

impl Events {
    fn open(input: &RenderInput) -> Result<(Self, SensorSize)> {
        Ok(match input {
            RenderInput::File { path, format, opts } => {
                let mut r = EventReader::open_as(path, *format, opts)?;
                r.read_header()?;
                let Some(size) = r.sensor_size() else {
                    bail!(
                        "{}: the file states no sensor size; pass --sensor-size WxH",
                        path.display()
                    )
                };
                (Events::File(Box::new(r)), size)
            }
            RenderInput::Synthetic(cfg) => (
                Events::Synthetic(Box::new(SyntheticScene::new(cfg.clone()))),
                cfg.size,
            ),
            RenderInput::Dataset { name, root, split } => {
                let ds = Dataset::open(name, root)?;
                let Some(size) = ds.sensor else {
                    bail!("{name}: its samples differ in size; render a sample file instead")
                };
                if ds.split(*split).is_empty() {
                    bail!("{name} ({}): no {split:?} samples", root.display());
                }
                let ev = Events::Dataset {
                    ds: Box::new(ds),
                    split: *split,
                    next: 0,
                    cursor: 0,
                };
                (ev, size)
            }
        })
    }

    /// The next batch into `buf`; samples of a dataset start on multiples of `grid_us`.
    fn next(&mut self, buf: &mut Vec<Event>, grid_us: u64) -> Option<Result<BatchInfo>> {
        buf.clear();
        match self {
            Events::File(r) => r
                .read_into(buf)
                .map(|r| r.map(|_| (None, None)).map_err(Into::into)),
            Events::Synthetic(s) => {
                let (ev, label) = s.next_tick();
                buf.extend(ev);
                Some(Ok((Some(label), None)))
            }
            Events::Dataset {
                ds,
                split,
                next,
                cursor,
            } => loop {
                let sample = ds.split(*split).get(*next)?.clone();
                *next += 1;
                let loaded = match ds.load(&sample) {
                    Ok(l) => l,
                    Err(e) => return Some(Err(e.into())),
                };
                let Some(first) = loaded.events.first().map(|e| e.t_us) else {
                    continue;
                };
                let start = *cursor;
                buf.extend(loaded.events.iter().map(|e| Event {
                    t_us: e.t_us.saturating_sub(first) + start,
                    ..*e
                }));
                let end = buf.iter().map(|e| e.t_us).max().unwrap_or(start);
                *cursor = (end + 1).next_multiple_of(grid_us);
                return Some(Ok((Some(loaded.label), Some(start))));
            },
        }
    }
}

/// Draws one display frame (and its banner) as palette indices.
struct Painter {
    style: FrameStyle,
    geom: Geometry,
    scale: u32,
    width: u32,
    height: u32,
    banner: bool,
    /// Saturation, decaying towards each frame's own (no flicker from frame to frame).
    sat: f32,
    rgb: Vec<u8>,
}

impl Painter {
    fn paint(&mut self, f: &Frame, text: Option<(&str, &str, f32, u8)>, out: &mut Vec<u8>) -> Result<()> {
        let (fw, fh) = (self.geom.out.width as u32, self.geom.out.height as u32);
        self.sat = crate::picture::saturation_of(f.data.iter().copied())
            .max(0.9 * self.sat)
            .max(1.0);
        let plane = (fw * fh) as usize;
        out.clear();
        out.resize((self.width * self.height) as usize, 0);
        let lv = |v: f32| (self.style.level(v, self.sat) * (LEVELS - 1) as f32).round() as usize;
        for y in 0..fh {
            for x in 0..fw {
                let p = (y * fw + x) as usize;
                let idx = level_index(lv(f.data[plane + p]), lv(f.data[p]));
                for sy in 0..self.scale {
                    let o = ((y * self.scale + sy) * self.width + x * self.scale) as usize;
                    out[o..o + self.scale as usize].fill(idx);
                }
            }
        }
        if !self.banner {
            return Ok(());
        }
        let (w, h) = (self.width, BANNER_PX);
        self.rgb.clear();
        self.rgb.resize((w * h * 3) as usize, 0);
        {
            let root = BitMapBackend::with_buffer(&mut self.rgb, (w, h)).into_drawing_area();
            root.fill(&RGBColor(20, 20, 24))
                .map_err(|e| crate::error::Error::msg(format!("{e}")))?;
            if let Some((line1, line2, conf, bar)) = text {
                let style = ("sans-serif", 14).into_font().color(&WHITE);
                root.draw(&Text::new(line1.to_owned(), (4, 3), style.clone()))
                    .map_err(|e| crate::error::Error::msg(format!("{e}")))?;
                let grey = ("sans-serif", 12).into_font().color(&RGBColor(170, 170, 170));
                root.draw(&Text::new(line2.to_owned(), (4, 20), grey))
                    .map_err(|e| crate::error::Error::msg(format!("{e}")))?;
                let c = BAR[bar as usize];
                let len = ((w as f32 - 8.0) * conf.clamp(0.0, 1.0)).round() as i32;
                root.draw(&Rectangle::new(
                    [(4, h as i32 - 4), (4 + len, h as i32 - 1)],
                    RGBColor(c[0], c[1], c[2]).filled(),
                ))
                .map_err(|e| crate::error::Error::msg(format!("{e}")))?;
            }
            root.present()
                .map_err(|e| crate::error::Error::msg(format!("{e}")))?;
        }
        let top = (fh * self.scale * self.width) as usize;
        for (o, px) in out[top..].iter_mut().zip(self.rgb.chunks_exact(3)) {
            *o = banner_index(px);
        }
        Ok(())
    }
}

/// The name of class `k`.
fn class_name(names: &[String], k: usize) -> String {
    names.get(k).cloned().unwrap_or_else(|| format!("class {k}"))
}

/// Writes the GIF of `cfg.input`, with `model`'s predictions when given (it predicts only;
/// its membrane state is reset first).
pub fn render(cfg: &RenderConfig, mut model: Option<&mut StdlModel>) -> Result<RenderSummary> {
    if cfg.bin_us == 0 || cfg.speed.is_nan() || cfg.speed <= 0.0 || cfg.scale == 0 {
        bail!("render: --bin-us, --speed and --scale must be positive");
    }
    let (mut events, sensor) = Events::open(&cfg.input)?;
    let max_seconds = match (&cfg.input, cfg.max_seconds) {
        (_, Some(s)) => Some(s),
        (RenderInput::Synthetic(_), None) => Some(10.0),
        _ => None,
    };
    // Display frames: whole model bins, at least MIN_DELAY_CS of playback each.
    let min_us = (MIN_DELAY_CS as f64 * 10_000.0 * cfg.speed).ceil() as u64;
    let frame_us = cfg.bin_us * min_us.div_ceil(cfg.bin_us).max(1);
    let geom = Geometry::new(sensor, Channels::Split)?;
    let mut display = StreamBinner::new(geom, frame_us)?;
    let mut model_bins = match model.as_deref_mut() {
        Some(m) => {
            m.reset_state();
            let i = m.spec.preset.input;
            let dims = Dims::new(i[0], i[1], i[2]);
            // The model sees the frames training and streaming make (src/data.rs).
            let mg = crate::data::frame_geometry(sensor, dims)?;
            Some((StreamBinner::new(mg, cfg.bin_us)?, dims))
        }
        None => None,
    };
    let (width, frame_h) = (sensor.width as u32 * cfg.scale, sensor.height as u32 * cfg.scale);
    let height = frame_h + if model.is_some() { BANNER_PX } else { 0 };
    if width > u16::MAX as u32 || height > u16::MAX as u32 {
        bail!("render: {width}x{height} px is larger than a GIF can be; lower --scale");
    }
    let mut file = stdl_io::output::AtomicFile::create(&cfg.out)?;
    let pal = palette(cfg.style);
    let mut enc = gif::Encoder::new(&mut file, width as u16, height as u16, &pal)
        .with_context(|| format!("writing {}", cfg.out.display()))?;
    enc.set_repeat(gif::Repeat::Infinite)
        .with_context(|| format!("writing {}", cfg.out.display()))?;
    let mut painter = Painter {
        style: cfg.style,
        geom,
        scale: cfg.scale,
        width,
        height,
        banner: model.is_some(),
        sat: 1.0,
        rgb: Vec::new(),
    };
    let alpha = 1.0 / cfg.ema_steps.max(1.0);
    let mut smooth = crate::runtime::Smoothed::default();
    let mut shown: Option<(usize, f32)> = None;
    let mut sum = RenderSummary {
        out: cfg.out.clone(),
        frames: 0,
        width,
        height,
        events: 0,
        input_seconds: 0.0,
        frame_us,
        model_steps: 0,
        correct_frames: 0,
        labelled_frames: 0,
        bytes: 0,
        peak_rss_bytes: 0,
    };
    let (mut batch, mut pix) = (Vec::new(), Vec::new());
    let (mut shown_frames, mut model_frames): (Vec<Frame>, Vec<Frame>) = (Vec::new(), Vec::new());
    let mut t0: Option<u64> = None;
    let mut played_cs = 0u64;
    // Labels by time (a frame takes the label at its start), and sample starts to come.
    let mut labels: VecDeque<(u64, Option<usize>)> = VecDeque::new();
    let mut starts: VecDeque<u64> = VecDeque::new();
    'read: while let Some(next) = events.next(&mut batch, frame_us) {
        let (label, start) = next?;
        if let Some(first) = batch.first() {
            if labels.back().is_none_or(|l| l.1 != label) {
                labels.push_back((first.t_us, label));
            }
        }
        starts.extend(start);
        let mut past_end = false;
        if let (Some(max), Some(first)) = (max_seconds, t0.or(batch.first().map(|e| e.t_us))) {
            let end = first.saturating_add((max * 1e6) as u64);
            let keep = batch.partition_point(|e| e.t_us < end);
            past_end = keep < batch.len();
            batch.truncate(keep);
        }
        let Some(last) = batch.last() else {
            if past_end {
                break;
            }
            continue;
        };
        t0.get_or_insert(batch[0].t_us);
        sum.input_seconds = (last.t_us - t0.unwrap_or(last.t_us)) as f64 * 1e-6;
        sum.events += batch.len() as u64;
        if let Some((b, _)) = model_bins.as_mut() {
            b.push(&batch, |f| model_frames.push(f));
        }
        display.push(&batch, |f| shown_frames.push(f));
        let mut pending = model_frames.drain(..).peekable();
        for f in shown_frames.drain(..) {
            while labels.len() > 1 && labels[1].0 <= f.t_start_us {
                labels.pop_front();
            }
            let label = labels.front().and_then(|l| l.1);
            // The model sees every bin up to the end of the frame shown.
            if let (Some(m), Some((_, dims))) = (model.as_deref_mut(), model_bins.as_ref()) {
                while let Some(mf) = pending.next_if(|mf| mf.t_end_us <= f.t_end_us) {
                    // A new sample: a new sequence for the model and its smoothing.
                    if starts.front().is_some_and(|&s| s <= mf.t_start_us) {
                        while starts.front().is_some_and(|&s| s <= mf.t_start_us) {
                            starts.pop_front();
                        }
                        m.reset_state();
                        smooth = crate::runtime::Smoothed::default();
                    }
                    let (logits, _) = m.step(Tensor::from_vec(1, *dims, mf.data), None);
                    shown = Some(smooth.update(&logits.data, alpha));
                    sum.model_steps += 1;
                }
            }
            let text = shown.map(|(class, conf)| {
                let right = label.map(|l| l == class);
                if let Some(r) = right {
                    sum.labelled_frames += 1;
                    sum.correct_frames += r as u64;
                }
                let line2 = match label {
                    Some(l) => format!("label: {}", class_name(&cfg.class_names, l)),
                    None => "no label".to_owned(),
                };
                let bar = match right {
                    Some(true) => 0,
                    Some(false) => 1,
                    None => 2,
                };
                (
                    format!("{} {:.0}%", class_name(&cfg.class_names, class), 100.0 * conf),
                    line2,
                    conf,
                    bar,
                )
            });
            painter.paint(
                &f,
                text.as_ref().map(|(a, b, c, d)| (a.as_str(), b.as_str(), *c, *d)),
                &mut pix,
            )?;
            // Delays that add up to the input's time at this speed (in hundredths of a second).
            let due_cs = ((sum.frames + 1) as f64 * frame_us as f64 / cfg.speed / 10_000.0).round() as u64;
            let mut gf = gif::Frame::from_indexed_pixels(width as u16, height as u16, pix.as_slice(), None);
            gf.delay = (due_cs - played_cs).min(u16::MAX as u64) as u16;
            played_cs = due_cs;
            gf.buffer = Cow::Borrowed(&pix);
            enc.write_frame(&gf)
                .with_context(|| format!("writing {}", cfg.out.display()))?;
            sum.frames += 1;
            if crate::interrupt::requested() {
                break 'read;
            }
        }
        // Model bins past the last frame shown wait for the next batch's frames.
        let rest: Vec<Frame> = pending.collect();
        model_frames = rest;
        if past_end {
            break;
        }
    }
    drop(enc);
    if sum.frames == 0 {
        bail!(
            "{}: no complete frame of {} us in the input; nothing written",
            cfg.out.display(),
            frame_us
        );
    }
    file.commit()?;
    sum.bytes = std::fs::metadata(&cfg.out).map(|m| m.len()).unwrap_or(0);
    sum.peak_rss_bytes = crate::heap::peak_rss_bytes();
    Ok(sum)
}
