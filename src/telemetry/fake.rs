//! A sampler driven by a known power curve, for tests and benchmarks: an energy counter
//! that updates every `counter_period` with the exact energy so far, and an instantaneous
//! power field that updates every `power_period` with the power at that moment.

use super::monitor::Recording;
use super::{DeviceFacts, Phase, PhaseMark, Sample, Sampler};
use std::time::Duration;

/// Power over time, linear between points (t in seconds, W), constant outside them.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerCurve {
    points: Vec<(f64, f64)>,
}

impl PowerCurve {
    /// Points in time order; two points at the same time make a step.
    pub fn from_points(points: Vec<(f64, f64)>) -> PowerCurve {
        assert!(!points.is_empty() && points.windows(2).all(|w| w[0].0 <= w[1].0), "points in time order");
        PowerCurve { points }
    }

    pub fn constant(power_w: f64) -> PowerCurve {
        PowerCurve::from_points(vec![(0.0, power_w)])
    }

    pub fn step(before_w: f64, after_w: f64, at_s: f64) -> PowerCurve {
        PowerCurve::from_points(vec![(0.0, before_w), (at_s, before_w), (at_s, after_w)])
    }

    pub fn ramp(from_w: f64, to_w: f64, start_s: f64, end_s: f64) -> PowerCurve {
        PowerCurve::from_points(vec![(start_s, from_w), (end_s, to_w)])
    }

    /// `base_w`, with rectangular spikes to `spike_w` of `width_s` every `period_s`, the first
    /// at `first_s`, until `until_s`.
    pub fn spikes(base_w: f64, spike_w: f64, period_s: f64, width_s: f64, first_s: f64, until_s: f64) -> PowerCurve {
        let mut points = vec![(0.0, base_w)];
        let mut s = first_s;
        while s + width_s <= until_s {
            points.extend([(s, base_w), (s, spike_w), (s + width_s, spike_w), (s + width_s, base_w)]);
            s += period_s;
        }
        PowerCurve::from_points(points)
    }

    pub fn power_w(&self, t_s: f64) -> f64 {
        let p = &self.points;
        let i = p.partition_point(|&(t, _)| t <= t_s);
        if i == 0 {
            return p[0].1;
        }
        if i == p.len() {
            return p[i - 1].1;
        }
        let ((ta, wa), (tb, wb)) = (p[i - 1], p[i]);
        wa + (wb - wa) * (t_s - ta) / (tb - ta)
    }

    /// The exact energy between two times, in joules.
    pub fn energy_j(&self, t0_s: f64, t1_s: f64) -> f64 {
        self.energy_to(t1_s) - self.energy_to(t0_s)
    }

    /// Energy from time 0 to `t_s`: each linear segment clipped to [0, t_s], and the
    /// constant extensions before the first point and after the last.
    fn energy_to(&self, t_s: f64) -> f64 {
        let p = &self.points;
        let (first, last) = (p[0], p[p.len() - 1]);
        let mut e = first.1 * (t_s.min(first.0) - 0.0).max(0.0);
        for w in p.windows(2) {
            let ((ta, wa), (tb, wb)) = (w[0], w[1]);
            let (a, b) = (ta.max(0.0), tb.min(t_s));
            if b <= a {
                continue; // outside [0, t_s], or a step (no width)
            }
            let at = |t: f64| wa + (wb - wa) * (t - ta) / (tb - ta);
            e += (b - a) * (at(a) + at(b)) / 2.0;
        }
        e + last.1 * (t_s - last.0.max(0.0)).max(0.0)
    }
}

/// Fills figures a test needs besides power and energy.
type Extra = Box<dyn Fn(Duration, &mut Sample) + Send>;

/// See the module comment. Build with [`FakeSampler::new`] and the setters.
pub struct FakeSampler {
    name: String,
    curve: PowerCurve,
    counter_period: Duration,
    power_period: Duration,
    counter_start_mj: u64,
    counter_wrap_mj: Option<u64>,
    counter_reset_at: Option<Duration>,
    extra: Option<Extra>,
}

/// A Unix-epoch offset for the fake power field's own timestamps (us).
const FAKE_EPOCH_US: i64 = 1_700_000_000_000_000;

impl FakeSampler {
    /// Counter and power field update every 100 ms, like the A100/H100 in the SC24 study.
    pub fn new(curve: PowerCurve) -> FakeSampler {
        FakeSampler {
            name: "fake".into(),
            curve,
            counter_period: Duration::from_millis(100),
            power_period: Duration::from_millis(100),
            counter_start_mj: 0,
            counter_wrap_mj: None,
            counter_reset_at: None,
            extra: None,
        }
    }

