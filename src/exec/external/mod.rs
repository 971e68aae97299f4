//! External runtimes: onnxruntime (on synprof's ONNX export) and PyTorch eager (on the
//! synprof model file through `torch.nn.functional`), run in a Python subprocess by
//! `runner.py` with synprof's warm-up and measured windows. The subprocess reports its
//! phases on stderr, so telemetry, sampled here, marks the same windows as for candle.
//!
//! Python: `SYNPROF_PYTHON`, else `python3`. Why a subprocess rather than the `ort` crate:
//! one mechanism serves both runtimes (PyTorch has no Rust binding we could ship), the
//! binary keeps no link-time dependency on either, and a missing runtime is an error for
//! that case, not for the build.

use super::run::{Measured, RunOptions, LIVE_PREFIX};
use super::{Backend, ExecError, Mode};
use crate::export::{onnx, safetensors};
use crate::graph::{format, Net};
use crate::telemetry::{Phase, Telemetry};
use crate::weights::Weights;
use serde::Deserialize;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const RUNNER: &str = include_str!("runner.py");
const TORCH_REFERENCE: &str = include_str!("torch_reference.py");

/// The interpreter external backends run under.
pub fn python() -> PathBuf {
    std::env::var_os("SYNPROF_PYTHON").filter(|p| !p.is_empty()).map_or_else(|| "python3".into(), PathBuf::from)
}

#[derive(Deserialize)]
struct RunnerResult {
    warmup_iterations: usize,
    latencies_ms: Vec<f64>,
    runtime: String,
    peak_rss_bytes: Option<u64>,
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, ExecError> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("synprof-external-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| ExecError::new(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Scratch(dir))
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, ExecError> {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).map_err(|e| ExecError::new(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// Export the model for `backend`; returns the model path and the weights path (PyTorch).
fn export(
    net: &Net,
    opts: &RunOptions,
    backend: Backend,
    dir: &Scratch,
) -> Result<(PathBuf, Option<PathBuf>), ExecError> {
    let weights = Weights::init(net, opts.seed);
    match backend {
        Backend::Onnxruntime => {
            let bytes = onnx::to_onnx(net, Some(&weights), Some(opts.batch))
                .map_err(|e| ExecError::new(format!("ONNX export for onnxruntime: {e}")))?;
            Ok((dir.write("model.onnx", &bytes)?, None))
        }
        Backend::Pytorch => {
            let model = dir.write("model.json", format::to_string(net).as_bytes())?;
            let tensors = safetensors::to_bytes(&safetensors::named_tensors(&weights));
            Ok((model, Some(dir.write("weights.safetensors", &tensors)?)))
        }
        Backend::Candle => Err(ExecError::new("candle is not an external backend")),
    }
}

/// Run one case in onnxruntime or PyTorch; `telemetry` (started by the caller) gets the
/// child's phase marks.
pub fn measure(
    net: &Net,
    opts: &RunOptions,
    telemetry: Option<&Telemetry>,
) -> Result<(Measured, String, Option<u64>), ExecError> {
    let backend = opts.backend;
    let staged = Staged::new(net, opts, super::run::measured_window_seconds(opts, telemetry), false)?;
    let python = python();
    let mut child = staged.spawn(&python, backend, Stdio::null())?;
    let (mut error, mut tail) = (None, Vec::new());
    // The runner waits on this after announcing its measured phase (see runner.py).
    let mut go = child.stdin.take();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(p) = line.strip_prefix("@phase ") {
                let phase = match p.trim() {
                    "warmup" => Some(Phase::Warmup),
                    "measured" => Some(Phase::Measured),
                    "cooldown" => Some(Phase::Cooldown),
                    _ => None,
                };
                if let (Some(t), Some(phase)) = (telemetry, phase) {
                    t.mark(phase);
                }
                if phase == Some(Phase::Measured) {
                    // Marked: the runner may start timing (dropping stdin ends its wait too).
                    if let Some(mut stdin) = go.take() {
                        let _ = stdin.write_all(b"go\n").and_then(|()| stdin.flush());
                    }
                }
            } else if line.starts_with(LIVE_PREFIX) {
                if opts.live {
                    eprintln!("{line}");
                }
            } else {
                note_stderr_line(line, &mut error, &mut tail);
            }
        }
    }
    let status = child.wait().map_err(|e| ExecError::new(format!("{backend} backend: {e}")))?;
    if error.is_some() || !status.success() {
        return Err(runner_failed(backend, &python, status, error, &tail));
    }
    let out = &staged.out;
    let result: RunnerResult = std::fs::read(out)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ExecError::new(format!("{backend} backend: the runner wrote no result ({})", out.display())))?;
    if result.latencies_ms.is_empty() {
        return Err(ExecError::new(format!("{backend} backend: no measured iterations")));
    }
    let measured = Measured {
        warmup_iterations: result.warmup_iterations,
        latencies_ms: result.latencies_ms,
        folded_batch_norms: 0,
        folded_scales: 0,
        losses: None,
        layers: None,
        conv_algorithm: None,
        fused_activations: 0,
        fused_residual_adds: 0,
        fused_expansions: 0,
        blocked_convs: 0,
        concats_in_place: 0,
        winograd_convs: 0,
        batch_split: None,
        backward: None,
    };
    Ok((measured, result.runtime, result.peak_rss_bytes))
}

/// An external runtime kept loaded and warm in its runner, timing bursts on request: the
/// other side of `synprof paired` (see runner.py's "serve").
pub struct Peer {
    backend: Backend,
    batch: usize,
    runtime: String,
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
    /// Drains the runner's stderr (so it never blocks on a full pipe): its `@error` line
    /// and last lines.
    stderr: Option<std::thread::JoinHandle<(Option<String>, Vec<String>)>>,
    python: PathBuf,
    _staged: Staged,
}

impl Peer {
    /// Export the net, start the runtime and warm it up (`opts.warmup`); inference or
    /// training as `opts.mode`.
    pub fn start(net: &Net, opts: &RunOptions) -> Result<Peer, ExecError> {
        check(opts)?;
        let staged = Staged::new(net, opts, 0.0, true)?;
        let python = python();
        let mut child = staged.spawn(&python, opts.backend, Stdio::piped())?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let stderr = child.stderr.take().map(|stderr| {
            std::thread::spawn(move || {
                let (mut error, mut tail) = (None, Vec::new());
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    note_stderr_line(line, &mut error, &mut tail);
                }
                (error, tail)
            })
        });
        let mut peer = Peer {
            backend: opts.backend,
            batch: opts.batch,
            runtime: String::new(),
            child,
            stdin,
            stdout,
            stderr,
            python,
            _staged: staged,
        };
        peer.runtime = peer.reply("@ready ")?;
        Ok(peer)
    }

