//! ONNX ops onto IR ops, one at a time (see [`super::onnx`] for the reader they extend).

use super::onnx::{host, Dim, Reader, Value};
use super::tensor::{self, Attrs, Data, Tensor};
use crate::export::onnx_proto::NodeProto;
use crate::graph::{Conv2d, Op, Padding, Pool2d, Shape};
use crate::weights::NodeParams;

/// Said in the error for an op synprof does not import.
const SUPPORTED: &str = "Conv, BatchNormalization, Relu, Clip (as ReLU or ReLU6), Sigmoid, Tanh, HardSigmoid, \
HardSwish, Gelu (and its erf form), Mul (x * sigmoid(x) as SiLU, squeeze-excite, constant scaling), Div by a \
constant, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, ReduceMean (global), LRN, Add, Sum, Concat, \
Split and Slice (channels), Flatten, Reshape and Squeeze (flatten), Reshape-Transpose-Reshape (channel shuffle), \
Gemm, MatMul, Dropout, Identity, Softmax, Pad (zeros, before a conv or average pool), and constant subgraphs \
(Constant, ConstantOfShape, Shape, Gather, Unsqueeze, Squeeze, Concat, Cast, Reshape, arithmetic)";

const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// An f32 attribute as the f64 it was written from: the shortest decimal that reads back
/// as the same f32 (`1e-5f32` is 1e-5, not 9.99999974e-6), so values survive a round trip.
fn widen(v: f32) -> f64 {
    format!("{v}").parse().unwrap_or(v as f64)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

impl Reader<'_> {
    /// Translate one ONNX node, recording what its outputs are.
    pub fn node(&mut self, n: &NodeProto) -> Result<(), String> {
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(format!("ops of domain `{}` are not supported; synprof imports {SUPPORTED}", n.domain));
        }
        let a = Attrs(&n.attribute);
        let out = n.output.first().cloned().ok_or("the node has no output")?;
        for i in &n.input {
            if let Some(u) = self.uses.get_mut(i) {
                *u = u.saturating_sub(1);
            }
        }
        if let Some(v) = self.fold(n, &a)? {
            self.values.insert(out, v);
            return Ok(());
        }
        for extra in n.output.iter().skip(1).filter(|o| !o.is_empty()) {
            if n.op_type != "Split" && self.uses.get(extra).copied().unwrap_or(0) > 0 {
                return Err(format!(
                    "its extra output `{extra}` is used; synprof imports only the main output of {}",
                    n.op_type
                ));
            }
        }
        let input = |i: usize| n.input.get(i).map(String::as_str).filter(|s| !s.is_empty());
        let x = || input(0).ok_or_else(|| "the node has no input".to_string());
        let value = match n.op_type.as_str() {
            "Conv" => self.conv(n, &a, &out)?,
            "BatchNormalization" => self.batch_norm(n, &a, &out)?,
            "Relu" => self.unary(x()?, &out, Op::Relu)?,
            "Sigmoid" => self.unary(x()?, &out, Op::Sigmoid)?,
            "Tanh" => self.unary(x()?, &out, Op::Tanh)?,
            "HardSwish" => self.unary(x()?, &out, Op::HardSwish)?,
            "HardSigmoid" => {
                let (alpha, beta) = (widen(a.float("alpha").unwrap_or(0.2)), widen(a.float("beta").unwrap_or(0.5)));
                if !(close(alpha, 1.0 / 6.0) && close(beta, 0.5)) {
                    return Err(format!(
                        "HardSigmoid with alpha {alpha} and beta {beta}; synprof's hard sigmoid is PyTorch's \
                         (alpha 1/6, beta 0.5)"
                    ));
                }
                self.unary(x()?, &out, Op::HardSigmoid)?
            }
            "Gelu" => match a.string("approximate").as_deref().unwrap_or("none") {
                "none" => self.unary(x()?, &out, Op::Gelu)?,
                other => return Err(format!("GELU with approximate = `{other}`; synprof has the exact (erf) GELU")),
            },
            "Clip" => self.clip(n, &a, &out)?,
            "Erf" => {
                let i = self.node_input(x()?)?;
                match (&self.nodes[i].op, self.nodes[i].inputs.first()) {
                    (Op::Scale { factor }, Some(&src)) if close(*factor, FRAC_1_SQRT_2) => Value::Erf { x: src },
                    _ => return Err("Erf is supported only inside GELU, as erf(x / sqrt(2))".into()),
                }
            }
            "Add" | "Sum" | "Sub" => self.add(n, &out)?,
            "Mul" => self.mul(n, &out)?,
            "Div" => {
                let (xn, c) = (self.node_input(x()?)?, self.const_input(input(1).ok_or("Div needs two inputs")?)?);
                match c.scalar_f32() {
                    Some(c) if c != 0.0 => Value::Node(self.push(&out, Op::Scale { factor: 1.0 / widen(c) }, vec![xn], None)?),
                    _ => return Err("Div is supported only by a nonzero scalar constant".into()),
                }
            }
            "MaxPool" | "AveragePool" => self.pool(n, &a, &out)?,
            "GlobalAveragePool" => self.unary(x()?, &out, Op::GlobalAvgPool)?,
            "GlobalMaxPool" => {
                let xn = self.node_input(x()?)?;
                let [h, w] = self.nodes[xn].shape.hw().ok_or("GlobalMaxPool needs a feature map")?;
                let p = Pool2d { kernel: [h, w], stride: [1, 1], padding: Padding::ZERO, ceil_mode: false, count_include_pad: true };
                Value::Node(self.push(&out, Op::MaxPool2d(p), vec![xn], None)?)
            }
            "ReduceMean" => self.reduce_mean(n, &a, &out)?,
            "LRN" => {
                let size = a.int("size").ok_or("LRN without `size`")?;
                if size % 2 == 0 {
                    return Err(format!(
                        "LRN of even size {size}: ONNX centres an even window one channel off from PyTorch's, \
                         which synprof follows"
                    ));
                }
                let op = Op::Lrn {
                    size: size as usize,
                    alpha: widen(a.float("alpha").unwrap_or(1e-4)),
                    beta: widen(a.float("beta").unwrap_or(0.75)),
                    k: widen(a.float("bias").unwrap_or(1.0)),
                };
                self.unary(x()?, &out, op)?
            }
            "Concat" => {
                let xs = n.input.iter().map(|i| self.node_input(i)).collect::<Result<Vec<_>, _>>()?;
                if xs.len() == 1 {
                    // A concatenation of one tensor (DenseNet's first layer) is that tensor.
                    return {
                        self.values.insert(out, Value::Node(xs[0]));
                        Ok(())
                    };
                }
                let rank = self.nodes[xs[0]].shape.rank() as i64 + 1;
                let axis = a.int("axis").ok_or("Concat without `axis`")?;
                let axis = if axis < 0 { axis + rank } else { axis };
                if axis < 1 || axis >= rank {
                    return Err(format!("Concat along axis {axis} of a rank-{rank} tensor; synprof concatenates past the batch axis"));
                }
                Value::Node(self.push(&out, Op::Concat { axis: axis as usize }, xs, None)?)
            }
            "Split" => return self.split(n, &a),
            "Slice" => self.slice(n, &a, &out)?,
            "Flatten" => {
                let xn = self.node_input(x()?)?;
                let rank = self.nodes[xn].shape.rank() as i64 + 1;
                let axis = a.int("axis").unwrap_or(1);
                if axis != 1 && axis != 1 - rank {
                    return Err(format!("Flatten at axis {axis}; synprof flattens everything past the batch (axis 1)"));
                }
                self.flatten(xn, &out)?
            }
            "Reshape" => self.reshape(n, &out)?,
            "Squeeze" => {
                let xn = self.node_input(x()?)?;
                let dims = self.nodes[xn].shape.dims().to_vec();
                let axes = self.axes(n, &a, 1)?;
                let rank = dims.len() as i64 + 1;
                let axes: Vec<i64> = match axes {
                    Some(axes) => axes.iter().map(|&ax| if ax < 0 { ax + rank } else { ax }).collect(),
                    None => (1..rank).filter(|&ax| dims[ax as usize - 1] == 1).collect(),
                };
                if axes.contains(&0) {
                    return Err("Squeeze of the batch axis".into());
                }
                let kept: Vec<usize> =
                    dims.iter().enumerate().filter(|(i, _)| !axes.contains(&(*i as i64 + 1))).map(|(_, &d)| d).collect();
                self.reshape_to(xn, &kept, &out)?
            }
            "Transpose" => match self.value(x()?)?.clone() {
                Value::Grouped { src, groups } if a.ints("perm").as_deref() == Some(&[0, 2, 1, 3, 4]) => {
                    Value::GroupedTransposed { src, groups }
                }
                _ => return Err("Transpose is supported only inside a channel shuffle (reshape to [N, g, C/g, H, W], perm [0, 2, 1, 3, 4], reshape back)".into()),
            },
            "Gemm" => self.gemm(n, &a, &out)?,
            "MatMul" => self.matmul(n, &out)?,
            "Dropout" => {
                let p = match input(1) {
                    Some(r) => self.const_input(r)?.scalar_f32().ok_or("Dropout's ratio must be a scalar constant")?,
                    None => a.float("ratio").unwrap_or(0.5),
                };
                self.unary(x()?, &out, Op::Dropout { p: widen(p) })?
            }
            "Identity" => self.value(x()?)?.clone(),
            "Softmax" => {
                let xn = self.node_input(x()?)?;
                let dims = self.nodes[xn].shape.dims().to_vec();
                let rank = dims.len() as i64 + 1;
                let axis = a.int("axis").unwrap_or(if self.opset < 13 { 1 } else { -1 });
                let axis = if axis < 0 { axis + rank } else { axis };
                // Over the features: axis 1 of [N, F], or axis 1 of [N, C, 1, 1] in the
                // opset < 13 form that flattens everything from the axis on.
                let over_features =
                    axis == 1 && (dims.len() == 1 || (self.opset < 13 && dims[1..].iter().all(|&d| d == 1)));
                if !over_features {
                    return Err(format!(
                        "Softmax over axis {axis} of [N, {}]; synprof's softmax is over the features of [N, F]",
                        dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                    ));
                }
                self.unary(x()?, &out, Op::Softmax)?
            }
            "Pad" => self.pad(n, &a)?,
            other => return Err(format!("unsupported op `{other}`; synprof imports {SUPPORTED}")),
        };
        self.values.insert(out, value);
        Ok(())
    }

    fn unary(&mut self, x: &str, out: &str, op: Op) -> Result<Value, String> {
        let xn = self.node_input(x)?;
        Ok(Value::Node(self.push(out, op, vec![xn], None)?))
    }

    /// Parameters read from constants: `None` (and no weights for the model) where a
    /// constant has no data.
    fn known(&mut self, tensors: &[&Tensor]) -> Option<Vec<Vec<f32>>> {
        let data: Option<Vec<Vec<f32>>> = tensors.iter().map(|t| t.f32s()).collect();
        if data.is_none() {
            self.weights_incomplete = true;
        }
        data
    }

    fn conv(&mut self, n: &NodeProto, a: &Attrs, out: &str) -> Result<Value, String> {
        let (xn, extra) = match self.value(&n.input[0])?.clone() {
            Value::Padded { src, pad } => (src, pad),
            _ => (self.node_input(&n.input[0])?, Padding::ZERO),
        };
        let w = self.const_input(n.input.get(1).ok_or("Conv without weights")?)?.clone();
        if w.dims.len() != 4 {
            return Err(format!("a weight of shape {:?}: synprof imports 2-D convolutions (rank-4 weights)", w.dims));
        }
        let kernel = [w.dims[2], w.dims[3]];
        if let Some(k) = a.ints("kernel_shape") {
            if k != [kernel[0] as i64, kernel[1] as i64] {
                return Err(format!("kernel_shape {k:?} but the weight is {:?}", w.dims));
            }
        }
        let stride = pair(a.ints("strides"), "strides")?;
        let dilation = pair(a.ints("dilations"), "dilations")?;
        let groups = a.int("group").unwrap_or(1).max(1) as usize;
        let hw = self.nodes[xn].shape.hw().ok_or("Conv needs a feature map input [N, C, H, W]")?;
        let cin = self.nodes[xn].shape.channels();
        if w.dims[1] * groups != cin {
            return Err(format!(
                "the weight {:?} with group {groups} expects {} input channels, the input has {cin}",
                w.dims,
                w.dims[1] * groups
            ));
        }
        let mut padding = pads(a, hw, kernel, stride, dilation)?;
        padding.top += extra.top;
        padding.bottom += extra.bottom;
        padding.left += extra.left;
        padding.right += extra.right;
        let b = match n.input.get(2).filter(|s| !s.is_empty()) {
            Some(b) => Some(self.const_input(b)?.clone()),
            None => None,
        };
        if let Some(b) = &b {
            if b.elements() != w.dims[0] {
                return Err(format!("a bias of shape {:?} for {} output channels", b.dims, w.dims[0]));
            }
        }
        let op = Op::Conv2d(Conv2d {
            out_channels: w.dims[0],
            kernel,
            stride,
            dilation,
            padding,
            groups,
            bias: b.is_some(),
        });
        let mut tensors = vec![&w];
        tensors.extend(&b);
        let params = self.known(&tensors).map(|mut data| {
            let bias = b.as_ref().map(|b| host(vec![b.elements()], data.pop().unwrap()));
            NodeParams::Conv { weight: host(w.dims.clone(), data.pop().unwrap()), bias }
        });
        Ok(Value::Node(self.push(out, op, vec![xn], params)?))
    }

    fn batch_norm(&mut self, n: &NodeProto, a: &Attrs, out: &str) -> Result<Value, String> {
        if a.int("training_mode").unwrap_or(0) != 0 {
            return Err("BatchNormalization in training mode; export the model in inference (eval) mode".into());
        }
        let xn = self.node_input(&n.input[0])?;
        let c = self.nodes[xn].shape.channels();
        let mut ts = Vec::new();
        for (i, role) in ["scale", "B", "mean", "var"].iter().enumerate() {
            let t =
                self.const_input(n.input.get(i + 1).ok_or_else(|| format!("BatchNormalization without `{role}`"))?)?;
            if t.elements() != c {
                return Err(format!("its {role} has shape {:?}, the input has {c} channels", t.dims));
            }
            ts.push(t.clone());
        }
        let eps = widen(a.float("epsilon").unwrap_or(1e-5));
        let refs: Vec<&Tensor> = ts.iter().collect();
        let params = self.known(&refs).map(|mut d| {
            let var = host(vec![c], d.pop().unwrap());
            let mean = host(vec![c], d.pop().unwrap());
            let beta = host(vec![c], d.pop().unwrap());
            NodeParams::BatchNorm { gamma: host(vec![c], d.pop().unwrap()), beta, mean, var, eps }
        });
        Ok(Value::Node(self.push(out, Op::BatchNorm { eps }, vec![xn], params)?))
    }

    fn clip(&mut self, n: &NodeProto, a: &Attrs, out: &str) -> Result<Value, String> {
        let bound = |i: usize, attr: &str| -> Result<Option<f32>, String> {
            if self.opset < 11 {
                return Ok(a.float(attr));
            }
            match n.input.get(i).filter(|s| !s.is_empty()) {
                Some(name) => {
                    Ok(Some(self.const_input(name)?.scalar_f32().ok_or("Clip bounds must be scalar constants")?))
                }
                None => Ok(None),
            }
        };
        let (lo, hi) = (bound(1, "min")?, bound(2, "max")?);
        let op = match (lo, hi) {
            (Some(l), Some(h)) if l == 0.0 && h == 6.0 => Op::Relu6,
            (Some(0.0), None) => Op::Relu,
            (Some(l), Some(h)) if l == 0.0 && h.is_infinite() => Op::Relu,
            _ => {
                return Err(format!(
                    "Clip to [{}, {}]; synprof has ReLU (clip at 0) and ReLU6 (clip to [0, 6])",
                    lo.map_or("-inf".to_string(), |v| v.to_string()),
                    hi.map_or("inf".to_string(), |v| v.to_string())
                ))
            }
        };
        self.unary(&n.input[0], out, op)
    }

    fn add(&mut self, n: &NodeProto, out: &str) -> Result<Value, String> {
        let ins: Vec<&str> = n.input.iter().map(String::as_str).collect();
        let sub = n.op_type == "Sub";
        if ins.len() == 2 && !sub {
            // 1 + erf(x / sqrt(2)), either order.
            for (e, c) in [(0, 1), (1, 0)] {
                if let (Some(Value::Erf { x }), Some(Value::Const(t))) =
                    (self.values.get(ins[e]), self.values.get(ins[c]))
                {
                    if t.scalar_f32() == Some(1.0) {
                        return Ok(Value::ErfPlusOne { x: *x });
                    }
                }
            }
        }
        let consts: Vec<usize> =
            (0..ins.len()).filter(|&i| matches!(self.values.get(ins[i]), Some(Value::Const(_)))).collect();
        if consts.is_empty() && !sub {
            let xs = ins.iter().map(|i| self.node_input(i)).collect::<Result<Vec<_>, _>>()?;
            if xs.len() == 1 {
                return Ok(Value::Node(xs[0]));
            }
            return Ok(Value::Node(self.push(out, Op::Add, xs, None)?));
        }
        if ins.len() != 2 || consts.len() != 1 || (sub && consts[0] != 1) {
            return Err(format!(
                "{} of {} inputs with {} constant(s); synprof adds activations, and folds a constant per-channel \
                 shift into the batch-norm, conv or linear layer before it",
                n.op_type,
                ins.len(),
                consts.len()
            ));
        }
        let (xi, ci) = (1 - consts[0], consts[0]);
        let xn = self.node_input(ins[xi])?;
        let t = self.const_input(ins[ci])?.clone();
        let shift = self.per_channel(&t, xn).ok_or_else(|| {
            format!(
                "a constant of shape {:?} added to [N, {:?}] is not a per-channel shift",
                t.dims,
                self.nodes[xn].shape.dims()
            )
        })?;
        let shift = shift.map(|v| if sub { v.iter().map(|x| -x).collect() } else { v });
        self.fold_affine(ins[xi], xn, None, Some(shift), &n.op_type)
    }

    fn mul(&mut self, n: &NodeProto, out: &str) -> Result<Value, String> {
        if n.input.len() != 2 {
            return Err("Mul needs two inputs".into());
        }
        let (l, r) = (n.input[0].as_str(), n.input[1].as_str());
        let (lv, rv) = (self.value(l)?.clone(), self.value(r)?.clone());
        for (a, b) in [(&lv, &rv), (&rv, &lv)] {
            match (a, b) {
                // x * sigmoid(x): SiLU.
                (Value::Node(x), Value::Node(s))
                    if matches!(self.nodes[*s].op, Op::Sigmoid) && self.nodes[*s].inputs == [*x] =>
                {
                    return Ok(Value::Node(self.push(out, Op::Silu, vec![*x], None)?));
                }
                // x * (1 + erf(x / sqrt 2)), then * 0.5; or (0.5 x) * (1 + erf(...)).
                (Value::Node(x), Value::ErfPlusOne { x: src }) if x == src => return Ok(Value::GeluTwice { x: *x }),
                (Value::Node(h), Value::ErfPlusOne { x: src })
                    if matches!(self.nodes[*h].op, Op::Scale { factor } if close(factor, 0.5))
                        && self.nodes[*h].inputs == [*src] =>
                {
                    return Ok(Value::Node(self.push(out, Op::Gelu, vec![*src], None)?));
                }
                (Value::GeluTwice { x }, Value::Const(t)) if t.scalar_f32() == Some(0.5) => {
                    return Ok(Value::Node(self.push(out, Op::Gelu, vec![*x], None)?));
                }
                _ => {}
            }
        }
        match (&lv, &rv) {
            (Value::Node(a), Value::Node(b)) => Ok(Value::Node(self.push(out, Op::Mul, vec![*a, *b], None)?)),
            (Value::Node(x), Value::Const(t)) | (Value::Const(t), Value::Node(x)) => {
                let x_name = if matches!(lv, Value::Node(_)) { l } else { r };
                if t.elements() == 1 {
                    if let Some(f) = t.scalar_f32() {
                        return Ok(Value::Node(self.push(out, Op::Scale { factor: widen(f) }, vec![*x], None)?));
                    }
                }
                let scale = self.per_channel(t, *x).ok_or_else(|| {
                    format!(
                        "a constant of shape {:?} times [N, {:?}] is not a per-channel scale",
                        t.dims,
                        self.nodes[*x].shape.dims()
                    )
                })?;
                self.fold_affine(x_name, *x, Some(scale), None, "Mul")
            }
            _ => Err(format!("Mul of {} and {}", super::onnx::describe(&lv), super::onnx::describe(&rv))),
        }
    }

    /// A constant that broadcasts per channel against the node's output (`[C, 1, 1]`,
    /// `[1, C, 1, 1]`, `[F]` for flat features, or one value): its per-channel values,
    /// `Some(None)` if it has no data, `None` if it is not per-channel.
    fn per_channel(&self, t: &Tensor, x: usize) -> Option<Option<Vec<f32>>> {
        let shape = &self.nodes[x].shape;
        let full = shape.rank() + 1;
        if t.dims.len() > full {
            return None;
        }
        let mut dims = vec![1; full - t.dims.len()];
        dims.extend(&t.dims);
        let c = shape.dims()[0];
        let ok = dims[0] == 1 && (dims[1] == c || dims[1] == 1) && dims[2..].iter().all(|&d| d == 1);
        if !ok {
            return None;
        }
        Some(t.f32s().map(|v| if v.len() == 1 { vec![v[0]; c] } else { v }))
    }

    /// `x * scale + shift` per channel folded into the batch-norm, conv or linear layer
    /// that produces `x`, exactly. Only where nothing else reads `x`.
    fn fold_affine(
        &mut self,
        x_name: &str,
        x: usize,
        scale: Option<Option<Vec<f32>>>,
        shift: Option<Option<Vec<f32>>>,
        op: &str,
    ) -> Result<Value, String> {
        // Read later by anyone, under any name?
        let shared = self.values.iter().any(|(k, v)| {
            (k == x_name || matches!(v, Value::Node(i) if *i == x)) && self.uses.get(k).copied().unwrap_or(0) > 0
        });
        let target = &self.nodes[x];
        let kind = match &target.op {
            Op::BatchNorm { .. } => "batch-norm",
            Op::Conv2d(_) => "conv",
            Op::Linear { .. } => "linear",
            _ => "",
        };
        if kind.is_empty() || shared {
            return Err(format!(
                "a per-channel constant {op} on `{}` ({}); synprof folds one only into a batch-norm, conv or linear \
                 layer whose output nothing else reads",
                target.name,
                target.op.type_name()
            ));
        }
        let scale = scale.map(|s| s.ok_or(()));
        let shift = shift.map(|s| s.ok_or(()));
        if matches!(scale, Some(Err(()))) || matches!(shift, Some(Err(()))) {
            self.weights_incomplete = true;
        }
        let shifted = shift.is_some();
        let (s, t) = (scale.and_then(Result::ok), shift.and_then(Result::ok));
        let node = &mut self.nodes[x];
        // A conv or linear gains a bias when shifted.
        match &mut node.op {
            Op::Conv2d(c) if shifted => c.bias = true,
            Op::Linear { bias, .. } if shifted => *bias = true,
            _ => {}
        }
        if let Some(p) = &mut node.params {
            let channels = node.shape.dims()[0];
            let apply = |v: &mut Vec<f32>, i: usize| {
                if let Some(s) = &s {
                    v[i] *= s[i];
                }
                if let Some(t) = &t {
                    v[i] += t[i];
                }
            };
            match p {
                NodeParams::BatchNorm { gamma, beta, .. } => {
                    for i in 0..channels {
                        if let Some(s) = &s {
                            gamma.data[i] *= s[i];
                        }
                        apply(&mut beta.data, i);
                    }
                }
                NodeParams::Conv { weight, bias } | NodeParams::Linear { weight, bias } => {
                    let per = weight.data.len() / channels;
                    if let Some(s) = &s {
                        for (i, row) in weight.data.chunks_mut(per).enumerate() {
                            row.iter_mut().for_each(|w| *w *= s[i]);
                        }
                    }
                    if shifted && bias.is_none() {
                        *bias = Some(host(vec![channels], vec![0.0; channels]));
                    }
                    if let Some(b) = bias {
                        for i in 0..channels {
                            apply(&mut b.data, i);
                        }
                    }
                }
            }
        }
        self.notes.push(format!("folded a per-channel constant {op} into the {kind} before it"));
        Ok(Value::Node(x))
    }

    fn pool(&mut self, n: &NodeProto, a: &Attrs, out: &str) -> Result<Value, String> {
        let max = n.op_type == "MaxPool";
        let (xn, explicit) = match self.value(&n.input[0])?.clone() {
            Value::Padded { src, pad } if !max => (src, Some(pad)),
            _ => (self.node_input(&n.input[0])?, None),
        };
        let k = a.ints("kernel_shape").ok_or("a pool without kernel_shape")?;
        let kernel = pair(Some(k), "kernel_shape")?;
        let stride = pair(a.ints("strides"), "strides")?;
        if pair(a.ints("dilations"), "dilations")? != [1, 1] {
            return Err("dilated pooling is not supported".into());
        }
        let hw = self.nodes[xn].shape.hw().ok_or("pooling needs a feature map input [N, C, H, W]")?;
        let onnx_pads = pads(a, hw, kernel, stride, [1, 1])?;
        let ceil = a.int("ceil_mode").unwrap_or(0) != 0;
        let cip = a.int("count_include_pad").unwrap_or(0) != 0;
        // ONNX's output size on the (explicitly padded) input.
        let pre = explicit.unwrap_or(Padding::ZERO);
        let onnx_out = |n: usize, b: usize, e: usize, k: usize, s: usize| -> Result<usize, String> {
            let span = (n + b + e).checked_sub(k).ok_or(format!("a {k}-wide window does not fit in {}", n + b + e))?;
            Ok(if ceil { span.div_ceil(s) } else { span / s } + 1)
        };
        let want = [
            onnx_out(hw[0] + pre.top + pre.bottom, onnx_pads.top, onnx_pads.bottom, kernel[0], stride[0])?,
            onnx_out(hw[1] + pre.left + pre.right, onnx_pads.left, onnx_pads.right, kernel[1], stride[1])?,
        ];
        let mut candidates = Vec::new();
        match explicit {
            // Zeros padded explicitly, then averaged without counting the pool's own
            // padding: the zeros count, the pool's (end) padding is the overhang of
            // PyTorch's ceil mode. The IR: padding = the explicit pad, counted.
            Some(pad) if !cip => {
                if onnx_pads.top != 0 || onnx_pads.left != 0 {
                    return Err("an AveragePool after a Pad with leading padding of its own is not supported".into());
                }
                for ceil_mode in [false, true] {
                    candidates.push(Pool2d { kernel, stride, padding: pad, ceil_mode, count_include_pad: true });
                }
            }
            Some(pad) => {
                let padding = Padding {
                    top: pad.top + onnx_pads.top,
                    bottom: pad.bottom + onnx_pads.bottom,
                    left: pad.left + onnx_pads.left,
                    right: pad.right + onnx_pads.right,
                };
                candidates.push(Pool2d { kernel, stride, padding, ceil_mode: ceil, count_include_pad: true });
            }
            None => candidates.push(Pool2d {
                kernel,
                stride,
                padding: onnx_pads,
                ceil_mode: ceil,
                count_include_pad: max || cip,
            }),
        }
        let x_shape = self.nodes[xn].shape.clone();
        for p in candidates {
            let op = if max { Op::MaxPool2d(p) } else { Op::AvgPool2d(p) };
            if infer_hw(&op, &x_shape) == Some(want) {
                return Ok(Value::Node(self.push(out, op, vec![xn], None)?));
            }
        }
        Err(format!(
            "ONNX gives a {}x{} output here, which PyTorch's pooling (synprof's) does not reproduce: with ceil_mode, \
             ONNX keeps a last window that starts in the end padding",
            want[0], want[1]
        ))
    }

    fn reduce_mean(&mut self, n: &NodeProto, a: &Attrs, out: &str) -> Result<Value, String> {
        let xn = self.node_input(&n.input[0])?;
        let rank = self.nodes[xn].shape.rank() as i64 + 1;
        let axes = self.axes(n, a, 18)?.ok_or("ReduceMean over all axes (including the batch)")?;
        let mut axes: Vec<i64> = axes.iter().map(|&ax| if ax < 0 { ax + rank } else { ax }).collect();
        axes.sort();
        if rank != 4 || axes != [2, 3] {
            return Err(format!(
                "ReduceMean over axes {axes:?}; synprof has the global average over H and W (axes [2, 3])"
            ));
        }
        let g = self.push(out, Op::GlobalAvgPool, vec![xn], None)?;
        if a.int("keepdims").unwrap_or(1) == 0 {
            let flat_name = format!("{out}.flat");
            let f = self.push(&flat_name, Op::Flatten, vec![g], None)?;
            // The flatten carries the value's name; the pool gets the helper's.
            let (gn, fname) = (self.nodes[g].name.clone(), self.nodes[f].name.clone());
            self.nodes[g].name = fname;
            self.nodes[f].name = gn;
            return Ok(Value::Node(f));
        }
        Ok(Value::Node(g))
    }

    /// Axes from the attribute (before `opset_moved`) or from input 1 (from it on).
    fn axes(&self, n: &NodeProto, a: &Attrs, opset_moved: i64) -> Result<Option<Vec<i64>>, String> {
        if self.opset < opset_moved {
            return Ok(a.ints("axes"));
        }
        match n.input.get(1).filter(|s| !s.is_empty()) {
            Some(name) => Ok(Some(self.const_input(name)?.i64s().ok_or("axes must be integer constants")?)),
            None => Ok(a.ints("axes")),
        }
    }

    fn split(&mut self, n: &NodeProto, a: &Attrs) -> Result<(), String> {
        let xn = self.node_input(&n.input[0])?;
        let dims = self.nodes[xn].shape.dims().to_vec();
        let rank = dims.len() as i64 + 1;
        let axis = a.int("axis").unwrap_or(0);
        if (if axis < 0 { axis + rank } else { axis }) != 1 {
            return Err(format!("Split along axis {axis}; synprof splits channels (axis 1)"));
        }
        let c = dims[0];
        let parts = n.output.len();
        let sizes: Vec<usize> = match (n.input.get(1).filter(|s| !s.is_empty()), a.ints("split")) {
            (Some(s), _) => {
                self.const_input(s)?.i64s().ok_or("split sizes must be integers")?.iter().map(|&v| v as usize).collect()
            }
            (None, Some(s)) => s.iter().map(|&v| v as usize).collect(),
            (None, None) => {
                let each = c.div_ceil(parts);
                (0..parts).map(|i| each.min(c.saturating_sub(i * each))).collect()
            }
        };
        if sizes.len() != parts || sizes.iter().sum::<usize>() != c {
            return Err(format!("split sizes {sizes:?} for {parts} outputs of {c} channels"));
        }
        let mut start = 0;
        for (o, size) in n.output.iter().zip(sizes) {
            let idx = self.push(o, Op::ChannelSlice { start, end: start + size }, vec![xn], None)?;
            self.values.insert(o.clone(), Value::Node(idx));
            start += size;
        }
        Ok(())
    }

    fn slice(&mut self, n: &NodeProto, a: &Attrs, out: &str) -> Result<Value, String> {
        let xn = self.node_input(&n.input[0])?;
        let ints = |i: usize, attr: &str| -> Result<Option<Vec<i64>>, String> {
            if self.opset < 10 {
                return Ok(a.ints(attr));
            }
            match n.input.get(i).filter(|s| !s.is_empty()) {
                Some(name) => Ok(Some(self.const_input(name)?.i64s().ok_or("Slice bounds must be integer constants")?)),
                None => Ok(None),
            }
        };
        let (starts, ends) =
            (ints(1, "starts")?.ok_or("Slice without starts")?, ints(2, "ends")?.ok_or("Slice without ends")?);
        let axes = ints(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = ints(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
        let dims = self.nodes[xn].shape.dims().to_vec();
        let rank = dims.len() as i64 + 1;
        let axes: Vec<i64> = axes.iter().map(|&ax| if ax < 0 { ax + rank } else { ax }).collect();
        if axes != [1] || steps != [1] {
            return Err(format!(
                "Slice on axes {axes:?} with steps {steps:?}; synprof slices channels (axis 1, step 1)"
            ));
        }
        let c = dims[0] as i64;
        let clamp = |v: i64| (if v < 0 { v + c } else { v }).clamp(0, c) as usize;
        let (start, end) = (clamp(starts[0]), clamp(ends[0]));
        Ok(Value::Node(self.push(out, Op::ChannelSlice { start, end }, vec![xn], None)?))
    }

    fn flatten(&mut self, xn: usize, out: &str) -> Result<Value, String> {
        if self.nodes[xn].shape.rank() == 1 {
            return Ok(Value::Node(xn));
        }
        Ok(Value::Node(self.push(out, Op::Flatten, vec![xn], None)?))
    }

    /// A reshape of a node to per-sample `dims`: nothing, a flatten, or the first step
    /// of a channel shuffle.
    fn reshape_to(&mut self, xn: usize, dims: &[usize], out: &str) -> Result<Value, String> {
        let from = self.nodes[xn].shape.dims().to_vec();
        if dims == from {
            return Ok(Value::Node(xn));
        }
        let elements: usize = from.iter().product();
        if dims == [elements] {
            return self.flatten(xn, out);
        }
        if from.len() == 3 && dims.len() == 4 && dims[0] * dims[1] == from[0] && dims[2..] == from[1..] {
            return Ok(Value::Grouped { src: xn, groups: dims[0] });
        }
        Err(format!(
            "a reshape from [N, {from:?}] to [N, {dims:?}]; synprof reshapes only to flatten or to shuffle channels"
        ))
    }

    fn reshape(&mut self, n: &NodeProto, out: &str) -> Result<Value, String> {
        let target = self
            .int_vector(n.input.get(1).ok_or("Reshape without a shape")?)?
            .ok_or("Reshape's shape must be a constant or computed from shapes")?;
        let source = self.value(&n.input[0])?.clone();
        let (src, per_sample) = match &source {
            Value::Node(i) => (*i, self.nodes[*i].shape.dims().to_vec()),
            Value::Grouped { src, groups } => {
                let d = self.nodes[*src].shape.dims();
                (*src, vec![*groups, d[0] / groups, d[1], d[2]])
            }
            Value::GroupedTransposed { src, groups } => {
                let d = self.nodes[*src].shape.dims();
                (*src, vec![d[0] / groups, *groups, d[1], d[2]])
            }
            other => return Err(format!("Reshape of {}", super::onnx::describe(other))),
        };
        let elements: usize = per_sample.iter().product();
        // The batch axis: symbolic, 0 (copy), the fixed batch, or -1 with the rest giving a sample.
        let rest: Vec<Dim> = target.iter().skip(1).copied().collect();
        let rest_known: Option<i64> = rest.iter().try_fold(1i64, |p, d| match d {
            Dim::Fixed(v) if *v > 0 => Some(p * v),
            _ => None,
        });
        let batch_ok = match target.first() {
            Some(Dim::Batch) => true,
            Some(Dim::Fixed(0)) => true,
            Some(Dim::Fixed(-1)) => rest_known == Some(elements as i64),
            Some(Dim::Fixed(b)) => Some(*b) == self.static_batch || (self.static_batch.is_none() && *b == 1),
            None => false,
        };
        if !batch_ok {
            return Err(format!("Reshape to {target:?} changes the batch axis; synprof reshapes each sample"));
        }
        let mut dims = Vec::new();
        let mut infer_at = None;
        for (i, d) in rest.iter().enumerate() {
            match d {
                Dim::Fixed(-1) if infer_at.is_none() => {
                    infer_at = Some(i);
                    dims.push(1);
                }
                Dim::Fixed(0) => dims.push(*per_sample.get(i).ok_or("Reshape copies a dimension the input lacks")?),
                Dim::Fixed(v) if *v > 0 => dims.push(*v as usize),
                other => return Err(format!("Reshape with dimension {other:?} past the batch")),
            }
        }
        if let Some(i) = infer_at {
            let known: usize = dims.iter().product();
            if known == 0 || !elements.is_multiple_of(known) {
                return Err(format!("Reshape of {elements} elements per sample to {target:?}"));
            }
            dims[i] = elements / known;
        }
        if dims.iter().product::<usize>() != elements {
            return Err(format!("Reshape of {elements} elements per sample to {dims:?}"));
        }
        match source {
            Value::Node(_) => self.reshape_to(src, &dims, out),
            Value::Grouped { .. } if dims == per_sample => Ok(source),
            Value::GroupedTransposed { groups, .. } if dims == self.nodes[src].shape.dims() => {
                Ok(Value::Node(self.push(out, Op::ChannelShuffle { groups }, vec![src], None)?))
            }
            _ => Err(format!("a 5-D reshape followed by a reshape to {dims:?}; only a channel shuffle is supported")),
        }
    }

    fn linear(
        &mut self,
        xn: usize,
        out: &str,
        weight: &Tensor,
        in_out: bool,
        bias: Option<Tensor>,
    ) -> Result<Value, String> {
        let fin = match self.nodes[xn].shape.dims() {
            [f] => *f,
            d => return Err(format!("a fully connected layer on [N, {d:?}]; flatten first")),
        };
        let (rows, cols) = (weight.dims[0], weight.dims[1]);
        let (fout, w_in) = if in_out { (cols, rows) } else { (rows, cols) };
        if w_in != fin {
            return Err(format!("a weight of shape {:?} for {fin} input features", weight.dims));
        }
        if let Some(b) = &bias {
            if b.elements() != fout && b.elements() != 1 {
                return Err(format!("a bias of shape {:?} for {fout} outputs", b.dims));
            }
        }
        let mut tensors = vec![weight];
        tensors.extend(&bias);
        let params = self.known(&tensors).map(|mut d| {
            let b = bias.as_ref().map(|_| {
                let v = d.pop().unwrap();
                host(vec![fout], if v.len() == 1 { vec![v[0]; fout] } else { v })
            });
            let w = d.pop().unwrap();
            let w = if in_out { transpose(&w, rows, cols) } else { w };
            NodeParams::Linear { weight: host(vec![fout, fin], w), bias: b }
        });
        let op = Op::Linear { out_features: fout, bias: bias.is_some() };
        Ok(Value::Node(self.push(out, op, vec![xn], params)?))
    }

    fn gemm(&mut self, n: &NodeProto, a: &Attrs, out: &str) -> Result<Value, String> {
        if a.int("transA").unwrap_or(0) != 0 {
            return Err("Gemm with transA; the activation must be [N, F]".into());
        }
        let xn = self.node_input(&n.input[0])?;
        let mut w = self.const_input(n.input.get(1).ok_or("Gemm without B")?)?.clone();
        if w.dims.len() != 2 {
            return Err(format!("Gemm's B has shape {:?}", w.dims));
        }
        let mut bias = match n.input.get(2).filter(|s| !s.is_empty()) {
            Some(c) => Some(self.const_input(c)?.clone()),
            None => None,
        };
        let (alpha, beta) = (a.float("alpha").unwrap_or(1.0), a.float("beta").unwrap_or(1.0));
        if alpha != 1.0 {
            w.data = scaled(&w.data, alpha);
        }
        if let Some(b) = &mut bias {
            if beta != 1.0 {
                b.data = scaled(&b.data, beta);
            }
        }
        self.linear(xn, out, &w, a.int("transB").unwrap_or(0) == 0, bias)
    }

    fn matmul(&mut self, n: &NodeProto, out: &str) -> Result<Value, String> {
        let xn = self.node_input(&n.input[0])?;
        let w = self.const_input(n.input.get(1).ok_or("MatMul needs two inputs")?)?.clone();
        if w.dims.len() != 2 {
            return Err(format!("MatMul by a constant of shape {:?}; synprof has fully connected layers", w.dims));
        }
        self.linear(xn, out, &w, true, None)
    }

    fn pad(&mut self, n: &NodeProto, a: &Attrs) -> Result<Value, String> {
        let xn = self.node_input(&n.input[0])?;
        let mode = a.string("mode").unwrap_or_else(|| "constant".into());
        let (p, value) = if self.opset < 11 {
            (a.ints("pads").ok_or("Pad without pads")?, a.float("value").unwrap_or(0.0))
        } else {
            let p =
                self.const_input(n.input.get(1).ok_or("Pad without pads")?)?.i64s().ok_or("pads must be integers")?;
            let v = match n.input.get(2).filter(|s| !s.is_empty()) {
                Some(v) => self.const_input(v)?.scalar_f32().ok_or("Pad's value must be a scalar constant")?,
                None => 0.0,
            };
            (p, v)
        };
        if n.input.get(3).is_some_and(|s| !s.is_empty()) {
            return Err("Pad with axes is not supported".into());
        }
        if mode != "constant"
            || value != 0.0
            || p.len() != 8
            || p[0] != 0
            || p[1] != 0
            || p[4] != 0
            || p[5] != 0
            || p.iter().any(|&v| v < 0)
        {
            return Err(format!(
                "Pad mode `{mode}` value {value} pads {p:?}; synprof merges only non-negative zero padding of H and W into the next conv or average pool"
            ));
        }
        let _ = self.nodes[xn].shape.hw().ok_or("Pad needs a feature map")?;
        let pad = Padding { top: p[2] as usize, left: p[3] as usize, bottom: p[6] as usize, right: p[7] as usize };
        Ok(Value::Padded { src: xn, pad })
    }

    /// An integer vector (constant or computed from shapes), or `None` if the value is
    /// neither.
    pub(super) fn int_vector(&self, name: &str) -> Result<Option<Vec<Dim>>, String> {
        Ok(match self.value(name)? {
            Value::Shape { dims, .. } => Some(dims.clone()),
            Value::Const(t) => {
                t.i64s().filter(|_| matches!(t.data, Data::I64(_))).map(|v| v.into_iter().map(Dim::Fixed).collect())
            }
            _ => None,
        })
    }

    /// Constant folding: `Constant`, `Shape`, and ops whose inputs are all constants or
    /// shape vectors. `None` when the node is not a constant computation.
    fn fold(&self, n: &NodeProto, a: &Attrs) -> Result<Option<Value>, String> {
        let op = n.op_type.as_str();
        if op == "Constant" {
            return constant_attr(a).map(|t| Some(Value::Const(t)));
        }
        if op == "Shape" {
            let dims: Vec<Dim> = match self.value(&n.input[0])? {
                Value::Node(i) => std::iter::once(Dim::Batch)
                    .chain(self.nodes[*i].shape.dims().iter().map(|&d| Dim::Fixed(d as i64)))
                    .collect(),
                Value::Const(t) => t.dims.iter().map(|&d| Dim::Fixed(d as i64)).collect(),
                other => return Err(format!("Shape of {}", super::onnx::describe(other))),
            };
            let r = dims.len() as i64;
            let norm = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (s, e) = (norm(a.int("start").unwrap_or(0)), norm(a.int("end").unwrap_or(r)));
            return Ok(Some(shape_value(dims[s..e.max(s)].to_vec(), false)));
        }
        let ins: Vec<&str> = n.input.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
        let foldable = |name: &str| match self.values.get(name) {
            Some(Value::Const(t)) => t.data != Data::Unknown,
            Some(Value::Shape { .. }) => true,
            _ => false,
        };
        if ins.is_empty() || !ins.iter().all(|i| foldable(i)) {
            return Ok(None);
        }
        let ints = |name: &str| -> Result<(Vec<Dim>, bool), String> {
            match self.value(name)? {
                Value::Shape { dims, scalar } => Ok((dims.clone(), *scalar)),
                Value::Const(t) => match &t.data {
                    Data::I64(v) if t.dims.len() <= 1 => {
                        Ok((v.iter().map(|&x| Dim::Fixed(x)).collect(), t.dims.is_empty()))
                    }
                    _ => Err(format!("`{name}` is not an integer vector")),
                },
                _ => unreachable!("checked foldable"),
            }
        };
        let is_int = |name: &str| {
            matches!(
                self.values.get(name),
                Some(Value::Shape { .. }) | Some(Value::Const(Tensor { data: Data::I64(_), .. }))
            )
        };
        let float = |name: &str| -> Result<Tensor, String> {
            match self.value(name)? {
                Value::Const(t) => Ok(t.clone()),
                _ => Err(format!("`{name}` is a shape vector where a tensor is needed")),
            }
        };
        let folded = match op {
            "Identity" => self.value(ins[0])?.clone(),
            "Cast" => {
                let to = a.int("to").unwrap_or(1);
                let to_float = matches!(to, 1 | 10 | 11 | 16);
                match self.value(ins[0])?.clone() {
                    Value::Const(t) if to_float => Value::Const(Tensor { data: Data::F32(t.f32s().unwrap()), ..t }),
                    Value::Const(t) => Value::Const(Tensor {
                        data: Data::I64(t.f32s().unwrap().iter().map(|&v| v as i64).collect()),
                        ..t
                    }),
                    shape => shape,
                }
            }
            "ConstantOfShape" => {
                let (dims, _) = ints(ins[0])?;
                let dims = fixed(&dims).ok_or("ConstantOfShape of a shape that holds the batch size")?;
                let fill = match a.tensor("value") {
                    Some(t) => tensor::decode(t, None)?,
                    None => Tensor { dims: vec![1], data: Data::F32(vec![0.0]) },
                };
                let n: usize = dims.iter().map(|&d| d as usize).product();
                let data = match fill.data {
                    Data::I64(v) => Data::I64(vec![v[0]; n]),
                    Data::F32(v) => Data::F32(vec![v[0]; n]),
                    Data::Unknown => Data::Unknown,
                };
                Value::Const(Tensor { dims: dims.iter().map(|&d| d as usize).collect(), data })
            }
            "Gather" if is_int(ins[0]) => {
                let (data, _) = ints(ins[0])?;
                let (idx, scalar) = ints(ins[1])?;
                if a.int("axis").unwrap_or(0) != 0 {
                    return Err("Gather of a shape vector along an axis other than 0".into());
                }
                let r = data.len() as i64;
                let picked = idx
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(i) => data
                            .get((if *i < 0 { i + r } else { *i }) as usize)
                            .copied()
                            .ok_or(format!("index {i} of {r}")),
                        Dim::Batch => Err("an index that is the batch size".to_string()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                shape_value(picked, scalar)
            }
            "Unsqueeze" | "Squeeze" => {
                let axes = if self.opset < 13 {
                    a.ints("axes")
                } else {
                    ins.get(1).map(|i| ints(i)).transpose()?.map(|(d, _)| fixed(&d).unwrap_or_default())
                };
                match self.value(ins[0])? {
                    Value::Shape { dims, scalar } if op == "Unsqueeze" && *scalar => shape_value(dims.clone(), false),
                    Value::Const(t) => {
                        let mut dims = t.dims.clone();
                        if op == "Unsqueeze" {
                            let axes = axes.ok_or("Unsqueeze without axes")?;
                            let rank = (dims.len() + axes.len()) as i64;
                            let mut axes: Vec<usize> =
                                axes.iter().map(|&ax| (if ax < 0 { ax + rank } else { ax }) as usize).collect();
                            axes.sort();
                            for ax in axes {
                                if ax > dims.len() {
                                    return Err(format!("Unsqueeze at axis {ax} of rank {}", dims.len()));
                                }
                                dims.insert(ax, 1);
                            }
                        } else {
                            let rank = dims.len() as i64;
                            let axes: Vec<usize> = match axes {
                                Some(axes) => {
                                    axes.iter().map(|&ax| (if ax < 0 { ax + rank } else { ax }) as usize).collect()
                                }
                                None => (0..dims.len()).filter(|&i| dims[i] == 1).collect(),
                            };
                            dims =
                                dims.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
                        }
                        Value::Const(Tensor { dims, data: t.data.clone() })
                    }
                    other => return Err(format!("{op} of {}", super::onnx::describe(other))),
                }
            }
            "Concat" if ins.iter().all(|i| is_int(i)) => {
                let mut all = Vec::new();
                for i in &ins {
                    all.extend(ints(i)?.0);
                }
                shape_value(all, false)
            }
            "Reshape" if !is_int(ins[0]) => {
                let t = float(ins[0])?;
                let (dims, _) = ints(ins[1])?;
                let mut dims = fixed(&dims).ok_or("a reshape of a constant to a shape holding the batch size")?;
                if let Some(i) = dims.iter().position(|&d| d == -1) {
                    let known: i64 = dims.iter().filter(|&&d| d != -1).product();
                    dims[i] = t.elements() as i64 / known.max(1);
                }
                for (i, d) in dims.iter_mut().enumerate() {
                    if *d == 0 {
                        *d = *t.dims.get(i).ok_or("reshape copies a missing dimension")? as i64;
                    }
                }
                let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
                if dims.iter().product::<usize>() != t.elements() {
                    return Err(format!("a reshape of a constant of shape {:?} to {dims:?}", t.dims));
                }
                Value::Const(Tensor { dims, data: t.data })
            }
            "Add" | "Sub" | "Mul" | "Div" if ins.len() == 2 && is_int(ins[0]) && is_int(ins[1]) => {
                let ((l, ls), (r, rs)) = (ints(ins[0])?, ints(ins[1])?);
                let (l, r) = (
                    fixed(&l).ok_or("arithmetic on the batch size")?,
                    fixed(&r).ok_or("arithmetic on the batch size")?,
                );
                let f = |x: i64, y: i64| match op {
                    "Add" => Some(x + y),
                    "Sub" => Some(x - y),
                    "Mul" => Some(x * y),
                    _ => (y != 0).then(|| x.div_euclid(y)),
                };
                let out =
                    broadcast(&l, &r, |x, y| f(*x, *y)).ok_or("integer arithmetic on mismatched shapes or by zero")?;
                shape_value(out.into_iter().map(Dim::Fixed).collect(), ls && rs)
            }
            "Add" | "Sub" | "Mul" | "Div" if ins.len() == 2 => {
                let (l, r) = (float(ins[0])?, float(ins[1])?);
                let (lv, rv) = (l.f32s().unwrap(), r.f32s().unwrap());
                let f = |x: &f32, y: &f32| {
                    Some(match op {
                        "Add" => x + y,
                        "Sub" => x - y,
                        "Mul" => x * y,
                        _ => x / y,
                    })
                };
                let data = broadcast(&lv, &rv, f).ok_or("arithmetic on constants of different shapes")?;
                let dims = if lv.len() >= rv.len() { l.dims } else { r.dims };
                Value::Const(Tensor { dims, data: Data::F32(data) })
            }
            "Sqrt" | "Reciprocal" | "Neg" => {
                let t = float(ins[0])?;
                let f = |v: f32| match op {
                    "Sqrt" => v.sqrt(),
                    "Reciprocal" => 1.0 / v,
                    _ => -v,
                };
                Value::Const(Tensor { data: Data::F32(t.f32s().unwrap().into_iter().map(f).collect()), dims: t.dims })
            }
            _ => return Ok(None),
        };
        Ok(Some(folded))
    }
}

/// An integer vector: a constant when it holds no batch size.
fn shape_value(dims: Vec<Dim>, scalar: bool) -> Value {
    match fixed(&dims) {
        Some(v) => Value::Const(Tensor { dims: if scalar { vec![] } else { vec![v.len()] }, data: Data::I64(v) }),
        None => Value::Shape { dims, scalar },
    }
}

fn fixed(dims: &[Dim]) -> Option<Vec<i64>> {
    dims.iter()
        .map(|d| match d {
            Dim::Fixed(v) => Some(*v),
            Dim::Batch => None,
        })
        .collect()
}

/// Elementwise over equal lengths, or with one side a single value.
fn broadcast<T: Copy, U>(l: &[T], r: &[T], f: impl Fn(&T, &T) -> Option<U>) -> Option<Vec<U>> {
    match (l.len(), r.len()) {
        (a, b) if a == b => l.iter().zip(r).map(|(x, y)| f(x, y)).collect(),
        (_, 1) => l.iter().map(|x| f(x, &r[0])).collect(),
        (1, _) => r.iter().map(|y| f(&l[0], y)).collect(),
        _ => None,
    }
}

/// A `Constant` node's value, from whichever attribute holds it.
fn constant_attr(a: &Attrs) -> Result<Tensor, String> {
    if let Some(t) = a.tensor("value") {
        return tensor::decode(t, None);
    }
    if let Some(v) = a.float("value_float") {
        return Ok(Tensor { dims: vec![], data: Data::F32(vec![v]) });
    }
    if let Some(v) = a.int("value_int") {
        return Ok(Tensor { dims: vec![], data: Data::I64(vec![v]) });
    }
    if a.has("value_floats") {
        let v = a.floats("value_floats").unwrap();
        return Ok(Tensor { dims: vec![v.len()], data: Data::F32(v) });
    }
    if a.has("value_ints") {
        let v = a.ints("value_ints").unwrap();
        return Ok(Tensor { dims: vec![v.len()], data: Data::I64(v) });
    }
    Err("a Constant without a tensor, float or int value (sparse and string constants are not supported)".into())
}

/// A two-element attribute (`[h, w]`), 1s when absent.
fn pair(v: Option<Vec<i64>>, what: &str) -> Result<[usize; 2], String> {
    match v.as_deref() {
        None => Ok([1, 1]),
        Some(&[h, w]) if h > 0 && w > 0 => Ok([h as usize, w as usize]),
        Some(other) => Err(format!("{what} {other:?}; synprof imports 2-D ops with positive {what}")),
    }
}

/// The spatial padding of a conv or pool: `pads` (`[top, left, bottom, right]`) or
/// `auto_pad`.
fn pads(
    a: &Attrs,
    hw: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> Result<Padding, String> {
    match a.string("auto_pad").as_deref().unwrap_or("NOTSET") {
        "NOTSET" => match a.ints("pads").as_deref() {
            None => Ok(Padding::ZERO),
            Some(&[t, l, b, r]) if [t, l, b, r].iter().all(|&v| v >= 0) => {
                Ok(Padding { top: t as usize, left: l as usize, bottom: b as usize, right: r as usize })
            }
            Some(other) => Err(format!("pads {other:?}; expected four non-negative values")),
        },
        "VALID" => Ok(Padding::ZERO),
        "SAME_UPPER" => Ok(Padding::tf_same(hw, kernel, stride, dilation)),
        "SAME_LOWER" => {
            let p = Padding::tf_same(hw, kernel, stride, dilation);
            Ok(Padding { top: p.bottom, bottom: p.top, left: p.right, right: p.left })
        }
        other => Err(format!("auto_pad `{other}`")),
    }
}

fn infer_hw(op: &Op, x: &Shape) -> Option<[usize; 2]> {
    crate::graph::infer::infer_shape(op, &[x]).ok()?.hw()
}

fn scaled(data: &Data, by: f32) -> Data {
    match data {
        Data::F32(v) => Data::F32(v.iter().map(|x| x * by).collect()),
        Data::I64(v) => Data::F32(v.iter().map(|&x| x as f32 * by).collect()),
        Data::Unknown => Data::Unknown,
    }
}

/// `[rows, cols]` row-major to `[cols, rows]`.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}
