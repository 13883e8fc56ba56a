//! Plots (plotters): training metrics, continual-learning accuracy matrices and curves.
//! Only the command line draws them; no learning module imports this one.

use std::path::Path;

use crate::error::Result;

use crate::picture::{write_png, Rgb};

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
    drawn.map_err(|e| crate::error::Error::msg(format!("plotting {}: {e}", path.display())))?;
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
pub fn plot_scene(path: &Path, runs: &[crate::scene::SceneRun], title: &str) -> Result<()> {
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
    use crate::picture::{render_strip, FrameStyle, ON_RGB};
    use stdl_io::frames::Frame;
    use stdl_io::frames::{Channels, Geometry};
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
