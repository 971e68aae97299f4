//! A builder in PyTorch's functional style: each call adds one node and returns its
//! output, so a model reads as a few lines per block.
//!
//! ```
//! use synprof::graph::{NetBuilder, conv, pool};
//! let mut g = NetBuilder::new("tiny", &[3, 32, 32]);
//! let x = g.input();
//! let x = g.conv(x, conv(16, 3).pad(1).no_bias());
//! let x = g.bn(x);
//! let x = g.relu(x);
//! let x = g.max_pool(x, pool(2));
//! let x = g.flatten(x);
//! let x = g.linear(x, 10);
//! let net = g.finish(x).unwrap();
//! assert_eq!(net.nodes.len(), 7);
//! ```
//!
//! Names come from the scope path and a per-scope counter (`layer1.0.conv2`), like
//! torchvision's module names. Shape errors do not panic: the first one is kept and
//! returned by [`NetBuilder::finish`].

use super::infer::infer_shape;
use super::net::{GraphError, Net, RawNode};
use super::op::{Conv2d, Op, Padding, Pool2d};
use super::shape::Shape;
use std::collections::HashMap;

/// A node's output inside a [`NetBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct T(usize);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pad {
    Explicit(Padding),
    /// PyTorch's `padding="same"`-like for odd kernels: (k-1)/2 * dilation each side.
    Half,
    TfSame,
}

/// Convolution settings: `conv(out_channels, kernel)` then setters. Defaults follow
/// PyTorch: stride 1, no padding, dilation 1, groups 1, with bias.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvSpec {
    out_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: Pad,
    groups: Option<usize>, // None = depthwise (groups = input channels)
    bias: bool,
}

/// `conv(64, 7)`: a 7x7 convolution to 64 channels.
pub fn conv(out_channels: usize, kernel: usize) -> ConvSpec {
    conv_hw(out_channels, kernel, kernel)
}

/// `conv_hw(192, 1, 7)`: a 1x7 convolution (height 1, width 7).
pub fn conv_hw(out_channels: usize, kernel_h: usize, kernel_w: usize) -> ConvSpec {
    ConvSpec {
        out_channels,
        kernel: [kernel_h, kernel_w],
        stride: [1, 1],
        dilation: [1, 1],
        pad: Pad::Explicit(Padding::ZERO),
        groups: Some(1),
        bias: true,
    }
}

impl ConvSpec {
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s, s];
        self
    }
    pub fn stride_hw(mut self, sh: usize, sw: usize) -> Self {
        self.stride = [sh, sw];
        self
    }
    pub fn pad(mut self, p: usize) -> Self {
        self.pad = Pad::Explicit(Padding::symmetric(p, p));
        self
    }
    pub fn pad_hw(mut self, ph: usize, pw: usize) -> Self {
        self.pad = Pad::Explicit(Padding::symmetric(ph, pw));
        self
    }
    pub fn padding(mut self, p: Padding) -> Self {
        self.pad = Pad::Explicit(p);
        self
    }
    /// Keep the size at stride 1 for odd kernels: pad `(k-1)/2 * dilation` on each side.
    pub fn pad_half(mut self) -> Self {
        self.pad = Pad::Half;
        self
    }
    /// TensorFlow `SAME` (asymmetric for even kernels), resolved against the input size.
    pub fn same(mut self) -> Self {
        self.pad = Pad::TfSame;
        self
    }
    /// TensorFlow `VALID`: no padding.
    pub fn valid(mut self) -> Self {
        self.pad = Pad::Explicit(Padding::ZERO);
        self
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d, d];
        self
    }
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = Some(g);
        self
    }
    /// Depthwise: one group per input channel.
    pub fn depthwise(mut self) -> Self {
        self.groups = None;
        self
    }
    pub fn no_bias(mut self) -> Self {
        self.bias = false;
        self
    }
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }
}

/// Pooling settings: `pool(3)` then setters. Defaults follow PyTorch: stride = kernel,
/// no padding, floor rounding, padding counted in averages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolSpec {
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: Pad,
    ceil_mode: bool,
    count_include_pad: bool,
}

