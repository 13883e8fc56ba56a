//! Built without the `camera` feature: `camera://` sources are refused when parsed, and this
//! stand-in only reports that.

use super::{Pump, RunSource, SourceOut};

/// `camera://` in a binary without camera support (the serial is not used).
pub(crate) struct Camera(#[allow(dead_code)] pub String);

impl RunSource for Camera {
    fn run(&self, out: &mut SourceOut, _: &Pump) {
        out.fail("this binary was built without USB camera support; rebuild with `--features camera`");
    }
}
