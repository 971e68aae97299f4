//! DenseNet (Huang et al. 2017, table 1), as torchvision defines it: growth rate 32,
//! bottleneck width 4 x 32 = 128, compression 0.5, 64 initial features.
//!
//! | layers         | output | DenseNet-121                     | 169  | 201  |
//! |----------------|--------|----------------------------------|------|------|
//! | convolution    | 112    | 7x7 conv, 64, /2                 |      |      |
//! | pooling        | 56     | 3x3 max pool, /2                 |      |      |
//! | dense block 1  | 56     | [1x1 conv 128, 3x3 conv 32] x 6  | x 6  | x 6  |
//! | transition 1   | 28     | 1x1 conv, 2x2 avg pool, /2       |      |      |
//! | dense block 2  | 28     | [1x1 conv 128, 3x3 conv 32] x 12 | x 12 | x 12 |
//! | transition 2   | 14     | 1x1 conv, 2x2 avg pool, /2       |      |      |
//! | dense block 3  | 14     | [1x1 conv 128, 3x3 conv 32] x 24 | x 32 | x 48 |
//! | transition 3   | 7      | 1x1 conv, 2x2 avg pool, /2       |      |      |
//! | dense block 4  | 7      | [1x1 conv 128, 3x3 conv 32] x 16 | x 32 | x 32 |
//! | classification | 1      | BN, ReLU, global avg pool, fc    |      |      |
//!
//! Every convolution after the stem is pre-activation (BN, ReLU, conv without bias), and
//! each dense layer reads the concatenation of the block input and all earlier layers'
//! 32-channel outputs, concatenated anew per layer as torchvision's `_DenseLayer` does.
//!
//! Keras publishes 8,062,504 / 14,307,880 / 20,242,984 parameters because its totals
//! also count each batch-norm's running mean and variance (non-trainable): ours plus
//! 2 x the batch-norm channels (41,824 / 79,200 / 114,528 in torch_counts.csv), i.e.
//! 7,978,856 + 83,648, 14,149,480 + 158,400 and 20,013,928 + 229,056.

use super::blocks::{classifier, conv_bn_relu};
use super::sources::*;
use super::{published, Family, ZooModel};
use crate::graph::{conv, pool, ConvSpec, GraphError, Net, NetBuilder, Shape, T};

const GROWTH: usize = 32;
const BN_SIZE: usize = 4;
const INIT_FEATURES: usize = 64;

/// BN, ReLU, then the convolution (no bias).
fn bn_relu_conv(g: &mut NetBuilder, x: T, spec: ConvSpec) -> T {
    let x = g.bn(x);
    let x = g.relu(x);
    g.conv(x, spec.no_bias())
}

/// `layers` dense layers; returns the concatenation of the input and every layer's output.
fn dense_block(g: &mut NetBuilder, x: T, layers: usize) -> T {
    let mut features = vec![x];
    for i in 0..layers {
        let new = g.scope(format!("denselayer{}", i + 1), |g| {
            let x = g.cat(&features);
            let x = bn_relu_conv(g, x, conv(BN_SIZE * GROWTH, 1));
            bn_relu_conv(g, x, conv(GROWTH, 3).pad(1))
        });
        features.push(new);
    }
    g.cat(&features)
}

/// Halve the channels (compression 0.5) and the resolution.
fn transition(g: &mut NetBuilder, x: T) -> T {
    let out = g.channels(x) / 2;
    let x = bn_relu_conv(g, x, conv(out, 1));
    g.avg_pool(x, pool(2))
}

fn densenet(name: &str, input: &Shape, blocks: [usize; 4]) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new(name, input.dims());
    let x = g.input();
    let x = conv_bn_relu(&mut g, x, conv(INIT_FEATURES, 7).stride(2).pad(3));
    let mut x = g.max_pool(x, pool(3).stride(2).pad(1));
    for (i, &layers) in blocks.iter().enumerate() {
        x = g.scope(format!("denseblock{}", i + 1), |g| dense_block(g, x, layers));
        if i + 1 < blocks.len() {
            x = g.scope(format!("transition{}", i + 1), |g| transition(g, x));
        }
    }
    let x = g.named("norm5").bn(x);
    let x = g.relu(x);
    let x = classifier(&mut g, x, 1000);
    g.finish(x)
}

fn densenet121(input: &Shape) -> Result<Net, GraphError> {
    densenet("densenet121", input, [6, 12, 24, 16])
}
fn densenet169(input: &Shape) -> Result<Net, GraphError> {
    densenet("densenet169", input, [6, 12, 32, 32])
}
fn densenet201(input: &Shape) -> Result<Net, GraphError> {
    densenet("densenet201", input, [6, 12, 48, 32])
}

pub fn models() -> Vec<ZooModel> {
    let m = Family::new("densenet", &[3, 224, 224]);
    vec![
        m.model(
            "densenet121",
            &["densenet-121"],
            "DenseNet-121, growth 32, blocks 6-12-24-16 (AI Matrix, seed 004)",
            published(TORCHVISION, 7_978_856, 2.834),
            densenet121,
        ),
        m.model(
            "densenet169",
            &["densenet-169"],
            "DenseNet-169, growth 32, blocks 6-12-32-32",
            published(TORCHVISION, 14_149_480, 3.360),
            densenet169,
        ),
        m.model(
            "densenet201",
            &["densenet-201"],
            "DenseNet-201, growth 32, blocks 6-12-48-32",
            published(TORCHVISION, 20_013_928, 4.291),
            densenet201,
        ),
    ]
}
