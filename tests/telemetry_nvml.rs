//! NVML: where no NVIDIA library exists (this machine), a clear "not available" message and
//! a session that still reports the host; on a GPU machine, real readings.

use std::time::Duration;
use synprof::exec::DeviceSpec;
use synprof::telemetry::session::sampler_for;
use synprof::telemetry::{nvml, NvmlSampler, Phase, Sampler, Telemetry, TelemetryOptions};

#[test]
fn nvml_says_why_it_is_not_available_or_reads_the_gpu() {
    match NvmlSampler::new(0) {
        Err(e) => {
            let text = e.to_string();
            assert!(text.starts_with("not available: NVML"), "{text}");
            // the loader's reason and the names tried are in the message
            assert!(
                text.contains("libnvidia-ml.so.1") || text.contains("did not start") || text.contains("no GPU 0"),
                "{text}"
            );
            assert!(nvml::all_gpu_facts().unwrap_err().to_string().starts_with("not available: NVML"));
        }
        Ok(mut gpu) => {
            let facts = gpu.facts();
            assert!(facts.name.value().is_some_and(|n| !n.is_empty()), "{facts:?}");
            assert!(facts.memory_total_bytes.value().is_some_and(|&b| b > 1 << 30));
            let a = gpu.sample(Duration::ZERO);
            std::thread::sleep(Duration::from_millis(500));
            let b = gpu.sample(Duration::from_millis(500));
            let power = b.power_w.or(b.power_avg_w).expect("a power reading");
            assert!(power > 1.0 && power < 2000.0, "{power} W");
            if let (Some(e0), Some(e1)) = (a.energy_counter_mj, b.energy_counter_mj) {
                assert!(e1 > e0, "the energy counter advances: {e0} -> {e1}");
            }
            assert!(b.temperature_c.is_some() && b.sm_clock_mhz.is_some() && b.throttle_reasons.is_some());
        }
    }
}

#[test]
fn a_cuda_session_without_nvml_still_reports_the_host_and_says_why() {
    if NvmlSampler::new(0).is_ok() {
        return; // a GPU machine: the test above reads it
    }
    let (sampler, domains) = sampler_for(DeviceSpec::Cuda(0));
    let note = sampler.describe().notes.join("; ");
    assert!(note.contains("GPU 0: not available: NVML"), "{note}");
    let opts =
        TelemetryOptions { probe: Duration::from_millis(100), idle: Duration::ZERO, ..TelemetryOptions::default() };
    let t = Telemetry::start_with(sampler, domains, &opts);
    t.mark(Phase::Measured);
    std::thread::sleep(Duration::from_millis(200));
    let (report, recording) = t.finish(10);
    let gpu = &report.energy[0];
    let why = gpu.counter_energy_j.reason().unwrap();
    assert!(why.contains("NVML total-energy counter") && why.contains("NVML"), "{why}");
    assert!(gpu.energy_per_image_mj.reason().is_some(), "no fake figure");
    assert!(recording.samples.iter().any(|s| s.rss_bytes.is_some()), "host figures still sampled");
    assert!(report.fields.iter().any(|f| f.field == "rss_bytes"));
}
