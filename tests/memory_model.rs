//! The analytic memory model of STDL's auxiliary-network selection against measured heap
//! memory: for every subnetwork of every preset, built exactly as the trainer builds it
//! (its first convolution without an input gradient), the predicted bytes of one training
//! step are within 25% of the peak heap growth a real step causes, on 1 and on 2 threads,
//! with input at the density the model assumes and with real event frames.
//!
//! A counting global allocator measures the heap; this file is its own test binary with
//! a single test so that no other test allocates concurrently.

use std::path::PathBuf;

use stdl::data::{frame_geometry, SampleCells};
use stdl::io::datasets::{Dataset, Split};
use stdl::io::frames::{frames_from_events, Edge, Slicing};
use stdl::io::{read_file, SensorSize};
use stdl::stdl::{build_stage_layers, plan, Stage, StdlModel};
use stdl_models::layers::conv::PLAN_INPUT_DENSITY;
use stdl_models::network::NetworkSpec;
use stdl_models::optim::OptimConfig;
use stdl_models::{Dims, Preset, Rng, Tensor};

#[global_allocator]
static A: stdl::heap::Counting = stdl::heap::Counting;

/// Binary spikes at `density`.
fn spikes(b: usize, d: Dims, density: f64, rng: &mut Rng) -> Tensor {
    Tensor::from_vec(
        b,
        d,
        (0..b * d.len())
            .map(|_| ((rng.next_f32() as f64) < density) as u8 as f32)
            .collect(),
    )
}

/// `../shared/data`, or `None` outside CI when it is absent (under `CI=true` it must exist).
fn shared_data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "CI=true but {} does not exist",
        dir.display()
    );
    eprintln!("skipped the real-frame half: {} not found", dir.display());
    None
}

/// A batch of `b` real event frames for `dims`, binned as they are used: event-count bins
/// 2.. of T = 10 of a real N-MNIST sample for 34×34 inputs (`stdl train`), and consecutive
/// 10 ms bins (`stdl stream`'s default) of a real DVS128 recording, resized, for the others.
fn real_frames(data: &std::path::Path, dims: Dims, b: usize) -> Tensor {
    let mut x = Tensor::zeros(b, dims);
    if (dims.w, dims.h) == (34, 34) {
        let ds = Dataset::open("nmnist", data.join("nmnist/slayer_NMNISTsmall")).unwrap();
        let s = ds.load(&ds.split(Split::Test)[0]).unwrap();
        let cells = SampleCells::new(&s.events, &frame_geometry(s.sensor, dims).unwrap(), 0);
        for (i, f) in x.data.chunks_exact_mut(dims.len()).enumerate() {
            cells.add_step(2 + i % 8, 10, f);
        }
    } else {
        let (ev, _, _) = read_file(data.join("aedat2/dvs128_alex_walking_again.aedat")).unwrap();
        let geom = frame_geometry(SensorSize::new(128, 128), dims).unwrap();
        let bins = frames_from_events(
            &ev,
            &geom,
            Slicing::TimeWindow {
                window_us: 10_000,
                stride_us: 10_000,
            },
            Edge::Drop,
        )
        .unwrap();
        // From the middle of the recording (the person is walking there).
        let mid = bins.len() / 2;
        for (f, bin) in x.data.chunks_exact_mut(dims.len()).zip(&bins[mid..]) {
            f.copy_from_slice(&bin.data);
        }
    }
    x
}

