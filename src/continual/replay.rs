//! Replay of past samples in a fixed byte budget: [`ReplayBuffer`], a reservoir of whole
//! samples (`stdl continual`), and [`SegmentReplay`], a reservoir of short labelled segments
//! of a stream interleaved with its live steps (`stdl stream --replay-bytes`, `stdl demo
//! continual`).

use crate::error::{ensure, Context, Result};
use stdl_models::Rng;

/// A reservoir-sampled replay buffer with a fixed capacity in bytes (Vitter's algorithm R):
/// after `n` offers, each offered sample is held with probability `capacity / n`. It holds
/// its own copy of each sample's frames (`u8` counts), so its memory is the budget, whatever
/// the stream's length.
#[derive(Clone, Debug)]
pub struct ReplayBuffer {
    item_bytes: usize,
    capacity: usize,
    data: Vec<u8>,
    labels: Vec<usize>,
    seen: u64,
    rng: Rng,
}

impl ReplayBuffer {
    /// Bytes the buffer charges per sample: its counts and its label.
    pub fn bytes_per_sample(item_bytes: usize) -> usize {
        item_bytes + std::mem::size_of::<usize>()
    }

    /// A buffer of at most `budget_bytes` for samples of `item_bytes` counts each. Fails when
    /// the budget cannot hold a single sample or cannot be allocated.
    pub fn new(budget_bytes: u64, item_bytes: usize, seed: u64) -> Result<Self> {
        let per = Self::bytes_per_sample(item_bytes) as u64;
        let capacity = (budget_bytes / per) as usize;
        ensure!(
            capacity > 0,
            "--replay-bytes {budget_bytes} cannot hold one sample ({per} bytes each at this T and input size)"
        );
        let mut data = Vec::new();
        data.try_reserve_exact(capacity * item_bytes)
            .with_context(|| format!("allocating a replay buffer of {budget_bytes} bytes"))?;
        let mut labels = Vec::new();
        labels.try_reserve_exact(capacity)?;
        Ok(ReplayBuffer {
            item_bytes,
            capacity,
            data,
            labels,
            seen: 0,
            rng: Rng::new(seed ^ 0x5EED_5EED),
        })
    }

    /// Offers a sample from the stream; it is kept with probability `capacity / seen`,
    /// replacing a uniformly chosen one. `write` fills the slot it gets (called only when the
    /// sample is kept, so an offer costs no copy of the sample otherwise).
    pub fn offer_with(&mut self, label: usize, write: impl FnOnce(&mut [u8])) {
        self.seen += 1;
        let slot = if self.labels.len() < self.capacity {
            let n = self.data.len();
            self.data.resize(n + self.item_bytes, 0);
            self.labels.push(label);
            self.labels.len() - 1
        } else {
            let j = self.rng.below_u64(self.seen);
            if j >= self.capacity as u64 {
                return;
            }
            let j = j as usize;
            self.labels[j] = label;
            j
        };
        write(&mut self.data[slot * self.item_bytes..(slot + 1) * self.item_bytes]);
    }

    /// [`ReplayBuffer::offer_with`] for a sample already in counts.
    pub fn offer(&mut self, item: &[u8], label: usize) {
        assert_eq!(item.len(), self.item_bytes, "replay sample of the wrong size");
        self.offer_with(label, |slot| slot.copy_from_slice(item));
    }

    /// Up to `k` distinct held samples, chosen uniformly.
    pub fn sample(&mut self, k: usize) -> Vec<usize> {
        let n = self.labels.len();
        let k = k.min(n);
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + self.rng.below(n - i);
            idx.swap(i, j);
        }
        idx.truncate(k);
        idx
    }

    /// One held sample, chosen uniformly (the first of [`ReplayBuffer::sample`]`(1)`, without
    /// its list of every index). `None` while empty.
    pub fn pick(&mut self) -> Option<usize> {
        let n = self.labels.len();
        (n > 0).then(|| self.rng.below(n))
    }

    /// Counts of held sample `i`.
    pub fn item(&self, i: usize) -> &[u8] {
        &self.data[i * self.item_bytes..(i + 1) * self.item_bytes]
    }

    /// Label of held sample `i`.
    pub fn label(&self, i: usize) -> usize {
        self.labels[i]
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether nothing is held yet.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Most samples it can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Samples offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Bytes allocated for samples and labels.
    pub fn allocated_bytes(&self) -> usize {
        self.data.capacity() + self.labels.capacity() * std::mem::size_of::<usize>()
    }
}

