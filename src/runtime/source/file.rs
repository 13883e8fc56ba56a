//! A recording file: any format the readers know, detected from its first bytes or forced.

use std::path::PathBuf;

use stdl_io::EventReader;

use super::{Pump, RunSource, SourceOut};

/// A recording file.
pub(crate) struct File(pub PathBuf);

impl RunSource for File {
    fn run(&self, out: &mut SourceOut, pump: &Pump) {
        if let Err(m) = EventReader::open_as(&self.0, pump.format, &pump.read_options())
            .map_err(|e| e.to_string())
            .and_then(|r| pump.send_reader(out, r))
        {
            out.fail(m);
        }
    }
}