pub fn pool(kernel: usize) -> PoolSpec {
    PoolSpec {
        kernel: [kernel, kernel],
        stride: [kernel, kernel],
        pad: Pad::Explicit(Padding::ZERO),
        ceil_mode: false,
        count_include_pad: true,
    }
}

impl PoolSpec {
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s, s];
        self
    }
    pub fn pad(mut self, p: usize) -> Self {
        self.pad = Pad::Explicit(Padding::symmetric(p, p));
        self
    }
    /// TensorFlow `SAME` pooling (averages then exclude the padding, as TF does).
    pub fn same(mut self) -> Self {
        self.pad = Pad::TfSame;
        self.count_include_pad = false;
        self
    }
    /// Round the output size up (Caffe, `ceil_mode=True`).
    pub fn ceil(mut self) -> Self {
        self.ceil_mode = true;
        self
    }
    /// Average over valid elements only (`count_include_pad=False`).
    pub fn exclude_pad(mut self) -> Self {
        self.count_include_pad = false;
        self
    }
}

fn resolve_pad(pad: Pad, input: &Shape, kernel: [usize; 2], stride: [usize; 2], dilation: [usize; 2]) -> Padding {
    match pad {
        Pad::Explicit(p) => p,
        Pad::Half => Padding::symmetric(
            (kernel[0].saturating_sub(1)) / 2 * dilation[0],
            (kernel[1].saturating_sub(1)) / 2 * dilation[1],
        ),
        Pad::TfSame => match input.hw() {
            Some(hw) => Padding::tf_same(hw, kernel, stride, dilation),
            None => Padding::ZERO, // shape inference reports the flat input
        },
    }
}

pub struct NetBuilder {
    name: String,
    nodes: Vec<RawNode>,
    shapes: Vec<Shape>,
    scope: Vec<String>,
    counters: HashMap<(String, &'static str), usize>,
    next_name: Option<String>,
    input_shape: Shape,
    error: Option<GraphError>,
}

impl NetBuilder {
    /// `input_shape` is per sample: `[C, H, W]` or `[features]`.
    pub fn new(name: &str, input_shape: &[usize]) -> Self {
        NetBuilder {
            name: name.to_string(),
            nodes: Vec::new(),
            shapes: Vec::new(),
            scope: Vec::new(),
            counters: HashMap::new(),
            next_name: None,
            input_shape: Shape(input_shape.to_vec()),
            error: None,
        }
    }

    /// The network input (call once).
    pub fn input(&mut self) -> T {
        let shape = self.input_shape.0.clone();
        self.named("input").push(Op::Input { shape }, &[])
    }

    /// Run `body` with `name` appended to the scope path (`layer1` then `0` gives `layer1.0`).
    pub fn scope<R>(&mut self, name: impl ToString, body: impl FnOnce(&mut Self) -> R) -> R {
        self.scope.push(name.to_string());
        let out = body(self);
        self.scope.pop();
        out
    }

    /// Give the next node this name (inside the current scope) instead of a counted one.
    pub fn named(&mut self, name: &str) -> &mut Self {
        self.next_name = Some(name.to_string());
        self
    }

    pub fn shape(&self, x: T) -> &Shape {
        &self.shapes[x.0]
    }

    pub fn channels(&self, x: T) -> usize {
        self.shapes[x.0].channels()
    }

    fn full_name(&mut self, stem: &'static str) -> String {
        let prefix = self.scope.join(".");
        let local = match self.next_name.take() {
            Some(n) => n,
            None => {
                let count = self.counters.entry((prefix.clone(), stem)).or_insert(0);
                *count += 1;
                format!("{stem}{count}")
            }
        };
        if prefix.is_empty() {
            local
        } else {
            format!("{prefix}.{local}")
        }
    }

