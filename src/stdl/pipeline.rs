//! Subnetworks as pipeline stages (STDL.md §3): stage `k + 1` at step `t` needs only the
//! spikes stage `k` produced at `t` and its own state, so consecutive steps overlap: while
//! one stage works on step `t`, the one before it works on step `t + 1`. Each stage has a
//! bounded queue of the steps waiting for it; worker threads (one per core by default, never
//! more than stages) take a ready stage (the one they ran last, if it is ready: its state is
//! in their core's caches), run one step of it and queue its output for the next. No stage
//! is tied to a thread, so `dvs-gesture`'s five stages of unequal cost keep two cores busy
//! without the operating system switching between five threads (and without a static
//! grouping, which the stages' costs do not divide evenly). A stage runs on
//! one worker at a time and takes its steps in order, each calling [`Stage::advance`],
//! exactly what [`crate::stdl::StdlModel::step`] calls in sequence, so the results are
//! identical bit for bit (`tests/all/runtime.rs` checks it). A full queue makes the caller
//! wait: backpressure, nothing lost.
//!
//! A worker with no stage ready, while another runs a stage that has asked for help (a
//! convolution at batch 1), spins on the pipeline's [`Board`] and takes pieces of that stage's
//! products and optimiser updates ([`stdl_models::assist`]): the same numbers whoever
//! computes them. Whether that pays depends on the machine and on what else runs on it, so
//! a policy (`HelpPolicy`, below) measures it as the pipeline runs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use stdl_models::assist::Board;
use stdl_models::Tensor;

use crate::stdl::{SpikeCount, Stage, StepContext};

/// Steps queued before each pipeline stage, in `stdl stream` and in `stdl train --pipeline`.
pub const PIPELINE_QUEUE: usize = 4;

/// A stage's saved state: parameters and optimiser state, named as in checkpoints.
pub type StageState = (BTreeMap<String, Vec<f32>>, BTreeMap<String, Vec<f32>>);

#[derive(Debug)]
enum Msg {
    Step {
        x: Tensor,
        labels: Option<Arc<Vec<usize>>>,
        ctx: StepContext,
        /// An update of a stage before left a weight that is not finite.
        diverged: bool,
    },
    Reset,
    /// Every stage sends its state, after the steps queued before this message.
    Snapshot(Sender<(usize, StageState)>),
    /// Every stage sends its LIF layers' spike counts, after the steps queued before.
    Spikes(Sender<Vec<SpikeCount>>),
}

/// What the last stage produces for one time step.
#[derive(Debug)]
pub struct StageOutput {
    /// Readout logits.
    pub logits: Tensor,
    /// The readout's loss, when the step was labelled.
    pub loss: Option<f32>,
    /// An update of some stage, at this step or before, left a weight that is not finite
    /// (training diverged; the last stage's own divergence also reads as a NaN loss).
    pub diverged: bool,
}

/// Running pipeline stages.
#[derive(Debug)]
pub struct Pipeline {
    shared: Arc<Shared>,
    /// The workers: one-thread pools, each running [`work`] until the pipeline ends.
    workers: Vec<rayon::ThreadPool>,
}

/// What the workers and the caller share: one lock over the queues, the stages and the
/// outputs, held only to move things in and out of them.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Idle workers wait here for a stage to become ready.
    work: Condvar,
    /// The caller waits here for room in the first stage's queue.
    room: Condvar,
    /// The caller waits here for an output.
    done: Condvar,
    /// Stages.
    stages: usize,
    /// Steps each stage's queue holds.
    capacity: usize,
    /// Outputs waiting for the caller, at most: every step the stages and their queues can
    /// hold, so the last stage never waits on an output nobody takes, and a message that
    /// follows the steps through (a reset, a snapshot, spike counts) always gets through
    /// while the caller waits for its answer instead of taking outputs.
    out_capacity: usize,
    /// Where a worker running a stage offers chunks of its products to idle workers
    /// ([`stdl_models::assist`]).
    board: Arc<Board>,
    /// The machine's cores (rayon's threads where the pipeline started): running stages and
    /// spinning workers together never take more.
    cores: usize,
    /// Counts the changes that can make a stage ready (a step queued, a stage put back, an
    /// output taken, the end): a worker spinning on the board watches it instead of waiting
    /// on [`Shared::work`].
    epoch: AtomicU64,
}

