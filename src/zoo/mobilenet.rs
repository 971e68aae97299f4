//! MobileNet v1 (Howard et al. 2017), v2 (Sandler et al. 2018) and v3 (Howard et al. 2019).
//!
//! **v1**, as timm's `mobilenetv1_100` (= Keras `MobileNet`): a 3x3/2 conv to 32, then 13
//! depthwise-separable blocks (3x3 depthwise, BN, ReLU6; 1x1 pointwise, BN, ReLU6), the
//! first of each stage strided, global pool, 1000-way fc. No bias anywhere but the fc,
//! BN eps 1e-5.
//!
//! | c    | n | s |
//! |------|---|---|
//! | 64   | 1 | 1 |
//! | 128  | 2 | 2 |
//! | 256  | 2 | 2 |
//! | 512  | 6 | 2 |
//! | 1024 | 2 | 2 |
//!
//! **v2** (paper table 2), as torchvision: inverted residuals with expansion `t`, ReLU6,
//! a linear bottleneck, a residual where stride is 1 and channels match; stem 3x3/2 to
//! 32, head 1x1 to 1280, dropout 0.2, fc. BN eps 1e-5. Widths scale by `width_mult`
//! through `make_divisible(c * width, 8)`; the head widens only above 1.0.
//!
//! **v3** (paper tables 1 and 2), as torchvision: stem 3x3/2 to 16 with hard-swish; bneck
//! = optional 1x1 expansion, k x k depthwise, squeeze-excite (ReLU, hard-sigmoid gate,
//! squeeze `make_divisible(exp / 4, 8)`), linear 1x1 projection; head 1x1 to 576 / 960,
//! global pool, fc 1024 / 1280 with hard-swish, dropout 0.2, fc. BN eps 0.001.
//!
//! Keras publishes more parameters than we count: its totals include BN's running mean
//! and variance (2 per BN channel), which are buffers here. MobileNet: 4,231,976 +
//! 2 x 10,944 = 4,253,864. MobileNetV2: 3,504,872 + 2 x 17,056 = 3,538,984.

use super::blocks::{conv_bn_act, make_divisible, squeeze_excite};
use super::sources::*;
use super::{published, Family, ZooModel};
use crate::graph::{conv, GraphError, Net, NetBuilder, Op, Shape, T};

/// MobileNet v1 stages: `(c, n, s)` = output channels, blocks, stride of the first.
const V1: [(usize, usize, usize); 5] = [(64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 2)];

/// MobileNet v2 stages: `(t, c, n, s)` = expansion, output channels, blocks, first stride.
#[rustfmt::skip]
const V2: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

const SE: bool = true;
const NO: bool = false;
const RE: Op = Op::Relu;
const HS: Op = Op::HardSwish;

/// One bneck row: kernel, expansion size, output channels, squeeze-excite, nonlinearity,
/// stride (the input is the previous row's output).
type Bneck = (usize, usize, usize, bool, Op, usize);

/// MobileNetV3-Large, paper table 1.
#[rustfmt::skip]
const V3_LARGE: [Bneck; 15] = [
    (3, 16, 16, NO, RE, 1),
    (3, 64, 24, NO, RE, 2),
    (3, 72, 24, NO, RE, 1),
    (5, 72, 40, SE, RE, 2),
    (5, 120, 40, SE, RE, 1),
    (5, 120, 40, SE, RE, 1),
    (3, 240, 80, NO, HS, 2),
    (3, 200, 80, NO, HS, 1),
    (3, 184, 80, NO, HS, 1),
    (3, 184, 80, NO, HS, 1),
    (3, 480, 112, SE, HS, 1),
    (3, 672, 112, SE, HS, 1),
    (5, 672, 160, SE, HS, 2),
    (5, 960, 160, SE, HS, 1),
    (5, 960, 160, SE, HS, 1),
];

