//! From a profile to the list of cases: Cartesian product of the variables, extensions
//! applied, every value validated (all problems reported at once), an estimated time.

use super::profile::{Extension, Profile, ProfileError, ProfileErrors, Value, VARIABLES};
use crate::exec::{DeviceSpec, Mode};
use crate::{analysis, source, Dtype};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::exec::Backend;

pub const BACKENDS: &[&str] = &["candle", "onnxruntime", "pytorch"];

/// One measurement to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Stable across runs of the same profile: `--resume` matches on it.
    pub id: String,
    pub model: String,
    pub device: DeviceSpec,
    pub backend: Backend,
    pub dtype: Dtype,
    pub mode: Mode,
    pub threads: Option<usize>,
    pub batch: usize,
    /// Which round of a repeated profile (`run.repeats`), from 1; 0 when the profile runs once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub round: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub profile: Profile,
    pub file: String,
    pub cases: Vec<Case>,
    /// Rough: warm-up + measured window + set-up per case, from MACs and an assumed rate.
    pub estimated_seconds: f64,
}

/// What the machine offers, for `device = "best"` and for checks.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    pub cuda_devices: usize,
}

impl Machine {
    pub fn detect() -> Machine {
        let cuda_devices = if cfg!(feature = "cuda") {
            (0..16).take_while(|&i| DeviceSpec::Cuda(i).open().is_ok()).count()
        } else {
            0
        };
        Machine { cuda_devices }
    }
}

type Assignment = BTreeMap<&'static str, Value>;

struct Checker<'a> {
    file: &'a str,
    errors: Vec<ProfileError>,
}

impl Checker<'_> {
    fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ProfileError { file: self.file.to_string(), key: key.into(), message: message.into() });
    }
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::Text(s) => Some(s),
        Value::Int(_) => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Text(_) => None,
    }
}

/// Check one value of one variable; returns what is wrong with it.
fn check_value(key: &str, v: &Value, machine: &Machine) -> Result<(), String> {
    let s = text(v);
    match key {
        "model" => {
            let name = s.ok_or("a model is a zoo name or a model file path, in quotes")?;
            source::load(name, None).map(|_| ()).map_err(|e| e.to_string())
        }
        "device" => {
            let d = s.ok_or("expected \"best\", \"cpu\", \"cuda\" or \"cuda:N\"")?;
            if d == "best" {
                return Ok(());
            }
            match DeviceSpec::parse(d)? {
                DeviceSpec::Cuda(i) if i >= machine.cuda_devices => Err(format!(
                    "{d} is not available here ({} CUDA device(s){}); use \"best\" to fall back to the CPU",
                    machine.cuda_devices,
                    if cfg!(feature = "cuda") { "" } else { ", and this synprof was built without --features cuda" }
                )),
                _ => Ok(()),
            }
        }
        "backend" => match s {
            Some(b) if BACKENDS.contains(&b) => Ok(()),
            _ => Err(format!("expected one of {BACKENDS:?}")),
        },
        "dtype" => match s {
            Some("f32" | "f16" | "bf16") => Ok(()),
            _ => Err("expected \"f32\", \"f16\" or \"bf16\"".into()),
        },
        "mode" => match s {
            Some("infer" | "train") => Ok(()),
            _ => Err("expected \"infer\" or \"train\"".into()),
        },
        "batch" => match int(v) {
            Some(b) if (1..=1 << 20).contains(&b) => Ok(()),
            _ => Err(format!("{v} is not a batch size: expected an integer from 1 to {}", 1 << 20)),
        },
        "threads" => match int(v) {
            Some(t) if (1..=1024).contains(&t) => Ok(()),
            _ => Err(format!("{v} is not a thread count: expected an integer from 1 to 1024")),
        },
        _ => Err(format!("unknown variable; valid variables are {}", VARIABLES.join(", "))),
    }
}

fn matches(ext: &Extension, case: &Assignment) -> bool {
    ext.when.iter().all(|(k, want)| case.get(k.as_str()).is_some_and(|v| want.values().contains(v)))
}

fn key(name: &str) -> &'static str {
    VARIABLES.iter().copied().find(|k| *k == name).unwrap_or("?")
}

