//! Pictures a person can look at: a strip of event frames as a PNG.

use std::path::Path;

use anyhow::{Context, Result};
use stdl_io::frames::{Channels, Frame, Geometry};

/// An 8-bit RGB image.
#[derive(Clone, Debug)]
pub struct Rgb {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major RGB bytes.
    pub data: Vec<u8>,
}

/// Colour of ON events on the light background.
pub const ON_RGB: [u8; 3] = [214, 40, 40];
/// Colour of OFF events on the light background.
pub const OFF_RGB: [u8; 3] = [30, 90, 200];

/// How event frames are coloured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FrameStyle {
    /// Events light up a dark background, as event-camera viewers show them: ON amber, OFF
    /// sky blue (merged polarity white), brightness the square root of the count relative
    /// to the saturation level, so that pixels with a single event are still seen.
    #[default]
    Dark,
    /// The earlier style: ON red and OFF blue ink on white, linear in the count.
    Light,
}

impl std::str::FromStr for FrameStyle {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "dark" => Ok(Self::Dark),
            "light" => Ok(Self::Light),
            o => Err(format!("unknown frame style `{o}` (dark, light)")),
        }
    }
}

impl FrameStyle {
    /// Background, gap, ON, OFF and merged-polarity colours.
    fn palette(self) -> ([f32; 3], u8, [f32; 3], [f32; 3], [f32; 3]) {
        let f = |c: [u8; 3]| c.map(f32::from);
        match self {
            FrameStyle::Dark => (
                f([12, 12, 18]),
                48,
                f([255, 184, 48]),
                f([64, 164, 255]),
                f([240, 240, 240]),
            ),
            FrameStyle::Light => (f([255, 255, 255]), 160, f(ON_RGB), f(OFF_RGB), f([0, 0, 0])),
        }
    }

    /// How strongly a pixel with count `v` shows, in `0..=1`, `sat` the count at which it is
    /// full.
    pub fn level(self, v: f32, sat: f32) -> f32 {
        let a = (v / sat).clamp(0.0, 1.0);
        match self {
            FrameStyle::Dark => a.sqrt(),
            FrameStyle::Light => a,
        }
    }

    /// The colour of a pixel whose ON and OFF [`FrameStyle::level`]s are `a_on` and `a_off`
    /// (`merged`: one polarity, in `a_off`).
    pub fn mix(self, a_on: f32, a_off: f32, merged: bool) -> [u8; 3] {
        let (bg, _, on_rgb, off_rgb, merged_rgb) = self.palette();
        let off_rgb = if merged { merged_rgb } else { off_rgb };
        let mut c = bg;
        match self {
            // Light on dark: the two colours add (a pixel with both is brighter).
            FrameStyle::Dark => {
                for k in 0..3 {
                    c[k] += a_on * (on_rgb[k] - bg[k]) + a_off * (off_rgb[k] - bg[k]);
                }
            }
            // Ink on paper: one layer over the other.
            FrameStyle::Light => {
                for k in 0..3 {
                    c[k] = c[k] * (1.0 - a_on) + on_rgb[k] * a_on;
                    c[k] = c[k] * (1.0 - a_off) + off_rgb[k] * a_off;
                }
            }
        }
        c.map(|v| v.round().clamp(0.0, 255.0) as u8)
    }
}

/// The count at which colours saturate: the 99th percentile of the non-zero counts of all
/// `frames` (at least 1), so that a few hot pixels do not wash out the rest.
pub fn saturation(frames: &[Frame]) -> f32 {
    saturation_of(frames.iter().flat_map(|f| f.data.iter().copied()))
}

/// [`saturation`] of any counts.
pub fn saturation_of(counts: impl IntoIterator<Item = f32>) -> f32 {
    let mut nz: Vec<f32> = counts.into_iter().filter(|&v| v > 0.0).collect();
    if nz.is_empty() {
        return 1.0;
    }
    let k = ((nz.len() as f64 * 0.99) as usize).min(nz.len() - 1);
    let (_, v, _) = nz.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    v.max(1.0)
}

