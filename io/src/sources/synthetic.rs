//! An endless, seeded generator of labelled event scenes, for demos, soak tests and
//! benchmarks without files.
//!
//! The scene is a bright square moving over a dark background on a torus (it wraps at the
//! borders), like an object crossing a DVS128's field of view. Each labelled segment of
//! `segment_us` has one class; class `c` of `classes` moves the square in direction
//! `2π·c / classes` at `speed_px_per_s`. A pixel the square's leading edge reaches fires an
//! ON event, a pixel its trailing edge leaves fires an OFF event, and background activity adds
//! uniformly random events at `noise_hz` per pixel. Timestamps advance in `tick_us` steps
//! with the events of a tick spread over it, so the stream looks like a sensor's. Everything
//! follows from `seed`: the same configuration gives the same events.

use crate::event::{Event, SensorSize};

/// Settings of a synthetic scene.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Sensor size (default 128×128).
    pub size: SensorSize,
    /// Number of classes (default 11, as DVS128-Gesture).
    pub classes: usize,
    /// Duration of one labelled segment (default 1 s).
    pub segment_us: u64,
    /// Simulation step (default 1 ms).
    pub tick_us: u64,
    /// Side of the square in pixels (default 24).
    pub square_px: u16,
    /// Speed of the square (default 200 px/s).
    pub speed_px_per_s: f32,
    /// Background activity per pixel (default 0.05 Hz).
    pub noise_hz: f32,
    /// Seed.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            size: SensorSize::new(128, 128),
            classes: 11,
            segment_us: 1_000_000,
            tick_us: 1_000,
            square_px: 24,
            speed_px_per_s: 200.0,
            noise_hz: 0.05,
            seed: 0,
        }
    }
}

impl SyntheticConfig {
    /// A name per class: the direction the square moves in, in degrees clockwise from
    /// rightwards (the image's y axis points down), e.g. `"dir 33 deg"`.
    pub fn class_names(&self) -> Vec<String> {
        (0..self.classes)
            .map(|k| format!("dir {:.0} deg", 360.0 * k as f64 / self.classes as f64))
            .collect()
    }
}

/// The generator: call [`SyntheticScene::next_tick`] for the events of each tick.
#[derive(Clone, Debug)]
pub struct SyntheticScene {
    cfg: SyntheticConfig,
    rng: u64,
    t_us: u64,
    /// Top-left corner of the square (continuous, on the torus).
    pos: (f32, f32),
    label: usize,
    segment_end_us: u64,
    covered: Vec<bool>,
    /// Classes segments are drawn from (empty: all).
    allowed: Vec<usize>,
}

impl SyntheticScene {
    /// A scene from its settings.
    pub fn new(cfg: SyntheticConfig) -> Self {
        let n = cfg.size.pixels();
        let mut s = Self {
            rng: cfg.seed ^ 0x5DEE_CE66_D1CE_4E5B,
            cfg,
            t_us: 0,
            pos: (0.0, 0.0),
            label: 0,
            segment_end_us: 0,
            covered: vec![false; n],
            allowed: Vec::new(),
        };
        s.new_segment();
        s
    }

    fn next_u64(&mut self) -> u64 {
        // SplitMix64.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn new_segment(&mut self) {
        self.label = if self.allowed.is_empty() {
            (self.next_u64() % self.cfg.classes as u64) as usize
        } else {
            let k = (self.next_u64() % self.allowed.len() as u64) as usize;
            self.allowed[k]
        };
        let (w, h) = (self.cfg.size.width as f32, self.cfg.size.height as f32);
        self.pos = (self.uniform() * w, self.uniform() * h);
        self.segment_end_us = self.t_us + self.cfg.segment_us;
        self.covered.iter_mut().for_each(|c| *c = false);
        let now = self.coverage();
        for i in now {
            self.covered[i] = true;
        }
    }

    /// Pixel indices covered by the square now.
    fn coverage(&self) -> Vec<usize> {
        let (w, h) = (self.cfg.size.width as i64, self.cfg.size.height as i64);
        let (x0, y0) = (self.pos.0.floor() as i64, self.pos.1.floor() as i64);
        let side = self.cfg.square_px as i64;
        let mut v = Vec::with_capacity((side * side) as usize);
        for dy in 0..side {
            for dx in 0..side {
                let x = (x0 + dx).rem_euclid(w);
                let y = (y0 + dy).rem_euclid(h);
                v.push((y * w + x) as usize);
            }
        }
        v
    }

    /// From the next tick on, segments move in one of `classes` only (empty: any class), and
    /// a new segment starts there: the phases of a class-incremental stream.
    ///
    /// # Panics
    /// If a class is not below the scene's number of classes.
    pub fn set_classes(&mut self, classes: &[usize]) {
        assert!(
            classes.iter().all(|&c| c < self.cfg.classes),
            "classes {classes:?} of a scene with {}",
            self.cfg.classes
        );
        self.allowed = classes.to_vec();
        self.new_segment();
    }

