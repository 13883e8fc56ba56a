//! Fuzz format detection and whatever decoder it picks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(mut r) = stdl_io::EventReader::from_slice(data, None, &stdl_io::ReadOptions::default()) {
        let mut events = Vec::new();
        while let Some(res) = r.read_into(&mut events) {
            if res.is_err() {
                break;
            }
        }
    }
});
