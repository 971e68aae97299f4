//! Telemetry for one measured case, as the runner uses it:
//!
//! ```text
//! let t = Telemetry::start(opts.device, &TelemetryOptions::default()); // probe, idle
//! // lengthen the measured window to t.required_window() if it is shorter
//! t.mark(Phase::Warmup);   ...warm-up...
//! t.mark(Phase::Measured); ...timed iterations...
//! t.mark(Phase::Cooldown);
//! let (report, recording) = t.finish(images_in_measured_window);
//! ```

use super::energy::{self, Domain, EnergyOptions, EnergyReport};
use super::monitor::{Monitor, Recording, DEFAULT_CAPACITY};
use super::periods::{self, UpdatePeriods};
use super::steady::{self, FieldStats, SteadyState};
use super::{Combined, CpuSampler, DeviceFacts, Figure, NullSampler, NvmlSampler, Phase, Sampler};
use crate::exec::DeviceSpec;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryOptions {
    /// Sampling interval; None: chosen from the measured update periods.
    pub interval: Option<Duration>,
    /// How long to sample fast to measure update periods (once per sampler per process).
    pub probe: Duration,
    /// Idle phase before the run, for idle power (zero: none; skipped where the device has
    /// no power or energy reading).
    pub idle: Duration,
    pub min_counter_updates: f64,
    pub capacity: usize,
}

impl Default for TelemetryOptions {
    fn default() -> Self {
        TelemetryOptions {
            interval: None,
            probe: Duration::from_secs(1),
            idle: Duration::from_secs(2),
            min_counter_updates: energy::MIN_COUNTER_UPDATES,
            capacity: DEFAULT_CAPACITY,
        }
    }
}

/// Everything telemetry says about one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryReport {
    pub sampler: String,
    pub interval_ms: f64,
    pub update_periods: UpdatePeriods,
    pub facts: DeviceFacts,
    pub window_s: Figure<f64>,
    /// The device under test first (the GPU for cuda, the CPU package for cpu).
    pub energy: Vec<EnergyReport>,
    pub steady: Figure<SteadyState>,
    /// Every sampled figure over the measured window.
    pub fields: Vec<FieldStats>,
    pub samples: usize,
    pub stride: usize,
    pub mean_sample_cost_us: f64,
    pub late_ticks: u64,
}

/// A monitor running for one case.
pub struct Telemetry {
    monitor: Monitor,
    facts: DeviceFacts,
    periods: UpdatePeriods,
    domains: Vec<Domain>,
    opts: TelemetryOptions,
}

/// Update periods by sampler name: a sweep probes each device once per process.
static PROBED: Mutex<Option<HashMap<String, UpdatePeriods>>> = Mutex::new(None);

/// The sampler for a device: NVML (or why not) plus the host for CUDA; the host for CPU.
pub fn sampler_for(device: DeviceSpec) -> (Box<dyn Sampler>, Vec<Domain>) {
    match device {
        DeviceSpec::Cpu => (Box::new(CpuSampler::new()), vec![Domain::CpuPackage]),
        DeviceSpec::Cuda(i) => {
            let gpu: Box<dyn Sampler> = match NvmlSampler::new(i as u32) {
                Ok(s) => Box::new(s),
                Err(e) => Box::new(NullSampler::new(format!("GPU {i}: {e}"))),
            };
            (Box::new(Combined::new(vec![gpu, Box::new(CpuSampler::new())])), vec![Domain::Gpu, Domain::CpuPackage])
        }
    }
}

impl Telemetry {
    /// Start telemetry for `device`; never fails: what cannot be read says why in the report.
    pub fn start(device: DeviceSpec, opts: &TelemetryOptions) -> Telemetry {
        let (sampler, domains) = sampler_for(device);
        Telemetry::start_with(sampler, domains, opts)
    }

    /// Probe update periods (cached per sampler name), start sampling, measure idle.
    pub fn start_with(mut sampler: Box<dyn Sampler>, domains: Vec<Domain>, opts: &TelemetryOptions) -> Telemetry {
        let facts = sampler.describe();
        let name = sampler.name().to_string();
        let cached = PROBED.lock().ok().and_then(|c| c.as_ref().and_then(|m| m.get(&name).cloned()));
        let periods = cached.unwrap_or_else(|| {
            let p = periods::probe(sampler.as_mut(), opts.probe, Duration::from_millis(1));
            if let Ok(mut c) = PROBED.lock() {
                c.get_or_insert_with(HashMap::new).insert(name, p.clone());
            }
            p
        });
        let interval = opts.interval.unwrap_or_else(|| periods::choose_interval(&periods));
        let monitor = Monitor::with_capacity(sampler, interval, opts.capacity);
        let telemetry = Telemetry { monitor, facts, periods, domains, opts: opts.clone() };
        if !opts.idle.is_zero() && telemetry.periods.energy_readings {
            // a counter update must be seen before the idle window opens
            std::thread::sleep(telemetry.settle());
            telemetry.monitor.mark(Phase::Idle);
            std::thread::sleep(opts.idle);
        }
        telemetry
    }