/// Draws frames side by side in `style`: ON and OFF events in two colours (merged-polarity
/// frames in one), each pixel's colour as strong as its count relative to [`saturation`].
/// Tiles are scaled up by an integer factor so that each is at least `min_tile_px` pixels
/// tall.
pub fn render_strip(frames: &[Frame], geom: &Geometry, min_tile_px: u32, style: FrameStyle) -> Rgb {
    let (fw, fh) = (geom.out.width as u32, geom.out.height as u32);
    let scale = min_tile_px.div_ceil(fh).max(1);
    let gap = 4u32;
    let n = frames.len().max(1) as u32;
    let width = n * fw * scale + (n + 1) * gap;
    let height = fh * scale + 2 * gap;
    let mut data = vec![style.palette().1; (width * height * 3) as usize];
    let sat = saturation(frames);
    let plane = (fw * fh) as usize;
    let merged = geom.channels == Channels::Merged;
    for (i, f) in frames.iter().enumerate() {
        let x0 = gap + i as u32 * (fw * scale + gap);
        for y in 0..fh {
            for x in 0..fw {
                let p = (y * fw + x) as usize;
                let (on, off) = match geom.channels {
                    Channels::Split => (f.data[plane + p], f.data[p]),
                    Channels::Merged => (0.0, f.data[p]),
                };
                let c = style.mix(style.level(on, sat), style.level(off, sat), merged);
                for sy in 0..scale {
                    let py = gap + y * scale + sy;
                    let o = ((py * width + x0 + x * scale) * 3) as usize;
                    for px in data[o..o + 3 * scale as usize].chunks_exact_mut(3) {
                        px.copy_from_slice(&c);
                    }
                }
            }
        }
    }
    Rgb { width, height, data }
}

impl Rgb {
    /// An image of `size` (width, height) from its RGB bytes, row by row.
    pub fn new(size: (u32, u32), data: Vec<u8>) -> Self {
        Self {
            width: size.0,
            height: size.1,
            data,
        }
    }
}

/// Writes an RGB image as PNG.
/// Atomically: a failure (a full disk) leaves an earlier file at `path` as it was.
pub fn write_png(path: &Path, img: &Rgb) -> Result<()> {
    let mut file = crate::store::AtomicFile::create(path)?;
    let mut enc = png::Encoder::new(&mut file, img.width, img.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc
        .write_header()
        .with_context(|| format!("writing {}", path.display()))?;
    w.write_image_data(&img.data)
        .with_context(|| format!("writing {}", path.display()))?;
    w.finish()
        .with_context(|| format!("writing {}", path.display()))?;
    file.commit()?;
    Ok(())
}

/// What a plot's drawing code returns (plotters' errors are boxed).
pub type Drawn = std::result::Result<(), Box<dyn std::error::Error>>;

/// A plotters drawing area over an in-memory RGB image.
pub type Canvas<'a> =
    plotters::drawing::DrawingArea<plotters::prelude::BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws a `size` picture on white in memory with `draw`, then writes it as PNG atomically
/// (an earlier plot at `path` survives a failure). A drawing failure (a missing font) is an
/// error naming the file; callers treat plots as optional.
pub fn draw_png(path: &Path, size: (u32, u32), draw: impl FnOnce(&Canvas) -> Drawn) -> Result<()> {
    use plotters::prelude::*;
    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    let drawn = (|| -> Drawn {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    })();
    drawn.map_err(|e| anyhow::anyhow!("plotting {}: {e}", path.display()))?;
    write_png(path, &Rgb::new(size, buf))
}

/// Draws accuracy and loss per epoch (train and test) side by side. A missing font or
/// drawing failure is reported as an error; callers treat the plot as optional.
pub fn plot_metrics(path: &Path, metrics: &[crate::train::EpochMetrics], title: &str) -> Result<()> {
    use plotters::prelude::*;
    draw_png(path, (1000, 420), |root| {
        let (left, right) = root.split_horizontally(500);
        let epochs = metrics.len().max(1) as f32;
        let series = |area: &DrawingArea<BitMapBackend, _>,
                      caption: &str,
                      ymax: f32,
                      pick: &dyn Fn(&crate::train::EpochMetrics) -> (f32, f32)|
         -> Drawn {
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{title}: {caption}"), ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(32)
                .y_label_area_size(48)
                .build_cartesian_2d(0.5f32..epochs + 0.5, 0f32..ymax)?;
            chart.configure_mesh().x_desc("epoch").draw()?;
            for (name, color, idx) in [("train", BLUE, 0), ("test", RED, 1)] {
                let pts: Vec<(f32, f32)> = metrics
                    .iter()
                    .map(|m| {
                        let (a, b) = pick(m);
                        (m.epoch as f32, if idx == 0 { a } else { b })
                    })
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            }
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE)
                .draw()?;
            Ok(())
        };
        series(&left, "accuracy", 1.0, &|m| (m.train_accuracy, m.test_accuracy))?;
        let lmax = metrics
            .iter()
            .map(|m| m.train_loss.max(m.test_loss))
            .fold(0.1f32, f32::max)
            * 1.1;
        series(&right, "loss", lmax, &|m| (m.train_loss, m.test_loss))
    })
}

