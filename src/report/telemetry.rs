//! The telemetry a record may carry (`Record::telemetry`), read leniently: every field is
//! optional, so a run from an older or newer synprof still renders.
//!
//! ```json
//! {"energy": {"counter_j": 41.2, "integrated_j": 40.9, "disagreement": 0.007, "avg_power_w": 205.3,
//!             "idle_power_w": 61.0, "mj_per_image": 12.9, "images_per_j": 77.5,
//!             "images_per_s_per_w": 77.5, "throttled": false},
//!  "samples": [{"t_s": 0.01, "power_w": 198.0, "temperature_c": 51.0, "sm_clock_mhz": 1980.0,
//!               "gpu_util_pct": 99.0, "cpu_util_pct": 12.0, "rss_bytes": 1234567}],
//!  "windows": [{"phase": "measured", "start_s": 1.2, "end_s": 4.2}]}
//! ```
//! Times (`t_s`, `start_s`, `end_s`) are seconds since the case started (`Record::started_unix_s`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Telemetry {
    pub energy: Option<Energy>,
    pub samples: Vec<Sample>,
    pub windows: Vec<PhaseWindow>,
}

/// Figures for the measured window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Energy {
    /// The energy counter's delta over the window (the primary figure).
    pub counter_j: Option<f64>,
    /// Trapezoid integral of instantaneous power (the cross-check).
    pub integrated_j: Option<f64>,
    /// |counter - integrated| / counter.
    pub disagreement: Option<f64>,
    pub avg_power_w: Option<f64>,
    pub idle_power_w: Option<f64>,
    pub mj_per_image: Option<f64>,
    pub images_per_j: Option<f64>,
    pub images_per_s_per_w: Option<f64>,
    pub throttled: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sample {
    pub t_s: f64,
    pub power_w: Option<f64>,
    pub temperature_c: Option<f64>,
    pub sm_clock_mhz: Option<f64>,
    pub gpu_util_pct: Option<f64>,
    pub cpu_util_pct: Option<f64>,
    pub rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhaseWindow {
    /// idle, warmup, measured or cooldown.
    pub phase: String,
    pub start_s: f64,
    pub end_s: f64,
}

impl Telemetry {
    /// Read a record's telemetry value; `Err` says what was malformed.
    pub fn parse(value: &serde_json::Value) -> Result<Telemetry, String> {
        serde_json::from_value(value.clone()).map_err(|e| format!("telemetry not understood: {e}"))
    }

    /// The window's energy in joules: the counter where there is one, else the integral.
    pub fn energy_j(&self) -> Option<f64> {
        let e = self.energy.as_ref()?;
        e.counter_j.or(e.integrated_j).filter(|j| *j > 0.0)
    }

    pub fn has_power_samples(&self) -> bool {
        self.samples.iter().any(|s| s.power_w.is_some())
    }

    pub fn has_temperature_samples(&self) -> bool {
        self.samples.iter().any(|s| s.temperature_c.is_some())
    }

    /// images/J: the recorded figure, else images measured / energy.
    pub fn images_per_j(&self, images_measured: f64) -> Option<f64> {
        let recorded = self.energy.as_ref().and_then(|e| e.images_per_j);
        recorded.or_else(|| self.energy_j().map(|j| images_measured / j)).filter(|v| v.is_finite())
    }

    /// images/s/W: the recorded figure, else throughput / average power.
    pub fn images_per_s_per_w(&self, images_per_s: f64) -> Option<f64> {
        let e = self.energy.as_ref()?;
        e.images_per_s_per_w
            .or_else(|| e.avg_power_w.filter(|w| *w > 0.0).map(|w| images_per_s / w))
            .filter(|v| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_telemetry_reads_and_derives_efficiency() {
        let v = serde_json::json!({"energy": {"counter_j": 20.0, "avg_power_w": 50.0}, "samples": [{"t_s": 0.5}]});
        let t = Telemetry::parse(&v).unwrap();
        assert_eq!(t.energy_j(), Some(20.0));
        // 400 images in the window over 20 J; 100 images/s at 50 W.
        assert_eq!(t.images_per_j(400.0), Some(20.0));
        assert_eq!(t.images_per_s_per_w(100.0), Some(2.0));
        assert!(!t.has_power_samples());
        assert!(Telemetry::parse(&serde_json::json!({"samples": 3})).is_err());
    }
}
