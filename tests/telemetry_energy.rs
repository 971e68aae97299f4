//! Window energy on known power curves (a fake sampler on virtual time): the counter is
//! the primary figure, integrated power the cross-check, and each failure mode of either
//! (spikes between readings, repeated readings, wraps, resets, short windows) is caught.

use std::time::Duration;
use synprof::telemetry::energy::{window_energy, Domain, EnergyOptions, EnergyReport};
use synprof::telemetry::fake::record_virtual;
use synprof::telemetry::steady::steady_state;
use synprof::telemetry::{FakeSampler, Figure, Phase, PowerCurve, Recording, Sample, Sampler};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// Idle 0.5-1 s, warm-up 1-2 s, measured 2-12 s, cool-down to 13 s; sampled every 50 ms
/// from 7 ms (off the fake's 100 ms update grid, as a real monitor would be).
fn record(fake: &mut FakeSampler) -> Recording {
    record_virtual(
        fake,
        MS(7),
        MS(50),
        Duration::from_secs(13),
        &[(Phase::Idle, 0.5), (Phase::Warmup, 1.0), (Phase::Measured, 2.0), (Phase::Cooldown, 12.0)],
    )
}

fn opts() -> EnergyOptions {
    EnergyOptions { counter_period_s: Some(0.1), power_period_s: Some(0.1), ..EnergyOptions::default() }
}

fn measured(rec: &Recording, images: u64, o: &EnergyOptions) -> EnergyReport {
    let window = rec.window(Phase::Measured).unwrap();
    window_energy(rec, Domain::Gpu, window, rec.window(Phase::Idle), images, o)
}

fn value(f: &Figure<f64>) -> f64 {
    *f.value().unwrap_or_else(|| panic!("expected a value, got {f:?}"))
}

fn assert_close(got: f64, want: f64, rel: f64, what: &str) {
    assert!((got - want).abs() <= rel * want.abs(), "{what}: {got} vs {want} (more than {:.2}% apart)", rel * 100.0);
}

#[test]
fn constant_power_gives_both_figures_and_the_derived_ones() {
    let mut fake = FakeSampler::new(PowerCurve::constant(200.0));
    let r = measured(&record(&mut fake), 1000, &opts());
    assert_eq!(r.window_s, 10.0);
    assert_close(value(&r.counter_energy_j), 2000.0, 0.002, "counter");
    assert_close(value(&r.integrated_energy_j), 2000.0, 0.002, "integrated");
    assert!(value(&r.disagreement).abs() < 0.005);
    assert_eq!(r.energy_source, "NVML total-energy counter");
    assert_close(value(&r.average_power_w), 200.0, 0.002, "power");
    assert_close(value(&r.energy_per_image_mj), 2000.0, 0.002, "mJ/image");
    assert_close(value(&r.images_per_j), 0.5, 0.002, "images/J");
    // throughput per watt is images/J when throughput is images over the window
    assert_close(value(&r.images_per_s_per_w), value(&r.images_per_j), 1e-12, "images/s/W");
    assert!(r.short_window.is_none(), "{:?}", r.short_window);
    assert_eq!(value(&r.required_window_s), 10.0);
    assert_close(value(&r.counter_updates_in_window), 100.0, 1e-9, "updates");
    assert!((99..=101).contains(&r.counter_changes_seen), "{}", r.counter_changes_seen);
    // idle is the same 200 W here: nothing above idle, and it says so instead of 0
    assert_close(value(&r.idle_power_w), 200.0, 0.005, "idle");
    assert!(r.above_idle.energy_per_image_mj.reason().unwrap().contains("no more than idle power"));
}