/// MobileNetV3-Small, paper table 2.
#[rustfmt::skip]
const V3_SMALL: [Bneck; 11] = [
    (3, 16, 16, SE, RE, 2),
    (3, 72, 24, NO, RE, 2),
    (3, 88, 24, NO, RE, 1),
    (5, 96, 40, SE, HS, 2),
    (5, 240, 40, SE, HS, 1),
    (5, 240, 40, SE, HS, 1),
    (5, 120, 48, SE, HS, 1),
    (5, 144, 48, SE, HS, 1),
    (5, 288, 96, SE, HS, 2),
    (5, 576, 96, SE, HS, 1),
    (5, 576, 96, SE, HS, 1),
];

const V1_V2_EPS: f64 = 1e-5;
const V3_EPS: f64 = 1e-3;

fn mobilenet_v1(input: &Shape) -> Result<Net, GraphError> {
    let relu6 = Op::Relu6;
    let mut g = NetBuilder::new("mobilenet_v1", input.dims());
    let x = g.input();
    let mut x = g.scope("stem", |g| conv_bn_act(g, x, conv(32, 3).stride(2).pad(1), V1_V2_EPS, &relu6));
    for (stage, &(c, n, s)) in V1.iter().enumerate() {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            x = g.scope(format!("blocks.{stage}.{i}"), |g| {
                let cin = g.channels(x);
                let x = conv_bn_act(g, x, conv(cin, 3).stride(stride).pad(1).depthwise(), V1_V2_EPS, &relu6);
                conv_bn_act(g, x, conv(c, 1), V1_V2_EPS, &relu6)
            });
        }
    }
    let x = g.global_avg_pool(x);
    let x = g.flatten(x);
    let x = g.named("fc").linear(x, 1000);
    g.finish(x)
}

/// Inverted residual: 1x1 expansion (unless `t` = 1), 3x3 depthwise, linear 1x1 projection.
fn inverted_residual(g: &mut NetBuilder, x: T, t: usize, out: usize, stride: usize) -> T {
    let relu6 = Op::Relu6;
    let cin = g.channels(x);
    let hidden = cin * t;
    let mut y = x;
    if t != 1 {
        y = conv_bn_act(g, y, conv(hidden, 1), V1_V2_EPS, &relu6);
    }
    y = conv_bn_act(g, y, conv(hidden, 3).stride(stride).pad(1).depthwise(), V1_V2_EPS, &relu6);
    y = g.conv(y, conv(out, 1).no_bias());
    y = g.bn_eps(y, V1_V2_EPS);
    if stride == 1 && cin == out {
        g.add(x, y)
    } else {
        y
    }
}

fn mobilenet_v2_width(name: &str, width: f64, input: &Shape) -> Result<Net, GraphError> {
    let relu6 = Op::Relu6;
    let scaled = |c: usize| make_divisible(c as f64 * width, 8);
    let mut g = NetBuilder::new(name, input.dims());
    let x = g.input();
    let mut x = g.scope("stem", |g| conv_bn_act(g, x, conv(scaled(32), 3).stride(2).pad(1), V1_V2_EPS, &relu6));
    let mut index = 0;
    for &(t, c, n, s) in &V2 {
        for i in 0..n {
            index += 1;
            let stride = if i == 0 { s } else { 1 };
            x = g.scope(format!("blocks.{index}"), |g| inverted_residual(g, x, t, scaled(c), stride));
        }
    }
    let head = make_divisible(1280.0 * width.max(1.0), 8);
    let x = g.scope("head", |g| conv_bn_act(g, x, conv(head, 1), V1_V2_EPS, &relu6));
    let x = g.global_avg_pool(x);
    let x = g.flatten(x);
    let x = g.dropout(x, 0.2);
    let x = g.named("fc").linear(x, 1000);
    g.finish(x)
}

fn mobilenet_v2(input: &Shape) -> Result<Net, GraphError> {
    mobilenet_v2_width("mobilenet_v2", 1.0, input)
}

