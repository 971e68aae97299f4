//! The operations of the IR and their attributes.
//!
//! Shapes are per sample (the batch is symbolic): `[C, H, W]` for feature maps,
//! `[F]` for flat features. Axes in attributes count the batch as axis 0, as in
//! PyTorch's NCHW, so `axis = 1` is the channel axis.

use serde::{Deserialize, Serialize};

/// Explicit four-sided zero padding of the spatial axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Padding {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Padding {
    pub const ZERO: Padding = Padding { top: 0, bottom: 0, left: 0, right: 0 };

    pub fn symmetric(pad_h: usize, pad_w: usize) -> Padding {
        Padding { top: pad_h, bottom: pad_h, left: pad_w, right: pad_w }
    }

    /// TensorFlow `SAME` padding for one input size: the output is `ceil(in / stride)`,
    /// and an odd total goes after (an even kernel at stride 1 pads `(k-1)/2` before
    /// and the rest after, as synNet needs).
    pub fn tf_same(input_hw: [usize; 2], kernel: [usize; 2], stride: [usize; 2], dilation: [usize; 2]) -> Padding {
        let total = |i: usize| {
            let (n, k, s, d) = (input_hw[i], kernel[i], stride[i].max(1), dilation[i]);
            let effective_k = (k.max(1) - 1) * d + 1;
            let out = n.div_ceil(s);
            ((out.saturating_sub(1)) * s + effective_k).saturating_sub(n)
        };
        let (th, tw) = (total(0), total(1));
        Padding { top: th / 2, bottom: th - th / 2, left: tw / 2, right: tw - tw / 2 }
    }

    /// TensorFlow `VALID` padding: none.
    pub fn tf_valid() -> Padding {
        Padding::ZERO
    }

    pub fn is_symmetric(&self) -> bool {
        self.top == self.bottom && self.left == self.right
    }
}

impl std::fmt::Display for Padding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.top == self.bottom && self.left == self.right && self.top == self.left {
            write!(f, "{}", self.top)
        } else {
            write!(f, "(top {}, bottom {}, left {}, right {})", self.top, self.bottom, self.left, self.right)
        }
    }
}

fn one() -> usize {
    1
}
fn ones() -> [usize; 2] {
    [1, 1]
}
fn yes() -> bool {
    true
}
fn axis_channels() -> usize {
    1
}
fn bn_eps_default() -> f64 {
    1e-5
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2d {
    pub out_channels: usize,
    /// `[height, width]`
    pub kernel: [usize; 2],
    #[serde(default = "ones")]
    pub stride: [usize; 2],
    #[serde(default = "ones")]
    pub dilation: [usize; 2],
    #[serde(default)]
    pub padding: Padding,
    #[serde(default = "one")]
    pub groups: usize,
    #[serde(default = "yes")]
    pub bias: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    #[serde(default)]
    pub padding: Padding,
    /// Round the output size up, as Caffe and PyTorch's `ceil_mode=True` do.
    #[serde(default)]
    pub ceil_mode: bool,
    /// Average pooling only: divide by the full window, padding included (PyTorch's
    /// default) or by the valid elements only (TensorFlow's `SAME` average pool).
    #[serde(default = "yes")]
    pub count_include_pad: bool,
}

/// The operations. Each serialises as `{"type": "<name>", ...attributes}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// The network input; `shape` is per sample (`[C, H, W]` or `[F]`).
    Input {
        shape: Vec<usize>,
    },
    Conv2d(Conv2d),
    /// Batch normalisation over channels (inference form: a per-channel affine map).
    BatchNorm {
        #[serde(default = "bn_eps_default")]
        eps: f64,
    },
    Relu,
    Relu6,
    Sigmoid,
    Tanh,
    /// x * sigmoid(x), also called swish.
    Silu,
    HardSwish,
    HardSigmoid,
    /// Exact (erf) GELU.
    Gelu,
    MaxPool2d(Pool2d),
    AvgPool2d(Pool2d),
    /// Average over all spatial positions: `[C, H, W] -> [C, 1, 1]`.
    GlobalAvgPool,
    /// Local response normalisation across channels (AlexNet / GoogLeNet), Caffe/PyTorch form:
    /// `x / (k + alpha/size * sum(x^2))^beta`.
    Lrn {
        size: usize,
        alpha: f64,
        beta: f64,
        #[serde(default = "lrn_k_default")]
        k: f64,
    },
    /// Elementwise sum of two or more inputs of the same shape.
    Add,
    /// Elementwise product of two inputs, broadcasting size-1 axes (squeeze-excite).
    Mul,
    /// Multiply by a constant (residual scaling in Inception-ResNet).
    Scale {
        factor: f64,
    },
    /// Concatenate along `axis` (1 = channels).
    Concat {
        #[serde(default = "axis_channels")]
        axis: usize,
    },
    /// ShuffleNet's channel shuffle.
    ChannelShuffle {
        groups: usize,
    },
    /// Channels `start..end` of the input (ShuffleNet v2's channel split).
    ChannelSlice {
        start: usize,
        end: usize,
    },
    /// `[C, H, W] -> [C*H*W]`.
    Flatten,
    /// Fully connected layer on flat features.
    Linear {
        out_features: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    /// Identity at inference; recorded so training and counts match the source model.
    Dropout {
        p: f64,
    },
    /// Softmax over axis 1.
    Softmax,
}

fn lrn_k_default() -> f64 {
    1.0
}

/// Families of ops, for tables and the workload characteristics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpClass {
    Conv,
    Linear,
    Norm,
    Activation,
    Pool,
    Elementwise,
    Shape,
    Other,
}

