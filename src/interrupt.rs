//! Ctrl-C (SIGINT) and SIGTERM as a request to stop cleanly: the stream finishes the step in
//! flight, writes its final checkpoint and summary, and exits. A second signal is not special:
//! the first one already asked.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
mod sys {
    // The C library's `signal(2)`; std already links it on every Unix.
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;

    extern "C" fn on_signal(_: i32) {
        // Only an atomic store: async-signal-safe.
        super::STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn install() {
        // SAFETY: `on_signal` is an `extern "C" fn(i32)` that only stores to an atomic, which
        // is async-signal-safe; `signal` takes its address as the handler.
        unsafe {
            signal(SIGINT, on_signal as *const () as usize);
            signal(SIGTERM, on_signal as *const () as usize);
        }
    }
}

/// Installs the handlers (once per process is enough; repeated calls are harmless).
pub fn install() {
    #[cfg(unix)]
    sys::install();
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// A stop request for one run, on top of the process-wide one: a library caller (the Python
/// package's `stdl.stream`, a test) stops its own stream without a signal. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct Stop(std::sync::Arc<AtomicBool>);

impl Stop {
    /// Asks the run holding this token to stop, as Ctrl-C would.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether this token or a signal asked to stop.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst) || requested()
    }
}
