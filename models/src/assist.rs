//! Work that an idle thread may take from a busy one: the chunks of one large product, or
//! the pieces of one optimiser update.
//!
//! The pipeline's workers (`stdl::stdl::Pipeline`, in the root crate) each run one stage at
//! a time. When one stage costs more per step than the others (`nmnist`'s second subnetwork
//! at batch 1), a worker waits for it with nothing to do. A [`Board`] lets that worker take
//! part of the busy stage's work: the busy thread posts work cut into chunks ([`split`]),
//! takes chunks itself, and the idle thread, spinning on the board ([`Board::help`]), takes
//! whatever chunks are left. Which thread computes a chunk changes no value (each chunk
//! writes its own part with the same arithmetic), so results are the same bit for bit
//! whoever takes them, and with nobody to help, the busy thread takes every chunk itself at
//! the cost of a few atomic operations.
//!
//! Work is cut only while some thread spins on the board ([`Board::spin`]): cutting a
//! product costs a little (the shared operand is packed once per chunk), which pays only when
//! another core takes part. Idle threads spin only once a layer has asked for help
//! ([`want_help`]): the convolutions at batch 1, whose few products are all their step has to
//! share. At batch 16, cutting every sample's products and keeping a core spinning for them
//! measured no faster (`stdl bench train --pipeline`), and a spinning core is one the threads
//! that feed the workers cannot have.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};

/// Where threads post work for each other (one per pipeline). Aligned to its own cache
/// lines: the spinning threads read it all the time, and it should share no line with data
/// that the working thread writes.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Board {
    /// The posted job, or null.
    job: AtomicPtr<Job>,
    /// Threads spinning on the board, ready to help.
    spinners: AtomicUsize,
    /// Threads looking at the posted job: its poster waits for none before it frees the job.
    visitors: AtomicUsize,
    /// A thread asked for help ([`want_help`]): idle threads should spin on the board. Until
    /// then they need not, and do not take a core from the threads that feed them.
    wanted: AtomicBool,
}

/// A posted job: `chunks` calls of `call(data, i)`, each taken once, by whoever claims it.
struct Job {
    call: unsafe fn(*const (), usize),
    data: *const (),
    chunks: usize,
    /// The next chunk to claim.
    next: AtomicUsize,
    /// The first chunk's panic, raised again by the poster once every chunk is done.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Job {
    /// Claims and runs chunks until none is left; whether any ran.
    fn take_chunks(&self) -> bool {
        let mut ran = false;
        loop {
            let i = self.next.fetch_add(1, SeqCst);
            if i >= self.chunks {
                return ran;
            }
            // SAFETY: `data` points at the poster's closure, alive until every thread that
            // could claim a chunk has finished (the poster waits for no visitor on the
            // board, and runs its own chunks itself), and `call` is the closure's own
            // trampoline.
            let result = catch_unwind(AssertUnwindSafe(|| unsafe { (self.call)(self.data, i) }));
            if let Err(payload) = result {
                let mut first = self.panic.lock().unwrap_or_else(PoisonError::into_inner);
                first.get_or_insert(payload);
            }
            ran = true;
        }
    }
}

thread_local! {
    /// The board this thread posts to, when it has one.
    static BOARD: RefCell<Option<Arc<Board>>> = const { RefCell::new(None) };
}

impl Board {
    /// A board with no job and nobody on it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes this board the one the calling thread posts its products to (until
    /// [`Board::leave`]).
    pub fn join(self: &Arc<Self>) {
        BOARD.with(|b| *b.borrow_mut() = Some(Arc::clone(self)));
    }

    /// The calling thread posts to no board any more: it computes everything itself.
    pub fn leave() {
        BOARD.with(|b| *b.borrow_mut() = None);
    }

