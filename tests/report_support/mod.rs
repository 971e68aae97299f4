//! Fabricated run directories for the report tests: a GPU run with everything a report can
//! show (telemetry, per-layer times, a failure, device ceilings, two dtypes, training) and a
//! plain CPU run. Records are built as JSON and read back as `Record`, so a change of the
//! record format shows up here as a clear parse error.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use synprof::sweep::record::{Context, Record};
use synprof::sweep::store::RunDir;

pub struct Model {
    pub name: &'static str,
    pub params: u64,
    pub macs_per_image: u64,
    pub intensity: f64,
    /// images/s at batch 1, f32, on the fabricated GPU.
    pub base_images_per_s: f64,
}

pub const MODELS: [Model; 3] = [
    Model {
        name: "resnet50",
        params: 25_557_032,
        macs_per_image: 4_089_184_256,
        intensity: 19.3,
        base_images_per_s: 180.0,
    },
    Model {
        name: "mobilenet_v2",
        params: 3_504_872,
        macs_per_image: 300_774_272,
        intensity: 3.59,
        base_images_per_s: 400.0,
    },
    Model {
        name: "squeezenet1_1",
        params: 1_235_496,
        macs_per_image: 349_152_512,
        intensity: 11.6,
        base_images_per_s: 900.0,
    },
];

/// Throughput the fabricated device reaches: grows with batch, x2.5 in f16, /3 in training.
pub fn images_per_s(m: &Model, batch: usize, dtype: &str, mode: &str) -> f64 {
    let dtype_gain = if dtype == "f16" { 2.5 } else { 1.0 };
    let mode_cost = if mode == "train" { 3.0 } else { 1.0 };
    m.base_images_per_s * (batch as f64).powf(0.6) * dtype_gain / mode_cost
}

pub fn context(run_id: &str, device_facts: Value, cpu_model: &str) -> Context {
    serde_json::from_value(json!({
        "run_id": run_id,
        "profile_name": "fixture",
        "profile_file": "profiles/fixture.toml",
        "profile_text": "name = \"fixture\"\ndescription = \"Fabricated cases for the report tests\"\n\n[variables]\nmodel = [\"resnet50\", \"mobilenet_v2\", \"squeezenet1_1\"]\nbatch = [1, 8, 32]\n",
        "synprof_version": "0.1.0",
        "git_revision": "0123456789ab",
        "started_unix_s": 1_795_446_000.0,
        "host": {"hostname": "fixture", "os": "linux 6.1", "cpu_model": cpu_model, "logical_cpus": 16,
                 "memory_bytes": 137_438_953_472u64, "rustc": "rustc 1.95.0", "features": ["cuda"]},
        "devices": device_facts
    }))
    .expect("a context")
}

/// Telemetry of one case: idle 0-1 s, warm-up 1-2 s, measured 2-2+`measured_s`, cool-down 0.5 s;
/// the average-power field reads 4% above the counter's energy / time, as sensors disagree.
pub fn telemetry(images: f64, measured_s: f64, power_w: f64) -> Value {
    let end = 2.0 + measured_s;
    let samples: Vec<Value> = (0..=((end + 0.5) * 10.0) as usize)
        .map(|i| {
            let t = i as f64 / 10.0;
            let p = if t < 1.0 || t > end { 60.0 } else if t < 2.0 { 60.0 + (power_w - 60.0) * (t - 1.0) } else { power_w };
            json!({"t_s": t, "power_w": p, "temperature_c": 40.0 + t * 3.0, "sm_clock_mhz": 1980.0, "gpu_util_pct": 98.0})
        })
        .collect();
    let energy_j = power_w * measured_s;
    json!({
        "energy": {"counter_j": energy_j, "integrated_j": energy_j * 0.99, "disagreement": 0.01,
                   "avg_power_w": power_w, "idle_power_w": 60.0, "mj_per_image": energy_j / images * 1e3,
                   "images_per_j": images / energy_j, "images_per_s_per_w": images / measured_s / (power_w * 1.04),
                   "throttled": false},
        "samples": samples,
        "windows": [
            {"phase": "idle", "start_s": 0.0, "end_s": 1.0},
            {"phase": "warmup", "start_s": 1.0, "end_s": 2.0},
            {"phase": "measured", "start_s": 2.0, "end_s": end},
            {"phase": "cooldown", "start_s": end, "end_s": end + 0.5}
        ]
    })
}

