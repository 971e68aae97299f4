//! GoogLeNet (Szegedy et al. 2014, "Going deeper with convolutions"), two ways:
//! torchvision's `googlenet` and the BVLC Caffe net that DLBS runs as `googlenet`.
//!
//! | type         | patch / stride | output     | 1x1 | 3x3 reduce | 3x3 | 5x5 reduce | 5x5 | pool proj |
//! |--------------|----------------|------------|-----|------------|-----|------------|-----|-----------|
//! | conv         | 7x7 / 2        | 112x112x64 |     |            |     |            |     |           |
//! | max pool     | 3x3 / 2        | 56x56x64   |     |            |     |            |     |           |
//! | conv         | 3x3 / 1        | 56x56x192  |     | 64         | 192 |            |     |           |
//! | max pool     | 3x3 / 2        | 28x28x192  |     |            |     |            |     |           |
//! | inception 3a |                | 28x28x256  | 64  | 96         | 128 | 16         | 32  | 32        |
//! | inception 3b |                | 28x28x480  | 128 | 128        | 192 | 32         | 96  | 64        |
//! | max pool     | 3x3 / 2        | 14x14x480  |     |            |     |            |     |           |
//! | inception 4a |                | 14x14x512  | 192 | 96         | 208 | 16         | 48  | 64        |
//! | inception 4b |                | 14x14x512  | 160 | 112        | 224 | 24         | 64  | 64        |
//! | inception 4c |                | 14x14x512  | 128 | 128        | 256 | 24         | 64  | 64        |
//! | inception 4d |                | 14x14x528  | 112 | 144        | 288 | 32         | 64  | 64        |
//! | inception 4e |                | 14x14x832  | 256 | 160        | 320 | 32         | 128 | 128       |
//! | max pool     | 3x3 / 2        | 7x7x832    |     |            |     |            |     |           |
//! | inception 5a |                | 7x7x832    | 256 | 160        | 320 | 32         | 128 | 128       |
//! | inception 5b |                | 7x7x1024   | 384 | 192        | 384 | 48         | 128 | 128       |
//! | avg pool     | 7x7 / 1        | 1x1x1024   |     |            |     |            |     |           |
//! | dropout      |                | 1x1x1024   |     |            |     |            |     |           |
//! | linear       |                | 1000       |     |            |     |            |     |           |
//!
//! Each inception block concatenates four branches: 1x1; 1x1 then 3x3; 1x1 then 5x5;
//! 3x3/1 max pool then 1x1 ("pool proj"). Neither version has the two auxiliary
//! classifiers (torchvision's `aux_logits=False`; DLBS runs the deploy net).
//!
//! **torchvision** (`googlenet`): every conv is BasicConv2d = conv without bias, batch
//! norm (eps 0.001), ReLU; no LRN; all max pools round up (`ceil_mode=True`), and the
//! one before 5a is 2x2/2 rather than 3x3/2 (both give 7x7 here). Its "5x5" branch is a
//! **3x3** conv (pad 1), a known torchvision quirk that we reproduce: the layout is
//! TF-slim's `inception_v1` (whose weights torchvision ported), which has the same 3x3
//! and 2x2 pool. Head: adaptive average pool, dropout 0.2, fc 1024->1000.
//!
//! **BVLC** (`googlenet_bvlc`): no batch norm, every conv and the fc have a bias; LRN
//! (size 5, alpha 1e-4, beta 0.75) after pool1 and after conv2/3x3; a true 5x5 (pad 2);
//! Caffe pools round up, which gives 112/56/28/14/7; head: 7x7/1 average pool, dropout
//! 0.4, fc 1024->1000. DLBS's 6,998,552 parameters are exactly this net. It exceeds
//! torchvision's 6,624,904 by 373,648 = 380,928 (a 5x5 has 16 more weights per input
//! and output channel than a 3x3: 16 x the sum of 5x5 reduce x 5x5) + 7,280 (conv
//! biases: the 57 convs' output channels) - 14,560 (torchvision's batch-norm gamma and
//! beta).

use super::blocks::{conv_bn_act, conv_relu};
use super::sources::*;
use super::{published, published_params, ZooModel};
use crate::graph::{conv, pool, ConvSpec, GraphError, Net, NetBuilder, Op, Shape, T};

