//! Run profiles: TOML files that declare what to measure. Variables expand as a
//! Cartesian product; extensions override or skip cases under conditions (DLBS's
//! `variables` and `extensions`). Everything is validated before anything runs, and every
//! error names the file, the key and what would be valid.
//!
//! ```toml
//! name = "quick"
//! description = "A few models on the best device, in minutes"
//!
//! [run]
//! warmup = { iterations = 2, seconds = 0.5 }
//! measure = { iterations = 5, seconds = 2.0 }
//! max_seconds = 60          # per case, measured window
//! telemetry_interval_ms = 50
//! measure_peaks = true     # peak FLOP/s and bandwidth per device, for the roofline
//! layers = false           # also time every layer of inference cases (per-layer roofline)
//! repeats = 1              # rounds over all cases (interleaved); reports use each case's median round
//! seed = 0
//!
//! [variables]
//! model = ["resnet50", "mobilenet_v2", "synnet"]   # zoo names or model files
//! batch = [1, 8]
//! mode = ["infer"]           # infer | train
//! dtype = ["f32"]            # f32 | f16 | bf16
//! device = ["best"]          # best | cpu | cuda | cuda:N
//! backend = ["candle"]
//! threads = [2]              # CPU threads (optional)
//!
//! [[extensions]]
//! when = { model = "synnet", mode = "train" }
//! set = { batch = 4 }
//!
//! [[extensions]]
//! when = { device = "cpu", dtype = ["f16", "bf16"] }
//! skip = true
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The keys of `[variables]`, in the order cases are expanded (outermost first).
pub const VARIABLES: &[&str] = &["model", "device", "backend", "dtype", "mode", "threads", "batch"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(default)]
    pub iterations: usize,
    #[serde(default)]
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    #[serde(default = "default_warmup")]
    pub warmup: Window,
    #[serde(default = "default_measure")]
    pub measure: Window,
    #[serde(default = "default_max_seconds")]
    pub max_seconds: f64,
    /// Telemetry sampling interval; absent = chosen from the measured update periods.
    #[serde(default)]
    pub telemetry_interval_ms: Option<f64>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "yes")]
    pub fold_batch_norm: bool,
    /// Measure each device's peak FLOP/s and memory bandwidth before the cases (a few
    /// seconds), for the report's roofline ceilings.
    #[serde(default = "yes")]
    pub measure_peaks: bool,
    /// Also time every layer of inference cases (after the measured window), for the
    /// report's per-layer roofline.
    #[serde(default)]
    pub layers: bool,
    /// Run the whole list of cases this many times, round after round, so that slow drift
    /// on a shared machine hits every case alike; the report reads each case's median round.
    #[serde(default = "one")]
    pub repeats: usize,
}

fn default_warmup() -> Window {
    Window { iterations: 3, seconds: 1.0 }
}
fn default_measure() -> Window {
    Window { iterations: 10, seconds: 3.0 }
}
fn default_max_seconds() -> f64 {
    120.0
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            warmup: default_warmup(),
            measure: default_measure(),
            max_seconds: default_max_seconds(),
            telemetry_interval_ms: None,
            seed: 0,
            fold_batch_norm: true,
            measure_peaks: true,
            layers: false,
            repeats: 1,
        }
    }
}

/// A scalar in a profile: variables and conditions hold strings or integers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Text(s) => f.write_str(s),
        }
    }
}

/// One value or a list of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(Value),
    Many(Vec<Value>),
}

impl OneOrMany {
    pub fn values(&self) -> Vec<Value> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    /// Every key must match (a list matches any of its values).
    pub when: BTreeMap<String, OneOrMany>,
    /// Values to set on matching cases.
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
    /// Drop matching cases.
    #[serde(default)]
    pub skip: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub run: RunSettings,
    pub variables: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    pub extensions: Vec<Extension>,
}

/// A profile problem: the file, the key (`variables.batch[2]`), what is wrong and what
/// would be valid.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileError {
    pub file: String,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: `{}`: {}", self.file, self.key, self.message)
        }
    }
}

impl std::error::Error for ProfileError {}

/// All the problems of one profile, reported together.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileErrors(pub Vec<ProfileError>);

impl std::fmt::Display for ProfileErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        write!(f, "{} problem(s) in the profile:\n  {}", lines.len(), lines.join("\n  "))
    }
}

impl std::error::Error for ProfileErrors {}

/// Parse profile text (`file` names it in errors). Syntax and type errors come from the
/// TOML parser with line and column; meaning is checked by [`super::plan::expand`].
pub fn parse(text: &str, file: &str) -> Result<Profile, ProfileError> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let (line, col) = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                (before.matches('\n').count() + 1, before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1)
            })
            .unwrap_or((0, 0));
        let message = e.message().to_string();
        let key = key_at_line(text, line);
        ProfileError { file: format!("{file}:{line}:{col}"), key, message: explain_toml(&message) }
    })
}

/// The dotted key written on `line` (1-based), for errors that the parser locates by span.
fn key_at_line(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(current) = lines.get(line.wrapping_sub(1)) else { return String::new() };
    let table = lines[..line.saturating_sub(1)]
        .iter()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[').map(|t| t.trim_matches(|c| c == '[' || c == ']').to_string()));
    let key = current.split('=').next().map(str::trim).filter(|k| !k.starts_with('[')).unwrap_or("");
    match (table, key.is_empty()) {
        (Some(t), false) => format!("{t}.{key}"),
        (Some(t), true) => t,
        (None, _) => key.to_string(),
    }
}

fn explain_toml(message: &str) -> String {
    if message.contains("data did not match any variant of untagged enum") {
        return format!("{message}; expected a string or an integer, or a list of them");
    }
    message.to_string()
}

/// Read and parse a profile file.
pub fn load(path: &Path) -> Result<Profile, ProfileError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
        file: file.clone(),
        key: String::new(),
        message: format!("cannot read the profile: {e}"),
    })?;
    parse(&text, &file)
}
