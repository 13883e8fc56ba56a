//! `stdl convert`: rewrite a recording as AEDAT 3.1, AEDAT 2.0 (DVS128) or ATIS `.bin`.

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
    let mut r = EventReader::open_as(&a.input, a.read.format, &a.read.options())?;
    r.read_header()
        .with_context(|| format!("reading {}", a.input.display()))?;
    // Written beside the output under a unique temporary name and renamed when complete: a
    // failure or Ctrl-C removes it and leaves any earlier OUTPUT as it was.
    stdl::interrupt::install();
    let w = stdl::store::AtomicFile::create(&a.output)?;
    let mut n = 0usize;
    let ctx = || format!("reading {}", a.input.display());
    let wctx = || format!("writing {}", a.output.display());
    // Every batch to `write`, stopping at Ctrl-C (the temporary file is then removed).
    let mut pump = |write: &mut dyn FnMut(&[stdl::io::Event]) -> std::io::Result<()>| -> Result<()> {
        for b in r.by_ref() {
            if stdl::interrupt::requested() {
                bail!("interrupted; {} was not written", a.output.display());
            }
            let b = b.with_context(ctx)?;
            n += b.len();
            write(&b).with_context(wctx)?;
        }
        Ok(())
    };
    match a.to {
        Target::Aedat31 => {
            let mut w = aedat31::Writer::new(w, &a.source_name).with_context(wctx)?;
            pump(&mut |b| w.write(b))?;
            w.finish().with_context(wctx)?.commit()?;
        }
        Target::Aedat2 => {
            let mut w = aedat2::Writer::new(w).with_context(wctx)?;
            pump(&mut |b| w.write(b))?;
            w.finish().with_context(wctx)?.commit()?;
        }
        Target::Bin => {
            let mut w = atis_bin::Writer::with_overflow(w, a.read.atis_overflow_us);
            pump(&mut |b| w.write(b))?;
            w.finish().with_context(wctx)?.commit()?;
        }
    }
    eprintln!("wrote {} events to {}", n, a.output.display());
    Ok(())
}