fn mobilenet_v2_140(input: &Shape) -> Result<Net, GraphError> {
    mobilenet_v2_width("mobilenet_v2_1.4", 1.4, input)
}

fn bneck(g: &mut NetBuilder, x: T, row: &Bneck) -> T {
    let (k, exp, out, se, ref nl, stride) = *row;
    let cin = g.channels(x);
    let mut y = x;
    if exp != cin {
        y = conv_bn_act(g, y, conv(exp, 1), V3_EPS, nl);
    }
    y = conv_bn_act(g, y, conv(exp, k).stride(stride).pad_half().depthwise(), V3_EPS, nl);
    if se {
        y = squeeze_excite(g, y, make_divisible(exp as f64 / 4.0, 8), &Op::Relu, &Op::HardSigmoid);
    }
    y = g.conv(y, conv(out, 1).no_bias());
    y = g.bn_eps(y, V3_EPS);
    if stride == 1 && cin == out {
        g.add(x, y)
    } else {
        y
    }
}

fn mobilenet_v3(name: &str, table: &[Bneck], last: usize, input: &Shape) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new(name, input.dims());
    let x = g.input();
    let mut x = g.scope("stem", |g| conv_bn_act(g, x, conv(16, 3).stride(2).pad(1), V3_EPS, &HS));
    for (i, row) in table.iter().enumerate() {
        x = g.scope(format!("blocks.{}", i + 1), |g| bneck(g, x, row));
    }
    let head = 6 * g.channels(x);
    let x = g.scope("head", |g| conv_bn_act(g, x, conv(head, 1), V3_EPS, &HS));
    let x = g.global_avg_pool(x);
    let x = g.flatten(x);
    let x = g.linear(x, last);
    let x = g.hard_swish(x);
    let x = g.dropout(x, 0.2);
    let x = g.named("fc").linear(x, 1000);
    g.finish(x)
}

fn mobilenet_v3_small(input: &Shape) -> Result<Net, GraphError> {
    mobilenet_v3("mobilenet_v3_small", &V3_SMALL, 1024, input)
}

fn mobilenet_v3_large(input: &Shape) -> Result<Net, GraphError> {
    mobilenet_v3("mobilenet_v3_large", &V3_LARGE, 1280, input)
}

pub fn models() -> Vec<ZooModel> {
    let m = Family::new("mobilenet", &[3, 224, 224]);
    vec![
        m.model(
            "mobilenet_v1",
            &["mobilenet_v1_1.0", "mobilenetv1_100"],
            "MobileNet v1 1.0 = timm `mobilenetv1_100` (ReLU6)",
            published(TIMM_COMPUTED, 4_231_976, 0.569),
            mobilenet_v1,
        ),
        m.model(
            "mobilenet_v2",
            &["mobilenet_v2_1.0"],
            "MobileNetV2 1.0 = torchvision `mobilenet_v2`",
            published(TORCHVISION, 3_504_872, 0.301),
            mobilenet_v2,
        ),
        m.model(
            "mobilenet_v2_1.4",
            &["mobilenet_v2_140"],
            "MobileNetV2 1.4 = torchvision `mobilenet_v2(width_mult=1.4)`",
            published(TORCHVISION_COMPUTED, 6_108_776, 0.582),
            mobilenet_v2_140,
        ),
        m.model(
            "mobilenet_v3_small",
            &[],
            "MobileNetV3-Small = torchvision `mobilenet_v3_small`",
            // torchvision rounds 0.0565 GMACs (56,510,400) to 0.057: 0.9% above our count.
            published(TORCHVISION, 2_542_856, 0.057),
            mobilenet_v3_small,
        ),
        m.model(
            "mobilenet_v3_large",
            &[],
            "MobileNetV3-Large = torchvision `mobilenet_v3_large`",
            published(TORCHVISION, 5_483_032, 0.217),
            mobilenet_v3_large,
        ),
    ]
}
