//! Lines over batch size on log-log axes (throughput, efficiency, speedup), with optional
//! shaded bands and a reference line (1x speedup); and the same as small multiples, one
//! panel per model with shared axes (latency percentiles).

use super::legend::{self, Entry, Swatch};
use super::{color, draw_empty, draw_title, log_range, log_ticks, pow2_ticks, text, Chart, PlotError};
use super::{AXIS, GRID, INK, MUTED};
use crate::report::fmt::tick;
use plotters::coord::combinators::{LogCoord, WithKeyPoints};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub struct Series {
    pub label: String,
    pub color: usize,
    /// (batch, value), sorted by batch.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed, with hollow markers, and left out of the legend (see `style_notes`).
    pub dashed: bool,
}

/// A shaded region between two curves of one series (a single batch draws as a bar).
pub struct Band {
    pub color: usize,
    pub lower: Vec<(f64, f64)>,
    pub upper: Vec<(f64, f64)>,
    pub opacity: f64,
}

pub struct LineChart {
    pub title: String,
    pub subtitle: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    /// A dashed horizontal line with its legend label (e.g. 1x = no change).
    pub reference_y: Option<(f64, String)>,
    /// Legend lines explaining solid and dashed series: (text, dashed).
    pub style_notes: Vec<(String, bool)>,
    pub empty_message: String,
    pub size: (u32, u32),
}

/// One small panel of a [`PanelGrid`].
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
}

pub struct PanelGrid {
    pub title: String,
    pub subtitle: String,
    pub x_label: String,
    pub y_label: String,
    pub panels: Vec<Panel>,
    pub columns: usize,
    pub width: u32,
}

type LogX = WithKeyPoints<LogCoord<f64>>;
type LogLog = Cartesian2d<LogX, LogX>;

fn points<'a>(series: &'a [Series], bands: &'a [Band]) -> impl Iterator<Item = (f64, f64)> + 'a {
    let lines = series.iter().flat_map(|s| s.points.iter().copied());
    lines.chain(bands.iter().flat_map(|b| b.lower.iter().chain(&b.upper).copied()))
}

/// Log-log axes over `x` (batch sizes: powers of two) and `y`, with a light grid.
fn log_log<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    (x_label, y_label): (&str, &str),
    top: f64,
    s: f64,
) -> Result<ChartContext<'a, DB, LogLog>, PlotError>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .margin_top((top * s) as u32)
        .margin_right((16.0 * s) as u32)
        .margin_left((8.0 * s) as u32)
        .margin_bottom((6.0 * s) as u32)
        .x_label_area_size(((if x_label.is_empty() { 24.0 } else { 44.0 }) * s) as u32)
        .y_label_area_size(((if y_label.is_empty() { 44.0 } else { 64.0 }) * s) as u32)
        .build_cartesian_2d(
            (x0..x1).log_scale().with_key_points(pow2_ticks(x0, x1)),
            (y0..y1).log_scale().with_key_points(log_ticks(y0, y1, 9)),
        )?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(text(11.5, s, &MUTED))
        .axis_desc_style(text(12.5, s, &INK))
        .bold_line_style(GRID.stroke_width(s as u32))
        .light_line_style(TRANSPARENT)
        .axis_style(AXIS.stroke_width(s as u32))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .draw()?;
    Ok(chart)
}

fn draw_lines<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, LogLog>,
    series: &[Series],
    bands: &[Band],
    s: f64,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    for band in bands {
        let c = color(band.color).mix(band.opacity);
        if band.lower.len() == 1 {
            let (bx, lo) = band.lower[0];
            let hi = band.upper.first().map_or(lo, |p| p.1);
            let width = (10.0 * s) as u32;
            chart.draw_series(std::iter::once(PathElement::new(vec![(bx, lo), (bx, hi)], c.stroke_width(width))))?;
        } else {
            let outline: Vec<(f64, f64)> = band.lower.iter().chain(band.upper.iter().rev()).copied().collect();
            chart.draw_series(std::iter::once(Polygon::new(outline, c.filled())))?;
        }
    }
    for series in series {
        let c = color(series.color);
        let (r, line) = ((4.0 * s) as u32, c.stroke_width((2.0 * s) as u32));
        if series.dashed {
            let (dash, gap) = ((7.0 * s) as u32, (4.0 * s) as u32);
            chart.draw_series(DashedLineSeries::new(series.points.iter().copied(), dash, gap, line))?;
            chart.draw_series(series.points.iter().map(|p| Circle::new(*p, r, WHITE.filled())))?;
            chart.draw_series(series.points.iter().map(|p| Circle::new(*p, r, c.stroke_width((1.5 * s) as u32))))?;
        } else {
            chart.draw_series(LineSeries::new(series.points.iter().copied(), line))?;
            chart.draw_series(series.points.iter().map(|p| Circle::new(*p, r, c.filled())))?;
            chart.draw_series(series.points.iter().map(|p| Circle::new(*p, r, WHITE.stroke_width(s as u32))))?;
        }
    }
    Ok(())
}