#[derive(Debug)]
struct State {
    /// Queue `k`: stage `k`'s input, in order, each with the time it was queued.
    queues: Vec<VecDeque<(Msg, Instant)>>,
    /// The stages; `None` while a worker runs one.
    stages: Vec<Option<Stage>>,
    /// The last stage's outputs, oldest first.
    outputs: VecDeque<StageOutput>,
    /// No more input: the workers end once every queue is empty.
    closed: bool,
    /// A stage panicked on a worker: the other workers end, the caller stops waiting, and
    /// [`Pipeline::finish`] panics.
    failed: bool,
    /// Seconds workers spent waiting for a ready stage, all workers together.
    idle_s: f64,
    /// Seconds idle workers spent computing chunks of a running stage's work (helping it,
    /// [`stdl_models::assist`]), all workers together; not counted in `idle_s`.
    helped_s: f64,
    /// Workers still running [`work`].
    running: usize,
    /// Workers spinning on the board ([`help`]).
    spinning: usize,
}

impl State {
    /// The stage a free worker takes next: the first one that no worker is running, with a
    /// step queued and room for its output (upstream first: the stages after it then have
    /// steps queued to take whenever a worker comes free).
    fn ready(&self, cap: usize, out_cap: usize) -> Option<usize> {
        self.all_ready(cap, out_cap).next()
    }

    /// The stage a free worker that last ran stage `last` takes next ([`prefer`]).
    fn ready_for(&self, last: Option<usize>, cap: usize, out_cap: usize) -> Option<usize> {
        prefer(self.all_ready(cap, out_cap), last)
    }

    /// Every stage a free worker could take, first first.
    fn all_ready(&self, cap: usize, out_cap: usize) -> impl Iterator<Item = usize> + '_ {
        // Once closed, nobody takes outputs any more: they may grow.
        let room = move |k: usize| match self.queues.get(k + 1) {
            Some(q) => q.len() < cap,
            None => self.closed || self.outputs.len() < out_cap,
        };
        (0..self.stages.len())
            .filter(move |&k| self.stages[k].is_some() && !self.queues[k].is_empty() && room(k))
    }

    /// Every stage is at rest and every queue empty.
    fn drained(&self) -> bool {
        self.queues.iter().all(VecDeque::is_empty) && self.stages.iter().all(Option::is_some)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock (stages run outside it).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Something changed that can make a stage ready: a worker spinning on the board looks
    /// again (one waiting on [`Shared::work`] is woken as well, where it may take the step).
    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Marks the pipeline failed (a stage panicked) and wakes everyone waiting.
    fn fail(&self) {
        self.lock().failed = true;
        self.changed();
        self.work.notify_all();
        self.room.notify_all();
        self.done.notify_all();
    }
}

/// Worker threads kept between pipelines, each a one-thread rayon pool: the layers of the
/// stages a worker runs use it for their parallel loops, which then run in line instead of
/// being handed to shared threads and waited for, once per layer and step (the workers
/// themselves are the parallelism). Kept, because making one (a thread, and the GEMM
/// crate's packing buffers primed, [`stdl_models::gemm::prime_packing`]) cost about as much
/// as a whole sample of `stdl train --pipeline` at batch 1, which started a pipeline per
/// batch (`Model::train_batch`, which `stdl continual` calls per batch, still does).
static IDLE_WORKERS: Mutex<Vec<rayon::ThreadPool>> = Mutex::new(Vec::new());

/// An idle worker, or a new one.
fn take_worker() -> rayon::ThreadPool {
    let idle = IDLE_WORKERS.lock().unwrap_or_else(PoisonError::into_inner).pop();
    idle.unwrap_or_else(|| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "stdl-worker".into())
            .build()
            .expect("a pipeline worker's thread");
        // The memory its packing takes at every product is the thread's from the start.
        pool.install(stdl_models::gemm::prime_packing);
        pool
    })
}

impl Pipeline {
    /// Starts the stages on as many worker threads as the calling thread's rayon pool has
    /// (at most one per stage); each stage's queue holds at most `capacity` steps.
    pub fn start(stages: Vec<Stage>, capacity: usize) -> Self {
        Self::start_with(stages, capacity, None, false)
    }

