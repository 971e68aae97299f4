//! Which device runs a case (`cpu`, `cuda`, `cuda:1`) and what it supports.

use super::ExecError;
use crate::Dtype;
use candle_core::{DType, Device};
use std::sync::OnceLock;

/// Serialised as its text form (`cpu`, `cuda:0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
}

impl DeviceSpec {
    /// `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    pub fn parse(text: &str) -> Result<DeviceSpec, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| format!("`{text}` is not a device: expected cpu, cuda or cuda:N")),
        }
    }

    /// Open the device. CPU threads must have been fixed first (see [`set_cpu_threads`]).
    pub fn open(&self) -> Result<Device, ExecError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(i) => {
                if !cfg!(feature = "cuda") {
                    return Err(ExecError::new(
                        "this synprof was built without CUDA: rebuild with `cargo build --release --features cuda`",
                    ));
                }
                Device::new_cuda(*i).map_err(|e| ExecError::new(format!("cannot open cuda:{i}: {e}")))
            }
        }
    }

    /// The candle dtype, or why this device cannot run it.
    pub fn dtype(&self, dtype: Dtype) -> Result<DType, ExecError> {
        match dtype {
            Dtype::F32 => Ok(DType::F32),
            Dtype::F16 => Ok(DType::F16),
            Dtype::Bf16 if *self == DeviceSpec::Cpu => {
                Err(ExecError::new("bf16 is not supported on cpu (candle has no CPU bf16 matmul): use f32 or f16"))
            }
            Dtype::Bf16 => Ok(DType::BF16),
            Dtype::F64 if *self == DeviceSpec::Cpu => Ok(DType::F64),
            other => Err(ExecError::new(format!("{other} is not supported on {self}: use f32, f16 or bf16"))),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl serde::Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DeviceSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

static CPU_THREADS: OnceLock<usize> = OnceLock::new();
/// Spins a candle CPU worker makes before it parks (candle's default: 25,000).
const CANDLE_SPIN_LIMIT: u32 = 1000;

/// Fix the CPU thread count for this process (candle reads it once, at its first CPU
/// op). `None` means all available cores. Returns the count in effect.
pub fn set_cpu_threads(threads: Option<usize>) -> Result<usize, ExecError> {
    let wanted = threads.unwrap_or_else(available_cores).max(1);
    let fixed = *CPU_THREADS.get_or_init(|| {
        // SAFETY of intent: called before any candle CPU work starts its thread pools.
        std::env::set_var("RAYON_NUM_THREADS", wanted.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", wanted.to_string());
        // candle's CPU op pool spins 25,000 times after each op before it parks; between
        // candle ops come the packed ops (convs, batch-norm), on their own pool, and a
        // candle worker spinning beside them took a fifth of a training step's CPU time
        // (benches/peers/RESULTS.md section 22). A user's own setting wins.
        if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
            std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", CANDLE_SPIN_LIMIT.to_string());
        }
        wanted
    });
    if threads.is_some() && fixed != wanted {
        return Err(ExecError::new(format!(
            "CPU threads are fixed at {fixed} for this process; run another process for {wanted}"
        )));
    }
    Ok(fixed)
}

pub fn cpu_threads() -> Option<usize> {
    CPU_THREADS.get().copied()
}

pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Wait until the device has finished queued work (a no-op on CPU, where ops are synchronous).
pub fn synchronize(device: &Device) -> Result<(), ExecError> {
    device.synchronize().map_err(|e| ExecError::new(format!("device synchronize failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!(DeviceSpec::parse("cpu").unwrap(), DeviceSpec::Cpu);
        assert_eq!(DeviceSpec::parse("cuda:1").unwrap(), DeviceSpec::Cuda(1));
        assert_eq!(DeviceSpec::parse("CUDA").unwrap(), DeviceSpec::Cuda(0));
        assert!(DeviceSpec::parse("tpu").unwrap_err().contains("cpu, cuda or cuda:N"));
    }

    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        if !cfg!(feature = "cuda") {
            let e = DeviceSpec::Cuda(0).open().unwrap_err();
            assert!(e.message.contains("--features cuda"), "{e}");
        }
    }
}
