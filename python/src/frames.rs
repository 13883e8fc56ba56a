//! Frames: `to_frames`, Tonic's `ToFrame` over `stdl_io`'s binning.

use numpy::ndarray::Array4;
use numpy::{IntoPyArray, PyArray4, PyReadonlyArray1};
use pyo3::prelude::*;

use stdl_io::frames::{frames_from_events, Channels, Edge, Geometry, Slicing};
use stdl_io::{Event, SensorSize};

use crate::{stdl_error, StdlError};

/// Events from columns (`x`, `y`, `t` in µs, `p` as 0/1), checked.
fn events_of(x: &[i64], y: &[i64], t: &[i64], p: &[i64], size: SensorSize) -> Result<Vec<Event>, String> {
    if !(x.len() == y.len() && y.len() == t.len() && t.len() == p.len()) {
        return Err("x, y, t and p must have the same length".into());
    }
    let mut out = Vec::with_capacity(x.len());
    let mut last = i64::MIN;
    for i in 0..x.len() {
        let (ex, ey, et) = (x[i], y[i], t[i]);
        if ex < 0 || ey < 0 || ex >= size.width as i64 || ey >= size.height as i64 {
            return Err(format!("event {i} at ({ex}, {ey}) is outside the sensor {size}"));
        }
        if et < 0 {
            return Err(format!("event {i} has a negative time {et}"));
        }
        if et < last {
            return Err(format!(
                "events must be sorted by time: event {i} at t={et} follows t={last}"
            ));
        }
        last = et;
        out.push(Event {
            t_us: et as u64,
            x: ex as u16,
            y: ey as u16,
            on: p[i] != 0,
        });
    }
    Ok(out)
}

/// Frames `(T, C, H, W)` of counts: `mode` is `time_window` (`value` µs, `overlap` µs),
/// `n_time_bins` or `n_event_bins` (`value` bins, `overlap` a fraction of a bin).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub(crate) fn to_frames<'py>(
    py: Python<'py>,
    x: PyReadonlyArray1<'py, i64>,
    y: PyReadonlyArray1<'py, i64>,
    t: PyReadonlyArray1<'py, i64>,
    p: PyReadonlyArray1<'py, i64>,
    sensor_size: (u16, u16),
    mode: &str,
    value: f64,
    overlap: f64,
    edge: &str,
    merge_polarity: bool,
) -> PyResult<Bound<'py, PyArray4<f32>>> {
    let size = SensorSize::new(sensor_size.0, sensor_size.1);
    let (x, y, t, p) = (x.as_slice()?, y.as_slice()?, t.as_slice()?, p.as_slice()?);
    let edge = match edge {
        "to_last" => Edge::ToLast,
        "drop" => Edge::Drop,
        e => {
            return Err(StdlError::new_err(format!(
                "edge {e:?}: expected \"to_last\" or \"drop\""
            )))
        }
    };
    let slicing = match mode {
        "time_window" => {
            let window = value as u64;
            if value < 1.0 || !(0.0..value).contains(&overlap) {
                return Err(StdlError::new_err(format!(
                    "time_window {value} µs with overlap {overlap} µs: the window must be at least 1 µs and the overlap in 0..window"
                )));
            }
            Slicing::TimeWindow {
                window_us: window,
                stride_us: window - overlap as u64,
            }
        }
        "n_time_bins" | "n_event_bins" => {
            if value < 1.0 || !(0.0..1.0).contains(&overlap) {
                return Err(StdlError::new_err(format!(
                    "{mode} {value} with overlap {overlap}: at least one bin, and an overlap in [0, 1)"
                )));
            }
            let n = value as usize;
            if mode == "n_time_bins" {
                Slicing::TimeBins { n, overlap }
            } else {
                Slicing::EventBins { n, overlap }
            }
        }
        m => return Err(StdlError::new_err(format!("unknown slicing {m:?}"))),
    };
    let channels = if merge_polarity {
        Channels::Merged
    } else {
        Channels::Split
    };
    let (frames, c, h, w) = py
        .detach(|| -> Result<(Vec<f32>, usize, usize, usize), String> {
            let events = events_of(x, y, t, p, size)?;
            let geom = Geometry::new(size, channels).map_err(|e| e.to_string())?;
            let frames = frames_from_events(&events, &geom, slicing, edge).map_err(|e| e.to_string())?;
            let (c, h, w) = (
                geom.channels.count(),
                geom.out.height as usize,
                geom.out.width as usize,
            );
            let mut data = Vec::with_capacity(frames.len() * c * h * w);
            for f in frames {
                data.extend_from_slice(&f.data);
            }
            Ok((data, c, h, w))
        })
        .map_err(StdlError::new_err)?;
    let n = frames.len() / (c * h * w).max(1);
    let array = Array4::from_shape_vec((n, c, h, w), frames).map_err(stdl_error)?;
    Ok(array.into_pyarray(py))
}