#[test]
fn a_step_and_a_ramp_are_followed_by_both() {
    let mut step = FakeSampler::new(PowerCurve::step(100.0, 300.0, 7.0));
    let r = measured(&record(&mut step), 1, &opts());
    assert_close(value(&r.counter_energy_j), 2000.0, 0.002, "step counter");
    assert_close(value(&r.integrated_energy_j), 2000.0, 0.01, "step integrated");

    let curve = PowerCurve::ramp(100.0, 400.0, 0.0, 13.0);
    let truth = curve.energy_j(2.0, 12.0);
    let mut ramp = FakeSampler::new(curve);
    let r = measured(&record(&mut ramp), 1, &opts());
    assert_close(value(&r.counter_energy_j), truth, 0.005, "ramp counter");
    assert_close(value(&r.integrated_energy_j), truth, 0.005, "ramp integrated");
}

#[test]
fn spikes_between_power_readings_are_seen_by_the_counter_only() {
    // 20 ms at 500 W in the middle of every 100 ms, while the power field updates on the
    // 100 ms grid at 100 W: the instantaneous readings never see a spike (SC24's point)
    let curve = PowerCurve::spikes(100.0, 500.0, 0.1, 0.02, 0.04, 13.0);
    let truth = curve.energy_j(2.0, 12.0);
    assert_close(truth, 1800.0, 1e-6, "truth");
    let mut fake = FakeSampler::new(curve);
    let r = measured(&record(&mut fake), 1, &opts());
    assert_close(value(&r.counter_energy_j), truth, 0.01, "counter");
    let integrated = value(&r.integrated_energy_j);
    assert!(integrated < 0.6 * truth, "integration misses the spikes: {integrated} J of {truth} J");
    assert!(value(&r.disagreement) < -0.4, "the disagreement is reported: {:?}", r.disagreement);
    assert_eq!(r.energy_j, r.counter_energy_j, "the counter is the primary figure");
}

#[test]
fn repeated_readings_are_dropped_not_integrated_twice() {
    // sampled every 10 ms, the field updates every 100 ms: 9 of 10 readings are repeats
    let curve = PowerCurve::ramp(100.0, 400.0, 0.0, 13.0);
    let truth = curve.energy_j(2.0, 12.0);
    let mut fake = FakeSampler::new(curve);
    let phases = [(Phase::Measured, 2.0), (Phase::Cooldown, 12.0)];
    let mut rec = record_virtual(&mut fake, MS(3), MS(10), Duration::from_secs(13), &phases);
    let r = window_energy(&rec, Domain::Gpu, rec.window(Phase::Measured).unwrap(), None, 1, &opts());
    assert!((99..=101).contains(&r.power_readings), "one reading per update: {}", r.power_readings);
    assert_close(value(&r.power_updates_seen), 1.0, 0.011, "every update seen");
    assert!(r.power_duplicates_dropped > 1000, "{}", r.power_duplicates_dropped);
    assert_close(value(&r.integrated_energy_j), truth, 0.005, "integrated");

    // every sample twice with the same monotonic time, the second read a little higher:
    // the first reading at a time counts, the twin adds nothing
    let doubled: Vec<Sample> = rec
        .samples
        .iter()
        .flat_map(|s| [s.clone(), Sample { power_w: s.power_w.map(|w| w + 1.0), ..s.clone() }])
        .collect();
    rec.samples = doubled;
    let again = window_energy(&rec, Domain::Gpu, rec.window(Phase::Measured).unwrap(), None, 1, &opts());
    assert_eq!(again.integrated_energy_j, r.integrated_energy_j);
    assert_eq!(again.counter_energy_j, r.counter_energy_j);
}

#[test]
fn without_the_instantaneous_field_the_averaged_power_is_integrated_and_named() {
    let mut fake = FakeSampler::new(PowerCurve::constant(200.0)).with(|_, s: &mut Sample| {
        s.power_w = None;
        s.power_updated_us = None;
    });
    let r = measured(&record(&mut fake), 1, &opts());
    assert_close(value(&r.integrated_energy_j), 2000.0, 0.002, "averaged power integrated");
    assert!(r.integrated_source.starts_with("averaged power"), "{}", r.integrated_source);
    let mut fake = FakeSampler::new(PowerCurve::constant(200.0));
    assert!(measured(&record(&mut fake), 1, &opts()).integrated_source.starts_with("instantaneous power"));
}

