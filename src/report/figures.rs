//! The run's figures: which plots a run gets, built from its rows and written as PNG + SVG.

use super::ceilings::ceilings_for;
use super::load::{unique, Config, Row, Run};
use super::plots::{self, Band, Chart, LineChart, Panel, PanelGrid, RooflineChart, RooflinePoint, Series};
use super::plots::{Shade, TimelineChart, Trace};
use super::ReportError;
use serde::Serialize;
use std::path::Path;

/// One plot on the page: PNG shown, SVG linked; paths relative to index.html.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub id: String,
    pub title: String,
    pub caption: String,
    pub png: String,
    pub svg: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Default, Serialize)]
pub struct Figures {
    pub throughput: Vec<Figure>,
    pub latency: Vec<Figure>,
    pub efficiency: Vec<Figure>,
    /// Why there are no efficiency plots, when there are none.
    pub efficiency_missing: String,
    pub timeline: Vec<Figure>,
    pub roofline: Vec<Figure>,
    pub layer_rooflines: Vec<Figure>,
    /// What the rooflines are drawn against (ceilings or why none).
    pub ceilings_note: String,
    /// Configurations measured at one batch size only: no line to draw, the tables have them.
    pub single_batch: Vec<String>,
}

pub const PLOTS_DIR: &str = "plots";

/// Write a chart into `out/plots/` and describe it for the page.
pub fn save<C: Chart>(chart: &C, out: &Path, stem: &str, title: &str, caption: &str) -> Result<Figure, ReportError> {
    let dir = out.join(PLOTS_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| ReportError(format!("{}: cannot create: {e}", dir.display())))?;
    plots::render(chart, &dir, stem).map_err(|e| ReportError(format!("plot {stem}: {e}")))?;
    let (width, height) = chart.size();
    Ok(Figure {
        id: stem.to_string(),
        title: title.into(),
        caption: caption.into(),
        png: format!("{PLOTS_DIR}/{stem}.png"),
        svg: format!("{PLOTS_DIR}/{stem}.svg"),
        width,
        height,
    })
}

/// Colour of each model: its position in the run, the same in every plot.
fn model_color(models: &[String], model: &str) -> usize {
    models.iter().position(|m| m == model).unwrap_or(0)
}

fn rows_of<'a>(run: &'a Run, config: &Config) -> Vec<&'a Row> {
    run.ok_rows().filter(|r| &r.config() == config).collect()
}

