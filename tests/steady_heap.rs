//! No heap growth in the steady state: after a warm-up, a learned time step allocates nothing
//! that outlives it. Live heap bytes (a counting allocator) after step 1,000 and after step
//! 10,000 (4,000 for `dvs-gesture`) are identical, for the `tiny`, `demo` and `dvs-gesture` presets, on 1 and 2
//! threads, online (batch 1, the subnetworks as pipeline stages, as `stdl stream` runs them)
//! and in batches (as `stdl train` runs them), while the convolutions switch between their
//! sparse and dense paths (the input alternates between sparse event frames and dense ones).
//! Online also with replay and a strategy (`stdl stream --replay-bytes --strategy lwf`):
//! replayed segments between live steps, and LwF's snapshots, for `tiny` and `demo`.
//!
//! Its own test binary; each configuration runs in a child process of its own, so nothing
//! else allocates while it counts.

use stdl::data::frame_geometry;
use stdl::io::sources::synthetic::{SyntheticConfig, SyntheticScene};
use stdl::model::Model;
use stdl::runtime::replay::{ReplaySettings, StreamReplay};
use stdl::stdl::Pipeline;
use stdl::stdl::{plan, StdlModel, StrategyConfig, StrategyKind};
use stdl_models::network::NetworkSpec;
use stdl_models::optim::OptimConfig;
use stdl_models::{Dims, Layer, Preset, Tensor};

#[global_allocator]
static A: stdl::heap::Counting = stdl::heap::Counting;

/// Labelled 10 ms frames of the synthetic scene, resized to `dims`; every `phase` frames the
/// input switches between the scene (a few percent of pixels active) and a dense one (the
/// scene plus every third pixel), so that each convolution's input density crosses its
/// sparse/dense boundary.
struct Frames {
    scene: SyntheticScene,
    geom: stdl::io::frames::Geometry,
    dims: Dims,
    n: u64,
    phase: u64,
}

impl Frames {
    fn new(dims: Dims, classes: usize, phase: u64) -> Self {
        let cfg = SyntheticConfig {
            classes,
            segment_us: 100_000,
            ..Default::default()
        };
        let geom = frame_geometry(cfg.size, dims).unwrap();
        Self {
            scene: SyntheticScene::new(cfg),
            geom,
            dims,
            n: 0,
            phase,
        }
    }

    /// The next frame for each of `b` samples, and their labels.
    fn next(&mut self, b: usize) -> (Tensor, Vec<usize>) {
        let mut x = Tensor::zeros(b, self.dims);
        let mut labels = Vec::with_capacity(b);
        let dense = (self.n / self.phase) % 2 == 1;
        self.n += 1;
        for f in x.data.chunks_exact_mut(self.dims.len()) {
            for _ in 0..10 {
                let (events, _) = self.scene.next_tick();
                self.geom.accumulate(&events, f);
            }
            if dense {
                f.iter_mut().step_by(3).for_each(|v| *v += 1.0);
            }
            labels.push(self.scene.label());
        }
        (x, labels)
    }
}

fn path_calls(m: &StdlModel) -> Vec<[u64; 2]> {
    m.stages
        .iter()
        .flat_map(|s| s.body.layers.iter().chain(&s.head.layers))
        .filter_map(|l| match l {
            Layer::Conv(c) => Some(c.path_calls),
            _ => None,
        })
        .collect()
}

/// The steps after which live heap bytes are compared: 1,000 and 10,000 (`dvs-gesture`, whose
/// steps take 20 times longer: 1,000 and 4,000, to keep CI within its time).
fn at(preset: &Preset) -> [u64; 2] {
    if preset.name == "dvs-gesture" {
        [1_000, 4_000]
    } else {
        [1_000, 10_000]
    }
}

/// Online, batch 1, stages on their own threads (`stdl stream`): live heap after each of
/// [`at`] steps, with the pipeline drained.
fn online(preset: &Preset, replay: bool) -> (Vec<u64>, Vec<[u64; 2]>) {
    let at = at(preset);
    let spec = NetworkSpec::new(preset).unwrap();
    let p = plan(&spec, 1, None, 2).unwrap();
    let mut model = StdlModel::new(spec.clone(), p, 1, OptimConfig::default(), 1).unwrap();
    let mut replay = replay.then(|| {
        model.set_strategy(&StrategyConfig {
            kind: StrategyKind::Lwf,
            every_steps: 300,
            ..Default::default()
        });
        let settings = ReplaySettings {
            bytes: 256 << 10,
            ratio: 0.5,
            segment_bins: 8,
        };
        StreamReplay::new(&settings, spec.input, 1).unwrap()
    });
    model.warm_up(1, Some(4));
    let mut frames = Frames::new(spec.input, preset.classes, 1_500);
    let pipe = Pipeline::start_primed(std::mem::take(&mut model.stages), 4, None);
    let (mut in_flight, mut live) = (0usize, Vec::with_capacity(at.len()));
    for step in 1..=at[1] {
        let (x, labels) = frames.next(1);
        let label = labels[0];
        if let Some(r) = replay.as_mut() {
            r.offering(&x);
        }
        pipe.send(x, Some(labels));
        in_flight += 1;
        if in_flight > 4 {
            drop(pipe.recv().unwrap());
            in_flight -= 1;
        }
        if let Some(r) = replay.as_mut() {
            r.accepted(Some(label));
            while let Some((ctx, x, l)) = r.next() {
                pipe.send_in(ctx, x, Some(vec![l]));
                r.sent();
                in_flight += 1;
                if in_flight > 4 {
                    drop(pipe.recv().unwrap());
                    in_flight -= 1;
                }
            }
        }
        if at.contains(&step) {
            for _ in 0..in_flight {
                drop(pipe.recv().unwrap());
            }
            in_flight = 0;
            live.push(stdl::heap::live_bytes().unwrap());
        }
    }
    model.stages = pipe.finish();
    (live, path_calls(&model))
}

