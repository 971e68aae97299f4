//! The telemetry of one case as a result carries it: the window's figures, a timeline of
//! samples thinned to a bounded count, and the phase windows, all on the monitor's time
//! axis (seconds since the case's telemetry started).
//!
//! [`CaseTelemetry::record_value`] gives the compact form a sweep record stores
//! (`Record::telemetry`, read by `report::telemetry`), with the full report under "detail".

use super::monitor::Recording;
use super::sample::Sample;
use super::session::TelemetryReport;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A timeline keeps at most this many samples (evenly thinned, window edges kept).
pub const MAX_TIMELINE_SAMPLES: usize = 1500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseWindow {
    pub phase: String,
    pub start_s: f64,
    pub end_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseTelemetry {
    pub report: TelemetryReport,
    pub samples: Vec<Sample>,
    pub windows: Vec<PhaseWindow>,
}

impl CaseTelemetry {
    pub fn new(report: TelemetryReport, recording: &Recording) -> CaseTelemetry {
        let windows = recording
            .phases
            .iter()
            .filter_map(|m| {
                let (a, b) = recording.window(m.phase)?;
                (a == m.t).then(|| PhaseWindow {
                    phase: m.phase.to_string(),
                    start_s: a.as_secs_f64(),
                    end_s: b.as_secs_f64(),
                })
            })
            .collect();
        CaseTelemetry { report, samples: thin(&recording.samples, MAX_TIMELINE_SAMPLES), windows }
    }

    /// The measured window's main figures: the device under test's energy, the CPU's
    /// utilisation and frequency, one line each, "not available: why" where missing.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(e) = self.report.energy.first() {
            let w = |f: &super::Figure<f64>, unit: &str, digits: usize| f.show(|v| format!("{v:.digits$} {unit}"));
            if e.energy_j.value().is_none() {
                lines.push(format!("{} energy: {}", e.domain, w(&e.energy_j, "J", 2)));
            } else {
                lines.push(format!(
                    "{} energy {} ({}), average power {}, {} per image, {} images/J",
                    e.domain,
                    w(&e.energy_j, "J", 2),
                    e.energy_source,
                    w(&e.average_power_w, "W", 1),
                    w(&e.energy_per_image_mj, "mJ", 2),
                    e.images_per_j.show(|v| format!("{v:.2}")),
                ));
            }
            if let Some(d) = e.disagreement.value() {
                lines.push(format!(
                    "counter {} vs integrated power {}: {:+.2}% apart",
                    w(&e.counter_energy_j, "J", 2),
                    w(&e.integrated_energy_j, "J", 2),
                    d * 100.0
                ));
            }
            if e.idle_power_w.value().is_some() {
                lines.push(format!(
                    "idle power {}; above idle: {} images/J",
                    w(&e.idle_power_w, "W", 1),
                    e.above_idle.images_per_j.show(|v| format!("{v:.2}"))
                ));
            }
            if let Some(why) = &e.short_window {
                lines.push(format!("short window: {why}"));
            }
        }
        let field = |name: &str| self.report.fields.iter().find(|f| f.field == name);
        let mut host = Vec::new();
        for (name, label, unit) in [
            ("cpu_util_pct", "CPU busy", "%"),
            ("process_cpu_util_pct", "synprof's process", "% of all CPUs"),
            ("cpu_freq_mhz", "CPU clock", "MHz"),
            ("gpu_util_pct", "GPU busy", "%"),
            ("temperature_c", "GPU temperature", "C"),
            ("sm_clock_mhz", "SM clock", "MHz"),
        ] {
            if let Some(f) = field(name) {
                host.push(format!("{label} {:.0} {unit} (mean)", f.mean));
            }
        }
        // Without a sampled clock (a VM's /proc/cpuinfo gives only the nominal one), the
        // clock a dependent-add loop ran at as the case began.
        if field("cpu_freq_mhz").is_none() {
            if let Some(mhz) = self.report.facts.cpu.as_ref().and_then(|c| c.measured_clock_mhz.value()) {
                host.push(format!("core clock {mhz:.0} MHz (measured as the case began)"));
            }
        }
        if !host.is_empty() {
            lines.push(host.join(", "));
        }
        if let Some(s) = self.report.steady.value() {
            if s.throttled {
                lines.push(format!("THROTTLED during the window: {}", s.throttle_reasons.join(", ")));
            }
        }
        lines.push(format!(
            "{} samples every {:.0} ms by {}",
            self.report.samples, self.report.interval_ms, self.report.sampler
        ));
        lines
    }

    /// The compact form stored in a sweep record (see `report::telemetry`).
    pub fn record_value(&self) -> serde_json::Value {
        let main = self.report.energy.first();
        let v = |f: Option<&super::Figure<f64>>| f.and_then(|f| f.value().copied());
        let energy = main.map(|e| {
            json!({
                "domain": e.domain.to_string(),
                "counter_j": v(Some(&e.counter_energy_j)),
                "integrated_j": v(Some(&e.integrated_energy_j)),
                "disagreement": v(Some(&e.disagreement)).map(f64::abs),
                "avg_power_w": v(Some(&e.average_power_w)),
                "idle_power_w": v(Some(&e.idle_power_w)),
                "mj_per_image": v(Some(&e.energy_per_image_mj)),
                "images_per_j": v(Some(&e.images_per_j)),
                "images_per_s_per_w": v(Some(&e.images_per_s_per_w)),
                "throttled": self.report.steady.value().map(|s| s.throttled),
                "why_not": e.energy_j.reason(),
            })
        });
        json!({
            "energy": energy,
            "samples": self.samples,
            "windows": self.windows,
            "detail": self.report,
        })
    }
}

/// At most `max` samples, evenly spaced by index, the first and last kept.
fn thin(samples: &[Sample], max: usize) -> Vec<Sample> {
    if samples.len() <= max || max < 2 {
        return samples.to_vec();
    }
    let last = samples.len() - 1;
    (0..max).map(|i| samples[i * last / (max - 1)].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn thinning_keeps_the_ends_and_the_bound() {
        let s: Vec<Sample> = (0..10_000).map(|i| Sample::at(Duration::from_millis(i))).collect();
        let t = thin(&s, 100);
        assert_eq!(t.len(), 100);
        assert_eq!(t[0].t, Duration::ZERO);
        assert_eq!(t[99].t, Duration::from_millis(9_999));
        assert!(t.windows(2).all(|w| w[0].t < w[1].t));
        assert_eq!(thin(&s[..50], 100).len(), 50);
    }
}
