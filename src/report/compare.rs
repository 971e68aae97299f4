//! Comparisons between runs, devices and backends, as AI Matrix's compare_results does:
//! the same (model, mode, dtype, batch) measured on each side, speedup = images/s of a side
//! ÷ images/s of the baseline (the first side), geometric means over what both measured.

use super::figures::{self, Figure};
use super::fmt::{num, utc};
use super::html::{RunInfo, Templates};
use super::load::{unique, Run};
use super::plots::{BarChart, LineChart, Series};
use super::tables::{Cell, Column, Group, Table};
use super::{csv, write, Options, ReportError, Written};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One side of the comparison: a run on one device with one backend and thread count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub label: String,
    pub run: usize,
    pub run_id: String,
    pub device: String,
    pub backend: String,
    pub threads: Option<usize>,
}

/// What is compared across sides.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub model: String,
    pub mode: String,
    pub dtype: String,
    pub batch: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    ImagesPerS(f64),
    Failed(String),
    Missing,
}

pub struct Comparison {
    pub sides: Vec<Side>,
    pub keys: Vec<Key>,
    /// `values[k][s]`: key k on side s.
    pub values: Vec<Vec<Measured>>,
}

fn side_of(run_index: usize, run: &Run, row: &super::load::Row) -> Side {
    let c = row.config();
    Side {
        label: String::new(),
        run: run_index,
        run_id: run.context.run_id.clone(),
        device: c.device,
        backend: c.backend,
        threads: c.threads,
    }
}

/// Name each side by the fewest of its attributes (device, backend, threads, run) that tell
/// the sides apart.
fn label_sides(sides: &mut [Side]) {
    type Part = fn(&Side) -> String;
    let device: Part = |s| s.device.clone();
    let backend: Part = |s| s.backend.clone();
    let threads: Part = |s| s.threads.map(|t| format!("{t} threads")).unwrap_or_else(|| "all cores".into());
    let run: Part = |s| s.run_id.clone();
    let choices: [&[Part]; 7] = [
        &[device],
        &[backend],
        &[threads],
        &[device, backend],
        &[run],
        &[run, device],
        &[run, device, backend, threads],
    ];
    let label = |s: &Side, parts: &[Part]| parts.iter().map(|p| p(s)).collect::<Vec<_>>().join(" · ");
    let parts = choices
        .iter()
        .find(|parts| unique(sides.iter().map(|s| label(s, parts))).len() == sides.len())
        .copied()
        .unwrap_or(choices[6]);
    for side in sides.iter_mut() {
        side.label = label(side, parts);
    }
}

impl Comparison {
    pub fn of(runs: &[Run]) -> Comparison {
        let mut sides: Vec<Side> = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            for side in unique(run.rows.iter().map(|r| side_of(i, run, r))) {
                sides.push(side);
            }
        }
        label_sides(&mut sides);
        let key = |r: &super::load::Row| {
            let c = r.config();
            Key { model: r.model().to_string(), mode: c.mode, dtype: c.dtype, batch: r.batch() }
        };
        let keys = unique(runs.iter().flat_map(|run| run.rows.iter().map(key)));
        let values = keys
            .iter()
            .map(|k| {
                sides
                    .iter()
                    .map(|side| {
                        let run = &runs[side.run];
                        let row = run.rows.iter().rev().find(|r| &key(r) == k && side_of(side.run, run, r).same(side));
                        match row {
                            Some(r) if r.ok() => r.images_per_s().map_or(Measured::Missing, Measured::ImagesPerS),
                            Some(r) => Measured::Failed(r.record.error.clone().unwrap_or_default()),
                            None => Measured::Missing,
                        }
                    })
                    .collect()
            })
            .collect();
        Comparison { sides, keys, values }
    }

    pub fn images_per_s(&self, key: usize, side: usize) -> Option<f64> {
        match self.values[key][side] {
            Measured::ImagesPerS(v) => Some(v),
            _ => None,
        }
    }

    /// images/s of `side` ÷ images/s of the baseline (side 0).
    pub fn speedup(&self, key: usize, side: usize) -> Option<f64> {
        Some(self.images_per_s(key, side)? / self.images_per_s(key, 0)?)
    }

    /// Geometric mean of the speedups of `side` over the keys `filter` accepts.
    pub fn geomean(&self, side: usize, filter: impl Fn(&Key) -> bool) -> Option<f64> {
        let logs: Vec<f64> = (0..self.keys.len())
            .filter(|&k| filter(&self.keys[k]))
            .filter_map(|k| self.speedup(k, side))
            .map(f64::ln)
            .collect();
        (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64).exp())
    }
}

