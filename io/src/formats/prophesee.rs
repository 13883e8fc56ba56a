//! The `%` text header shared by Prophesee `.raw` (EVT 2.0 / 3.0) and `.dat` files.
//!
//! Lines start with `%` and end with `\n`; newer files end the header with `% end`. Keys
//! read here: `evt 2.0|3.0`, `format EVT3;height=720;width=1280`, `geometry 1280x720`,
//! `Width`/`Height` (DAT), `Version` (DAT), and `plugin_name` as a fallback for the sensor
//! size (`gen3*` 640×480, `gen41*`/`imx636*` 1280×720, `genx320*`/`imx8*` 320×320).

use super::{scan_marked_lines, Ctx, Format, Header};
use crate::error::Result;
use crate::event::SensorSize;

/// What a Prophesee header says.
#[derive(Clone, Debug, Default)]
pub(crate) struct PropheseeHeader {
    pub evt: Option<String>,
    pub width: Option<u16>,
    pub height: Option<u16>,
    pub plugin: Option<String>,
    pub version: Option<u32>,
}

impl PropheseeHeader {
    fn line(&mut self, line: &[u8]) -> bool {
        let text = String::from_utf8_lossy(line);
        let body = text.trim_start_matches('%').trim();
        if body == "end" {
            return true;
        }
        let (key, value) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
        let value = value.trim();
        match key {
            "evt" => self.evt = Some(value.to_owned()),
            "format" => {
                let mut parts = value.split(';');
                if let Some(enc) = parts.next() {
                    self.evt = Some(enc.trim_start_matches("EVT").replace("21", "2.1").to_owned());
                }
                for kv in parts {
                    match kv.split_once('=') {
                        Some(("width", v)) => self.width = v.trim().parse().ok(),
                        Some(("height", v)) => self.height = v.trim().parse().ok(),
                        _ => {}
                    }
                }
            }
            "geometry" => {
                if let Some((w, h)) = value.split_once('x') {
                    self.width = w.trim().parse().ok();
                    self.height = h.trim().parse().ok();
                }
            }
            "Width" => self.width = value.parse().ok(),
            "Height" => self.height = value.parse().ok(),
            "Version" => self.version = value.parse().ok(),
            "plugin_name" => self.plugin = Some(value.to_owned()),
            _ => {}
        }
        false
    }

    /// Normalised EVT version: "2.0", "3.0", "2.1", ...
    pub fn evt_version(&self) -> Option<String> {
        self.evt.as_ref().map(|v| match v.as_str() {
            "2" => "2.0".to_owned(),
            "3" => "3.0".to_owned(),
            other => other.to_owned(),
        })
    }

    pub fn sensor_size(&self) -> Option<SensorSize> {
        if let (Some(w), Some(h)) = (self.width, self.height) {
            return Some(SensorSize::new(w, h));
        }
        let p = self.plugin.as_deref()?.to_ascii_lowercase();
        if p.contains("gen41") || p.contains("imx636") || p.contains("imx646") {
            Some(SensorSize::new(1280, 720))
        } else if p.contains("genx320") || p.contains("imx8") {
            Some(SensorSize::new(320, 320))
        } else if p.contains("gen3") {
            Some(SensorSize::new(640, 480))
        } else {
            None
        }
    }

    /// Parses header lines and, once the header is complete, refuses an EVT version other
    /// than `version` (a header without one is accepted).
    pub fn parse_expecting(&mut self, buf: &[u8], eof: bool, ctx: &Ctx, version: &str) -> Result<Header> {
        let p = self.parse(buf, eof, ctx)?;
        if let (Header::Done(_), Some(v)) = (&p, self.evt_version()) {
            if v != version {
                return Err(crate::Error::Unsupported {
                    format: ctx.format,
                    location: ctx.loc(0),
                    message: format!("the header says EVT {v}, not {version}"),
                });
            }
        }
        Ok(p)
    }

    /// Incrementally parses header lines.
    pub fn parse(&mut self, buf: &[u8], eof: bool, _ctx: &Ctx) -> Result<Header> {
        scan_marked_lines(buf, eof, b'%', |line| Ok(self.line(line)))
    }
}

pub(crate) enum Sniff {
    Evt2,
    Evt3,
    Other(String),
    NoEvt,
}

/// Looks at the complete header lines within `head` for the EVT version.
pub(crate) fn sniff(head: &[u8]) -> Sniff {
    let mut h = PropheseeHeader::default();
    let ctx = Ctx::at(Format::Evt3, None, 0);
    let _ = h.parse(head, false, &ctx);
    match h.evt_version().as_deref() {
        Some("2.0") => Sniff::Evt2,
        Some("3.0") => Sniff::Evt3,
        Some(v) => Sniff::Other(v.to_owned()),
        None => Sniff::NoEvt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> PropheseeHeader {
        let mut h = PropheseeHeader::default();
        let ctx = Ctx::at(Format::Evt3, None, 0);
        h.parse(text.as_bytes(), true, &ctx).unwrap();
        h
    }

    #[test]
    fn header_variants() {
        let h = parse("% evt 3.0\n% plugin_name hal_plugin_gen41_evk3\n");
        assert_eq!(h.evt_version().as_deref(), Some("3.0"));
        assert_eq!(h.sensor_size(), Some(SensorSize::new(1280, 720)));
        let h = parse("% format EVT3;height=320;width=320\n% end\n");
        assert_eq!(h.evt_version().as_deref(), Some("3.0"));
        assert_eq!(h.sensor_size(), Some(SensorSize::new(320, 320)));
        let h = parse("% format EVT21;height=720;width=1280\n");
        assert_eq!(h.evt_version().as_deref(), Some("2.1"));
        let h = parse("% geometry 640x480\n% evt 2.0\n");
        assert_eq!(h.sensor_size(), Some(SensorSize::new(640, 480)));
        let h = parse("% Version 2\n% Width 304\n% Height 240\n");
        assert_eq!(
            (h.version, h.sensor_size()),
            (Some(2), Some(SensorSize::new(304, 240)))
        );
        assert_eq!(parse("% Date 2020\n").sensor_size(), None);
    }

    #[test]
    fn end_line_stops_the_header() {
        let mut h = PropheseeHeader::default();
        let ctx = Ctx::at(Format::Evt3, None, 0);
        // After `% end`, a data byte that happens to be '%' is not header.
        let bytes = b"% evt 3.0\n% end\n%\x00\x80";
        match h.parse(bytes, true, &ctx).unwrap() {
            Header::Done(n) => assert_eq!(n, 16),
            Header::More(_) => panic!("header should be done"),
        }
    }
}
