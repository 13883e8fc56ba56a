//! `stdl demo`: the main job in one command, on built-in data.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use stdl::io::frames::{Channels, Frame, Geometry, StreamBinner};
use stdl::io::sources::{SyntheticConfig, SyntheticScene};
use stdl::render::{render, RenderConfig, RenderInput};
use stdl::runtime::stream::{new_model, run_model, Source, StreamConfig};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DemoArgs {
    #[command(subcommand)]
    pub what: Option<DemoCommand>,
    /// Output directory for the plots and predictions.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Time steps (10 ms bins) of online learning on the synthetic stream.
    #[arg(long, default_value_t = 60000, value_parser = super::at_least_one::<u64>)]
    pub train_steps: u64,
    /// Time steps of the held-out stream (another seed; no learning).
    #[arg(long, default_value_t = 3000, value_parser = super::at_least_one::<u64>)]
    pub test_steps: u64,
    /// Duration of each held-out segment (one direction) in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = super::at_least_one::<u64>)]
    pub test_segment_ms: u64,
    /// Duration of each training segment (one direction) in milliseconds. Short segments
    /// interleave the classes; long ones teach recency (the last class seen) more than
    /// direction.
    #[arg(long, default_value_t = 100, value_parser = super::at_least_one::<u64>)]
    pub segment_ms: u64,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = super::positive::<f32>)]
    pub lr: f32,
    /// Prediction smoothing (steps).
    #[arg(long, default_value_t = 10.0, value_parser = super::positive::<f32>)]
    pub ema_steps: f32,
    /// Seed of the scenes and the network.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seconds of the held-out stream in OUT/heldout.gif (an animation with the
    /// predictions).
    #[arg(long, default_value_t = 8.0, value_parser = super::positive::<f64>)]
    pub gif_seconds: f64,
    /// Run on real N-MNIST samples instead (a directory in either N-MNIST layout, e.g.
    /// ../shared/data/nmnist/slayer_NMNISTsmall).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// Other built-in demos.
#[derive(clap::Subcommand, Debug)]
pub enum DemoCommand {
    /// Continual learning on one stream: the synthetic directions arrive in phases, learned
    /// online without being told where a phase ends; forgetting without replay, its recovery
    /// with replay, and EWC and LwF, side by side. Under 3 minutes on 2 cores, no data.
    ///
    /// Example: stdl demo continual
    Continual(super::demo_continual::ContinualDemoArgs),
}

fn accuracy_curve(path: &std::path::Path, window: usize) -> Result<Vec<(f32, f32)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let hits: Vec<bool> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("label").is_some())
        .map(|v| v["label"] == v["class"])
        .collect();
    Ok(hits
        .chunks(window)
        .enumerate()
        .map(|(i, c)| {
            (
                ((i + 1) * window) as f32,
                c.iter().filter(|&&h| h).count() as f32 / c.len() as f32,
            )
        })
        .collect())
}

fn plot_curve(
    path: &std::path::Path,
    curve: &[(f32, f32)],
    held_out: Option<f32>,
    chance: f32,
) -> Result<()> {
    use plotters::prelude::*;
    Ok(stdl::viz::draw_png(path, (800, 420), |root| {
        let xmax = curve.last().map_or(1.0, |p| p.0);
        let mut chart = ChartBuilder::on(root)
            .caption(
                "stdl demo: online STDL on a synthetic event stream",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0f32..xmax, 0f32..1f32)?;
        chart
            .configure_mesh()
            .x_desc("time step (10 ms bins)")
            .y_desc("accuracy")
            .draw()?;
        chart
            .draw_series(LineSeries::new(curve.to_vec(), BLUE.stroke_width(2)))?
            .label("while learning (100 ms segments; smoothing lags each switch)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
        if let Some(held_out) = held_out {
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, held_out), (xmax, held_out)],
                    RED.stroke_width(2),
                ))?
                .label("held-out stream, no learning")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
        }
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, chance), (xmax, chance)],
                BLACK.mix(0.4),
            ))?
            .label("chance")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.4)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
        Ok(())
    })?)
}

/// Twelve 50 ms frames of the synthetic scene at full resolution.
fn frames_strip(out: &std::path::Path, cfg: &SyntheticConfig) -> Result<()> {
    let mut scene = SyntheticScene::new(cfg.clone());
    let geom = Geometry::new(cfg.size, Channels::Split)?;
    let mut binner = StreamBinner::new(geom, 50_000)?;
    let mut frames: Vec<Frame> = Vec::new();
    while frames.len() < 12 {
        let (events, _) = scene.next_tick();
        binner.push(&events, |f| frames.push(f));
    }
    frames.truncate(12);
    Ok(stdl::picture::write_png(
        out,
        &stdl::picture::render_strip(&frames, &geom, 128, stdl::picture::FrameStyle::Dark),
    )?)
}

