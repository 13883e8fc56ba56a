//! 02: train the `nmnist` preset with STDL on the real labelled N-MNIST samples.
//!
//!     cargo run --release --example 02_train_nmnist [DATA_DIR]
//!
//! DATA_DIR defaults to ../shared/data/nmnist/slayer_NMNISTsmall (1,000 train / 100 test).
//! One epoch takes about 6 s on 2 cores; results land in out/example02.

use std::path::PathBuf;

use stdl::train::{train, LrSchedule, Method, TrainConfig};

fn main() -> anyhow::Result<()> {
    let root = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nmnist/slayer_NMNISTsmall")
    });
    let preset = stdl::models::Preset::load("nmnist")?;
    let cfg = TrainConfig {
        // Online STDL: every subnetwork is updated after every time step.
        method: Method::Stdl,
        dataset: "nmnist".into(),
        root,
        preset: "nmnist".into(),
        epochs: 2,
        t_bins: 10,
        batch: 16,
        seed: 0,
        limit_samples: None,
        update_every: 1,
        optimizer: preset.train.optimizer,
        aux_budget: None,
        lr_schedule: LrSchedule::Cosine,
        pipeline: false,
    };
    let result = train(
        cfg,
        "out/example02".as_ref(),
        false,
        None,
        |epoch, batch, batches| {
            if batch == batches {
                eprintln!("epoch {epoch} done");
            }
        },
    )?;
    println!(
        "test accuracy {:.1}% after {} epochs ({:.1} s)",
        100.0 * result.test_accuracy,
        result.epochs,
        result.seconds
    );
    Ok(())
}
