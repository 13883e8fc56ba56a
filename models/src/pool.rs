//! A pool of `f32` buffers, keyed by length.
//!
//! A spiking network allocates the same few buffer sizes at every time step (layer outputs,
//! gradients, im2col workspaces). Served from the heap, their churn lets the allocator's
//! footprint drift upwards over a long stream. Served from this pool, every size is
//! allocated once and reused, so memory is flat in time after the first step, and the
//! page faults of fresh large allocations disappear. Each size keeps at most
//! [`MAX_PER_SIZE`] spare buffers.

use std::collections::HashMap;
use std::sync::Mutex;

/// Spare buffers kept per length.
pub const MAX_PER_SIZE: usize = 8;

static POOL: Mutex<Option<HashMap<usize, Vec<Vec<f32>>>>> = Mutex::new(None);

/// A buffer of `len` values with unspecified contents (a reused buffer keeps old values).
pub fn take(len: usize) -> Vec<f32> {
    if len == 0 {
        return Vec::new();
    }
    let reused = POOL.lock().ok().and_then(|mut g| {
        g.get_or_insert_with(HashMap::new)
            .get_mut(&len)
            .and_then(Vec::pop)
    });
    reused.unwrap_or_else(|| vec![0.0; len])
}

/// A buffer of `len` zeros.
pub fn zeros(len: usize) -> Vec<f32> {
    let mut v = take(len);
    v.iter_mut().for_each(|x| *x = 0.0);
    v
}

/// Returns a buffer for reuse.
pub fn give(v: Vec<f32>) {
    if v.is_empty() || v.len() != v.capacity() {
        return;
    }
    if let Ok(mut g) = POOL.lock() {
        let spares = g.get_or_insert_with(HashMap::new).entry(v.len()).or_default();
        if spares.len() < MAX_PER_SIZE {
            spares.push(v);
        }
    }
}

/// Bytes held as spares (for tests and diagnostics).
pub fn spare_bytes() -> usize {
    POOL.lock()
        .ok()
        .and_then(|g| {
            g.as_ref()
                .map(|m| m.iter().map(|(len, v)| len * v.len() * 4).sum())
        })
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
        *g = None;
    }
}
