//! What happens when the learner falls behind a live source: the bins waiting for it
//! ([`Backlog`]) and the policy that keeps them few ([`Overload`]).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use stdl_models::Tensor;

use crate::runtime::source::Source;

/// What happens when the learner falls behind the source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overload {
    /// `block` for replays (files, stdin, datasets, synthetic scenes), `drop-oldest` for live
    /// sources (DV network streams, cameras).
    #[default]
    Auto,
    /// The source waits for the learner: nothing is lost (replays).
    Block,
    /// Whole bins are dropped, oldest first, once the learner's queue and a backlog of
    /// [`LIVE_BACKLOG_BINS`] are full, so that the learner always works on recent bins; each
    /// dropped bin is counted in `dropped_bins`.
    DropOldest,
    /// The oldest waiting bin is added into the next one (their events counted together, the
    /// newer bin's label), so no event is lost but time resolution is; each merge is counted
    /// in `coalesced_bins`.
    Coalesce,
}

impl Overload {
    /// Every policy, in the order the command line lists them.
    pub const ALL: [Overload; 4] = [
        Overload::Auto,
        Overload::Block,
        Overload::DropOldest,
        Overload::Coalesce,
    ];

    /// The policy that applies to `source` (`Auto` resolved).
    pub fn resolve(self, source: &Source) -> Overload {
        match (self, source) {
            (Overload::Auto, Source::DvTcp(_) | Source::Camera(_)) => Overload::DropOldest,
            (Overload::Auto, _) => Overload::Block,
            (p, _) => p,
        }
    }
}

/// Bins a live source may hold back, besides the learner's queue of 4, before the overload
/// policy applies: at 10 ms bins, at most about 80 ms between a bin's end and its learning.
pub const LIVE_BACKLOG_BINS: usize = 4;

/// A bin on its way to the learner.
#[derive(Debug)]
pub struct Bin {
    /// The frame, batch 1.
    pub x: Tensor,
    /// End of the bin, in microseconds of event time.
    pub t_end_us: u64,
    /// Its label, if any.
    pub label: Option<usize>,
}

/// Bins waiting for the learner, oldest first. Under `drop-oldest` and `coalesce` at most
/// [`LIVE_BACKLOG_BINS`] wait; under `block` the caller hands each bin over (waiting for
/// room) before the next is made, so the backlog stays short by itself.
#[derive(Debug)]
pub struct Backlog {
    bins: VecDeque<Bin>,
    policy: Overload,
    /// Bins dropped (by `drop-oldest`, or left when the run ended).
    pub dropped: u64,
    /// Bins added into the next one (`coalesce`).
    pub coalesced: u64,
}

impl Backlog {
    /// An empty backlog under `policy` (resolved: `Auto` acts as `Block`).
    pub fn new(policy: Overload) -> Self {
        Self {
            bins: VecDeque::new(),
            policy,
            dropped: 0,
            coalesced: 0,
        }
    }

    /// Adds the newest bin, then applies the policy while more than [`LIVE_BACKLOG_BINS`]
    /// wait: `drop-oldest` drops the oldest; `coalesce` adds the oldest's counts into the
    /// next (which keeps its own label and end).
    pub fn push(&mut self, bin: Bin) {
        self.bins.push_back(bin);
        while self.bins.len() > LIVE_BACKLOG_BINS {
            match self.policy {
                Overload::Block | Overload::Auto => return,
                Overload::DropOldest => {
                    self.bins.pop_front();
                    self.dropped += 1;
                }
                Overload::Coalesce => {
                    let oldest = self.bins.pop_front().expect("more than LIVE_BACKLOG_BINS");
                    let next = self.bins.front_mut().expect("a newer bin");
                    for (a, b) in next.x.data.iter_mut().zip(&oldest.x.data) {
                        *a += b;
                    }
                    self.coalesced += 1;
                }
            }
        }
    }

    /// The oldest bin.
    pub fn pop(&mut self) -> Option<Bin> {
        self.bins.pop_front()
    }

    /// Puts back a bin the learner had no room for, as the oldest.
    pub fn put_back(&mut self, bin: Bin) {
        self.bins.push_front(bin);
    }

    /// Bins waiting.
    pub fn len(&self) -> usize {
        self.bins.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// The run ended before the bins still waiting were learned: they count as dropped.
    pub fn abandon(&mut self) {
        self.dropped += self.bins.len() as u64;
        self.bins.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stdl_models::Dims;

    fn bin(t: u64, v: f32) -> Bin {
        Bin {
            x: Tensor::from_vec(1, Dims::new(1, 1, 2), vec![v, 2.0 * v]),
            t_end_us: t,
            label: Some(t as usize),
        }
    }

    #[test]
    fn drop_oldest_keeps_the_newest_bins() {
        let mut b = Backlog::new(Overload::DropOldest);
        for t in 0..7 {
            b.push(bin(t, 1.0));
        }
        assert_eq!((b.len(), b.dropped, b.coalesced), (LIVE_BACKLOG_BINS, 3, 0));
        assert_eq!(b.pop().map(|x| x.t_end_us), Some(3));
    }

    #[test]
    fn coalesce_adds_the_oldest_into_the_next() {
        let mut b = Backlog::new(Overload::Coalesce);
        for t in 0..6 {
            b.push(bin(t, (t + 1) as f32));
        }
        assert_eq!((b.len(), b.dropped, b.coalesced), (LIVE_BACKLOG_BINS, 0, 2));
        // Bins 0, 1 and 2 became one, with bin 2's end and label and all their events.
        let first = b.pop().expect("a bin");
        assert_eq!((first.t_end_us, first.label), (2, Some(2)));
        assert_eq!(first.x.data, vec![6.0, 12.0]);
        let total: f32 = std::iter::from_fn(|| b.pop()).map(|x| x.x.data[0]).sum::<f32>() + 6.0;
        assert_eq!(total, (1..=6).sum::<u32>() as f32, "no event lost");
    }

    #[test]
    fn block_holds_every_bin_and_abandon_counts_them() {
        let mut b = Backlog::new(Overload::Block);
        for t in 0..6 {
            b.push(bin(t, 1.0));
        }
        assert_eq!((b.len(), b.dropped), (6, 0));
        let first = b.pop().expect("a bin");
        b.put_back(first);
        assert_eq!(b.pop().map(|x| x.t_end_us), Some(0));
        b.abandon();
        assert_eq!((b.len(), b.dropped), (0, 5));
    }

    #[test]
    fn auto_is_block_for_replays_and_drop_oldest_live() {
        assert_eq!(Overload::Auto.resolve(&Source::Stdin), Overload::Block);
        assert_eq!(
            Overload::Auto.resolve(&Source::DvTcp("127.0.0.1:7777".into())),
            Overload::DropOldest
        );
        assert_eq!(Overload::Coalesce.resolve(&Source::Stdin), Overload::Coalesce);
    }
}
