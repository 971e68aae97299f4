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
    pub rows: Vec<Row>,
}

/// One recorded case.
pub struct Row {
    /// 1-based position in `results.jsonl`: how the page and the timeline name a case.
    pub index: usize,
    pub record: Record,
    pub telemetry: Option<Telemetry>,
    /// Why the record's telemetry could not be read, if it could not.
    pub telemetry_error: Option<String>,
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
        let rows = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                let parsed = record.telemetry.as_ref().filter(|v| !v.is_null()).map(Telemetry::parse);
                let (telemetry, telemetry_error) = match parsed {
                    Some(Ok(t)) => (Some(t), None),
                    Some(Err(e)) => (None, Some(e)),
                    None => (None, None),
                };
                Row { index: i + 1, record, telemetry, telemetry_error }
            })
            .collect();
        Run { dir: dir.to_path_buf(), context, rows }
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