impl Op {
    /// The name used in model files and tables.
    pub fn type_name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Conv2d(_) => "conv2d",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Relu6 => "relu6",
            Op::Sigmoid => "sigmoid",
            Op::Tanh => "tanh",
            Op::Silu => "silu",
            Op::HardSwish => "hard_swish",
            Op::HardSigmoid => "hard_sigmoid",
            Op::Gelu => "gelu",
            Op::MaxPool2d(_) => "max_pool2d",
            Op::AvgPool2d(_) => "avg_pool2d",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Lrn { .. } => "lrn",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Scale { .. } => "scale",
            Op::Concat { .. } => "concat",
            Op::ChannelShuffle { .. } => "channel_shuffle",
            Op::ChannelSlice { .. } => "channel_slice",
            Op::Flatten => "flatten",
            Op::Linear { .. } => "linear",
            Op::Dropout { .. } => "dropout",
            Op::Softmax => "softmax",
        }
    }

    /// Every op type name, for error messages that say what would be valid.
    pub const TYPE_NAMES: &'static [&'static str] = &[
        "input",
        "conv2d",
        "batch_norm",
        "relu",
        "relu6",
        "sigmoid",
        "tanh",
        "silu",
        "hard_swish",
        "hard_sigmoid",
        "gelu",
        "max_pool2d",
        "avg_pool2d",
        "global_avg_pool",
        "lrn",
        "add",
        "mul",
        "scale",
        "concat",
        "channel_shuffle",
        "channel_slice",
        "flatten",
        "linear",
        "dropout",
        "softmax",
    ];

    /// The short stem the builder uses to name nodes (`conv1`, `bn2`, `fc1`).
    pub fn name_stem(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Conv2d(_) => "conv",
            Op::BatchNorm { .. } => "bn",
            Op::MaxPool2d(_) => "maxpool",
            Op::AvgPool2d(_) => "avgpool",
            Op::GlobalAvgPool => "gap",
            Op::Concat { .. } => "cat",
            Op::ChannelShuffle { .. } => "shuffle",
            Op::ChannelSlice { .. } => "split",
            Op::Linear { .. } => "fc",
            other => other.type_name(),
        }
    }

    pub fn class(&self) -> OpClass {
        match self {
            Op::Conv2d(_) => OpClass::Conv,
            Op::Linear { .. } => OpClass::Linear,
            Op::BatchNorm { .. } | Op::Lrn { .. } | Op::Softmax => OpClass::Norm,
            Op::Relu | Op::Relu6 | Op::Sigmoid | Op::Tanh | Op::Silu | Op::HardSwish | Op::HardSigmoid | Op::Gelu => {
                OpClass::Activation
            }
            Op::MaxPool2d(_) | Op::AvgPool2d(_) | Op::GlobalAvgPool => OpClass::Pool,
            Op::Add | Op::Mul | Op::Scale { .. } => OpClass::Elementwise,
            Op::Concat { .. }
            | Op::ChannelShuffle { .. }
            | Op::ChannelSlice { .. }
            | Op::Flatten
            | Op::Input { .. } => OpClass::Shape,
            Op::Dropout { .. } => OpClass::Other,
        }
    }

    /// How many inputs the op takes: `(min, max)`.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Input { .. } => (0, 0),
            Op::Add | Op::Concat { .. } => (2, usize::MAX),
            Op::Mul => (2, 2),
            _ => (1, 1),
        }
    }

    pub fn is_activation(&self) -> bool {
        self.class() == OpClass::Activation
    }
}