    /// [`Pipeline::start`] for a long run (a stream): the waiting context of crossbeam, which
    /// the calling thread uses to wait for snapshots and spike counts, is made now, not the
    /// first time it waits there, which can be thousands of steps into a stream (a few
    /// hundred bytes, but then the heap is not constant). `workers` as in
    /// [`Pipeline::start_on`]; `None`: as many as [`Pipeline::start`] starts.
    pub fn start_primed(stages: Vec<Stage>, capacity: usize, workers: Option<usize>) -> Self {
        Self::start_with(stages, capacity, workers, true)
    }

    /// [`Pipeline::start`] on `workers` worker threads (at least one, at most one per stage).
    pub fn start_on(stages: Vec<Stage>, capacity: usize, workers: usize) -> Self {
        Self::start_with(stages, capacity, Some(workers), false)
    }

    fn start_with(stages: Vec<Stage>, capacity: usize, workers: Option<usize>, primed: bool) -> Self {
        let n = stages.len();
        assert!(n > 0, "a pipeline needs a stage");
        let cap = capacity.max(1);
        let workers = workers.unwrap_or_else(rayon::current_num_threads).clamp(1, n);
        if primed {
            prime_context();
        }
        let workspace = stages.iter().map(Stage::workspace_len).max().unwrap_or(0);
        let out_capacity = n * (cap + 1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                // Room for every queue and the outputs now: nothing grows while it runs.
                queues: (0..n).map(|_| VecDeque::with_capacity(cap)).collect(),
                stages: stages.into_iter().map(Some).collect(),
                outputs: VecDeque::with_capacity(out_capacity),
                closed: false,
                failed: false,
                idle_s: 0.0,
                helped_s: 0.0,
                running: workers,
                spinning: 0,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            done: Condvar::new(),
            stages: n,
            capacity: cap,
            out_capacity,
            board: Arc::new(Board::new()),
            cores: rayon::current_num_threads().max(1),
            epoch: AtomicU64::new(0),
        });
        let workers: Vec<rayon::ThreadPool> = (0..workers).map(|_| take_worker()).collect();
        for pool in &workers {
            let shared = Arc::clone(&shared);
            pool.spawn(move || {
                stdl_models::workspace::reserve(workspace);
                shared.board.join();
                let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&shared)));
                Board::leave();
                if ended.is_err() {
                    shared.fail();
                }
                shared.lock().running -= 1;
                shared.done.notify_all();
            });
        }
        Self { shared, workers }
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// How many steps may be sent and not yet received for the stages to stay busy: one
    /// queue's worth per stage (fewer than the outputs hold, so no stage waits on its output
    /// however slowly they are received).
    pub fn in_flight(&self) -> usize {
        self.shared.stages * self.shared.capacity
    }

    /// Feeds one time step (blocks while the first stage's queue is full).
    pub fn send(&self, x: Tensor, labels: Option<Vec<usize>>) {
        self.send_in(StepContext::Live, x, labels);
    }

    /// [`Pipeline::send`] for a step of the sequence `ctx` names (a replayed segment between
    /// live steps: [`StepContext`]).
    pub fn send_in(&self, ctx: StepContext, x: Tensor, labels: Option<Vec<usize>>) {
        let msg = Msg::Step {
            x,
            labels: labels.map(Arc::new),
            ctx,
            diverged: false,
        };
        let _ = self.put(msg, true);
    }

    /// Feeds one time step if the first stage's queue has room; gives the input back if not.
    pub fn try_send(&self, x: Tensor, labels: Option<Vec<usize>>) -> Result<(), Tensor> {
        self.try_send_in(StepContext::Live, x, labels)
    }

    /// [`Pipeline::try_send`] for a step of the sequence `ctx` names.
    pub fn try_send_in(&self, ctx: StepContext, x: Tensor, labels: Option<Vec<usize>>) -> Result<(), Tensor> {
        let msg = Msg::Step {
            x,
            labels: labels.map(Arc::new),
            ctx,
            diverged: false,
        };
        match self.put(msg, false) {
            Err(Msg::Step { x, .. }) => Err(x),
            _ => Ok(()),
        }
    }

    /// Queues `msg` for the first stage, waiting for room when `wait`, else giving it back
    /// when there is none. A failed pipeline takes everything (and drops it).
    fn put(&self, msg: Msg, wait: bool) -> Result<(), Msg> {
        let sh = &*self.shared;
        let mut st = sh.lock();
        while !st.failed && st.queues[0].len() >= sh.capacity {
            if !wait {
                return Err(msg);
            }
            st = sh.room.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        if !st.failed {
            st.queues[0].push_back((msg, Instant::now()));
            drop(st);
            sh.changed();
            sh.work.notify_one();
        }
        Ok(())
    }

    /// Clears every stage's membranes (a new sample), in order with the steps around it.
    pub fn reset(&self) {
        let _ = self.put(Msg::Reset, true);
    }

    /// [`Pipeline::reset`] if the first stage's queue has room; `false` if not.
    pub fn try_reset(&self) -> bool {
        self.put(Msg::Reset, false).is_ok()
    }

    /// Every stage's state after the steps already sent (blocks until all have answered),
    /// merged: parameters and optimiser state as [`crate::stdl::StdlModel`] names them.
    pub fn snapshot(&self) -> Option<StageState> {
        let (reply, answers) = bounded(self.shared.stages);
        let _ = self.put(Msg::Snapshot(reply), true);
        let (mut params, mut opt) = (BTreeMap::new(), BTreeMap::new());
        for _ in 0..self.shared.stages {
            let (_, (p, o)) = answers.recv().ok()?;
            params.extend(p);
            opt.extend(o);
        }
        Some((params, opt))
    }

    /// Every stage's spike counts after the steps already sent (blocks until all have
    /// answered), in stage order.
    pub fn spike_counts(&self) -> Option<Vec<SpikeCount>> {
        let (reply, answers) = bounded(self.shared.stages);
        let _ = self.put(Msg::Spikes(reply), true);
        let mut all = Vec::new();
        for _ in 0..self.shared.stages {
            all.extend(answers.recv().ok()?);
        }
        all.sort_by_key(|c| (c.stage, c.part != "body", c.layer));
        Some(all)
    }

    /// The next step's output (blocks until the last stage produces it); `None` when a
    /// stage failed.
    pub fn recv(&self) -> Option<StageOutput> {
        self.take(None).ok()
    }

    /// The next step's output, waiting at most `timeout` for it; `Disconnected` when a stage
    /// failed.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<StageOutput, RecvTimeoutError> {
        self.take(Some(Instant::now() + timeout))
    }

    /// The next step's output if one is ready.
    pub fn try_recv(&self) -> Option<StageOutput> {
        self.take(Some(Instant::now())).ok()
    }

    /// The oldest output, waiting for one until `deadline` (`None`: for as long as it takes).
    fn take(&self, deadline: Option<Instant>) -> Result<StageOutput, RecvTimeoutError> {
        let sh = &*self.shared;
        let mut st = sh.lock();
        loop {
            if let Some(out) = st.outputs.pop_front() {
                let more = st.ready(sh.capacity, sh.out_capacity).is_some();
                drop(st);
                // The last stage may have been held back by full outputs.
                if more {
                    sh.changed();
                    sh.work.notify_one();
                }
                return Ok(out);
            }
            if st.failed {
                return Err(RecvTimeoutError::Disconnected);
            }
            st = match deadline {
                None => sh.done.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    sh.done
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    /// Seconds the workers have waited for a ready stage so far, all workers together.
    pub fn idle_s(&self) -> f64 {
        self.shared.lock().idle_s
    }

    /// Seconds idle workers have spent so far computing chunks of a running stage's products
    /// (at batch 1: [`stdl_models::assist`]), all workers together; not in [`Self::idle_s`].
    pub fn helped_s(&self) -> f64 {
        self.shared.lock().helped_s
    }

    /// Stops the workers after the queued steps and returns the stages.
    ///
    /// # Panics
    /// When a stage panicked on a worker.
    pub fn finish(mut self) -> Vec<Stage> {
        self.close();
        let sh = &*self.shared;
        let mut st = sh.lock();
        while st.running > 0 {
            st = sh.done.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        IDLE_WORKERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(&mut self.workers);
        assert!(!st.failed, "a pipeline stage panicked");
        st.outputs.clear();
        std::mem::take(&mut st.stages)
            .into_iter()
            .map(|s| s.expect("every stage is back once the workers have ended"))
            .collect()
    }

    /// No more input: the workers end after the queued steps.
    fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.changed();
        self.shared.work.notify_all();
    }
}

impl Drop for Pipeline {
    /// Without [`Pipeline::finish`], the workers end after the queued steps (their outputs
    /// are dropped with the pipeline).
    fn drop(&mut self) {
        self.close();
    }
}

/// A worker: takes the ready stage ([`State::ready`]), runs one message through it outside
/// the lock, and puts the stage back with its output queued for the next stage (the last
/// stage's for the caller), until the pipeline is closed and drained, or failed.
fn work(sh: &Shared) {
    // The stage this worker ran last.
    let mut last = None;
    let mut st = sh.lock();
    loop {
        if st.failed {
            return;
        }
        let Some(k) = st.ready_for(last, sh.capacity, sh.out_capacity) else {
            if st.closed && st.drained() {
                // The other workers see the same once woken.
                sh.work.notify_all();
                return;
            }
            let idle = Instant::now();
            // Another worker is running a stage that has asked for help, and a core is free
            // for this one to spin on (with more workers than cores, a spinning worker would
            // take a core from a running stage).
            let busy = st.stages.iter().filter(|s| s.is_none()).count();
            let spin = sh.board.wanted() && HELPING.on() && busy > 0 && busy + st.spinning < sh.cores;
            let helped = if spin {
                // Help it until something changes, or for at most `SPIN`.
                let epoch = sh.epoch.load(Ordering::SeqCst);
                st.spinning += 1;
                drop(st);
                let (helped, spun_out) = help(sh, epoch);
                st = sh.lock();
                st.spinning -= 1;
                if spun_out && sh.epoch.load(Ordering::SeqCst) == epoch {
                    st = sh.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                }
                helped
            } else {
                st = sh.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                0.0
            };
            st.idle_s += (idle.elapsed().as_secs_f64() - helped).max(0.0);
            st.helped_s += helped;
            continue;
        };
        let (msg, queued) = st.queues[k].pop_front().expect("a ready stage has a step");
        let mut stage = st.stages[k].take().expect("a ready stage is at rest");
        last = Some(k);
        // The step taken may have made room for the stage before (or there was more to do).
        let more = st.ready(sh.capacity, sh.out_capacity).is_some();
        drop(st);
        if k == 0 {
            sh.room.notify_one();
        }
        if more {
            sh.work.notify_one();
        }
        stage.timing.queued_s += queued.elapsed().as_secs_f64();
        let next = run(&mut stage, k, msg, k + 1 == sh.stages);
        st = sh.lock();
        st.stages[k] = Some(stage);
        match next {
            Next::Queue(m) => st.queues[k + 1].push_back((m, Instant::now())),
            Next::Output(out) => {
                st.outputs.push_back(out);
                sh.done.notify_all();
                // Only steps where helping can happen tell the policy anything.
                if sh.board.wanted() {
                    HELPING.step_done(Instant::now());
                }
            }
            Next::Nothing => {}
        }
        // Another worker may take what this one leaves (it takes one stage itself).
        let more = st.all_ready(sh.capacity, sh.out_capacity).nth(1).is_some();
        sh.changed();
        if more {
            sh.work.notify_one();
        }
    }
}

/// Of the stages ready (first first), the one a worker that last ran stage `last` takes: that
/// one again if it is ready, else the first. A stage's parameters, optimiser state and
/// buffers are in the caches of the core that ran it last; a stage that moves to the other
/// worker at every step takes them along (`benches/workers.sh` measures `dvs-gesture`'s five
/// stages on two workers with and without this preference: docs/speed-log.md).
fn prefer(mut ready: impl Iterator<Item = usize>, last: Option<usize>) -> Option<usize> {
    let first = ready.next()?;
    if !stage_affinity() || Some(first) == last {
        return Some(first);
    }
    Some(ready.find(|&k| Some(k) == last).unwrap_or(first))
}

/// Whether a worker prefers the stage it ran last ([`prefer`]): unless the environment
/// variable `STDL_AFFINITY` says `off` (to measure without it, `benches/workers.sh`); read
/// once.
fn stage_affinity() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("STDL_AFFINITY").as_deref() != Ok("off"))
}

