//! A pool of `f32` buffers.
//!
//! A spiking network allocates the same few buffer sizes at every time step (layer outputs,
//! gradients, im2col workspaces). Served from the heap, their churn lets the allocator's
//! footprint drift upwards over a long stream. Served from this pool, buffers are allocated
//! during the first steps and reused after, so memory is flat in time, and the page faults of
//! fresh large allocations disappear. A request takes the smallest spare whose capacity is
//! between its length and a few times that (best fit, [`set_fit`]), so subnetworks run one
//! after another share buffers of similar sizes; each capacity keeps at most
//! [`MAX_PER_SIZE`] spares.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Spare buffers kept per capacity.
pub const MAX_PER_SIZE: usize = 4;

/// A request may take a spare of up to this many times its length (see [`set_fit`]).
static FIT: AtomicUsize = AtomicUsize::new(2);

/// Sets how much larger than a request a reused spare may be (at least 1). Short-lived
/// buffers (STDL: one stage's step at a time) gain from a wide fit: stages whose sizes
/// differ by 2–4× share spares instead of each keeping its own. Long-lived ones (BPTT keeps
/// every step's activations) lose from it: a small activation would pin a large buffer.
pub fn set_fit(factor: usize) {
    FIT.store(factor.max(1), Ordering::Relaxed);
}

static POOL: Mutex<BTreeMap<usize, Vec<Vec<f32>>>> = Mutex::new(BTreeMap::new());

/// A buffer of `len` values with unspecified contents (a reused buffer keeps old values).
pub fn take(len: usize) -> Vec<f32> {
    if len == 0 {
        return Vec::new();
    }
    let reused = POOL.lock().ok().and_then(|mut g| {
        let cap = g
            .range(len..=len.saturating_mul(FIT.load(Ordering::Relaxed)))
            .find(|(_, v)| !v.is_empty())
            .map(|(c, _)| *c)?;
        g.get_mut(&cap).and_then(Vec::pop)
    });
    match reused {
        Some(mut v) => {
            if v.len() >= len {
                v.truncate(len);
            } else {
                v.resize(len, 0.0); // within capacity: no reallocation
            }
            v
        }
        None => vec![0.0; len],
    }
}

/// A buffer of `len` zeros.
pub fn zeros(len: usize) -> Vec<f32> {
    let mut v = take(len);
    v.iter_mut().for_each(|x| *x = 0.0);
    v
}

/// Returns a buffer for reuse.
pub fn give(v: Vec<f32>) {
    if v.capacity() == 0 {
        return;
    }
    if let Ok(mut g) = POOL.lock() {
        let spares = g.entry(v.capacity()).or_default();
        if spares.len() < MAX_PER_SIZE {
            spares.push(v);
        }
    }
}

/// `(capacity, spares)` per capacity held (diagnostics).
pub fn histogram() -> Vec<(usize, usize)> {
    POOL.lock()
        .map(|g| {
            g.iter()
                .map(|(c, v)| (*c, v.len()))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default()
}

/// Bytes held as spares (for tests and diagnostics).
pub fn spare_bytes() -> usize {
    POOL.lock()
        .map(|g| g.iter().map(|(cap, v)| cap * v.len() * 4).sum())
        .unwrap_or(0)
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

/// Frees every spare buffer.
pub fn clear() {
    if let Ok(mut g) = POOL.lock() {
        g.clear();
    }
}