    /// What ran: the runtime's name, version and settings.
    pub fn runtime(&self) -> &str {
        &self.runtime
    }

    /// One burst of at least `seconds` (and one iteration): images/s.
    pub fn burst(&mut self, seconds: f64) -> Result<f64, ExecError> {
        let backend = self.backend;
        let stdin = self.stdin.as_mut().ok_or_else(|| ExecError::new(format!("{backend} backend: runner closed")))?;
        if stdin.write_all(format!("burst {seconds}\n").as_bytes()).and_then(|()| stdin.flush()).is_err() {
            return Err(self.failure());
        }
        let reply = self.reply("@burst ")?;
        let mut words = reply.split_whitespace().map(str::parse::<f64>);
        match (words.next(), words.next()) {
            (Some(Ok(iterations)), Some(Ok(elapsed))) if iterations >= 1.0 && elapsed > 0.0 => {
                Ok(iterations * self.batch as f64 / elapsed)
            }
            _ => Err(ExecError::new(format!("{backend} backend: the runner answered `@burst {reply}`"))),
        }
    }

    /// The rest of the next stdout line that starts with `prefix` (other output skipped).
    fn reply(&mut self, prefix: &str) -> Result<String, ExecError> {
        let mut line = String::new();
        loop {
            line.clear();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => return Err(self.failure()),
                Ok(_) => {
                    if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                        return Ok(rest.to_string());
                    }
                }
            }
        }
    }

    /// Why the runner stopped answering: its `@error`, or the end of what it printed.
    fn failure(&mut self) -> ExecError {
        self.stdin = None;
        let status = match self.child.wait() {
            Ok(status) => status,
            Err(e) => return ExecError::new(format!("{} backend: {e}", self.backend)),
        };
        let (error, mut tail) = self.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
        if error.is_none() && status.success() {
            tail.push("it exited without answering".into());
        }
        runner_failed(self.backend, &self.python, status, error, &tail)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // "quit", then EOF: the runner leaves its loop and exits.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"quit\n");
        }
        let _ = self.child.wait();
    }
}