/// Where a message goes after a stage.
enum Next {
    /// To the next stage's queue.
    Queue(Msg),
    /// Out, to the caller (a step through the last stage).
    Output(StageOutput),
    /// Nowhere (the last stage answered a request, or cleared its state).
    Nothing,
}

/// One message through stage `k`: a step, a reset, or a request for the stage's state or
/// spike counts (answered, then passed on).
fn run(stage: &mut Stage, k: usize, msg: Msg, last: bool) -> Next {
    let next = match msg {
        Msg::Step {
            x,
            labels,
            ctx,
            diverged,
        } => {
            stage.set_context(ctx);
            let (h, logits, loss) = stage.advance(x, labels.as_deref().map(|v| v.as_slice()), last);
            let diverged = diverged || stage.opt.diverged;
            if last {
                // Everything the step brought is freed before its output is seen: a caller
                // that has drained the pipeline finds the heap as it was before the step.
                drop((h, labels));
                return Next::Output(StageOutput {
                    logits: logits.expect("last stage logits"),
                    loss,
                    diverged,
                });
            }
            Msg::Step {
                x: h,
                labels,
                ctx,
                diverged,
            }
        }
        Msg::Reset => {
            stage.reset();
            Msg::Reset
        }
        Msg::Spikes(reply) => {
            let _ = reply.send(stage.spike_counts(k));
            Msg::Spikes(reply)
        }
        Msg::Snapshot(reply) => {
            let (mut params, mut opt) = (BTreeMap::new(), BTreeMap::new());
            stage.save_params(k, &mut params);
            stage.save_optimizer(k, &mut opt);
            let _ = reply.send((k, (params, opt)));
            Msg::Snapshot(reply)
        }
    };
    if last {
        Next::Nothing
    } else {
        Next::Queue(next)
    }
}

