//! Writing a net as an ONNX model (opset 17, IR version 8), numerically identical to the
//! net's PyTorch semantics.
//!
//! The graph has one input `input` of shape `[N, ...per-sample shape]` (`N` symbolic
//! unless a batch is given), the net's outputs, and one ONNX value per IR node named
//! like the node, so intermediate tensors can be found by name; helper values get the
//! node's name and a suffix (`conv1.weight`, `act.sigmoid`). Parameters are initializers
//! (raw little-endian f32), or, without weights, extra graph inputs of the right shapes.
//! Every intermediate value also gets its shape in `value_info`, so the official checker's
//! shape inference cross-checks ours.
//!
//! Where ONNX differs from PyTorch the export works around it exactly:
//! - pools that round up (`ceil_mode`) keep PyTorch's window count where ONNX's rounding
//!   (which may start a last window in the end padding, PyTorch's may not) would differ,
//!   and average pools whose last window reaches past the padded input divide as PyTorch
//!   does (the padding counted, the overhang not); `Writer::pool` tells how;
//! - GELU is written out in its erf form (opset 17 has no `Gelu`);
//! - LRN of even size is written out, because ONNX's `LRN` centres an even window one
//!   channel later than PyTorch does.

use super::onnx_proto::{
    tensor_proto::DataType, tensor_shape_proto::Dimension, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, ValueInfoProto,
};
use crate::graph::{Net, Node, Op, Padding, Pool2d};
use crate::weights::{HostTensor, NodeParams, Weights};
use prost::Message;
use std::collections::HashSet;
use std::fmt;

/// The default-domain operator set the export targets.
pub const OPSET_VERSION: i64 = 17;
/// The ONNX IR version written (the one that goes with opset 17).
pub const IR_VERSION: i64 = 8;
/// The name of the graph input.
pub const INPUT_NAME: &str = "input";
/// The symbolic batch dimension, when no batch is given.
pub const BATCH_PARAM: &str = "N";

/// Why a net could not be exported; names the node where there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportError {
    pub node: Option<String>,
    pub message: String,
}

impl ExportError {
    fn at(node: &Node, message: impl Into<String>) -> Self {
        ExportError { node: Some(node.name.clone()), message: format!("{}: {}", node.op.type_name(), message.into()) }
    }
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(f, "cannot export node `{node}` to ONNX: {}", self.message),
            None => write!(f, "cannot export to ONNX: {}", self.message),
        }
    }
}

impl std::error::Error for ExportError {}

/// The serialized ONNX model of `net`: with its parameters from `weights`, or, when
/// `weights` is `None`, with the parameters as extra graph inputs (a valid model that
/// carries no weights). `batch` fixes the batch size; `None` leaves it symbolic (`N`).
pub fn to_onnx(net: &Net, weights: Option<&Weights>, batch: Option<usize>) -> Result<Vec<u8>, ExportError> {
    let model = to_model(net, weights, batch)?;
    let bytes = model.encoded_len();
    if bytes > i32::MAX as usize {
        return Err(ExportError {
            node: None,
            message: format!(
                "the model would be {:.2} GiB, over protobuf's 2 GiB limit (ONNX external data is not written); \
                 export without weights",
                bytes as f64 / (1u64 << 30) as f64
            ),
        });
    }
    Ok(model.encode_to_vec())
}

/// As [`to_onnx`], but the model before serialization.
pub fn to_model(net: &Net, weights: Option<&Weights>, batch: Option<usize>) -> Result<ModelProto, ExportError> {
    if batch == Some(0) {
        return Err(ExportError { node: None, message: "batch size 0; give at least 1 or none for symbolic".into() });
    }
    let mut w = Writer::new(net, weights, batch)?;
    for node in &net.nodes {
        w.node(node)?;
    }
    let graph = w.finish()?;
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET_VERSION }],
        producer_name: "synprof".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        graph: Some(graph),
        metadata_props: vec![StringStringEntryProto {
            key: "synprof.weights".to_string(),
            value: match weights {
                Some(w) => format!("deterministic, seed {}", w.seed),
                None => "none (parameters are graph inputs)".to_string(),
            },
        }],
        ..Default::default()
    })
}

fn dims_i64(dims: &[usize]) -> Vec<i64> {
    dims.iter().map(|&d| d as i64).collect()
}

/// `raw_data` of a float tensor: little-endian IEEE 754.
fn f32_le_bytes(data: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 * data.len());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

