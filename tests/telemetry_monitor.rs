//! The sampling thread on real time: a fixed interval on monotonic time, phase marks that
//! put every sample in its window, bounded memory, and a whole telemetry session.

use std::thread::sleep;
use std::time::Duration;
use synprof::telemetry::energy::{median, Domain};
use synprof::telemetry::{FakeSampler, Figure, Monitor, Phase, PowerCurve, Telemetry, TelemetryOptions};

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn samples_at_a_fixed_interval_with_phase_marks() {
    let monitor = Monitor::start(Box::new(FakeSampler::new(PowerCurve::constant(100.0))), MS(5));
    sleep(MS(50));
    let measured_at = monitor.mark(Phase::Measured);
    sleep(MS(200));
    let cooldown_at = monitor.mark(Phase::Cooldown);
    sleep(MS(30));
    let rec = monitor.stop();

    assert!(rec.samples.windows(2).all(|w| w[0].t < w[1].t), "monotonic timestamps");
    let gaps: Vec<f64> = rec.samples.windows(2).map(|w| (w[1].t - w[0].t).as_secs_f64()).collect();
    let typical = median(gaps).unwrap();
    assert!((0.004..0.008).contains(&typical), "median gap {typical} s for a 5 ms interval");
    // on a loaded 2-core machine a tick can be late, but most arrive
    assert!(rec.samples.len() >= 30, "{} samples in 280 ms", rec.samples.len());
    assert_eq!(rec.samples_taken as usize, rec.samples.len());
    assert!(rec.mean_sample_cost < MS(1), "{:?}", rec.mean_sample_cost);

    assert_eq!(rec.window(Phase::Measured), Some((measured_at, cooldown_at)));
    assert_eq!(rec.window(Phase::Cooldown), Some((cooldown_at, rec.end)));
    assert_eq!(rec.window(Phase::Idle), None);
    let inside = rec.samples_in(measured_at, cooldown_at);
    assert!(inside.iter().all(|s| s.t >= measured_at && s.t <= cooldown_at));
    assert!(inside.len() >= 20, "{}", inside.len());
    // both edges of every window are bracketed by samples
    assert!(rec.samples.first().unwrap().t <= measured_at && rec.samples.last().unwrap().t >= cooldown_at);
}

#[test]
fn long_runs_stay_bounded_and_keep_window_edges() {
    let monitor = Monitor::with_capacity(Box::new(FakeSampler::new(PowerCurve::constant(100.0))), MS(1), 32);
    sleep(MS(100));
    let a = monitor.mark(Phase::Measured);
    sleep(MS(150));
    let b = monitor.mark(Phase::Cooldown);
    sleep(MS(50));
    let rec = monitor.stop();
    assert!(rec.samples.len() <= 33, "{} samples kept", rec.samples.len());
    assert!(rec.stride >= 4, "decimated: stride {}", rec.stride);
    assert!(rec.samples_taken > 100, "{} taken", rec.samples_taken);
    for mark in [a, b] {
        let after = rec.samples.partition_point(|s| s.t <= mark);
        assert!(after > 0 && after < rec.samples.len(), "mark at {mark:?} bracketed");
        // the samples either side of a mark are consecutive readings, not a stride apart
        let gap = rec.samples[after].t - rec.samples[after - 1].t;
        assert!(gap < MS(20), "edge gap {gap:?}");
    }
}

#[test]
fn a_session_probes_picks_the_interval_measures_idle_and_reports_the_window() {
    // 50 W idle for the first 0.45 s of the monitor (idle ends at about 0.35 s), then 250 W
    // (measuring starts at about 0.55 s); counter and power field every 20 ms
    let curve = PowerCurve::from_points(vec![(0.0, 50.0), (0.45, 50.0), (0.45, 250.0)]);
    let fake = FakeSampler::new(curve)
        .named("fake-session")
        .counter_period(MS(20))
        .power_period(MS(20))
        .with(|_, s| s.temperature_c = Some(55.0));
    let opts = TelemetryOptions { probe: MS(300), idle: MS(300), ..TelemetryOptions::default() };
    let telemetry = Telemetry::start_with(Box::new(fake), vec![Domain::Gpu], &opts);
    // half the 20 ms update period (measured on real time: 19.99 ms gives 9 ms)
    assert!([MS(9), MS(10)].contains(&telemetry.interval()), "{:?}", telemetry.interval());
    let required = telemetry.required_window().unwrap();
    assert!((1.9..2.1).contains(&required.as_secs_f64()), "100 updates: {required:?}");
    telemetry.mark(Phase::Warmup);
    sleep(MS(200));
    telemetry.mark(Phase::Measured);
    sleep(MS(600));
    telemetry.mark(Phase::Cooldown);
    let (report, recording) = telemetry.finish(600);

    let e = &report.energy[0];
    let window_s = *report.window_s.value().unwrap();
    assert!((0.59..0.75).contains(&window_s), "{window_s}");
    let energy = *e.counter_energy_j.value().unwrap();
    assert!((energy / window_s - 250.0).abs() < 5.0, "{energy} J over {window_s} s");
    let integrated = *e.integrated_energy_j.value().unwrap();
    assert!((integrated / window_s - 250.0).abs() < 5.0, "{integrated} J");
    let idle = *e.idle_power_w.value().unwrap();
    assert!((idle - 50.0).abs() < 2.0, "idle {idle} W");
    assert!(e.short_window.as_deref().unwrap().contains("measure for at least 2.0 s"), "{:?}", e.short_window);
    match &report.steady {
        Figure::Value(s) => assert_eq!(s.temperature_c.value().unwrap().max, 55.0),
        other => panic!("{other:?}"),
    }
    assert!(report.fields.iter().any(|f| f.field == "power_w" && (f.mean - 250.0).abs() < 1.0));
    assert_eq!(
        recording.phases.iter().map(|m| m.phase).collect::<Vec<_>>(),
        [Phase::Idle, Phase::Warmup, Phase::Measured, Phase::Cooldown]
    );
    // the counter was seen to update after the window closed
    assert!(recording.samples.last().unwrap().t > recording.window(Phase::Measured).unwrap().1 + MS(20));
}
