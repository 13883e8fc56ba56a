//! The event ring between the source thread and the binner (ARCHITECTURE.md): a lock-free
//! single-producer, single-consumer ring of [`Event`]s from `ringbuf`, with waiting on either
//! side by parking. The writer waits while the ring is full (a replay is never lossy; live
//! overload is handled on whole bins after the binner), the reader waits while it is empty.
//! Memory is the ring's capacity, fixed at creation.

use std::time::{Duration, Instant};

use crossbeam_utils::sync::{Parker, Unparker};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use stdl_io::Event;

/// The reader was dropped: nobody will take more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// The source side.
pub struct RingWriter {
    prod: Option<HeapProd<Event>>,
    me: Parker,
    reader: Unparker,
}

/// The binner side.
pub struct RingReader {
    cons: HeapCons<Event>,
    me: Parker,
    writer: Unparker,
}

/// What [`RingReader::pop_into`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop {
    /// This many events were appended.
    Events(usize),
    /// None arrived before the timeout.
    Empty,
    /// The writer is gone and every event it wrote has been taken.
    Closed,
}

/// A ring of `capacity` events (`capacity × 16` bytes).
pub fn event_ring(capacity: usize) -> (RingWriter, RingReader) {
    let (prod, cons) = HeapRb::<Event>::new(capacity.max(1)).split();
    let (wp, rp) = (Parker::new(), Parker::new());
    let (wu, ru) = (wp.unparker().clone(), rp.unparker().clone());
    (
        RingWriter {
            prod: Some(prod),
            me: wp,
            reader: ru,
        },
        RingReader {
            cons,
            me: rp,
            writer: wu,
        },
    )
}

impl RingWriter {
    /// Writes every event, waiting while the ring is full; fails once the reader is gone.
    pub fn push(&mut self, mut events: &[Event]) -> Result<(), Closed> {
        let prod = self.prod.as_mut().ok_or(Closed)?;
        while !events.is_empty() {
            let n = prod.push_slice(events);
            events = &events[n..];
            if n > 0 {
                self.reader.unpark();
            }
            if !events.is_empty() {
                if !prod.read_is_held() {
                    return Err(Closed);
                }
                // The reader unparks us after each pop; the timeout only bounds how late we
                // notice that it went away.
                self.me.park_timeout(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Whether the reader still exists.
    pub fn reader_alive(&self) -> bool {
        self.prod.as_ref().is_some_and(|p| p.read_is_held())
    }

    /// Events waiting in the ring.
    pub fn backlog(&self) -> usize {
        self.prod.as_ref().map_or(0, |p| p.occupied_len())
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        // Release the producer first, so the woken reader sees the ring closed.
        drop(self.prod.take());
        self.reader.unpark();
    }
}

impl RingReader {
    /// Appends up to `max` events to `out`, waiting up to `timeout` for the first.
    pub fn pop_into(&mut self, out: &mut Vec<Event>, max: usize, timeout: Duration) -> Pop {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.cons.occupied_len().min(max);
            if n > 0 {
                let len = out.len();
                out.resize(len + n, Event::default());
                let got = self.cons.pop_slice(&mut out[len..]);
                out.truncate(len + got);
                self.writer.unpark();
                return Pop::Events(got);
            }
            if !self.cons.write_is_held() {
                // The writer's last events were published before it let go: look once more.
                return if self.cons.is_empty() {
                    Pop::Closed
                } else {
                    continue;
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Pop::Empty;
            }
            self.me.park_timeout(deadline - now);
        }
    }

    /// Events waiting in the ring.
    pub fn backlog(&self) -> usize {
        self.cons.occupied_len()
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        self.writer.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: u64) -> Event {
        Event {
            t_us: i,
            x: (i % 128) as u16,
            y: (i / 128 % 128) as u16,
            on: i % 3 == 0,
        }
    }

    #[test]
    fn a_small_ring_passes_a_long_stream_in_order_without_loss() {
        let (mut w, mut r) = event_ring(100);
        let total = 200_000u64;
        let h = std::thread::spawn(move || {
            let mut i = 0;
            while i < total {
                let n = (i % 977 + 1).min(total - i);
                let batch: Vec<Event> = (i..i + n).map(ev).collect();
                w.push(&batch).unwrap();
                i += n;
            }
        });
        let mut got = Vec::new();
        loop {
            match r.pop_into(&mut got, 333, Duration::from_millis(50)) {
                Pop::Closed => break,
                Pop::Events(n) => assert!(n <= 333),
                Pop::Empty => {}
            }
        }
        h.join().unwrap();
        assert_eq!(got.len() as u64, total);
        assert!(got.iter().enumerate().all(|(i, e)| *e == ev(i as u64)));
    }

    #[test]
    fn the_writer_learns_when_the_reader_is_gone() {
        let (mut w, r) = event_ring(4);
        w.push(&[ev(0), ev(1)]).unwrap();
        drop(r);
        assert!(!w.reader_alive());
        assert_eq!(w.push(&(0..10).map(ev).collect::<Vec<_>>()), Err(Closed));
    }

    #[test]
    fn an_empty_ring_times_out_and_a_dropped_writer_closes_it() {
        let (w, mut r) = event_ring(4);
        let mut out = Vec::new();
        assert_eq!(r.pop_into(&mut out, 10, Duration::from_millis(5)), Pop::Empty);
        drop(w);
        assert_eq!(r.pop_into(&mut out, 10, Duration::from_secs(5)), Pop::Closed);
    }
}
