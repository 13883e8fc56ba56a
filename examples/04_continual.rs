//! 04: class-incremental learning on the real N-MNIST samples, with and without replay.
//!
//!     cargo run --release --example 04_continual [DATA_DIR]
//!
//! Five tasks of two digits each arrive one after another; the network learns each online
//! with STDL and never sees an earlier task's stream again. Without replay it forgets the
//! earlier digits (the accuracy matrix is nearly diagonal); a 2 MiB reservoir of past
//! samples keeps much of them. About a minute on 2 cores; plots land in out/example04.

use std::path::PathBuf;

use stdl::config::LearnConfig;
use stdl::continual::{parse_tasks, run, ContinualConfig, Protocol};
use stdl::model::Method;

fn main() -> anyhow::Result<()> {
    let root = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nmnist/slayer_NMNISTsmall")
    });
    let preset = stdl::models::Preset::load("nmnist")?;
    let mut optimizer = preset.train.optimizer;
    // A gentler rate than the preset's: each task is learned on top of the last.
    optimizer.lr = 3e-4;
    for replay_bytes in [0, 2 << 20] {
        let cfg = ContinualConfig {
            learn: LearnConfig {
                root: root.clone(),
                method: Method::Stdl,
                t_bins: 10,
                batch: 16,
                optimizer,
                ..LearnConfig::default()
            },
            // Five tasks of two digits, class-incremental (the default protocol).
            tasks: parse_tasks("0,1/2,3/4,5/6,7/8,9")?,
            protocol: Protocol::Class,
            epochs_per_task: 3,
            // 0: no replay; otherwise a fixed byte budget for stored samples.
            replay_bytes,
            // Plain learning besides replay (also: online EWC, LwF; README).
            ..ContinualConfig::default()
        };
        let r = run(cfg, |_, _, _| {})?;
        let out = PathBuf::from(format!("out/example04/replay-{replay_bytes}"));
        std::fs::create_dir_all(&out)?;
        std::fs::write(out.join("continual.json"), serde_json::to_string_pretty(&r)?)?;
        stdl::viz::plot_continual(&out.join("continual.png"), &r, "N-MNIST class-incremental")?;
        println!("replay {replay_bytes} bytes: accuracy after each task, on each task (%)");
        for row in &r.accuracy_matrix {
            let cells: Vec<String> = row.iter().map(|a| format!("{:5.1}", a * 100.0)).collect();
            println!("  {}", cells.join(" "));
        }
        println!(
            "  average {:.1}%, forgetting {:.1} points, backward transfer {:+.1} points\n",
            r.average_accuracy * 100.0,
            r.forgetting * 100.0,
            r.backward_transfer * 100.0
        );
    }
    Ok(())
}