pub struct Case<'a> {
    pub model: &'a Model,
    pub device: &'a str,
    pub dtype: &'a str,
    pub mode: &'a str,
    pub batch: usize,
}

/// A finished case measured at `images_per_s` with 20 iterations.
pub fn ok_record(
    c: &Case,
    images_per_s: f64,
    started_unix_s: f64,
    telemetry: Option<Value>,
    layers: Option<Value>,
) -> Record {
    let iteration_ms = c.batch as f64 / images_per_s * 1e3;
    let latencies: Vec<f64> = (0..20).map(|i| iteration_ms * (0.97 + 0.003 * i as f64)).collect();
    let passes = if c.mode == "train" { 3.0 } else { 1.0 };
    let value = json!({
        "case": case_json(c),
        "status": "ok",
        "counts": counts_json(c.model),
        "result": {
            "model": c.model.name, "device": c.device, "dtype": c.dtype, "batch": c.batch, "mode": c.mode,
            "cpu_threads": if c.device == "cpu" { Some(16) } else { None }, "warmup_iterations": 3,
            "latency": {"iterations": 20, "mean_ms": iteration_ms, "stderr_ms": iteration_ms * 0.002,
                        "median_ms": iteration_ms, "p50_ms": iteration_ms, "p90_ms": iteration_ms * 1.02,
                        "p99_ms": iteration_ms * 1.03, "min_ms": iteration_ms * 0.97, "max_ms": iteration_ms * 1.03,
                        "mad_jitter_ms": iteration_ms * 0.01, "images_per_s": images_per_s},
            "latencies_ms": latencies,
            "macs_per_image": c.model.macs_per_image,
            "achieved_gflops_per_s": 2.0 * passes * c.model.macs_per_image as f64 * images_per_s / 1e9,
            "peak_memory_bytes": 1_000_000_000u64, "memory_source": "fixture", "folded_batch_norms": 0,
            "loss_first": null, "loss_last": null, "layers": layers
        },
        "telemetry": telemetry,
        "started_unix_s": started_unix_s,
        "wall_s": 6.0
    });
    serde_json::from_value(value).expect("a record")
}

pub fn failed_record(c: &Case, error: &str, started_unix_s: f64) -> Record {
    serde_json::from_value(json!({
        "case": case_json(c), "status": "failed", "error": error, "counts": counts_json(c.model),
        "started_unix_s": started_unix_s, "wall_s": 0.5
    }))
    .expect("a failed record")
}

fn case_json(c: &Case) -> Value {
    json!({"id": format!("{}/{}/candle/{}/{}/b{}", c.model.name, c.device, c.dtype, c.mode, c.batch),
           "model": c.model.name, "device": c.device, "backend": "candle", "dtype": c.dtype, "mode": c.mode,
           "threads": null, "batch": c.batch})
}

fn counts_json(m: &Model) -> Value {
    json!({"params": m.params, "macs_per_image": m.macs_per_image, "flops_per_image": m.macs_per_image * 2,
           "bytes_moved": (m.macs_per_image as f64 * 2.0 / m.intensity) as u64, "arithmetic_intensity": m.intensity})
}

