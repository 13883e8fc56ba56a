//! `stdin`: a recording piped into standard input, any format (detected, or `--format`).

use stdl_io::EventReader;

use super::{Pump, RunSource, SourceOut};

/// A recording piped into standard input.
pub(crate) struct Stdin;

impl RunSource for Stdin {
    fn run(&self, out: &mut SourceOut, pump: &Pump) {
        if let Err(m) = EventReader::from_reader(std::io::stdin(), pump.format, &pump.read_options())
            .map_err(|e| e.to_string())
            .and_then(|r| pump.send_reader(out, r))
        {
            out.fail(format!("standard input: {m}"));
        }
    }
}
