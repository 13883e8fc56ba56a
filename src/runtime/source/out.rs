//! What a source thread writes: events into the ring, everything else (sensor size, labels,
//! failure) on the control channel.

use stdl_io::{Event, SensorSize};

use crate::runtime::ring::RingWriter;

/// What the source thread says besides events (events travel in the ring).
pub(crate) enum Control {
    /// The sensor size, first.
    Size(SensorSize),
    /// From this time on, this label (sent before the events it labels).
    Label(u64, usize),
    /// The source failed after the events already written.
    Failed(String),
}

/// The source thread's outputs: the event ring and the control channel.
pub(crate) struct SourceOut {
    ring: RingWriter,
    ctl: crossbeam_channel::Sender<Control>,
    label: Option<usize>,
}

impl SourceOut {
    /// Outputs into `ring` and `ctl`.
    pub(crate) fn new(ring: RingWriter, ctl: crossbeam_channel::Sender<Control>) -> Self {
        Self {
            ring,
            ctl,
            label: None,
        }
    }

    /// Sends the sensor size; false when the reader is gone.
    pub(crate) fn size(&self, s: SensorSize) -> bool {
        self.ctl.send(Control::Size(s)).is_ok()
    }

    /// Reports a failure (the reader keeps every event written before it).
    pub(crate) fn fail(&self, m: impl Into<String>) {
        let _ = self.ctl.send(Control::Failed(m.into()));
    }

    /// Writes events, after the label that holds from `label.0` on if it changed; false when
    /// the reader is gone.
    pub(crate) fn events(&mut self, events: &[Event], label: Option<(u64, usize)>) -> bool {
        if let Some((t, l)) = label {
            if self.label != Some(l) {
                self.label = Some(l);
                if self.ctl.send(Control::Label(t, l)).is_err() {
                    return false;
                }
            }
        }
        self.ring.push(events).is_ok()
    }

    /// Whether the reader is still there.
    pub(crate) fn alive(&self) -> bool {
        self.ring.reader_alive()
    }
}