impl LineChart {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> LineChart {
        LineChart {
            title: title.into(),
            subtitle: String::new(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            bands: Vec::new(),
            reference_y: None,
            style_notes: Vec::new(),
            empty_message: "no data".into(),
            size: (880, 460),
        }
    }
}

impl Chart for LineChart {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: f64) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        draw_title(root, &self.title, &self.subtitle, s)?;
        let reference = self.reference_y.iter().map(|(y, _)| (f64::NAN, *y));
        let x = log_range(points(&self.series, &self.bands).map(|p| p.0), 1.25);
        let y = log_range(points(&self.series, &self.bands).chain(reference).map(|p| p.1), 1.3);
        let (Some(x), Some(y)) = (x, y) else {
            return draw_empty(root, &self.empty_message, s);
        };
        let (w, _) = root.dim_in_pixel();
        let (plot, side) = root.split_horizontally(w - (200.0 * s) as u32);
        let mut chart = log_log(&plot, x, y, (&self.x_label, &self.y_label), 56.0, s)?;
        if let Some((value, _)) = &self.reference_y {
            let style = MUTED.stroke_width((1.5 * s) as u32);
            let (d, gap) = ((6.0 * s) as u32, (4.0 * s) as u32);
            chart.draw_series(DashedLineSeries::new([(x.0, *value), (x.1, *value)], d, gap, style))?;
        }
        draw_lines(&mut chart, &self.series, &self.bands, s)?;
        let solid = self.series.iter().filter(|se| !se.dashed);
        let mut entries: Vec<Entry> = solid.map(|se| Entry::new(&se.label, Swatch::Line(color(se.color)))).collect();
        for (note, dashed) in &self.style_notes {
            entries.push(Entry::new(note, if *dashed { Swatch::Dashed(MUTED) } else { Swatch::Line(MUTED) }));
        }
        if let Some((_, label)) = &self.reference_y {
            entries.push(Entry::new(label, Swatch::Dashed(MUTED)));
        }
        legend::draw(&side, &entries, 66.0, 26, s)
    }
}

impl PanelGrid {
    fn rows(&self) -> usize {
        self.panels.len().div_ceil(self.columns.max(1)).max(1)
    }
}

impl Chart for PanelGrid {
    fn size(&self) -> (u32, u32) {
        (self.width, 70 + 250 * self.rows() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: f64) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        draw_title(root, &self.title, &self.subtitle, s)?;
        let all = || self.panels.iter().flat_map(|p| points(&p.series, &p.bands));
        let (Some(x), Some(y)) = (log_range(all().map(|p| p.0), 1.25), log_range(all().map(|p| p.1), 1.3)) else {
            return draw_empty(root, "no data", s);
        };
        let body = root.margin((56.0 * s) as u32, 0, 0, 0);
        let cells = body.split_evenly((self.rows(), self.columns.max(1)));
        for (i, (panel, cell)) in self.panels.iter().zip(&cells).enumerate() {
            let first_column = i % self.columns.max(1) == 0;
            let last_row = i / self.columns.max(1) + 1 == self.rows();
            let labels = (
                if last_row { self.x_label.as_str() } else { "" },
                if first_column { self.y_label.as_str() } else { "" },
            );
            let mut chart = log_log(cell, x, y, labels, 24.0, s)?;
            draw_lines(&mut chart, &panel.series, &panel.bands, s)?;
            let (x_px, _) = chart.plotting_area().get_pixel_range();
            let color = panel.series.first().map_or(INK, |se| super::color(se.color));
            let style = text(12.5, s, &color).pos(Pos::new(HPos::Left, VPos::Top));
            cell.draw(&Text::new(
                panel.title.clone(),
                (x_px.start - cell.get_base_pixel().0, (4.0 * s) as i32),
                style,
            ))?;
        }
        Ok(())
    }
}
