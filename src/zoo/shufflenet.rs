//! ShuffleNet V2 (Ma et al. 2018, table 5) as torchvision defines it.
//!
//! | layer   | output | kernel, stride               | repeat | x1.0 | x2.0 |
//! |---------|--------|------------------------------|--------|------|------|
//! | conv1   | 112    | 3x3, /2                      | 1      | 24   | 24   |
//! | maxpool | 56     | 3x3, /2                      | 1      |      |      |
//! | stage2  | 28     | /2, then 1                   | 1, 3   | 116  | 244  |
//! | stage3  | 14     | /2, then 1                   | 1, 7   | 232  | 488  |
//! | stage4  | 7      | /2, then 1                   | 1, 3   | 464  | 976  |
//! | conv5   | 7      | 1x1                          | 1      | 1024 | 2048 |
//! | head    | 1      | global average pool, 1000 fc | 1      |      |      |
//!
//! A unit at stride 1 splits its channels in half, passes the first half through and
//! runs the second through 1x1-BN-ReLU, depthwise 3x3-BN, 1x1-BN-ReLU (branch2). At
//! stride 2 both branches take the whole input: branch1 is depthwise 3x3/2-BN,
//! 1x1-BN-ReLU, and branch2's depthwise conv has stride 2. Either way the halves are
//! concatenated and channel-shuffled with 2 groups. torchvision's `x.mean([2, 3])` head
//! is a global average pool.

use super::blocks::{classifier, conv_bn, conv_bn_relu};
use super::sources::*;
use super::{published, Family, ZooModel};
use crate::graph::{conv, pool, GraphError, Net, NetBuilder, Shape, T};

const REPEATS: [usize; 3] = [4, 8, 4];
const X1_0: [usize; 5] = [24, 116, 232, 464, 1024];
const X2_0: [usize; 5] = [24, 244, 488, 976, 2048];

/// 1x1-BN-ReLU, depthwise 3x3-BN, 1x1-BN-ReLU, all `width` channels.
fn branch2(g: &mut NetBuilder, x: T, width: usize, stride: usize) -> T {
    g.scope("branch2", |g| {
        let x = conv_bn_relu(g, x, conv(width, 1));
        let x = conv_bn(g, x, conv(width, 3).stride(stride).pad(1).depthwise());
        conv_bn_relu(g, x, conv(width, 1))
    })
}

fn unit(g: &mut NetBuilder, x: T, out: usize, stride: usize) -> T {
    let half = out / 2;
    let y = if stride == 1 {
        let x1 = g.channel_slice(x, 0, half);
        let x2 = g.channel_slice(x, half, out);
        let x2 = branch2(g, x2, half, 1);
        g.cat(&[x1, x2])
    } else {
        let channels = g.channels(x);
        let x1 = g.scope("branch1", |g| {
            let x = conv_bn(g, x, conv(channels, 3).stride(stride).pad(1).depthwise());
            conv_bn_relu(g, x, conv(half, 1))
        });
        let x2 = branch2(g, x, half, stride);
        g.cat(&[x1, x2])
    };
    g.channel_shuffle(y, 2)
}

fn shufflenet_v2(name: &str, input: &Shape, widths: [usize; 5]) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new(name, input.dims());
    let x = g.input();
    let x = g.scope("conv1", |g| conv_bn_relu(g, x, conv(widths[0], 3).stride(2).pad(1)));
    let mut x = g.max_pool(x, pool(3).stride(2).pad(1));
    for (stage, (&repeats, &out)) in REPEATS.iter().zip(&widths[1..4]).enumerate() {
        x = g.scope(format!("stage{}", stage + 2), |g| {
            (0..repeats).fold(x, |x, i| g.scope(i, |g| unit(g, x, out, if i == 0 { 2 } else { 1 })))
        });
    }
    let x = g.scope("conv5", |g| conv_bn_relu(g, x, conv(widths[4], 1)));
    let x = classifier(&mut g, x, 1000);
    g.finish(x)
}

fn shufflenet_v2_x1_0(input: &Shape) -> Result<Net, GraphError> {
    shufflenet_v2("shufflenet_v2_x1_0", input, X1_0)
}
fn shufflenet_v2_x2_0(input: &Shape) -> Result<Net, GraphError> {
    shufflenet_v2("shufflenet_v2_x2_0", input, X2_0)
}

pub fn models() -> Vec<ZooModel> {
    let m = Family::new("shufflenet", &[3, 224, 224]);
    vec![
        m.model(
            "shufflenet_v2_x1_0",
            &["shufflenet_v2_1.0"],
            "ShuffleNet V2 1.0x (seed 000's shufflenet_v2 1.0)",
            published(TORCHVISION, 2_278_604, 0.145),
            shufflenet_v2_x1_0,
        ),
        m.model(
            "shufflenet_v2_x2_0",
            &["shufflenet_v2_2.0"],
            "ShuffleNet V2 2.0x (seed 000's shufflenet_v2 2.0)",
            published(TORCHVISION_COMPUTED, 7_393_996, 0.583),
            shufflenet_v2_x2_0,
        ),
    ]
}
