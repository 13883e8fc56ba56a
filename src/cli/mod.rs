//! Command-line interface: clap subcommands.

pub mod bench;
pub mod continual;
pub mod convert;
pub mod demo;
pub mod demo_continual;
pub mod frames;
pub mod info;
pub mod render;
pub mod stream;
pub mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use stdl_io::{Format, ReadOptions, SensorSize};

/// Exit code for failures (bad input data, I/O errors). Usage errors exit with 2 (clap).
pub const EXIT_FAILURE: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "stdl",
    version,
    about = "Online spiking-network learning from event cameras (STDL)",
    long_about = None,
    after_help = "Exit codes: 0 success (also a stream stopped cleanly by Ctrl-C or SIGTERM); \
                  1 failure (unreadable or corrupt input, I/O error, no camera, a failed run; \
                  the message says what and where); 2 usage error (unknown flag, missing or \
                  malformed argument).\n\nStart with: stdl demo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The main job on built-in data: a synthetic event camera, learned online with STDL,
    /// tested on a held-out stream; plots in out/demo. No arguments, no downloads.
    ///
    /// Example: stdl demo      (or: stdl demo --data ../shared/data/nmnist/slayer_NMNISTsmall)
    Demo(demo::DemoArgs),
    /// Summarise event recordings: format, size, counts, time range, first and last event.
    ///
    /// Example: stdl info --json ../shared/data/evt3/gen41_expelliarmus_evt3_sample.raw
    Info(InfoArgs),
    /// Bin a recording into frames and draw them.
    ///
    /// Example: stdl frames ../shared/data/aedat2/dvs128_alex_walking_again.aedat --bin-us 50000 --png walk.png
    Frames(frames::FramesArgs),
    /// Render an event stream as an animated GIF, with a trained model's predictions drawn
    /// under each frame.
    ///
    /// Example: stdl render ../shared/data/aedat2/dvs128_alex_walking_again.aedat --out walk.gif --max-seconds 4
    Render(render::RenderArgs),
    /// Rewrite a recording as AEDAT 3.1, AEDAT 2.0 or ATIS .bin.
    ///
    /// Example: stdl convert walk.aedat user01_natural.aedat --to aedat31
    Convert(convert::ConvertArgs),
    /// Print the STDL plan of a preset: subnetworks, auxiliary networks, predicted memory.
    ///
    /// Example: stdl plan nmnist --batch 16
    Plan(train::PlanArgs),
    /// Train a spiking network on an event dataset with STDL (or the BPTT baseline).
    ///
    /// Example: stdl train --dataset nmnist --root ../shared/data/nmnist/slayer_NMNISTsmall --preset nmnist --epochs 20
    Train(train::TrainArgs),
    /// Evaluate a checkpoint on a dataset split.
    ///
    /// Example: stdl eval --checkpoint out/train/checkpoint --dataset nmnist --root ../shared/data/nmnist/slayer_NMNISTsmall
    Eval(train::EvalArgs),
    /// Continual learning: tasks (groups of classes) streamed one after another and learned
    /// online; accuracy matrix, average accuracy, forgetting, backward/forward transfer.
    ///
    /// Example: stdl continual --dataset nmnist --root ../shared/data/nmnist/slayer_NMNISTsmall --tasks "0,1/2,3/4,5/6,7/8,9" --replay-bytes 2MiB
    Continual(continual::ContinualArgs),
    /// Learn online from an event stream while predicting (STDL, one thread per subnetwork).
    ///
    /// Example: stdl stream --source synthetic --preset dvs-gesture --max-steps 2000 --predictions p.jsonl
    Stream(Box<stream::StreamArgs>),
    /// Benchmarks: decoding, training memory and speed, sparsity, long streams, real time.
    /// Each prints a table or line, or JSON with --json.
    ///
    /// Example: stdl bench memory --preset nmnist --method bptt --t-bins 20 --batch 16
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Decoder throughput: decode a file held in memory, median of several runs.
    ///
    /// Example: stdl bench read --json ../shared/data/evt2/gen3_faery_evt2.raw
    Read(bench::BenchReadArgs),
    /// Peak resident memory of training (run in a fresh process; synthetic input).
    ///
    /// Example: stdl bench memory --preset nmnist --method stdl --t-bins 20 --batch 16
    Memory(bench::BenchModelArgs),
    /// Training time per sample and per time step (synthetic input).
    ///
    /// Example: stdl bench train --preset nmnist --method stdl --t-bins 10 --batch 16 --threads 2
    Train(bench::BenchModelArgs),
    /// Dense against sparse convolution per conv layer at several input densities.
    ///
    /// Example: stdl bench sparse --presets nmnist --densities 0.01,0.05,0.2
    Sparse(bench::BenchSparseArgs),
    /// Constant memory over a long synthetic stream with learning on.
    ///
    /// Example: stdl bench soak --steps 1000000
    Soak(bench::BenchSoakArgs),
    /// Real-time factor of learning online from replayed recordings.
    ///
    /// Example: stdl bench realtime ../shared/data/aedat2/dvs128_alex_walking_again.aedat
    Realtime(bench::BenchRealtimeArgs),
}