/// Makes crossbeam's per-thread waiting context now (it is made the first time a thread
/// waits on a channel, and kept): not at some step far into a stream. A zero-capacity
/// channel waits at once, without spinning first, so this does not depend on timing.
fn prime_context() {
    let (_tx, rx) = bounded::<()>(0);
    let _ = rx.recv_timeout(Duration::from_millis(1));
}

/// Whether idle workers help, decided by measurement ([`HelpPolicy`]), for every pipeline
/// of the process (`stdl train --pipeline` starts one per epoch).
static HELPING: HelpPolicy = HelpPolicy::new();

/// The windows of a probe of [`HelpPolicy`]: helping or not, in the order A B B A A B B A,
/// which cancels a drift in step time that is linear over the probe (the first steps of a
/// process run slower, and so did the first steps a helper took part in).
const PROBE: [bool; 8] = [true, false, false, true, true, false, false, true];

/// Steps through the last stage in each window of a probe of [`HelpPolicy`].
const WINDOW_STEPS: u64 = 100;

/// Steps through the last stage before the first probe of [`HelpPolicy`], helping (which
/// paid wherever it was measured on a quiet machine).
const WARM_STEPS: u64 = 100;

/// Steps through the last stage between probes of [`HelpPolicy`], at first and after a
/// probe that changed the choice; each probe that confirms it doubles them, up to
/// [`KEEP_MAX`].
const KEEP_STEPS: u64 = 4000;