    /// Long enough to see every counter update at least once more (at most 1 s).
    fn settle(&self) -> Duration {
        let slowest = self.domains.iter().filter_map(|&d| self.counter_period_s(d)).fold(0.0, f64::max);
        Duration::from_secs_f64((2.0 * slowest).min(1.0)).max(2 * self.monitor.interval())
    }

    pub fn mark(&self, phase: Phase) {
        self.monitor.mark(phase);
    }

    pub fn interval(&self) -> Duration {
        self.monitor.interval()
    }

    pub fn update_periods(&self) -> &UpdatePeriods {
        &self.periods
    }

    fn counter_period_s(&self, domain: Domain) -> Option<f64> {
        match domain {
            Domain::Gpu => self.periods.energy_counter_s.value().copied(),
            Domain::CpuPackage => self.periods.rapl_s.value().copied(),
        }
    }

    /// The shortest measured window that spans `min_counter_updates` updates of the main
    /// device's energy counter; None when it has none (or its period is unknown).
    pub fn required_window(&self) -> Option<Duration> {
        let p = self.counter_period_s(*self.domains.first()?)?;
        Duration::try_from_secs_f64(p * self.opts.min_counter_updates).ok()
    }

    /// Close the window (if the runner did not), let the counters update once more,
    /// stop, and compute the measured window's figures; `images` ran in that window.
    pub fn finish(self, images: u64) -> (TelemetryReport, Recording) {
        if !self.monitor.has_mark(Phase::Cooldown) {
            self.monitor.mark(Phase::Cooldown);
        }
        // the counter must be seen to update after the window's end to close it
        std::thread::sleep(self.settle());
        let Telemetry { monitor, facts, periods, domains, opts } = self;
        let recording = monitor.stop();
        let report = report(&recording, facts, periods, &domains, &opts, images);
        (report, recording)
    }
}

fn missing_reason(facts: &DeviceFacts, domain: Domain) -> String {
    let from_notes = || facts.notes.join("; ");
    match domain {
        Domain::Gpu => {
            facts.gpus.first().and_then(|g| g.energy_counter.reason().map(str::to_string)).unwrap_or_else(from_notes)
        }
        Domain::CpuPackage => {
            facts.cpu.as_ref().and_then(|c| c.rapl.reason().map(str::to_string)).unwrap_or_else(from_notes)
        }
    }
}

fn report(
    rec: &Recording,
    facts: DeviceFacts,
    periods: UpdatePeriods,
    domains: &[Domain],
    opts: &TelemetryOptions,
    images: u64,
) -> TelemetryReport {
    let window = rec.window(Phase::Measured);
    let idle = rec.window(Phase::Idle);
    let energy = match window {
        None => Vec::new(),
        Some(w) => domains
            .iter()
            .map(|&d| {
                let o = EnergyOptions {
                    min_counter_updates: opts.min_counter_updates,
                    counter_wrap: None, // NVML: 64-bit; RAPL: unwound by the sampler
                    counter_period_s: match d {
                        Domain::Gpu => periods.energy_counter_s.value().copied(),
                        Domain::CpuPackage => periods.rapl_s.value().copied(),
                    },
                    power_period_s: match d {
                        Domain::Gpu => periods.power_s.value().or(periods.power_avg_s.value()).copied(),
                        Domain::CpuPackage => None,
                    },
                    missing: missing_reason(&facts, d),
                };
                energy::window_energy(rec, d, w, idle, images, &o)
            })
            .collect(),
    };
    fn no_window<T>() -> Figure<T> {
        Figure::na("no measured phase was marked")
    }
    let in_window = window.map(|(a, b)| rec.samples_in(a, b)).unwrap_or(&[]);
    TelemetryReport {
        sampler: rec.sampler.clone(),
        interval_ms: rec.interval.as_secs_f64() * 1e3,
        update_periods: periods,
        facts,
        window_s: window.map_or_else(no_window, |(a, b)| Figure::Value((b - a).as_secs_f64())),
        energy,
        steady: window.map_or_else(no_window, |_| Figure::Value(steady::steady_state(in_window))),
        fields: steady::field_stats(in_window),
        samples: rec.samples.len(),
        stride: rec.stride,
        mean_sample_cost_us: rec.mean_sample_cost.as_secs_f64() * 1e6,
        late_ticks: rec.late_ticks,
    }
}
