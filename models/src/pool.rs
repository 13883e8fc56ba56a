//! A pool of `f32` buffers.
//!
//! A spiking network allocates the same few buffer sizes at every time step (layer outputs,
//! gradients, im2col workspaces). Served from the heap, their churn lets the allocator's
//! footprint drift upwards over a long stream. Served from this pool, buffers are allocated
//! during the first steps and reused after, so memory is flat in time, and the page faults of
//! fresh large allocations disappear.
//!
//! Buffers come in size classes, eight per doubling (a class is at most 12.5% above the
//! requests it serves), and a request takes a spare of its own class only. So which buffers
//! exist depends only on how many of each class were ever alive at once, never on the order in
//! which requests happened to arrive: once every convolution path has run (the warm-up), a step
//! allocates nothing that outlives it (`tests/steady_heap.rs`). (An earlier best fit, where a
//! request could take any spare up to 4× its length, let requests take each other's buffers
//! in an order that changed with the input's density, and the pool kept growing, slowly, for
//! 10^5 steps.) Each class keeps at most [`MAX_PER_CLASS`] spares.
//!
//! Subnetworks running as pipeline stages on worker threads share the pool, and how many
//! buffers of a class they hold at once depends on how their steps overlap in time: a pool
//! that only grew on demand kept growing, rarely, whenever two stages' peaks first coincided
//! (10^5 steps in). So the runtime measures each stage's peak use per class during its warm-up
//! ([`measure`]) and [`reserve`]s their sum before the stream starts: no overlap can need more.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Spare buffers kept per size class.
pub const MAX_PER_CLASS: usize = 8;

/// Size classes per doubling: `2^SUB_BITS`.
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;

/// The size class of a request of `len` values: `len` itself up to `2·SUB`, above that the
/// smallest `m · 2^e ≥ len` with `SUB ≤ m < 2·SUB`.
pub fn class_of(len: usize) -> usize {
    if len <= 2 * SUB {
        return len;
    }
    let e = (usize::BITS - 1 - len.leading_zeros()) - SUB_BITS;
    let m = len.div_ceil(1 << e);
    m << e
}

/// The largest class a buffer of `capacity` values can serve.
fn class_below(capacity: usize) -> usize {
    let c = class_of(capacity);
    if c == capacity || capacity <= 2 * SUB {
        return c;
    }
    let e = (usize::BITS - 1 - c.leading_zeros()) - SUB_BITS;
    // The class one step down: (m − 1) · 2^e, or (at m = SUB) (2·SUB − 1) · 2^(e−1).
    let m = c >> e;
    if m > SUB {
        (m - 1) << e
    } else {
        (2 * SUB - 1) << (e - 1)
    }
}

/// One size class: its spares, how many of its buffers are out, the most that were out at
/// once since [`measure`] began, and how many spares it may keep.
#[derive(Debug, Default)]
struct Class {
    spares: Vec<Vec<f32>>,
    out: usize,
    peak: usize,
    keep: usize,
}

impl Class {
    fn keep(&self) -> usize {
        self.keep.max(MAX_PER_CLASS)
    }
}

static POOL: Mutex<BTreeMap<usize, Class>> = Mutex::new(BTreeMap::new());

/// The fit in force ([`FitScope`]): how far above its own class a request may take a spare.
static FIT: AtomicUsize = AtomicUsize::new(1);

/// How far above its own class a request may take a spare when its class has none. Work
/// that runs one subnetwork after another on one thread (`stdl train`) gains from sharing:
/// subnetworks whose buffers differ by 2–4× use the same spares (`dvs-gesture` at batch 8:
/// 54 instead of 66 MB), and the order of its requests is the same at every step, so the
/// pool still stops growing after the first step (`tests/steady_heap.rs`, batched). Pipeline
/// stages overlapping in time must keep to their own classes ([`Fit::OWN_CLASS`]): a stage
/// taking another's larger spare would make the pool grow whenever the stages' timing
/// changed. A fit is a value chosen by how a model runs, in force only while it runs
/// ([`FitScope`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fit(usize);

impl Fit {
    /// A request takes a spare of its own class only (pipeline stages, BPTT; the default when
    /// no scope is in force).
    pub const OWN_CLASS: Fit = Fit(1);

