//! HTML through minijinja templates. The templates ship inside the binary; a `templates/`
//! directory given on the command line, inside the run directory, beside it, or in the
//! current directory overrides them file by file, so users can restyle reports.

use super::fmt::utc;
use super::load::Run;
use super::ReportError;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, Value};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// (file name, shipped text)
const SHIPPED: [(&str, &str); 4] = [
    ("report.html", include_str!("../../templates/report.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("compare.html", include_str!("../../templates/compare.html")),
    ("style.css", include_str!("../../templates/style.css")),
];

pub struct Templates {
    env: Environment<'static>,
    /// Where each template came from, for the page's footer.
    pub sources: Vec<String>,
}

/// Directories searched for overrides, most specific first.
pub fn search_dirs(explicit: Option<&Path>, run_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = explicit.map(Path::to_path_buf).into_iter().collect();
    dirs.push(run_dir.join("templates"));
    if let Some(parent) = run_dir.parent() {
        dirs.push(parent.join("templates"));
    }
    dirs.push(PathBuf::from("templates"));
    dirs
}

impl Templates {
    pub fn load(explicit: Option<&Path>, run_dir: &Path) -> Result<Templates, ReportError> {
        if let Some(dir) = explicit.filter(|d| !d.is_dir()) {
            return Err(ReportError(format!("{}: no such templates directory", dir.display())));
        }
        let dirs = search_dirs(explicit, run_dir);
        let mut env = Environment::new();
        env.set_formatter(html_formatter);
        let mut sources = Vec::new();
        for (name, shipped) in SHIPPED {
            let found = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
            let (text, source) = match &found {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| ReportError(format!("{}: cannot read: {e}", path.display())))?;
                    (text, path.display().to_string())
                }
                None => (shipped.to_string(), format!("{name} (built in)")),
            };
            env.add_template_owned(name.to_string(), text)
                .map_err(|e| ReportError(format!("template {source}: {e}")))?;
            sources.push(source);
        }
        Ok(Templates { env, sources })
    }

    pub fn render<T: Serialize>(&self, name: &str, page: &T) -> Result<String, ReportError> {
        let template = self.env.get_template(name).map_err(|e| ReportError(format!("template {name}: {e}")))?;
        template.render(Serde(page)).map_err(|e| ReportError(format!("template {name}: {e:#}")))
    }
}

/// HTML-escape the five characters that matter (minijinja's default also escapes `/`,
/// which turns every path and unit into `&#x2f;`).
fn html_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if let (AutoEscape::Html, Some(text), false) = (state.auto_escape(), value.as_str(), value.is_safe()) {
        let mut escaped = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '&' => escaped.push_str("&amp;"),
                '<' => escaped.push_str("&lt;"),
                '>' => escaped.push_str("&gt;"),
                '"' => escaped.push_str("&quot;"),
                '\'' => escaped.push_str("&#39;"),
                c => escaped.push(c),
            }
        }
        return out.write_str(&escaped).map_err(|_| Error::new(ErrorKind::WriteFailure, "cannot write the page"));
    }
    minijinja::escape_formatter(out, state, value)
}

/// A run's context, formatted for the page.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub profile_name: String,
    pub profile_file: String,
    pub profile_description: String,
    pub profile_text: String,
    pub started_utc: String,
    pub synprof_version: String,
    pub git_revision: String,
    pub hostname: String,
    pub os: String,
    pub cpu_model: String,
    pub logical_cpus: usize,
    pub memory: String,
    pub rustc: String,
    pub features: String,
    pub cpu_threads: String,
    pub devices: String,
    pub devices_json: String,
    pub cases: usize,
    pub failed: usize,
    pub wall_s: String,
}

impl RunInfo {
    pub fn of(run: &Run) -> RunInfo {
        let c = &run.context;
        let description = toml::from_str::<toml::Table>(&c.profile_text)
            .ok()
            .and_then(|t| t.get("description").and_then(|d| d.as_str().map(str::to_string)))
            .unwrap_or_default();
        let threads =
            super::load::unique(run.rows.iter().filter_map(|r| r.record.result.as_ref().and_then(|x| x.cpu_threads)));
        let devices = super::load::unique(run.rows.iter().map(|r| r.config().device));
        let wall: f64 = run.all_rows.iter().map(|r| r.record.wall_s).sum();
        RunInfo {
            run_id: c.run_id.clone(),
            profile_name: c.profile_name.clone(),
            profile_file: c.profile_file.clone(),
            profile_description: description,
            profile_text: c.profile_text.clone(),
            started_utc: utc(c.started_unix_s),
            synprof_version: c.synprof_version.clone(),
            git_revision: c.git_revision.clone().unwrap_or_else(|| "not recorded".into()),
            hostname: c.host.hostname.clone(),
            os: c.host.os.clone(),
            cpu_model: c.host.cpu_model.clone(),
            logical_cpus: c.host.logical_cpus,
            memory: c.host.memory_bytes.map(crate::cli::text::bytes).unwrap_or_else(|| "unknown".into()),
            rustc: c.host.rustc.clone(),
            features: if c.host.features.is_empty() { "none".into() } else { c.host.features.join(", ") },
            cpu_threads: if threads.is_empty() {
                "—".into()
            } else {
                threads.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            },
            devices: devices.join(", "),
            devices_json: if c.devices.is_null() {
                String::new()
            } else {
                serde_json::to_string_pretty(&c.devices).unwrap_or_default()
            },
            cases: run.rows.len(),
            failed: run.failed_rows().count(),
            wall_s: super::fmt::num(wall),
        }
    }
}

/// A failed case for the page.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub index: usize,
    pub case_id: String,
    pub error: String,
}

pub fn failures(run: &Run) -> Vec<Failure> {
    run.failed_rows()
        .map(|r| Failure {
            index: r.index,
            case_id: r.record.case.id.clone(),
            error: r.record.error.clone().unwrap_or_else(|| "failed without an error message".into()),
        })
        .collect()
}
