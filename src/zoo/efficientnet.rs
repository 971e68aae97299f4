//! EfficientNet-B0 (Tan & Le 2019, table 1), as torchvision's `efficientnet_b0`.
//!
//! | stage | operator               | resolution | channels | layers |
//! |-------|------------------------|------------|----------|--------|
//! | 1     | conv 3x3, /2           | 224        | 32       | 1      |
//! | 2     | MBConv1, k3x3          | 112        | 16       | 1      |
//! | 3     | MBConv6, k3x3, /2      | 112        | 24       | 2      |
//! | 4     | MBConv6, k5x5, /2      | 56         | 40       | 2      |
//! | 5     | MBConv6, k3x3, /2      | 28         | 80       | 3      |
//! | 6     | MBConv6, k5x5          | 14         | 112      | 3      |
//! | 7     | MBConv6, k5x5, /2      | 14         | 192      | 4      |
//! | 8     | MBConv6, k3x3          | 7          | 320      | 1      |
//! | 9     | conv 1x1, pool, fc     | 7          | 1280     | 1      |
//!
//! MBConv`t`: 1x1 expansion to `t` x the input (absent when `t` = 1), k x k depthwise,
//! squeeze-excite (squeeze to `max(1, block input / 4)`, SiLU, sigmoid gate), linear 1x1
//! projection, residual where stride is 1 and channels match. SiLU everywhere else;
//! the head ends in dropout 0.2 and the 1000-way fc. Stochastic depth is the identity at
//! inference and is left out.
//!
//! BN eps is PyTorch's default 1e-5: torchvision builds B0-B4 with plain `BatchNorm2d`
//! (only B5-B7 and V2 pass eps 1e-3, the TensorFlow value).
//!
//! Keras publishes 5,330,571 parameters: ours, plus BN's running mean and variance
//! (2 x 21,008 = 42,016), plus 7 for its input `Normalization` layer (mean 3, variance
//! 3, count 1): 5,288,548 + 42,016 + 7 = 5,330,571.

use super::blocks::{conv_bn_act, squeeze_excite};
use super::sources::*;
use super::{published, ZooModel};
use crate::graph::{conv, GraphError, Net, NetBuilder, Op, Shape, T};

/// MBConv stages: `(t, k, s, c, n)` = expansion, kernel, first stride, output channels,
/// layers.
#[rustfmt::skip]
const B0: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
];

const EPS: f64 = 1e-5;
const SILU: Op = Op::Silu;

fn mbconv(g: &mut NetBuilder, x: T, t: usize, k: usize, stride: usize, out: usize) -> T {
    let cin = g.channels(x);
    let expanded = cin * t;
    let mut y = x;
    if expanded != cin {
        y = conv_bn_act(g, y, conv(expanded, 1), EPS, &SILU);
    }
    y = conv_bn_act(g, y, conv(expanded, k).stride(stride).pad_half().depthwise(), EPS, &SILU);
    y = squeeze_excite(g, y, (cin / 4).max(1), &SILU, &Op::Sigmoid);
    y = g.conv(y, conv(out, 1).no_bias());
    y = g.bn_eps(y, EPS);
    if stride == 1 && cin == out {
        g.add(x, y)
    } else {
        y
    }
}

fn efficientnet_b0(input: &Shape) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new("efficientnet_b0", input.dims());
    let x = g.input();
    let mut x = g.scope("stem", |g| conv_bn_act(g, x, conv(32, 3).stride(2).pad(1), EPS, &SILU));
    for (stage, &(t, k, s, c, n)) in B0.iter().enumerate() {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            x = g.scope(format!("blocks.{stage}.{i}"), |g| mbconv(g, x, t, k, stride, c));
        }
    }
    let head = 4 * g.channels(x);
    let x = g.scope("head", |g| conv_bn_act(g, x, conv(head, 1), EPS, &SILU));
    let x = g.global_avg_pool(x);
    let x = g.flatten(x);
    let x = g.dropout(x, 0.2);
    let x = g.named("fc").linear(x, 1000);
    g.finish(x)
}

pub fn models() -> Vec<ZooModel> {
    vec![ZooModel {
        name: "efficientnet_b0",
        aliases: &[],
        family: "efficientnet",
        input: &[3, 224, 224],
        summary: "EfficientNet-B0 = torchvision `efficientnet_b0` (BN eps 1e-5)",
        published: published(TORCHVISION, 5_288_548, 0.386),
        build: Some(efficientnet_b0),
    }]
}
