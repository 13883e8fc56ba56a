//! Per-thread scratch space for the layers' workspaces (im2col columns, scatter
//! accumulators, transposed gradient blocks): one buffer per thread, as large as the largest
//! workspace that thread was asked for, kept for the thread's life.
//!
//! Drawn from the shared buffer pool instead, how many workspaces of a size existed depended
//! on how often two worker threads happened to need one at the same moment, which could first
//! happen thousands of steps into a stream. A thread's own scratch does not depend on the
//! others, and [`reserve`] (run on every worker by the warm-up) sizes it before the first step.

use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` values of this thread's scratch (contents unspecified). Should the
/// scratch already be in use on this thread, `f` gets a pooled buffer instead.
pub fn with<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0.0);
            }
            f(&mut v[..len])
        }
        Err(_) => {
            let mut b = crate::pool::Buf::take(len);
            f(&mut b)
        }
    })
}

/// Grows this thread's scratch to at least `len` values now.
pub fn reserve(len: usize) {
    SCRATCH.with(|s| {
        if let Ok(mut v) = s.try_borrow_mut() {
            if v.len() < len {
                let more = len - v.len();
                v.reserve_exact(more);
                v.resize(len, 0.0);
            }
        }
    });
}

/// Frees this thread's scratch (tests that measure a step's memory from nothing).
pub fn clear() {
    SCRATCH.with(|s| {
        if let Ok(mut v) = s.try_borrow_mut() {
            *v = Vec::new();
        }
    });
}
