//! Attribute checks and shape inference, one op at a time.
//!
//! Both return plain messages; the caller adds where (node name, JSON path).

use super::op::{Conv2d, Op, Pool2d};
use super::shape::Shape;

/// Sizes beyond these are treated as mistakes, not models (they would overflow counts or
/// memory long before they ran).
pub mod limits {
    pub const MAX_CHANNELS: usize = 1 << 20;
    pub const MAX_SPATIAL: usize = 1 << 15;
    pub const MAX_KERNEL: usize = 1 << 10;
    pub const MAX_STRIDE: usize = 1 << 10;
    pub const MAX_ELEMENTS_PER_SAMPLE: u64 = 1 << 32;
    pub const MAX_LAYER_PARAMS: u64 = 1 << 34;
    /// Per sample; the largest layers of real CNNs do about 1e10.
    pub const MAX_LAYER_MACS: u64 = 1 << 42;
    /// Nodes in one net.
    pub const MAX_NODES: usize = 1 << 16;
}

/// An attribute problem: the field (relative to the op) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrError {
    pub field: &'static str,
    pub message: String,
}

fn attr(field: &'static str, message: impl Into<String>) -> AttrError {
    AttrError { field, message: message.into() }
}

fn check_pair(field: &'static str, v: [usize; 2], max: usize) -> Result<(), AttrError> {
    if v[0] == 0 || v[1] == 0 {
        return Err(attr(field, format!("{v:?} has a zero; each must be at least 1")));
    }
    if v[0] > max || v[1] > max {
        return Err(attr(field, format!("{v:?} is absurdly large (limit {max})")));
    }
    Ok(())
}

fn check_padding(p: &super::op::Padding) -> Result<(), AttrError> {
    let max = limits::MAX_SPATIAL;
    if [p.top, p.bottom, p.left, p.right].iter().any(|&v| v > max) {
        return Err(attr("padding", format!("{p} is absurdly large (limit {max})")));
    }
    Ok(())
}

fn check_fraction(field: &'static str, v: f64, lo: f64, hi: f64) -> Result<(), AttrError> {
    if !(v.is_finite() && v >= lo && v < hi) {
        return Err(attr(field, format!("{v} is out of range; expected {lo} <= {field} < {hi}")));
    }
    Ok(())
}

