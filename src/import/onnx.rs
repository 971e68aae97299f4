//! ONNX model -> IR net (+ the model's weights where it carries them).
//!
//! The reader walks the graph's nodes in their (topological) order and keeps, for every
//! ONNX value name, what it is on the IR side ([`Value`]): an IR node, a constant, a
//! shape vector, or a pending pattern that only a later node completes. IR nodes are
//! named after the ONNX value they produce, so names survive a round trip through
//! `synprof export --format onnx`. Every shape the model declares (`value_info`, outputs)
//! is checked against the shape the IR infers.

use super::tensor::{self, Data, Tensor};
use crate::export::onnx_proto::{tensor_shape_proto::dimension, ModelProto, ValueInfoProto};
use crate::graph::infer::{check_attributes, infer_shape};
use crate::graph::{GraphError, Net, Op, Padding, RawNode, Shape};
use crate::weights::{HostTensor, NodeParams, Weights};
use prost::Message;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The per-sample input shape, for models whose input has symbolic spatial sizes (or
    /// to override a declared one).
    pub input: Option<Shape>,
    /// The net's name (default: the graph's name, else the file stem).
    pub name: Option<String>,
}

/// An imported model.
#[derive(Debug, Clone)]
pub struct Imported {
    pub net: Net,
    /// The model's own parameters, when it carries all of them (not when they are graph
    /// inputs without data).
    pub weights: Option<Weights>,
    /// What was folded or rewritten on the way, one line each, for the user.
    pub notes: Vec<String>,
}

/// Why a model could not be imported: the file, and the node (name, op, index) or value.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportError {
    pub file: String,
    pub node: Option<String>,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(f, "{}: {node}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ImportError {}

/// Import an ONNX file; external data is read from beside it.
pub fn import_file(path: &Path, options: &ImportOptions) -> Result<Imported, ImportError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ImportError {
        file: file.clone(),
        node: None,
        message: format!("cannot read: {e}"),
    })?;
    let mut options = options.clone();
    if options.name.is_none() {
        options.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    }
    import_bytes(&bytes, &file, path.parent(), &options)
}

/// Import a serialized ONNX model; `file` names it in errors, `model_dir` is where
/// external data lives.
pub fn import_bytes(
    bytes: &[u8],
    file: &str,
    model_dir: Option<&Path>,
    options: &ImportOptions,
) -> Result<Imported, ImportError> {
    let fail = |node: Option<String>, message: String| ImportError { file: file.to_string(), node, message };
    let model = ModelProto::decode(bytes)
        .map_err(|e| fail(None, format!("not an ONNX model (protobuf decoding failed: {e})")))?;
    let graph = model.graph.as_ref().ok_or_else(|| fail(None, "the model has no graph".into()))?;
    let opset =
        model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(1, |o| o.version);
    let name = options
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| (!graph.name.is_empty()).then(|| graph.name.clone()))
        .unwrap_or_else(|| "imported".to_string());
    let mut reader = Reader::new(opset, model_dir);
    reader.inputs(graph, options.input.as_ref()).map_err(|m| fail(None, m))?;
    for (i, node) in graph.node.iter().enumerate() {
        let label =
            if node.name.is_empty() { node.output.first().cloned().unwrap_or_default() } else { node.name.clone() };
        reader.node(node).map_err(|m| fail(Some(format!("node `{label}` ({}, nodes[{i}])", node.op_type)), m))?;
    }
    let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let declared: Vec<&ValueInfoProto> = graph.value_info.iter().chain(&graph.output).collect();
    reader.check_declared(&declared).map_err(|m| fail(None, m))?;
    let provenance = serde_json::json!({
        "imported_from": {
            "format": "onnx",
            "file": Path::new(file).file_name().map(|f| f.to_string_lossy().into_owned()),
            "producer": format!("{} {}", model.producer_name, model.producer_version).trim().to_string(),
            "opset": opset,
        }
    });
    reader.finish(&name, &outputs, provenance).map_err(|m| fail(None, m))
}

/// A dimension of a shape vector: the (symbolic) batch or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dim {
    Batch,
    Fixed(i64),
}

/// What an ONNX value is on the IR side.
#[derive(Debug, Clone)]
pub(super) enum Value {
    /// The output of IR node `nodes[i]`.
    Node(usize),
    Const(Tensor),
    /// An integer vector computed from shapes (`Shape`, `Gather`, `Concat`, ...); `scalar`
    /// when it is a rank-0 value.
    Shape {
        dims: Vec<Dim>,
        scalar: bool,
    },
    /// `Reshape` of a feature map to `[N, g, C/g, H, W]` (first step of a channel shuffle).
    Grouped {
        src: usize,
        groups: usize,
    },
    /// ... then `Transpose` with perm `[0, 2, 1, 3, 4]`.
    GroupedTransposed {
        src: usize,
        groups: usize,
    },
    /// A zero `Pad` of the spatial axes, to be merged into the conv or pool that reads it.
    Padded {
        src: usize,
        pad: Padding,
    },
    /// `erf(x / sqrt(2))`, and `1 + erf(x / sqrt(2))`: GELU in the making.
    Erf {
        x: usize,
    },
    ErfPlusOne {
        x: usize,
    },
    /// `x * (1 + erf(x / sqrt(2)))`: GELU times two.
    GeluTwice {
        x: usize,
    },
}

