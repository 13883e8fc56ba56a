//! Datasets as streams of time steps, in memory that depends neither on `T` nor on the
//! dataset's size.
//!
//! A [`Loader`] thread reads samples in a given order (the epoch's seeded shuffle) and sends
//! them, a batch at a time, through a queue of [`QUEUE_BATCHES`] batches. A sample is held as
//! [`SampleCells`]: the frame cell of each of its events, 4 bytes an event. A time step's frame
//! is binned from those cells when the trainer learns that step ([`Batch::step`]), so nothing
//! holds `T` frames: STDL's memory does not grow with `T`, and BPTT keeps only what its
//! backward pass needs. The frames are those of [`stdl_io::frames::frames_from_events`] with
//! [`Slicing::EventBins`](stdl_io::frames::Slicing::EventBins) and [`Edge::ToLast`], bit for
//! bit (tested).
//!
//! What the loader holds at most: the batch being learned, [`QUEUE_BATCHES`] queued ones and
//! the one being read (so `(QUEUE_BATCHES + 2) × batch` samples at 4 bytes an event), plus
//! one sample's decoded events (16 bytes an event) while it is turned into cells.

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Context, Result};
use crossbeam_channel::{bounded, Receiver};
use stdl_io::datasets::{Dataset, Sample};
use stdl_io::frames::{Channels, Edge, EventBins, Geometry};
use stdl_io::{Event, SensorSize};
use stdl_models::{Dims, Tensor};

/// Batches read ahead of the one being learned.
pub const QUEUE_BATCHES: usize = 2;

/// How a sample's sensor maps onto a network input of `dims` (two polarity channels): as it
/// is when the sizes match, resized down when the sensor is larger, and placed at the origin
/// (padded with zeros) when it is smaller in either direction (N-Caltech101's per-sample
/// extents).
///
/// # Errors
/// When `dims` does not have 2 channels or the frame has more cells than a `u32` counts.
pub fn frame_geometry(sensor: SensorSize, dims: Dims) -> Result<Geometry> {
    crate::error::ensure!(
        dims.c == 2,
        "frames have 2 polarity channels; the preset's input has {}",
        dims.c
    );
    crate::error::ensure!(
        dims.w <= u16::MAX as usize && dims.h <= u16::MAX as usize && (dims.len() as u64) < u32::MAX as u64,
        "the preset's input {dims} is too large for event frames"
    );
    let target = SensorSize::new(dims.w as u16, dims.h as u16);
    Ok(if sensor == target {
        Geometry::new(sensor, Channels::Split)?
    } else if sensor.width >= target.width && sensor.height >= target.height {
        Geometry::resized(sensor, target, Channels::Split)?
    } else {
        Geometry::new(target, Channels::Split)?
    })
}

/// Marks an event whose cell is off the frame: it still counts for the bin boundaries, as in
/// [`stdl_io::frames::bin_ranges`].
const OFF: u32 = u32::MAX;

/// One sample held compactly: the frame cell of each event, in file order, and its label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SampleCells {
    cells: Vec<u32>,
    /// Class index.
    pub label: usize,
}

impl SampleCells {
    /// The cells of `events` in `geom`.
    pub fn new(events: &[Event], geom: &Geometry, label: usize) -> Self {
        let cells = events
            .iter()
            .map(|e| geom.index(e).map_or(OFF, |i| i as u32))
            .collect();
        Self { cells, label }
    }

    /// Reads sample `s` of `ds` for a network input of `dims`.
    ///
    /// # Errors
    /// The reader's error, naming the file.
    pub fn load(ds: &Dataset, s: &Sample, dims: Dims) -> Result<Self> {
        let loaded = ds
            .load(s)
            .with_context(|| format!("loading {}", s.path.display()))?;
        let geom = frame_geometry(loaded.sensor, dims)?;
        Ok(Self::new(&loaded.events, &geom, s.label))
    }

    /// Events of the sample (on the frame or not).
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the sample has no event.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Bytes held for the events.
    pub fn bytes(&self) -> usize {
        self.cells.capacity() * std::mem::size_of::<u32>()
    }

