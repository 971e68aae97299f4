//! Was the device steady through a window: temperature and clock ranges, throttling; and
//! min / mean / max of every sampled figure over it.

use super::{Figure, Sample};
use serde::{Deserialize, Serialize};

/// Throttle reasons that do not mean the device was held back by power or heat.
const BENIGN_THROTTLE: &[&str] = &["gpu_idle", "applications_clocks_setting"];

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub samples: usize,
}

impl Range {
    pub fn of(values: impl Iterator<Item = f64>) -> Option<Range> {
        let (mut min, mut max, mut sum, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
        for v in values {
            min = min.min(v);
            max = max.max(v);
            sum += v;
            n += 1;
        }
        (n > 0).then(|| Range { min, mean: sum / n as f64, max, samples: n })
    }
}

fn range(samples: &[Sample], read: impl Fn(&Sample) -> Option<f64>, what: &str) -> Figure<Range> {
    Range::of(samples.iter().filter_map(read))
        .map_or_else(|| Figure::na(format!("no {what} reading in the window")), Figure::Value)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteadyState {
    pub temperature_c: Figure<Range>,
    pub sm_clock_mhz: Figure<Range>,
    pub mem_clock_mhz: Figure<Range>,
    pub power_limit_w: Figure<Range>,
    pub cpu_freq_mhz: Figure<Range>,
    /// Performance states seen (P0 is the fastest).
    pub pstates: Vec<u8>,
    /// Every throttle reason seen in the window.
    pub throttle_reasons: Vec<String>,
    /// A reason other than idle or the applications-clocks setting appeared in the window.
    pub throttled: bool,
}

pub fn steady_state(samples: &[Sample]) -> SteadyState {
    let mut reasons: Vec<String> = samples.iter().flat_map(|s| s.throttle_reasons.iter().flatten().cloned()).collect();
    reasons.sort();
    reasons.dedup();
    let mut pstates: Vec<u8> = samples.iter().filter_map(|s| s.pstate).collect();
    pstates.sort();
    pstates.dedup();
    SteadyState {
        temperature_c: range(samples, |s| s.temperature_c, "temperature"),
        sm_clock_mhz: range(samples, |s| s.sm_clock_mhz.map(f64::from), "SM clock"),
        mem_clock_mhz: range(samples, |s| s.mem_clock_mhz.map(f64::from), "memory clock"),
        power_limit_w: range(samples, |s| s.power_limit_w, "power limit"),
        cpu_freq_mhz: range(samples, |s| s.cpu_freq_mhz, "CPU frequency"),
        throttled: reasons.iter().any(|r| !BENIGN_THROTTLE.contains(&r.as_str())),
        throttle_reasons: reasons,
        pstates,
    }
}

/// One figure over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldStats {
    pub field: String,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub samples: usize,
}

type Reader = fn(&Sample) -> Option<f64>;

/// The figures summarised (energy counters are not: their windows are `energy`'s job).
const FIELDS: &[(&str, Reader)] = &[
    ("power_w", |s| s.power_w),
    ("power_avg_w", |s| s.power_avg_w),
    ("gpu_util_pct", |s| s.gpu_util_pct),
    ("mem_util_pct", |s| s.mem_util_pct),
    ("mem_used_bytes", |s| s.mem_used_bytes.map(|v| v as f64)),
    ("sm_clock_mhz", |s| s.sm_clock_mhz.map(f64::from)),
    ("mem_clock_mhz", |s| s.mem_clock_mhz.map(f64::from)),
    ("temperature_c", |s| s.temperature_c),
    ("power_limit_w", |s| s.power_limit_w),
    ("gpm_sm_util_pct", |s| s.gpm_sm_util_pct),
    ("gpm_sm_occupancy_pct", |s| s.gpm_sm_occupancy_pct),
    ("gpm_tensor_active_pct", |s| s.gpm_tensor_active_pct),
    ("gpm_dram_bw_util_pct", |s| s.gpm_dram_bw_util_pct),
    ("cpu_util_pct", |s| s.cpu_util_pct),
    ("process_cpu_util_pct", |s| s.process_cpu_util_pct),
    ("rss_bytes", |s| s.rss_bytes.map(|v| v as f64)),
    ("cpu_freq_mhz", |s| s.cpu_freq_mhz),
];

/// Min, mean and max of every figure that has readings in `samples`.
pub fn field_stats(samples: &[Sample]) -> Vec<FieldStats> {
    FIELDS
        .iter()
        .filter_map(|(name, read)| {
            Range::of(samples.iter().filter_map(read)).map(|r| FieldStats {
                field: name.to_string(),
                min: r.min,
                mean: r.mean,
                max: r.max,
                samples: r.samples,
            })
        })
        .collect()
}