struct Writer<'a> {
    net: &'a Net,
    weights: Option<&'a Weights>,
    batch: Option<usize>,
    /// The ONNX value name of each IR node's output.
    value: Vec<String>,
    /// Every value name in use (node outputs, helpers, parameters).
    taken: HashSet<String>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Parameters as graph inputs (no weights).
    param_inputs: Vec<ValueInfoProto>,
}

impl<'a> Writer<'a> {
    fn new(net: &'a Net, weights: Option<&'a Weights>, batch: Option<usize>) -> Result<Self, ExportError> {
        let mut taken = HashSet::new();
        let mut value = Vec::with_capacity(net.nodes.len());
        let input_node = net.nodes.iter().find(|n| matches!(n.op, Op::Input { .. }));
        for node in &net.nodes {
            let name = if matches!(node.op, Op::Input { .. }) { INPUT_NAME } else { node.name.as_str() };
            if !matches!(node.op, Op::Input { .. }) && name == INPUT_NAME {
                return Err(ExportError::at(
                    node,
                    format!(
                        "the name `{INPUT_NAME}` is the ONNX graph input's, but the net's input node is `{}`; rename one",
                        input_node.map_or("?", |n| n.name.as_str())
                    ),
                ));
            }
            taken.insert(name.to_string());
            value.push(name.to_string());
        }
        Ok(Writer {
            net,
            weights,
            batch,
            value,
            taken,
            nodes: Vec::new(),
            initializers: Vec::new(),
            param_inputs: Vec::new(),
        })
    }

    fn batch_dim(&self) -> Dimension {
        match self.batch {
            Some(n) => Dimension::value(n as i64),
            None => Dimension::param(BATCH_PARAM),
        }
    }

    /// A float tensor of `[N, ...per_sample]`.
    fn value_info(&self, name: &str, per_sample: &[usize]) -> ValueInfoProto {
        let mut dims = vec![self.batch_dim()];
        dims.extend(per_sample.iter().map(|&d| Dimension::value(d as i64)));
        ValueInfoProto::tensor(name, DataType::Float, dims)
    }

    /// A value name not yet used: `base`, else `base_2`, `base_3`, ...
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 2;
        while self.taken.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    fn input_of(&self, node: &Node, i: usize) -> String {
        self.value[node.inputs[i]].clone()
    }