    /// The bins of this sample for `t_bins` steps (equal event counts, the remainder in the
    /// last bin).
    fn bins(&self, t_bins: usize) -> EventBins {
        EventBins::new(self.cells.len(), t_bins.max(1), 0.0, Edge::ToLast)
            .expect("a positive bin count and no overlap")
    }

    /// Adds the counts of time step `t` of `t_bins` to `frame`.
    pub fn add_step(&self, t: usize, t_bins: usize, frame: &mut [f32]) {
        for &c in &self.cells[self.bins(t_bins).range(t)] {
            if c != OFF {
                frame[c as usize] += 1.0;
            }
        }
    }

    /// Writes every step's counts as `u8` (saturating at 255) into `out`, `t_bins` frames of
    /// `frame_len` values (a replay buffer's compact copy).
    pub fn write_counts(&self, t_bins: usize, frame_len: usize, out: &mut [u8]) {
        out.fill(0);
        let bins = self.bins(t_bins);
        for (t, frame) in out.chunks_exact_mut(frame_len).enumerate().take(t_bins) {
            for &c in &self.cells[bins.range(t)] {
                if c != OFF {
                    let v = &mut frame[c as usize];
                    *v = v.saturating_add(1);
                }
            }
        }
    }
}

/// One input of a training batch: a sample's cells, or `T` frames of `u8` counts (a replayed
/// sample).
#[derive(Clone, Copy, Debug)]
pub enum Row<'a> {
    /// Binned at each step.
    Cells(&'a SampleCells),
    /// `T × frame_len` counts.
    Counts(&'a [u8]),
}

/// Time step `t` of `t_bins` of `rows`, as a batch of frames of `dims` (from the buffer pool).
pub fn step_of_rows(rows: &[Row<'_>], t: usize, t_bins: usize, dims: Dims) -> Tensor {
    let n = dims.len();
    let mut x = Tensor::zeros(rows.len(), dims);
    for (dst, r) in x.data.chunks_exact_mut(n).zip(rows) {
        match r {
            Row::Cells(s) => s.add_step(t, t_bins, dst),
            Row::Counts(c) => {
                for (d, &v) in dst.iter_mut().zip(&c[t * n..(t + 1) * n]) {
                    *d = f32::from(v);
                }
            }
        }
    }
    x
}

/// A batch of samples from a [`Loader`].
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// The samples, in the loader's order.
    pub samples: Vec<SampleCells>,
    /// Their positions in the loader's sample list.
    pub index: Vec<usize>,
}

impl Batch {
    /// Labels, in order.
    pub fn labels(&self) -> Vec<usize> {
        self.samples.iter().map(|s| s.label).collect()
    }

    /// The samples as batch rows.
    pub fn rows(&self) -> Vec<Row<'_>> {
        self.samples.iter().map(Row::Cells).collect()
    }

    /// Time step `t` of `t_bins`, as a batch of frames of `dims`.
    pub fn step(&self, t: usize, t_bins: usize, dims: Dims) -> Tensor {
        step_of_rows(&self.rows(), t, t_bins, dims)
    }
}

/// Reads samples on a thread of its own, in a given order, into a bounded queue of batches.
/// Dropping it stops the thread.
#[derive(Debug)]
pub struct Loader {
    rx: Option<Receiver<Result<Batch>>>,
    thread: Option<JoinHandle<()>>,
}

