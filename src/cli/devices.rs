//! `synprof devices`: the CPU and the GPUs with their limits and clocks, which telemetry
//! each can give, and with `--peak` their measured ceilings.

use super::text::{bytes, Table};
use crate::telemetry::datasheet::{self, Datasheet};
use crate::telemetry::peak::{self, Peak};
use crate::telemetry::{nvml, CpuFacts, CpuSampler, Figure, GpuFacts};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Serialize)]
pub struct GpuDevice {
    #[serde(flatten)]
    pub facts: GpuFacts,
    /// The datasheet matching the NVML name, if synprof has one.
    pub datasheet: Option<Datasheet>,
}

#[derive(Debug, Serialize)]
pub struct DevicesReport {
    pub cpu: CpuFacts,
    pub gpus: Figure<Vec<GpuDevice>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peaks: Option<Vec<Figure<Peak>>>,
}

/// Gather the facts; with `peak`, run the microbenchmarks (about `budget` each).
pub fn report(peak: bool, budget: Duration) -> DevicesReport {
    let sheets = datasheet::built_in();
    let gpus: Figure<Vec<GpuDevice>> = nvml::all_gpu_facts()
        .map(|all| {
            all.into_iter()
                .map(|facts| {
                    let datasheet = facts.name.value().and_then(|n| datasheet::find(&sheets, n)).cloned();
                    GpuDevice { facts, datasheet }
                })
                .collect()
        })
        .map_err(|e| e.0)
        .into();
    let peaks = peak.then(|| {
        let mut all = peak::cpu(budget);
        if let Figure::Value(list) = &gpus {
            for g in list {
                all.extend(peak::cuda(g.facts.index as usize, budget));
            }
        }
        all
    });
    DevicesReport { cpu: CpuSampler::new().facts(), gpus, peaks }
}

fn line(out: &mut String, key: &str, value: String) {
    out.push_str(&format!("  {key:<22} {value}\n"));
}

fn mhz(v: &u32) -> String {
    format!("{v} MHz")
}

fn watts(v: &f64) -> String {
    format!("{v:.0} W")
}

pub fn render(r: &DevicesReport) -> String {
    let mut out = String::from("CPU\n");
    let c = &r.cpu;
    line(&mut out, "model", c.model_name.show(|s| s.clone()));
    line(
        &mut out,
        "sockets / cores",
        format!("{} / {}", c.sockets.show(|v| v.to_string()), c.physical_cores.show(|v| v.to_string())),
    );
    line(&mut out, "threads (usable)", c.threads.to_string());
    line(&mut out, "frequency now", c.frequency_mhz.show(|v| format!("{v:.0} MHz")));
    line(&mut out, "frequency max", c.max_frequency_mhz.show(|v| format!("{v:.0} MHz")));
    line(
        &mut out,
        "clock measured",
        c.measured_clock_mhz.show(|v| format!("{v:.0} MHz ({})", c.measured_clock_method)),
    );
    line(&mut out, "utilisation from", c.utilization_source.show(|s| s.clone()));
    line(&mut out, "RSS from", c.rss_source.show(|s| s.clone()));
    line(&mut out, "frequency from", c.frequency_source.show(|s| s.clone()));
    line(&mut out, "RAPL package energy", c.rapl.show(|s| s.clone()));
    match &r.gpus {
        Figure::NotAvailable { not_available } => {
            out.push_str(&format!("\nNVIDIA GPUs: not available: {not_available}\n"))
        }
        Figure::Value(gpus) => {
            for g in gpus {
                render_gpu(&mut out, g);
            }
        }
    }
    if let Some(peaks) = &r.peaks {
        out.push_str("\nMeasured ceilings\n");
        out.push_str(&render_peaks(peaks, &r.gpus));
    }
    out
}

