//! Roofline: achieved FLOP/s against arithmetic intensity (FLOP/byte), log-log, under the
//! device's ceilings (peak FLOP/s, memory bandwidth x intensity) where the run knows them.

use super::legend::{self, Entry, Swatch};
use super::{color, draw_empty, draw_title, log_range, log_ticks, text, Chart, PlotError};
use super::{AXIS, GRID, INK, MUTED};
use crate::report::fmt::tick;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub struct RooflinePoint {
    /// Arithmetic intensity, FLOP/byte.
    pub intensity: f64,
    pub flops_per_s: f64,
    pub color: usize,
    /// Marker radius in logical pixels.
    pub radius: f64,
    pub triangle: bool,
    /// Small text beside the marker (a batch size), or empty.
    pub annotation: String,
}

pub struct Ceiling {
    pub label: String,
    pub peak_flops_per_s: Option<f64>,
    pub bandwidth_bytes_per_s: Option<f64>,
}

pub struct RooflineChart {
    pub title: String,
    pub subtitle: String,
    pub points: Vec<RooflinePoint>,
    pub ceilings: Vec<Ceiling>,
    /// (label, colour, triangle marker)
    pub legend: Vec<(String, usize, bool)>,
    /// Shown in the chart when there are no ceilings.
    pub no_ceiling_note: String,
    pub size: (u32, u32),
}

impl Ceiling {
    fn at(&self, intensity: f64) -> Option<f64> {
        match (self.peak_flops_per_s, self.bandwidth_bytes_per_s) {
            (Some(p), Some(b)) => Some(p.min(b * intensity)),
            (Some(p), None) => Some(p),
            (None, Some(b)) => Some(b * intensity),
            (None, None) => None,
        }
    }
}

