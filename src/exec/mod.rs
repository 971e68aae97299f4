//! Execution: the candle backend (CPU, and CUDA with `--features cuda`), inference and
//! training steps, and the timing loop; external runtimes (onnxruntime, PyTorch) in a
//! Python subprocess with the same windows. Knows the IR and the analysis; knows no plots.

pub mod backward;
pub mod cpu;
pub mod device;
pub mod external;
pub mod lower;
pub mod memory;
pub mod paired;
pub mod reference;
pub mod run;
pub mod stats;
pub mod train;

pub use device::DeviceSpec;

/// An execution failure, located at a node where it happened in one.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecError {
    pub node: Option<String>,
    pub message: String,
}

impl ExecError {
    pub fn at(node: &str, message: impl Into<String>) -> Self {
        ExecError { node: Some(node.to_string()), message: without_backtrace(message.into()) }
    }

    pub fn new(message: impl Into<String>) -> Self {
        ExecError { node: None, message: without_backtrace(message.into()) }
    }
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.node {
            Some(node) => write!(f, "at node `{node}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ExecError {}

impl From<candle_core::Error> for ExecError {
    fn from(e: candle_core::Error) -> Self {
        ExecError::new(e.to_string())
    }
}

/// Whether the executor switch `var` (`SYNPROF_CPU_TUNE`, `SYNPROF_CPU_BATCH_SPLIT`,
/// `SYNPROF_CPU_FUSE`, `SYNPROF_CPU_BLOCKED`, `SYNPROF_CPU_CONCAT_IN_PLACE`) is set to `off`, `0` or
/// `false`: side-by-side measurements.
pub(crate) fn switched_off(var: &str) -> bool {
    matches!(std::env::var(var).as_deref(), Ok("off" | "0" | "false"))
}

/// candle errors may carry a backtrace after the message: users need the message.
fn without_backtrace(text: String) -> String {
    match text.find("\n   0:") {
        Some(i) => text[..i].trim_end().to_string(),
        None => text,
    }
}

/// The runtime that executes a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// synprof's own: candle, with the packed CPU conv kernels.
    #[default]
    Candle,
    /// onnxruntime on synprof's ONNX export, in a Python subprocess (inference, f32).
    Onnxruntime,
    /// PyTorch eager on the synprof model file (torch.nn.functional), in a Python subprocess.
    Pytorch,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Candle => "candle",
            Backend::Onnxruntime => "onnxruntime",
            Backend::Pytorch => "pytorch",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Forward only, batch-norm in inference form.
    Infer,
    /// Forward, softmax cross-entropy, backward, SGD with momentum.
    Train,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Infer => "infer",
            Mode::Train => "train",
        })
    }
}