/// The accuracy matrix `m` (rows: after task i; columns: task j; `n` columns) as a heat
/// map, white (0) to deep green (1), each cell with its value in percent.
fn heat_map(area: &Canvas, m: &[Vec<f32>], n: usize, caption: &str, axes: (&str, &str)) -> Drawn {
    use plotters::prelude::*;
    let mut heat = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(-0.5f32..n as f32 - 0.5, n as f32 - 0.5..-0.5f32)?;
    heat.configure_mesh()
        .disable_mesh()
        .x_labels(n)
        .y_labels(n)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_desc(axes.1)
        .y_desc(axes.0)
        .draw()?;
    for (i, row) in m.iter().enumerate() {
        for (j, &a) in row.iter().enumerate() {
            let c = |hi: f32| (255.0 - (255.0 - hi) * a.clamp(0.0, 1.0)) as u8;
            let fill = RGBColor(c(30.0), c(120.0), c(60.0));
            let (x, y) = (j as f32 - 0.5, i as f32 - 0.5);
            heat.draw_series(std::iter::once(Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                fill.filled(),
            )))?;
            let ink = if a > 0.55 { WHITE } else { BLACK };
            heat.draw_series(std::iter::once(Text::new(
                format!("{:.0}", a * 100.0),
                (x + 0.32, y + 0.4),
                ("sans-serif", 16).into_font().color(&ink),
            )))?;
        }
    }
    Ok(())
}

/// `stdl demo continual`: each run's accuracy matrix side by side (top), and below each, the
/// accuracy on each phase over the stream's time (one line per phase, from its start).
pub fn plot_scene(path: &Path, runs: &[crate::continual::scene::SceneRun], title: &str) -> Result<()> {
    use plotters::prelude::*;
    let k = runs.len().max(1);
    let n = runs.first().map_or(0, |r| r.config.phases.len());
    draw_png(path, (360 * k as u32, 700), |root| {
        let (title_area, body) = root.split_vertically(34);
        title_area.titled(title, ("sans-serif", 20))?;
        let (top, bottom) = body.split_vertically(330);
        for ((run, cell), lower) in runs
            .iter()
            .zip(top.split_evenly((1, k)))
            .zip(bottom.split_evenly((1, k)))
        {
            heat_map(
                &cell,
                &run.accuracy_matrix,
                n,
                &format!("{}: average {:.1}%", run.name, 100.0 * run.average_accuracy),
                ("after phase", "tested on phase"),
            )?;
            let xmax = run.curve.last().map_or(1.0, |p| p.step as f32).max(1.0);
            let mut lines = ChartBuilder::on(&lower)
                .caption(
                    format!("{}: accuracy over the stream", run.name),
                    ("sans-serif", 15),
                )
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(44)
                // Room above 1 for the legend.
                .build_cartesian_2d(0f32..xmax, 0f32..1.4f32)?;
            lines
                .configure_mesh()
                .light_line_style(WHITE)
                .x_labels(4)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_labels(6)
                .y_label_formatter(&|v| {
                    if *v <= 1.0 {
                        format!("{v:.1}")
                    } else {
                        String::new()
                    }
                })
                .x_desc("live step (10 ms bins)")
                .y_desc("probe accuracy")
                .draw()?;
            for j in 0..n {
                let color = Palette99::pick(j).to_rgba();
                let pts: Vec<(f32, f32)> = run
                    .curve
                    .iter()
                    .filter_map(|p| {
                        p.phase_accuracy
                            .get(j)
                            .copied()
                            .flatten()
                            .map(|a| (p.step as f32, a))
                    })
                    // From the probe just before the phase began.
                    .filter(|&(x, _)| x >= (j as u64 * run.config.steps_per_phase) as f32)
                    .collect();
                lines
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                    .label(format!("phase {j} {:?}", run.config.phases[j]))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            }
            lines
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .border_style(BLACK)
                .background_style(WHITE.mix(0.85))
                .draw()?;
        }
        Ok(())
    })
}

