//! Subnetworks as pipeline stages (STDL.md §3): stage `k + 1` at step `t` needs only the
//! spikes stage `k` produced at `t` and its own state, so each stage runs on its own thread,
//! connected by bounded channels. Every stage calls [`Stage::advance`], exactly what
//! [`crate::stdl::StdlModel::step`] calls in sequence, so the results are identical bit for
//! bit (`tests/all/runtime.rs` checks it). A full channel blocks the sender: backpressure,
//! nothing lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;
use stdl_models::Tensor;

use crate::stdl::{SpikeCount, Stage, StepContext};

/// Steps queued between pipeline stages (and before the first), in `stdl stream` and in
/// `stdl train --pipeline`.
pub const PIPELINE_QUEUE: usize = 4;

/// A stage's saved state: parameters and optimiser state, named as in checkpoints.
pub type StageState = (BTreeMap<String, Vec<f32>>, BTreeMap<String, Vec<f32>>);

enum Msg {
    Step {
        x: Tensor,
        labels: Option<Arc<Vec<usize>>>,
        ctx: StepContext,
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
}

/// Running pipeline stages.
#[derive(Debug)]
pub struct Pipeline {
    /// Steps each queue between stages holds.
    capacity: usize,
    input: Option<Sender<Msg>>,
    output: Receiver<StageOutput>,
    handles: Vec<JoinHandle<Stage>>,
}

impl Pipeline {
    /// Starts one thread per stage; channels between them hold at most `capacity` steps.
    pub fn start(stages: Vec<Stage>, capacity: usize) -> Self {
        Self::start_with(stages, capacity, false)
    }

    /// [`Pipeline::start`] for a long run (a stream): each channel's lists of waiting threads,
    /// and each thread's waiting context, are allocated now, not the first time a thread
    /// happens to wait there, which can be thousands of steps into a stream (a few hundred
    /// bytes, but then the heap is not constant). Costs about 0.2 s.
    pub fn start_primed(stages: Vec<Stage>, capacity: usize) -> Self {
        Self::start_with(stages, capacity, true)
    }