/// An IR node under construction.
#[derive(Debug, Clone)]
pub(super) struct IrNode {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<usize>,
    pub shape: Shape,
    pub params: Option<NodeParams>,
}

pub(super) struct Reader<'a> {
    pub opset: i64,
    model_dir: Option<&'a Path>,
    pub values: HashMap<String, Value>,
    pub nodes: Vec<IrNode>,
    names: HashSet<String>,
    /// How often each ONNX value is still to be read (by later nodes, or as a graph
    /// output); counted down as nodes are read.
    pub uses: HashMap<String, usize>,
    /// The input's batch size when the model fixes it.
    pub static_batch: Option<i64>,
    /// Some parameter came without data (a graph input): no weights then.
    pub weights_incomplete: bool,
    pub notes: Vec<String>,
}

impl<'a> Reader<'a> {
    fn new(opset: i64, model_dir: Option<&'a Path>) -> Self {
        Reader {
            opset,
            model_dir,
            values: HashMap::new(),
            nodes: Vec::new(),
            names: HashSet::new(),
            uses: HashMap::new(),
            static_batch: None,
            weights_incomplete: false,
            notes: Vec::new(),
        }
    }

    /// Initializers become constants; the first graph input that is not one is the
    /// data input; any other is a parameter without data (a model exported without
    /// weights), usable only where a parameter goes.
    fn inputs(&mut self, graph: &crate::export::onnx_proto::GraphProto, input: Option<&Shape>) -> Result<(), String> {
        for node in &graph.node {
            for i in node.input.iter().filter(|i| !i.is_empty()) {
                *self.uses.entry(i.clone()).or_default() += 1;
            }
        }
        for o in &graph.output {
            *self.uses.entry(o.name.clone()).or_default() += 1;
        }
        for init in &graph.initializer {
            let t = tensor::decode(init, self.model_dir).map_err(|e| format!("initializer `{}`: {e}", init.name))?;
            self.values.insert(init.name.clone(), Value::Const(t));
        }
        let mut data_input = None;
        let initialized: HashSet<&str> = graph.initializer.iter().map(|i| i.name.as_str()).collect();
        for vi in graph.input.iter().filter(|vi| !initialized.contains(vi.name.as_str())) {
            let dims = declared_dims(vi);
            if data_input.is_none() {
                data_input = Some((vi.name.clone(), dims));
                continue;
            }
            let dims = dims
                .and_then(|d| {
                    d.into_iter().map(|d| d.and_then(|v| usize::try_from(v).ok())).collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| {
                    format!("graph input `{}` has no fixed shape; synprof nets have a single data input", vi.name)
                })?;
            self.values.insert(vi.name.clone(), Value::Const(Tensor { dims, data: Data::Unknown }));
        }
        let (name, dims) = data_input.ok_or("the graph has no data input (every input is an initializer)")?;
        let dims = dims.ok_or_else(|| format!("the input `{name}` declares no shape"))?;
        if dims.len() < 2 {
            return Err(format!("the input `{name}` has rank {}; expected [N, C, H, W] or [N, F]", dims.len()));
        }
        self.static_batch = dims[0];
        let per_sample = match input {
            Some(shape) => shape.clone(),
            None => Shape(
                dims[1..]
                    .iter()
                    .map(|d| d.and_then(|v| usize::try_from(v).ok()).filter(|&v| v > 0))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        format!("the input `{name}` has symbolic or unknown sizes {dims:?} past the batch; give the per-sample shape with --input (e.g. 3x224x224)")
                    })?,
            ),
        };
        let idx = self.push(&name, Op::Input { shape: per_sample.0.clone() }, vec![], None)?;
        self.values.insert(name, Value::Node(idx));
        Ok(())
    }

    /// Append an IR node named after `value` (made unique), checking its attributes and
    /// inferring its shape.
    pub fn push(
        &mut self,
        value: &str,
        op: Op,
        inputs: Vec<usize>,
        params: Option<NodeParams>,
    ) -> Result<usize, String> {
        check_attributes(&op).map_err(|e| format!("{}: {}", e.field, e.message))?;
        let shapes: Vec<&Shape> = inputs.iter().map(|&i| &self.nodes[i].shape).collect();
        let shape = infer_shape(&op, &shapes)?;
        let base = if value.is_empty() { op.name_stem() } else { value };
        let mut name = base.to_string();
        let mut k = 2;
        while self.names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        self.nodes.push(IrNode { name, op, inputs, shape, params });
        Ok(self.nodes.len() - 1)
    }

    pub fn value(&self, name: &str) -> Result<&Value, String> {
        self.values.get(name).ok_or_else(|| format!("input `{name}` is not produced by any earlier node"))
    }

    /// The IR node behind a value that must be a tensor flowing through the net.
    pub fn node_input(&self, name: &str) -> Result<usize, String> {
        match self.value(name)? {
            Value::Node(i) => Ok(*i),
            Value::Const(_) | Value::Shape { .. } => {
                Err(format!("input `{name}` is a constant where synprof needs an activation"))
            }
            other => Err(format!("input `{name}` is {} and cannot be used here", describe(other))),
        }
    }

    /// A constant input (an initializer, a `Constant`, or a folded subgraph).
    pub fn const_input(&self, name: &str) -> Result<&Tensor, String> {
        match self.value(name)? {
            Value::Const(t) => Ok(t),
            _ => Err(format!("input `{name}` must be a constant (an initializer)")),
        }
    }

    /// Shapes the model declares must match the IR's (batch aside).
    fn check_declared(&self, declared: &[&ValueInfoProto]) -> Result<(), String> {
        for vi in declared {
            let (Some(Value::Node(i)), Some(dims)) = (self.values.get(&vi.name), declared_dims(vi)) else { continue };
            let node = &self.nodes[*i];
            if matches!(node.op, Op::Input { .. }) || dims.len() != node.shape.rank() + 1 {
                continue;
            }
            let ours = node.shape.dims();
            for (axis, (d, &o)) in dims[1..].iter().zip(ours).enumerate() {
                if let Some(d) = d.filter(|&d| d > 0) {
                    if d as usize != o {
                        return Err(format!(
                            "value `{}`: the model declares {:?} but synprof infers [N, {}] (axis {}); \
                             the op's semantics differ from synprof's here",
                            vi.name,
                            dims,
                            ours.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
                            axis + 1
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Keep the nodes the outputs need, in order, and build the net and its weights.
    fn finish(self, name: &str, outputs: &[String], provenance: serde_json::Value) -> Result<Imported, String> {
        if outputs.is_empty() {
            return Err("the graph has no outputs".into());
        }
        let mut out_nodes = Vec::new();
        for o in outputs {
            match self.values.get(o) {
                Some(Value::Node(i)) if !matches!(self.nodes[*i].op, Op::Input { .. }) => out_nodes.push(*i),
                Some(Value::Node(_)) => return Err(format!("graph output `{o}` is the input itself")),
                Some(Value::Const(_) | Value::Shape { .. }) => {
                    return Err(format!("graph output `{o}` is a constant; synprof nets output activations"))
                }
                Some(other) => return Err(format!("graph output `{o}` is {}", describe(other))),
                None => return Err(format!("graph output `{o}` is produced by no node")),
            }
        }
        // Nodes the outputs reach (pattern rewrites leave dead helpers behind).
        let mut live = vec![false; self.nodes.len()];
        let mut stack = out_nodes.clone();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut live[i], true) {
                stack.extend(&self.nodes[i].inputs);
            }
        }
        live[0] = true;
        let raw: Vec<RawNode> = self
            .nodes
            .iter()
            .zip(&live)
            .filter(|(_, &l)| l)
            .map(|(n, _)| RawNode {
                name: n.name.clone(),
                op: n.op.clone(),
                inputs: n.inputs.iter().map(|&i| self.nodes[i].name.clone()).collect(),
            })
            .collect();
        let out_names = out_nodes.iter().map(|&i| self.nodes[i].name.clone()).collect();
        let net = Net::from_raw(name, raw, Some(out_names), Some(provenance)).map_err(|e: GraphError| e.to_string())?;
        let weights = (!self.weights_incomplete).then(|| {
            let by_node: BTreeMap<String, NodeParams> = self
                .nodes
                .iter()
                .zip(&live)
                .filter(|(n, &l)| l && n.params.is_some())
                .map(|(n, _)| (n.name.clone(), n.params.clone().unwrap()))
                .collect();
            Weights { seed: 0, by_node }
        });
        Ok(Imported { net, weights, notes: self.notes })
    }
}

pub(super) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Node(_) => "an activation",
        Value::Const(_) => "a constant",
        Value::Shape { .. } => "a shape vector",
        Value::Grouped { .. } | Value::GroupedTransposed { .. } => {
            "a 5-D reshape of a feature map (only a channel shuffle, reshape-transpose-reshape, is supported)"
        }
        Value::Padded { .. } => "a zero Pad (supported only right before a Conv or an AveragePool)",
        Value::Erf { .. } | Value::ErfPlusOne { .. } | Value::GeluTwice { .. } => {
            "part of an erf expression (Erf is supported only inside GELU)"
        }
    }
}

/// The dims a value declares: `None` for no shape, `None` per unknown or symbolic dim.
fn declared_dims(vi: &ValueInfoProto) -> Option<Vec<Option<i64>>> {
    use crate::export::onnx_proto::type_proto::Value as T;
    let Some(T::TensorType(t)) = vi.r#type.as_ref()?.value.as_ref() else { return None };
    let shape = t.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(dimension::Value::DimValue(v)) => Some(v),
                _ => None,
            })
            .collect(),
    )
}

/// f32 data as a host tensor of `shape`.
pub(super) fn host(shape: Vec<usize>, data: Vec<f32>) -> HostTensor {
    HostTensor { shape, data }
}
