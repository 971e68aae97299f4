//! synprof: synthetic and reference CNN workloads, profiled on CPUs and GPUs.
//!
//! Data flows one way: profile -> plan -> net ([`zoo`], `synth` or a file via [`graph`])
//! -> [`analysis`] -> backend -> measured window -> results -> report.

pub mod analysis;
pub mod dtype;
pub mod exec;
pub mod export;
pub mod graph;
pub mod import;
pub mod zoo;

pub use dtype::Dtype;
pub mod cli;
pub mod report;
pub mod source;
pub mod sweep;
pub mod synth;
pub mod telemetry;
pub mod weights;
