//! How often the power and energy readings update, measured by sampling fast for about a
//! second; the sampling interval follows from it: at least twice as fast as the fastest
//! power reading or energy counter updates, and no faster than that needs.

use super::energy::median;
use super::{Figure, Sample, Sampler};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Never sample faster than this: the readers' own cost would start to show.
pub const MIN_INTERVAL: Duration = Duration::from_millis(5);
/// Never slower: clocks, temperature and utilisation also need a timeline.
pub const MAX_INTERVAL: Duration = Duration::from_millis(100);
/// When no reading updates at all (or none was seen to).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);
/// A counter updating faster than this is an accumulator (RAPL: about 1 ms): any read of
/// it is exact, so nothing between reads is missed and it does not set the interval.
const ACCUMULATOR_PERIOD_S: f64 = 0.010;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdatePeriods {
    /// Instantaneous power (NVML field).
    pub power_s: Figure<f64>,
    /// Averaged power (`nvmlDeviceGetPowerUsage`).
    pub power_avg_s: Figure<f64>,
    pub energy_counter_s: Figure<f64>,
    pub rapl_s: Figure<f64>,
    pub probe_s: f64,
    pub probe_samples: usize,
    /// Whether any power or energy reading was seen at all (else there is no energy to measure).
    pub energy_readings: bool,
}

/// Median time between changes of one reading; needs at least three changes.
fn period(samples: &[Sample], read: impl Fn(&Sample) -> Option<f64>, what: &str, probe_s: f64) -> Figure<f64> {
    let mut changes = Vec::new();
    let mut last: Option<f64> = None;
    let mut seen = false;
    for s in samples {
        let Some(v) = read(s) else { continue };
        seen = true;
        if last.is_some_and(|l| l != v) {
            changes.push(s.t.as_secs_f64());
        }
        last = Some(v);
    }
    if !seen {
        return Figure::na(format!("no {what} readings"));
    }
    match median(changes.windows(2).map(|w| w[1] - w[0]).collect()) {
        Some(p) if changes.len() >= 3 => Figure::Value(p),
        _ => {
            Figure::na(format!("{what} changed {} times in {probe_s:.1} s: updates too rarely to tell", changes.len()))
        }
    }
}

/// Update periods from a fast run of samples (pure: tests feed virtual samples).
pub fn measure(samples: &[Sample]) -> UpdatePeriods {
    let probe_s = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => (b.t - a.t).as_secs_f64(),
        _ => 0.0,
    };
    UpdatePeriods {
        power_s: period(samples, |s| s.power_w, "instantaneous power", probe_s),
        power_avg_s: period(samples, |s| s.power_avg_w, "averaged power", probe_s),
        energy_counter_s: period(samples, |s| s.energy_counter_mj.map(|e| e as f64), "energy counter", probe_s),
        rapl_s: period(samples, |s| s.rapl_energy_uj.map(|e| e as f64), "RAPL counter", probe_s),
        probe_s,
        probe_samples: samples.len(),
        energy_readings: samples.iter().any(|s| {
            s.power_w.is_some()
                || s.power_avg_w.is_some()
                || s.energy_counter_mj.is_some()
                || s.rapl_energy_uj.is_some()
        }),
    }
}

/// Sample power and energy every `every` for `duration` (real time) and measure.
pub fn probe(sampler: &mut dyn Sampler, duration: Duration, every: Duration) -> UpdatePeriods {
    let epoch = Instant::now();
    let mut samples = Vec::new();
    let mut next = epoch;
    while epoch.elapsed() < duration {
        samples.push(sampler.sample_power(epoch.elapsed()));
        next += every;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    measure(&samples)
}

/// Half the fastest update period of the power readings and non-accumulating counters,
/// in whole milliseconds within [`MIN_INTERVAL`, `MAX_INTERVAL`].
pub fn choose_interval(p: &UpdatePeriods) -> Duration {
    let power = p.power_s.value().or_else(|| p.power_avg_s.value());
    let counters = [p.energy_counter_s.value(), p.rapl_s.value()];
    let fastest = [power]
        .into_iter()
        .chain(counters.into_iter().map(|c| c.filter(|&&s| s >= ACCUMULATOR_PERIOD_S)))
        .flatten()
        .copied()
        .fold(f64::INFINITY, f64::min);
    if !fastest.is_finite() {
        return DEFAULT_INTERVAL;
    }
    // whole milliseconds, rounded down: at least twice as fast
    Duration::from_millis((fastest / 2.0 * 1e3 + 1e-6).floor() as u64).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{FakeSampler, PowerCurve};

    fn virtual_probe(fake: &mut FakeSampler) -> UpdatePeriods {
        let samples: Vec<Sample> =
            (0..1000).map(|i| fake.sample_power(Duration::from_micros(1000 * i + 300))).collect();
        measure(&samples)
    }

    #[test]
    fn measures_update_periods_and_samples_twice_as_fast() {
        // a ramp so that the power field changes at every update
        let mut fake = FakeSampler::new(PowerCurve::ramp(100.0, 300.0, 0.0, 2.0))
            .counter_period(Duration::from_millis(100))
            .power_period(Duration::from_millis(20));
        let p = virtual_probe(&mut fake);
        assert!((p.energy_counter_s.value().unwrap() - 0.100).abs() < 0.002, "{p:?}");
        assert!((p.power_s.value().unwrap() - 0.020).abs() < 0.002, "{p:?}");
        assert_eq!(choose_interval(&p), Duration::from_millis(10));
        assert!(p.rapl_s.reason().unwrap().contains("no RAPL counter readings"));
        assert!(p.energy_readings);
        assert!(!measure(&[Sample::at(Duration::ZERO)]).energy_readings);
    }

    #[test]
    fn slow_or_silent_readings_fall_back() {
        // constant power: the power field never changes, the counter does every 100 ms
        let mut fake = FakeSampler::new(PowerCurve::constant(100.0));
        let p = virtual_probe(&mut fake);
        assert!(p.power_s.reason().unwrap().contains("changed 0 times"), "{p:?}");
        assert_eq!(choose_interval(&p), Duration::from_millis(50));
        let none = measure(&[]);
        assert_eq!(choose_interval(&none), DEFAULT_INTERVAL);
        // RAPL-like accumulators updating every millisecond do not force 0.5 ms sampling
        let rapl = UpdatePeriods { rapl_s: Figure::Value(0.001), ..none.clone() };
        assert_eq!(choose_interval(&rapl), DEFAULT_INTERVAL);
        let fast_field = UpdatePeriods { power_s: Figure::Value(0.002), ..none };
        assert_eq!(choose_interval(&fast_field), MIN_INTERVAL);
    }
}
