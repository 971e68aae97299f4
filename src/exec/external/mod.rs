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
use std::path::PathBuf;
use std::process::{Command, Stdio};

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
    let dir = Scratch::new()?;
    let (model, weights) = export(net, opts, backend, &dir)?;
    let runner = dir.write("runner.py", RUNNER.as_bytes())?;
    dir.write("torch_reference.py", TORCH_REFERENCE.as_bytes())?;
    let out = dir.0.join("result.json");
    let min_secs = super::run::measured_window_seconds(opts, telemetry);
    let spec = serde_json::json!({
        "runtime": backend.to_string(),
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
    });
    let spec_path = dir.write("spec.json", spec.to_string().as_bytes())?;
    let python = python();
    let mut child = Command::new(&python)
        .arg(&runner)
        .arg(&spec_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            ExecError::new(format!(
                "{backend} backend: cannot start Python `{}` ({e}); install Python 3 with {}, or point SYNPROF_PYTHON at one",
                python.display(),
                packages(backend)
            ))
        })?;
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
            } else if let Some(e) = line.strip_prefix("@error ") {
                error = Some(e.to_string());
            } else {
                tail.push(line);
                if tail.len() > 12 {
                    tail.remove(0);
                }
            }
        }
    }
    let status = child.wait().map_err(|e| ExecError::new(format!("{backend} backend: {e}")))?;
    if let Some(e) = error {
        return Err(ExecError::new(e));
    }
    if !status.success() {
        let why = if tail.iter().any(|l| l.contains("ModuleNotFoundError")) {
            format!("; the runtime is missing: install {} into `{}`", packages(backend), python.display())
        } else {
            String::new()
        };
        return Err(ExecError::new(format!(
            "{backend} backend: the runner failed ({status}){why}: {}",
            tail.join(" | ")
        )));
    }
    let result: RunnerResult = std::fs::read(&out)
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
        losses: None,
        layers: None,
        conv_algorithm: None,
        fused_activations: 0,
        fused_residual_adds: 0,
        winograd_convs: 0,
        batch_split: None,
    };
    Ok((measured, result.runtime, result.peak_rss_bytes))
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