    fn start_with(stages: Vec<Stage>, capacity: usize, primed: bool) -> Self {
        let n = stages.len();
        let cap = capacity.max(1);
        // The input channel, one after each stage but the last, and the output channel.
        let links: Vec<(Sender<Msg>, Receiver<Msg>)> = (0..n).map(|_| bounded::<Msg>(cap)).collect();
        // The output queue holds every step the stages and the queues before them can
        // hold: the last stage never waits on an output nobody takes, so a message that
        // follows the steps through (a reset, a snapshot, spike counts) always gets through
        // while the caller waits for its answer instead of receiving outputs.
        let out_cap = Self::upstream_capacity(n, cap);
        let (out_tx, output) = bounded::<StageOutput>(out_cap);
        if primed {
            // All at once, each on a helper thread (the lists belong to the channel, whichever
            // thread waits), and this thread's own waiting context.
            std::thread::scope(|s| {
                for (tx, rx) in &links {
                    s.spawn(move || prime(tx, rx, || Msg::Reset, cap));
                }
                let empty = || StageOutput {
                    logits: Tensor::zeros(0, stdl_models::Dims::flat(1)),
                    loss: None,
                };
                let (out_tx, output) = (&out_tx, &output);
                s.spawn(move || prime(out_tx, output, empty, out_cap));
                prime_context();
            });
        }
        let mut links = links.into_iter();
        let (input, mut rx) = links.next().expect("at least one stage");
        let mut handles = Vec::with_capacity(n);
        for (k, mut stage) in stages.into_iter().enumerate() {
            let is_last = k + 1 == n;
            // After the last stage, an unused channel stands in for the next stage's input.
            let (tx, next_rx) = links.next().unwrap_or_else(|| bounded::<Msg>(1));
            let out_tx = out_tx.clone();
            let my_rx = std::mem::replace(&mut rx, next_rx);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("stdl-stage-{k}"))
                    .spawn(move || {
                        // The stage's layers run on a one-thread pool of its own: their
                        // parallel loops run in line instead of being handed to the shared
                        // workers and waited for, once per layer and step; the stages
                        // themselves are the parallelism.
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(1)
                            .thread_name(move |_| format!("stdl-stage-{k}-work"))
                            .build()
                            .expect("a stage's thread");
                        pool.install(move || {
                            stdl_models::workspace::reserve(stage.workspace_len());
                            stdl_models::gemm::prime_packing();
                            if primed {
                                prime_context();
                            }
                            loop {
                                let waited = std::time::Instant::now();
                                let Ok(msg) = my_rx.recv() else { break };
                                stage.timing.wait_input_s += waited.elapsed().as_secs_f64();
                                match msg {
                                    Msg::Step { x, labels, ctx } => {
                                        stage.set_context(ctx);
                                        let (h, logits, loss) = stage.advance(
                                            x,
                                            labels.as_deref().map(|v| v.as_slice()),
                                            is_last,
                                        );
                                        let waited = std::time::Instant::now();
                                        let sent = if is_last {
                                            // Everything the step brought is freed before its
                                            // output is seen: a caller that has drained the
                                            // pipeline finds the heap as it was before the step.
                                            drop(labels);
                                            out_tx
                                                .send(StageOutput {
                                                    logits: logits.expect("last stage logits"),
                                                    loss,
                                                })
                                                .is_ok()
                                        } else {
                                            tx.send(Msg::Step { x: h, labels, ctx }).is_ok()
                                        };
                                        stage.timing.wait_output_s += waited.elapsed().as_secs_f64();
                                        if !sent {
                                            break;
                                        }
                                    }
                                    Msg::Reset => {
                                        stage.reset();
                                        if !is_last && tx.send(Msg::Reset).is_err() {
                                            break;
                                        }
                                    }
                                    Msg::Spikes(reply) => {
                                        let _ = reply.send(stage.spike_counts(k));
                                        if !is_last && tx.send(Msg::Spikes(reply)).is_err() {
                                            break;
                                        }
                                    }
                                    Msg::Snapshot(reply) => {
                                        let (mut params, mut opt) = (BTreeMap::new(), BTreeMap::new());
                                        stage.save_params(k, &mut params);
                                        stage.save_optimizer(k, &mut opt);
                                        let _ = reply.send((k, (params, opt)));
                                        if !is_last && tx.send(Msg::Snapshot(reply)).is_err() {
                                            break;
                                        }
                                    }
                                }
                            }
                            stage
                        })
                    })
                    .expect("spawning a stage thread"),
            );
        }
        Self {
            capacity: cap,
            input: Some(input),
            output,
            handles,
        }
    }

    /// Steps the stages and the queues before each hold at most: what the output queue
    /// has room for.
    fn upstream_capacity(stages: usize, capacity: usize) -> usize {
        stages * (capacity + 1)
    }

    /// How many steps may be sent and not yet received for the stages to stay busy: one
    /// queue's worth per stage (fewer than the output queue holds, so no stage blocks on
    /// its output however slowly they are received).
    pub fn in_flight(&self) -> usize {
        self.handles.len() * self.capacity
    }

    /// Feeds one time step (blocks while the first stage's queue is full).
    pub fn send(&self, x: Tensor, labels: Option<Vec<usize>>) {
        self.send_in(StepContext::Live, x, labels);
    }

    /// [`Pipeline::send`] for a step of the sequence `ctx` names (a replayed segment between
    /// live steps: [`StepContext`]).
    pub fn send_in(&self, ctx: StepContext, x: Tensor, labels: Option<Vec<usize>>) {
        if let Some(tx) = &self.input {
            let _ = tx.send(Msg::Step {
                x,
                labels: labels.map(Arc::new),
                ctx,
            });
        }
    }

    /// Feeds one time step if the first stage's queue has room; gives the input back if not.
    pub fn try_send(&self, x: Tensor, labels: Option<Vec<usize>>) -> Result<(), Tensor> {
        self.try_send_in(StepContext::Live, x, labels)
    }

    /// [`Pipeline::try_send`] for a step of the sequence `ctx` names.
    pub fn try_send_in(&self, ctx: StepContext, x: Tensor, labels: Option<Vec<usize>>) -> Result<(), Tensor> {
        let Some(tx) = &self.input else { return Ok(()) };
        match tx.try_send(Msg::Step {
            x,
            labels: labels.map(Arc::new),
            ctx,
        }) {
            Ok(()) | Err(crossbeam_channel::TrySendError::Disconnected(_)) => Ok(()),
            Err(crossbeam_channel::TrySendError::Full(Msg::Step { x, .. })) => Err(x),
            Err(crossbeam_channel::TrySendError::Full(_)) => unreachable!("a step was sent"),
        }
    }

    /// Clears every stage's membranes (a new sample), in order with the steps around it.
    pub fn reset(&self) {
        if let Some(tx) = &self.input {
            let _ = tx.send(Msg::Reset);
        }
    }

    /// Every stage's state after the steps already sent (blocks until all have answered),
    /// merged: parameters and optimiser state as [`crate::stdl::StdlModel`] names them.
    pub fn snapshot(&self) -> Option<StageState> {
        let tx = self.input.as_ref()?;
        let (reply, answers) = bounded(self.handles.len());
        tx.send(Msg::Snapshot(reply)).ok()?;
        let (mut params, mut opt) = (BTreeMap::new(), BTreeMap::new());
        for _ in 0..self.handles.len() {
            let (_, (p, o)) = answers.recv().ok()?;
            params.extend(p);
            opt.extend(o);
        }
        Some((params, opt))
    }

    /// Every stage's spike counts after the steps already sent (blocks until all have
    /// answered), in stage order.
    pub fn spike_counts(&self) -> Option<Vec<SpikeCount>> {
        let tx = self.input.as_ref()?;
        let (reply, answers) = bounded(self.handles.len());
        tx.send(Msg::Spikes(reply)).ok()?;
        let mut all = Vec::new();
        for _ in 0..self.handles.len() {
            all.extend(answers.recv().ok()?);
        }
        all.sort_by_key(|c| (c.stage, c.part != "body", c.layer));
        Some(all)
    }

    /// The next step's output (blocks until the last stage produces it).
    pub fn recv(&self) -> Option<StageOutput> {
        self.output.recv().ok()
    }

    /// The next step's output, waiting at most `timeout` for it; `Disconnected` when a stage
    /// thread has ended.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<StageOutput, RecvTimeoutError> {
        self.output.recv_timeout(timeout)
    }

    /// The next step's output if one is ready.
    pub fn try_recv(&self) -> Option<StageOutput> {
        self.output.try_recv().ok()
    }

    /// Stops the threads after the queued steps and returns the stages.
    pub fn finish(mut self) -> Vec<Stage> {
        self.input.take();
        // Drain what is still in flight so no stage blocks on a full output queue.
        let out = self.output.clone();
        let drain = std::thread::spawn(move || for _ in out {});
        let stages = self
            .handles
            .drain(..)
            .map(|h| h.join().expect("stage thread panicked"))
            .collect();
        drop(self.output);
        let _ = drain.join();
        stages
    }
}

/// Longer than crossbeam spins and yields before it registers a waiting thread, even on a
/// loaded machine (where each yield can cost a scheduler time slice).
const PRIME_WAIT: Duration = Duration::from_millis(100);

/// Makes crossbeam's per-thread waiting context now (it is made the first time a thread
/// waits on a channel, and kept): not at some step far into a stream. A zero-capacity
/// channel waits at once, without spinning first, so this does not depend on timing.
fn prime_context() {
    let (_tx, rx) = bounded::<()>(0);
    let _ = rx.recv_timeout(Duration::from_millis(1));
}

/// Makes both of a channel's wait lists allocate: a receiver waits on it empty, a sender on it
/// full (each until a short timeout), then it is emptied again. crossbeam keeps the list's
/// allocation afterwards.
fn prime<T>(tx: &Sender<T>, rx: &Receiver<T>, filler: impl Fn() -> T, cap: usize) {
    let _ = rx.recv_timeout(PRIME_WAIT);
    for _ in 0..cap {
        let _ = tx.try_send(filler());
    }
    let _ = tx.send_timeout(filler(), PRIME_WAIT);
    while rx.try_recv().is_ok() {}
}