impl Side {
    fn same(&self, other: &Side) -> bool {
        self.run == other.run
            && self.device == other.device
            && self.backend == other.backend
            && self.threads == other.threads
    }
}

fn col(label: &str, unit: &str, csv: &str, numeric: bool) -> Column {
    Column { label: label.into(), unit: unit.into(), csv: csv.into(), numeric, csv_only: false }
}

fn mode_name(mode: &str) -> &str {
    match mode {
        "infer" => "inference",
        "train" => "training",
        other => other,
    }
}

/// Images/s of every side and the speedups over the baseline, grouped by mode and dtype.
pub fn table(cmp: &Comparison) -> Table {
    let mut columns = vec![col("model", "", "model", false), col("batch", "", "batch", true)];
    let base = &cmp.sides[0].label;
    for s in &cmp.sides {
        columns.push(col(&s.label, "images/s", &format!("{}_images_per_s", snake(&s.label)), true));
    }
    for s in cmp.sides.iter().skip(1) {
        let csv = format!("{}_speedup_over_{}", snake(&s.label), snake(base));
        columns.push(col(&format!("{} ÷ {base}", s.label), "speedup", &csv, true));
    }
    let groups = unique(cmp.keys.iter().map(|k| (k.mode.clone(), k.dtype.clone())))
        .into_iter()
        .map(|(mode, dtype)| {
            let in_group: Vec<usize> =
                (0..cmp.keys.len()).filter(|&k| cmp.keys[k].mode == mode && cmp.keys[k].dtype == dtype).collect();
            let mut rows: Vec<Vec<Cell>> = in_group
                .iter()
                .map(|&k| {
                    let mut cells = vec![Cell::text(&cmp.keys[k].model), Cell::count(cmp.keys[k].batch as u64)];
                    for s in 0..cmp.sides.len() {
                        cells.push(match &cmp.values[k][s] {
                            Measured::ImagesPerS(v) => Cell::num(Some(*v)),
                            Measured::Failed(e) => Cell::failed(e),
                            Measured::Missing => Cell::empty(),
                        });
                    }
                    for s in 1..cmp.sides.len() {
                        cells.push(speedup_cell(cmp.speedup(k, s)));
                    }
                    cells
                })
                .collect();
            let geomeans: Vec<Option<f64>> =
                (1..cmp.sides.len()).map(|s| cmp.geomean(s, |key| key.mode == mode && key.dtype == dtype)).collect();
            if geomeans.iter().any(Option::is_some) {
                let mut total = vec![Cell { class: "total".into(), ..Cell::text("geometric mean") }, Cell::text("")];
                total.extend((0..cmp.sides.len()).map(|_| Cell::text("")));
                total.extend(geomeans.into_iter().map(|g| Cell { class: "total".into(), ..speedup_cell(g) }));
                rows.push(total);
            }
            Group { title: format!("{} · {dtype}", mode_name(&mode)), key: vec![mode, dtype], shown: rows.len(), rows }
        })
        .collect();
    Table {
        id: "speedup-table".into(),
        title: "Throughput and speedup".into(),
        note: format!(
            "Speedup = images/s ÷ images/s of the baseline ({}) for the same model, mode, dtype and batch size; \
             above 1 is faster. Geometric means are over the rows both sides measured.",
            cmp.sides[0].label
        ),
        csv_file: "compare.csv".into(),
        key_columns: vec!["mode".into(), "dtype".into()],
        columns,
        groups,
    }
}

