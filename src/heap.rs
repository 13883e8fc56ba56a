//! A counting global allocator: live and peak heap bytes, for the steady-state checks (a
//! learned step must allocate nothing that outlives it) and the memory-model test.
//!
//! The `stdl` binary installs it; a test binary that wants the counts installs it too:
//!
//! ```ignore
//! #[global_allocator]
//! static A: stdl::heap::Counting = stdl::heap::Counting;
//! ```
//!
//! Counting costs two relaxed atomic operations per allocation and one per release, against
//! the hundreds of nanoseconds an allocation of a training step's size costs anyway.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting live bytes and their peak.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counting;

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded to `System` with the same layout; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
            INSTALLED.store(true, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
            INSTALLED.store(true, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new_size) };
        if !q.is_null() {
            if new_size >= l.size() {
                grew(new_size - l.size());
            } else {
                LIVE.fetch_sub(l.size() - new_size, Relaxed);
            }
        }
        q
    }
}

/// Bytes allocated and not yet released, or `None` when [`Counting`] is not this program's
/// global allocator.
pub fn live_bytes() -> Option<u64> {
    INSTALLED.load(Relaxed).then(|| LIVE.load(Relaxed) as u64)
}

/// The highest [`live_bytes`] since the start or the last [`reset_peak`].
pub fn peak_bytes() -> Option<u64> {
    INSTALLED.load(Relaxed).then(|| PEAK.load(Relaxed) as u64)
}

/// Starts a new peak from the bytes live now; returns them.
pub fn reset_peak() -> u64 {
    let now = LIVE.load(Relaxed);
    PEAK.store(now, Relaxed);
    now as u64
}

/// A size line of `/proc/self/status` in bytes (`key` as written there, e.g. `"VmHWM:"` for
/// peak resident memory, `"VmRSS:"` for resident memory now), or 0 where unknown (another
/// OS, no such line).
pub fn proc_status_bytes(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}

/// Peak resident set size of this process (`VmHWM`), or 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    proc_status_bytes("VmHWM:")
}