/// One series per model: (batch, value) sorted by batch.
fn series_by_model(run: &Run, rows: &[&Row], value: impl Fn(&Row) -> Option<f64>) -> Vec<Series> {
    let models = run.models();
    unique(rows.iter().map(|r| r.model().to_string()))
        .into_iter()
        .filter_map(|model| {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.model() == model)
                .filter_map(|r| value(r).map(|v| (r.batch() as f64, v)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (!points.is_empty()).then(|| Series {
                color: model_color(&models, &model),
                label: model,
                points,
                dashed: false,
            })
        })
        .collect()
}

fn host_line(run: &Run) -> String {
    let h = &run.context.host;
    format!("{} · {} logical CPUs · {}", h.cpu_model, h.logical_cpus, run.context.run_id)
}

pub fn build(run: &Run, out: &Path) -> Result<Figures, ReportError> {
    let mut figures = Figures::default();
    let batch_counts: Vec<usize> =
        run.configs().iter().map(|c| unique(rows_of(run, c).iter().map(|r| r.batch())).len()).collect();
    let any_sweep = batch_counts.iter().any(|&n| n > 1);
    for (config, batches) in run.configs().into_iter().zip(batch_counts) {
        let rows = rows_of(run, &config);
        if rows.is_empty() {
            continue;
        }
        let slug = config.slug();
        let label = config.label();
        // A line needs two batch sizes; one point per model is better read in the tables.
        if batches == 1 && any_sweep {
            figures.single_batch.push(format!("{label}: batch {} only", rows[0].batch()));
            continue;
        }

        let mut chart =
            LineChart::new(&format!("Throughput · {label}"), "batch size (images)", "throughput (images/s)");
        chart.subtitle = host_line(run);
        chart.series = series_by_model(run, &rows, Row::images_per_s);
        figures.throughput.push(save(
            &chart,
            out,
            &format!("throughput_{slug}"),
            &format!("Throughput vs batch size · {label}"),
            "Images per second over the measured window, one line per model; both axes logarithmic.",
        )?);

        figures.latency.push(save(&latency_chart(run, &rows, &label), out, &format!("latency_{slug}"), &format!("Latency percentiles · {label}"),
            "Median latency of one iteration (one batch) per model; the darker band reaches the 90th percentile, the lighter one the 99th. Both axes logarithmic.")?);

        // images/J (energy counter) and images/s/W (average power) are the same unit: one chart.
        let mut series = series_by_model(run, &rows, Row::images_per_j);
        let per_watt = series_by_model(run, &rows, Row::images_per_s_per_w);
        if !series.is_empty() || !per_watt.is_empty() {
            series.extend(per_watt.into_iter().map(|se| Series { dashed: true, ..se }));
            let mut chart = LineChart::new(
                &format!("Energy efficiency · {label}"),
                "batch size (images)",
                "efficiency (images/J = images/s/W)",
            );
            chart.subtitle = host_line(run);
            chart.series = series;
            chart.style_notes =
                vec![("images/J (energy counter)".into(), false), ("images/s/W (avg. power)".into(), true)];
            figures.efficiency.push(save(
                &chart,
                out,
                &format!("efficiency_{slug}"),
                &format!("Energy efficiency vs batch size · {label}"),
                "Solid: images per joule, from the energy counter's change over the measured window (integrated power where there is no counter). Dashed: images per second ÷ average power over the same window. The units agree; the lines part where the two measurements do.",
            )?);
        }
    }
    if figures.efficiency.is_empty() {
        figures.efficiency_missing = no_power_reason(run);
    }
    if let Some(chart) = timeline_chart(run) {
        figures.timeline.push(save(
            &chart,
            out,
            "timeline",
            "Power and temperature over the run",
            "Samples of every case placed on one clock; shaded spans are each case's phases, the measured windows darkest and numbered by case.",
        )?);
    }
    rooflines(run, out, &mut figures)?;
    Ok(figures)
}

fn no_power_reason(run: &Run) -> String {
    if let Some(e) = run.rows.iter().find_map(|r| r.telemetry_error.as_ref()) {
        return format!("No power telemetry could be read for this run ({e})");
    }
    let all_cpu = run.rows.iter().all(|r| r.config().device == "cpu");
    if all_cpu {
        "No power telemetry for this run (CPU without RAPL)".into()
    } else {
        "No power telemetry for this run".into()
    }
}

/// Small multiples, one panel per model on shared axes: overlapping bands would hide each other.
fn latency_chart(run: &Run, rows: &[&Row], label: &str) -> PanelGrid {
    let latency =
        |r: &Row, q: fn(&crate::exec::stats::LatencyStats) -> f64| r.record.result.as_ref().map(|x| q(&x.latency));
    let p50 = series_by_model(run, rows, |r| latency(r, |l| l.p50_ms));
    let p90 = series_by_model(run, rows, |r| latency(r, |l| l.p90_ms));
    let p99 = series_by_model(run, rows, |r| latency(r, |l| l.p99_ms));
    let panels = p50
        .into_iter()
        .zip(p90)
        .zip(p99)
        .map(|((p50, p90), p99)| Panel {
            title: p50.label.clone(),
            bands: vec![
                Band { color: p50.color, lower: p50.points.clone(), upper: p90.points.clone(), opacity: 0.30 },
                Band { color: p50.color, lower: p90.points, upper: p99.points, opacity: 0.13 },
            ],
            series: vec![p50],
        })
        .collect::<Vec<_>>();
    PanelGrid {
        title: format!("Latency · {label}"),
        subtitle: "line: median (p50); darker band up to p90, lighter band up to p99; axes shared".into(),
        x_label: "batch size (images)".into(),
        y_label: "latency per batch (ms)".into(),
        columns: if panels.len() == 4 { 2 } else { panels.len().clamp(1, 3) },
        panels,
        width: 880,
    }
}

/// Power and temperature of every case with samples, on the run's clock.
fn timeline_chart(run: &Run) -> Option<TimelineChart> {
    let with_samples: Vec<&Row> =
        run.rows.iter().filter(|r| r.telemetry.as_ref().is_some_and(|t| !t.samples.is_empty())).collect();
    let t0 = with_samples.iter().map(|r| r.record.started_unix_s).fold(f64::INFINITY, f64::min);
    let mut power = Trace { y_label: "power (W)".into(), color: 2, segments: Vec::new(), from_zero: true };
    let mut temperature =
        Trace { y_label: "temperature (°C)".into(), color: 1, segments: Vec::new(), from_zero: false };
    let mut shades = Vec::new();
    for r in &with_samples {
        let t = r.telemetry.as_ref()?;
        let offset = r.record.started_unix_s - t0;
        power.segments.push(t.samples.iter().filter_map(|s| s.power_w.map(|p| (offset + s.t_s, p))).collect());
        temperature
            .segments
            .push(t.samples.iter().filter_map(|s| s.temperature_c.map(|c| (offset + s.t_s, c))).collect());
        shades.extend(t.windows.iter().map(|w| Shade {
            start_s: offset + w.start_s,
            end_s: offset + w.end_s,
            phase: w.phase.clone(),
            label: r.index.to_string(),
        }));
    }
    let traces: Vec<Trace> =
        [power, temperature].into_iter().filter(|t| t.segments.iter().any(|s| !s.is_empty())).collect();
    if traces.is_empty() {
        return None;
    }
    let height = 150 + 190 * traces.len() as u32;
    Some(TimelineChart {
        title: "Power and temperature".into(),
        subtitle: host_line(run),
        traces,
        shades,
        size: (880, height),
    })
}

fn rooflines(run: &Run, out: &Path, figures: &mut Figures) -> Result<(), ReportError> {
    let models = run.models();
    let devices = unique(run.ok_rows().map(|r| r.config().device));
    let mut notes = Vec::new();
    for device in &devices {
        let rows: Vec<&Row> = run.ok_rows().filter(|r| &r.config().device == device).collect();
        let dtypes = unique(rows.iter().map(|r| r.config().dtype));
        let (ceilings, note) = ceilings_for(&run.context.devices, device, &dtypes);
        notes.push(note.clone());
        let several_dtypes = dtypes.len() > 1;
        let several_modes = unique(rows.iter().map(|r| r.config().mode)).len() > 1;
        let points: Vec<RooflinePoint> = rows
            .iter()
            .filter_map(|r| {
                let counts = r.record.counts.as_ref()?;
                let c = r.config();
                Some(RooflinePoint {
                    intensity: counts.arithmetic_intensity,
                    flops_per_s: r.achieved_flops_per_s()?,
                    color: model_color(&models, r.model()),
                    radius: 5.0,
                    triangle: c.mode == "train",
                    annotation: format!(
                        "b{}{}{}",
                        r.batch(),
                        if several_dtypes { format!(" {}", c.dtype) } else { String::new() },
                        if c.mode == "train" && several_modes { " train" } else { "" }
                    ),
                })
            })
            .collect();
        let mut legend: Vec<(String, usize, bool)> = unique(rows.iter().map(|r| r.model().to_string()))
            .into_iter()
            .map(|m| (m.clone(), model_color(&models, &m), false))
            .collect();
        if rows.iter().any(|r| r.config().mode == "train") {
            legend.push(("training (triangles)".into(), 9, true));
        }
        let chart = RooflineChart {
            title: format!("Roofline · models on {device}"),
            subtitle: "labels: batch size".into(),
            points,
            ceilings,
            legend,
            no_ceiling_note: no_ceiling_note(&note, device),
            size: (880, 520),
        };
        let slug: String = device.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        figures.roofline.push(save(&chart, out, &format!("roofline_{slug}"), &format!("Roofline · models on {device}"),
            "Achieved FLOP/s (2 × conv/linear MACs × images/s, × 3 in training) against the model's arithmetic intensity (FLOPs ÷ minimum bytes moved, from the analysis in the record).")?);

        for r in rows.iter().filter(|r| r.record.result.as_ref().is_some_and(|x| x.layers.is_some())).take(8) {
            figures.layer_rooflines.push(layer_roofline(r, device, run, out)?);
        }
    }
    figures.ceilings_note = unique(notes.into_iter()).join(" ");
    Ok(())
}

/// The short form of a missing-ceilings note, drawn inside the chart.
fn no_ceiling_note(note: &str, device: &str) -> String {
    if note.starts_with("No ") {
        format!("no ceilings: no peak FLOP/s or bandwidth recorded for {device}")
    } else {
        String::new()
    }
}

fn layer_roofline(r: &Row, device: &str, run: &Run, out: &Path) -> Result<Figure, ReportError> {
    let layers = r.record.result.as_ref().and_then(|x| x.layers.as_ref()).cloned().unwrap_or_default();
    let ops = unique(layers.iter().map(|l| l.op.clone()));
    let points = layers
        .iter()
        .filter(|l| l.flops > 0 && l.achieved_gflops_per_s > 0.0 && l.arithmetic_intensity > 0.0)
        .map(|l| RooflinePoint {
            intensity: l.arithmetic_intensity,
            flops_per_s: l.achieved_gflops_per_s * 1e9,
            color: ops.iter().position(|o| o == &l.op).unwrap_or(0),
            radius: 2.5 + 9.0 * l.share.max(0.0).sqrt(),
            triangle: false,
            annotation: String::new(),
        })
        .collect();
    let (ceilings, note) = ceilings_for(&run.context.devices, device, &[r.config().dtype]);
    let label = format!("{} · batch {} · {}", r.model(), r.batch(), r.config().label());
    let chart = RooflineChart {
        title: format!("Per-layer roofline · {label}"),
        subtitle: "larger markers: larger share of the time".into(),
        points,
        ceilings,
        legend: ops.iter().enumerate().map(|(i, o)| (o.clone(), i, false)).collect(),
        no_ceiling_note: no_ceiling_note(&note, device),
        size: (880, 520),
    };
    save(&chart, out, &format!("roofline_layers_{}", r.index), &format!("Per-layer roofline · #{} {label}", r.index),
        "Each layer timed alone: its FLOPs at the case's batch over its mean time, against its own arithmetic intensity.")
}