/// Ten fabricated layers of a resnet50 case.
pub fn layers() -> Value {
    let ops = [
        "conv2d",
        "conv2d",
        "batch_norm",
        "relu",
        "conv2d",
        "max_pool2d",
        "conv2d",
        "add",
        "global_avg_pool",
        "linear",
    ];
    let layers: Vec<Value> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let mean_ms = 0.2 + (10 - i) as f64 * 0.15;
            let flops = if op.starts_with("conv") || *op == "linear" { 4e9 / (i + 1) as f64 } else { 2e7 };
            json!({"name": format!("layer{i}_{op}"), "op": op, "mean_ms": mean_ms, "share": mean_ms / 10.0,
                   "flops": flops as u64, "achieved_gflops_per_s": flops / (mean_ms / 1e3) / 1e9,
                   "arithmetic_intensity": if op.starts_with("conv") { 40.0 + i as f64 * 10.0 } else { 0.25 + i as f64 * 0.05 }})
        })
        .collect();
    Value::Array(layers)
}

pub fn gpu_device_facts() -> Value {
    json!([{"id": "cuda:0", "name": "NVIDIA H100 80GB HBM3 (fabricated)",
            "peak_flops_per_s": {"f32": 6.7e13, "f16": 9.89e14},
            "memory_bandwidth_bytes_per_s": 3.35e12, "peak_source": "datasheet"}])
}

pub fn write_run(dir: &Path, context: &Context, records: &[Record]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("run directory");
    let run = RunDir { path: dir.to_path_buf() };
    run.write_context(context).expect("context");
    for r in records {
        run.append(r).expect("record");
    }
    dir.to_path_buf()
}

/// The GPU run: 3 models x batch 1, 8, 32 x f32, f16 inference with telemetry, resnet50 f16
/// training at batch 32, per-layer times for resnet50 f32 b8, and resnet50 f32 b32 failed.
pub fn gpu_run(dir: &Path) -> PathBuf {
    let mut records = Vec::new();
    let mut t = 1_795_446_000.0;
    for dtype in ["f32", "f16"] {
        for m in &MODELS {
            for batch in [1, 8, 32] {
                let c = Case { model: m, device: "cuda:0", dtype, mode: "infer", batch };
                t += 6.5;
                if m.name == "resnet50" && dtype == "f32" && batch == 32 {
                    records.push(failed_record(
                        &c,
                        "out of memory: CUDA_ERROR_OUT_OF_MEMORY, batch 32 needs 81.2 GiB",
                        t,
                    ));
                    continue;
                }
                let ips = images_per_s(m, batch, dtype, "infer");
                let power = 120.0 + 40.0 * (batch as f64).ln() + if dtype == "f16" { 30.0 } else { 0.0 };
                let layers = (m.name == "resnet50" && dtype == "f32" && batch == 8).then(layers);
                records.push(ok_record(&c, ips, t, Some(telemetry(ips * 3.0, 3.0, power)), layers));
            }
        }
    }
    let c = Case { model: &MODELS[0], device: "cuda:0", dtype: "f16", mode: "train", batch: 32 };
    let ips = images_per_s(&MODELS[0], 32, "f16", "train");
    records.push(ok_record(&c, ips, t + 6.5, Some(telemetry(ips * 3.0, 3.0, 310.0)), None));
    let ctx = context("2026-11-23T16-00-00Z_fixture-gpu", gpu_device_facts(), "Fixture Xeon");
    write_run(dir, &ctx, &records)
}

/// A CPU run of the same models, f32 inference at batch 1, 8, 32, 20x slower, no telemetry.
pub fn cpu_run(dir: &Path) -> PathBuf {
    let mut records = Vec::new();
    let mut t = 1_795_440_000.0;
    for m in &MODELS {
        for batch in [1, 8, 32] {
            t += 10.0;
            let c = Case { model: m, device: "cpu", dtype: "f32", mode: "infer", batch };
            records.push(ok_record(&c, images_per_s(m, batch, "f32", "infer") / 20.0, t, None, None));
        }
    }
    let ctx = context("2026-11-23T14-00-00Z_fixture-cpu", Value::Null, "Fixture EPYC");
    write_run(dir, &ctx, &records)
}

/// A fresh empty directory under the target dir, named for the test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}
