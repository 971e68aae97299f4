//! A run directory as the report sees it: the context and one row per recorded case, in the
//! order the cases ran. Reads only `results.jsonl` and `context.json`.

use super::telemetry::Telemetry;
use super::ReportError;
use crate::sweep::record::{Context, Record, Status};
use crate::sweep::store::RunDir;
use std::path::{Path, PathBuf};

pub struct Run {
    pub dir: PathBuf,
    pub context: Context,
    /// One row per case. A case measured in several rounds (`run.repeats`) is represented
    /// by its median round (by images/s), a real measurement; the others are in `all_rows`.
    pub rows: Vec<Row>,
    /// Every record, in the order they ran.
    pub all_rows: Vec<Row>,
}

/// One recorded case.
#[derive(Clone)]
pub struct Row {
    /// 1-based position in `results.jsonl`: how the page and the timeline name a case.
    pub index: usize,
    pub record: Record,
    pub telemetry: Option<Telemetry>,
    /// Why the record's telemetry could not be read, if it could not.
    pub telemetry_error: Option<String>,
    /// images/s of every successful round of this case, in round order (one value when the
    /// case ran once).
    pub round_images_per_s: Vec<f64>,
}

/// What a measurement ran on and how: cases of one configuration differ only by model and batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Config {
    pub device: String,
    pub backend: String,
    pub mode: String,
    pub dtype: String,
    /// Requested CPU threads; `None` = all cores.
    pub threads: Option<usize>,
}

impl Config {
    /// "inference · f32 · cpu · candle · 2 threads" (empty parts left out)
    pub fn label(&self) -> String {
        let mode = match self.mode.as_str() {
            "infer" => "inference",
            "train" => "training",
            other => other,
        };
        let threads = self.threads.map(|t| format!("{t} thread{}", if t == 1 { "" } else { "s" }));
        let parts = [mode, &self.dtype, &self.device, &self.backend, threads.as_deref().unwrap_or("")];
        parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(" · ")
    }

    /// File-name-safe form: "infer_f32_cpu_candle".
    pub fn slug(&self) -> String {
        let mut s = format!("{}_{}_{}_{}", self.mode, self.dtype, self.device, self.backend);
        if let Some(t) = self.threads {
            s.push_str(&format!("_t{t}"));
        }
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect()
    }
}

impl Row {
    pub fn ok(&self) -> bool {
        self.record.status == Status::Ok && self.record.result.is_some()
    }

    pub fn model(&self) -> &str {
        &self.record.case.model
    }

    pub fn batch(&self) -> usize {
        self.record.case.batch
    }

    pub fn config(&self) -> Config {
        let case = &self.record.case;
        Config {
            device: case.device.to_string(),
            backend: backend_name(&case.backend),
            mode: case.mode.to_string(),
            dtype: case.dtype.to_string(),
            threads: case.threads,
        }
    }

    /// The case id without its round suffix (`…/b8#r2` -> `…/b8`).
    pub fn case_id(&self) -> &str {
        let id = &self.record.case.id;
        match (self.record.case.round, id.rsplit_once("#r")) {
            (r, Some((base, n))) if r > 0 && n == r.to_string() => base,
            _ => id,
        }
    }

    /// Relative spread of throughput over the case's rounds, `max / min - 1` (0 for one round).
    pub fn round_spread(&self) -> Option<f64> {
        let v = &self.round_images_per_s;
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        (!v.is_empty() && min > 0.0).then(|| max / min - 1.0)
    }

    pub fn images_per_s(&self) -> Option<f64> {
        self.record.result.as_ref().map(|r| r.latency.images_per_s).filter(|v| *v > 0.0 && v.is_finite())
    }

    /// Images processed in the measured window.
    pub fn images_measured(&self) -> Option<f64> {
        self.record.result.as_ref().map(|r| (r.batch * r.latency.iterations) as f64)
    }

    /// Achieved FLOP/s: 2 x conv/linear MACs x images/s (x3 in training), as the executor counts.
    pub fn achieved_flops_per_s(&self) -> Option<f64> {
        self.record.result.as_ref().map(|r| r.achieved_gflops_per_s * 1e9).filter(|v| *v > 0.0)
    }

    pub fn images_per_j(&self) -> Option<f64> {
        self.telemetry.as_ref()?.images_per_j(self.images_measured()?)
    }

    pub fn images_per_s_per_w(&self) -> Option<f64> {
        self.telemetry.as_ref()?.images_per_s_per_w(self.images_per_s()?)
    }
}

pub fn backend_name(backend: &crate::sweep::plan::Backend) -> String {
    match serde_json::to_value(backend) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{backend:?}").to_lowercase(),
    }
}

impl Run {
    pub fn load(dir: &Path) -> Result<Run, ReportError> {
        let run_dir = RunDir::open(dir).map_err(|e| ReportError(e.to_string()))?;
        let context = run_dir.context().map_err(|e| ReportError(e.to_string()))?;
        let records = run_dir.records().map_err(|e| ReportError(e.to_string()))?;
        Ok(Run::from_records(dir, context, records))
    }

    pub fn from_records(dir: &Path, context: Context, records: Vec<Record>) -> Run {
        let all_rows: Vec<Row> = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                let parsed = record.telemetry.as_ref().filter(|v| !v.is_null()).map(Telemetry::parse);
                let (telemetry, telemetry_error) = match parsed {
                    Some(Ok(t)) => (Some(t), None),
                    Some(Err(e)) => (None, Some(e)),
                    None => (None, None),
                };
                let mut row = Row { index: i + 1, record, telemetry, telemetry_error, round_images_per_s: Vec::new() };
                row.round_images_per_s = row.ok().then(|| row.images_per_s()).flatten().into_iter().collect();
                row
            })
            .collect();
        let rows = median_rounds(&all_rows);
        Run { dir: dir.to_path_buf(), context, rows, all_rows }
    }

    /// Models in the order they first ran (the profile's order).
    pub fn models(&self) -> Vec<String> {
        unique(self.rows.iter().map(|r| r.model().to_string()))
    }

    /// Configurations in the order they first ran.
    pub fn configs(&self) -> Vec<Config> {
        unique(self.rows.iter().map(Row::config))
    }

    pub fn ok_rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.ok())
    }

    pub fn failed_rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| !r.ok())
    }

    /// A short name for this run in comparisons: the run id.
    pub fn name(&self) -> &str {
        &self.context.run_id
    }
}

/// One row per case: the median round by images/s among its successful rounds (the lower
/// middle one for an even count), else its last failed round; in first-seen order.
fn median_rounds(all: &[Row]) -> Vec<Row> {
    let ids = unique(all.iter().map(Row::case_id));
    ids.into_iter()
        .filter_map(|id| {
            let rounds: Vec<&Row> = all.iter().filter(|r| r.case_id() == id).collect();
            let mut ok: Vec<&Row> = rounds.iter().copied().filter(|r| r.ok() && r.images_per_s().is_some()).collect();
            if ok.is_empty() {
                return rounds.last().map(|r| (*r).clone());
            }
            let in_order: Vec<f64> = ok.iter().filter_map(|r| r.images_per_s()).collect();
            ok.sort_by(|a, b| a.images_per_s().unwrap_or(0.0).total_cmp(&b.images_per_s().unwrap_or(0.0)));
            let mut median = ok[(ok.len() - 1) / 2].clone();
            median.round_images_per_s = in_order;
            Some(median)
        })
        .collect()
}

/// Distinct items in first-seen order.
pub fn unique<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}