/// Options shared by every command that reads a recording.
#[derive(Args, Debug, Clone)]
pub struct ReadArgs {
    /// Read as this format instead of detecting it: aedat2, aedat31, aedat4, bin, evt2, evt3, dat.
    #[arg(long, value_parser = parse_format)]
    pub format: Option<Format>,
    /// Sensor size WxH, for files that do not state it (or to override it).
    #[arg(long, value_parser = parse_size)]
    pub sensor_size: Option<SensorSize>,
    /// ATIS .bin: microseconds added at each overflow marker (y == 240). Tonic uses 8192.
    #[arg(long, default_value_t = 1 << 23)]
    pub atis_overflow_us: u64,
}

impl ReadArgs {
    /// Reader options from the flags.
    pub fn options(&self) -> ReadOptions {
        ReadOptions {
            sensor_size: self.sensor_size,
            atis_overflow_us: self.atis_overflow_us,
            ..ReadOptions::default()
        }
    }
}

/// The continual-learning strategy flags (`stream`, `continual`, `demo continual`).
#[derive(Args, Debug, Clone)]
pub struct StrategyArgs {
    /// Continual-learning strategy besides replay: naive (plain learning), ewc (online
    /// elastic weight consolidation), lwf (learning without forgetting: distillation against
    /// a periodic snapshot). README, "Continual learning".
    /// [default: naive]
    #[arg(long)]
    pub strategy: Option<stdl::stdl::StrategyKind>,
    #[command(flatten)]
    pub constants: StrategyConstants,
}

/// The constants of the continual-learning strategies.
#[derive(Args, Debug, Clone)]
pub struct StrategyConstants {
    /// EWC: strength λ of the pull towards the anchor weights.
    #[arg(long, default_value_t = stdl::stdl::StrategyConfig::default().ewc_lambda, value_parser = non_negative_f32)]
    pub ewc_lambda: f32,
    /// EWC: decay γ of the accumulated importance at each consolidation (0..=1).
    #[arg(long, default_value_t = stdl::stdl::StrategyConfig::default().ewc_decay, value_parser = unit_interval)]
    pub ewc_decay: f32,
    /// LwF: weight α of the distillation loss.
    #[arg(long, default_value_t = stdl::stdl::StrategyConfig::default().lwf_alpha, value_parser = non_negative_f32)]
    pub lwf_alpha: f32,
    /// LwF: distillation temperature T.
    #[arg(long, default_value_t = stdl::stdl::StrategyConfig::default().lwf_temperature, value_parser = positive::<f32>)]
    pub lwf_temperature: f32,
    /// EWC: updates per consolidation window; LwF: updates between snapshots. Task-free:
    /// the learner is never told where a task ends.
    #[arg(long, default_value_t = stdl::stdl::StrategyConfig::default().every_steps, value_parser = at_least_one::<u64>)]
    pub consolidate_every: u64,
}

impl StrategyArgs {
    /// The strategy the flags describe (naive unless `--strategy`).
    pub fn config(&self) -> stdl::stdl::StrategyConfig {
        self.constants.config(self.strategy.unwrap_or_default())
    }
}

impl StrategyConstants {
    /// Strategy `kind` with these constants.
    pub fn config(&self, kind: stdl::stdl::StrategyKind) -> stdl::stdl::StrategyConfig {
        stdl::stdl::StrategyConfig {
            kind,
            ewc_lambda: self.ewc_lambda,
            ewc_decay: self.ewc_decay,
            lwf_alpha: self.lwf_alpha,
            lwf_temperature: self.lwf_temperature,
            every_steps: self.consolidate_every,
        }
    }
}

/// A byte count: `1048576`, `512K`, `2MiB`, `1G` ([`stdl::config::parse_bytes`]).
pub(crate) fn bytes(s: &str) -> Result<u64, String> {
    stdl::config::parse_bytes(s)
}

/// An auxiliary-network budget: bytes, or a multiple of the default such as `2x`
/// ([`stdl::config::parse_budget`]).
pub(crate) fn budget(s: &str) -> Result<stdl_models::preset::Budget, String> {
    stdl::config::parse_budget(s)
}

