//! Per-characteristic distances between a target and a candidate, and what "within 5%"
//! means for each kind of characteristic:
//!
//! - a scalar (MACs, params, layer count, depth, bytes, max width): relative error
//!   `|got - target| / target`;
//! - a share map (MACs by kind, by kernel, by resolution; the intensity histogram):
//!   total-variation distance `1/2 * sum |p_k - q_k|` over the union of keys, i.e. the
//!   share of MACs that would have to move to another key;
//! - a quantile vector (intensity, width at 10/25/50/75/90%): the largest relative
//!   error over the quantiles.
//!
//! A characteristic is within the tolerance when its distance is at most `0.05`.

use crate::analysis::Characteristics;
use serde::Serialize;
use std::collections::BTreeMap;

pub const TOLERANCE: f64 = 0.05;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distance {
    pub name: &'static str,
    /// `relative`, `tvd` or `max relative over quantiles`.
    pub measure: &'static str,
    pub target: String,
    pub achieved: String,
    pub distance: f64,
    /// False for characteristics a MAC budget makes unmatchable (sizes scale with it).
    pub counted: bool,
}

impl Distance {
    pub fn within(&self, tolerance: f64) -> bool {
        self.distance <= tolerance + 1e-12
    }
}

/// Characteristics whose absolute size follows the MAC budget.
pub const SIZE_BOUND: &[&str] = &[
    "params",
    "weight_bytes",
    "activation_bytes",
    "peak_activation_bytes",
    "max_width",
    "width_quantiles",
    "intensity_quantiles",
    "intensity_histogram",
    "pool_reads",
];

pub fn relative(got: f64, target: f64) -> f64 {
    if target == 0.0 {
        if got == 0.0 {
            0.0
        } else {
            1.0
        }
    } else {
        (got - target).abs() / target.abs()
    }
}

pub fn tvd<K: Ord>(p: &BTreeMap<K, f64>, q: &BTreeMap<K, f64>) -> f64 {
    let mut sum = 0.0;
    for (k, v) in p {
        sum += (v - q.get(k).copied().unwrap_or(0.0)).abs();
    }
    for (k, v) in q {
        if !p.contains_key(k) {
            sum += v.abs();
        }
    }
    0.5 * sum
}

pub fn quantile_error(got: &[f64], target: &[f64]) -> f64 {
    got.iter().zip(target).map(|(&g, &t)| relative(g, t)).fold(0.0, f64::max)
}

fn fmt_count(v: u64) -> String {
    let v = v as f64;
    if v >= 1e9 {
        format!("{:.3}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

fn fmt_shares<K: std::fmt::Display>(m: &BTreeMap<K, f64>) -> String {
    let mut v: Vec<(&K, &f64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1));
    v.iter().take(3).map(|(k, s)| format!("{k}:{:.0}%", *s * 100.0)).collect::<Vec<_>>().join(" ")
}

fn fmt_quantiles(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.3}").trim_end_matches('0').trim_end_matches('.').to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every characteristic's distance; `budget` marks the size-bound ones as not counted.
pub fn distances(target: &Characteristics, got: &Characteristics, budget: bool) -> Vec<Distance> {
    let scalar = |name, t: u64, g: u64| Distance {
        name,
        measure: "relative",
        target: fmt_count(t),
        achieved: fmt_count(g),
        distance: relative(g as f64, t as f64),
        counted: true,
    };
    let share = |name, t: &BTreeMap<String, f64>, g: &BTreeMap<String, f64>| Distance {
        name,
        measure: "tvd",
        target: fmt_shares(t),
        achieved: fmt_shares(g),
        distance: tvd(t, g),
        counted: true,
    };
    let quantiles = |name, t: &[f64], g: &[f64]| Distance {
        name,
        measure: "max relative over quantiles",
        target: fmt_quantiles(t),
        achieved: fmt_quantiles(g),
        distance: quantile_error(g, t),
        counted: true,
    };
    let hist = |m: &BTreeMap<i32, f64>| m.iter().map(|(k, v)| (format!("2^{k}"), *v)).collect::<BTreeMap<_, _>>();
    let mut out = vec![
        scalar("macs", target.macs, got.macs),
        scalar("params", target.params, got.params),
        scalar("weighted_layers", target.weighted_layers as u64, got.weighted_layers as u64),
        scalar("depth", target.depth as u64, got.depth as u64),
        share("mac_share_by_kind", &target.mac_share_by_kind, &got.mac_share_by_kind),
        share("mac_share_by_kernel", &target.mac_share_by_kernel, &got.mac_share_by_kernel),
        share("mac_share_by_resolution", &target.mac_share_by_resolution, &got.mac_share_by_resolution),
        quantiles("intensity_quantiles", &target.intensity_quantiles, &got.intensity_quantiles),
        share("intensity_histogram", &hist(&target.intensity_histogram), &hist(&got.intensity_histogram)),
        scalar("weight_bytes", target.weight_bytes, got.weight_bytes),
        scalar("activation_bytes", target.activation_bytes, got.activation_bytes),
        scalar("peak_activation_bytes", target.peak_activation_bytes, got.peak_activation_bytes),
        quantiles("width_quantiles", &target.width_quantiles, &got.width_quantiles),
        scalar("max_width", target.max_width as u64, got.max_width as u64),
        scalar("pool_reads", target.pool_reads, got.pool_reads),
    ];
    if budget {
        for d in &mut out {
            d.counted = !SIZE_BOUND.contains(&d.name);
        }
    }
    out
}

/// The largest counted distance.
pub fn worst(ds: &[Distance]) -> f64 {
    ds.iter().filter(|d| d.counted).map(|d| d.distance).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tvd_is_the_share_that_moves() {
        let p: BTreeMap<&str, f64> = [("1x1", 0.5), ("3x3", 0.5)].into();
        let q: BTreeMap<&str, f64> = [("1x1", 0.4), ("3x3", 0.5), ("5x5", 0.1)].into();
        assert!((tvd(&p, &q) - 0.1).abs() < 1e-12);
        assert_eq!(tvd(&p, &p), 0.0);
    }

    #[test]
    fn quantiles_take_the_worst_relative_error() {
        assert!((quantile_error(&[10.0, 21.0, 40.0], &[10.0, 20.0, 50.0]) - 0.2).abs() < 1e-12);
        assert_eq!(relative(0.0, 0.0), 0.0);
        assert_eq!(relative(1.0, 0.0), 1.0);
    }
}
