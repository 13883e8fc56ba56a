//! The synthetic scene ([`stdl_io::sources::synthetic`]): labelled moving shapes, paced at
//! `--speed` or as fast as the learner takes them, fast-forwarded on resume.

use std::time::{Duration, Instant};

use stdl_io::sources::{SyntheticConfig, SyntheticScene};

use super::{Pump, RunSource, SourceOut};

/// A synthetic scene.
pub(crate) struct Synthetic(pub SyntheticConfig);

impl RunSource for Synthetic {
    fn run(&self, out: &mut SourceOut, pump: &Pump) {
        let mut scene = SyntheticScene::new(self.0.clone());
        out.size(self.0.size);
        let start = Instant::now();
        let ticks_per_bin = (pump.bin_us / self.0.tick_us).max(1);
        let limit = pump.max_steps.map(|s| (s + 2) * ticks_per_bin);
        let mut n = 0u64;
        loop {
            let tick_start = scene.t_us();
            let (events, label) = scene.next_tick();
            if scene.t_us() <= pump.resume_t {
                continue; // fast-forward the deterministic scene to the checkpoint
            }
            if let Some(speed) = pump.speed {
                let due = Duration::from_secs_f64(scene.t_us() as f64 * 1e-6 / speed);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            if !out.events(&events, Some((tick_start, label))) {
                return;
            }
            n += 1;
            if limit.is_some_and(|l| n >= l) {
                return;
            }
        }
    }
}