/// Checks of the attributes alone (no shapes involved).
pub fn check_attributes(op: &Op) -> Result<(), AttrError> {
    match op {
        Op::Input { shape } => {
            if !(shape.len() == 1 || shape.len() == 3) {
                return Err(attr(
                    "shape",
                    format!(
                        "{shape:?} has {} dimensions; expected [C, H, W] or [features] (per sample, no batch)",
                        shape.len()
                    ),
                ));
            }
            if shape.contains(&0) {
                return Err(attr("shape", format!("{shape:?} has a zero dimension")));
            }
            let limit = if shape.len() == 1 { limits::MAX_CHANNELS * 64 } else { limits::MAX_SPATIAL };
            if shape.iter().skip(1).any(|&d| d > limit) || shape[0] > limits::MAX_CHANNELS * 64 {
                return Err(attr("shape", format!("{shape:?} is absurdly large")));
            }
            Ok(())
        }
        Op::Conv2d(c) => check_conv(c),
        Op::MaxPool2d(p) | Op::AvgPool2d(p) => check_pool(p),
        Op::BatchNorm { eps } => {
            if !(eps.is_finite() && *eps > 0.0 && *eps < 1.0) {
                return Err(attr("eps", format!("{eps} is out of range; expected 0 < eps < 1")));
            }
            Ok(())
        }
        Op::Lrn { size, alpha, beta, k } => {
            if *size == 0 || *size > 1024 {
                return Err(attr("size", format!("{size} is out of range; expected 1..=1024")));
            }
            check_fraction("alpha", *alpha, 0.0, 1e6)?;
            check_fraction("beta", *beta, 0.0, 1e6)?;
            check_fraction("k", *k, 0.0, 1e6)
        }
        Op::Scale { factor } => {
            if !factor.is_finite() {
                return Err(attr("factor", format!("{factor} is not a finite number")));
            }
            Ok(())
        }
        Op::Dropout { p } => check_fraction("p", *p, 0.0, 1.0),
        Op::Concat { axis } => {
            if *axis == 0 {
                return Err(attr("axis", "0 is the batch axis; use 1 for channels"));
            }
            Ok(())
        }
        Op::ChannelShuffle { groups } => {
            if *groups == 0 {
                return Err(attr("groups", "0 groups; expected at least 1"));
            }
            Ok(())
        }
        Op::ChannelSlice { start, end } => {
            if start >= end {
                return Err(attr("end", format!("the slice {start}..{end} is empty; expected start < end")));
            }
            Ok(())
        }
        Op::Linear { out_features, .. } => {
            if *out_features == 0 || *out_features > limits::MAX_CHANNELS * 64 {
                return Err(attr(
                    "out_features",
                    format!("{out_features} is out of range; expected 1..={}", limits::MAX_CHANNELS * 64),
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_conv(c: &Conv2d) -> Result<(), AttrError> {
    if c.out_channels == 0 || c.out_channels > limits::MAX_CHANNELS {
        return Err(attr(
            "out_channels",
            format!("{} is out of range; expected 1..={}", c.out_channels, limits::MAX_CHANNELS),
        ));
    }
    check_pair("kernel", c.kernel, limits::MAX_KERNEL)?;
    check_pair("stride", c.stride, limits::MAX_STRIDE)?;
    check_pair("dilation", c.dilation, limits::MAX_KERNEL)?;
    check_padding(&c.padding)?;
    if c.groups == 0 {
        return Err(attr("groups", "0 groups; expected at least 1"));
    }
    if !c.out_channels.is_multiple_of(c.groups) {
        return Err(attr("groups", format!("out_channels {} is not divisible by groups {}", c.out_channels, c.groups)));
    }
    Ok(())
}

fn check_pool(p: &Pool2d) -> Result<(), AttrError> {
    check_pair("kernel", p.kernel, limits::MAX_KERNEL)?;
    check_pair("stride", p.stride, limits::MAX_STRIDE)?;
    check_padding(&p.padding)?;
    if p.padding.top.max(p.padding.bottom) >= p.kernel[0] || p.padding.left.max(p.padding.right) >= p.kernel[1] {
        return Err(attr(
            "padding",
            format!("{:?} is not smaller than the kernel {:?}: a window would see only padding", p.padding, p.kernel),
        ));
    }
    Ok(())
}

/// Output length of a sliding window along one axis, or `None` if the window does not fit.
fn window_out(
    n: usize,
    pad_before: usize,
    pad_after: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    ceil: bool,
) -> Option<usize> {
    let padded = n + pad_before + pad_after;
    let effective_k = (k - 1) * dilation + 1;
    if padded < effective_k {
        return None;
    }
    let span = padded - effective_k;
    let mut out = if ceil { span.div_ceil(stride) + 1 } else { span / stride + 1 };
    // PyTorch/Caffe rule: the last window must start inside the input or its leading padding.
    if ceil && (out - 1) * stride >= n + pad_before {
        out -= 1;
    }
    Some(out)
}

fn feature_map(s: &Shape, what: &str) -> Result<(usize, usize, usize), String> {
    match s.dims() {
        [c, h, w] => Ok((*c, *h, *w)),
        _ => Err(format!("{what} expects a feature map [C, H, W], got [{}]", s)),
    }
}

fn sliding_hw(
    op_name: &str,
    input: &Shape,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: &super::op::Padding,
    ceil: bool,
) -> Result<[usize; 2], String> {
    let (_, h, w) = feature_map(input, op_name)?;
    let oh = window_out(h, pad.top, pad.bottom, kernel[0], stride[0], dilation[0], ceil);
    let ow = window_out(w, pad.left, pad.right, kernel[1], stride[1], dilation[1], ceil);
    match (oh, ow) {
        (Some(oh), Some(ow)) => Ok([oh, ow]),
        _ => Err(format!(
            "{op_name} kernel {}x{}{} does not fit the input {}x{} padded by {}",
            kernel[0],
            kernel[1],
            if dilation == [1, 1] { String::new() } else { format!(" (dilation {}x{})", dilation[0], dilation[1]) },
            h,
            w,
            pad
        )),
    }
}

fn broadcast(a: &Shape, b: &Shape) -> Option<Shape> {
    if a.rank() != b.rank() {
        return None;
    }
    let dims: Option<Vec<usize>> = a
        .dims()
        .iter()
        .zip(b.dims())
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect();
    dims.map(Shape)
}

/// The output shape of `op` applied to `inputs`, or what is wrong.
pub fn infer_shape(op: &Op, inputs: &[&Shape]) -> Result<Shape, String> {
    let (min, max) = op.arity();
    if inputs.len() < min || inputs.len() > max {
        let expected = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(format!("{} takes {expected} inputs, got {}", op.type_name(), inputs.len()));
    }
    let x = inputs.first().copied();
    let out = match op {
        Op::Input { shape } => Shape(shape.clone()),
        Op::Conv2d(c) => {
            let x = x.unwrap();
            let (cin, _, _) = feature_map(x, "conv2d")?;
            if cin % c.groups != 0 {
                return Err(format!("conv2d input has {cin} channels, not divisible by groups {}", c.groups));
            }
            let [oh, ow] = sliding_hw("conv2d", x, c.kernel, c.stride, c.dilation, &c.padding, false)?;
            let per_output = (cin / c.groups) as u128 * c.kernel[0] as u128 * c.kernel[1] as u128;
            let params = per_output * c.out_channels as u128;
            if params > limits::MAX_LAYER_PARAMS as u128 {
                return Err(format!(
                    "conv2d would have {params} weights, absurdly many (limit {})",
                    limits::MAX_LAYER_PARAMS
                ));
            }
            let macs = per_output * (c.out_channels * oh * ow) as u128;
            if macs > limits::MAX_LAYER_MACS as u128 {
                return Err(format!(
                    "conv2d would do {macs} multiply-accumulates per sample, absurdly many (limit {})",
                    limits::MAX_LAYER_MACS
                ));
            }
            Shape::chw(c.out_channels, oh, ow)
        }
        Op::MaxPool2d(p) | Op::AvgPool2d(p) => {
            let x = x.unwrap();
            let (c, _, _) = feature_map(x, op.type_name())?;
            let [oh, ow] = sliding_hw(op.type_name(), x, p.kernel, p.stride, [1, 1], &p.padding, p.ceil_mode)?;
            Shape::chw(c, oh, ow)
        }
        Op::GlobalAvgPool => {
            let (c, _, _) = feature_map(x.unwrap(), "global_avg_pool")?;
            Shape::chw(c, 1, 1)
        }
        Op::BatchNorm { .. } | Op::Lrn { .. } => {
            let x = x.unwrap();
            if matches!(op, Op::Lrn { .. }) {
                feature_map(x, "lrn")?;
            }
            x.clone()
        }
        Op::Relu
        | Op::Relu6
        | Op::Sigmoid
        | Op::Tanh
        | Op::Silu
        | Op::HardSwish
        | Op::HardSigmoid
        | Op::Gelu
        | Op::Scale { .. }
        | Op::Dropout { .. }
        | Op::Softmax => x.unwrap().clone(),
        Op::Add => {
            let first = inputs[0];
            for (i, other) in inputs.iter().enumerate().skip(1) {
                if *other != first {
                    return Err(format!("add needs inputs of one shape: input 0 is [{first}], input {i} is [{other}]"));
                }
            }
            first.clone()
        }
        Op::Mul => broadcast(inputs[0], inputs[1]).ok_or_else(|| {
            format!("mul cannot broadcast [{}] with [{}]: each axis must match or be 1", inputs[0], inputs[1])
        })?,
        Op::Concat { axis } => {
            let first = inputs[0];
            let a = axis - 1; // per-sample axis
            if a >= first.rank() {
                return Err(format!("concat axis {axis} is out of range for [{first}] (batch is axis 0)"));
            }
            let mut dims = first.0.clone();
            for (i, other) in inputs.iter().enumerate().skip(1) {
                let same_elsewhere = other.rank() == first.rank()
                    && other.dims().iter().zip(first.dims()).enumerate().all(|(d, (p, q))| d == a || p == q);
                if !same_elsewhere {
                    return Err(format!(
                        "concat along axis {axis} needs the other axes equal: input 0 is [{first}], input {i} is [{other}]"
                    ));
                }
                dims[a] += other.0[a];
            }
            Shape(dims)
        }
        Op::ChannelShuffle { groups } => {
            let x = x.unwrap();
            if x.channels() % groups != 0 {
                return Err(format!(
                    "channel_shuffle: {} channels are not divisible into {groups} groups",
                    x.channels()
                ));
            }
            x.clone()
        }
        Op::ChannelSlice { start, end } => {
            let x = x.unwrap();
            if *end > x.channels() {
                return Err(format!("channel_slice {start}..{end} is beyond the input's {} channels", x.channels()));
            }
            let mut dims = x.0.clone();
            dims[0] = end - start;
            Shape(dims)
        }
        Op::Flatten => Shape::flat(x.unwrap().elements() as usize),
        Op::Linear { out_features, .. } => {
            let x = x.unwrap();
            if x.rank() != 1 {
                return Err(format!(
                    "linear expects flat features [F], got [{x}]; insert a flatten or global_avg_pool + flatten first"
                ));
            }
            let params = x.elements() as u128 * *out_features as u128;
            if params > limits::MAX_LAYER_PARAMS as u128 {
                return Err(format!("linear would have {params} weights, absurdly many"));
            }
            Shape::flat(*out_features)
        }
    };
    if out.elements() > limits::MAX_ELEMENTS_PER_SAMPLE {
        return Err(format!(
            "output [{out}] has {} elements per sample, absurdly many (limit {})",
            out.elements(),
            limits::MAX_ELEMENTS_PER_SAMPLE
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::op::Padding;

    fn conv(k: usize, s: usize, pad: Padding) -> Op {
        Op::Conv2d(Conv2d {
            out_channels: 8,
            kernel: [k, k],
            stride: [s, s],
            dilation: [1, 1],
            padding: pad,
            groups: 1,
            bias: false,
        })
    }

    #[test]
    fn conv_output_sizes_follow_pytorch() {
        let x = Shape::chw(3, 224, 224);
        assert_eq!(infer_shape(&conv(7, 2, Padding::symmetric(3, 3)), &[&x]).unwrap(), Shape::chw(8, 112, 112));
        assert_eq!(infer_shape(&conv(3, 1, Padding::ZERO), &[&x]).unwrap(), Shape::chw(8, 222, 222));
        // AlexNet conv1 at 227: (227 - 11) / 4 + 1 = 55
        let x = Shape::chw(3, 227, 227);
        assert_eq!(infer_shape(&conv(11, 4, Padding::ZERO), &[&x]).unwrap(), Shape::chw(8, 55, 55));
    }

    #[test]
    fn tf_same_padding_is_asymmetric_for_even_kernels() {
        let p = Padding::tf_same([14, 14], [4, 4], [1, 1], [1, 1]);
        assert_eq!(p, Padding { top: 1, bottom: 2, left: 1, right: 2 });
        let p = Padding::tf_same([7, 7], [2, 2], [1, 1], [1, 1]);
        assert_eq!(p, Padding { top: 0, bottom: 1, left: 0, right: 1 });
        // stride 2 on an even input: TF pads only after
        let p = Padding::tf_same([224, 224], [3, 3], [2, 2], [1, 1]);
        assert_eq!(p, Padding { top: 0, bottom: 1, left: 0, right: 1 });
        let x = Shape::chw(3, 14, 14);
        let out = infer_shape(&conv(4, 1, Padding::tf_same([14, 14], [4, 4], [1, 1], [1, 1])), &[&x]).unwrap();
        assert_eq!(out, Shape::chw(8, 14, 14));
    }

    #[test]
    fn ceil_mode_pools_match_pytorch() {
        let pool = |k: usize, s: usize, pad: usize, ceil: bool| {
            Op::MaxPool2d(Pool2d {
                kernel: [k, k],
                stride: [s, s],
                padding: Padding::symmetric(pad, pad),
                ceil_mode: ceil,
                count_include_pad: true,
            })
        };
        // GoogLeNet: 112 -> 56 with 3/2 ceil; squeezenet 111 -> 55
        assert_eq!(infer_shape(&pool(3, 2, 0, true), &[&Shape::chw(64, 112, 112)]).unwrap(), Shape::chw(64, 56, 56));
        assert_eq!(infer_shape(&pool(3, 2, 0, false), &[&Shape::chw(64, 112, 112)]).unwrap(), Shape::chw(64, 55, 55));
        assert_eq!(infer_shape(&pool(3, 2, 0, true), &[&Shape::chw(96, 111, 111)]).unwrap(), Shape::chw(96, 55, 55));
        // the last window may not start in the trailing padding: 5 -> 3 with k2 s2 p1 ceil
        assert_eq!(infer_shape(&pool(2, 2, 1, true), &[&Shape::chw(1, 5, 5)]).unwrap(), Shape::chw(1, 3, 3));
    }

    #[test]
    fn errors_name_the_shapes() {
        let e = infer_shape(&Op::Add, &[&Shape::chw(64, 56, 56), &Shape::chw(256, 56, 56)]).unwrap_err();
        assert!(e.contains("64x56x56") && e.contains("256x56x56"), "{e}");
        let e = infer_shape(&Op::Linear { out_features: 10, bias: true }, &[&Shape::chw(512, 7, 7)]).unwrap_err();
        assert!(e.contains("flatten"), "{e}");
        let e = infer_shape(&conv(7, 1, Padding::ZERO), &[&Shape::chw(3, 5, 5)]).unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
        let e = infer_shape(&Op::Mul, &[&Shape::chw(64, 7, 7), &Shape::chw(32, 1, 1)]).unwrap_err();
        assert!(e.contains("broadcast"), "{e}");
    }

    #[test]
    fn mul_broadcasts_squeeze_excite() {
        let out = infer_shape(&Op::Mul, &[&Shape::chw(64, 7, 7), &Shape::chw(64, 1, 1)]).unwrap();
        assert_eq!(out, Shape::chw(64, 7, 7));
    }
}
