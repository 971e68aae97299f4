//! The energy of a window, done right (after Zeus and the SC24 study "Part-time Power
//! Measurements"): the primary figure is the energy counter's increase over the window;
//! the cross-check integrates instantaneous power (trapezoids, readings the field did not
//! update dropped); both are reported with how far they disagree. Window edges fall
//! between readings, so both are interpolated there. A window spanning fewer than
//! `min_counter_updates` counter updates is flagged with the length it needs; a window
//! shorter than one update gets an interpolated figure and a flag, never 0 J.

use super::monitor::Recording;
use super::{Figure, Sample};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// About 1% accuracy: the counter's edges are each uncertain by up to one update.
pub const MIN_COUNTER_UPDATES: f64 = 100.0;

/// Which device's energy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// NVML total-energy counter (mJ), instantaneous power field.
    Gpu,
    /// RAPL package counter (uJ); no instantaneous power reading exists.
    CpuPackage,
}

impl Domain {
    fn counter(self, s: &Sample) -> Option<u64> {
        match self {
            Domain::Gpu => s.energy_counter_mj,
            Domain::CpuPackage => s.rapl_energy_uj,
        }
    }

    fn counter_unit_j(self) -> f64 {
        match self {
            Domain::Gpu => 1e-3,
            Domain::CpuPackage => 1e-6,
        }
    }

    /// The instantaneous power reading and its source timestamp.
    fn power(self, s: &Sample) -> Option<(f64, Option<i64>)> {
        match self {
            Domain::Gpu => s.power_w.map(|w| (w, s.power_updated_us)),
            Domain::CpuPackage => None,
        }
    }

    /// Where the instantaneous field is missing (older drivers), the averaged power.
    fn power_fallback(self, s: &Sample) -> Option<f64> {
        match self {
            Domain::Gpu => s.power_avg_w,
            Domain::CpuPackage => None,
        }
    }

    pub fn counter_name(self) -> &'static str {
        match self {
            Domain::Gpu => "NVML total-energy counter",
            Domain::CpuPackage => "RAPL package-energy counter",
        }
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Domain::Gpu => "gpu",
            Domain::CpuPackage => "cpu package",
        })
    }
}

/// Linear interpolation through time-ordered points; None outside them.
fn at(points: &[(f64, f64)], t: f64) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    if t < first.0 || t > last.0 {
        return None;
    }
    let i = points.partition_point(|p| p.0 < t);
    if points[i].0 == t || i == 0 {
        return Some(points[i].1);
    }
    let ((ta, va), (tb, vb)) = (points[i - 1], points[i]);
    Some(va + (vb - va) * (t - ta) / (tb - ta))
}

fn covered(points: &[(f64, f64)], t0: f64, t1: f64, what: &str) -> Result<(), String> {
    match (points.first(), points.last()) {
        (None, _) | (_, None) => Err(format!("no {what}")),
        (Some(first), _) if first.0 > t0 => {
            Err(format!("the first {what} is at {:.3} s, after the window starts at {t0:.3} s", first.0))
        }
        (_, Some(last)) if last.0 < t1 => Err(format!(
            "the last {what} is at {:.3} s, before the window ends at {t1:.3} s: keep sampling for at least \
             one update period after the window",
            last.0
        )),
        _ => Ok(()),
    }
}

/// An energy counter as cumulative joules at the moments it was seen to change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CounterSeries {
    /// (t in s, joules since the first reading) at each change. The first reading is only
    /// the baseline: when it was last updated before that is unknown.
    pub points: Vec<(f64, f64)>,
    pub readings: usize,
    pub wraps: usize,
    pub resets: usize,
}

/// Readings (t in s, raw value) to cumulative energy. A decrease is a wrap when the
/// counter's range is known (`wrap_at`), else a reset to 0 (a driver reload).
pub fn unwind(raw: &[(f64, u64)], wrap_at: Option<u64>, unit_j: f64) -> CounterSeries {
    let mut series = CounterSeries { readings: raw.len(), ..CounterSeries::default() };
    let Some(&(_, mut previous)) = raw.first() else { return series };
    let mut total: u64 = 0;
    for &(t, value) in &raw[1..] {
        let delta = if value >= previous {
            value - previous
        } else if let Some(range) = wrap_at {
            series.wraps += 1;
            range.saturating_sub(previous) + value
        } else {
            series.resets += 1;
            value
        };
        previous = value;
        if delta > 0 {
            total += delta;
            series.points.push((t, total as f64 * unit_j));
        }
    }
    series
}

