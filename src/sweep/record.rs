//! What a run writes: one record per case (appended to `results.jsonl`), and the run's
//! context (`context.json`). The report reads only these.

use super::plan::Case;
use crate::exec::run::CaseResult;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
}

/// Counts of the model at the case's batch and dtype (from the analysis).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCounts {
    pub params: u64,
    pub macs_per_image: u64,
    pub flops_per_image: u64,
    pub bytes_moved: u64,
    pub arithmetic_intensity: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub case: Case,
    pub status: Status,
    /// Why the case failed (out of memory, unsupported dtype, crash of the case process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<ModelCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CaseResult>,
    /// Telemetry of the case's windows (power, energy, utilisation), where sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<serde_json::Value>,
    /// Seconds since the Unix epoch when the case started, and its wall time.
    pub started_unix_s: f64,
    pub wall_s: f64,
}

/// Where and with what a run was made (DESIGN.md: record the context of every run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub run_id: String,
    pub profile_name: String,
    pub profile_file: String,
    pub profile_text: String,
    pub synprof_version: String,
    pub git_revision: Option<String>,
    pub started_unix_s: f64,
    pub host: Host,
    /// Device facts from telemetry (`synprof devices`), where available.
    #[serde(default)]
    pub devices: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub hostname: String,
    pub os: String,
    pub cpu_model: String,
    pub logical_cpus: usize,
    pub memory_bytes: Option<u64>,
    pub rustc: String,
    pub features: Vec<String>,
}

impl Host {
    pub fn detect() -> Host {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<u64>().ok())
            .map(|k| k * 1024);
        let mut features = Vec::new();
        if cfg!(feature = "cuda") {
            features.push("cuda".to_string());
        }
        if cfg!(feature = "cudnn") {
            features.push("cudnn".to_string());
        }
        Host {
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
            os: format!("{} {}", std::env::consts::OS, read("/proc/sys/kernel/osrelease").trim()),
            cpu_model,
            logical_cpus: crate::exec::device::available_cores(),
            memory_bytes,
            rustc: option_env!("SYNPROF_RUSTC_VERSION").unwrap_or("unknown").to_string(),
            features,
        }
    }
}

/// The git revision of the source tree synprof was built from (set by build.rs), or of
/// the current directory.
pub fn git_revision() -> Option<String> {
    if let Some(rev) = option_env!("SYNPROF_GIT_REVISION").filter(|r| !r.is_empty()) {
        return Some(rev.to_string());
    }
    let out = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