    /// A request whose class has no spare may take one up to `factor` times its size.
    pub const fn up_to(factor: usize) -> Fit {
        Fit(if factor == 0 { 1 } else { factor })
    }

    /// The factor.
    pub fn factor(self) -> usize {
        self.0
    }
}

/// Puts a [`Fit`] in force until dropped, then restores the one before (scopes nest). The
/// pool is one per process, and so is the fit in force: a model enters its fit for the
/// duration of a batch or a stream, and building a model changes nothing.
#[derive(Debug)]
#[must_use = "the fit is in force only while the scope lives"]
pub struct FitScope {
    previous: usize,
}

impl FitScope {
    /// Puts `fit` in force.
    pub fn enter(fit: Fit) -> Self {
        Self {
            previous: FIT.swap(fit.0, Ordering::Relaxed),
        }
    }
}

impl Drop for FitScope {
    fn drop(&mut self) {
        FIT.store(self.previous, Ordering::Relaxed);
    }
}

fn with_pool<R>(f: impl FnOnce(&mut BTreeMap<usize, Class>) -> R) -> Option<R> {
    POOL.lock().ok().map(|mut g| f(&mut g))
}

/// A buffer of `len` values with unspecified contents (a reused buffer keeps old values).
pub fn take(len: usize) -> Vec<f32> {
    if len == 0 {
        return Vec::new();
    }
    let class = class_of(len);
    let fit = FIT.load(Ordering::Relaxed);
    let reused = with_pool(|p| {
        // Its own class, or with a wider fit the smallest larger class with a spare.
        let from = if fit > 1 && p.get(&class).is_none_or(|c| c.spares.is_empty()) {
            p.range(class..=class.saturating_mul(fit))
                .find(|(_, c)| !c.spares.is_empty())
                .map_or(class, |(k, _)| *k)
        } else {
            class
        };
        let c = p.entry(from).or_default();
        c.out += 1;
        c.peak = c.peak.max(c.out);
        // The spare whose length is closest above the request's (else the longest): a
        // buffer keeps the length it was last used at, and growing it zeroes the difference,
        // so requests of different lengths that share a class (or borrow a larger one) each
        // find their own length back instead of zeroing a buffer another one shortened.
        // Among equals, the one given back last: the most likely to be still in cache.
        let best = c
            .spares
            .iter()
            .enumerate()
            .rev()
            .min_by_key(|(_, v)| {
                if v.len() >= len {
                    (0, v.len())
                } else {
                    (1, usize::MAX - v.len())
                }
            })
            .map(|(i, _)| i)?;
        Some(c.spares.swap_remove(best))
    })
    .flatten();
    let mut v = reused.unwrap_or_else(|| Vec::with_capacity(class));
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, 0.0); // within capacity: no reallocation
    }
    v
}

/// A buffer of `len` zeros.
pub fn zeros(len: usize) -> Vec<f32> {
    let mut v = take(len);
    v.iter_mut().for_each(|x| *x = 0.0);
    v
}

/// Returns a buffer for reuse, under the largest class its capacity serves (a buffer the
/// pool did not make may have any capacity).
pub fn give(v: Vec<f32>) {
    if v.capacity() == 0 {
        return;
    }
    with_pool(|p| {
        let c = p.entry(class_below(v.capacity())).or_default();
        c.out = c.out.saturating_sub(1);
        if c.spares.len() < c.keep() {
            if c.spares.capacity() < c.keep() {
                // Room for the most it will hold, once: no growth of the list later.
                c.spares.reserve_exact(c.keep() - c.spares.len());
            }
            c.spares.push(v);
        }
    });
}

/// `(class, spares)` per size class held (diagnostics).
pub fn histogram() -> Vec<(usize, usize)> {
    with_pool(|p| {
        p.iter()
            .map(|(c, v)| (*c, v.spares.len()))
            .filter(|(_, n)| *n > 0)
            .collect()
    })
    .unwrap_or_default()
}

/// Bytes held as spares (for tests and diagnostics).
pub fn spare_bytes() -> usize {
    with_pool(|p| p.values().flat_map(|c| &c.spares).map(|v| v.capacity() * 4).sum()).unwrap_or(0)
}

