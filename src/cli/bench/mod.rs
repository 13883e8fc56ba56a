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

pub use stdl_models::profile::cpu_model;
