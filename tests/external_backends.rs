//! External backends: onnxruntime (in CI, from the tests' venv) and PyTorch (on demand,
//! `SYNPROF_TORCH_PYTHON`) run a case with synprof's windows and telemetry marks; a missing
//! runtime or an impossible case is a clear error for that case.
//!
//! One test function per binary section that sets `SYNPROF_PYTHON`, so that no two tests
//! race on the environment.

mod common;
use common::python::{bare_python, python_with, set_python};
use std::path::Path;
use synprof::exec::run::{run_case, RunOptions, Window};
use synprof::exec::{Backend, Mode};

fn options(backend: Backend) -> RunOptions {
    RunOptions {
        backend,
        batch: 2,
        warmup: Window { iterations: 1, seconds: 0.0 },
        measure: Window { iterations: 4, seconds: 0.5 },
        telemetry_interval_ms: Some(20.0),
        ..RunOptions::default()
    }
}

#[test]
fn onnxruntime_runs_a_case_and_missing_runtimes_say_what_to_install() {
    let net = synprof::zoo::build("keras_cifar10_cnn", None).unwrap();
    set_python(&python_with(&["onnxruntime", "numpy"]));
    let r = run_case(&net, &options(Backend::Onnxruntime)).unwrap();
    assert_eq!(r.backend, Backend::Onnxruntime);
    assert!(r.runtime.as_deref().unwrap().starts_with("onnxruntime 1."), "{:?}", r.runtime);
    assert!(r.latencies_ms.len() >= 4 && r.latency.images_per_s > 0.0);
    assert!(r.peak_memory_bytes.unwrap() > 10 << 20, "the runtime process' RSS");
    // The child's phases are the telemetry windows, and the window holds its iterations.
    let t = r.telemetry.as_ref().unwrap();
    let phases: Vec<&str> = t.windows.iter().map(|w| w.phase.as_str()).collect();
    assert_eq!(phases, ["warmup", "measured", "cooldown"]);
    let window_s = t.windows[1].end_s - t.windows[1].start_s;
    let timed_s: f64 = r.latencies_ms.iter().sum::<f64>() / 1e3;
    assert!(window_s >= timed_s && window_s < timed_s + 0.5, "window {window_s} s, iterations {timed_s} s");

    // What onnxruntime cannot do is refused before anything runs.
    let e = run_case(&net, &RunOptions { mode: Mode::Train, ..options(Backend::Onnxruntime) }).unwrap_err();
    assert!(e.to_string().contains("onnxruntime backend: inference only"), "{e}");

    // No Python at all.
    set_python(Path::new("/nonexistent/python3"));
    let e = run_case(&net, &options(Backend::Onnxruntime)).unwrap_err().to_string();
    assert!(e.contains("cannot start Python `/nonexistent/python3`") && e.contains("SYNPROF_PYTHON"), "{e}");

    // A Python without the runtime: isolated mode sees no site-packages.
    let bare = bare_python("external");
    set_python(&bare);
    let e = run_case(&net, &options(Backend::Onnxruntime)).unwrap_err().to_string();
    assert!(e.contains("onnxruntime backend") && e.contains("pip install onnxruntime numpy"), "{e}");
    let e = run_case(&net, &options(Backend::Pytorch)).unwrap_err().to_string();
    assert!(e.contains("pytorch backend") && e.contains("pip install torch numpy"), "{e}");
    std::fs::remove_dir_all(bare.parent().unwrap()).ok();
}

/// `SYNPROF_TORCH_PYTHON=/path/to/venv/bin/python cargo test --release --test external_backends -- --ignored`
#[test]
#[ignore = "needs PyTorch (5.6 GB): set SYNPROF_TORCH_PYTHON"]
fn pytorch_runs_inference_and_training() {
    let python = std::env::var_os("SYNPROF_TORCH_PYTHON").expect("set SYNPROF_TORCH_PYTHON to a Python with torch");
    set_python(Path::new(&python));
    let net = synprof::zoo::build("keras_cifar10_cnn", None).unwrap();
    for mode in [Mode::Infer, Mode::Train] {
        let r = run_case(&net, &RunOptions { mode, ..options(Backend::Pytorch) }).unwrap();
        assert!(r.runtime.as_deref().unwrap().starts_with("PyTorch "), "{:?}", r.runtime);
        assert!(r.latencies_ms.len() >= 4);
    }
}
