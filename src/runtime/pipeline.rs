//! Subnetworks as pipeline stages (STDL.md §3): stage `k + 1` at step `t` needs only the
//! spikes stage `k` produced at `t` and its own state, so each stage runs on its own thread,
//! connected by bounded channels. Every stage calls [`Stage::advance`], exactly what
//! [`crate::stdl::StdlModel::step`] calls in sequence, so the results are identical bit for
//! bit (`tests/all/runtime.rs` checks it). A full channel blocks the sender: backpressure,
//! nothing lost.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};
use stdl_models::Tensor;

use crate::stdl::Stage;

enum Msg {
    Step {
        x: Tensor,
        labels: Option<Arc<Vec<usize>>>,
    },
    Reset,
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
    input: Option<Sender<Msg>>,
    output: Receiver<StageOutput>,
    handles: Vec<JoinHandle<Stage>>,
}

impl Pipeline {
    /// Starts one thread per stage; channels between them hold at most `capacity` steps.
    pub fn start(stages: Vec<Stage>, capacity: usize) -> Self {
        let n = stages.len();
        let (input, mut rx) = bounded::<Msg>(capacity.max(1));
        let (out_tx, output) = bounded::<StageOutput>(capacity.max(1));
        let mut handles = Vec::with_capacity(n);
        for (k, mut stage) in stages.into_iter().enumerate() {
            let is_last = k + 1 == n;
            let (tx, next_rx) = bounded::<Msg>(capacity.max(1));
            let out_tx = out_tx.clone();
            let my_rx = std::mem::replace(&mut rx, next_rx);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("stdl-stage-{k}"))
                    .spawn(move || {
                        for msg in my_rx {
                            match msg {
                                Msg::Step { x, labels } => {
                                    let (h, logits, loss) =
                                        stage.advance(x, labels.as_deref().map(|v| v.as_slice()), is_last);
                                    let sent = if is_last {
                                        out_tx
                                            .send(StageOutput {
                                                logits: logits.expect("last stage logits"),
                                                loss,
                                            })
                                            .is_ok()
                                    } else {
                                        tx.send(Msg::Step { x: h, labels }).is_ok()
                                    };
                                    if !sent {
                                        break;
                                    }
                                }
                                Msg::Reset => {
                                    stage.body.reset();
                                    stage.head.reset();
                                    if !is_last && tx.send(Msg::Reset).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        stage
                    })
                    .expect("spawning a stage thread"),
            );
        }
        Self {
            input: Some(input),
            output,
            handles,
        }
    }

    /// Feeds one time step (blocks while the first stage's queue is full).
    pub fn send(&self, x: Tensor, labels: Option<Vec<usize>>) {
        if let Some(tx) = &self.input {
            let _ = tx.send(Msg::Step {
                x,
                labels: labels.map(Arc::new),
            });
        }
    }

    /// Clears every stage's membranes (a new sample), in order with the steps around it.
    pub fn reset(&self) {
        if let Some(tx) = &self.input {
            let _ = tx.send(Msg::Reset);
        }
    }

    /// The next step's output (blocks until the last stage produces it).
    pub fn recv(&self) -> Option<StageOutput> {
        self.output.recv().ok()
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
