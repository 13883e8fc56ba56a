//! `stdl render`: an animated GIF of an event stream, with a trained model's predictions.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use stdl::data::{class_names, NamesFrom};
use stdl::render::{render, RenderConfig, RenderInput};
use stdl::runtime::stream::{load_model, Source};

use super::ReadArgs;

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The recording (any format `stdl info` reads).
    #[arg(required_unless_present_any = ["source", "dataset"], conflicts_with_all = ["source", "dataset"])]
    pub input: Option<PathBuf>,
    /// Instead of a recording: `synthetic[:SEED]` (the demo's labelled scene) or
    /// `file://PATH`.
    #[arg(long, conflicts_with = "dataset")]
    pub source: Option<String>,
    /// Instead of a recording: the samples of a dataset split (nmnist, dvs-gesture,
    /// cifar10-dvs) one after another, labelled, each a new sequence for the model.
    #[arg(long, requires = "root")]
    pub dataset: Option<String>,
    /// The dataset's root directory.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// The dataset split.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// The GIF to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Draw the predictions of this trained model (the OUT/checkpoint directory of
    /// `stdl train --method stdl`, or a stream's --checkpoint-dir) under each frame. It
    /// predicts only; nothing is learned.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// The model's time bin in microseconds (frames shown are whole bins, at least 20 ms of
    /// playback each).
    #[arg(long, default_value_t = 10_000, value_parser = super::at_least_one::<u64>)]
    pub bin_us: u64,
    /// Playback speed: 1 is real time, 0.5 half speed.
    #[arg(long, default_value_t = 1.0, value_parser = super::positive::<f64>)]
    pub speed: f64,
    /// Render at most this many seconds of input (synthetic input: 10 by default).
    #[arg(long, value_parser = super::positive::<f64>)]
    pub max_seconds: Option<f64>,
    /// Pixels per sensor pixel.
    #[arg(long, default_value_t = 2, value_parser = super::at_least_one::<u32>)]
    pub scale: u32,
    /// Colours: dark (events light up black) or light (red and blue ink on white).
    #[arg(long, default_value = "dark")]
    pub style: stdl::picture::FrameStyle,
    /// Prediction smoothing horizon in model steps (as `stdl stream --ema-steps`).
    #[arg(long, default_value_t = 20.0, value_parser = super::positive::<f32>)]
    pub ema_steps: f32,
    /// Print a JSON summary instead of a line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

pub fn run(a: &RenderArgs) -> Result<()> {
    stdl::interrupt::install();
    let opts = a.read.options();
    let file = |path: PathBuf| RenderInput::File {
        path,
        format: a.read.format,
        opts: opts.clone(),
    };
    let input = match (&a.input, &a.source, &a.dataset, &a.root) {
        (Some(p), ..) => file(p.clone()),
        (None, Some(s), ..) => match Source::parse(s)? {
            Source::File(p) => file(p),
            Source::Synthetic(c) => RenderInput::Synthetic(c),
            _ => bail!("--source {s}: render reads a recording or synthetic[:SEED]"),
        },
        (None, None, Some(name), Some(root)) => RenderInput::Dataset {
            name: name.clone(),
            root: root.clone(),
            split: a.split.parse()?,
        },
        _ => bail!("give a recording, --source or --dataset with --root"),
    };
    let mut model = a.checkpoint.as_deref().map(|d| load_model(d, 0.0)).transpose()?;
    // The synthetic scene's classes are its directions, whatever network learned them.
    let from = match &input {
        RenderInput::Synthetic(c) => NamesFrom::Synthetic(c),
        RenderInput::Dataset { name, root, .. } => NamesFrom::Dataset { name, root },
        RenderInput::File { .. } => NamesFrom::Other,
    };
    let class_names = class_names(
        from,
        model
            .as_ref()
            .map(|m| (m.spec.preset.name.as_str(), m.spec.preset.classes)),
    )?;
    let cfg = RenderConfig {
        bin_us: a.bin_us,
        speed: a.speed,
        max_seconds: a.max_seconds,
        scale: a.scale,
        style: a.style,
        ema_steps: a.ema_steps,
        class_names,
        ..RenderConfig::new(input, &a.out)
    };
    let s = render(&cfg, model.as_mut())?;
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        let acc = if s.labelled_frames > 0 {
            format!(
                "; prediction right on {:.1}% of the labelled frames",
                100.0 * s.correct_frames as f64 / s.labelled_frames as f64
            )
        } else {
            String::new()
        };
        println!(
            "wrote {} ({} frames of {} ms, {}x{} px, {:.1} s of input, {} events, {} KiB){acc}",
            s.out.display(),
            s.frames,
            s.frame_us / 1000,
            s.width,
            s.height,
            s.input_seconds,
            s.events,
            s.bytes / 1024
        );
    }
    Ok(())
}