    fn emit(&mut self, op_type: &str, name: &str, inputs: Vec<String>, output: &str, attribute: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.to_string()],
            name: name.to_string(),
            op_type: op_type.to_string(),
            attribute,
            ..Default::default()
        });
    }

    /// A helper op whose output gets a fresh name `<node>.<suffix>`; returns that name.
    fn emit_helper(
        &mut self,
        node: &Node,
        suffix: &str,
        op_type: &str,
        inputs: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) -> String {
        let out = self.fresh(&format!("{}.{suffix}", node.name));
        self.emit(op_type, &out.clone(), inputs, &out, attribute);
        out
    }

    /// The op that produces the node's own value.
    fn emit_main(&mut self, node: &Node, op_type: &str, inputs: Vec<String>, attribute: Vec<AttributeProto>) {
        let out = node.name.clone();
        self.emit(op_type, &out, inputs, &out, attribute);
    }

    fn constant_f32(&mut self, node: &Node, suffix: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.fresh(&format!("{}.{suffix}", node.name));
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: dims_i64(dims),
            data_type: DataType::Float as i32,
            raw_data: f32_le_bytes(data),
            ..Default::default()
        });
        name
    }

    fn scalar_f32(&mut self, node: &Node, suffix: &str, v: f32) -> String {
        self.constant_f32(node, suffix, &[], &[v])
    }

    fn constant_i64(&mut self, node: &Node, suffix: &str, data: &[i64]) -> String {
        let name = self.fresh(&format!("{}.{suffix}", node.name));
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: vec![data.len() as i64],
            data_type: DataType::Int64 as i32,
            int64_data: data.to_vec(),
            ..Default::default()
        });
        name
    }

    /// A parameter of `node` (`role`: `weight`, `bias`, `running_mean`, ...): an
    /// initializer with the given data, or without weights a graph input of `shape`.
    fn param(
        &mut self,
        node: &Node,
        role: &str,
        shape: &[usize],
        data: Option<&HostTensor>,
    ) -> Result<String, ExportError> {
        let name = self.fresh(&format!("{}.{role}", node.name));
        match data {
            Some(t) => {
                if t.shape != shape || t.data.len() != shape.iter().product::<usize>() {
                    return Err(ExportError::at(
                        node,
                        format!("its {role} has shape {:?} in the weights but the net needs {shape:?}", t.shape),
                    ));
                }
                self.initializers.push(TensorProto {
                    name: name.clone(),
                    dims: dims_i64(shape),
                    data_type: DataType::Float as i32,
                    raw_data: f32_le_bytes(&t.data),
                    ..Default::default()
                });
            }
            None => {
                let dims = shape.iter().map(|&d| Dimension::value(d as i64)).collect();
                self.param_inputs.push(ValueInfoProto::tensor(&name, DataType::Float, dims));
            }
        }
        Ok(name)
    }

    /// The node's parameters from the weights, `None` without weights.
    fn params(&self, node: &Node) -> Result<Option<&'a NodeParams>, ExportError> {
        match self.weights {
            None => Ok(None),
            Some(w) => match w.get(&node.name) {
                Some(p) => Ok(Some(p)),
                None => Err(ExportError::at(node, "the weights have no parameters for this node")),
            },
        }
    }

    fn wrong_params(node: &Node, p: &NodeParams) -> ExportError {
        let kind = match p {
            NodeParams::Conv { .. } => "conv",
            NodeParams::Linear { .. } => "linear",
            NodeParams::BatchNorm { .. } => "batch-norm",
        };
        ExportError::at(node, format!("the weights hold {kind} parameters for it"))
    }

    /// Weight and optional bias of a conv or linear node, checked against the op.
    fn weight_and_bias(
        &mut self,
        node: &Node,
        weight_shape: &[usize],
        bias: bool,
    ) -> Result<(String, Option<String>), ExportError> {
        let (w, b) = match self.params(node)? {
            None => (None, None),
            Some(NodeParams::Conv { weight, bias }) if matches!(node.op, Op::Conv2d(_)) => {
                (Some(weight), bias.as_ref())
            }
            Some(NodeParams::Linear { weight, bias }) if matches!(node.op, Op::Linear { .. }) => {
                (Some(weight), bias.as_ref())
            }
            Some(other) => return Err(Self::wrong_params(node, other)),
        };
        if w.is_some() && bias != b.is_some() {
            return Err(ExportError::at(
                node,
                if bias {
                    "the op has a bias but the weights hold none"
                } else {
                    "the weights hold a bias the op lacks"
                },
            ));
        }
        let weight = self.param(node, "weight", weight_shape, w)?;
        let bias = if bias { Some(self.param(node, "bias", &weight_shape[..1], b)?) } else { None };
        Ok((weight, bias))
    }

    fn node(&mut self, node: &Node) -> Result<(), ExportError> {
        let x = || self.input_of(node, 0);
        let input_shape = |i: usize| &self.net.nodes[node.inputs[i]].shape;
        match &node.op {
            Op::Input { .. } => {}
            Op::Conv2d(c) => {
                let cin = input_shape(0).channels();
                let (x, weight_shape) = (x(), [c.out_channels, cin / c.groups, c.kernel[0], c.kernel[1]]);
                let (w, b) = self.weight_and_bias(node, &weight_shape, c.bias)?;
                let mut inputs = vec![x, w];
                inputs.extend(b);
                let p = c.padding;
                let attrs = vec![
                    AttributeProto::ints("kernel_shape", dims_i64(&c.kernel)),
                    AttributeProto::ints("strides", dims_i64(&c.stride)),
                    AttributeProto::ints("dilations", dims_i64(&c.dilation)),
                    AttributeProto::int("group", c.groups as i64),
                    AttributeProto::ints("pads", dims_i64(&[p.top, p.left, p.bottom, p.right])),
                ];
                self.emit_main(node, "Conv", inputs, attrs);
            }
            Op::BatchNorm { eps } => {
                let c = node.shape.channels();
                let params = match self.params(node)? {
                    None => None,
                    Some(NodeParams::BatchNorm { gamma, beta, mean, var, .. }) => Some([gamma, beta, mean, var]),
                    Some(other) => return Err(Self::wrong_params(node, other)),
                };
                let mut inputs = vec![x()];
                for (i, role) in ["weight", "bias", "running_mean", "running_var"].into_iter().enumerate() {
                    inputs.push(self.param(node, role, &[c], params.map(|p| p[i]))?);
                }
                self.emit_main(node, "BatchNormalization", inputs, vec![AttributeProto::float("epsilon", *eps as f32)]);
            }
            Op::Relu => self.emit_main(node, "Relu", vec![x()], vec![]),
            Op::Relu6 => {
                let (x, lo) = (x(), self.scalar_f32(node, "min", 0.0));
                let hi = self.scalar_f32(node, "max", 6.0);
                self.emit_main(node, "Clip", vec![x, lo, hi], vec![]);
            }
            Op::Sigmoid => self.emit_main(node, "Sigmoid", vec![x()], vec![]),
            Op::Tanh => self.emit_main(node, "Tanh", vec![x()], vec![]),
            Op::Silu => {
                let x = x();
                let s = self.emit_helper(node, "sigmoid", "Sigmoid", vec![x.clone()], vec![]);
                self.emit_main(node, "Mul", vec![x, s], vec![]);
            }
            Op::HardSwish => self.emit_main(node, "HardSwish", vec![x()], vec![]),
            Op::HardSigmoid => {
                // PyTorch: relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1).
                let attrs = vec![AttributeProto::float("alpha", 1.0 / 6.0), AttributeProto::float("beta", 0.5)];
                self.emit_main(node, "HardSigmoid", vec![x()], attrs);
            }
            Op::Gelu => {
                // x * 0.5 * (1 + erf(x / sqrt(2))), as PyTorch's exact GELU computes it.
                let x = x();
                let r = self.scalar_f32(node, "rsqrt2", std::f32::consts::FRAC_1_SQRT_2);
                let scaled = self.emit_helper(node, "scaled", "Mul", vec![x.clone(), r], vec![]);
                let erf = self.emit_helper(node, "erf", "Erf", vec![scaled], vec![]);
                let one = self.scalar_f32(node, "one", 1.0);
                let plus = self.emit_helper(node, "erf_plus_1", "Add", vec![erf, one], vec![]);
                let half = self.scalar_f32(node, "half", 0.5);
                let half_x = self.emit_helper(node, "half_x", "Mul", vec![x, half], vec![]);
                self.emit_main(node, "Mul", vec![half_x, plus], vec![]);
            }
            Op::MaxPool2d(p) => self.pool(node, p, true)?,
            Op::AvgPool2d(p) => self.pool(node, p, false)?,
            Op::GlobalAvgPool => self.emit_main(node, "GlobalAveragePool", vec![x()], vec![]),
            Op::Lrn { size, alpha, beta, k } => self.lrn(node, *size, *alpha, *beta, *k)?,
            Op::Add => {
                let inputs: Vec<String> = (0..node.inputs.len()).map(|i| self.input_of(node, i)).collect();
                self.emit_main(node, if inputs.len() == 2 { "Add" } else { "Sum" }, inputs, vec![]);
            }
            Op::Mul => {
                let inputs = vec![x(), self.input_of(node, 1)];
                self.emit_main(node, "Mul", inputs, vec![]);
            }
            Op::Scale { factor } => {
                let (x, f) = (x(), self.scalar_f32(node, "factor", *factor as f32));
                self.emit_main(node, "Mul", vec![x, f], vec![]);
            }
            Op::Concat { axis } => {
                let inputs: Vec<String> = (0..node.inputs.len()).map(|i| self.input_of(node, i)).collect();
                self.emit_main(node, "Concat", inputs, vec![AttributeProto::int("axis", *axis as i64)]);
            }
            Op::ChannelShuffle { groups } => {
                // PyTorch: view(N, g, C/g, ...) -> transpose(1, 2) -> view(N, C, ...); 0 copies N.
                let dims = node.shape.dims();
                let (c, g, rest) = (dims[0], *groups, &dims[1..]);
                let x = x();
                let mut split = vec![0, g as i64, (c / g) as i64];
                split.extend(dims_i64(rest));
                let split = self.constant_i64(node, "grouped_shape", &split);
                let grouped = self.emit_helper(node, "grouped", "Reshape", vec![x, split], vec![]);
                let mut perm = vec![0, 2, 1];
                perm.extend((3..3 + rest.len() as i64).collect::<Vec<_>>());
                let t = self.emit_helper(
                    node,
                    "transposed",
                    "Transpose",
                    vec![grouped],
                    vec![AttributeProto::ints("perm", perm)],
                );
                let mut back = vec![0, c as i64];
                back.extend(dims_i64(rest));
                let back = self.constant_i64(node, "shape", &back);
                self.emit_main(node, "Reshape", vec![t, back], vec![]);
            }
            Op::ChannelSlice { start, end } => {
                let x = x();
                let starts = self.constant_i64(node, "starts", &[*start as i64]);
                let ends = self.constant_i64(node, "ends", &[*end as i64]);
                let axes = self.constant_i64(node, "axes", &[1]);
                self.emit_main(node, "Slice", vec![x, starts, ends, axes], vec![]);
            }
            Op::Flatten => self.emit_main(node, "Flatten", vec![x()], vec![AttributeProto::int("axis", 1)]),
            Op::Linear { out_features, bias } => {
                let fin = input_shape(0).elements() as usize;
                let x = x();
                let (w, b) = self.weight_and_bias(node, &[*out_features, fin], *bias)?;
                let mut inputs = vec![x, w];
                inputs.extend(b);
                self.emit_main(node, "Gemm", inputs, vec![AttributeProto::int("transB", 1)]);
            }
            Op::Dropout { p } => {
                // An identity at inference; kept as Dropout so that an import gets it back.
                let (x, ratio) = (x(), self.scalar_f32(node, "ratio", *p as f32));
                self.emit_main(node, "Dropout", vec![x, ratio], vec![]);
            }
            Op::Softmax => self.emit_main(node, "Softmax", vec![x()], vec![AttributeProto::int("axis", 1)]),
        }
        Ok(())
    }

    /// Max and average pooling with PyTorch's windows: a window spans `[o*s - before,
    /// o*s - before + k)`; `ceil_mode` adds a last window where one starts inside the input
    /// or its leading padding; max ignores padding; average divides by the part of the
    /// window inside the padded input (`count_include_pad`) or inside the input.
    ///
    /// ONNX's `ceil_mode` lacks PyTorch's rule that drops a last window starting in the end
    /// padding, so it is written only where it gives the IR's window counts on both axes:
    /// where the rule dropped the window the count is floor rounding's (`ceil_mode` 0), and
    /// where one axis needs the extra window and the other had it dropped, the extra window
    /// becomes explicit end padding. An average that counts padding and has a window
    /// hanging over the padded input is written as an explicit zero `Pad` and an average
    /// over the padded tensor, because runtimes differ on whether the overhang is counted.
    fn pool(&mut self, node: &Node, p: &Pool2d, max: bool) -> Result<(), ExportError> {
        let input = &self.net.nodes[node.inputs[0]].shape;
        let (Some([h, w]), Some([oh, ow])) = (input.hw(), node.shape.hw()) else {
            return Err(ExportError::at(node, "expects a feature map [C, H, W]"));
        };
        let pad = p.padding;
        // Per axis: (floor count, ONNX's ceil count, end padding that makes floor rounding
        // give the IR's count), or None if the IR's count is neither PyTorch rounding.
        let axis = |n: usize, out: usize, before: usize, after: usize, k: usize, s: usize| {
            let span = (n + before + after).checked_sub(k).filter(|_| s > 0 && out > 0)?;
            let (floor, ceil) = (span / s + 1, span.div_ceil(s) + 1);
            if out == floor {
                Some((floor, ceil, after))
            } else if out == ceil && ceil == floor + 1 {
                Some((floor, ceil, (out - 1) * s + k - n - before))
            } else {
                None
            }
        };
        let (Some((fh, ch, bottom)), Some((fw, cw, right))) = (
            axis(h, oh, pad.top, pad.bottom, p.kernel[0], p.stride[0]),
            axis(w, ow, pad.left, pad.right, p.kernel[1], p.stride[1]),
        ) else {
            return Err(ExportError::at(node, format!("output {oh}x{ow} does not follow from the attributes")));
        };
        let rounds_up = (oh, ow) != (fh, fw);
        // Written where ONNX's rounding gives the IR's counts, also when it makes no
        // difference (so that an import gets the IR's flag back).
        let ceil_mode = (rounds_up || p.ceil_mode) && (oh, ow) == (ch, cw);
        // Without ceil_mode, the extra windows as end padding (the overhang).
        let overhang = if ceil_mode {
            Padding::ZERO
        } else {
            Padding { bottom: bottom - pad.bottom, right: right - pad.right, ..Padding::ZERO }
        };
        let mut x = self.input_of(node, 0);
        let (mut pads, mut count_include_pad) = (pad, p.count_include_pad);
        if !max && rounds_up && p.count_include_pad {
            // PyTorch counts the padding but not the overhang past it: pad with zeros
            // explicitly, then average over what lies inside the padded tensor.
            if pad != Padding::ZERO {
                let pads = self.constant_i64(
                    node,
                    "pads",
                    &[0, 0, pad.top as i64, pad.left as i64, 0, 0, pad.bottom as i64, pad.right as i64],
                );
                x = self.emit_helper(node, "padded", "Pad", vec![x, pads], vec![]);
            }
            (pads, count_include_pad) = (overhang, false);
        } else {
            pads.bottom += overhang.bottom;
            pads.right += overhang.right;
        }
        let mut attrs = vec![
            AttributeProto::ints("kernel_shape", dims_i64(&p.kernel)),
            AttributeProto::ints("strides", dims_i64(&p.stride)),
            AttributeProto::ints("pads", dims_i64(&[pads.top, pads.left, pads.bottom, pads.right])),
        ];
        if ceil_mode {
            attrs.push(AttributeProto::int("ceil_mode", 1));
        }
        if !max {
            attrs.push(AttributeProto::int("count_include_pad", count_include_pad as i64));
        }
        self.emit_main(node, if max { "MaxPool" } else { "AveragePool" }, vec![x], attrs);
        Ok(())
    }

    /// `x / (k + alpha/size * sum over the window of x^2)^beta` across channels, the window
    /// being PyTorch's `[c - size/2, c + (size-1)/2]`. ONNX's `LRN` centres the same way
    /// for odd sizes only; even sizes are written out as PyTorch computes them.
    fn lrn(&mut self, node: &Node, size: usize, alpha: f64, beta: f64, k: f64) -> Result<(), ExportError> {
        let x = self.input_of(node, 0);
        if size % 2 == 1 {
            let attrs = vec![
                AttributeProto::int("size", size as i64),
                AttributeProto::float("alpha", alpha as f32),
                AttributeProto::float("beta", beta as f32),
                AttributeProto::float("bias", k as f32),
            ];
            self.emit_main(node, "LRN", vec![x], attrs);
            return Ok(());
        }
        let dims = node.shape.dims();
        let c = dims[0];
        let sq = self.emit_helper(node, "square", "Mul", vec![x.clone(), x.clone()], vec![]);
        // [N, C, H, W] -> [N, 1, C, H*W], average over size channels with zero padding.
        let flat = self.constant_i64(node, "pool_shape", &[0, 1, c as i64, -1]);
        let r = self.emit_helper(node, "square_4d", "Reshape", vec![sq, flat], vec![]);
        let attrs = vec![
            AttributeProto::ints("kernel_shape", vec![size as i64, 1]),
            AttributeProto::ints("strides", vec![1, 1]),
            AttributeProto::ints("pads", vec![(size / 2) as i64, 0, ((size - 1) / 2) as i64, 0]),
            AttributeProto::int("count_include_pad", 1),
        ];
        let avg = self.emit_helper(node, "mean_square", "AveragePool", vec![r], attrs);
        let mut back = vec![0, c as i64];
        back.extend(dims_i64(&dims[1..]));
        let back = self.constant_i64(node, "shape", &back);
        let avg = self.emit_helper(node, "mean_square_nchw", "Reshape", vec![avg, back], vec![]);
        let a = self.scalar_f32(node, "alpha", alpha as f32);
        let scaled = self.emit_helper(node, "scaled", "Mul", vec![avg, a], vec![]);
        let kk = self.scalar_f32(node, "k", k as f32);
        let base = self.emit_helper(node, "base", "Add", vec![scaled, kk], vec![]);
        let b = self.scalar_f32(node, "beta", beta as f32);
        let div = self.emit_helper(node, "divisor", "Pow", vec![base, b], vec![]);
        self.emit_main(node, "Div", vec![x, div], vec![]);
        Ok(())
    }

    fn finish(self) -> Result<GraphProto, ExportError> {
        let net = self.net;
        let mut outputs = Vec::new();
        let mut seen = HashSet::new();
        for &o in &net.outputs {
            let node = &net.nodes[o];
            if matches!(node.op, Op::Input { .. }) {
                return Err(ExportError::at(node, "the input is also an output; ONNX needs an op between them"));
            }
            if seen.insert(o) {
                outputs.push(self.value_info(&self.value[o], node.shape.dims()));
            }
        }
        let value_info = net
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| !seen.contains(i) && !matches!(n.op, Op::Input { .. }))
            .map(|(i, n)| self.value_info(&self.value[i], n.shape.dims()))
            .collect();
        let mut input = vec![self.value_info(INPUT_NAME, net.input_shape().dims())];
        input.extend(self.param_inputs);
        Ok(GraphProto {
            node: self.nodes,
            name: net.name.clone(),
            initializer: self.initializers,
            input,
            output: outputs,
            value_info,
            ..Default::default()
        })
    }
}
