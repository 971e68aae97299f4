//! Xception (Chollet 2017, figure 5), as timm's `legacy_xception` (the original Xception,
//! ported from Keras), at 299x299.
//!
//! | flow   | layers                                                     | output |
//! |--------|------------------------------------------------------------|--------|
//! | entry  | conv 3x3, 32, /2; conv 3x3, 64 (both unpadded, BN, ReLU)   | 147    |
//! |        | block: sep 128, sep 128, max pool /2; 1x1/2 shortcut        | 74     |
//! |        | block: sep 256, sep 256, max pool /2; 1x1/2 shortcut        | 37     |
//! |        | block: sep 728, sep 728, max pool /2; 1x1/2 shortcut        | 19     |
//! | middle | 8 x block: sep 728, sep 728, sep 728; identity shortcut     | 19     |
//! | exit   | block: sep 728, sep 1024, max pool /2; 1x1/2 shortcut       | 10     |
//! |        | sep 1536, ReLU; sep 2048, ReLU; global pool; 1000-way fc    | 1      |
//!
//! A separable conv ("sep") is a 3x3 depthwise then a 1x1 pointwise conv, neither with a
//! bias, followed by BN. Inside a block every separable conv is preceded by a ReLU
//! (except the very first, in the block after the stem's ReLU); the shortcut takes the
//! block input before that ReLU. Max pools are 3x3/2 with padding 1; projection
//! shortcuts are a 1x1/2 conv and BN. BN eps 1e-5 throughout. 74 convs, 40 BN.
//!
//! Keras publishes 22,910,480 parameters: ours plus BN's running mean and variance,
//! 22,855,952 + 2 x 27,264 = 22,910,480.

use super::blocks::{conv_bn, conv_bn_relu};
use super::sources::*;
use super::{published, ZooModel};
use crate::graph::{conv, pool, GraphError, Net, NetBuilder, Shape, T};

/// Entry flow blocks: the separable convs' widths; each block ends in a /2 max pool.
const ENTRY: [&[usize]; 3] = [&[128, 128], &[256, 256], &[728, 728]];
/// Middle flow: this block, 8 times, at stride 1.
const MIDDLE: &[usize] = &[728, 728, 728];
const MIDDLE_REPEATS: usize = 8;
/// Exit flow: one strided block, then two separable convs with ReLU.
const EXIT: &[usize] = &[728, 1024];
const EXIT_CONVS: [usize; 2] = [1536, 2048];

/// Depthwise 3x3 then pointwise 1x1, no biases.
fn separable(g: &mut NetBuilder, x: T, out: usize) -> T {
    let cin = g.channels(x);
    let x = g.conv(x, conv(cin, 3).pad(1).depthwise().no_bias());
    g.conv(x, conv(out, 1).no_bias())
}

fn block(g: &mut NetBuilder, x: T, widths: &[usize], stride: usize, start_with_relu: bool) -> T {
    let mut y = x;
    for (i, &w) in widths.iter().enumerate() {
        if i > 0 || start_with_relu {
            y = g.relu(y);
        }
        y = separable(g, y, w);
        y = g.bn(y);
    }
    if stride != 1 {
        y = g.max_pool(y, pool(3).stride(stride).pad(1));
    }
    let out = g.channels(y);
    let shortcut = if stride != 1 || g.channels(x) != out {
        g.scope("skip", |g| conv_bn(g, x, conv(out, 1).stride(stride)))
    } else {
        x
    };
    g.add(y, shortcut)
}

fn xception(input: &Shape) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new("xception", input.dims());
    let x = g.input();
    let x = conv_bn_relu(&mut g, x, conv(32, 3).stride(2));
    let mut x = conv_bn_relu(&mut g, x, conv(64, 3));
    let middle = std::iter::repeat_n((MIDDLE, 1), MIDDLE_REPEATS);
    let blocks = ENTRY.iter().map(|&w| (w, 2)).chain(middle).chain([(EXIT, 2)]);
    for (i, (widths, stride)) in blocks.enumerate() {
        x = g.scope(format!("block{}", i + 1), |g| block(g, x, widths, stride, i > 0));
    }
    for w in EXIT_CONVS {
        x = separable(&mut g, x, w);
        x = g.bn(x);
        x = g.relu(x);
    }
    let x = g.global_avg_pool(x);
    let x = g.flatten(x);
    let x = g.named("fc").linear(x, 1000);
    g.finish(x)
}

pub fn models() -> Vec<ZooModel> {
    vec![ZooModel {
        name: "xception",
        aliases: &["legacy_xception"],
        family: "xception",
        input: &[3, 299, 299],
        summary: "Xception (Chollet) = timm `legacy_xception`",
        published: published(TIMM_COMPUTED, 22_855_952, 8.357),
        build: Some(xception),
    }]
}