/// "cuda:0 · candle" -> "cuda_0_candle", for CSV headers.
fn snake(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

fn speedup_cell(v: Option<f64>) -> Cell {
    match v {
        Some(x) => Cell {
            text: format!("{}×", num(x)),
            raw: x.to_string(),
            class: if x >= 1.0 { "faster".into() } else { "slower".into() },
            ..Cell::default()
        },
        None => Cell::empty(),
    }
}

fn charts(cmp: &Comparison, out: &Path) -> Result<Vec<Figure>, ReportError> {
    let models = unique(cmp.keys.iter().map(|k| k.model.clone()));
    let several_configs = unique(cmp.keys.iter().map(|k| (k.mode.clone(), k.dtype.clone()))).len() > 1;
    let base = &cmp.sides[0].label;
    let mut figures = Vec::new();
    for s in 1..cmp.sides.len() {
        let side = &cmp.sides[s].label;
        let mut chart = LineChart::new(&format!("Speedup of {side} over {base}"), "batch size (images)", "speedup (×)");
        chart.subtitle = "images/s ÷ baseline images/s; above the dashed line is faster".into();
        chart.reference_y = Some((1.0, format!("{base} (1×)")));
        chart.empty_message = "no case measured on both sides".into();
        for (model, mode, dtype) in unique(cmp.keys.iter().map(|k| (k.model.clone(), k.mode.clone(), k.dtype.clone())))
        {
            let mut points: Vec<(f64, f64)> = (0..cmp.keys.len())
                .filter(|&k| cmp.keys[k].model == model && cmp.keys[k].mode == mode && cmp.keys[k].dtype == dtype)
                .filter_map(|k| cmp.speedup(k, s).map(|v| (cmp.keys[k].batch as f64, v)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            if points.is_empty() {
                continue;
            }
            let label = if several_configs { format!("{model} · {mode} {dtype}") } else { model.clone() };
            let color = models.iter().position(|m| m == &model).unwrap_or(0);
            chart.series.push(Series { label, color, points, dashed: false });
        }
        figures.push(figures::save(
            &chart,
            out,
            &format!("speedup_{s}"),
            &format!("Speedup of {side} over {base}"),
            "One line per model; both axes logarithmic, so halving and doubling are equally far from the 1× line.",
        )?);
    }
    let bars = BarChart {
        title: "Geometric-mean speedup per model".into(),
        subtitle: format!("over the batch sizes, modes and dtypes both sides measured; baseline {base}"),
        y_label: "speedup (×)".into(),
        categories: models.clone(),
        groups: (1..cmp.sides.len())
            .map(|s| {
                (cmp.sides[s].label.clone(), s - 1, models.iter().map(|m| cmp.geomean(s, |k| &k.model == m)).collect())
            })
            .collect(),
        reference_y: Some((1.0, format!("{base} (1×)"))),
        value_suffix: "×".into(),
        size: (880, 440),
    };
    figures.push(figures::save(
        &bars,
        out,
        "speedup_by_model",
        "Geometric-mean speedup per model",
        "Each bar is the geometric mean of the speedups of one model over everything both sides measured.",
    )?);
    Ok(figures)
}

#[derive(Debug, Serialize)]
struct SideView {
    label: String,
    run_id: String,
    device: String,
    backend: String,
    baseline: bool,
    geomean: String,
    matched: usize,
}

#[derive(Serialize)]
struct ComparePage {
    title: String,
    sides: Vec<SideView>,
    runs: Vec<RunInfo>,
    figures: Vec<Figure>,
    table: Table,
    generated_utc: String,
    generator: String,
    template_sources: Vec<String>,
}

/// Compare the runs in `run_dirs` (the first side is the baseline) into `out`.
pub fn compare(run_dirs: &[PathBuf], out: &Path, options: &Options) -> Result<Written, ReportError> {
    if run_dirs.is_empty() {
        return Err(ReportError("nothing to compare: give two or more run directories".into()));
    }
    let runs = run_dirs.iter().map(|d| Run::load(d)).collect::<Result<Vec<_>, _>>()?;
    let cmp = Comparison::of(&runs);
    if cmp.sides.len() < 2 {
        return Err(ReportError(format!(
            "nothing to compare: {} has one device and backend; give a second run directory",
            run_dirs[0].display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| ReportError(format!("{}: cannot create: {e}", out.display())))?;
    let templates = Templates::load(options.templates.as_deref(), out)?;
    super::clear_plots(out);
    let figures = charts(&cmp, out)?;
    let table = table(&cmp);
    let mut files: Vec<PathBuf> = figures.iter().flat_map(|f| [out.join(&f.png), out.join(&f.svg)]).collect();
    files.push(write(&out.join(&table.csv_file), csv::to_csv(&table))?);
    let sides = cmp
        .sides
        .iter()
        .enumerate()
        .map(|(i, s)| SideView {
            label: s.label.clone(),
            run_id: s.run_id.clone(),
            device: s.device.clone(),
            backend: s.backend.clone(),
            baseline: i == 0,
            geomean: if i == 0 {
                "1×".into()
            } else {
                cmp.geomean(i, |_| true).map(|g| format!("{}×", num(g))).unwrap_or("—".into())
            },
            matched: (0..cmp.keys.len()).filter(|&k| cmp.speedup(k, i).is_some()).count(),
        })
        .collect();
    let page = ComparePage {
        title: format!("Comparison of {} · synprof", unique(cmp.sides.iter().map(|s| s.label.clone())).join(", ")),
        sides,
        runs: runs.iter().map(RunInfo::of).collect(),
        figures,
        table,
        generated_utc: utc(crate::sweep::record::unix_now()),
        generator: super::generator(),
        template_sources: templates.sources.clone(),
    };
    let index = write(&out.join("compare.html"), templates.render("compare.html", &page)?)?;
    files.push(index.clone());
    let cases = runs.iter().map(|r| r.rows.len()).sum();
    let failed = runs.iter().map(|r| r.failed_rows().count()).sum();
    Ok(Written { index, files, cases, failed })
}
