//! Reading models from other frameworks into the IR: ONNX CNNs (`synprof import m.onnx`,
//! or any `.onnx` file where a model is expected), so users can profile and mimic their
//! own models.
//!
//! The IR keeps PyTorch's semantics; [`onnx`] maps each supported ONNX op onto IR ops
//! exactly, folds what the IR expresses differently (constant subgraphs, per-channel
//! affine maps after a batch-norm or conv, the reshape-transpose-reshape of a channel
//! shuffle, the erf form of GELU, `x * sigmoid(x)`, zero `Pad` before a conv or average
//! pool), and refuses anything else with an error naming the op and the node.

pub mod onnx;
mod ops;
pub mod tensor;

pub use onnx::{import_bytes, import_file, ImportError, ImportOptions, Imported};