/// Draws a continual-learning run: the accuracy matrix as a heat map with its values (row:
/// after learning task i; column: tested on task j), and each task's accuracy over the
/// sequence of tasks.
pub fn plot_continual(path: &Path, r: &crate::continual::ContinualResult, title: &str) -> Result<()> {
    use plotters::prelude::*;
    // Rows: tasks learned (fewer than the tasks when the run was interrupted); columns: tasks.
    let t = r.accuracy_matrix.len();
    let tasks = r.config.tasks.len().max(t);
    draw_png(path, (1000, 460), |root| {
        let (title_area, body) = root.split_vertically(34);
        title_area.titled(title, ("sans-serif", 20))?;
        let (left, right) = body.split_horizontally(460);
        heat_map(
            &left,
            &r.accuracy_matrix,
            tasks,
            "accuracy matrix (row: after task, column: task)",
            ("after task", "tested on task"),
        )?;
        let mut lines = ChartBuilder::on(&right)
            .caption("accuracy on each task as tasks are learned", ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(44)
            .build_cartesian_2d(-0.2f32..(t as f32 - 0.8), 0f32..1.02f32)?;
        lines
            .configure_mesh()
            .x_labels(t)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE)
            .x_desc("after task")
            .y_desc("test accuracy")
            .draw()?;
        for j in 0..t {
            let color = Palette99::pick(j).to_rgba();
            let pts: Vec<(f32, f32)> = (j..t).map(|i| (i as f32, r.accuracy_matrix[i][j])).collect();
            lines
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(format!("task {j} {:?}", r.config.tasks[j]))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            lines.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        let avg: Vec<(f32, f32)> = (0..t)
            .map(|i| {
                let row = &r.accuracy_matrix[i][..=i];
                (i as f32, row.iter().sum::<f32>() / row.len() as f32)
            })
            .collect();
        lines
            .draw_series(LineSeries::new(avg, BLACK.stroke_width(3)))?
            .label("mean over tasks so far")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(3)));
        lines
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use stdl_io::SensorSize;

    fn frame(data: Vec<f32>) -> Frame {
        Frame {
            t_start_us: 0,
            t_end_us: 1,
            events: data.iter().sum::<f32>() as u64,
            data,
        }
    }

    /// The colour of frame pixel `(x, y)` of the first tile (scale 1, gap 4).
    fn px(img: &Rgb, x: u32, y: u32) -> [u8; 3] {
        let o = (((4 + y) * img.width + 4 + x) * 3) as usize;
        [img.data[o], img.data[o + 1], img.data[o + 2]]
    }

    #[test]
    fn dark_style_lights_events_on_black_and_a_hot_pixel_does_not_wash_out_the_rest() {
        // 16 x 16, split polarity: OFF plane then ON plane. 200 ON pixels with 2 events, one
        // OFF pixel with 1, and a hot ON pixel with 1000.
        let geom = Geometry::new(SensorSize::new(16, 16), Channels::Split).unwrap();
        let mut d = vec![0.0; 2 * 256];
        for p in 0..200 {
            d[256 + p] = 2.0;
        }
        d[256 + 255] = 1000.0;
        d[210] = 1.0;
        let img = render_strip(&[frame(d.clone())], &geom, 16, FrameStyle::Dark);
        let empty = px(&img, 4, 15); // pixel 244: no event
        assert!(empty.iter().all(|&c| c < 30), "{empty:?}");
        let on = px(&img, 0, 0);
        assert!(on[0] > 200 && on[0] > on[2], "{on:?}"); // full amber despite the hot pixel
        let off = px(&img, 2, 13); // pixel 210
        assert!(off[2] > 150 && off[2] > off[0], "{off:?}"); // one event of two is clearly seen
                                                             // The old style: white paper, red ink.
        let img = render_strip(&[frame(d)], &geom, 16, FrameStyle::Light);
        assert_eq!(px(&img, 4, 15), [255, 255, 255]);
        assert_eq!(px(&img, 0, 0), ON_RGB);
        assert_eq!("light".parse::<FrameStyle>(), Ok(FrameStyle::Light));
        assert!("neon".parse::<FrameStyle>().is_err());
    }
}