/// The most steps between probes of [`HelpPolicy`].
const KEEP_MAX: u64 = 64_000;

/// Whether idle workers help a running stage ([`help`]), chosen from what it does to the
/// wall time per step on this machine, now. Helping paid wherever this project measured it on
/// a quiet machine; it cost more than it saved with another process spinning on one of the
/// two cores (`benches/helping.sh`), and on virtual machines for minutes at a time
/// (docs/speed-log.md). So after [`WARM_STEPS`] steps out of the last stage of pipelines
/// that ask for help, the policy times windows of [`WINDOW_STEPS`] steps helping and not
/// ([`PROBE`]), keeps the way whose median window is the faster for [`KEEP_STEPS`] steps
/// (doubled, up to [`KEEP_MAX`], while the probes agree), then probes again. The choice
/// changes no number: only which thread computes a chunk.
#[derive(Debug)]
struct HelpPolicy {
    /// Whether idle workers spin on the board and help.
    on: AtomicBool,
    probe: Mutex<Probe>,
}

/// Whether idle workers help: the environment variable `STDL_HELP` says `always` or
/// `never` (to measure either way, `benches/helping.sh`); by default, or with any other
/// value, [`HelpPolicy`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HelpMode {
    Measure,
    Always,
    Never,
}

/// [`HelpMode`] from `STDL_HELP`, read once.
fn help_mode() -> HelpMode {
    static MODE: std::sync::OnceLock<HelpMode> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("STDL_HELP").as_deref() {
        Ok("always") => HelpMode::Always,
        Ok("never") => HelpMode::Never,
        _ => HelpMode::Measure,
    })
}