    /// Counts the calling thread as ready to help while `f` runs (in which it should call
    /// [`Board::help`] until it has something else to do).
    pub fn spin<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, SeqCst);
            }
        }
        self.spinners.fetch_add(1, SeqCst);
        let _leave = Leave(&self.spinners);
        f()
    }

    /// Whether a thread posting to this board ever asked for help ([`want_help`]): only then
    /// is spinning on it worth a core.
    pub fn wanted(&self) -> bool {
        self.wanted.load(Relaxed)
    }

    /// Takes chunks of the posted job, if any are left; whether it ran any.
    pub fn help(&self) -> bool {
        // Reading alone while nothing is posted: a spinning thread writes nothing.
        if self.job.load(SeqCst).is_null() {
            return false;
        }
        self.visitors.fetch_add(1, SeqCst);
        let job = self.job.load(SeqCst);
        // SAFETY: the poster frees its job only after taking it off the board and seeing no
        // visitor; this thread counted itself a visitor before it read the pointer.
        let ran = !job.is_null() && unsafe { &*job }.take_chunks();
        self.visitors.fetch_sub(1, SeqCst);
        ran
    }

    /// Runs `f(0..chunks)`, offering the chunks to the threads spinning on this board.
    fn run(&self, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
        unsafe fn trampoline(data: *const (), i: usize) {
            // SAFETY: `data` is the `&&dyn Fn` made below, alive while the job is.
            let f = unsafe { &*data.cast::<&(dyn Fn(usize) + Sync)>() };
            f(i);
        }
        let job = Job {
            call: trampoline,
            data: ptr::from_ref(&f).cast(),
            chunks,
            next: AtomicUsize::new(0),
            panic: Mutex::new(None),
        };
        let posted = self
            .job
            .compare_exchange(ptr::null_mut(), ptr::from_ref(&job).cast_mut(), SeqCst, SeqCst)
            .is_ok();
        // A chunk's panic, on any thread, is raised below, once the job is off the board and
        // every chunk done: until then, helpers may still read the closure.
        job.take_chunks();
        if posted {
            // Off the board: a helper that had claimed a chunk is still a visitor until its
            // chunks are done, and one that comes later finds nothing.
            self.job.store(ptr::null_mut(), SeqCst);
            while self.visitors.load(SeqCst) != 0 {
                std::hint::spin_loop();
            }
        }
        let panic = job.panic.into_inner().unwrap_or_else(PoisonError::into_inner);
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }
}

/// Runs `f(i)` for every `i` in `0..chunks`, each once, in any order and on any thread:
/// the calling thread takes them, and threads spinning on its [`Board`] may take some.
/// `f` must give the same results whichever thread runs it. Without a board, or with
/// nobody spinning on it, the calling thread runs them all, in order.
pub fn split(chunks: usize, f: impl Fn(usize) + Sync) {
    let board = BOARD.with(|b| b.borrow().clone());
    match board {
        Some(board) if chunks > 1 => board.run(chunks, &f),
        _ => (0..chunks).for_each(f),
    }
}

/// Runs `f` on every piece `pieces` yields, each once, in any order and on any thread, as
/// [`split`] does, and whether `f` returned true for all: for work cut into `parts` pieces
/// that each own their part of the data (slices from `chunks_mut`), which `f` must treat
/// alike whichever thread runs it. With one part, the pieces run on the calling thread, in
/// order, without allocating.
///
/// # Panics
/// When `f` panics, on whichever thread ran it (raised here once every piece is done).
pub fn all_of<T: Send>(parts: usize, pieces: impl Iterator<Item = T>, f: impl Fn(T) -> bool + Sync) -> bool {
    if parts <= 1 {
        return pieces.fold(true, |all, p| f(p) & all);
    }
    /// The pieces' start, shared by the chunks, each taking only its own piece.
    struct Items<T>(*mut (Option<T>, bool));
    // SAFETY: each index is claimed once ([`split`]), so no two threads reach one piece; the
    // pieces are `Send`, so a helper may use one.
    unsafe impl<T: Send> Sync for Items<T> {}
    let mut items: Vec<(Option<T>, bool)> = pieces.map(|p| (Some(p), true)).collect();
    let n = items.len();
    let start = Items(items.as_mut_ptr());
    split(n, |i| {
        let start = &start;
        // SAFETY: `i < n`, and piece `i` is borrowed by this chunk alone (above).
        let (piece, ok) = unsafe { &mut *start.0.add(i) };
        *ok = f(piece.take().expect("each piece is taken once"));
    });
    items.iter().all(|(_, ok)| *ok)
}

