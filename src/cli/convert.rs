//! `stdl convert`: rewrite a recording as AEDAT 3.1, AEDAT 2.0 (DVS128) or ATIS `.bin`.

use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use stdl::io::formats::{aedat2, aedat31, atis_bin};
use stdl::io::EventReader;

use super::ReadArgs;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Target {
    /// AEDAT 3.1 polarity packets (DVS128-Gesture layout).
    Aedat31,
    /// AEDAT 2.0 with DVS128 addresses (CIFAR10-DVS layout; 128x128 only).
    Aedat2,
    /// ATIS 40-bit .bin (N-MNIST / N-Caltech101 layout; coordinates < 256).
    Bin,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Input recording (any supported format).
    pub input: PathBuf,
    /// Output file.
    pub output: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub to: Target,
    /// AEDAT 3.1: the source name written in the header.
    #[arg(long, default_value = "DVS128")]
    pub source_name: String,
    #[command(flatten)]
    pub read: ReadArgs,
}

pub fn run(a: &ConvertArgs) -> Result<()> {
    if a.input == a.output {
        bail!("input and output are the same file");
    }
    let r = EventReader::open_as(&a.input, a.read.format, &a.read.options())?;
    let tmp = a.output.with_extension("partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let w = BufWriter::new(file);
    let mut n = 0usize;
    let ctx = || format!("reading {}", a.input.display());
    match a.to {
        Target::Aedat31 => {
            let mut w = aedat31::Writer::new(w, &a.source_name)?;
            for b in r {
                let b = b.with_context(ctx)?;
                n += b.len();
                w.write(&b)?;
            }
            w.finish()?;
        }
        Target::Aedat2 => {
            let mut w = aedat2::Writer::new(w)?;
            for b in r {
                let b = b.with_context(ctx)?;
                n += b.len();
                w.write(&b)?;
            }
            w.finish()?;
        }
        Target::Bin => {
            let mut w = atis_bin::Writer::with_overflow(w, a.read.atis_overflow_us);
            for b in r {
                let b = b.with_context(ctx)?;
                n += b.len();
                w.write(&b)?;
            }
            w.finish()?;
        }
    }
    std::fs::rename(&tmp, &a.output).with_context(|| format!("renaming to {}", a.output.display()))?;
    eprintln!("wrote {} events to {}", n, a.output.display());
    Ok(())
}
