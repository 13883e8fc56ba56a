//! Fuzz the Dat decoder: any bytes, through a 1-byte and a 4 KiB buffer, must give the
//! same events and never panic.
#![no_main]
include!("common.rs");
stdl_io_fuzz_target!(stdl_io::Format::Dat);
