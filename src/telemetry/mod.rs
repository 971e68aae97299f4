//! Telemetry: samplers (NVML, CPU, null), the sampling thread, and the figures of a
//! measured window (energy from counters, cross-checked by integrated power).
//!
//! A run goes: [`Telemetry::start`] (probe how often the counters update, pick the
//! sampling interval, measure idle power) -> `mark(Phase::Warmup)` -> `mark(Phase::Measured)`
//! -> `mark(Phase::Cooldown)` -> [`Telemetry::finish`] (energy, efficiency, steady state).

pub mod buffer;
pub mod clock;
pub mod cpu;
pub mod datasheet;
pub mod energy;
pub mod facts;
pub mod fake;
pub mod figure;
pub mod monitor;
pub mod nvml;
pub mod peak;
pub mod periods;
pub mod procfs;
pub mod rapl;
pub mod sample;
pub mod sampler;
pub mod session;
pub mod steady;
pub mod view;

pub use cpu::CpuSampler;
pub use facts::{CpuFacts, DeviceFacts, GpuFacts};
pub use fake::{FakeSampler, PowerCurve};
pub use figure::{Figure, NotAvailable};
pub use monitor::{Monitor, Recording};
pub use nvml::NvmlSampler;
pub use sample::{Phase, PhaseMark, Sample};
pub use sampler::{Combined, NullSampler, Sampler};
pub use session::{Telemetry, TelemetryOptions, TelemetryReport};
pub use view::CaseTelemetry;
