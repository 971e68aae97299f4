//! Telemetry inside a real measured case on this machine's CPU: the phases are marked
//! around the timed iterations, the samples cover the measured window, the host figures
//! are there, and a sweep record's compact form is what the report reads.

use synprof::exec::run::{run_case, RunOptions, Window};
use synprof::report::telemetry::Telemetry as ReportTelemetry;

fn options() -> RunOptions {
    RunOptions {
        batch: 2,
        warmup: Window { iterations: 1, seconds: 0.2 },
        measure: Window { iterations: 3, seconds: 0.6 },
        telemetry_interval_ms: Some(20.0),
        ..RunOptions::default()
    }
}

#[test]
fn a_case_carries_its_telemetry_with_the_measured_window_marked() {
    let net = synprof::zoo::build("keras_cifar10_cnn", None).unwrap();
    let r = run_case(&net, &options()).unwrap();
    let t = r.telemetry.as_ref().expect("telemetry is on by default");
    let phases: Vec<&str> = t.windows.iter().map(|w| w.phase.as_str()).collect();
    assert_eq!(phases, ["warmup", "measured", "cooldown"], "{:?}", t.windows);
    let measured = &t.windows[1];
    let window_s = measured.end_s - measured.start_s;
    let timed_s: f64 = r.latencies_ms.iter().sum::<f64>() / 1e3;
    // The window holds the timed iterations and little else.
    assert!(window_s >= timed_s && window_s < timed_s + 0.05, "window {window_s} s, iterations {timed_s} s");
    assert_eq!(t.report.interval_ms, 20.0);
    let inside = t.samples.iter().filter(|s| (measured.start_s..=measured.end_s).contains(&s.t.as_secs_f64())).count();
    assert!(inside as f64 >= 0.5 * window_s / 0.02, "{inside} samples in a {window_s} s window at 20 ms");
    let busy = t.report.fields.iter().find(|f| f.field == "process_cpu_util_pct").expect("process CPU share sampled");
    assert!(busy.mean > 10.0, "the process ran a model in the window but was {} % busy", busy.mean);
    assert!(t.report.fields.iter().any(|f| f.field == "rss_bytes" && f.min > 1e6));
    // CPU energy: a figure where RAPL is readable, else a reason; never 0 J.
    let energy = &t.report.energy[0];
    match energy.energy_j.value() {
        Some(j) => assert!(*j > 0.0),
        None => assert!(!energy.energy_j.reason().unwrap().is_empty()),
    }

    // The record's compact form is what the report reads back.
    let parsed = ReportTelemetry::parse(&t.record_value()).unwrap();
    assert_eq!(parsed.windows.len(), 3);
    assert_eq!(parsed.samples.len(), t.samples.len());
    assert!(parsed.samples.iter().any(|s| s.cpu_util_pct.is_some() && s.rss_bytes.is_some()));
    assert!(parsed.energy.is_some());
}

#[test]
fn telemetry_can_be_turned_off() {
    let net = synprof::zoo::build("keras_cifar10_cnn", None).unwrap();
    let r = run_case(&net, &RunOptions { telemetry: false, ..options() }).unwrap();
    assert!(r.telemetry.is_none());
    assert!(r.latencies_ms.len() >= 3);
}
