//! 02: train the `nmnist` preset with STDL on the real labelled N-MNIST samples.
//!
//!     cargo run --release --example 02_train_nmnist [DATA_DIR]
//!
//! DATA_DIR defaults to ../shared/data/nmnist/slayer_NMNISTsmall (1,000 train / 100 test).
//! One epoch takes about 6 s on 2 cores; results land in out/example02.

use std::path::PathBuf;

use stdl::config::LearnConfig;
use stdl::train::{train, Method, TrainConfig};

fn main() -> anyhow::Result<()> {
    let root = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nmnist/slayer_NMNISTsmall")
    });
    let preset = stdl::models::Preset::load("nmnist")?;
    let cfg = TrainConfig {
        learn: LearnConfig {
            // Online STDL: every subnetwork is updated after every time step.
            method: Method::Stdl,
            root,
            ..LearnConfig::default().with_preset_defaults(&preset)
        },
        epochs: 2,
        ..TrainConfig::default()
    };
    let progress = |epoch: usize, batch: usize, batches: usize| {
        if batch == batches {
            eprintln!("epoch {epoch} done");
        }
    };
    let result = train(cfg, "out/example02".as_ref(), false, None, progress, |_| {})?;
    println!(
        "test accuracy {:.1}% after {} epochs ({:.1} s)",
        100.0 * result.test_accuracy,
        result.epochs,
        result.seconds
    );
    Ok(())
}