/// Expand and validate a profile. `file` names it in errors.
pub fn expand(profile: &Profile, file: &str, machine: &Machine) -> Result<Plan, ProfileErrors> {
    let mut c = Checker { file, errors: Vec::new() };
    if profile.name.trim().is_empty() {
        c.error("name", "empty; give the profile a name (it names the run directory)");
    }
    let r = &profile.run;
    if r.measure.iterations == 0 {
        c.error("run.measure.iterations", "0; measure at least 1 iteration");
    }
    for (k, v) in [("run.warmup.seconds", r.warmup.seconds), ("run.measure.seconds", r.measure.seconds)] {
        if !(v.is_finite() && (0.0..=3600.0).contains(&v)) {
            c.error(k, format!("{v} is out of range; expected 0 to 3600 seconds"));
        }
    }
    if !(1..=1000).contains(&r.repeats) {
        c.error("run.repeats", format!("{} is out of range; expected 1 to 1000 rounds", r.repeats));
    }
    if !(r.max_seconds.is_finite() && r.max_seconds > 0.0) {
        c.error("run.max_seconds", format!("{} is out of range; expected a positive number of seconds", r.max_seconds));
    }
    if let Some(ms) = r.telemetry_interval_ms {
        if !(1.0..=10_000.0).contains(&ms) {
            c.error(
                "run.telemetry_interval_ms",
                format!("{ms} is out of range; expected 1 to 10000 ms, or leave it out to choose automatically"),
            );
        }
    }

    // Variables: known keys, non-empty lists, valid values (each model loaded once).
    let mut values: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
    for (name, list) in &profile.variables {
        if !VARIABLES.contains(&name.as_str()) {
            c.error(
                format!("variables.{name}"),
                format!("unknown variable; valid variables are {}", VARIABLES.join(", ")),
            );
            continue;
        }
        let list = list.values();
        if list.is_empty() {
            c.error(
                format!("variables.{name}"),
                "an empty list: give at least one value (or remove the key for the default)",
            );
        }
        for (i, v) in list.iter().enumerate() {
            if let Err(m) = check_value(name, v, machine) {
                c.error(format!("variables.{name}[{i}]"), m);
            }
        }
        values.insert(key(name), list);
    }
    if !values.contains_key("model") {
        c.error("variables.model", "missing; list the models to run (zoo names or model files)");
    }
    let defaults: [(&'static str, Value); 5] = [
        ("device", Value::Text("best".into())),
        ("backend", Value::Text("candle".into())),
        ("dtype", Value::Text("f32".into())),
        ("mode", Value::Text("infer".into())),
        ("batch", Value::Int(1)),
    ];
    for (k, v) in defaults {
        values.entry(k).or_insert_with(|| vec![v]);
    }
    for (i, ext) in profile.extensions.iter().enumerate() {
        for k in ext.when.keys() {
            if !VARIABLES.contains(&k.as_str()) {
                c.error(
                    format!("extensions[{i}].when.{k}"),
                    format!("unknown variable; valid variables are {}", VARIABLES.join(", ")),
                );
            }
        }
        for (k, v) in &ext.set {
            if let Err(m) = check_value(k, v, machine) {
                c.error(format!("extensions[{i}].set.{k}"), m);
            }
        }
        if ext.set.is_empty() && !ext.skip {
            c.error(format!("extensions[{i}]"), "does nothing: give `set = {...}` or `skip = true`");
        }
    }
    if !c.errors.is_empty() {
        return Err(ProfileErrors(c.errors));
    }

    // Cartesian product, outermost variable first.
    let mut assignments: Vec<Assignment> = vec![Assignment::new()];
    for &k in VARIABLES {
        let Some(list) = values.get(k) else { continue };
        assignments = assignments
            .into_iter()
            .flat_map(|a| {
                list.iter().map(move |v| {
                    let mut a = a.clone();
                    a.insert(k, v.clone());
                    a
                })
            })
            .collect();
    }
    let mut cases = Vec::new();
    let mut seen = std::collections::HashSet::new();
    'cases: for mut a in assignments {
        for ext in &profile.extensions {
            if matches(ext, &a) {
                if ext.skip {
                    continue 'cases;
                }
                for (k, v) in &ext.set {
                    a.insert(key(k), v.clone());
                }
            }
        }
        let case = to_case(&a, machine);
        if let Err(m) = check_case(&case) {
            c.error(format!("case {}", case.id), m);
            continue;
        }
        if seen.insert(case.id.clone()) {
            cases.push(case);
        }
    }
    if cases.is_empty() && c.errors.is_empty() {
        c.error("extensions", "every case is skipped: nothing would run");
    }
    if !c.errors.is_empty() {
        return Err(ProfileErrors(c.errors));
    }
    let cases = rounds(cases, profile.run.repeats);
    let estimated_seconds = cases.iter().map(|case| estimate_seconds(case, &profile.run)).sum();
    Ok(Plan { profile: profile.clone(), file: file.to_string(), cases, estimated_seconds })
}

