//! `synprof fidelity`: the profile that runs a target beside its mimic proxy, and the
//! fidelity tables written from the run (`report::fidelity`).

use crate::exec::paired::{run_paired, PairedOptions, PairedResult};
use crate::exec::DeviceSpec;
use crate::report::fidelity::{fidelity, render, PAIRED_FILE};
use crate::report::load::Run;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::process::Command;

pub struct Request {
    pub target: String,
    pub seed: u64,
    /// The proxy's `jitter` (its search starts from a perturbed copy of the target).
    pub jitter: Option<f64>,
    pub device: Vec<String>,
    pub dtype: Vec<String>,
    /// Empty: 1 and all cores on a CPU.
    pub threads: Vec<usize>,
    pub batch: Vec<usize>,
    pub seconds: f64,
    pub layers: bool,
    /// Rounds over all cases; the figures are each case's median round.
    pub repeats: usize,
    /// Burst pairs of the paired target/proxy timing per configuration and batch (0: none).
    pub bursts: usize,
}

/// What `synprof pair` is handed (one JSON argument): two models and how to time them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairOrder {
    pub a: String,
    pub b: String,
    pub options: PairedOptions,
}

/// What `synprof pair` prints on its last stdout line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairReply {
    pub result: Option<PairedResult>,
    pub error: Option<String>,
}

/// Run a pair order in this process (the `synprof pair` side).
pub fn run_pair_order(order: &PairOrder) -> PairReply {
    let load = |m: &str| crate::source::load(m, None).map_err(|e| e.to_string());
    let outcome = load(&order.a)
        .and_then(|a| Ok((a, load(&order.b)?)))
        .and_then(|(a, b)| run_paired(&a, &b, &order.options).map_err(|e| e.to_string()));
    match outcome {
        // Named as the order named them (a zoo name, a file, a generator spec).
        Ok(result) => {
            PairReply { result: Some(PairedResult { a: order.a.clone(), b: order.b.clone(), ..result }), error: None }
        }
        Err(error) => PairReply { result: None, error: Some(error) },
    }
}

/// The paired timing of target against proxy for every configuration and batch of the
/// request, each in its own `synprof pair` process (thread counts are per process),
/// appended to `paired.jsonl` in the run directory as they finish. A failed pair is
/// reported and skipped; what was measured stays.
pub fn measure_pairs(r: &Request, dir: &Path, exe: &Path) -> Result<String, Box<dyn std::error::Error>> {
    if r.bursts == 0 {
        return Ok(String::new());
    }
    let threads: Vec<Option<usize>> =
        if r.device.iter().all(|d| d == "cpu") { threads(r).into_iter().map(Some).collect() } else { vec![None] };
    let path = dir.join(PAIRED_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let mut notes = String::new();
    let mut orders = Vec::new();
    for device in &r.device {
        let device = DeviceSpec::parse(device).map_err(|e| format!("--device {device}: {e}"))?;
        for dtype in &r.dtype {
            let dtype = <crate::Dtype as clap::ValueEnum>::from_str(dtype, true)
                .map_err(|e| format!("--dtype {dtype}: {e}"))?;
            for &t in &threads {
                for &batch in &r.batch {
                    let threads = if device == DeviceSpec::Cpu { t } else { None };
                    let options = PairedOptions {
                        device,
                        dtype,
                        batch,
                        threads,
                        bursts: r.bursts,
                        burst_seconds: (r.seconds / 4.0).clamp(0.1, 1.0),
                        warmup_seconds: 0.5,
                        // Both nets run in this process on one thread pool, whose helpers
                        // spin 50 us: no other process's spin to wait out.
                        settle_seconds: 0.0,
                        seed: 0,
                    };
                    orders.push(PairOrder { a: r.target.clone(), b: proxy_spec(r), options });
                }
            }
        }
    }
    for (i, order) in orders.iter().enumerate() {
        let o = &order.options;
        let what = format!(
            "{} {}{} batch {}",
            o.device,
            o.dtype,
            o.threads.map_or(String::new(), |t| format!(" {t} thread(s)")),
            o.batch
        );
        eprintln!(
            "[pair {}/{}] {} vs its proxy, {what}: {} alternating bursts",
            i + 1,
            orders.len(),
            order.a,
            o.bursts
        );
        let json = serde_json::to_string(order)?;
        let out = Command::new(exe)
            .args(["pair", &json])
            .output()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let reply = stdout.lines().rev().find_map(|l| serde_json::from_str::<PairReply>(l).ok());
        match reply {
            Some(PairReply { result: Some(result), .. }) => {
                writeln!(file, "{}", serde_json::to_string(&result)?)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            other => {
                let why = other.and_then(|r| r.error).unwrap_or_else(|| {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    format!("the pair process ended with {}: {}", out.status, stderr.trim())
                });
                notes.push_str(&format!("paired timing failed for {what}: {why}\n"));
            }
        }
    }
    Ok(notes)
}

fn threads(r: &Request) -> Vec<usize> {
    if !r.threads.is_empty() {
        return r.threads.clone();
    }
    let all = crate::exec::device::available_cores();
    if all > 1 {
        vec![1, all]
    } else {
        vec![1]
    }
}

/// The proxy's generator spec.
pub fn proxy_spec(r: &Request) -> String {
    match r.jitter {
        Some(j) => format!("mimic:like={},seed={},jitter={j}", r.target, r.seed),
        None => format!("mimic:like={},seed={}", r.target, r.seed),
    }
}

/// The profile (TOML) of a fidelity run.
pub fn profile_text(r: &Request) -> Result<String, String> {
    if r.seconds.is_nan() || r.seconds <= 0.0 {
        return Err(format!("--seconds {}: give a positive number", r.seconds));
    }
    if let Some(j) = r.jitter.filter(|j| !(0.0..=4.0).contains(j)) {
        return Err(format!("--jitter {j}: give random changes per layer, from 0 to 4"));
    }
    let cpu_only = r.device.iter().all(|d| d == "cpu");
    let threads: Vec<usize> = if cpu_only { threads(r) } else { vec![] };
    if !cpu_only && !r.threads.is_empty() {
        return Err("--threads applies to the CPU only; compare GPU configurations with --dtype or --device".into());
    }
    let proxy = proxy_spec(r);
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