    /// The sampler's name (telemetry caches measured update periods by name).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    pub fn counter_period(mut self, period: Duration) -> Self {
        self.counter_period = period;
        self
    }

    pub fn power_period(mut self, period: Duration) -> Self {
        self.power_period = period;
        self
    }

    /// The counter reads `start_mj` at time 0 and restarts at 0 after `wrap_mj`, if given.
    pub fn counter_start(mut self, start_mj: u64, wrap_mj: Option<u64>) -> Self {
        self.counter_start_mj = start_mj;
        self.counter_wrap_mj = wrap_mj;
        self
    }

    /// The counter restarts from 0 at `at` (a driver reload).
    pub fn counter_reset_at(mut self, at: Duration) -> Self {
        self.counter_reset_at = Some(at);
        self
    }

    /// Fill other figures (temperature, clocks, throttle reasons) as a test needs.
    pub fn with(mut self, extra: impl Fn(Duration, &mut Sample) + Send + 'static) -> Self {
        self.extra = Some(Box::new(extra));
        self
    }

    fn last_update(t: Duration, period: Duration) -> f64 {
        let p = period.as_secs_f64();
        (t.as_secs_f64() / p + 1e-9).floor() * p
    }

    fn counter_mj(&self, t: Duration) -> u64 {
        let updated = Self::last_update(t, self.counter_period);
        let (from, start) = match self.counter_reset_at {
            Some(r) if updated >= r.as_secs_f64() => (r.as_secs_f64(), 0),
            _ => (0.0, self.counter_start_mj),
        };
        // the nudge keeps 9.999999 mJ of float error from reading as one mJ less
        let mj = start + (self.curve.energy_j(from, updated) * 1e3 + 1e-6).floor() as u64;
        self.counter_wrap_mj.map_or(mj, |wrap| mj % wrap)
    }
}

impl Sampler for FakeSampler {
    fn name(&self) -> &str {
        &self.name
    }

    fn sample(&mut self, t: Duration) -> Sample {
        let mut s = self.sample_power(t);
        let now = t.as_secs_f64();
        let since = (now - 1.0).max(0.0);
        if now > since {
            s.power_avg_w = Some(self.curve.energy_j(since, now) / (now - since));
        }
        if let Some(extra) = &self.extra {
            extra(t, &mut s);
        }
        s
    }

    fn sample_power(&mut self, t: Duration) -> Sample {
        let power_at = Self::last_update(t, self.power_period);
        Sample {
            power_w: Some(self.curve.power_w(power_at)),
            power_updated_us: Some(FAKE_EPOCH_US + (power_at * 1e6).round() as i64),
            energy_counter_mj: Some(self.counter_mj(t)),
            ..Sample::at(t)
        }
    }

    fn describe(&self) -> DeviceFacts {
        DeviceFacts {
            notes: vec![format!(
                "fake sampler: counter every {:?}, power field every {:?}",
                self.counter_period, self.power_period
            )],
            ..DeviceFacts::default()
        }
    }
}

/// Sample `sampler` on virtual time at `first`, then every `interval` until `end`, with
/// phase marks (phase, seconds): what a monitor would record, without waiting.
pub fn record_virtual(
    sampler: &mut dyn Sampler,
    first: Duration,
    interval: Duration,
    end: Duration,
    phases: &[(Phase, f64)],
) -> Recording {
    let mut samples = Vec::new();
    let mut t = first;
    while t <= end {
        samples.push(sampler.sample(t));
        t += interval;
    }
    Recording {
        sampler: sampler.name().to_string(),
        interval,
        phases: phases.iter().map(|&(phase, t)| PhaseMark { phase, t: Duration::from_secs_f64(t) }).collect(),
        end,
        stride: 1,
        samples_taken: samples.len() as u64,
        samples,
        ..Recording::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_integrate_exactly() {
        assert!((PowerCurve::constant(200.0).energy_j(1.0, 11.0) - 2000.0).abs() < 1e-9);
        let step = PowerCurve::step(100.0, 300.0, 5.0);
        assert!((step.energy_j(0.0, 10.0) - 2000.0).abs() < 1e-9);
        assert!((step.energy_j(0.0, 5.0) - 500.0).abs() < 1e-9, "left of the step at its time");
        assert!((step.energy_j(5.0, 6.0) - 300.0).abs() < 1e-9);
        assert_eq!(step.power_w(4.999), 100.0);
        assert_eq!(step.power_w(5.0), 300.0);
        let ramp = PowerCurve::ramp(100.0, 300.0, 0.0, 10.0);
        assert!((ramp.energy_j(0.0, 10.0) - 2000.0).abs() < 1e-9);
        assert!((ramp.power_w(2.5) - 150.0).abs() < 1e-9);
        // 20 ms at +400 W every 100 ms: +80 W on average
        let spikes = PowerCurve::spikes(100.0, 500.0, 0.1, 0.02, 0.04, 10.0);
        assert!((spikes.energy_j(0.0, 10.0) - 1800.0).abs() < 1e-6);
        assert_eq!(spikes.power_w(0.0), 100.0);
        assert_eq!(spikes.power_w(0.05), 500.0);
    }

    #[test]
    fn counter_holds_between_updates_and_wraps() {
        let mut fake = FakeSampler::new(PowerCurve::constant(100.0)).counter_start(990_000, Some(1_000_000));
        let at = |f: &mut FakeSampler, ms: u64| f.sample_power(Duration::from_millis(ms)).energy_counter_mj.unwrap();
        assert_eq!(at(&mut fake, 0), 990_000);
        assert_eq!(at(&mut fake, 99), 990_000);
        assert_eq!(at(&mut fake, 100), 0); // 990 J + 10 J: wrapped to 0
        assert_eq!(at(&mut fake, 250), 10_000);
    }
}
