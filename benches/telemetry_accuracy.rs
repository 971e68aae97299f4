//! Energy accuracy on a real device: the energy counter against integrated instantaneous
//! power over measured windows of 10 s and more (target: under 2% apart), with the
//! measured update periods and the share of power-field updates the samples caught.
//!
//! `cargo bench --features cuda --bench telemetry_accuracy` on a GPU machine (env:
//! SYNPROF_BENCH_DEVICE, default cuda:0; SYNPROF_BENCH_WINDOWS, seconds, default 10,30).
//! Where the device has no energy counter it says why and exits.

use candle_core::{DType, Device, Tensor};
use std::time::{Duration, Instant};
use synprof::exec::{device, DeviceSpec};
use synprof::telemetry::{Figure, Phase, Telemetry, TelemetryOptions};

/// Keep the device busy for `seconds` with square matmuls; returns the products done.
fn load(dev: &Device, seconds: f64) -> u64 {
    let (n, dtype) = if dev.is_cpu() { (512, DType::F32) } else { (8192, DType::BF16) };
    let a = Tensor::randn(0f32, 1.0, (n, n), dev).and_then(|t| t.to_dtype(dtype)).unwrap();
    let start = Instant::now();
    let mut products = 0;
    while start.elapsed().as_secs_f64() < seconds {
        a.matmul(&a).unwrap();
        dev.synchronize().unwrap();
        products += 1;
    }
    products
}

fn show(f: &Figure<f64>, scale: f64, unit: &str) -> String {
    f.show(|v| format!("{:.3} {unit}", v * scale))
}

fn main() {
    let spec = std::env::var("SYNPROF_BENCH_DEVICE").map_or(DeviceSpec::Cuda(0), |d| DeviceSpec::parse(&d).unwrap());
    let windows: Vec<f64> = std::env::var("SYNPROF_BENCH_WINDOWS")
        .unwrap_or_else(|_| "10,30".into())
        .split(',')
        .map(|w| w.trim().parse().unwrap())
        .collect();
    device::set_cpu_threads(None).unwrap();
    let dev = match spec.open() {
        Ok(d) => d,
        Err(e) => {
            println!("{spec}: not available: {e}");
            return;
        }
    };
    load(&dev, 1.0); // warm: kernels, clocks
    for window_s in windows {
        let t = Telemetry::start(spec, &TelemetryOptions::default());
        let p = t.update_periods().clone();
        t.mark(Phase::Warmup);
        load(&dev, 2.0);
        t.mark(Phase::Measured);
        let products = load(&dev, window_s);
        t.mark(Phase::Cooldown);
        let (report, _) = t.finish(products);
        println!("\n## {spec}, {window_s} s window, {products} products, sampled every {} ms", report.interval_ms);
        println!(
            "update periods: power field {}, averaged power {}, energy counter {}, RAPL {} (probe: {} samples in {:.1} s)",
            show(&p.power_s, 1e3, "ms"),
            show(&p.power_avg_s, 1e3, "ms"),
            show(&p.energy_counter_s, 1e3, "ms"),
            show(&p.rapl_s, 1e3, "ms"),
            p.probe_samples,
            p.probe_s
        );
        for e in &report.energy {
            println!(
                "{}: counter {}, integrated {} ({}), disagreement {}, average {}, idle {}, power readings {} \
                 ({} of the field's updates), counter updates {}, short window: {}",
                e.domain,
                show(&e.counter_energy_j, 1.0, "J"),
                show(&e.integrated_energy_j, 1.0, "J"),
                e.integrated_source,
                show(&e.disagreement, 100.0, "%"),
                show(&e.average_power_w, 1.0, "W"),
                show(&e.idle_power_w, 1.0, "W"),
                e.power_readings,
                show(&e.power_updates_seen, 100.0, "%"),
                show(&e.counter_updates_in_window, 1.0, ""),
                e.short_window.as_deref().unwrap_or("no")
            );
        }
        if let Figure::Value(s) = &report.steady {
            println!(
                "steady: temperature {}, SM clock {}, throttled {} {:?}",
                s.temperature_c.show(|r| format!("{:.0}-{:.0} C", r.min, r.max)),
                s.sm_clock_mhz.show(|r| format!("{:.0}-{:.0} MHz", r.min, r.max)),
                s.throttled,
                s.throttle_reasons
            );
        }
        println!(
            "sampling: {:.1} us per sample on the thread, {} late ticks",
            report.mean_sample_cost_us, report.late_ticks
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}
