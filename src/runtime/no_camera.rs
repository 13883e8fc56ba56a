//! Built without the `camera` feature: `camera://` sources are refused when parsed, and this
//! stand-in only reports that.

use crate::runtime::source::SourceOut;

/// Reports that the binary has no camera support.
pub(crate) fn run(_id: &str, out: &mut SourceOut) {
    out.fail("this binary was built without USB camera support; rebuild with `--features camera`");
}
