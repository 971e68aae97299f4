//! A legend drawn beside the plot area (never over the data).

use super::{text, PlotError, INK, MUTED};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub enum Swatch {
    Line(RGBColor),
    Dashed(RGBColor),
    Band(RGBColor, f64),
    Dot(RGBColor),
    Triangle(RGBColor),
    /// A heading line without a swatch.
    None,
}

pub struct Entry {
    pub label: String,
    pub swatch: Swatch,
}

impl Entry {
    pub fn new(label: impl Into<String>, swatch: Swatch) -> Entry {
        Entry { label: label.into(), swatch }
    }
}

/// Entries top-down from `top` logical pixels; labels longer than `max_chars` are cut.
pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
    top: f64,
    max_chars: usize,
    s: f64,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let px = |v: f64| (v * s) as i32;
    let mut y = top;
    for entry in entries {
        let label = if entry.label.chars().count() > max_chars {
            format!("{}…", entry.label.chars().take(max_chars - 1).collect::<String>())
        } else {
            entry.label.clone()
        };
        let (x0, x1, cy) = (px(4.0), px(26.0), px(y));
        let stroke = |c: &RGBColor| c.stroke_width((2.0 * s).round() as u32);
        match &entry.swatch {
            Swatch::Line(c) => {
                area.draw(&PathElement::new(vec![(x0, cy), (x1, cy)], stroke(c)))?;
                area.draw(&Circle::new(((x0 + x1) / 2, cy), px(3.5), c.filled()))?;
            }
            Swatch::Dashed(c) => {
                let dash = (x1 - x0) / 5;
                for i in [0, 2, 4] {
                    area.draw(&PathElement::new(vec![(x0 + i * dash, cy), (x0 + (i + 1) * dash, cy)], stroke(c)))?;
                }
            }
            Swatch::Band(c, opacity) => {
                area.draw(&Rectangle::new([(x0, cy - px(5.0)), (x1, cy + px(5.0))], c.mix(*opacity).filled()))?;
            }
            Swatch::Dot(c) => area.draw(&Circle::new(((x0 + x1) / 2, cy), px(4.0), c.filled()))?,
            Swatch::Triangle(c) => area.draw(&TriangleMarker::new(((x0 + x1) / 2, cy), px(5.0), c.filled()))?,
            Swatch::None => {}
        }
        let (x, color) = match entry.swatch {
            Swatch::None => (px(4.0), &MUTED),
            _ => (px(32.0), &INK),
        };
        let style = text(11.5, s, color).pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(label, (x, cy), style))?;
        y += 20.0;
    }
    Ok(())
}
