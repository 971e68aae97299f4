//! `synprof fidelity`: the profile that runs a target beside its mimic proxy, and the
//! fidelity tables written from the run (`report::fidelity`).

use crate::report::fidelity::{fidelity, render};
use crate::report::load::Run;
use std::path::Path;

pub struct Request {
    pub target: String,
    pub seed: u64,
    pub device: Vec<String>,
    pub dtype: Vec<String>,
    /// Empty: 1 and all cores on a CPU.
    pub threads: Vec<usize>,
    pub batch: Vec<usize>,
    pub seconds: f64,
    pub layers: bool,
    /// Rounds over all cases; the figures are each case's median round.
    pub repeats: usize,
}

/// The proxy's generator spec.
pub fn proxy_spec(target: &str, seed: u64) -> String {
    format!("mimic:like={target},seed={seed}")
}

/// The profile (TOML) of a fidelity run.
pub fn profile_text(r: &Request) -> Result<String, String> {
    if r.seconds.is_nan() || r.seconds <= 0.0 {
        return Err(format!("--seconds {}: give a positive number", r.seconds));
    }
    let cpu_only = r.device.iter().all(|d| d == "cpu");
    let threads: Vec<usize> = if !r.threads.is_empty() {
        r.threads.clone()
    } else if cpu_only {
        let all = crate::exec::device::available_cores();
        if all > 1 {
            vec![1, all]
        } else {
            vec![1]
        }
    } else {
        vec![]
    };
    if !cpu_only && !r.threads.is_empty() {
        return Err("--threads applies to the CPU only; compare GPU configurations with --dtype or --device".into());
    }
    let proxy = proxy_spec(&r.target, r.seed);
    let mut profile = toml::Table::new();
    profile.insert("name".into(), format!("fidelity-{}", r.target.replace(['/', '.'], "_")).into());
    profile.insert(
        "description".into(),
        format!(
            "{} and its mimic proxy {proxy}: throughput, op-type time shares, relative speed across configurations",
            r.target
        )
        .into(),
    );
    let mut run = toml::Table::new();
    let window = |iterations: i64, seconds: f64| {
        let mut t = toml::Table::new();
        t.insert("iterations".into(), iterations.into());
        t.insert("seconds".into(), seconds.into());
        toml::Value::Table(t)
    };
    run.insert("warmup".into(), window(2, 0.5));
    run.insert("measure".into(), window(5, r.seconds));
    run.insert("max_seconds".into(), (r.seconds * 10.0).max(20.0).into());
    run.insert("seed".into(), 0.into());
    run.insert("layers".into(), r.layers.into());
    run.insert("measure_peaks".into(), false.into());
    run.insert("repeats".into(), (r.repeats as i64).into());
    profile.insert("run".into(), run.into());
    let strings = |v: &[String]| toml::Value::Array(v.iter().map(|s| s.clone().into()).collect());
    let ints = |v: &[usize]| toml::Value::Array(v.iter().map(|&n| (n as i64).into()).collect());
    let mut vars = toml::Table::new();
    vars.insert("model".into(), strings(&[r.target.clone(), proxy]));
    vars.insert("device".into(), strings(&r.device));
    vars.insert("dtype".into(), strings(&r.dtype));
    vars.insert("mode".into(), strings(&["infer".to_string()]));
    vars.insert("batch".into(), ints(&r.batch));
    if !threads.is_empty() {
        vars.insert("threads".into(), ints(&threads));
    }
    profile.insert("variables".into(), vars.into());
    toml::to_string(&profile).map_err(|e| e.to_string())
}

/// Compute the fidelity of a run directory; write fidelity.md and fidelity.json into it.
pub fn write(dir: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let run = Run::load(dir)?;
    let f = fidelity(&run);
    let text = render(&f);
    let md = format!("# Fidelity of run {}\n\n{text}", f.run_id);
    std::fs::write(dir.join("fidelity.md"), &md)
        .map_err(|e| format!("cannot write {}/fidelity.md: {e}", dir.display()))?;
    std::fs::write(dir.join("fidelity.json"), serde_json::to_string_pretty(&f)? + "\n")
        .map_err(|e| format!("cannot write {}/fidelity.json: {e}", dir.display()))?;
    Ok(format!("{text}wrote {}/fidelity.md and fidelity.json\n", dir.display()))
}
