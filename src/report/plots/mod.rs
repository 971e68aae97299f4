//! Plots drawn with plotters, each written as a PNG (twice the page size, for sharp screens)
//! and an SVG. Text is drawn with the bundled DejaVu Sans through plotters' pure-Rust
//! `ab_glyph` path (no fontconfig); the SVG carries the same font inline (WOFF2), so both
//! files look the same anywhere.

mod bars;
mod legend;
mod line;
mod roofline;
mod timeline;

pub use bars::BarChart;
pub use line::{Band, LineChart, Panel, PanelGrid, Series};
pub use roofline::{Ceiling, RooflineChart, RooflinePoint};
pub use timeline::{Shade, TimelineChart, Trace};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, RGBColor};
use std::path::{Path, PathBuf};
use std::sync::Once;

pub const FONT: &str = "DejaVu Sans";
const FONT_TTF: &[u8] = include_bytes!("../../../templates/fonts/DejaVuSans.ttf");
const FONT_WOFF2: &[u8] = include_bytes!("../../../templates/fonts/DejaVuSans.woff2");

/// Tableau 10: distinct, colour-blind-friendly enough, calm on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];
pub const INK: RGBColor = RGBColor(0x22, 0x25, 0x2b);
pub const MUTED: RGBColor = RGBColor(0x6b, 0x70, 0x78);
pub const GRID: RGBColor = RGBColor(0xe6, 0xe8, 0xeb);
pub const AXIS: RGBColor = RGBColor(0xa0, 0xa4, 0xaa);

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

#[derive(Debug)]
pub struct PlotError(pub String);

impl std::fmt::Display for PlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlotError {}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError(e.to_string())
    }
}

/// Something drawable at a logical size; `s` scales every length (2.0 for the PNG).
pub trait Chart {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: f64) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static;
}

/// Register the bundled font with plotters once per process.
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known good: a failure here is a build problem.
        if plotters::style::register_font(FONT, FontStyle::Normal, FONT_TTF).is_err() {
            panic!("the bundled font templates/fonts/DejaVuSans.ttf is not a valid font");
        }
    });
}

/// Text of `px` logical pixels (plotters sizes fonts at 1.24 x the em height).
pub fn text(px: f64, s: f64, color: &RGBColor) -> TextStyle<'static> {
    (FONT, px * 1.24 * s).into_font().color(color)
}

/// Write `chart` as `dir/stem.png` and `dir/stem.svg`; returns both paths.
pub fn render<C: Chart>(chart: &C, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), PlotError> {
    register_font();
    let (w, h) = chart.size();
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = BitMapBackend::new(&png, (w * 2, h * 2)).into_drawing_area();
        root.fill(&WHITE)?;
        chart.draw(&root, 2.0)?;
        root.present()?;
    }
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        chart.draw(&root, 1.0)?;
        root.present()?;
    }
    std::fs::write(&svg, embed_font(&text)).map_err(|e| PlotError(format!("{}: cannot write: {e}", svg.display())))?;
    Ok((png, svg))
}

/// Put the font inside the SVG so it renders the same without DejaVu Sans installed.
fn embed_font(svg: &str) -> String {
    let style = format!(
        "<defs><style>@font-face{{font-family:'{FONT}';src:url(data:font/woff2;base64,{})format('woff2')}}\
         text{{font-family:'{FONT}',Verdana,sans-serif}}</style></defs>",
        base64(FONT_WOFF2)
    );
    match svg.find("<svg").and_then(|start| svg[start..].find('>').map(|end| start + end + 1)) {
        Some(at) => format!("{}\n{style}{}", &svg[..at], &svg[at..]),
        None => svg.to_string(),
    }
}

pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Log-axis ticks: 1-2-5 per decade, thinned to at most `max` labels.
pub fn log_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    for steps in [&[1.0, 2.0, 5.0][..], &[1.0, 3.0][..], &[1.0][..]] {
        let mut ticks = Vec::new();
        let mut decade = 10f64.powf(lo.log10().floor());
        while decade <= hi * 1.000_001 {
            for m in steps {
                let v = decade * m;
                if v >= lo * 0.999_999 && v <= hi * 1.000_001 {
                    ticks.push(v);
                }
            }
            decade *= 10.0;
        }
        if ticks.len() <= max || steps.len() == 1 {
            if ticks.len() > max {
                let every = ticks.len().div_ceil(max);
                ticks = ticks.into_iter().step_by(every).collect();
            }
            return ticks;
        }
    }
    Vec::new()
}

/// Powers of two covering [lo, hi] (batch sizes).
pub fn pow2_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut v = 2f64.powf(lo.log2().floor());
    while v <= hi * 1.000_001 {
        if v >= lo * 0.999_999 {
            ticks.push(v);
        }
        v *= 2.0;
    }
    ticks
}

/// A range padded on a log scale so points do not sit on the frame.
pub fn log_range(values: impl Iterator<Item = f64>, pad: f64) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return None;
    }
    let (lo, hi) = if hi / lo < 1.5 { (lo / 1.5, hi * 1.5) } else { (lo, hi) };
    Some((lo / pad, hi * pad))
}

/// A title line at the top left of the chart.
pub fn draw_title<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
    s: f64,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    root.draw(&Text::new(title.to_string(), ((16.0 * s) as i32, (12.0 * s) as i32), text(15.0, s, &INK)))?;
    if !subtitle.is_empty() {
        root.draw(&Text::new(subtitle.to_string(), ((16.0 * s) as i32, (33.0 * s) as i32), text(11.5, s, &MUTED)))?;
    }
    Ok(())
}

/// A message in the middle of an otherwise empty chart.
pub fn draw_empty<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, message: &str, s: f64) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let (w, h) = root.dim_in_pixel();
    let style = text(13.0, s, &MUTED).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Center,
    ));
    root.draw(&Text::new(message.to_string(), (w as i32 / 2, h as i32 / 2), style))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(pow2_ticks(1.0, 64.0), vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
        assert_eq!(log_ticks(1.5, 60.0, 10), vec![2.0, 5.0, 10.0, 20.0, 50.0]);
        assert!(log_ticks(1e-3, 1e9, 8).len() <= 8);
    }
}