impl Loader {
    /// Starts reading `samples[order[0]], samples[order[1]], …` of `ds` for an input of
    /// `dims`, `batch` samples a batch (the last may be shorter). A sample that cannot be read
    /// ends the sequence with its error.
    pub fn start(
        ds: Arc<Dataset>,
        samples: Arc<[Sample]>,
        order: Vec<usize>,
        batch: usize,
        dims: Dims,
    ) -> Self {
        let (tx, rx) = bounded::<Result<Batch>>(QUEUE_BATCHES);
        let batch = batch.max(1);
        let thread = std::thread::Builder::new()
            .name("stdl-loader".into())
            .spawn(move || {
                for chunk in order.chunks(batch) {
                    let mut b = Batch {
                        samples: Vec::with_capacity(chunk.len()),
                        index: chunk.to_vec(),
                    };
                    for &i in chunk {
                        match SampleCells::load(&ds, &samples[i], dims) {
                            Ok(s) => b.samples.push(s),
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                        }
                    }
                    // The receiver is gone: the trainer stopped early.
                    if tx.send(Ok(b)).is_err() {
                        return;
                    }
                }
            })
            .expect("spawning the sample loader thread");
        Self {
            rx: Some(rx),
            thread: Some(thread),
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Result<Batch>> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Closing the queue makes the thread's next send fail, and it returns.
        self.rx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The labels of `samples` must be below `classes` (the outputs of the preset named `preset`).
pub fn check_labels(
    ds: &Dataset,
    samples: &[Sample],
    classes: usize,
    preset: &str,
) -> crate::error::Result<()> {
    match samples.iter().max_by_key(|s| s.label) {
        Some(s) if s.label >= classes => crate::error::bail!(
            "{} has labels up to {} ({} classes; {}) but preset {preset} has {classes} outputs: \
             choose a preset with at least {} classes",
            ds.name,
            s.label,
            ds.classes.len(),
            s.path.display(),
            s.label + 1
        ),
        _ => Ok(()),
    }
}

/// A dataset split to train or evaluate on: the dataset and the samples taken from it.
#[derive(Clone, Debug)]
pub struct SampleSet {
    /// The dataset (shared with loader threads).
    pub ds: Arc<Dataset>,
    /// The samples.
    pub samples: Arc<[Sample]>,
    /// Network input the frames are made for.
    pub dims: Dims,
}

impl SampleSet {
    /// `samples` of `ds`, for an input of `dims`.
    pub fn new(ds: Arc<Dataset>, samples: Vec<Sample>, dims: Dims) -> Self {
        Self {
            ds,
            samples: samples.into(),
            dims,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Refuses, before anything is learned, a set whose labels a network with `classes`
    /// outputs cannot learn (a dataset of 10 classes on a 4-class preset).
    pub fn check_labels(&self, classes: usize, preset: &str) -> crate::error::Result<()> {
        check_labels(&self.ds, &self.samples, classes, preset)
    }

    /// Labels of every sample, in order (from the listing; nothing is read).
    pub fn labels(&self) -> Vec<usize> {
        self.samples.iter().map(|s| s.label).collect()
    }

    /// A loader over the samples `order`, `batch` at a time.
    pub fn loader(&self, order: Vec<usize>, batch: usize) -> Loader {
        Loader::start(self.ds.clone(), self.samples.clone(), order, batch, self.dims)
    }
}

/// Where a stream's events come from, as far as naming its classes goes.
#[derive(Clone, Copy, Debug)]
pub enum NamesFrom<'a> {
    /// The synthetic scene: its directions.
    Synthetic(&'a stdl_io::sources::synthetic::SyntheticConfig),
    /// A dataset: its classes.
    Dataset {
        /// Dataset name.
        name: &'a str,
        /// Its root.
        root: &'a std::path::Path,
    },
    /// Anything else: the network's preset decides.
    Other,
}

/// The names of a stream's classes: the source's own (the synthetic scene's directions, a
/// dataset's classes), else those of the preset `(name, classes)` of the network that
/// predicts them ([`class_names_for`]), else none. `stdl render` and `stdl stream --view`.
///
/// # Errors
/// A dataset that cannot be opened.
pub fn class_names(from: NamesFrom<'_>, preset: Option<(&str, usize)>) -> Result<Vec<String>> {
    Ok(match (from, preset) {
        (NamesFrom::Synthetic(c), _) => c.class_names(),
        (NamesFrom::Dataset { name, root }, _) => Dataset::open(name, root)?.classes,
        (NamesFrom::Other, Some((name, classes))) => class_names_for(name, classes),
        (NamesFrom::Other, None) => Vec::new(),
    })
}

/// Class names for a preset's network: DVS128-Gesture's gestures, N-MNIST's digits, else none.
pub fn class_names_for(preset_name: &str, classes: usize) -> Vec<String> {
    use stdl_io::datasets::dvs_gesture::CLASSES;
    match preset_name {
        "dvs-gesture" if classes == CLASSES.len() => CLASSES.iter().map(|s| s.to_string()).collect(),
        "nmnist" if classes == 10 => (0..10).map(|d| d.to_string()).collect(),
        _ => Vec::new(),
    }
}
