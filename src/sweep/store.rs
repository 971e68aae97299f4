//! The results store: `reports/<run-id>/` with `context.json`, the profile copy, and
//! `results.jsonl` (one record per line, appended and flushed per case, so a crash or
//! Ctrl-C loses nothing already measured). `reports/latest` points at the newest run.

use super::record::{Context, Record};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const RESULTS: &str = "results.jsonl";
pub const CONTEXT: &str = "context.json";

#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

fn io(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError(format!("{}: cannot {what}: {e}", path.display()))
}

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// A new run directory under `reports` named `<UTC time>_<profile>`.
    /// Two runs started in the same second get `-2`, `-3`... (the context records the id).
    pub fn create(reports: &Path, context: &Context) -> Result<RunDir, StoreError> {
        std::fs::create_dir_all(reports).map_err(|e| io(reports, "create the reports directory", e))?;
        let mut context = context.clone();
        let base = context.run_id.clone();
        let path = (1..1000)
            .map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") })
            .find_map(|id| {
                let path = reports.join(&id);
                match std::fs::create_dir(&path) {
                    Ok(()) => {
                        context.run_id = id;
                        Some(Ok(path))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                    Err(e) => Some(Err(io(&path, "create the run directory", e))),
                }
            })
            .unwrap_or_else(|| Err(StoreError(format!("{}: too many runs named {base}", reports.display()))))?;
        let dir = RunDir { path };
        dir.write_context(&context)?;
        let latest = reports.join("latest");
        let _ = std::fs::remove_file(&latest);
        #[cfg(unix)]
        let _ = std::os::unix::fs::symlink(&context.run_id, &latest);
        Ok(dir)
    }

    pub fn open(path: &Path) -> Result<RunDir, StoreError> {
        if !path.join(CONTEXT).is_file() {
            return Err(StoreError(format!("{} is not a run directory: it has no {CONTEXT}", path.display())));
        }
        Ok(RunDir { path: path.to_path_buf() })
    }

    pub fn write_context(&self, context: &Context) -> Result<(), StoreError> {
        let file = self.path.join(CONTEXT);
        let text = serde_json::to_string_pretty(context).map_err(|e| StoreError(e.to_string()))?;
        std::fs::write(&file, text).map_err(|e| io(&file, "write", e))
    }

    pub fn context(&self) -> Result<Context, StoreError> {
        let file = self.path.join(CONTEXT);
        let text = std::fs::read_to_string(&file).map_err(|e| io(&file, "read", e))?;
        serde_json::from_str(&text).map_err(|e| StoreError(format!("{}: {e}", file.display())))
    }

    /// Append one record and flush it to disk before returning.
    pub fn append(&self, record: &Record) -> Result<(), StoreError> {
        let file = self.path.join(RESULTS);
        let mut line = serde_json::to_string(record).map_err(|e| StoreError(e.to_string()))?;
        line.push('\n');
        let mut f =
            std::fs::OpenOptions::new().create(true).append(true).open(&file).map_err(|e| io(&file, "open", e))?;
        f.write_all(line.as_bytes()).map_err(|e| io(&file, "append to", e))?;
        f.sync_data().map_err(|e| io(&file, "flush", e))
    }

    /// Every record written so far. A last line cut off by a crash is skipped.
    pub fn records(&self) -> Result<Vec<Record>, StoreError> {
        let file = self.path.join(RESULTS);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&file, "read", e)),
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut records = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str(line) {
                Ok(r) => records.push(r),
                Err(_) if i + 1 == lines.len() => {} // torn final line from an interrupted write
                Err(e) => return Err(StoreError(format!("{}:{}: not a record: {e}", file.display(), i + 1))),
            }
        }
        Ok(records)
    }
}

/// `2026-11-23T15-04-05Z_quick`: sortable, filesystem-safe.
pub fn run_id(profile: &str, unix_s: f64) -> String {
    let secs = unix_s as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let safe: String =
        profile.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}Z_{safe}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian, UTC).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_utc_dates() {
        assert_eq!(run_id("quick", 0.0), "1970-01-01T00-00-00Z_quick");
        // 2026-11-23 15:04:05 UTC
        assert_eq!(run_id("ai matrix", 1_795_446_245.0), "2026-11-23T15-04-05Z_ai_matrix");
    }
}
