//! The analytic memory model of STDL's auxiliary-network selection against measured heap
//! memory: for every subnetwork of the presets, the predicted bytes of one training step
//! are within 25% of the peak heap growth a real step causes.
//!
//! A counting global allocator measures the heap; this file is its own test binary with
//! a single test so that no other test allocates concurrently.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use stdl::stdl::{build_stage_layers, plan, Stage};
use stdl_models::network::NetworkSpec;
use stdl_models::optim::{OptimConfig, Optimizer};
use stdl_models::{Preset, Rng, Tensor};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(l.size(), SeqCst) + l.size();
            PEAK.fetch_max(now, SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), SeqCst);
    }
}

#[global_allocator]
static A: Counting = Counting;

fn spikes(b: usize, d: stdl_models::Dims, rng: &mut Rng) -> Tensor {
    Tensor::from_vec(
        b,
        d,
        (0..b * d.len())
            .map(|_| (rng.next_f32() < 0.2) as u8 as f32)
            .collect(),
    )
}

#[test]
fn predicted_step_memory_is_within_25_percent_of_measured() {
    for (name, batch) in [("nmnist", 16), ("tiny", 8), ("dvs-gesture", 4)] {
        let preset = Preset::load(name).unwrap();
        let spec = NetworkSpec::new(&preset).unwrap();
        let p = plan(&spec, batch, None, 2).unwrap();
        let dims = spec.unit_dims().unwrap();
        let mut rng = Rng::new(3);
        for (k, sp) in p.subnets.iter().enumerate() {
            let x = spikes(batch, dims[sp.units.start], &mut rng);
            let labels: Vec<usize> = (0..batch).map(|i| i % preset.classes).collect();
            // Spares pooled by earlier subnetworks would serve this one for free: start empty.
            stdl_models::pool::clear();
            let base = CURRENT.load(SeqCst);
            PEAK.store(base, SeqCst);
            {
                let (body, head) = build_stage_layers(&spec, sp, &mut rng).unwrap();
                let mut st = Stage {
                    body,
                    head,
                    aux: !sp.is_last,
                    opt: Optimizer::new(OptimConfig::default()),
                    update_every: 1,
                    labelled_steps: 0,
                };
                for _ in 0..2 {
                    let (h, _, _) = st.step(x.clone(), Some(&labels), 1.0);
                    st.update();
                    drop(h);
                }
                let measured = (PEAK.load(SeqCst) - base) as f64;
                let predicted = sp.bytes as f64;
                let ratio = predicted / measured;
                eprintln!("{name} subnetwork {k}: predicted {predicted:.0} B, measured {measured:.0} B, ratio {ratio:.3}");
                assert!(
                    (0.75..=1.25).contains(&ratio),
                    "{name} subnetwork {k}: predicted/measured = {ratio:.3}"
                );
            }
        }
    }
}