/// Replay inside a stream: a reservoir ([`ReplayBuffer`]) of short segments of the stream's
/// past labelled bins, stored as `u8` counts (saturating at 255, counted in
/// [`SegmentReplay::saturated`]) within a fixed byte budget, and a schedule that interleaves
/// them with the live steps.
///
/// Task-free: it never learns where a task ends. Every `segment_bins` consecutive live bins
/// with the same label form a segment, offered to the reservoir (so every segment of the
/// stream so far is held with the same probability); each live labelled bin earns `ratio`
/// replayed steps, and once a whole segment's worth is earned a held segment, chosen
/// uniformly, is due. The learner runs it as its own sequence, from zero membranes, with the
/// live membranes set aside ([`crate::stdl::StepContext`]).
#[derive(Clone, Debug)]
pub struct SegmentReplay {
    buf: ReplayBuffer,
    budget_bytes: u64,
    segment_bins: usize,
    bin_len: usize,
    ratio: f64,
    credit: f64,
    staging: Vec<u8>,
    staged: usize,
    staged_label: Option<usize>,
    saturated: u64,
    replayed_segments: u64,
}

impl SegmentReplay {
    /// A reservoir of at most `budget_bytes` for segments of `segment_bins` bins of
    /// `bin_len` values each, replaying `ratio` steps per live labelled step.
    ///
    /// # Errors
    /// A budget that cannot hold one segment, no bins per segment, or a ratio that is
    /// negative or not finite.
    pub fn new(
        budget_bytes: u64,
        segment_bins: usize,
        bin_len: usize,
        ratio: f64,
        seed: u64,
    ) -> Result<Self> {
        ensure!(segment_bins > 0, "a replayed segment needs at least one bin");
        ensure!(
            ratio.is_finite() && ratio >= 0.0,
            "--replay-ratio must be a number of replayed steps per live step (>= 0), got {ratio}"
        );
        let seg = segment_bins * bin_len;
        // The segment being gathered counts against the budget too.
        ensure!(
            budget_bytes > seg as u64,
            "--replay-bytes {budget_bytes} cannot hold one segment ({} bytes each, and one \
             being gathered)",
            ReplayBuffer::bytes_per_sample(seg)
        );
        let mut staging = Vec::new();
        staging.try_reserve_exact(seg)?;
        staging.resize(seg, 0);
        Ok(Self {
            buf: ReplayBuffer::new(budget_bytes - seg as u64, seg, seed)?,
            budget_bytes,
            segment_bins,
            bin_len,
            ratio,
            credit: 0.0,
            staging,
            staged: 0,
            staged_label: None,
            saturated: 0,
            replayed_segments: 0,
        })
    }

    /// A live bin the learner learned (`label`) or only saw (`None`, which ends the segment
    /// being gathered).
    pub fn observe(&mut self, bin: &[f32], label: Option<usize>) {
        assert_eq!(bin.len(), self.bin_len, "a bin of the wrong size");
        let Some(label) = label else {
            self.staged = 0;
            return;
        };
        if self.staged_label != Some(label) {
            self.staged = 0;
            self.staged_label = Some(label);
        }
        let dst = &mut self.staging[self.staged * self.bin_len..(self.staged + 1) * self.bin_len];
        for (d, &v) in dst.iter_mut().zip(bin) {
            let c = v.round();
            if c > 255.0 {
                self.saturated += 1;
            }
            *d = c.clamp(0.0, 255.0) as u8;
        }
        self.staged += 1;
        if self.staged == self.segment_bins {
            self.buf.offer(&self.staging, label);
            self.staged = 0;
        }
        self.credit += self.ratio;
        if self.buf.is_empty() {
            // Nothing to replay yet: no debt builds up.
            self.credit = self.credit.min(self.segment_bins as f64);
        }
    }

    /// A held segment to replay now, if one is due.
    pub fn due(&mut self) -> Option<usize> {
        if self.buf.is_empty() || self.credit < self.segment_bins as f64 {
            return None;
        }
        self.credit -= self.segment_bins as f64;
        self.replayed_segments += 1;
        self.buf.pick()
    }

    /// Bin `k` of held segment `i`, as the learner's input values.
    pub fn bin_into(&self, i: usize, k: usize, out: &mut [f32]) {
        let item = self.buf.item(i);
        for (o, &c) in out
            .iter_mut()
            .zip(&item[k * self.bin_len..(k + 1) * self.bin_len])
        {
            *o = c as f32;
        }
    }

    /// Label of held segment `i`.
    pub fn label(&self, i: usize) -> usize {
        self.buf.label(i)
    }

    /// Bins per segment.
    pub fn segment_bins(&self) -> usize {
        self.segment_bins
    }

    /// Values counted above 255 (stored as 255).
    pub fn saturated(&self) -> u64 {
        self.saturated
    }

    /// What it holds and has done.
    pub fn stats(&self) -> SegmentReplayStats {
        let mut per_class = std::collections::BTreeMap::<usize, usize>::new();
        for i in 0..self.buf.len() {
            *per_class.entry(self.buf.label(i)).or_default() += 1;
        }
        SegmentReplayStats {
            budget_bytes: self.budget_bytes,
            segment_bins: self.segment_bins,
            bytes_per_segment: ReplayBuffer::bytes_per_sample(self.segment_bins * self.bin_len),
            capacity_segments: self.buf.capacity(),
            held_segments: self.buf.len(),
            held_per_class: per_class.into_iter().collect(),
            segments_seen: self.buf.seen(),
            replayed_segments: self.replayed_segments,
            replayed_steps: self.replayed_segments * self.segment_bins as u64,
            allocated_bytes: self.buf.allocated_bytes() + self.staging.capacity(),
            saturated_values: self.saturated,
        }
    }
}