/// A flag taking one of a library enum's values, named as the enum serialises them (the
/// library's types carry no command-line derive).
pub(crate) fn choice<T>(all: &'static [T]) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: serde::Serialize + Clone + Send + Sync + 'static,
{
    use clap::builder::TypedValueParser;
    let name = |v: &T| {
        serde_json::to_value(v)
            .ok()
            .and_then(|j| j.as_str().map(str::to_owned))
    };
    // Built once per flag per process: the few names live as long as the parser.
    let names: Vec<&'static str> = all
        .iter()
        .filter_map(name)
        .map(|n| &*Box::leak(n.into_boxed_str()))
        .collect();
    clap::builder::PossibleValuesParser::new(names).map(move |s| {
        all.iter()
            .find(|v| name(v).as_deref() == Some(s.as_str()))
            .cloned()
            .expect("one of the possible values")
    })
}

/// A float flag that must be finite and not negative.
pub(crate) fn non_negative_f32(s: &str) -> Result<f32, String> {
    checked(
        s,
        |v: f32| v.is_finite() && v >= 0.0,
        "a finite number, 0 or above",
    )
}

/// A fraction in `[0, 1]`.
pub(crate) fn unit_interval(s: &str) -> Result<f32, String> {
    checked(s, |v: f32| (0.0..=1.0).contains(&v), "between 0 and 1")
}

/// Parses a number and keeps it when `ok`; otherwise says it `must be ...`.
fn checked<T: std::str::FromStr + Copy>(s: &str, ok: impl Fn(T) -> bool, must: &str) -> Result<T, String> {
    let v: T = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number, got {s:?}"))?;
    if ok(v) {
        Ok(v)
    } else {
        Err(format!("must be {must}, got {s}"))
    }
}

/// A float flag that must be finite and above zero (`--lr`, `--speed`, seconds).
pub(crate) fn positive<T: std::str::FromStr + Into<f64> + Copy + std::fmt::Display>(
    s: &str,
) -> Result<T, String> {
    checked(
        s,
        |v: T| v.into().is_finite() && v.into() > 0.0,
        "a finite number above 0",
    )
}

/// A count or a duration that must be at least 1 (`--t-bins`, `--batch`, `--bin-us`, ...).
pub(crate) fn at_least_one<T: std::str::FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    match s.trim().parse::<T>() {
        Ok(v) if v >= T::from(1) => Ok(v),
        Ok(_) => Err(format!("must be at least 1, got {s}")),
        Err(_) => Err(format!("expected a whole number, got {s:?}")),
    }
}

/// A float flag that must be finite and not negative (`--metrics-every-s`: 0 is every batch).
pub(crate) fn non_negative(s: &str) -> Result<f64, String> {
    checked(
        s,
        |v: f64| v.is_finite() && v >= 0.0,
        "a finite number, 0 or above",
    )
}

/// A fraction in `[0, 1)` (`--overlap`).
pub(crate) fn fraction(s: &str) -> Result<f64, String> {
    checked(s, |v: f64| (0.0..1.0).contains(&v), "at least 0 and below 1")
}

/// A fraction in `(0, 1]` (`--density`).
pub(crate) fn density(s: &str) -> Result<f32, String> {
    checked(s, |v: f32| v > 0.0 && v <= 1.0, "above 0 and at most 1")
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse().map_err(|e: stdl_io::Error| e.to_string())
}

pub(crate) fn parse_size(s: &str) -> Result<SensorSize, String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WxH, e.g. 128x128, got {s:?}"))?;
    let w = w.trim().parse().map_err(|_| format!("bad width in {s:?}"))?;
    let h = h.trim().parse().map_err(|_| format!("bad height in {s:?}"))?;
    Ok(SensorSize::new(w, h))
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// Recordings to summarise.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// One JSON object per file, one per line.
    #[arg(long)]
    json: bool,
    /// Count steps in event time larger than this many microseconds as `time_jumps` (what
    /// `stdl stream` would skip at its default; 0: none).
    #[arg(long, default_value_t = stdl::runtime::stream::DEFAULT_MAX_GAP_US)]
    max_gap_us: u64,
    #[command(flatten)]
    read: ReadArgs,
}

fn run_info(a: &InfoArgs) -> Result<()> {
    let opts = a.read.options();
    let mut failed = 0;
    for f in &a.files {
        match info::info(f, a.read.format, &opts, a.max_gap_us) {
            Ok(i) if a.json => println!("{}", serde_json::to_string(&i)?),
            Ok(i) => info::print_text(&i),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} file(s) could not be read", a.files.len());
    }
    Ok(())
}

/// Parses the command line and runs the command; errors go to stderr with exit code 1.
pub fn run() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let res = match &cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Info(a) => run_info(a),
        Command::Frames(a) => frames::run(a),
        Command::Render(a) => render::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Bench(BenchCommand::Read(a)) => bench::read(a),
        Command::Bench(BenchCommand::Memory(a)) => bench::memory(a),
        Command::Bench(BenchCommand::Train(a)) => bench::train(a),
        Command::Bench(BenchCommand::Sparse(a)) => bench::sparse(a),
        Command::Bench(BenchCommand::Soak(a)) => bench::soak(a),
        Command::Bench(BenchCommand::Realtime(a)) => bench::realtime(a),
        Command::Plan(a) => train::run_plan(a),
        Command::Stream(a) => {
            stream::run_stream(a, matches.subcommand_matches("stream").expect("stream's matches"))
        }
        Command::Train(a) => train::run_train(a),
        Command::Eval(a) => train::run_eval(a),
        Command::Continual(a) => continual::run_continual(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
