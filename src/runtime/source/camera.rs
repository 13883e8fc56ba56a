//! `camera://[SERIAL]`: a USB event camera through neuromorphic-drivers (feature `camera`).
//!
//! Prophesee cameras (EVK4, EVK3 HD) send EVT 3.0 words; they are decoded by the same `evt3`
//! decoder as `.raw` files ([`stdl_io::formats::evt3::RawStream`]), which agrees event for
//! event with Prophesee's reference on the real sample (the driver's own EVT 3 adapter was
//! seen up to 11 µs off there). iniVation cameras (DVXplorer, DAVIS346) go through the
//! driver's adapters; their IMU, trigger and frame packets are not events and are skipped.
//! Timestamps are the camera's, in microseconds; coordinates are the driver's (origin at the
//! top-left).
//!
//! The driver fills its own USB ring; when this process falls behind, the driver drops USB
//! packets and says so (counted and reported here), while whole bins are dropped or coalesced
//! after the binner by `--overload` (live sources default to `drop-oldest`).

use std::time::Duration;

use neuromorphic_drivers::adapters::Adapter;
use neuromorphic_drivers::{Identifier, Properties};
use stdl_io::{Event, SensorSize};

use super::{Pump, RunSource, SourceOut};

/// A USB camera: empty for the first one found, or a serial number.
pub(crate) struct Camera(pub String);

impl RunSource for Camera {
    /// Opens the camera and writes its events until the reader goes away or the device
    /// fails.
    fn run(&self, out: &mut SourceOut, _: &Pump) {
        if let Err(m) = stream(&self.0, out) {
            out.fail(m);
        }
    }
}

fn stream(id: &str, out: &mut SourceOut) -> Result<(), String> {
    let listed = neuromorphic_drivers::list_devices().map_err(|e| {
        format!(
            "no USB access, so no event camera can be found (libusb: {e}); on Linux check that \
             /dev/bus/usb exists and is readable (in a container, pass it through)"
        )
    })?;
    if listed.is_empty() {
        return Err(
            "no event camera found: connect a Prophesee EVK4 / EVK3 HD or an iniVation DVXplorer / \
                    DAVIS346, and on Linux install the udev rules (README, \"Live cameras\")"
                .into(),
        );
    }
    let (flag, event_loop) = neuromorphic_drivers::flag_and_event_loop()
        .map_err(|e| format!("starting the USB event loop: {e}"))?;
    let identifier = if id.is_empty() {
        Identifier::None
    } else {
        Identifier::Serial(id)
    };
    let device =
        neuromorphic_drivers::open(identifier, None, None, event_loop, flag.clone()).map_err(|e| {
            let found: Vec<String> = listed
                .iter()
                .map(|d| {
                    format!(
                        "{} (serial {})",
                        d.device_type.name(),
                        d.serial.as_deref().unwrap_or("?")
                    )
                })
                .collect();
            format!("opening camera {id:?}: {e}; found: {}", found.join(", "))
        })?;
    let (width, height) = match device.properties() {
        Properties::PropheseeEvk4(p) => (p.width, p.height),
        Properties::PropheseeEvk3Hd(p) => (p.width, p.height),
        Properties::InivationDvxplorer(p) => (p.width, p.height),
        Properties::InivationDavis346(p) => (p.width, p.height),
        Properties::CenturyarksVga(p) => (p.width, p.height),
        Properties::LucidTriton(p) => (p.width, p.height),
    };
    eprintln!("camera: {} ({width}x{height})", device.name());
    if !out.size(SensorSize::new(width, height)) {
        return Ok(());
    }
    let mut adapter = device.create_adapter();
    let mut evt3 = stdl_io::formats::evt3::RawStream::new();
    let mut events: Vec<Event> = Vec::new();
    let mut reported_drops = 0u64;
    loop {
        flag.load_error().map_err(|e| format!("camera: {e}"))?;
        if flag.load_warning().is_some() {
            let dropped = device.dropped_packets();
            if dropped > reported_drops {
                eprintln!("camera: the driver's USB ring overflowed; {dropped} packets dropped so far");
                reported_drops = dropped;
            }
        }
        let Some(view) = device.next_with_timeout(&Duration::from_millis(100)) else {
            if !out.alive() {
                return Ok(());
            }
            continue;
        };
        events.clear();
        let push = |events: &mut Vec<Event>, e: neuromorphic_drivers::types::PolarityEvent<u64, u16, u16>| {
            events.push(Event::new(
                e.t,
                e.x,
                e.y,
                matches!(e.polarity, neuromorphic_drivers::types::Polarity::On),
            ))
        };
        match &mut adapter {
            Adapter::Evt3(_) => evt3.decode(view.slice, &mut events),
            Adapter::Davis346(a) => a.convert(view.slice, |e| push(&mut events, e), |_| {}, |_| {}, |_| {}),
            Adapter::Dvxplorer(a) => a.convert(view.slice, |e| push(&mut events, e), |_| {}, |_| {}),
        }
        drop(view);
        if !out.events(&events, None) {
            return Ok(());
        }
    }
}
