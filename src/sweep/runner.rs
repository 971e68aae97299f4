//! The run loop: every case in its own `synprof case` process (a crash, an out-of-memory
//! kill or a thread-count change then touches one case only), each record appended and
//! flushed as it completes, a failure recorded and the sweep going on, Ctrl-C stopping
//! after keeping what ran.

use super::plan::{Case, Plan};
use super::profile::RunSettings;
use super::record::{unix_now, Context, Host, ModelCounts, Record, Status};
use super::store::{run_id, RunDir, StoreError};
use crate::exec::run::{CaseResult, RunOptions, Window};
use crate::{analysis, source};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the parent hands the case process (one JSON argument).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseOrder {
    pub case: Case,
    pub run: RunSettings,
}

/// What the case process prints on its last stdout line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseReply {
    pub result: Option<CaseResult>,
    pub error: Option<String>,
    pub telemetry: Option<serde_json::Value>,
}

/// The measurement options for a case.
pub fn options(order: &CaseOrder) -> RunOptions {
    let r = &order.run;
    RunOptions {
        device: order.case.device,
        dtype: order.case.dtype,
        batch: order.case.batch,
        mode: order.case.mode,
        warmup: Window { iterations: r.warmup.iterations, seconds: r.warmup.seconds },
        measure: Window { iterations: r.measure.iterations, seconds: r.measure.seconds },
        max_seconds: r.max_seconds,
        seed: r.seed,
        fold_batch_norm: r.fold_batch_norm,
        layers: r.layers && order.case.mode == crate::exec::Mode::Infer,
        telemetry: true,
        telemetry_interval_ms: r.telemetry_interval_ms,
        live: true,
        // the case process inherits SYNPROF_CPU_CONV; the record says what ran
        cpu_conv: None,
        backend: order.case.backend,
    }
}

/// Run one case in this process (the `synprof case` side).
pub fn run_order(order: &CaseOrder) -> CaseReply {
    let outcome = crate::exec::device::set_cpu_threads(order.case.threads)
        .map_err(|e| e.to_string())
        .and_then(|_| source::load(&order.case.model, None).map_err(|e| e.to_string()))
        .and_then(|net| crate::exec::run::run_case(&net, &options(order)).map_err(|e| e.to_string()));
    match outcome {
        Ok(mut result) => {
            // The record keeps the timeline once, in its compact form (see `report::telemetry`).
            let telemetry = result.telemetry.take().map(|t| t.record_value());
            CaseReply { result: Some(result), error: None, telemetry }
        }
        Err(error) => CaseReply { result: None, error: Some(error), telemetry: None },
    }
}

pub struct Progress<'a> {
    /// Called before a case starts: (index, total, case).
    pub start: &'a mut dyn FnMut(usize, usize, &Case),
    /// Called when a case is recorded.
    pub done: &'a mut dyn FnMut(&Record),
    /// Called from another thread while a case runs: (phase, images/s so far).
    pub live: LiveProgress,
}

/// A running case's progress, reported from another thread: (phase, images/s so far).
pub type LiveProgress = Arc<dyn Fn(&str, f64) + Send + Sync>;

