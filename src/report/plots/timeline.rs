//! Power and temperature over the run, one panel each, with every case's phases shaded
//! (the measured windows darkest) and labelled with the case number.

use super::legend::{self, Entry, Swatch};
use super::{color, draw_empty, draw_title, text, Chart, PlotError};
use super::{AXIS, GRID, INK, MUTED};
use crate::report::fmt::tick;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub struct Trace {
    /// Axis label with its unit: "power (W)".
    pub y_label: String,
    pub color: usize,
    /// One segment per case (no line joins two cases).
    pub segments: Vec<Vec<(f64, f64)>>,
    /// Start the y axis at zero (power) rather than near the data (temperature).
    pub from_zero: bool,
}

pub struct Shade {
    pub start_s: f64,
    pub end_s: f64,
    /// idle, warmup, measured or cooldown.
    pub phase: String,
    /// Shown above measured windows: the case number.
    pub label: String,
}

pub struct TimelineChart {
    pub title: String,
    pub subtitle: String,
    pub traces: Vec<Trace>,
    pub shades: Vec<Shade>,
    pub size: (u32, u32),
}

const PHASES: [(&str, &str); 4] =
    [("measured", "measured window"), ("warmup", "warm-up"), ("idle", "idle"), ("cooldown", "cool-down")];

fn phase_color(phase: &str) -> (RGBColor, f64) {
    match phase {
        "measured" => (color(0), 0.16),
        "warmup" => (color(1), 0.16),
        "cooldown" => (color(5), 0.10),
        _ => (MUTED, 0.10),
    }
}

impl Chart for TimelineChart {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: f64) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        draw_title(root, &self.title, &self.subtitle, s)?;
        let points = self.traces.iter().flat_map(|t| t.segments.iter().flatten());
        let t_end = points.map(|p| p.0).chain(self.shades.iter().map(|w| w.end_s)).fold(0.0, f64::max);
        if self.traces.is_empty() || t_end <= 0.0 {
            return draw_empty(root, "no samples", s);
        }
        let (w, _) = root.dim_in_pixel();
        let (plot, side) = root.split_horizontally(w - (200.0 * s) as u32);
        let body = plot.margin((48.0 * s) as u32, 0, 0, 0);
        let panels = body.split_evenly((self.traces.len(), 1));
        for (i, (trace, panel)) in self.traces.iter().zip(&panels).enumerate() {
            let last = i + 1 == self.traces.len();
            let ys = trace.segments.iter().flatten().map(|p| p.1);
            let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
            let (y0, y1) = if !lo.is_finite() {
                (0.0, 1.0)
            } else if trace.from_zero {
                (0.0, (hi * 1.15).max(1.0))
            } else {
                (lo - (hi - lo).max(2.0) * 0.3, hi + (hi - lo).max(2.0) * 0.3)
            };
            let mut chart = ChartBuilder::on(panel)
                .margin_right((16.0 * s) as u32)
                .margin_left((8.0 * s) as u32)
                .margin_top((8.0 * s) as u32)
                .x_label_area_size(if last { (44.0 * s) as u32 } else { 0 })
                .y_label_area_size((64.0 * s) as u32)
                .build_cartesian_2d(0.0..t_end * 1.01, y0..y1)?;
            let mut mesh = chart.configure_mesh();
            mesh.y_desc(&trace.y_label)
                .label_style(text(11.5, s, &MUTED))
                .axis_desc_style(text(12.5, s, &INK))
                .bold_line_style(GRID.stroke_width(s as u32))
                .light_line_style(TRANSPARENT)
                .axis_style(AXIS.stroke_width(s as u32))
                .y_labels(5)
                .x_label_formatter(&|v| tick(*v))
                .y_label_formatter(&|v| tick(*v));
            if last {
                mesh.x_desc("time since the run started (s)");
            } else {
                mesh.x_labels(0);
            }
            mesh.draw()?;
            for shade in &self.shades {
                let (c, opacity) = phase_color(&shade.phase);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(shade.start_s, y0), (shade.end_s, y1)],
                    c.mix(opacity).filled(),
                )))?;
                if i == 0 && shade.phase == "measured" && !shade.label.is_empty() {
                    let a = chart.backend_coord(&(shade.start_s, y1));
                    let b = chart.backend_coord(&(shade.end_s, y1));
                    if b.0 - a.0 >= (12.0 * s) as i32 {
                        let style = text(10.0, s, &MUTED).pos(Pos::new(HPos::Center, VPos::Top));
                        panel.draw(&Text::new(
                            shade.label.clone(),
                            ((a.0 + b.0) / 2, a.1 + (3.0 * s) as i32),
                            style,
                        ))?;
                    }
                }
            }
            let c = color(trace.color);
            for segment in &trace.segments {
                chart
                    .draw_series(LineSeries::new(segment.iter().copied(), c.stroke_width((1.5 * s).max(1.0) as u32)))?;
            }
        }
        let present: Vec<&str> = self.shades.iter().map(|w| w.phase.as_str()).collect();
        let mut entries: Vec<Entry> =
            self.traces.iter().map(|t| Entry::new(&t.y_label, Swatch::Line(color(t.color)))).collect();
        for (phase, label) in PHASES {
            if present.contains(&phase) {
                let (c, opacity) = phase_color(phase);
                entries.push(Entry::new(label, Swatch::Band(c, opacity)));
            }
        }
        entries.push(Entry::new("numbers: case # (tables)", Swatch::None));
        legend::draw(&side, &entries, 66.0, 26, s)
    }
}
