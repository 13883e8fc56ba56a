//! The event formats `stdl-io` reads, by name ([`Format`]): a leaf module that the error
//! type and the readers both name. Detection and parsing a name are in [`crate::formats`].

use serde::{Deserialize, Serialize};

/// The event formats `stdl-io` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Format {
    /// jAER AEDAT 2.0 (big-endian address + timestamp words).
    Aedat2,
    /// AEDAT 3.x (libcaer packets; DVS128-Gesture).
    Aedat31,
    /// AEDAT 4.0 (DV flatbuffer packets).
    Aedat4,
    /// ATIS 40-bit `.bin` (N-MNIST, N-Caltech101).
    #[serde(alias = "bin")]
    AtisBin,
    /// Prophesee EVT 2.0.
    Evt2,
    /// Prophesee EVT 3.0.
    Evt3,
    /// Prophesee DAT.
    Dat,
}

impl Format {
    /// Every format, in a stable order.
    pub const ALL: [Format; 7] = [
        Format::Aedat2,
        Format::Aedat31,
        Format::Aedat4,
        Format::AtisBin,
        Format::Evt2,
        Format::Evt3,
        Format::Dat,
    ];

    /// The short name used on the command line and in JSON (`aedat2`, `bin`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Format::Aedat2 => "aedat2",
            Format::Aedat31 => "aedat31",
            Format::Aedat4 => "aedat4",
            Format::AtisBin => "bin",
            Format::Evt2 => "evt2",
            Format::Evt3 => "evt3",
            Format::Dat => "dat",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Aedat2 => "AEDAT 2.0",
            Format::Aedat31 => "AEDAT 3.1",
            Format::Aedat4 => "AEDAT 4.0",
            Format::AtisBin => "ATIS .bin",
            Format::Evt2 => "EVT 2.0",
            Format::Evt3 => "EVT 3.0",
            Format::Dat => "DAT",
        })
    }
}