/// How many threads could take part in work posted now: the calling thread and those
/// spinning on its board.
pub fn helpers() -> usize {
    BOARD.with(|b| 1 + b.borrow().as_ref().map_or(0, |b| b.spinners.load(SeqCst)))
}

/// Marks the calling thread's board (if it has one) [`Board::wanted`]: from now on, idle
/// threads spin on it, and the products this thread computes are cut for them.
pub fn want_help() {
    BOARD.with(|b| {
        if let Some(b) = b.borrow().as_ref() {
            if !b.wanted.load(Relaxed) {
                b.wanted.store(true, Relaxed);
            }
        }
    });
}

/// Runs `f` on a board of its own, with the calling thread counted `parts - 1` times as
/// spinning on it: the work `f` posts is cut for `parts` threads, and the calling thread
/// computes every piece (for tests: cut work against whole).
#[cfg(test)]
pub(crate) fn as_if_helped(parts: usize, f: impl FnOnce()) {
    fn spinning(board: &Board, depth: usize, f: Box<dyn FnOnce() + '_>) {
        if depth == 0 {
            f()
        } else {
            board.spin(|| spinning(board, depth - 1, f))
        }
    }
    let board = Arc::new(Board::new());
    board.join();
    spinning(&board, parts.saturating_sub(1), Box::new(f));
    Board::leave();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::time::{Duration, Instant};

    /// A thread spinning on a new board, which the calling thread joins, until `stop`.
    fn spinning_helper() -> (Arc<Board>, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
        let board = Arc::new(Board::new());
        let stop = Arc::new(AtomicBool::new(false));
        let helper = {
            let (board, stop) = (Arc::clone(&board), Arc::clone(&stop));
            std::thread::spawn(move || {
                board.spin(|| {
                    while !stop.load(SeqCst) {
                        board.help();
                        std::hint::spin_loop();
                    }
                })
            })
        };
        board.join();
        let deadline = Instant::now() + Duration::from_secs(30);
        while helpers() < 2 {
            assert!(Instant::now() < deadline, "the helper never spun");
        }
        (board, stop, helper)
    }

    /// A helper spinning on the board takes chunks: every chunk runs exactly once, and some
    /// on the helper's thread.
    #[test]
    fn a_spinning_helper_takes_chunks_and_each_runs_once() {
        let (board, stop, helper) = spinning_helper();
        let me = std::thread::current().id();
        let mut helped = 0;
        for _ in 0..50 {
            let runs: Vec<AtomicU64> = (0..8).map(|_| AtomicU64::new(0)).collect();
            let elsewhere = AtomicUsize::new(0);
            split(8, |i| {
                // Long enough for the helper to claim a chunk while this thread works.
                std::thread::sleep(Duration::from_micros(200));
                runs[i].fetch_add(1, SeqCst);
                if std::thread::current().id() != me {
                    elsewhere.fetch_add(1, SeqCst);
                }
            });
            assert!(runs.iter().all(|r| r.load(SeqCst) == 1));
            helped += elsewhere.load(SeqCst);
        }
        stop.store(true, SeqCst);
        helper.join().unwrap();
        Board::leave();
        assert!(helped > 0, "the helper took no chunk in 50 products");
        assert_eq!(board.spinners.load(SeqCst), 0);
        assert!(board.job.load(SeqCst).is_null());
    }

    /// A chunk that panics on a helper makes the poster panic, after every chunk is done.
    #[test]
    fn a_panic_in_a_helped_chunk_reaches_the_poster() {
        let (_board, stop, helper) = spinning_helper();
        let me = std::thread::current().id();
        let done = AtomicUsize::new(0);
        let result = catch_unwind(AssertUnwindSafe(|| {
            split(64, |_| {
                std::thread::sleep(Duration::from_micros(100));
                done.fetch_add(1, SeqCst);
                assert_eq!(std::thread::current().id(), me, "a chunk on the helper");
            })
        }));
        stop.store(true, SeqCst);
        helper.join().unwrap();
        Board::leave();
        let payload = result.expect_err("the helper's chunk panicked");
        let message = payload.downcast_ref::<String>().map_or("", String::as_str);
        assert!(message.contains("a chunk on the helper"), "{message}");
        assert_eq!(done.load(SeqCst), 64);
    }
}