impl Chart for RooflineChart {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: f64) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        draw_title(root, &self.title, &self.subtitle, s)?;
        let x = log_range(self.points.iter().map(|p| p.intensity), 3.0);
        let Some((x0, x1)) = x else {
            return draw_empty(root, "no achieved FLOP/s to plot", s);
        };
        let ceiling_ys = self.ceilings.iter().flat_map(|c| [c.at(x0), c.at(x1)]).flatten();
        let y = log_range(self.points.iter().map(|p| p.flops_per_s).chain(ceiling_ys), 2.0);
        let Some((y0, y1)) = y else {
            return draw_empty(root, "no achieved FLOP/s to plot", s);
        };
        let (w, _) = root.dim_in_pixel();
        let (plot, side) = root.split_horizontally(w - (200.0 * s) as u32);
        let mut chart = ChartBuilder::on(&plot)
            .margin_top((56.0 * s) as u32)
            .margin_right((16.0 * s) as u32)
            .margin_left((8.0 * s) as u32)
            .margin_bottom((6.0 * s) as u32)
            .x_label_area_size((44.0 * s) as u32)
            .y_label_area_size((64.0 * s) as u32)
            .build_cartesian_2d(
                (x0..x1).log_scale().with_key_points(log_ticks(x0, x1, 10)),
                (y0..y1).log_scale().with_key_points(log_ticks(y0, y1, 9)),
            )?;
        chart
            .configure_mesh()
            .x_desc("arithmetic intensity (FLOP/byte)")
            .y_desc("achieved FLOP/s")
            .label_style(text(11.5, s, &MUTED))
            .axis_desc_style(text(12.5, s, &INK))
            .bold_line_style(GRID.stroke_width(s as u32))
            .light_line_style(TRANSPARENT)
            .axis_style(AXIS.stroke_width(s as u32))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .draw()?;

        for ceiling in &self.ceilings {
            let mut xs = vec![x0, x1];
            if let (Some(p), Some(b)) = (ceiling.peak_flops_per_s, ceiling.bandwidth_bytes_per_s) {
                let ridge = p / b;
                if ridge > x0 && ridge < x1 {
                    xs.insert(1, ridge);
                }
            }
            let line: Vec<(f64, f64)> = xs.iter().filter_map(|&x| ceiling.at(x).map(|y| (x, y))).collect();
            chart.draw_series(LineSeries::new(line.clone(), INK.mix(0.55).stroke_width((1.5 * s) as u32)))?;
            if let Some(&(lx, ly)) = line.last() {
                let style = text(11.0, s, &INK).pos(Pos::new(HPos::Right, VPos::Bottom));
                let at = chart.backend_coord(&(lx, ly));
                plot.draw(&Text::new(
                    ceiling.label.clone(),
                    (at.0 - (4.0 * s) as i32, at.1 - (4.0 * s) as i32),
                    style,
                ))?;
            }
        }
        if self.ceilings.is_empty() && !self.no_ceiling_note.is_empty() {
            let at = chart.backend_coord(&(x0, y1));
            let style = text(11.5, s, &MUTED).pos(Pos::new(HPos::Left, VPos::Top));
            plot.draw(&Text::new(
                self.no_ceiling_note.clone(),
                (at.0 + (10.0 * s) as i32, at.1 + (8.0 * s) as i32),
                style,
            ))?;
        }
        // Points drawn first, then their labels: points that coincide (b1 and b4 of a model
        // at one intensity) share one label; a label that would cover another goes left.
        let mut labels: Vec<((i32, i32), i32, String)> = Vec::new();
        for p in &self.points {
            let c = color(p.color);
            let r = (p.radius * s) as u32;
            let at = (p.intensity, p.flops_per_s);
            if p.triangle {
                chart.draw_series(std::iter::once(TriangleMarker::new(at, r + s as u32, c.mix(0.85).filled())))?;
            } else {
                chart.draw_series(std::iter::once(Circle::new(at, r, c.mix(0.8).filled())))?;
                chart.draw_series(std::iter::once(Circle::new(at, r, WHITE.stroke_width(s as u32))))?;
            }
            if p.annotation.is_empty() {
                continue;
            }
            let px = chart.backend_coord(&at);
            let near = (6.0 * s) as i32;
            match labels.iter_mut().find(|(q, _, _)| (q.0 - px.0).abs() <= near && (q.1 - px.1).abs() <= near) {
                Some(label) => label.2 = format!("{}, {}", label.2, p.annotation),
                None => labels.push((px, r as i32, p.annotation.clone())),
            }
        }
        // Estimated label boxes (DejaVu Sans at 10 px: about 6 px per character).
        let (char_w, half_h, gap) = (6.2 * s, (6.0 * s) as i32, (3.0 * s) as i32);
        let mut boxes: Vec<(i32, i32, i32, i32)> = Vec::new();
        for ((x, y), r, label) in labels {
            let w = (label.chars().count() as f64 * char_w) as i32;
            let right = (x + r + gap, y - half_h, x + r + gap + w, y + half_h);
            let left = (x - r - gap - w, y - half_h, x - r - gap, y + half_h);
            let free =
                |b: &(i32, i32, i32, i32)| !boxes.iter().any(|o| b.0 < o.2 && o.0 < b.2 && b.1 < o.3 && o.1 < b.3);
            let (b, anchor) = if free(&right) || !free(&left) { (right, HPos::Left) } else { (left, HPos::Right) };
            let at = if matches!(anchor, HPos::Left) { (b.0, y) } else { (b.2, y) };
            boxes.push(b);
            plot.draw(&Text::new(label, at, text(10.0, s, &MUTED).pos(Pos::new(anchor, VPos::Center))))?;
        }
        let entries: Vec<Entry> = self
            .legend
            .iter()
            .map(|(label, c, triangle)| {
                Entry::new(label, if *triangle { Swatch::Triangle(color(*c)) } else { Swatch::Dot(color(*c)) })
            })
            .collect();
        legend::draw(&side, &entries, 66.0, 26, s)
    }
}
