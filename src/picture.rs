//! Event frames as pictures: colour styles ([`FrameStyle`]), the saturation level shared by
//! every view of frames, a strip of frames as an RGB image, and PNG files. Used by
//! `stdl frames --png`, `stdl render`, the live page and the plots ([`crate::viz`]).

use std::path::Path;

use crate::error::{Context, Result};
use stdl_io::frames::{Channels, Frame, Geometry};

/// An 8-bit RGB image.
#[derive(Clone, Debug)]
pub struct Rgb {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major RGB bytes.
    pub data: Vec<u8>,
}

/// Colour of ON events on the light background.
pub const ON_RGB: [u8; 3] = [214, 40, 40];
/// Colour of OFF events on the light background.
pub const OFF_RGB: [u8; 3] = [30, 90, 200];

/// How event frames are coloured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FrameStyle {
    /// Events light up a dark background, as event-camera viewers show them: ON amber, OFF
    /// sky blue (merged polarity white), brightness the square root of the count relative
    /// to the saturation level, so that pixels with a single event are still seen.
    #[default]
    Dark,
    /// The earlier style: ON red and OFF blue ink on white, linear in the count.
    Light,
}

impl std::str::FromStr for FrameStyle {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "dark" => Ok(Self::Dark),
            "light" => Ok(Self::Light),
            o => Err(format!("unknown frame style `{o}` (dark, light)")),
        }
    }
}

impl FrameStyle {
    /// Background, gap, ON, OFF and merged-polarity colours.
    fn palette(self) -> ([f32; 3], u8, [f32; 3], [f32; 3], [f32; 3]) {
        let f = |c: [u8; 3]| c.map(f32::from);
        match self {
            FrameStyle::Dark => (
                f([12, 12, 18]),
                48,
                f([255, 184, 48]),
                f([64, 164, 255]),
                f([240, 240, 240]),
            ),
            FrameStyle::Light => (f([255, 255, 255]), 160, f(ON_RGB), f(OFF_RGB), f([0, 0, 0])),
        }
    }

    /// How strongly a pixel with count `v` shows, in `0..=1`, `sat` the count at which it is
    /// full.
    pub fn level(self, v: f32, sat: f32) -> f32 {
        let a = (v / sat).clamp(0.0, 1.0);
        match self {
            FrameStyle::Dark => a.sqrt(),
            FrameStyle::Light => a,
        }
    }

    /// The colour of a pixel whose ON and OFF [`FrameStyle::level`]s are `a_on` and `a_off`
    /// (`merged`: one polarity, in `a_off`).
    pub fn mix(self, a_on: f32, a_off: f32, merged: bool) -> [u8; 3] {
        let (bg, _, on_rgb, off_rgb, merged_rgb) = self.palette();
        let off_rgb = if merged { merged_rgb } else { off_rgb };
        let mut c = bg;
        match self {
            // Light on dark: the two colours add (a pixel with both is brighter).
            FrameStyle::Dark => {
                for k in 0..3 {
                    c[k] += a_on * (on_rgb[k] - bg[k]) + a_off * (off_rgb[k] - bg[k]);
                }
            }
            // Ink on paper: one layer over the other.
            FrameStyle::Light => {
                for k in 0..3 {
                    c[k] = c[k] * (1.0 - a_on) + on_rgb[k] * a_on;
                    c[k] = c[k] * (1.0 - a_off) + off_rgb[k] * a_off;
                }
            }
        }
        c.map(|v| v.round().clamp(0.0, 255.0) as u8)
    }
}

/// The count at which colours saturate: the 99th percentile of the non-zero counts of all
/// `frames` (at least 1), so that a few hot pixels do not wash out the rest.
pub fn saturation(frames: &[Frame]) -> f32 {
    saturation_of(frames.iter().flat_map(|f| f.data.iter().copied()))
}

/// [`saturation`] of any counts.
pub fn saturation_of(counts: impl IntoIterator<Item = f32>) -> f32 {
    let mut nz: Vec<f32> = counts.into_iter().filter(|&v| v > 0.0).collect();
    if nz.is_empty() {
        return 1.0;
    }
    let k = ((nz.len() as f64 * 0.99) as usize).min(nz.len() - 1);
    let (_, v, _) = nz.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    v.max(1.0)
}

/// Draws frames side by side in `style`: ON and OFF events in two colours (merged-polarity
/// frames in one), each pixel's colour as strong as its count relative to [`saturation`].
/// Tiles are scaled up by an integer factor so that each is at least `min_tile_px` pixels
/// tall.
pub fn render_strip(frames: &[Frame], geom: &Geometry, min_tile_px: u32, style: FrameStyle) -> Rgb {
    let (fw, fh) = (geom.out.width as u32, geom.out.height as u32);
    let scale = min_tile_px.div_ceil(fh).max(1);
    let gap = 4u32;
    let n = frames.len().max(1) as u32;
    let width = n * fw * scale + (n + 1) * gap;
    let height = fh * scale + 2 * gap;
    let mut data = vec![style.palette().1; (width * height * 3) as usize];
    let sat = saturation(frames);
    let plane = (fw * fh) as usize;
    let merged = geom.channels == Channels::Merged;
    for (i, f) in frames.iter().enumerate() {
        let x0 = gap + i as u32 * (fw * scale + gap);
        for y in 0..fh {
            for x in 0..fw {
                let p = (y * fw + x) as usize;
                let (on, off) = match geom.channels {
                    Channels::Split => (f.data[plane + p], f.data[p]),
                    Channels::Merged => (0.0, f.data[p]),
                };
                let c = style.mix(style.level(on, sat), style.level(off, sat), merged);
                for sy in 0..scale {
                    let py = gap + y * scale + sy;
                    let o = ((py * width + x0 + x * scale) * 3) as usize;
                    for px in data[o..o + 3 * scale as usize].chunks_exact_mut(3) {
                        px.copy_from_slice(&c);
                    }
                }
            }
        }
    }
    Rgb { width, height, data }
}

impl Rgb {
    /// An image of `size` (width, height) from its RGB bytes, row by row.
    pub fn new(size: (u32, u32), data: Vec<u8>) -> Self {
        Self {
            width: size.0,
            height: size.1,
            data,
        }
    }
}

/// Writes an RGB image as PNG.
/// Atomically: a failure (a full disk) leaves an earlier file at `path` as it was.
pub fn write_png(path: &Path, img: &Rgb) -> Result<()> {
    let mut file = crate::store::AtomicFile::create(path)?;
    let mut enc = png::Encoder::new(&mut file, img.width, img.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc
        .write_header()
        .with_context(|| format!("writing {}", path.display()))?;
    w.write_image_data(&img.data)
        .with_context(|| format!("writing {}", path.display()))?;
    w.finish()
        .with_context(|| format!("writing {}", path.display()))?;
    file.commit()?;
    Ok(())
}