    /// Add a node. On a shape error the first error is kept, the node is still added
    /// (with the first input's shape) so that building can go on without panicking.
    pub fn push(&mut self, op: Op, inputs: &[T]) -> T {
        let name = self.full_name(op.name_stem());
        let shapes: Vec<&Shape> = inputs.iter().map(|t| &self.shapes[t.0]).collect();
        let shape = match infer_shape(&op, &shapes) {
            Ok(s) => s,
            Err(msg) => {
                if self.error.is_none() {
                    self.error = Some(GraphError::new(format!("nodes[{}]", self.nodes.len()), Some(&name), msg));
                }
                shapes.first().map(|s| (*s).clone()).unwrap_or_default()
            }
        };
        let input_names = inputs.iter().map(|t| self.nodes[t.0].name.clone()).collect();
        self.nodes.push(RawNode { name, op, inputs: input_names });
        self.shapes.push(shape);
        T(self.nodes.len() - 1)
    }

    pub fn conv(&mut self, x: T, spec: ConvSpec) -> T {
        let input = &self.shapes[x.0];
        let groups = spec.groups.unwrap_or_else(|| input.channels().max(1));
        let padding = resolve_pad(spec.pad, input, spec.kernel, spec.stride, spec.dilation);
        let op = Op::Conv2d(Conv2d {
            out_channels: spec.out_channels,
            kernel: spec.kernel,
            stride: spec.stride,
            dilation: spec.dilation,
            padding,
            groups,
            bias: spec.bias,
        });
        self.push(op, &[x])
    }

    pub fn bn(&mut self, x: T) -> T {
        self.push(Op::BatchNorm { eps: 1e-5 }, &[x])
    }

    pub fn bn_eps(&mut self, x: T, eps: f64) -> T {
        self.push(Op::BatchNorm { eps }, &[x])
    }

    pub fn relu(&mut self, x: T) -> T {
        self.push(Op::Relu, &[x])
    }
    pub fn relu6(&mut self, x: T) -> T {
        self.push(Op::Relu6, &[x])
    }
    pub fn sigmoid(&mut self, x: T) -> T {
        self.push(Op::Sigmoid, &[x])
    }
    pub fn tanh(&mut self, x: T) -> T {
        self.push(Op::Tanh, &[x])
    }
    pub fn silu(&mut self, x: T) -> T {
        self.push(Op::Silu, &[x])
    }
    pub fn hard_swish(&mut self, x: T) -> T {
        self.push(Op::HardSwish, &[x])
    }
    pub fn hard_sigmoid(&mut self, x: T) -> T {
        self.push(Op::HardSigmoid, &[x])
    }
    pub fn gelu(&mut self, x: T) -> T {
        self.push(Op::Gelu, &[x])
    }

    /// Apply an activation op given as a value (for blocks parameterised by activation).
    pub fn act(&mut self, x: T, activation: &Op) -> T {
        self.push(activation.clone(), &[x])
    }

    pub fn max_pool(&mut self, x: T, spec: PoolSpec) -> T {
        let op = Op::MaxPool2d(self.pool_attrs(x, spec));
        self.push(op, &[x])
    }

    pub fn avg_pool(&mut self, x: T, spec: PoolSpec) -> T {
        let op = Op::AvgPool2d(self.pool_attrs(x, spec));
        self.push(op, &[x])
    }

    fn pool_attrs(&self, x: T, spec: PoolSpec) -> Pool2d {
        let padding = resolve_pad(spec.pad, &self.shapes[x.0], spec.kernel, spec.stride, [1, 1]);
        Pool2d {
            kernel: spec.kernel,
            stride: spec.stride,
            padding,
            ceil_mode: spec.ceil_mode,
            count_include_pad: spec.count_include_pad,
        }
    }

    pub fn global_avg_pool(&mut self, x: T) -> T {
        self.push(Op::GlobalAvgPool, &[x])
    }

    pub fn lrn(&mut self, x: T, size: usize, alpha: f64, beta: f64, k: f64) -> T {
        self.push(Op::Lrn { size, alpha, beta, k }, &[x])
    }

    pub fn add(&mut self, a: T, b: T) -> T {
        self.push(Op::Add, &[a, b])
    }

    pub fn add_all(&mut self, xs: &[T]) -> T {
        match xs {
            [only] => *only,
            _ => self.push(Op::Add, xs),
        }
    }