/// In batches of sequences of T = 10 steps (4 a batch; 2 for `dvs-gesture`), stages in
/// sequence (`stdl train`): live heap after each of [`at`] steps.
fn batched(preset: &Preset) -> (Vec<u64>, Vec<[u64; 2]>) {
    let at = at(preset);
    let spec = NetworkSpec::new(preset).unwrap();
    let b = if preset.name == "dvs-gesture" { 2 } else { 4 };
    let p = plan(&spec, b, None, 2).unwrap();
    let mut m = StdlModel::new(spec.clone(), p, 1, OptimConfig::default(), 1).unwrap();
    m.warm_up(b, None);
    let mut model = Model::Stdl(Box::new(m));
    let mut frames = Frames::new(spec.input, preset.classes, 500);
    let mut live = Vec::with_capacity(at.len());
    let t_bins = 10;
    for batch in 1..=at[1] / t_bins as u64 {
        let (first, labels) = frames.next(b);
        let mut first = Some(first);
        drop(model.train_batch(
            t_bins,
            |_| first.take().unwrap_or_else(|| frames.next(b).0),
            &labels,
        ));
        if at.contains(&(batch * t_bins as u64)) {
            live.push(stdl::heap::live_bytes().unwrap());
        }
    }
    let Model::Stdl(m) = model else { unreachable!() };
    (live, path_calls(&m))
}

/// Runs one configuration (`PRESET MODE`) in this process and prints its result line.
fn child(cfg: &str) {
    let (name, mode) = cfg.split_once(' ').expect("PRESET MODE");
    let preset = Preset::load(name).unwrap();
    let (live, calls) = match mode {
        "online" => online(&preset, false),
        "replay" => online(&preset, true),
        _ => batched(&preset),
    };
    println!("RESULT {} {} {calls:?}", live[0], live[1]);
}

#[test]
fn a_learned_step_allocates_nothing_that_outlives_it() {
    if let Ok(cfg) = std::env::var("STDL_STEADY_HEAP_CHILD") {
        return child(&cfg);
    }
    // Each configuration in a fresh process: its worker threads are the global rayon pool's
    // (`RAYON_NUM_THREADS`), as in `stdl stream` and `stdl train`, and nothing another
    // configuration left behind is freed while this one counts.
    let mut failures = Vec::new();
    for name in ["tiny", "demo", "dvs-gesture"] {
        for threads in ["1", "2"] {
            let modes: &[&str] = if name == "dvs-gesture" {
                &["online", "batched"]
            } else {
                &["online", "batched", "replay"]
            };
            for &mode in modes {
                let o = std::process::Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "a_learned_step_allocates_nothing_that_outlives_it",
                        "--nocapture",
                    ])
                    .env("STDL_STEADY_HEAP_CHILD", format!("{name} {mode}"))
                    .env("RAYON_NUM_THREADS", threads)
                    .output()
                    .unwrap();
                let out = String::from_utf8_lossy(&o.stdout);
                let result = out
                    .lines()
                    .find_map(|l| l.strip_prefix("RESULT "))
                    .unwrap_or_else(|| panic!("{name} {mode}: {out}{}", String::from_utf8_lossy(&o.stderr)));
                let mut parts = result.splitn(3, ' ');
                let l0: u64 = parts.next().unwrap().parse().unwrap();
                let l1: u64 = parts.next().unwrap().parse().unwrap();
                let calls = parts.next().unwrap();
                let at = at(&Preset::load(name).unwrap());
                let line = format!(
                    "{name}, {threads} thread(s), {mode}: live heap {l0} B after step {}, {l1} B after step {} ({:+} B); conv calls [dense, sparse] {calls}",
                    at[0],
                    at[1],
                    l1 as i64 - l0 as i64
                );
                eprintln!("{line}");
                // Both paths ran in a convolution whose input density varies.
                let switched = calls
                    .trim_matches(|c| c == '[' || c == ']')
                    .split("], [")
                    .any(|c| c.split(", ").all(|n| n.parse::<u64>().unwrap() > 0));
                assert!(switched, "{line}: no convolution switched paths");
                if l0 != l1 {
                    failures.push(line);
                }
            }
        }
    }
    assert!(failures.is_empty(), "heap grew:\n{}", failures.join("\n"));
}