/// Figures of a [`SegmentReplay`].
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentReplayStats {
    /// The budget: the reservoir and the segment being gathered stay within it.
    pub budget_bytes: u64,
    /// Bins per segment.
    pub segment_bins: usize,
    /// Bytes charged per segment (its counts and its label).
    pub bytes_per_segment: usize,
    /// Segments it can hold.
    pub capacity_segments: usize,
    /// Segments held.
    pub held_segments: usize,
    /// Segments held per class.
    pub held_per_class: Vec<(usize, usize)>,
    /// Segments the stream offered.
    pub segments_seen: u64,
    /// Segments replayed.
    pub replayed_segments: u64,
    /// Steps replayed.
    pub replayed_steps: u64,
    /// Bytes allocated (the reservoir and the segment being gathered).
    pub allocated_bytes: usize,
    /// Counts above 255, stored as 255.
    pub saturated_values: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservoir_keeps_a_uniform_sample_within_its_budget() {
        // 1,000 offers of 10-byte samples into 20 slots; over many seeds every offer is held
        // with probability 20/1000.
        let per = ReplayBuffer::bytes_per_sample(10) as u64;
        let mut hits = vec![0u32; 1000];
        let runs = 2000;
        for seed in 0..runs {
            let mut b = ReplayBuffer::new(20 * per + per - 1, 10, seed).unwrap();
            assert_eq!(b.capacity(), 20);
            for i in 0..1000usize {
                b.offer(&[(i % 251) as u8; 10], i);
            }
            assert_eq!(b.len(), 20);
            assert!(b.allocated_bytes() as u64 <= 20 * per);
            for j in 0..b.len() {
                assert_eq!(b.item(j)[0] as usize, b.label(j) % 251);
                hits[b.label(j)] += 1;
            }
        }
        // Expected 40 per index; compare the first and the last tenth of the stream.
        let early: u32 = hits[..100].iter().sum();
        let late: u32 = hits[900..].iter().sum();
        let expect = runs as f64 * 20.0 / 10.0;
        for (name, h) in [("early", early), ("late", late)] {
            assert!(
                (h as f64 - expect).abs() < 0.1 * expect,
                "{name} tenth held {h} times, expected about {expect}"
            );
        }
        let mut b = ReplayBuffer::new(5 * per, 10, 1).unwrap();
        for i in 0..3usize {
            b.offer(&[0; 10], i);
        }
        let s = b.sample(8);
        assert_eq!(s.len(), 3);
        let mut sorted = s.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2]);
        assert!(ReplayBuffer::new(per - 1, 10, 0).is_err());
    }

    #[test]
    fn segments_are_gathered_by_label_and_replayed_at_the_ratio() {
        let per = ReplayBuffer::bytes_per_sample(2 * 3) as u64;
        // Four segments and the one being gathered (6 bytes).
        let mut r = SegmentReplay::new(4 * per + 6, 2, 3, 0.5, 7).unwrap();
        // Label 1 for 3 bins (one segment, one bin left over), then label 2 for 1 bin (the
        // leftover is dropped: a segment has one label), then an unlabelled bin.
        r.observe(&[1.0, 2.0, 3.0], Some(1));
        assert_eq!(r.due(), None, "nothing held yet");
        r.observe(&[4.0, 5.0, 300.0], Some(1));
        r.observe(&[9.0, 9.0, 9.0], Some(1));
        r.observe(&[7.0, 7.0, 7.0], Some(2));
        r.observe(&[8.0, 8.0, 8.0], None);
        let s = r.stats();
        assert_eq!((s.held_segments, s.segments_seen, s.saturated_values), (1, 1, 1));
        // 4 labelled bins at ratio 0.5 earned 2 steps: one 2-bin segment is due, once.
        let i = r.due().expect("a segment due");
        assert_eq!(r.due(), None);
        assert_eq!(r.label(i), 1);
        let mut out = [0.0; 3];
        r.bin_into(i, 1, &mut out);
        assert_eq!(out, [4.0, 5.0, 255.0]);
        // However long the stream, the reservoir stays within its budget.
        for k in 0..10_000 {
            r.observe(&[k as f32; 3], Some(k / 7 % 5));
            while r.due().is_some() {}
        }
        let s = r.stats();
        assert_eq!(s.held_segments, 4);
        assert!(s.allocated_bytes as u64 <= s.budget_bytes, "{s:?}");
        assert!(SegmentReplay::new(per + 5, 2, 3, 1.0, 0).is_err());
        assert!(SegmentReplay::new(per + 6, 2, 3, -1.0, 0).is_err());
        assert!(SegmentReplay::new(per + 6, 2, 3, 1.0, 0).is_ok());
    }
}