#[derive(Debug)]
pub enum RunError {
    Store(StoreError),
    Spawn(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Store(e) => e.fmt(f),
            RunError::Spawn(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for RunError {}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> Self {
        RunError::Store(e)
    }
}

/// How the sweep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Complete,
    Interrupted,
}

/// A new run directory for `plan` under `reports`.
pub fn create_run(plan: &Plan, profile_text: &str, reports: &Path) -> Result<RunDir, RunError> {
    let now = unix_now();
    let context = Context {
        run_id: run_id(&plan.profile.name, now),
        profile_name: plan.profile.name.clone(),
        profile_file: plan.file.clone(),
        profile_text: profile_text.to_string(),
        synprof_version: env!("CARGO_PKG_VERSION").to_string(),
        git_revision: super::record::git_revision(),
        started_unix_s: now,
        host: Host::detect(),
        devices: super::devices::describe(plan, plan.profile.run.measure_peaks, Duration::from_secs(1)),
    };
    Ok(RunDir::create(reports, &context)?)
}

/// Run the cases of `plan` not yet recorded in `dir`, with `exe` as the case process.
pub fn run(
    plan: &Plan,
    dir: &RunDir,
    exe: &Path,
    interrupted: &Arc<AtomicBool>,
    progress: Progress,
) -> Result<Ending, RunError> {
    let done: std::collections::HashSet<String> = dir.records()?.into_iter().map(|r| r.case.id).collect();
    let todo: Vec<&Case> = plan.cases.iter().filter(|c| !done.contains(&c.id)).collect();
    for (i, case) in todo.iter().enumerate() {
        if interrupted.load(Ordering::SeqCst) {
            return Ok(Ending::Interrupted);
        }
        (progress.start)(i, todo.len(), case);
        let started = unix_now();
        let order = CaseOrder { case: (*case).clone(), run: plan.profile.run.clone() };
        let reply = spawn_case(exe, &order, progress.live.clone())?;
        if interrupted.load(Ordering::SeqCst) && reply.result.is_none() {
            // The case process got the Ctrl-C too: it is not a failure of the case.
            return Ok(Ending::Interrupted);
        }
        let record = Record {
            case: (*case).clone(),
            status: if reply.result.is_some() { Status::Ok } else { Status::Failed },
            error: reply.error,
            counts: counts(case),
            result: reply.result,
            telemetry: reply.telemetry,
            started_unix_s: started,
            wall_s: unix_now() - started,
        };
        dir.append(&record)?;
        (progress.done)(&record);
    }
    Ok(Ending::Complete)
}

fn counts(case: &Case) -> Option<ModelCounts> {
    let net = source::load(&case.model, None).ok()?;
    let t = analysis::analyze(&net, 1, case.dtype).totals;
    Some(ModelCounts {
        params: t.params,
        macs_per_image: t.macs,
        flops_per_image: t.flops,
        bytes_moved: t.bytes_moved,
        arithmetic_intensity: t.arithmetic_intensity,
    })
}

/// Run `synprof case ORDER` and read its reply; a crash becomes a failed reply.
fn spawn_case(exe: &Path, order: &CaseOrder, live: LiveProgress) -> Result<CaseReply, RunError> {
    let json = serde_json::to_string(order).map_err(|e| RunError::Spawn(e.to_string()))?;
    let mut child = Command::new(exe)
        .args(["case", &json])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Spawn(format!("cannot start the case process {}: {e}", exe.display())))?;
    let stderr = child.stderr.take().map(BufReader::new);
    let stderr_lines = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for line in stderr.into_iter().flat_map(|r| r.lines().map_while(Result::ok)) {
            let report = line.strip_prefix(crate::exec::run::LIVE_PREFIX).and_then(|l| l.split_once(' '));
            match report.and_then(|(phase, rate)| Some((phase, rate.parse::<f64>().ok()?))) {
                Some((phase, rate)) => live(phase, rate),
                None => kept.push(line),
            }
        }
        kept
    });
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout).ok();
    }
    let status = child.wait().map_err(|e| RunError::Spawn(e.to_string()))?;
    let stderr = stderr_lines.join().unwrap_or_default();
    if let Some(reply) = stdout.lines().rev().find_map(|l| serde_json::from_str::<CaseReply>(l).ok()) {
        return Ok(reply);
    }
    let why = match status.code() {
        Some(code) => format!("the case process exited with status {code}"),
        None => {
            #[cfg(unix)]
            let signal = std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0);
            #[cfg(not(unix))]
            let signal = 0;
            let hint = if signal == 9 { " (killed: out of memory?)" } else { "" };
            format!("the case process died from signal {signal}{hint}")
        }
    };
    let tail: Vec<&String> = stderr.iter().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().map(String::as_str).collect();
    Ok(CaseReply { result: None, error: Some(format!("{why}: {}", tail.join(" | "))), telemetry: None })
}

/// The synprof binary to start case processes with.
pub fn current_exe() -> Result<PathBuf, RunError> {
    std::env::current_exe().map_err(|e| RunError::Spawn(format!("cannot find the synprof executable: {e}")))
}
