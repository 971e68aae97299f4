//! Grouped bars: one group per category (a model), one bar per series (a run or device),
//! the value printed above each bar, an optional reference line (1x).

use super::legend::{self, Entry, Swatch};
use super::{color, draw_empty, draw_title, text, Chart, PlotError};
use super::{AXIS, GRID, INK, MUTED};
use crate::report::fmt::{num, tick};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub struct BarChart {
    pub title: String,
    pub subtitle: String,
    pub y_label: String,
    pub categories: Vec<String>,
    /// (label, colour, one value per category)
    pub groups: Vec<(String, usize, Vec<Option<f64>>)>,
    pub reference_y: Option<(f64, String)>,
    /// Printed after each bar's value ("x").
    pub value_suffix: String,
    pub size: (u32, u32),
}

impl Chart for BarChart {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: f64) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        draw_title(root, &self.title, &self.subtitle, s)?;
        let values = self.groups.iter().flat_map(|g| g.2.iter().flatten().copied());
        let top = values.chain(self.reference_y.iter().map(|r| r.0)).fold(0.0, f64::max);
        if self.categories.is_empty() || top <= 0.0 {
            return draw_empty(root, "nothing to compare", s);
        }
        let (w, _) = root.dim_in_pixel();
        let (plot, side) = root.split_horizontally(w - (200.0 * s) as u32);
        let n = self.categories.len();
        let mut chart = ChartBuilder::on(&plot)
            .margin_top((56.0 * s) as u32)
            .margin_right((16.0 * s) as u32)
            .margin_left((8.0 * s) as u32)
            .margin_bottom((6.0 * s) as u32)
            .x_label_area_size((44.0 * s) as u32)
            .y_label_area_size((64.0 * s) as u32)
            .build_cartesian_2d(0.0..n as f64, 0.0..top * 1.18)?;
        chart
            .configure_mesh()
            .y_desc(&self.y_label)
            .label_style(text(11.5, s, &MUTED))
            .axis_desc_style(text(12.5, s, &INK))
            .bold_line_style(GRID.stroke_width(s as u32))
            .light_line_style(TRANSPARENT)
            .axis_style(AXIS.stroke_width(s as u32))
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| tick(*v))
            .draw()?;
        // Category names under the axis, centred on their group of bars.
        for (i, name) in self.categories.iter().enumerate() {
            let at = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            let style = text(11.5, s, &INK).pos(Pos::new(HPos::Center, VPos::Top));
            plot.draw(&Text::new(name.clone(), (at.0, at.1 + (8.0 * s) as i32), style))?;
        }
        let k = self.groups.len().max(1) as f64;
        let width = (0.8 / k).min(0.4);
        for (g, (_, c, values)) in self.groups.iter().enumerate() {
            for (i, value) in values.iter().enumerate() {
                let Some(v) = value else { continue };
                let x0 = i as f64 + 0.5 - k * width / 2.0 + g as f64 * width;
                let x1 = x0 + width * 0.92;
                chart.draw_series(std::iter::once(Rectangle::new([(x0, 0.0), (x1, *v)], color(*c).filled())))?;
                let at = chart.backend_coord(&((x0 + x1) / 2.0, *v));
                let style = text(10.5, s, &INK).pos(Pos::new(HPos::Center, VPos::Bottom));
                plot.draw(&Text::new(
                    format!("{}{}", num(*v), self.value_suffix),
                    (at.0, at.1 - (3.0 * s) as i32),
                    style,
                ))?;
            }
        }
        if let Some((value, _)) = &self.reference_y {
            let style = MUTED.stroke_width((1.5 * s) as u32);
            chart.draw_series(DashedLineSeries::new(
                [(0.0, *value), (n as f64, *value)],
                (6.0 * s) as u32,
                (4.0 * s) as u32,
                style,
            ))?;
        }
        let mut entries: Vec<Entry> =
            self.groups.iter().map(|(label, c, _)| Entry::new(label, Swatch::Band(color(*c), 1.0))).collect();
        if let Some((_, label)) = &self.reference_y {
            entries.push(Entry::new(label, Swatch::Dashed(MUTED)));
        }
        legend::draw(&side, &entries, 66.0, 26, s)
    }
}