#[test]
fn counter_wraps_and_resets_are_unwound() {
    // a counter with a 1,000 J range, starting 10 J below it: wraps at 200 W every 5 s
    let mut fake = FakeSampler::new(PowerCurve::constant(200.0)).counter_start(990_000, Some(1_000_000));
    let rec = record(&mut fake);
    let wrapping = EnergyOptions { counter_wrap: Some(1_000_000), ..opts() };
    let r = measured(&rec, 1, &wrapping);
    assert!(r.counter_wraps >= 2, "{}", r.counter_wraps);
    assert_close(value(&r.counter_energy_j), 2000.0, 0.002, "wrapped counter");
    // a driver reload sets the counter back to 0: the energy after it still counts
    let mut fake =
        FakeSampler::new(PowerCurve::constant(200.0)).counter_start(5_000_000, None).counter_reset_at(MS(6050));
    let r = measured(&record(&mut fake), 1, &opts());
    assert_eq!(r.counter_resets, 1);
    assert_close(value(&r.counter_energy_j), 2000.0, 0.011, "counter across a reset");
}

#[test]
fn a_window_shorter_than_one_update_is_flagged_never_zero() {
    let mut fake = FakeSampler::new(PowerCurve::constant(200.0));
    let rec = record_virtual(
        &mut fake,
        MS(7),
        MS(50),
        Duration::from_secs(7),
        &[(Phase::Measured, 5.02), (Phase::Cooldown, 5.07)],
    );
    let r = window_energy(&rec, Domain::Gpu, rec.window(Phase::Measured).unwrap(), None, 1, &opts());
    let e = value(&r.counter_energy_j);
    assert!(e > 0.0, "never 0 J");
    assert_close(e, 10.0, 0.1, "interpolated between the updates around the window");
    let flag = r.short_window.as_deref().expect("flagged");
    assert!(flag.contains("0.5 energy-counter updates") && flag.contains("at least 10.0 s"), "{flag}");
    assert!(flag.contains("shorter than one update"), "{flag}");
    assert_eq!(value(&r.required_window_s), 10.0);
}

#[test]
fn a_counter_not_seen_after_the_window_gives_a_reason_not_a_number() {
    let mut fake = FakeSampler::new(PowerCurve::constant(200.0));
    // the recording stops right at the window's end: the closing update was never seen
    let rec = record_virtual(&mut fake, MS(7), MS(50), MS(5030), &[(Phase::Measured, 2.0), (Phase::Cooldown, 5.03)]);
    let r = window_energy(&rec, Domain::Gpu, rec.window(Phase::Measured).unwrap(), None, 1, &opts());
    let why = r.counter_energy_j.reason().expect("no number");
    assert!(why.contains("keep sampling"), "{why}");
    assert!(r.energy_per_image_mj.reason().is_some());
}

#[test]
fn idle_power_is_measured_and_subtracted_beside_the_raw_figures() {
    let curve = PowerCurve::from_points(vec![(0.0, 50.0), (1.0, 50.0), (1.0, 200.0)]);
    let mut fake = FakeSampler::new(curve);
    let rec = record_virtual(
        &mut fake,
        MS(7),
        MS(50),
        Duration::from_secs(13),
        &[(Phase::Idle, 0.2), (Phase::Warmup, 0.9), (Phase::Measured, 2.0), (Phase::Cooldown, 12.0)],
    );
    let r = measured(&rec, 1000, &opts());
    assert_close(value(&r.idle_power_w), 50.0, 0.01, "idle");
    assert_close(value(&r.energy_j), 2000.0, 0.002, "raw");
    assert_close(value(&r.above_idle.energy_j), 1500.0, 0.005, "above idle");
    assert_close(value(&r.above_idle.average_power_w), 150.0, 0.005, "above idle power");
    assert_close(value(&r.above_idle.energy_per_image_mj), 1500.0, 0.005, "above idle mJ/image");
    assert_close(value(&r.energy_per_image_mj), 2000.0, 0.002, "raw mJ/image");
}