/// Runs `f` and returns, per size class, the most buffers it had taken at once beyond those
/// already out when it started: its peak use of the pool. Meant for one thing at a time (a
/// stage's warm-up step); anything else taking buffers meanwhile counts too.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, BTreeMap<usize, usize>) {
    let start: BTreeMap<usize, usize> = with_pool(|p| {
        p.iter_mut()
            .map(|(k, c)| {
                c.peak = c.out;
                (*k, c.out)
            })
            .collect()
    })
    .unwrap_or_default();
    let r = f();
    let peaks = with_pool(|p| {
        p.iter()
            .map(|(k, c)| (*k, c.peak - start.get(k).copied().unwrap_or(0).min(c.peak)))
            .filter(|(_, n)| *n > 0)
            .collect()
    })
    .unwrap_or_default();
    (r, peaks)
}

/// Makes sure that `n` buffers of each size class `class → n` can be out at once without an
/// allocation: tops the spares up to `n` (counting those out now) and lets the class keep that
/// many. For work whose overlap in time varies (pipeline stages), with `n` its worst case.
pub fn reserve(counts: &BTreeMap<usize, usize>) {
    with_pool(|p| {
        for (&class, &n) in counts {
            let c = p.entry(class).or_default();
            c.keep = c.keep.max(n);
            let have = c.spares.len() + c.out;
            if have < n {
                c.spares.reserve_exact(c.keep() - c.spares.len());
                for _ in have..n {
                    c.spares.push(Vec::with_capacity(class));
                }
            }
        }
    });
}

/// A pooled buffer that returns itself to the pool when dropped.
#[derive(Debug)]
pub struct Buf(pub Vec<f32>);

impl Buf {
    /// `len` values, contents unspecified.
    pub fn take(len: usize) -> Self {
        Self(take(len))
    }
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        Self(zeros(len))
    }
}

/// An empty buffer (nothing taken from the pool).
impl Default for Buf {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl std::ops::Deref for Buf {
    type Target = Vec<f32>;
    fn deref(&self) -> &Vec<f32> {
        &self.0
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut Vec<f32> {
        &mut self.0
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

impl Clone for Buf {
    fn clone(&self) -> Self {
        let mut v = take(self.0.len());
        v.copy_from_slice(&self.0);
        Self(v)
    }
}

/// Frees every spare buffer and forgets reservations (buffers out stay counted).
pub fn clear() {
    with_pool(|p| {
        for c in p.values_mut() {
            c.spares = Vec::new();
            c.keep = 0;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held by the tests that rely on what the (shared) pool holds between their calls:
    /// one of them clears it.
    static SPARES: Mutex<()> = Mutex::new(());

    #[test]
    fn classes_are_tight_and_monotone() {
        let mut last = 0;
        for len in 1..100_000 {
            let c = class_of(len);
            assert!(c >= len && c >= last, "class_of({len}) = {c}");
            assert!(
                len <= 16 || (c - len) * 8 <= len,
                "class_of({len}) = {c} wastes > 12.5%"
            );
            assert_eq!(class_of(c), c, "a class is its own class");
            let b = class_below(len);
            assert!(b <= len && class_of(b) == b, "class_below({len}) = {b}");
            assert!(
                class_of(len + 1) > b || len <= 16,
                "class_below({len}) = {b} is not the largest"
            );
            last = c;
        }
    }

    /// Among spares of the same length, a request takes the one given back last, the most
    /// likely to be still in cache (a length no other test asks for: the pool is shared).
    #[test]
    fn the_spare_given_back_last_is_taken_first() {
        let _held = SPARES.lock();
        let len = 987_653;
        let (a, b) = (take(len), take(len));
        let (first, last) = (a.as_ptr(), b.as_ptr());
        give(a);
        give(b);
        let (c, d) = (take(len), take(len));
        assert_eq!((c.as_ptr(), d.as_ptr()), (last, first));
        give(c);
        give(d);
    }

    #[test]
    fn a_request_takes_only_its_own_class() {
        let _held = SPARES.lock();
        clear();
        give(Vec::with_capacity(class_of(4000)));
        // 1000 values fit in it, but belong to another class: a fresh buffer.
        let small = take(1000);
        assert_eq!(small.capacity(), class_of(1000));
        let same = take(3999);
        assert_eq!(same.capacity(), class_of(4000));
        clear();
    }
}
