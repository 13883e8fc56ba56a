// Shared body of the per-format fuzz targets (included, not a target itself).
macro_rules! stdl_io_fuzz_target {
    ($format:expr) => {
        libfuzzer_sys::fuzz_target!(|data: &[u8]| {
            let decode = |chunk: usize| {
                let opts = stdl_io::ReadOptions { chunk_bytes: chunk, ..Default::default() };
                let mut events = Vec::new();
                let mut failed = false;
                if let Ok(mut r) = stdl_io::EventReader::from_slice(data, Some($format), &opts) {
                    while let Some(res) = r.read_into(&mut events) {
                        failed |= res.is_err();
                    }
                }
                (events, failed)
            };
            let (a, fa) = decode(1);
            let (b, fb) = decode(4096);
            assert_eq!(fa, fb);
            assert!(a == b, "events depend on the chunk size");
        });
    };
}
