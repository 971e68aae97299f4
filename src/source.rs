//! Where a net comes from: a zoo name, a generator spec (`paradnn:filters=32,...`) or a
//! model file (`MODEL|FILE` on the command line): synprof JSON or ONNX.

use crate::graph::format::{self, ModelFileError};
use crate::graph::{GraphError, Net, Op, Shape};
use crate::zoo::{self, ZooError};
use std::path::Path;

#[derive(Debug)]
pub enum SourceError {
    Zoo(ZooError),
    File(ModelFileError),
    Synth(crate::synth::SpecError),
    Import(crate::import::ImportError),
    /// A model file rebuilt at another input size no longer fits.
    Reshape {
        file: String,
        error: GraphError,
    },
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::Zoo(e) => e.fmt(f),
            SourceError::File(e) => e.fmt(f),
            SourceError::Synth(e) => e.fmt(f),
            SourceError::Import(e) => e.fmt(f),
            SourceError::Reshape { file, error } => write!(f, "{file}: at the requested input: {error}"),
        }
    }
}

impl std::error::Error for SourceError {}

/// Does `spec` name a file rather than a zoo model?
pub fn is_file(spec: &str) -> bool {
    spec.ends_with(".json") || is_onnx(spec) || spec.contains('/') || Path::new(spec).is_file()
}

/// Does `spec` name an ONNX model (read through [`crate::import`])?
pub fn is_onnx(spec: &str) -> bool {
    spec.to_ascii_lowercase().ends_with(".onnx")
}

/// Load a zoo model or a model file, optionally at another per-sample input shape.
///
/// For files, the input node's shape is replaced and shapes are inferred again; explicit
/// paddings stay as written (a TensorFlow `SAME` padding resolved for the original size
/// may then differ from what `SAME` would give at the new size).
pub fn load(spec: &str, input: Option<&Shape>) -> Result<Net, SourceError> {
    let net = if crate::synth::is_spec(spec) {
        crate::synth::build(spec).map_err(SourceError::Synth)?
    } else if !is_file(spec) {
        return zoo::build(spec, input).map_err(SourceError::Zoo);
    } else if is_onnx(spec) {
        // The requested input shape goes to the importer: it is what symbolic sizes need.
        let options = crate::import::ImportOptions { input: input.cloned(), name: None };
        return crate::import::import_file(Path::new(spec), &options).map(|i| i.net).map_err(SourceError::Import);
    } else {
        format::load(Path::new(spec)).map_err(SourceError::File)?
    };
    match input {
        Some(shape) if shape != net.input_shape() => {
            with_input(&net, shape).map_err(|error| SourceError::Reshape { file: spec.to_string(), error })
        }
        _ => Ok(net),
    }
}

/// The same net at another input shape.
pub fn with_input(net: &Net, shape: &Shape) -> Result<Net, GraphError> {
    let mut raw = net.to_raw();
    for node in &mut raw {
        if let Op::Input { shape: s } = &mut node.op {
            *s = shape.0.clone();
        }
    }
    let outputs = net.outputs.iter().map(|&o| net.nodes[o].name.clone()).collect();
    Net::from_raw(&net.name, raw, Some(outputs), net.generator.clone())
}