fn to_case(a: &Assignment, machine: &Machine) -> Case {
    let get = |k: &str| a.get(k).map(|v| v.to_string()).unwrap_or_default();
    let device = match get("device").as_str() {
        "best" if machine.cuda_devices > 0 => DeviceSpec::Cuda(0),
        "best" => DeviceSpec::Cpu,
        d => DeviceSpec::parse(d).unwrap_or(DeviceSpec::Cpu),
    };
    let dtype = match get("dtype").as_str() {
        "f16" => Dtype::F16,
        "bf16" => Dtype::Bf16,
        _ => Dtype::F32,
    };
    let mode = if get("mode") == "train" { Mode::Train } else { Mode::Infer };
    let threads = a.get("threads").and_then(int).map(|t| t as usize).filter(|_| device == DeviceSpec::Cpu);
    let batch = a.get("batch").and_then(int).unwrap_or(1) as usize;
    let model = get("model");
    let threads_part = threads.map(|t| format!("/t{t}")).unwrap_or_default();
    let backend = match get("backend").as_str() {
        "onnxruntime" => Backend::Onnxruntime,
        "pytorch" => Backend::Pytorch,
        _ => Backend::Candle,
    };
    let id = format!("{model}/{device}/{backend}/{dtype}/{mode}{threads_part}/b{batch}");
    Case { id, model, device, backend, dtype, mode, threads, batch, round: 0 }
}

/// The case list run `repeats` times, round after round (`…/b8#r2` is round 2 of `…/b8`).
fn rounds(cases: Vec<Case>, repeats: usize) -> Vec<Case> {
    if repeats <= 1 {
        return cases;
    }
    (1..=repeats)
        .flat_map(|round| cases.iter().map(move |c| Case { id: format!("{}#r{round}", c.id), round, ..c.clone() }))
        .collect()
}

/// Combinations the device cannot run.
fn check_case(case: &Case) -> Result<(), String> {
    if case.backend == Backend::Onnxruntime && (case.mode == Mode::Train || case.dtype != Dtype::F32) {
        return Err(format!(
            "onnxruntime runs f32 inference only (not {} {}); skip such cases with [[extensions]] \
             when = {{ backend = \"onnxruntime\", mode = \"train\" }}, skip = true",
            case.dtype, case.mode
        ));
    }
    case.device.dtype(case.dtype).map(|_| ()).map_err(|e| {
        format!(
            "{e}; skip such cases with [[extensions]] when = {{ device = \"{}\", dtype = \"{}\" }}, skip = true",
            case.device, case.dtype
        )
    })
}

/// Why a case will fail before it runs (it cannot fit in host memory), if it will.
pub fn expected_failure(case: &Case) -> Option<String> {
    if case.device != DeviceSpec::Cpu {
        return None;
    }
    let net = source::load(&case.model, None).ok()?;
    let need = crate::exec::memory::estimate_bytes(&analysis::analyze(&net, case.batch, case.dtype), case.mode);
    let available = crate::exec::memory::available_bytes()?;
    (need > available)
        .then(|| format!("out of memory: needs about {:.1} GiB, {:.1} GiB available", gib(need), gib(available)))
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// Rough seconds for a case: set-up (with the telemetry probe), warm-up, and the measured
/// window at an assumed rate; a case that will not fit in memory fails at set-up.
pub fn estimate_seconds(case: &Case, run: &super::profile::RunSettings) -> f64 {
    const SETUP_S: f64 = 1.5;
    if expected_failure(case).is_some() {
        return SETUP_S;
    }
    let flops = source::load(&case.model, None)
        .map(|net| analysis::analyze(&net, case.batch, case.dtype).totals.flops as f64)
        .unwrap_or(0.0)
        * if case.mode == Mode::Train { 3.0 } else { 1.0 };
    let rate = match case.device {
        DeviceSpec::Cpu => 20e9 * case.threads.unwrap_or_else(crate::exec::device::available_cores) as f64,
        DeviceSpec::Cuda(_) => 50e12,
    };
    let iteration = flops / rate;
    let warmup = run.warmup.seconds.max(run.warmup.iterations as f64 * iteration);
    let measure =
        run.measure.seconds.max(run.measure.iterations as f64 * iteration).min(run.max_seconds.max(iteration));
    SETUP_S + warmup + measure
}

/// The plan as a table, for `--dry-run`.
pub fn describe(plan: &Plan) -> String {
    let mut t =
        crate::cli::text::Table::new(&["#", "model", "device", "dtype", "mode", "threads", "batch", "est. s", "note"]);
    for (i, case) in plan.cases.iter().enumerate() {
        t.row(vec![
            (i + 1).to_string(),
            case.model.clone(),
            case.device.to_string(),
            case.dtype.to_string(),
            case.mode.to_string(),
            case.threads.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            case.batch.to_string(),
            format!("{:.1}", estimate_seconds(case, &plan.profile.run)),
            expected_failure(case).unwrap_or_default(),
        ]);
    }
    format!(
        "profile {} ({}): {} cases, about {:.0} s (rough: from MACs at an assumed rate)\n\n{}",
        plan.profile.name,
        plan.file,
        plan.cases.len(),
        plan.estimated_seconds,
        t.render()
    )
}
