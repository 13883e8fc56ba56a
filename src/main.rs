//! The `stdl` command-line program.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    one_malloc_arena();
    cli::run()
}

/// glibc gives every thread that allocates its own malloc arena, and each arena keeps the
/// memory its thread freed: with the worker threads' scratch buffers, that was 6–10 MiB of
/// resident memory on `dvs-gesture` that no other thread could reuse (README, "Memory").
/// One arena costs no measurable speed here (allocations on hot paths come from the buffer
/// pool). `MALLOC_ARENA_MAX` in the environment still wins.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}
