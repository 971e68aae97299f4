//! One reading of every figure a sampler can see, and the phases of a run.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a sampler read at one moment. Every figure is optional: a sampler fills what its
/// device has (the facts from [`super::Sampler::describe`] say why the others are missing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Monotonic time since the run epoch, taken just before the power and energy reads.
    #[serde(rename = "t_s", with = "duration_s")]
    pub t: Duration,

    // --- GPU (NVML) ---
    /// Instantaneous board power (NVML field `NVML_FI_DEV_POWER_INSTANT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    /// NVML's own timestamp of `power_w` (us since the Unix epoch); the same value in two
    /// samples means the field did not update between them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_updated_us: Option<i64>,
    /// `nvmlDeviceGetPowerUsage`: averaged over 1 s on Ampere (except A100) and newer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_avg_w: Option<f64>,
    /// Total energy since the driver was loaded (`nvmlDeviceGetTotalEnergyConsumption`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_counter_mj: Option<u64>,
    /// Share of time a kernel was running: not efficiency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_util_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_util_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_used_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sm_clock_mhz: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_clock_mhz: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
    /// Enforced power limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_limit_w: Option<f64>,
    /// Performance state P0 (fastest) .. P15.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pstate: Option<u8>,
    /// Current clock throttle reasons (see [`super::nvml::throttle_names`]); empty: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_reasons: Option<Vec<String>>,
    /// GPM (Hopper and newer), over the time since the previous GPM read, 0-100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpm_sm_util_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpm_sm_occupancy_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpm_tensor_active_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpm_dram_bw_util_pct: Option<f64>,

    // --- host (procfs, sysfs) ---
    /// Busy share of all CPUs since the previous sample (/proc/stat), 0-100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_util_pct: Option<f64>,
    /// This process' CPU time as a share of all CPUs since the previous sample, 0-100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_cpu_util_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// Mean current frequency over the CPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_freq_mhz: Option<f64>,
    /// CPU package energy (RAPL, all packages) since the sampler started, wraps unwound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rapl_energy_uj: Option<u64>,
}

impl Sample {
    pub fn at(t: Duration) -> Sample {
        Sample { t, ..Sample::default() }
    }

    /// Fill every figure this sample lacks from `other` (used to combine samplers).
    pub fn fill_from(&mut self, other: Sample) {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = other.$f; } )* };
        }
        fill!(
            power_w,
            power_updated_us,
            power_avg_w,
            energy_counter_mj,
            gpu_util_pct,
            mem_util_pct,
            mem_used_bytes,
            mem_total_bytes,
            sm_clock_mhz,
            mem_clock_mhz,
            temperature_c,
            power_limit_w,
            pstate,
            throttle_reasons,
            gpm_sm_util_pct,
            gpm_sm_occupancy_pct,
            gpm_tensor_active_pct,
            gpm_dram_bw_util_pct,
            cpu_util_pct,
            process_cpu_util_pct,
            rss_bytes,
            cpu_freq_mhz,
            rapl_energy_uj
        );
    }
}

/// The parts of a run; every figure belongs to one of these windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the model runs: the baseline for idle-subtracted figures.
    Idle,
    Warmup,
    /// The timed iterations: the window energy and efficiency are reported for.
    Measured,
    /// After the measured window, while the counters catch up.
    Cooldown,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Idle => "idle",
            Phase::Warmup => "warmup",
            Phase::Measured => "measured",
            Phase::Cooldown => "cooldown",
        })
    }
}

/// A phase began at `t` (monotonic, since the run epoch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhaseMark {
    pub phase: Phase,
    #[serde(rename = "t_s", with = "duration_s")]
    pub t: Duration,
}

/// Durations as seconds (f64) in JSON.
pub mod duration_s {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combining_keeps_the_first_reading_of_each_figure() {
        let mut gpu = Sample { power_w: Some(300.0), ..Sample::at(Duration::from_millis(5)) };
        gpu.fill_from(Sample { power_w: Some(1.0), rss_bytes: Some(42), ..Sample::default() });
        assert_eq!(gpu.power_w, Some(300.0));
        assert_eq!(gpu.rss_bytes, Some(42));
        assert_eq!(gpu.t, Duration::from_millis(5));
        let json = serde_json::to_string(&gpu).unwrap();
        assert_eq!(json, r#"{"t_s":0.005,"power_w":300.0,"rss_bytes":42}"#);
        assert_eq!(serde_json::from_str::<Sample>(&json).unwrap(), gpu);
    }
}