    pub fn mul(&mut self, a: T, b: T) -> T {
        self.push(Op::Mul, &[a, b])
    }

    pub fn scale(&mut self, x: T, factor: f64) -> T {
        self.push(Op::Scale { factor }, &[x])
    }

    /// Concatenate along channels; a single input is passed through unchanged.
    pub fn cat(&mut self, xs: &[T]) -> T {
        match xs {
            [only] => *only,
            _ => self.push(Op::Concat { axis: 1 }, xs),
        }
    }

    pub fn channel_shuffle(&mut self, x: T, groups: usize) -> T {
        self.push(Op::ChannelShuffle { groups }, &[x])
    }

    /// Channels `start..end`.
    pub fn channel_slice(&mut self, x: T, start: usize, end: usize) -> T {
        self.push(Op::ChannelSlice { start, end }, &[x])
    }

    pub fn flatten(&mut self, x: T) -> T {
        self.push(Op::Flatten, &[x])
    }

    pub fn linear(&mut self, x: T, out_features: usize) -> T {
        self.push(Op::Linear { out_features, bias: true }, &[x])
    }

    pub fn linear_no_bias(&mut self, x: T, out_features: usize) -> T {
        self.push(Op::Linear { out_features, bias: false }, &[x])
    }

    pub fn dropout(&mut self, x: T, p: f64) -> T {
        self.push(Op::Dropout { p }, &[x])
    }

    pub fn softmax(&mut self, x: T) -> T {
        self.push(Op::Softmax, &[x])
    }

    /// Validate and return the net, with `output` as its only output.
    pub fn finish(self, output: T) -> Result<Net, GraphError> {
        self.finish_many(&[output])
    }

    pub fn finish_many(self, outputs: &[T]) -> Result<Net, GraphError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let names = outputs.iter().map(|t| self.nodes[t.0].name.clone()).collect();
        Net::from_raw(&self.name, self.nodes, Some(names), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_scopes_and_counters() {
        let mut g = NetBuilder::new("t", &[3, 8, 8]);
        let x = g.input();
        let y = g.scope("layer1", |g| {
            g.scope(0, |g| {
                let a = g.conv(x, conv(4, 3).pad(1));
                let b = g.conv(a, conv(4, 3).pad(1));
                g.add(a, b)
            })
        });
        let y = g.named("head").global_avg_pool(y);
        let net = g.finish(y).unwrap();
        let names: Vec<&str> = net.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["input", "layer1.0.conv1", "layer1.0.conv2", "layer1.0.add1", "head"]);
    }

    #[test]
    fn same_padding_resolves_against_the_input() {
        let mut g = NetBuilder::new("t", &[3, 14, 14]);
        let x = g.input();
        let y = g.conv(x, conv(8, 4).same());
        let net = g.finish(y).unwrap();
        let Op::Conv2d(c) = &net.nodes[1].op else { panic!() };
        assert_eq!(c.padding, Padding { top: 1, bottom: 2, left: 1, right: 2 });
        assert_eq!(net.nodes[1].shape, Shape::chw(8, 14, 14));
    }

    #[test]
    fn depthwise_takes_the_input_channels() {
        let mut g = NetBuilder::new("t", &[32, 8, 8]);
        let x = g.input();
        let y = g.conv(x, conv(32, 3).pad(1).depthwise());
        let net = g.finish(y).unwrap();
        let Op::Conv2d(c) = &net.nodes[1].op else { panic!() };
        assert_eq!(c.groups, 32);
    }

    #[test]
    fn the_first_shape_error_is_returned_not_panicked() {
        let mut g = NetBuilder::new("t", &[3, 8, 8]);
        let x = g.input();
        let a = g.conv(x, conv(4, 3));
        let bad = g.add(x, a); // 3x8x8 + 4x6x6
        let y = g.linear(bad, 10); // also wrong (not flat), but the first error wins
        let err = g.finish(y).unwrap_err();
        assert_eq!(err.node.as_deref(), Some("add1"));
        assert!(err.message.contains("3x8x8") && err.message.contains("4x6x6"), "{err}");
    }
}
