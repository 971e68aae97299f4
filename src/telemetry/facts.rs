//! What a sampler knows about its device: names, limits, clocks, and which figures it can
//! read (or why not). Recorded with every run as its context.

use super::Figure;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceFacts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuFacts>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuFacts>,
    /// Why a device or figure is missing where no field above can say it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl DeviceFacts {
    pub fn merge(&mut self, other: DeviceFacts) {
        if self.cpu.is_none() {
            self.cpu = other.cpu;
        }
        self.gpus.extend(other.gpus);
        self.notes.extend(other.notes);
    }
}

/// A figure that records from before it existed lack.
fn not_recorded() -> Figure<f64> {
    Figure::na("not recorded (a record from an older synprof)")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuFacts {
    pub model_name: Figure<String>,
    pub sockets: Figure<usize>,
    pub physical_cores: Figure<usize>,
    /// Logical CPUs this process may run on.
    pub threads: usize,
    /// The kernel's figure for the clock now (cpufreq, or /proc/cpuinfo on bare metal).
    pub frequency_mhz: Figure<f64>,
    pub max_frequency_mhz: Figure<f64>,
    /// The clock a dependent-add loop runs at (`telemetry::clock`), measured when these
    /// facts were read: the only clock figure a virtual machine gives honestly.
    #[serde(default = "not_recorded")]
    pub measured_clock_mhz: Figure<f64>,
    #[serde(default)]
    pub measured_clock_method: String,
    /// Where each sampled figure comes from, or why it is missing.
    pub utilization_source: Figure<String>,
    pub rss_source: Figure<String>,
    pub frequency_source: Figure<String>,
    /// RAPL package energy: the domains read and their wrap range, or why not.
    pub rapl: Figure<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuFacts {
    pub index: u32,
    pub name: Figure<String>,
    pub uuid: Figure<String>,
    pub architecture: Figure<String>,
    /// CUDA compute capability, "9.0".
    pub compute_capability: Figure<String>,
    pub driver_version: Figure<String>,
    /// The CUDA version the driver supports, "13.0".
    pub cuda_driver_version: Figure<String>,
    pub memory_total_bytes: Figure<u64>,
    pub power_limit_w: Figure<f64>,
    pub default_power_limit_w: Figure<f64>,
    pub sm_clock_mhz: Figure<u32>,
    pub mem_clock_mhz: Figure<u32>,
    pub max_sm_clock_mhz: Figure<u32>,
    pub max_mem_clock_mhz: Figure<u32>,
    pub temperature_c: Figure<f64>,
    /// Which power and energy readings this GPU gives, or why not.
    pub power_instant: Figure<String>,
    pub power_average: Figure<String>,
    pub energy_counter: Figure<String>,
    pub gpm: Figure<String>,
}
