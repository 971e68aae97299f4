//! Reports: a run directory (`results.jsonl` + `context.json`, nothing else) becomes
//! `index.html` with its plots (PNG + SVG under `plots/`) and CSV tables beside it; several
//! runs become a comparison (`compare.html`). The pages open from disk with no network.

pub mod ceilings;
pub mod compare;
pub mod csv;
pub mod fidelity;
pub mod figures;
pub mod fmt;
pub mod html;
pub mod load;
pub mod plots;
pub mod tables;
pub mod telemetry;

use figures::Figures;
use html::{Failure, RunInfo, Templates};
use load::Run;
use serde::Serialize;
use std::path::{Path, PathBuf};
use tables::Table;

#[derive(Debug, Clone, PartialEq)]
pub struct ReportError(pub String);

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReportError {}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where to write (default: the run directory itself).
    pub out_dir: Option<PathBuf>,
    /// A directory of templates overriding the built-in ones.
    pub templates: Option<PathBuf>,
}

/// What a report wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub index: PathBuf,
    pub files: Vec<PathBuf>,
    pub cases: usize,
    pub failed: usize,
}

impl Written {
    pub fn summary(&self) -> String {
        format!(
            "wrote {} ({} cases, {} failed; {} files)\n",
            self.index.display(),
            self.cases,
            self.failed,
            self.files.len()
        )
    }
}

#[derive(Debug, Serialize)]
struct Highlight {
    label: String,
    value: String,
    detail: String,
}

#[derive(Serialize)]
struct ReportPage<'a> {
    title: String,
    run: RunInfo,
    highlights: Vec<Highlight>,
    figures: &'a Figures,
    throughput_table: Table,
    models_table: Table,
    cases_table: Table,
    energy_table: Option<Table>,
    layers_table: Option<Table>,
    fidelity_table: Option<Table>,
    failures: Vec<Failure>,
    telemetry_errors: Vec<String>,
    generated_utc: String,
    generator: String,
    template_sources: Vec<String>,
}

pub(crate) fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<PathBuf, ReportError> {
    std::fs::write(path, bytes).map_err(|e| ReportError(format!("{}: cannot write: {e}", path.display())))?;
    Ok(path.to_path_buf())
}

/// Remove plots a previous report left (a configuration may be gone); only our own files.
pub(crate) fn clear_plots(out: &Path) {
    if let Ok(entries) = std::fs::read_dir(out.join(figures::PLOTS_DIR)) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "png" || e == "svg") {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

pub(crate) fn generator() -> String {
    format!("synprof {}", env!("CARGO_PKG_VERSION"))
}

/// Write the report of the run in `run_dir`.
pub fn report(run_dir: &Path, options: &Options) -> Result<Written, ReportError> {
    let run = Run::load(run_dir)?;
    report_run(&run, options)
}

/// Write the report of an already loaded run.
pub fn report_run(run: &Run, options: &Options) -> Result<Written, ReportError> {
    let out = options.out_dir.clone().unwrap_or_else(|| run.dir.clone());
    std::fs::create_dir_all(&out).map_err(|e| ReportError(format!("{}: cannot create: {e}", out.display())))?;
    let templates = Templates::load(options.templates.as_deref(), &run.dir)?;
    clear_plots(&out);
    let figures = figures::build(run, &out)?;
    let mut files: Vec<PathBuf> = Vec::new();
    for f in figures_list(&figures) {
        files.push(out.join(&f.png));
        files.push(out.join(&f.svg));
    }
    let page = ReportPage {
        title: format!("{} · synprof report", run.context.run_id),
        run: RunInfo::of(run),
        highlights: highlights(run),
        figures: &figures,
        throughput_table: tables::throughput_by_batch(run),
        models_table: tables::models(run),
        cases_table: tables::cases(run),
        energy_table: tables::energy(run),
        layers_table: tables::layers(run, 12),
        fidelity_table: tables::fidelity(run),
        failures: html::failures(run),
        telemetry_errors: run.rows.iter().filter_map(|r| r.telemetry_error.clone()).collect(),
        generated_utc: fmt::utc(crate::sweep::record::unix_now()),
        generator: generator(),
        template_sources: templates.sources.clone(),
    };
    let all_tables = [&page.throughput_table, &page.models_table, &page.cases_table]
        .into_iter()
        .chain(page.energy_table.as_ref())
        .chain(page.layers_table.as_ref())
        .chain(page.fidelity_table.as_ref());
    for table in all_tables {
        files.push(write(&out.join(&table.csv_file), csv::to_csv(table))?);
    }
    let index = write(&out.join("index.html"), templates.render("report.html", &page)?)?;
    files.push(index.clone());
    Ok(Written { index, files, cases: run.rows.len(), failed: run.failed_rows().count() })
}

fn figures_list(f: &Figures) -> impl Iterator<Item = &figures::Figure> {
    f.throughput
        .iter()
        .chain(&f.latency)
        .chain(&f.efficiency)
        .chain(&f.timeline)
        .chain(&f.roofline)
        .chain(&f.layer_rooflines)
}

fn highlights(run: &Run) -> Vec<Highlight> {
    let failed = run.failed_rows().count();
    let mut out = vec![Highlight {
        label: "cases".into(),
        value: run.rows.len().to_string(),
        detail: if failed == 0 { "none failed".into() } else { format!("{failed} failed") },
    }];
    out.push(Highlight {
        label: "models".into(),
        value: run.models().len().to_string(),
        detail: format!("{} configuration{}", run.configs().len(), if run.configs().len() == 1 { "" } else { "s" }),
    });
    let best = run.ok_rows().max_by(|a, b| a.images_per_s().unwrap_or(0.0).total_cmp(&b.images_per_s().unwrap_or(0.0)));
    if let Some(r) = best {
        out.push(Highlight {
            label: "highest throughput".into(),
            value: format!("{} images/s", fmt::opt(r.images_per_s())),
            detail: format!("{} · batch {} · {}", r.model(), r.batch(), r.config().label()),
        });
    }
    let wall: f64 = run.all_rows.iter().map(|r| r.record.wall_s).sum();
    out.push(Highlight {
        label: "time spent".into(),
        value: if wall >= 120.0 { format!("{} min", fmt::num(wall / 60.0)) } else { format!("{} s", fmt::num(wall)) },
        detail: "wall time of the recorded cases".into(),
    });
    out
}

/// `reports/compare-2026-11-23T15-04-05Z`: the default directory of a comparison.
pub fn default_compare_dir(reports: &Path) -> PathBuf {
    let id = crate::sweep::store::run_id("x", crate::sweep::record::unix_now());
    let stamp = id.split('_').next().unwrap_or(&id);
    reports.join(format!("compare-{stamp}"))
}