impl CounterSeries {
    pub fn energy_j(&self, t0: f64, t1: f64) -> Result<f64, String> {
        if self.points.is_empty() && self.readings > 1 {
            return Err(format!("the counter did not change in {} readings: not reporting 0 J", self.readings));
        }
        covered(&self.points, t0, t1, "energy-counter update")?;
        Ok(at(&self.points, t1).unwrap_or(0.0) - at(&self.points, t0).unwrap_or(0.0))
    }

    /// Changes seen with `t0 < t <= t1`.
    pub fn updates_between(&self, t0: f64, t1: f64) -> usize {
        self.points.iter().filter(|p| p.0 > t0 && p.0 <= t1).count()
    }

    /// Median time between changes (meaningful when every sample was kept).
    pub fn median_update_period_s(&self) -> Option<f64> {
        median(self.points.windows(2).map(|w| w[1].0 - w[0].0).collect())
    }
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Instantaneous power readings with repeats dropped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PowerSeries {
    /// (t in s, W)
    pub points: Vec<(f64, f64)>,
    /// Readings dropped: same timestamp as the previous one, or the same source timestamp
    /// (the field had not updated since).
    pub duplicates: usize,
}

/// Readings (t in s, W, the source's own timestamp if any) to a power series.
pub fn power_series(raw: &[(f64, f64, Option<i64>)]) -> PowerSeries {
    let mut series = PowerSeries::default();
    let mut last: Option<(f64, Option<i64>)> = None;
    for &(t, w, source) in raw {
        // the first reading kept at a time wins; a reading the source did not update is dropped
        let repeat = last.is_some_and(|(lt, ls)| t <= lt || (source.is_some() && source == ls));
        if repeat {
            series.duplicates += 1;
            continue;
        }
        series.points.push((t, w));
        last = Some((t, source));
    }
    series
}

impl PowerSeries {
    /// Trapezoids over the readings, interpolated at the window's edges.
    pub fn energy_j(&self, t0: f64, t1: f64) -> Result<f64, String> {
        covered(&self.points, t0, t1, "power reading")?;
        let mut edges = vec![(t0, at(&self.points, t0).unwrap_or(0.0))];
        edges.extend(self.points.iter().copied().filter(|p| p.0 > t0 && p.0 < t1));
        edges.push((t1, at(&self.points, t1).unwrap_or(0.0)));
        Ok(edges.windows(2).map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0).sum())
    }

