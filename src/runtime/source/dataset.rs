//! A dataset split played as one stream: its samples one after another, each shifted to
//! start where the last ended, with each sample's label from its first event on.

use std::path::PathBuf;

use stdl_io::datasets::Split;
use stdl_io::Event;

use super::{Pump, RunSource, SourceOut};

/// A dataset split.
pub(crate) struct DatasetSplit {
    /// Dataset name.
    pub name: String,
    /// Its root directory.
    pub root: PathBuf,
    /// The split played.
    pub split: Split,
}

impl RunSource for DatasetSplit {
    fn run(&self, out: &mut SourceOut, pump: &Pump) {
        let ds = match stdl_io::datasets::Dataset::open(&self.name, &self.root) {
            Ok(d) => d,
            Err(e) => return out.fail(format!("{e}")),
        };
        let Some(sensor) = pump.size.or(ds.sensor) else {
            return out.fail(format!(
                "{}: samples differ in size; pass --sensor-size WxH",
                self.name
            ));
        };
        out.size(sensor);
        let mut cursor = 0u64;
        for sample in ds.split(self.split) {
            let loaded = match ds.load(sample) {
                Ok(l) => l,
                Err(e) => return out.fail(format!("{e}")),
            };
            let Some(first) = loaded.events.first().map(|e| e.t_us) else {
                continue;
            };
            let start = cursor;
            let mut events: Vec<Event> = loaded
                .events
                .iter()
                .map(|e| Event {
                    t_us: e.t_us.saturating_sub(first) + start,
                    ..*e
                })
                .collect();
            cursor = events.last().map_or(start, |e| e.t_us) + 1;
            if pump.resume_t > 0 {
                events.retain(|e| e.t_us >= pump.resume_t);
            }
            if !out.events(&events, Some((start, loaded.label))) {
                return;
            }
        }
    }
}