fn render_gpu(out: &mut String, g: &GpuDevice) {
    let f = &g.facts;
    out.push_str(&format!("\nGPU {} (cuda:{})\n", f.name.show(|s| s.clone()), f.index));
    line(out, "uuid", f.uuid.show(|s| s.clone()));
    line(out, "architecture", f.architecture.show(|s| s.clone()));
    line(out, "compute capability", f.compute_capability.show(|s| s.clone()));
    line(out, "driver", f.driver_version.show(|s| s.clone()));
    line(out, "CUDA (driver)", f.cuda_driver_version.show(|s| s.clone()));
    line(out, "memory", f.memory_total_bytes.show(|b| bytes(*b)));
    line(
        out,
        "power limit",
        format!("{} (default {})", f.power_limit_w.show(watts), f.default_power_limit_w.show(watts)),
    );
    line(out, "SM clock", format!("{} (max {})", f.sm_clock_mhz.show(mhz), f.max_sm_clock_mhz.show(mhz)));
    line(out, "memory clock", format!("{} (max {})", f.mem_clock_mhz.show(mhz), f.max_mem_clock_mhz.show(mhz)));
    line(out, "temperature", f.temperature_c.show(|t| format!("{t:.0} C")));
    line(out, "power (instant)", f.power_instant.show(|s| s.clone()));
    line(out, "power (average)", f.power_average.show(|s| s.clone()));
    line(out, "energy counter", f.energy_counter.show(|s| s.clone()));
    line(out, "GPM", f.gpm.show(|s| s.clone()));
    line(
        out,
        "datasheet",
        match &g.datasheet {
            Some(d) => format!(
                "{}: {} TFLOPS f32, {} bf16, {:.0} GB/s, {:.0} W ({})",
                d.name,
                d.fp32_tflops,
                d.bf16_tflops.map_or("-".to_string(), |v| v.to_string()),
                d.memory_bandwidth_gb_s,
                d.tdp_w,
                d.source
            ),
            None => "none in profiles/devices for this name".into(),
        },
    );
}

/// The datasheet figure a measured peak compares with, in the peak's unit.
fn datasheet_value(p: &Peak, gpus: &Figure<Vec<GpuDevice>>) -> Option<f64> {
    let index: u32 = p.device.strip_prefix("cuda:")?.parse().ok()?;
    let Figure::Value(gpus) = gpus else { return None };
    let d = gpus.iter().find(|g| g.facts.index == index)?.datasheet.as_ref()?;
    let tflops = match (p.kind.as_str(), p.dtype.as_str()) {
        ("memory bandwidth", _) => return Some(d.memory_bandwidth_gb_s),
        (_, "f32") => Some(d.fp32_tflops),
        (_, "tf32") => d.tf32_tflops,
        (_, "f16") => d.fp16_tflops,
        (_, "bf16") => d.bf16_tflops,
        _ => None,
    }?;
    Some(tflops * 1e3)
}

fn render_peaks(peaks: &[Figure<Peak>], gpus: &Figure<Vec<GpuDevice>>) -> String {
    let mut t = Table::new(&["device", "what", "dtype", "measured", "of datasheet", "size", "best ms", "repeats"]);
    let mut missing = String::new();
    for p in peaks {
        match p {
            Figure::Value(p) => t.row(vec![
                p.device.clone(),
                p.kind.clone(),
                p.dtype.clone(),
                format!("{:.1} {}", p.value, p.unit),
                datasheet_value(p, gpus).map_or("-".into(), |d| format!("{:.0}%", 100.0 * p.value / d)),
                p.size.clone(),
                format!("{:.3}", p.best_s * 1e3),
                p.repeats.to_string(),
            ]),
            Figure::NotAvailable { not_available } => missing.push_str(&format!("not available: {not_available}\n")),
        }
    }
    t.render() + &missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_cpu_and_says_why_gpus_are_missing() {
        let r = report(false, Duration::from_millis(10));
        let text = render(&r);
        assert!(text.starts_with("CPU\n  model"), "{text}");
        assert!(text.contains("RAPL package energy"), "{text}");
        match &r.gpus {
            Figure::NotAvailable { not_available } => {
                assert!(text.contains(&format!("NVIDIA GPUs: not available: {not_available}")), "{text}")
            }
            Figure::Value(gpus) => assert!(text.contains(&format!("(cuda:{})", gpus[0].facts.index)), "{text}"),
        }
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["cpu"]["threads"].as_u64().unwrap() >= 1);
        assert!(json.get("peaks").is_none());
    }
}