    /// The label of the segment the next tick belongs to.
    pub fn label(&self) -> usize {
        self.label
    }

    /// Time of the next tick's start.
    pub fn t_us(&self) -> u64 {
        self.t_us
    }

    /// The settings.
    pub fn config(&self) -> &SyntheticConfig {
        &self.cfg
    }

    /// Events of the next tick (time-ordered) and the label that holds during it.
    pub fn next_tick(&mut self) -> (Vec<Event>, usize) {
        if self.t_us >= self.segment_end_us {
            self.new_segment();
        }
        let label = self.label;
        let (w, h) = (self.cfg.size.width as f32, self.cfg.size.height as f32);
        let angle = std::f32::consts::TAU * label as f32 / self.cfg.classes as f32;
        let step = self.cfg.speed_px_per_s * self.cfg.tick_us as f32 * 1e-6;
        self.pos = (
            (self.pos.0 + step * angle.cos()).rem_euclid(w),
            (self.pos.1 + step * angle.sin()).rem_euclid(h),
        );
        let now = self.coverage();
        let mut changed: Vec<(usize, bool)> = Vec::new();
        let mut next = vec![false; self.covered.len()];
        for &i in &now {
            next[i] = true;
        }
        for &i in &now {
            if !self.covered[i] {
                changed.push((i, true));
            }
        }
        // Pixels that were covered and no longer are (only near the square).
        let side = self.cfg.square_px as i64 + 2;
        let (x0, y0) = (self.pos.0.floor() as i64 - 1, self.pos.1.floor() as i64 - 1);
        let (wi, hi) = (self.cfg.size.width as i64, self.cfg.size.height as i64);
        for dy in -1..=side {
            for dx in -1..=side {
                let x = (x0 + dx).rem_euclid(wi);
                let y = (y0 + dy).rem_euclid(hi);
                let i = (y * wi + x) as usize;
                if self.covered[i] && !next[i] {
                    changed.push((i, false));
                    self.covered[i] = false;
                }
            }
        }
        for &i in &now {
            self.covered[i] = true;
        }
        // Background activity.
        let expected = self.cfg.noise_hz * self.cfg.size.pixels() as f32 * self.cfg.tick_us as f32 * 1e-6;
        let mut noise = expected.floor() as usize;
        if self.uniform() < expected.fract() {
            noise += 1;
        }
        for _ in 0..noise {
            let i = (self.next_u64() % self.covered.len() as u64) as usize;
            let on = self.next_u64() & 1 == 1;
            changed.push((i, on));
        }
        // Spread over the tick, in time order.
        let mut events: Vec<Event> = changed
            .into_iter()
            .map(|(i, on)| {
                let dt = (self.uniform() * self.cfg.tick_us as f32) as u64;
                let x = (i % self.cfg.size.width as usize) as u16;
                let y = (i / self.cfg.size.width as usize) as u16;
                Event::new(self.t_us + dt.min(self.cfg.tick_us - 1), x, y, on)
            })
            .collect();
        events.sort_by_key(|e| e.t_us);
        self.t_us += self.cfg.tick_us;
        (events, label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_labelled_and_on_the_sensor() {
        let cfg = SyntheticConfig {
            segment_us: 50_000,
            ..Default::default()
        };
        let mut a = SyntheticScene::new(cfg.clone());
        let mut b = SyntheticScene::new(cfg.clone());
        let mut labels = std::collections::BTreeSet::new();
        let mut total = 0;
        let mut last_t = 0;
        for _ in 0..2000 {
            let (ea, la) = a.next_tick();
            let (eb, lb) = b.next_tick();
            assert_eq!((ea.clone(), la), (eb, lb));
            for e in &ea {
                assert!(cfg.size.contains(e.x, e.y));
                assert!(e.t_us >= last_t);
                last_t = e.t_us;
            }
            total += ea.len();
            labels.insert(la);
        }
        assert!(
            labels.len() >= 8,
            "2 s of 50 ms segments visit most of the 11 classes"
        );
        // A moving square makes events every tick, noise included: ~ 2 edges × 24 px × 60 px/s.
        let per_s = total as f64 / 2.0;
        assert!(per_s > 1000.0 && per_s < 100_000.0, "{per_s} events/s");
    }

    #[test]
    fn set_classes_restricts_the_segments_from_the_next_tick() {
        let mut s = SyntheticScene::new(SyntheticConfig {
            segment_us: 20_000,
            ..Default::default()
        });
        s.set_classes(&[3, 7]);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            seen.insert(s.next_tick().1);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![3, 7]);
        s.set_classes(&[]);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            seen.insert(s.next_tick().1);
        }
        assert!(seen.len() >= 8, "all classes again: {seen:?}");
    }
}