/// Inception blocks: name, then 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj.
type Block = (&'static str, [usize; 6]);

const STAGE3: [Block; 2] = [("inception3a", [64, 96, 128, 16, 32, 32]), ("inception3b", [128, 128, 192, 32, 96, 64])];
const STAGE4: [Block; 5] = [
    ("inception4a", [192, 96, 208, 16, 48, 64]),
    ("inception4b", [160, 112, 224, 24, 64, 64]),
    ("inception4c", [128, 128, 256, 24, 64, 64]),
    ("inception4d", [112, 144, 288, 32, 64, 64]),
    ("inception4e", [256, 160, 320, 32, 128, 128]),
];
const STAGE5: [Block; 2] =
    [("inception5a", [256, 160, 320, 32, 128, 128]), ("inception5b", [384, 192, 384, 48, 128, 128])];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Flavor {
    /// BasicConv2d (conv, BN eps 0.001, ReLU) and a 3x3 in the "5x5" branch.
    Torchvision,
    /// Conv with bias, ReLU, and a real 5x5.
    Bvlc,
}

fn unit(g: &mut NetBuilder, x: T, spec: ConvSpec, f: Flavor) -> T {
    match f {
        Flavor::Torchvision => conv_bn_act(g, x, spec, 1e-3, &Op::Relu),
        Flavor::Bvlc => conv_relu(g, x, spec),
    }
}

fn inception(g: &mut NetBuilder, x: T, c: [usize; 6], f: Flavor) -> T {
    let b1 = g.scope("branch1", |g| unit(g, x, conv(c[0], 1), f));
    let b2 = g.scope("branch2", |g| {
        let y = unit(g, x, conv(c[1], 1), f);
        unit(g, y, conv(c[2], 3).pad(1), f)
    });
    let b3 = g.scope("branch3", |g| {
        let y = unit(g, x, conv(c[3], 1), f);
        let five = match f {
            Flavor::Torchvision => conv(c[4], 3).pad(1),
            Flavor::Bvlc => conv(c[4], 5).pad(2),
        };
        unit(g, y, five, f)
    });
    let b4 = g.scope("branch4", |g| {
        let y = g.max_pool(x, pool(3).stride(1).pad(1).ceil());
        unit(g, y, conv(c[5], 1), f)
    });
    g.cat(&[b1, b2, b3, b4])
}

fn stage(g: &mut NetBuilder, x: T, blocks: &[Block], f: Flavor) -> T {
    blocks.iter().fold(x, |x, &(name, c)| g.scope(name, |g| inception(g, x, c, f)))
}

fn googlenet(input: &Shape) -> Result<Net, GraphError> {
    let f = Flavor::Torchvision;
    let mut g = NetBuilder::new("googlenet", input.dims());
    let x = g.input();
    let x = unit(&mut g, x, conv(64, 7).stride(2).pad(3), f);
    let x = g.max_pool(x, pool(3).stride(2).ceil());
    let x = unit(&mut g, x, conv(64, 1), f);
    let x = unit(&mut g, x, conv(192, 3).pad(1), f);
    let x = g.max_pool(x, pool(3).stride(2).ceil());
    let x = stage(&mut g, x, &STAGE3, f);
    let x = g.max_pool(x, pool(3).stride(2).ceil());
    let x = stage(&mut g, x, &STAGE4, f);
    let x = g.max_pool(x, pool(2).stride(2).ceil());
    let x = stage(&mut g, x, &STAGE5, f);
    let x = g.global_avg_pool(x);
    let x = g.flatten(x);
    let x = g.dropout(x, 0.2);
    let x = g.named("fc").linear(x, 1000);
    g.finish(x)
}

fn googlenet_bvlc(input: &Shape) -> Result<Net, GraphError> {
    let f = Flavor::Bvlc;
    let mut g = NetBuilder::new("googlenet_bvlc", input.dims());
    let x = g.input();
    let x = unit(&mut g, x, conv(64, 7).stride(2).pad(3), f);
    let x = g.max_pool(x, pool(3).stride(2).ceil());
    let x = g.lrn(x, 5, 1e-4, 0.75, 1.0);
    let x = unit(&mut g, x, conv(64, 1), f);
    let x = unit(&mut g, x, conv(192, 3).pad(1), f);
    let x = g.lrn(x, 5, 1e-4, 0.75, 1.0);
    let x = g.max_pool(x, pool(3).stride(2).ceil());
    let x = stage(&mut g, x, &STAGE3, f);
    let x = g.max_pool(x, pool(3).stride(2).ceil());
    let x = stage(&mut g, x, &STAGE4, f);
    let x = g.max_pool(x, pool(3).stride(2).ceil());
    let x = stage(&mut g, x, &STAGE5, f);
    let x = g.avg_pool(x, pool(7).stride(1).ceil());
    let x = g.dropout(x, 0.4);
    let x = g.flatten(x);
    let x = g.named("fc").linear(x, 1000);
    g.finish(x)
}

pub fn models() -> Vec<ZooModel> {
    vec![
        ZooModel {
            name: "googlenet",
            aliases: &["inception_v1"],
            family: "googlenet",
            input: &[3, 224, 224],
            summary: "GoogLeNet = torchvision `googlenet` without aux heads: BN, 3x3 in the 5x5 branch (AI Matrix; DLBS runs googlenet_bvlc)",
            published: published(TORCHVISION, 6_624_904, 1.498),
            build: Some(googlenet),
        },
        ZooModel {
            name: "googlenet_bvlc",
            aliases: &["bvlc_googlenet"],
            family: "googlenet",
            input: &[3, 224, 224],
            summary: "BVLC GoogLeNet deploy net: biases, LRN, real 5x5, no BN or aux heads (DLBS `googlenet`)",
            published: published_params(DLBS, 6_998_552),
            build: Some(googlenet_bvlc),
        },
    ]
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze;
    use crate::graph::{Op, Shape};
    use crate::{zoo, Dtype};

    #[test]
    fn bvlc_googlenet_has_dlbs_parameter_count() {
        let net = zoo::build("googlenet_bvlc", None).unwrap();
        assert_eq!(analyze(&net, 1, Dtype::F32).totals.params, 6_998_552);
        let convs = net.nodes.iter().filter(|n| matches!(n.op, Op::Conv2d(_))).count();
        let biases: usize =
            net.nodes.iter().filter(|n| matches!(n.op, Op::Conv2d(_))).map(|n| n.shape.channels()).sum();
        assert_eq!((convs, biases), (57, 7_280));
        assert!(!net.nodes.iter().any(|n| matches!(n.op, Op::BatchNorm { .. })));
    }

    #[test]
    fn bvlc_googlenet_output_sizes_follow_caffe_rounding() {
        let net = zoo::build("googlenet_bvlc", None).unwrap();
        let pools: Vec<&Shape> = net
            .nodes
            .iter()
            .filter(|n| matches!(&n.op, Op::MaxPool2d(p) if p.stride == [2, 2]))
            .map(|n| &n.shape)
            .collect();
        assert_eq!(
            pools,
            [&Shape::chw(64, 56, 56), &Shape::chw(192, 28, 28), &Shape::chw(480, 14, 14), &Shape::chw(832, 7, 7)]
        );
        assert_eq!(net.nodes[1].shape, Shape::chw(64, 112, 112));
        let head = net.nodes.iter().find(|n| matches!(n.op, Op::AvgPool2d(_))).unwrap();
        assert_eq!(head.shape, Shape::chw(1024, 1, 1));
    }

    #[test]
    fn bvlc_minus_torchvision_is_five_by_five_plus_biases_minus_bn() {
        let params = |name| analyze(&zoo::build(name, None).unwrap(), 1, Dtype::F32).totals.params;
        let five_by_five: u64 =
            [(16, 32), (32, 96), (16, 48), (24, 64), (24, 64), (32, 64), (32, 128), (32, 128), (48, 128)]
                .iter()
                .map(|(r, o)| 16 * r * o)
                .sum();
        assert_eq!(five_by_five, 380_928);
        assert_eq!(params("googlenet_bvlc"), params("googlenet") + five_by_five + 7_280 - 14_560);
    }
}