/// Where [`HelpPolicy`] stands.
#[derive(Debug)]
struct Probe {
    /// The window of [`PROBE`] being timed, or none while a choice is kept.
    window: Option<usize>,
    /// Steps the current choice is kept for.
    keep: u64,
    /// The last probe's choice (none before the first).
    chosen: Option<bool>,
    /// Steps since this window or keeping began.
    steps: u64,
    /// When its first step came out.
    first: Option<Instant>,
    /// Seconds of this probe's windows, in the order each way was timed: not helping,
    /// helping.
    secs: [[f64; PROBE.len() / 2]; 2],
}

impl HelpPolicy {
    const fn new() -> Self {
        Self {
            on: AtomicBool::new(true),
            probe: Mutex::new(Probe {
                window: None,
                keep: WARM_STEPS,
                chosen: None,
                steps: 0,
                first: None,
                secs: [[0.0; PROBE.len() / 2]; 2],
            }),
        }
    }

    fn on(&self) -> bool {
        match help_mode() {
            HelpMode::Measure => self.on.load(Ordering::Relaxed),
            HelpMode::Always => true,
            HelpMode::Never => false,
        }
    }

    /// A step came out of the last stage at `now`.
    fn step_done(&self, now: Instant) {
        if help_mode() != HelpMode::Measure {
            return;
        }
        let mut p = self.probe.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(on) = p.record(now) {
            self.on.store(on, Ordering::Relaxed);
        }
    }
}

impl Probe {
    /// Counts a step that came out at `now`; whether idle workers should help from now on,
    /// when that changes.
    fn record(&mut self, now: Instant) -> Option<bool> {
        let first = *self.first.get_or_insert(now);
        self.steps += 1;
        let limit = if self.window.is_some() {
            WINDOW_STEPS
        } else {
            self.keep
        };
        if self.steps < limit {
            return None;
        }
        (self.steps, self.first) = (0, None);
        let Some(w) = self.window else {
            // Probe again.
            self.window = Some(0);
            return Some(PROBE[0]);
        };
        // The how-manieth window of its way this one was.
        let nth = PROBE[..w].iter().filter(|&&h| h == PROBE[w]).count();
        self.secs[usize::from(PROBE[w])][nth] = (now - first).as_secs_f64();
        if let Some(&next) = PROBE.get(w + 1) {
            self.window = Some(w + 1);
            return Some(next);
        }
        // Keep the faster: longer while the probes agree.
        // Medians: one window that the machine held up (a 10 ms window can lose a few
        // milliseconds to another process) does not decide.
        let help = median(self.secs[1]) < median(self.secs[0]);
        self.keep = if self.chosen == Some(help) {
            (self.keep * 2).min(KEEP_MAX)
        } else {
            KEEP_STEPS
        };
        (self.window, self.chosen) = (None, Some(help));
        Some(help)
    }
}

/// The median of a probe's windows of one way.
fn median(mut secs: [f64; PROBE.len() / 2]) -> f64 {
    secs.sort_by(f64::total_cmp);
    let n = secs.len();
    (secs[(n - 1) / 2] + secs[n / 2]) / 2.0
}

/// How long an idle worker spins on the board before it waits on [`Shared::work`]: longer
/// than the steps of the presets' stages, whose products it helps with, and short beside a
/// live stream's bins, between which every worker is idle and none spins.
const SPIN: Duration = Duration::from_millis(2);