/// Peak heap growth of two training steps of subnetwork `k` of `p` on input `x`, the stage
/// built from scratch after the baseline (so its parameters and optimiser state count).
fn measure(spec: &NetworkSpec, p: &stdl::stdl::Plan, k: usize, x: &Tensor, labels: &[usize]) -> f64 {
    let sp = &p.subnets[k];
    let mut rng = Rng::new(3);
    // Spares pooled, and scratch grown, by earlier subnetworks would serve this one for
    // free: start empty.
    stdl_models::pool::clear();
    rayon::broadcast(|_| stdl_models::workspace::clear());
    stdl_models::workspace::clear();
    // The GEMM crates' packing space, as the trainer's warm-up primes it on every thread
    // (`gemm` keeps an L2-sized slab per thread from its first product on).
    rayon::broadcast(|_| stdl_models::gemm::prime_packing());
    stdl_models::gemm::prime_packing();
    let base = stdl::heap::reset_peak();
    {
        let (body, head) = build_stage_layers(spec, sp, &mut rng).unwrap();
        let mut st = Stage::new(body, head, !sp.is_last, OptimConfig::default(), 1);
        // Every worker's scratch sized up front, as the trainer's warm-up does.
        let scratch = st.workspace_len();
        rayon::broadcast(|_| stdl_models::workspace::reserve(scratch));
        for _ in 0..2 {
            let (h, _, _) = st.step(x.clone(), Some(labels), 1.0);
            st.update();
            drop(h);
        }
    }
    let peak = (stdl::heap::peak_bytes().unwrap() - base) as f64;
    stdl_models::pool::clear();
    peak
}

#[test]
fn predicted_step_memory_is_within_25_percent_of_measured() {
    // The buffer pool as `stdl train` runs STDL (stdl::model::Model::pool_fit).
    let _fit = stdl_models::pool::FitScope::enter(stdl_models::pool::Fit::up_to(4));
    let data = shared_data();
    let mut worst: (f64, String) = (1.0, String::new());
    for (name, batch) in [
        ("tiny", 8),
        ("nmnist", 16),
        ("demo", 16),
        ("dvs-gesture", 4),
        ("ncaltech101", 4),
    ] {
        let preset = Preset::load(name).unwrap();
        let spec = NetworkSpec::new(&preset).unwrap();
        let p = plan(&spec, batch, None, 2).unwrap();
        let dims = spec.unit_dims().unwrap();
        let labels: Vec<usize> = (0..batch).map(|i| i % preset.classes).collect();
        // Each subnetwork's input: spikes at the assumed density, and what the earlier
        // subnetworks of a fresh network make of real event frames.
        let mut inputs: Vec<(String, Vec<Tensor>)> = Vec::new();
        let mut rng = Rng::new(3);
        inputs.push((
            format!("density {PLAN_INPUT_DENSITY}"),
            p.subnets
                .iter()
                .map(|sp| spikes(batch, dims[sp.units.start], PLAN_INPUT_DENSITY, &mut rng))
                .collect(),
        ));
        if let Some(d) = &data {
            let mut model = StdlModel::new(spec.clone(), p.clone(), 1, OptimConfig::default(), 1).unwrap();
            let mut x = real_frames(d, spec.input, batch);
            let mut real = Vec::new();
            let last = model.stages.len() - 1;
            for (k, st) in model.stages.iter_mut().enumerate() {
                real.push(x.clone());
                x = st.advance(x, None, k == last).0;
            }
            let density: Vec<String> = real.iter().map(|t| format!("{:.3}", t.density())).collect();
            inputs.push((format!("real frames (densities {})", density.join(", ")), real));
        }
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for (what, xs) in &inputs {
                for (k, sp) in p.subnets.iter().enumerate() {
                    let measured = pool.install(|| measure(&spec, &p, k, &xs[k], &labels));
                    let predicted = (sp.bytes + (threads as u64 - 1) * sp.workspace_per_thread_bytes) as f64;
                    let ratio = predicted / measured;
                    let line = format!(
                        "{name} b{batch} subnetwork {k}, {threads} thread(s), {what}: predicted {predicted:.0} B, measured {measured:.0} B, ratio {ratio:.3}"
                    );
                    eprintln!("{line}");
                    if (ratio - 1.0).abs() > (worst.0 - 1.0).abs() {
                        worst = (ratio, line.clone());
                    }
                    assert!((0.75..=1.25).contains(&ratio), "{line}");
                }
            }
        }
    }
    eprintln!("worst: {}", worst.1);
}
