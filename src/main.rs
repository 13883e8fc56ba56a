//! The `stdl` command-line program.

mod cli;

use std::process::ExitCode;

/// Counts live heap bytes (`stdl stream --summary`'s `heap_bytes_at_steps`, `bench soak`).
#[global_allocator]
static ALLOC: stdl::heap::Counting = stdl::heap::Counting;

fn main() -> ExitCode {
    tune_malloc();
    cli::run()
}

/// glibc malloc settings (README, "Memory"); any given in the environment
/// (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`) wins.
///
/// Blocks below 32 MiB come from the heap, and the heap is trimmed only when 64 MiB are free
/// at its top: otherwise the GEMM crate's packing buffers, allocated and freed at every
/// product, were mapped and unmapped (or trimmed off the heap) each time and faulted back in
/// (−25% speed on `nmnist`). Peak memory does not change: what a step frees, the next reuses.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (var, param, value) in [
        ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 32 << 20),
        ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 64 << 20),
    ] {
        if std::env::var_os(var).is_none() {
            // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
            unsafe {
                libc::mallopt(param, value);
            }
        }
    }
}