#[test]
fn the_update_period_is_estimated_from_the_recording_when_not_probed() {
    let mut fake = FakeSampler::new(PowerCurve::constant(200.0)).counter_period(MS(20));
    let r = measured(&record(&mut fake), 1, &EnergyOptions::default());
    // sampled every 50 ms, a 20 ms counter is seen changing at every sample
    assert_close(value(&r.counter_update_period_s), 0.05, 1e-6, "seen period");
    assert_close(value(&r.counter_energy_j), 2000.0, 0.002, "counter");
}

#[test]
fn cpu_package_energy_has_no_power_to_integrate_and_says_so() {
    let curve = PowerCurve::constant(65.0);
    let c = curve.clone();
    let mut fake = FakeSampler::new(curve).with(move |t, s: &mut Sample| {
        // RAPL-like: exact energy at every read, in microjoules
        s.rapl_energy_uj = Some((c.energy_j(0.0, t.as_secs_f64()) * 1e6) as u64);
    });
    let rec = record(&mut fake);
    let r = window_energy(
        &rec,
        Domain::CpuPackage,
        rec.window(Phase::Measured).unwrap(),
        None,
        10,
        &EnergyOptions::default(),
    );
    assert_close(value(&r.counter_energy_j), 650.0, 1e-4, "package energy");
    assert!(r.integrated_energy_j.reason().unwrap().contains("RAPL gives energy only"));
    assert_eq!(r.energy_source, "RAPL package-energy counter");
}

#[test]
fn missing_readings_say_why() {
    let mut plain = synprof::telemetry::NullSampler::new("no GPU here");
    let rec = record_virtual(
        &mut plain,
        MS(0),
        MS(50),
        Duration::from_secs(3),
        &[(Phase::Measured, 1.0), (Phase::Cooldown, 2.0)],
    );
    let o = EnergyOptions { missing: "NVML cannot be loaded".into(), ..EnergyOptions::default() };
    let r = window_energy(&rec, Domain::Gpu, rec.window(Phase::Measured).unwrap(), None, 1, &o);
    assert_eq!(r.counter_energy_j.reason(), Some("no NVML total-energy counter readings: NVML cannot be loaded"));
    assert!(r.average_power_w.reason().unwrap().contains("NVML cannot be loaded"));
    assert!(r.short_window.is_none());
    assert_eq!(plain.name(), "null");
}

#[test]
fn throttling_inside_the_measured_window_is_flagged() {
    let throttle_at = |from: f64, to: f64, reason: &'static str| {
        FakeSampler::new(PowerCurve::constant(300.0)).with(move |t, s: &mut Sample| {
            let t = t.as_secs_f64();
            s.temperature_c = Some(40.0 + 2.0 * t);
            s.sm_clock_mhz = Some(if t < 6.0 { 1980 } else { 1755 });
            let mut reasons = vec![];
            if t < 1.0 {
                reasons.push("gpu_idle".to_string());
            }
            if (from..to).contains(&t) {
                reasons.push(reason.to_string());
            }
            s.throttle_reasons = Some(reasons);
        })
    };
    let in_window = |fake: &mut FakeSampler| {
        let rec = record(fake);
        let (a, b) = rec.window(Phase::Measured).unwrap();
        steady_state(rec.samples_in(a, b))
    };
    let s = in_window(&mut throttle_at(8.0, 9.0, "sw_power_cap"));
    assert!(s.throttled);
    assert_eq!(s.throttle_reasons, vec!["sw_power_cap"]);
    let sm = s.sm_clock_mhz.value().unwrap();
    assert_eq!((sm.min, sm.max), (1755.0, 1980.0));
    let temp = s.temperature_c.value().unwrap();
    assert!(temp.min >= 44.0 && temp.max <= 64.0, "{temp:?}");
    // thermal slowdown in the cool-down, idle before: the measured window was steady
    let s = in_window(&mut throttle_at(12.5, 13.0, "sw_thermal_slowdown"));
    assert!(!s.throttled && s.throttle_reasons.is_empty(), "{s:?}");
}
