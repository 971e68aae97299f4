//! The devices a run uses, as its context records them: facts (name, memory, driver) and
//! the ceilings the report's roofline draws: peak FLOP/s per dtype and memory bandwidth,
//! measured on the spot (`synprof devices --peak`'s microbenchmarks) or, for a GPU
//! without a measurement, from its datasheet (profiles/devices), each saying which.

use super::plan::Plan;
use crate::exec::DeviceSpec;
use crate::telemetry::{datasheet, nvml, peak, CpuSampler, Figure};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Facts and ceilings for every device in `plan`; `measure`: run the microbenchmarks
/// (about `budget` each).
pub fn describe(plan: &Plan, measure: bool, budget: Duration) -> Value {
    let mut devices: Vec<DeviceSpec> = plan.cases.iter().map(|c| c.device).collect();
    devices.sort_by_key(|d| d.to_string());
    devices.dedup();
    Value::Array(devices.into_iter().map(|d| entry(d, measure, budget)).collect())
}

fn entry(device: DeviceSpec, measure: bool, budget: Duration) -> Value {
    let mut e = Map::new();
    e.insert("id".into(), json!(device.to_string()));
    let mut flops = Map::new();
    let mut bandwidth = None;
    let mut sources = Vec::new();
    match device {
        DeviceSpec::Cpu => {
            let facts = CpuSampler::new().facts();
            e.insert("name".into(), json!(facts.model_name.value().cloned().unwrap_or_else(|| "CPU".into())));
            e.insert("facts".into(), json!(facts));
            if measure {
                take_measured(peak::cpu(budget), &mut flops, &mut bandwidth, &mut sources);
            }
        }
        DeviceSpec::Cuda(i) => {
            let facts = nvml::all_gpu_facts().ok().and_then(|all| all.into_iter().find(|g| g.index == i as u32));
            let name = facts.as_ref().and_then(|f| f.name.value().cloned());
            e.insert("name".into(), json!(name.clone().unwrap_or_else(|| device.to_string())));
            e.insert("facts".into(), json!(facts));
            if measure {
                take_measured(peak::cuda(i, budget), &mut flops, &mut bandwidth, &mut sources);
            }
            let sheets = datasheet::built_in();
            if let Some(sheet) = name.as_deref().and_then(|n| datasheet::find(&sheets, n)) {
                let mut used = false;
                for (dtype, tflops) in
                    [("f32", Some(sheet.fp32_tflops)), ("f16", sheet.fp16_tflops), ("bf16", sheet.bf16_tflops)]
                {
                    if let (Some(t), false) = (tflops, flops.contains_key(dtype)) {
                        flops.insert(dtype.into(), json!(t * 1e12));
                        used = true;
                    }
                }
                if bandwidth.is_none() {
                    bandwidth = Some(sheet.memory_bandwidth_gb_s * 1e9);
                    used = true;
                }
                if used {
                    sources.push(format!("datasheet: {} ({})", sheet.source, sheet.source_url));
                }
            }
        }
    }
    if !flops.is_empty() {
        e.insert("peak_flops_per_s".into(), Value::Object(flops));
    }
    if let Some(b) = bandwidth {
        e.insert("memory_bandwidth_bytes_per_s".into(), json!(b));
    }
    e.insert(
        "peak_source".into(),
        json!(if sources.is_empty() {
            "none: not measured (measure_peaks = false) and no datasheet".into()
        } else {
            sources.join("; ")
        }),
    );
    Value::Object(e)
}

fn take_measured(
    peaks: Vec<Figure<peak::Peak>>,
    flops: &mut Map<String, Value>,
    bandwidth: &mut Option<f64>,
    sources: &mut Vec<String>,
) {
    for p in peaks.iter().filter_map(Figure::value) {
        match p.kind.as_str() {
            "matmul" => {
                flops.insert(p.dtype.clone(), json!(p.value * 1e9));
            }
            _ => *bandwidth = Some(p.value * 1e9),
        }
        sources.push(format!("measured: {} {} {:.1} {} ({})", p.kind, p.dtype, p.value, p.unit, p.method));
    }
}