/// An idle worker while another runs a stage: takes chunks of that stage's work from the
/// board until the pipeline changes (from `epoch`), or for at most [`SPIN`]. Returns the
/// seconds it spent computing chunks, and whether it stopped for [`SPIN`] (then it waits for
/// work as usual).
fn help(sh: &Shared, epoch: u64) -> (f64, bool) {
    let start = Instant::now();
    let mut helped = 0.0;
    let spun_out = sh.board.spin(|| {
        while sh.epoch.load(Ordering::SeqCst) == epoch {
            let t = Instant::now();
            if sh.board.help() {
                helped += t.elapsed().as_secs_f64();
            } else if t.duration_since(start) >= SPIN {
                return true;
            } else {
                std::hint::spin_loop();
            }
        }
        false
    });
    (helped, spun_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A free worker takes the stage it ran last when that one is ready, else the first
    /// ready stage (upstream first).
    #[test]
    fn a_worker_prefers_the_stage_it_ran_last() {
        assert_eq!(prefer([0, 2, 3].into_iter(), Some(3)), Some(3));
        assert_eq!(prefer([0, 2, 3].into_iter(), Some(0)), Some(0));
        assert_eq!(prefer([0, 2, 3].into_iter(), Some(1)), Some(0));
        assert_eq!(prefer([2, 3].into_iter(), None), Some(2));
        assert_eq!(prefer(std::iter::empty(), Some(1)), None);
    }

    /// The policy times both ways and keeps the faster: helping while it is, not helping
    /// once that is faster; it probes again after [`KEEP_STEPS`], twice as many while the
    /// probes agree.
    #[test]
    fn the_help_policy_keeps_the_faster_way() {
        let mut p = HelpPolicy::new().probe.into_inner().unwrap();
        assert!(
            HelpPolicy::new().on.into_inner(),
            "helping while the first steps warm up"
        );
        /// Runs `steps` steps of `ms` each; the last change of the choice, if any.
        fn run(p: &mut Probe, now: &mut Instant, steps: u64, ms: u64) -> Option<bool> {
            let mut last = None;
            for _ in 0..steps {
                *now += Duration::from_millis(ms);
                last = p.record(*now).or(last);
            }
            last
        }
        /// A probe's windows, `help` and `alone` ms per step as each says, the first window
        /// of the faster way held up by a second (another program took the core); the choice.
        fn probe(p: &mut Probe, now: &mut Instant, help: u64, alone: u64) -> Option<bool> {
            let mut choice = None;
            for (w, helping) in PROBE.iter().enumerate() {
                let ms = if *helping { help } else { alone };
                assert_eq!(run(p, now, WINDOW_STEPS / 2, ms), None);
                if w == PROBE.iter().position(|&h| h == (help < alone)).unwrap() {
                    *now += Duration::from_secs(1);
                }
                let next = run(p, now, WINDOW_STEPS - WINDOW_STEPS / 2, ms);
                assert_eq!(next, Some(PROBE.get(w + 1).copied().unwrap_or(help < alone)));
                choice = next;
            }
            choice
        }
        let now = &mut Instant::now();
        assert_eq!(
            run(&mut p, now, WARM_STEPS - 1, 9),
            None,
            "the warm-up is not timed"
        );
        assert_eq!(run(&mut p, now, 1, 9), Some(true), "the first window helps");
        assert_eq!(probe(&mut p, now, 2, 3), Some(true), "helping was faster");
        assert_eq!(
            run(&mut p, now, KEEP_STEPS - 1, 2),
            None,
            "kept until the next probe"
        );
        assert_eq!(run(&mut p, now, 1, 2), Some(true), "a new probe starts");
        assert_eq!(probe(&mut p, now, 2, 3), Some(true), "helping was faster again");
        assert_eq!(p.keep, 2 * KEEP_STEPS, "the same choice is kept twice as long");
        assert_eq!(
            run(&mut p, now, 2 * KEEP_STEPS, 2),
            Some(true),
            "and probed after that"
        );
        // Now helping is the slower.
        assert_eq!(probe(&mut p, now, 3, 2), Some(false), "not helping was faster");
        assert_eq!(p.keep, KEEP_STEPS, "a changed choice is probed again soon");
    }
}