/// A runner ready to start: the exported model, the runner script and its spec, in a
/// scratch directory that lives as long as this.
struct Staged {
    _dir: Scratch,
    runner: PathBuf,
    spec: PathBuf,
    /// Where the runner writes its result (a measured case, not `serve`).
    out: PathBuf,
}

impl Staged {
    /// `serve`: the burst protocol (`Peer`) instead of one measured window of `min_secs`.
    fn new(net: &Net, opts: &RunOptions, min_secs: f64, serve: bool) -> Result<Staged, ExecError> {
        let dir = Scratch::new()?;
        let (model, weights) = export(net, opts, opts.backend, &dir)?;
        let runner = dir.write("runner.py", RUNNER.as_bytes())?;
        dir.write("torch_reference.py", TORCH_REFERENCE.as_bytes())?;
        let out = dir.0.join("result.json");
        let spec = serde_json::json!({
            "runtime": opts.backend.to_string(),
            "model": model,
            "weights": weights,
            "input_shape": net.input_shape().0,
            "classes": net.nodes.last().map_or(1, |n| n.shape.0.iter().product::<usize>()),
            "batch": opts.batch,
            "device": opts.device.to_string(),
            "dtype": opts.dtype.to_string(),
            "mode": opts.mode.to_string(),
            "threads": super::device::cpu_threads().unwrap_or_else(super::device::available_cores),
            "warmup_iters": opts.warmup.iterations,
            "warmup_secs": opts.warmup.seconds,
            "iters": opts.measure.iterations.max(1),
            "min_secs": min_secs,
            "max_secs": opts.max_seconds,
            "seed": opts.seed,
            "out": out,
            "serve": serve,
        });
        let spec = dir.write("spec.json", spec.to_string().as_bytes())?;
        Ok(Staged { _dir: dir, runner, spec, out })
    }

    /// Start the runner (stdin and stderr piped).
    fn spawn(&self, python: &Path, backend: Backend, stdout: Stdio) -> Result<Child, ExecError> {
        Command::new(python)
            .arg(&self.runner)
            .arg(&self.spec)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                ExecError::new(format!(
                    "{backend} backend: cannot start Python `{}` ({e}); install Python 3 with {}, or point SYNPROF_PYTHON at one",
                    python.display(),
                    packages(backend)
                ))
            })
    }
}

/// Keep a runner's `@error` line, and the last lines of anything else it printed.
fn note_stderr_line(line: String, error: &mut Option<String>, tail: &mut Vec<String>) {
    if let Some(e) = line.strip_prefix("@error ") {
        *error = Some(e.to_string());
    } else if !line.starts_with('@') {
        tail.push(line);
        if tail.len() > 12 {
            tail.remove(0);
        }
    }
}

/// The error of a runner that reported one or failed.
fn runner_failed(
    backend: Backend,
    python: &Path,
    status: std::process::ExitStatus,
    error: Option<String>,
    tail: &[String],
) -> ExecError {
    if let Some(e) = error {
        return ExecError::new(e);
    }
    let why = if tail.iter().any(|l| l.contains("ModuleNotFoundError")) {
        format!("; the runtime is missing: install {} into `{}`", packages(backend), python.display())
    } else {
        String::new()
    };
    ExecError::new(format!("{backend} backend: the runner failed ({status}){why}: {}", tail.join(" | ")))
}

fn packages(backend: Backend) -> &'static str {
    match backend {
        Backend::Pytorch => "torch and numpy (`pip install torch numpy`)",
        _ => "onnxruntime and numpy (`pip install onnxruntime numpy`)",
    }
}

/// Checks before any work: what the backend cannot do.
pub fn check(opts: &RunOptions) -> Result<(), ExecError> {
    match opts.backend {
        Backend::Onnxruntime if opts.mode == Mode::Train => Err(ExecError::new(
            "onnxruntime backend: inference only; use --mode infer, or backend candle or pytorch for training",
        )),
        Backend::Onnxruntime if opts.dtype != crate::Dtype::F32 => Err(ExecError::new(format!(
            "onnxruntime backend: {} is not exported (the ONNX file is f32); use f32",
            opts.dtype
        ))),
        _ if opts.layers && opts.backend != Backend::Candle => {
            Err(ExecError::new(format!("{} backend: per-layer timing (--layers) is candle's only", opts.backend)))
        }
        _ => Ok(()),
    }
}