pub fn run(a: &DemoArgs) -> Result<()> {
    if let Some(DemoCommand::Continual(c)) = &a.what {
        return super::demo_continual::run(c);
    }
    // Ctrl-C or SIGTERM: the learning in flight stops after its step, and what was learned
    // and measured so far is written (summaries, predictions, the plot) before exiting.
    stdl::interrupt::install();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    if let Some(root) = &a.data {
        return run_nmnist(a, root);
    }
    let scene = SyntheticConfig {
        seed: a.seed,
        segment_us: a.segment_ms * 1000,
        ..Default::default()
    };
    frames_strip(&a.out.join("frames.png"), &scene)?;
    eprintln!(
        "stdl demo: a synthetic 128x128 event camera sees a square moving in one of 11 directions,\n\
         changing direction every {} ms. The `demo` network (2 conv units, 2 subnetworks) learns\n\
         online with STDL from every 10 ms bin, then is tested on a new, held-out stream.\n\
         frames: {}",
        a.segment_ms,
        a.out.join("frames.png").display()
    );
    let base = StreamConfig {
        max_steps: Some(a.train_steps),
        ema_steps: a.ema_steps,
        seed: a.seed,
        lr: a.lr,
        predictions: Some(a.out.join("train_predictions.jsonl")),
        metrics: Some(a.out.join("metrics.jsonl")),
        summary: Some(a.out.join("train_summary.json")),
        metrics_every_s: 10.0,
        ..StreamConfig::new(Source::Synthetic(scene.clone()), "demo")
    };
    eprintln!(
        "learning online for {} steps ({:.0} s of stream)...",
        a.train_steps,
        a.train_steps as f64 * 0.01
    );
    let (train, model) = run_model(&base, new_model(&base)?)?;
    eprintln!(
        "learned from {} events in {:.1} s; running accuracy while learning {:.1}%",
        train.events,
        train.seconds,
        100.0 * train.accuracy.unwrap_or(0.0)
    );
    let plot = |held_out: Option<f32>| -> Result<()> {
        let curve = accuracy_curve(&a.out.join("train_predictions.jsonl"), 200)?;
        match plot_curve(&a.out.join("accuracy.png"), &curve, held_out, 1.0 / 11.0) {
            Ok(()) => eprintln!("plot: {}", a.out.join("accuracy.png").display()),
            Err(e) => eprintln!("warning: {e:#}"),
        }
        Ok(())
    };
    if train.interrupted {
        plot(None)?;
        anyhow::bail!(
            "interrupted after {} of {} learning steps; no held-out test. {} and the plot cover \
             the steps learned",
            train.steps,
            a.train_steps,
            a.out.join("train_summary.json").display()
        );
    }
    let test_cfg = StreamConfig {
        // Held out: another seed, and longer segments of one direction each.
        source: Source::Synthetic(SyntheticConfig {
            seed: a.seed.wrapping_add(1000),
            segment_us: a.test_segment_ms * 1000,
            ..scene
        }),
        max_steps: Some(a.test_steps),
        learn: false,
        predictions: Some(a.out.join("test_predictions.jsonl")),
        metrics: None,
        summary: Some(a.out.join("test_summary.json")),
        ..base.clone()
    };
    eprintln!(
        "testing on a held-out stream for {} steps (no learning)...",
        a.test_steps
    );
    let (test, mut model) = run_model(&test_cfg, model)?;
    let held_out = test.accuracy.unwrap_or(0.0);
    plot(Some(held_out))?;
    if !test.interrupted {
        // The start of the same held-out stream as an animation with the predictions.
        let gif = a.out.join("heldout.gif");
        let Source::Synthetic(held) = &test_cfg.source else {
            unreachable!("the demo's held-out stream is synthetic")
        };
        let cfg = RenderConfig {
            max_seconds: Some((a.test_steps as f64 * 0.01).min(a.gif_seconds)),
            ema_steps: a.ema_steps,
            class_names: held.class_names(),
            ..RenderConfig::new(RenderInput::Synthetic(held.clone()), &gif)
        };
        match render(&cfg, Some(&mut model)) {
            Ok(s) => eprintln!(
                "animation: {} ({} frames, {:.1} s of the held-out stream)",
                gif.display(),
                s.frames,
                s.input_seconds
            ),
            Err(e) => eprintln!("warning: {e:#}"),
        }
    }
    println!("held-out stream: {} steps, chance 9.1%", test.steps);
    println!("accuracy: {:.1}%", 100.0 * held_out);
    if test.interrupted {
        anyhow::bail!(
            "interrupted after {} of {} held-out steps; the accuracy above is over those",
            test.steps,
            a.test_steps
        );
    }
    Ok(())
}

fn run_nmnist(a: &DemoArgs, root: &std::path::Path) -> Result<()> {
    let preset = stdl_models::Preset::load("nmnist")?;
    let cfg = stdl::train::TrainConfig {
        learn: stdl::config::LearnConfig {
            root: root.to_path_buf(),
            seed: a.seed,
            ..stdl::config::LearnConfig::default().with_preset_defaults(&preset)
        },
        epochs: 3,
        ..Default::default()
    };
    eprintln!(
        "stdl demo on real N-MNIST samples from {}: 3 epochs of online STDL",
        root.display()
    );
    let progress = |e: usize, b: usize, n: usize| {
        if b == n || b % 20 == 0 {
            eprintln!("epoch {e}: batch {b}/{n}");
        }
    };
    let plot = super::train::plot_each_epoch(&a.out, "nmnist STDL");
    let r = stdl::train::train(cfg, &a.out, false, None, progress, plot)?;
    eprintln!("plot: {}", a.out.join("metrics.png").display());
    println!("test samples: {}, chance 10.0%", r.samples[1]);
    println!("accuracy: {:.1}%", 100.0 * r.test_accuracy);
    Ok(())
}
