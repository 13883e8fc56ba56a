//! `stdl bench`: the benchmarks the README quotes, one file per kind: decoder throughput
//! ([`read`]), training memory and time ([`model`]), dense against sparse convolution
//! ([`sparse`]), and the stream's memory over time and real-time factor ([`stream`]).

mod model;
mod read;
mod sparse;
mod stream;

pub use model::{memory, train, BenchModelArgs};
pub use read::{read, BenchReadArgs};
pub use sparse::{sparse, BenchSparseArgs};
pub use stream::{realtime, soak, BenchRealtimeArgs, BenchSoakArgs};

/// The CPU's model name (`/proc/cpuinfo`) and the widest vector extension our kernels use
/// on it, for the figures benchmarks print.
pub fn cpu_model() -> String {
    #[cfg(target_arch = "x86_64")]
    let simd = if std::arch::is_x86_feature_detected!("avx512f") {
        " (AVX-512)"
    } else if std::arch::is_x86_feature_detected!("avx2") {
        " (AVX2)"
    } else {
        ""
    };
    #[cfg(not(target_arch = "x86_64"))]
    let simd = "";
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{name}{simd}")
}