    pub fn readings_between(&self, t0: f64, t1: f64) -> usize {
        self.points.iter().filter(|p| p.0 > t0 && p.0 <= t1).count()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnergyOptions {
    pub min_counter_updates: f64,
    /// The counter's range, where it wraps (None: 64-bit NVML counter, a decrease is a reset).
    pub counter_wrap: Option<u64>,
    /// Update periods measured at start (see `periods`); estimated from the window if None.
    pub counter_period_s: Option<f64>,
    pub power_period_s: Option<f64>,
    /// Why the sampler has no readings for this domain, if it has none.
    pub missing: String,
}

impl Default for EnergyOptions {
    fn default() -> Self {
        EnergyOptions {
            min_counter_updates: MIN_COUNTER_UPDATES,
            counter_wrap: None,
            counter_period_s: None,
            power_period_s: None,
            missing: "the sampler gives no such reading".into(),
        }
    }
}

/// Figures above idle power: what the work itself cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AboveIdle {
    pub energy_j: Figure<f64>,
    pub average_power_w: Figure<f64>,
    pub energy_per_image_mj: Figure<f64>,
    pub images_per_j: Figure<f64>,
    pub images_per_s_per_w: Figure<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyReport {
    pub domain: Domain,
    pub window_s: f64,
    pub images: u64,
    /// The figure the derived ones use: the counter's, else integrated power (see `energy_source`).
    pub energy_j: Figure<f64>,
    pub energy_source: String,
    /// Primary: the counter's increase over the window.
    pub counter_energy_j: Figure<f64>,
    /// Cross-check: integrated instantaneous power.
    pub integrated_energy_j: Figure<f64>,
    /// Which power reading was integrated.
    pub integrated_source: String,
    /// (integrated - counter) / counter.
    pub disagreement: Figure<f64>,
    pub average_power_w: Figure<f64>,
    pub energy_per_image_mj: Figure<f64>,
    pub images_per_j: Figure<f64>,
    /// Throughput per watt; equal to images/J when throughput is images / window.
    pub images_per_s_per_w: Figure<f64>,
    /// Measured before the run (the idle phase).
    pub idle_power_w: Figure<f64>,
    pub above_idle: AboveIdle,
    pub counter_update_period_s: Figure<f64>,
    pub power_update_period_s: Figure<f64>,
    /// Window length / counter update period.
    pub counter_updates_in_window: Figure<f64>,
    /// Changes of the counter seen inside the window (fewer than the above once decimated).
    pub counter_changes_seen: usize,
    /// Distinct power readings inside the window, and repeats dropped in the whole recording.
    pub power_readings: usize,
    /// Share of the power field's updates in the window that the samples caught
    /// (readings / (window / update period)); below 1, updates were missed.
    pub power_updates_seen: Figure<f64>,
    pub power_duplicates_dropped: usize,
    pub counter_wraps: usize,
    pub counter_resets: usize,
    /// Set when the window is too short for the counter: says why and how long to measure.
    pub short_window: Option<String>,
    /// `min_counter_updates` counter updates.
    pub required_window_s: Figure<f64>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn counter_series(rec: &Recording, domain: Domain, wrap: Option<u64>) -> CounterSeries {
    let raw: Vec<(f64, u64)> = rec.samples.iter().filter_map(|s| domain.counter(s).map(|c| (secs(s.t), c))).collect();
    unwind(&raw, wrap, domain.counter_unit_j())
}

/// The power series to integrate, and what it is.
fn power(rec: &Recording, domain: Domain) -> (PowerSeries, &'static str) {
    let t = |s: &Sample| secs(s.t);
    let raw: Vec<(f64, f64, Option<i64>)> =
        rec.samples.iter().filter_map(|s| domain.power(s).map(|(w, u)| (t(s), w, u))).collect();
    if !raw.is_empty() {
        return (power_series(&raw), "instantaneous power (NVML_FI_DEV_POWER_INSTANT)");
    }
    let raw: Vec<(f64, f64, Option<i64>)> =
        rec.samples.iter().filter_map(|s| domain.power_fallback(s).map(|w| (t(s), w, None))).collect();
    let what = "averaged power (nvmlDeviceGetPowerUsage: no instantaneous field here; a 1 s average on Ampere \
                except A100 and newer, so its window edges lag)";
    (power_series(&raw), what)
}

fn energy_over(
    counter: &CounterSeries,
    power: &PowerSeries,
    domain: Domain,
    t0: f64,
    t1: f64,
    missing: &str,
) -> (Figure<f64>, Figure<f64>) {
    let counter_j = if counter.readings == 0 {
        Figure::na(format!("no {} readings: {missing}", domain.counter_name()))
    } else {
        counter.energy_j(t0, t1).into()
    };
    let integrated_j = match domain {
        Domain::CpuPackage => Figure::na("RAPL gives energy only, no instantaneous power to integrate"),
        Domain::Gpu if power.points.is_empty() => Figure::na(format!("no power readings: {missing}")),
        Domain::Gpu => power.energy_j(t0, t1).into(),
    };
    (counter_j, integrated_j)
}

/// Energy and efficiency of `window` (and idle power from `idle`) for one domain.
pub fn window_energy(
    rec: &Recording,
    domain: Domain,
    window: (Duration, Duration),
    idle: Option<(Duration, Duration)>,
    images: u64,
    opts: &EnergyOptions,
) -> EnergyReport {
    let (t0, t1) = (secs(window.0), secs(window.1));
    let window_s = t1 - t0;
    let counter = counter_series(rec, domain, opts.counter_wrap);
    let (power, integrated_source) = power(rec, domain);
    let (counter_energy_j, integrated_energy_j) = energy_over(&counter, &power, domain, t0, t1, &opts.missing);
    let disagreement = match (&counter_energy_j, &integrated_energy_j) {
        (Figure::Value(c), Figure::Value(i)) if *c > 0.0 => Figure::Value((i - c) / c),
        (Figure::Value(_), Figure::Value(_)) => Figure::na("the counter saw no energy"),
        (c, i) => Figure::na(c.reason().or(i.reason()).unwrap_or_default()),
    };
    let (energy_j, energy_source) = match (&counter_energy_j, &integrated_energy_j) {
        (Figure::Value(c), _) => (Figure::Value(*c), domain.counter_name().to_string()),
        (_, Figure::Value(i)) => (Figure::Value(*i), "integrated instantaneous power (no counter)".to_string()),
        (c, _) => (c.clone(), "none".to_string()),
    };

    let counter_period_s =
        opts.counter_period_s.or_else(|| (rec.stride == 1).then(|| counter.median_update_period_s()).flatten());
    let power_period_s = opts.power_period_s;
    let counter_updates_in_window = counter_period_s.map(|p| window_s / p);
    let required_window_s = counter_period_s.map(|p| p * opts.min_counter_updates);
    let short_window = match (counter_period_s, &counter_energy_j) {
        (Some(p), Figure::Value(_)) if window_s / p < opts.min_counter_updates => {
            let mut why = format!(
                "the window ({window_s:.3} s) spans {:.1} energy-counter updates (one every {:.0} ms), fewer than \
                 {:.0}: measure for at least {:.1} s for about 1% accuracy",
                window_s / p,
                p * 1e3,
                opts.min_counter_updates,
                p * opts.min_counter_updates
            );
            if window_s < p {
                why += "; shorter than one update, so its energy is interpolated between the updates around it";
            }
            Some(why)
        }
        _ => None,
    };

    let derived = Derived::new(&energy_j, window_s, images);
    let idle_power_w = match idle {
        None => Figure::na("no idle phase was measured before the run"),
        Some((a, b)) => {
            let (c, i) = energy_over(&counter, &power, domain, secs(a), secs(b), &opts.missing);
            let idle_s = secs(b) - secs(a);
            match (c, i) {
                (Figure::Value(e), _) | (_, Figure::Value(e)) if idle_s > 0.0 => Figure::Value(e / idle_s),
                (c, _) => Figure::na(c.reason().unwrap_or("the idle phase is empty").to_string()),
            }
        }
    };
    let above_idle = match energy_j.as_ref().zip(idle_power_w.as_ref()) {
        Figure::Value((e, idle_w)) => {
            let above = e - idle_w * window_s;
            if above > 0.0 {
                Derived::new(&Figure::Value(above), window_s, images).above_idle()
            } else {
                Derived::na(&format!(
                    "the window drew no more than idle power ({:.1} W vs {idle_w:.1} W idle)",
                    e / window_s
                ))
                .above_idle()
            }
        }
        Figure::NotAvailable { not_available } => Derived::na(&not_available).above_idle(),
    };
    let unknown = || Figure::na("not measured: too few changes seen");
    EnergyReport {
        domain,
        window_s,
        images,
        energy_source,
        counter_energy_j,
        integrated_energy_j,
        integrated_source: if domain == Domain::Gpu { integrated_source.to_string() } else { "none".to_string() },
        disagreement,
        average_power_w: derived.average_power_w,
        energy_per_image_mj: derived.energy_per_image_mj,
        images_per_j: derived.images_per_j,
        images_per_s_per_w: derived.images_per_s_per_w,
        energy_j,
        idle_power_w,
        above_idle,
        counter_update_period_s: match counter_period_s {
            Some(p) => Figure::Value(p),
            None if counter.readings == 0 => Figure::na(format!("no {} readings", domain.counter_name())),
            None => unknown(),
        },
        power_update_period_s: power_period_s.map_or_else(unknown, Figure::Value),
        counter_updates_in_window: counter_updates_in_window.map_or_else(unknown, Figure::Value),
        counter_changes_seen: counter.updates_between(t0, t1),
        power_readings: power.readings_between(t0, t1),
        power_updates_seen: match power_period_s {
            Some(p) if window_s > 0.0 && !power.points.is_empty() => {
                Figure::Value(power.readings_between(t0, t1) as f64 / (window_s / p))
            }
            Some(_) => Figure::na("no power readings"),
            None => unknown(),
        },
        power_duplicates_dropped: power.duplicates,
        counter_wraps: counter.wraps,
        counter_resets: counter.resets,
        short_window,
        required_window_s: required_window_s.map_or_else(unknown, Figure::Value),
    }
}

/// Efficiency figures from an energy, a window length and an image count.
struct Derived {
    energy_j: Figure<f64>,
    average_power_w: Figure<f64>,
    energy_per_image_mj: Figure<f64>,
    images_per_j: Figure<f64>,
    images_per_s_per_w: Figure<f64>,
}

impl Derived {
    fn new(energy_j: &Figure<f64>, window_s: f64, images: u64) -> Derived {
        let e = match energy_j {
            Figure::Value(e) if *e > 0.0 && window_s > 0.0 => *e,
            Figure::Value(_) => return Derived::na("no energy in the window"),
            Figure::NotAvailable { not_available } => return Derived::na(not_available),
        };
        let per_image = |v: f64| if images > 0 { Figure::Value(v) } else { Figure::na("no images in the window") };
        let power_w = e / window_s;
        Derived {
            energy_j: Figure::Value(e),
            average_power_w: Figure::Value(power_w),
            energy_per_image_mj: per_image(e * 1e3 / images.max(1) as f64),
            images_per_j: per_image(images as f64 / e),
            images_per_s_per_w: per_image(images as f64 / window_s / power_w),
        }
    }

    fn na(reason: &str) -> Derived {
        Derived {
            energy_j: Figure::na(reason),
            average_power_w: Figure::na(reason),
            energy_per_image_mj: Figure::na(reason),
            images_per_j: Figure::na(reason),
            images_per_s_per_w: Figure::na(reason),
        }
    }

    fn above_idle(self) -> AboveIdle {
        AboveIdle {
            energy_j: self.energy_j,
            average_power_w: self.average_power_w,
            energy_per_image_mj: self.energy_per_image_mj,
            images_per_j: self.images_per_j,
            images_per_s_per_w: self.images_per_s_per_w,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_inside_and_outside() {
        let p = [(0.0, 0.0), (1.0, 10.0), (3.0, 30.0)];
        assert_eq!(at(&p, 0.5), Some(5.0));
        assert_eq!(at(&p, 2.0), Some(20.0));
        assert_eq!(at(&p, 3.0), Some(30.0));
        assert_eq!(at(&p, 3.1), None);
    }

    #[test]
    fn counter_decreases_are_wraps_or_resets() {
        let raw = [(0.0, 900), (1.0, 950), (2.0, 50), (3.0, 100)];
        let wrapped = unwind(&raw, Some(1000), 1.0);
        assert_eq!(wrapped.points, vec![(1.0, 50.0), (2.0, 150.0), (3.0, 200.0)]);
        assert_eq!((wrapped.wraps, wrapped.resets), (1, 0));
        let reset = unwind(&raw, None, 1.0);
        assert_eq!(reset.points.last(), Some(&(3.0, 150.0)));
        assert_eq!((reset.wraps, reset.resets), (0, 1));
    }

    #[test]
    fn repeated_readings_are_dropped() {
        let raw = [
            (0.0, 100.0, Some(1)),
            (0.1, 100.0, Some(1)), // the field did not update
            (0.1, 180.0, Some(2)),
            (0.2, 180.0, Some(2)), // nor here
            (0.3, 300.0, Some(3)),
            (0.3, 310.0, Some(4)), // same time as the previous reading kept
            (0.4, 300.0, None),
            (0.5, 300.0, None), // no source timestamp: a steady power is a real reading
        ];
        let s = power_series(&raw);
        assert_eq!(s.points, vec![(0.0, 100.0), (0.1, 180.0), (0.3, 300.0), (0.4, 300.0), (0.5, 300.0)]);
        assert_eq!(s.duplicates, 3);
    }
}
