//! Inception-v3 (Szegedy et al. 2015, "Rethinking the Inception Architecture"),
//! SE-Inception-v3 (Hu et al. 2018), Inception-v4 and Inception-ResNet-v2 (Szegedy et
//! al. 2016), all at 299x299. Every conv is BasicConv2d (conv without bias, batch norm
//! with eps 0.001, ReLU) unless said otherwise.
//!
//! In the tables `+` joins the branches of a block in concatenation order, `-` chains
//! convs (1x1 unless marked), `(a, b)` is a fork whose two outputs are concatenated,
//! `/2` is stride 2 without padding, and every other conv keeps the size. `avg-n` is a
//! 3x3/1 average pool (padding 1) then a 1x1 conv to n channels.
//!
//! **Inception-v3** as torchvision's `inception_v3(aux_logits=False)`:
//!
//! | block        | branches                                                                               | output              |
//! |--------------|----------------------------------------------------------------------------------------|---------------------|
//! | stem         | 3x3/2 32, 3x3 32 (no pad), 3x3 64, max 3x3/2, 80, 3x3 192 (no pad), max 3x3/2          | 35x35x192           |
//! | Mixed_5b..5d | 64 + 48-5x5 64 + 64-3x3 96-3x3 96 + avg-n (n = 32, 64, 64)                             | 35x35x256, 288, 288 |
//! | Mixed_6a     | 3x3/2 384 + 64-3x3 96-3x3/2 96 + max 3x3/2                                             | 17x17x768           |
//! | Mixed_6b..6e | 192 + c-1x7 c-7x1 192 + c-7x1 c-1x7 c-7x1 c-1x7 192 + avg-192 (c = 128, 160, 160, 192) | 17x17x768           |
//! | Mixed_7a     | 192-3x3/2 320 + 192-1x7 192-7x1 192-3x3/2 192 + max 3x3/2                              | 8x8x1280            |
//! | Mixed_7b, 7c | 320 + 384-(1x3 384, 3x1 384) + 448-3x3 384-(1x3 384, 3x1 384) + avg-192                | 8x8x2048            |
//! | head         | global average pool, dropout 0.5, fc 1000                                              |                     |
//!
//! Its average pools count the padding (PyTorch's default). torchvision publishes
//! 27,161,264 parameters because its model carries the training-only auxiliary
//! classifier on Mixed_6e (InceptionAux: 5x5/3 average pool, conv0 1x1 768->128 + BN =
//! 98,304 + 256, conv1 5x5 128->768 + BN = 2,457,600 + 1,536, fc 768->1000 = 769,000;
//! 3,326,696 in all), while its 5.713 GFLOPS are measured in eval mode, without it. So
//! this net has 27,161,264 - 3,326,696 = 23,834,568 parameters and 5,713,216,096 MACs
//! (the aux head would add 5,683,200 MACs). Other published counts of the same net:
//! DLBS `inception3` 23,869,094 = 23,834,568 + 2 x 17,216 + 94 (Caffe blobs: each of the
//! 94 batch norms adds its mean, variance and a factor); Keras 23,851,784 = 23,834,568 +
//! 17,216 (its batch norms have no gamma but count their moving mean and variance).
//!
//! **SE-Inception-v3** (seed 000): Inception-v3 with a squeeze-excite module (reduction
//! 16, 1x1 convs with bias, ReLU then sigmoid) on the output of each of the 11 Inception
//! blocks Mixed_5b..7c, as Hu et al. build SE-Inception. A module on C channels adds
//! 2 x C x C/16 + C/16 + C parameters and 2 x C x C/16 MACs. Over C = 256, 288, 288,
//! 768 (x5), 1280, 2048, 2048 that is 8,464 + 2 x 10,674 + 5 x 74,544 + 206,160 + 2 x
//! 526,464 = 1,661,620 parameters (25,496,188 in all) and 1,650,944 MACs. There is no
//! published count.
//!
//! **Inception-v4** as timm's `inception_v4` (paper figures 3-8). It has the parameters
//! of DLBS `inception4`: 42,743,133 = 42,679,816 + 2 x 31,584 + 149 as Caffe blobs.
//!
//! | block           | branches                                                                        | output     |
//! |-----------------|---------------------------------------------------------------------------------|------------|
//! | stem            | 3x3/2 32, 3x3 32 (no pad), 3x3 64                                               | 147x147x64 |
//! | mixed_3a        | max 3x3/2 + 3x3/2 96                                                            | 73x73x160  |
//! | mixed_4a        | 64-3x3 96 (no pad) + 64-1x7 64-7x1 64-3x3 96 (no pad)                           | 71x71x192  |
//! | mixed_5a        | 3x3/2 192 + max 3x3/2                                                           | 35x35x384  |
//! | 4 x Inception-A | 96 + 64-3x3 96 + 64-3x3 96-3x3 96 + avg-96                                      | 35x35x384  |
//! | Reduction-A     | 3x3/2 384 + 192-3x3 224-3x3/2 256 + max 3x3/2                                   | 17x17x1024 |
//! | 7 x Inception-B | 384 + 192-1x7 224-7x1 256 + 192-7x1 192-1x7 224-7x1 224-1x7 256 + avg-128       | 17x17x1024 |
//! | Reduction-B     | 192-3x3/2 192 + 256-1x7 256-7x1 320-3x3/2 320 + max 3x3/2                       | 8x8x1536   |
//! | 3 x Inception-C | 256 + 384-(1x3 256, 3x1 256) + 384-3x1 448-1x3 512-(1x3 256, 3x1 256) + avg-256 | 8x8x1536   |
//! | head            | global average pool, fc 1000                                                    |            |
//!
//! Its average pools leave the padding out (timm's `count_include_pad=False`).
//!
//! **Inception-ResNet-v2** as timm's `inception_resnet_v2`, the Keras / TF-slim layout:
//! Inception-v3's stem and a mixed_5b block instead of the paper's figure-3 stem.
//!
//! | block                  | branches, then the residual 1x1                                   | output     |
//! |------------------------|-------------------------------------------------------------------|------------|
//! | stem                   | Inception-v3's                                                    | 35x35x192  |
//! | mixed_5b               | 96 + 48-5x5 64 + 64-3x3 96-3x3 96 + avg-64                        | 35x35x320  |
//! | 10 x block35, x 0.17   | 32 + 32-3x3 32 + 32-3x3 48-3x3 64; 1x1 320                        | 35x35x320  |
//! | mixed_6a               | 3x3/2 384 + 256-3x3 256-3x3/2 384 + max 3x3/2                     | 17x17x1088 |
//! | 20 x block17, x 0.10   | 192 + 128-1x7 160-7x1 192; 1x1 1088                               | 17x17x1088 |
//! | mixed_7a               | 256-3x3/2 384 + 256-3x3/2 288 + 256-3x3 288-3x3/2 320 + max 3x3/2 | 8x8x2080   |
//! | 9 x block8, x 0.20     | 192 + 192-1x3 224-3x1 256; 1x1 2080                               | 8x8x2080   |
//! | block8, x 1.0, no ReLU | as above                                                          | 8x8x2080   |
//! | conv2d_7b              | 1x1 1536                                                          | 8x8x1536   |
//! | head                   | global average pool, fc 1000                                      |            |
//!
//! Average pools leave the padding out, as in Inception-v4. In each residual block the
//! concatenated branches go through a 1x1 conv back to the block's width **with bias and
//! no batch norm**, are scaled, added to the block input, then ReLU (except in the last
//! block8, whose scale 1.0 timm still multiplies by). That makes 244 convs but 204 batch
//! norms. Keras publishes 55,873,736 = 55,843,464 + 30,272 (its 204 batch norms, 30,272
//! channels, have no gamma but count their moving mean and variance).

use super::blocks::{classifier, conv_bn_act, squeeze_excite};
use super::sources::*;
use super::{published, Family, ZooModel};
use crate::graph::{conv, conv_hw, pool, ConvSpec, GraphError, Net, NetBuilder, Op, Shape, T};

/// BasicConv2d: conv without bias, batch norm (eps 0.001), ReLU.
fn basic(g: &mut NetBuilder, x: T, spec: ConvSpec) -> T {
    conv_bn_act(g, x, spec, 1e-3, &Op::Relu)
}

/// A chain of BasicConv2d.
fn convs(g: &mut NetBuilder, x: T, specs: &[ConvSpec]) -> T {
    specs.iter().fold(x, |x, &spec| basic(g, x, spec))
}

/// `1xn` or `nx1` with the size kept.
fn k(out: usize, kh: usize, kw: usize) -> ConvSpec {
    conv_hw(out, kh, kw).pad_half()
}

/// 3x3/1 average pool (padding 1) then a 1x1 projection.
fn avg_proj(g: &mut NetBuilder, x: T, out: usize, count_include_pad: bool) -> T {
    let mut spec = pool(3).stride(1).pad(1);
    if !count_include_pad {
        spec = spec.exclude_pad();
    }
    let p = g.avg_pool(x, spec);
    basic(g, p, conv(out, 1))
}

/// The 8x8 blocks' expanded filter bank: 1x3 and 3x1 side by side.
fn fork_1x3_3x1(g: &mut NetBuilder, x: T, out: usize) -> T {
    let a = basic(g, x, k(out, 1, 3));
    let b = basic(g, x, k(out, 3, 1));
    g.cat(&[a, b])
}

fn max3s2(g: &mut NetBuilder, x: T) -> T {
    g.max_pool(x, pool(3).stride(2))
}

/// `n` blocks named `name.0` .. `name.{n-1}`.
fn repeat(g: &mut NetBuilder, name: &str, n: usize, x: T, block: impl Fn(&mut NetBuilder, T) -> T) -> T {
    g.scope(name, |g| (0..n).fold(x, |x, i| g.scope(i, |g| block(g, x))))
}

/// The stem Inception-v3 and Inception-ResNet-v2 share: 299 -> 35x35x192.
fn v3_stem(g: &mut NetBuilder, x: T) -> T {
    let x = convs(g, x, &[conv(32, 3).stride(2), conv(32, 3), conv(64, 3).pad(1)]);
    let x = max3s2(g, x);
    let x = convs(g, x, &[conv(80, 1), conv(192, 3)]);
    max3s2(g, x)
}

// Inception-v3 (torchvision's InceptionA..E).

fn v3_a(g: &mut NetBuilder, x: T, pool_features: usize) -> T {
    let b1 = basic(g, x, conv(64, 1));
    let b5 = convs(g, x, &[conv(48, 1), conv(64, 5).pad(2)]);
    let b3 = convs(g, x, &[conv(64, 1), conv(96, 3).pad(1), conv(96, 3).pad(1)]);
    let bp = avg_proj(g, x, pool_features, true);
    g.cat(&[b1, b5, b3, bp])
}

fn v3_b(g: &mut NetBuilder, x: T) -> T {
    let b3 = basic(g, x, conv(384, 3).stride(2));
    let bd = convs(g, x, &[conv(64, 1), conv(96, 3).pad(1), conv(96, 3).stride(2)]);
    let bp = max3s2(g, x);
    g.cat(&[b3, bd, bp])
}

fn v3_c(g: &mut NetBuilder, x: T, c: usize) -> T {
    let b1 = basic(g, x, conv(192, 1));
    let b7 = convs(g, x, &[conv(c, 1), k(c, 1, 7), k(192, 7, 1)]);
    let bd = convs(g, x, &[conv(c, 1), k(c, 7, 1), k(c, 1, 7), k(c, 7, 1), k(192, 1, 7)]);
    let bp = avg_proj(g, x, 192, true);
    g.cat(&[b1, b7, bd, bp])
}

fn v3_d(g: &mut NetBuilder, x: T) -> T {
    let b3 = convs(g, x, &[conv(192, 1), conv(320, 3).stride(2)]);
    let b7 = convs(g, x, &[conv(192, 1), k(192, 1, 7), k(192, 7, 1), conv(192, 3).stride(2)]);
    let bp = max3s2(g, x);
    g.cat(&[b3, b7, bp])
}

fn v3_e(g: &mut NetBuilder, x: T) -> T {
    let b1 = basic(g, x, conv(320, 1));
    let b3 = basic(g, x, conv(384, 1));
    let b3 = fork_1x3_3x1(g, b3, 384);
    let bd = convs(g, x, &[conv(448, 1), conv(384, 3).pad(1)]);
    let bd = fork_1x3_3x1(g, bd, 384);
    let bp = avg_proj(g, x, 192, true);
    g.cat(&[b1, b3, bd, bp])
}

type Block = fn(&mut NetBuilder, T) -> T;

/// Inception-v3, with squeeze-excite of this reduction after every Inception block.
fn inception_v3_net(name: &str, input: &Shape, se_reduction: Option<usize>) -> Result<Net, GraphError> {
    let blocks: [(&str, Block); 11] = [
        ("Mixed_5b", |g, x| v3_a(g, x, 32)),
        ("Mixed_5c", |g, x| v3_a(g, x, 64)),
        ("Mixed_5d", |g, x| v3_a(g, x, 64)),
        ("Mixed_6a", v3_b),
        ("Mixed_6b", |g, x| v3_c(g, x, 128)),
        ("Mixed_6c", |g, x| v3_c(g, x, 160)),
        ("Mixed_6d", |g, x| v3_c(g, x, 160)),
        ("Mixed_6e", |g, x| v3_c(g, x, 192)),
        ("Mixed_7a", v3_d),
        ("Mixed_7b", v3_e),
        ("Mixed_7c", v3_e),
    ];
    let mut g = NetBuilder::new(name, input.dims());
    let x = g.input();
    let mut x = v3_stem(&mut g, x);
    for (block_name, block) in blocks {
        x = g.scope(block_name, |g| {
            let y = block(g, x);
            match se_reduction {
                Some(r) => {
                    let reduced = g.channels(y) / r;
                    squeeze_excite(g, y, reduced, &Op::Relu, &Op::Sigmoid)
                }
                None => y,
            }
        });
    }
    let x = g.global_avg_pool(x);
    let x = g.dropout(x, 0.5);
    let x = g.flatten(x);
    let x = g.named("fc").linear(x, 1000);
    g.finish(x)
}

fn inception_v3(input: &Shape) -> Result<Net, GraphError> {
    inception_v3_net("inception_v3", input, None)
}

fn se_inception_v3(input: &Shape) -> Result<Net, GraphError> {
    inception_v3_net("se_inception_v3", input, Some(16))
}

// Inception-v4 (timm's Mixed3a..5a, InceptionA..C, ReductionA, B).

fn v4_stem(g: &mut NetBuilder, x: T) -> T {
    let x = convs(g, x, &[conv(32, 3).stride(2), conv(32, 3), conv(64, 3).pad(1)]);
    let x = g.scope("mixed_3a", |g| {
        let p = max3s2(g, x);
        let c = basic(g, x, conv(96, 3).stride(2));
        g.cat(&[p, c])
    });
    let x = g.scope("mixed_4a", |g| {
        let a = convs(g, x, &[conv(64, 1), conv(96, 3)]);
        let b = convs(g, x, &[conv(64, 1), k(64, 1, 7), k(64, 7, 1), conv(96, 3)]);
        g.cat(&[a, b])
    });
    g.scope("mixed_5a", |g| {
        let c = basic(g, x, conv(192, 3).stride(2));
        let p = max3s2(g, x);
        g.cat(&[c, p])
    })
}

fn v4_a(g: &mut NetBuilder, x: T) -> T {
    let b0 = basic(g, x, conv(96, 1));
    let b1 = convs(g, x, &[conv(64, 1), conv(96, 3).pad(1)]);
    let b2 = convs(g, x, &[conv(64, 1), conv(96, 3).pad(1), conv(96, 3).pad(1)]);
    let b3 = avg_proj(g, x, 96, false);
    g.cat(&[b0, b1, b2, b3])
}

fn v4_reduction_a(g: &mut NetBuilder, x: T) -> T {
    let b0 = basic(g, x, conv(384, 3).stride(2));
    let b1 = convs(g, x, &[conv(192, 1), conv(224, 3).pad(1), conv(256, 3).stride(2)]);
    let b2 = max3s2(g, x);
    g.cat(&[b0, b1, b2])
}

fn v4_b(g: &mut NetBuilder, x: T) -> T {
    let b0 = basic(g, x, conv(384, 1));
    let b1 = convs(g, x, &[conv(192, 1), k(224, 1, 7), k(256, 7, 1)]);
    let b2 = convs(g, x, &[conv(192, 1), k(192, 7, 1), k(224, 1, 7), k(224, 7, 1), k(256, 1, 7)]);
    let b3 = avg_proj(g, x, 128, false);
    g.cat(&[b0, b1, b2, b3])
}

fn v4_reduction_b(g: &mut NetBuilder, x: T) -> T {
    let b0 = convs(g, x, &[conv(192, 1), conv(192, 3).stride(2)]);
    let b1 = convs(g, x, &[conv(256, 1), k(256, 1, 7), k(320, 7, 1), conv(320, 3).stride(2)]);
    let b2 = max3s2(g, x);
    g.cat(&[b0, b1, b2])
}

fn v4_c(g: &mut NetBuilder, x: T) -> T {
    let b0 = basic(g, x, conv(256, 1));
    let b1 = basic(g, x, conv(384, 1));
    let b1 = fork_1x3_3x1(g, b1, 256);
    let b2 = convs(g, x, &[conv(384, 1), k(448, 3, 1), k(512, 1, 3)]);
    let b2 = fork_1x3_3x1(g, b2, 256);
    let b3 = avg_proj(g, x, 256, false);
    g.cat(&[b0, b1, b2, b3])
}

fn inception_v4(input: &Shape) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new("inception_v4", input.dims());
    let x = g.input();
    let x = v4_stem(&mut g, x);
    let x = repeat(&mut g, "inception_a", 4, x, v4_a);
    let x = g.scope("reduction_a", |g| v4_reduction_a(g, x));
    let x = repeat(&mut g, "inception_b", 7, x, v4_b);
    let x = g.scope("reduction_b", |g| v4_reduction_b(g, x));
    let x = repeat(&mut g, "inception_c", 3, x, v4_c);
    let x = classifier(&mut g, x, 1000);
    g.finish(x)
}

// Inception-ResNet-v2 (timm's Mixed_5b, Block35, Mixed_6a, Block17, Mixed_7a, Block8).

/// Concatenate the branches, 1x1 conv back to the input width (bias, no batch norm),
/// scale, add the input, then ReLU unless `relu` is false.
fn residual(g: &mut NetBuilder, x: T, branches: &[T], scale: f64, relu: bool) -> T {
    let width = g.channels(x);
    let mixed = g.cat(branches);
    let up = g.conv(mixed, conv(width, 1));
    let up = g.scale(up, scale);
    let y = g.add(up, x);
    if relu {
        g.relu(y)
    } else {
        y
    }
}

fn irv2_mixed_5b(g: &mut NetBuilder, x: T) -> T {
    let b0 = basic(g, x, conv(96, 1));
    let b1 = convs(g, x, &[conv(48, 1), conv(64, 5).pad(2)]);
    let b2 = convs(g, x, &[conv(64, 1), conv(96, 3).pad(1), conv(96, 3).pad(1)]);
    let b3 = avg_proj(g, x, 64, false);
    g.cat(&[b0, b1, b2, b3])
}

fn block35(g: &mut NetBuilder, x: T) -> T {
    let b0 = basic(g, x, conv(32, 1));
    let b1 = convs(g, x, &[conv(32, 1), conv(32, 3).pad(1)]);
    let b2 = convs(g, x, &[conv(32, 1), conv(48, 3).pad(1), conv(64, 3).pad(1)]);
    residual(g, x, &[b0, b1, b2], 0.17, true)
}

fn irv2_mixed_6a(g: &mut NetBuilder, x: T) -> T {
    let b0 = basic(g, x, conv(384, 3).stride(2));
    let b1 = convs(g, x, &[conv(256, 1), conv(256, 3).pad(1), conv(384, 3).stride(2)]);
    let b2 = max3s2(g, x);
    g.cat(&[b0, b1, b2])
}

fn block17(g: &mut NetBuilder, x: T) -> T {
    let b0 = basic(g, x, conv(192, 1));
    let b1 = convs(g, x, &[conv(128, 1), k(160, 1, 7), k(192, 7, 1)]);
    residual(g, x, &[b0, b1], 0.10, true)
}

fn irv2_mixed_7a(g: &mut NetBuilder, x: T) -> T {
    let b0 = convs(g, x, &[conv(256, 1), conv(384, 3).stride(2)]);
    let b1 = convs(g, x, &[conv(256, 1), conv(288, 3).stride(2)]);
    let b2 = convs(g, x, &[conv(256, 1), conv(288, 3).pad(1), conv(320, 3).stride(2)]);
    let b3 = max3s2(g, x);
    g.cat(&[b0, b1, b2, b3])
}

fn block8(g: &mut NetBuilder, x: T, scale: f64, relu: bool) -> T {
    let b0 = basic(g, x, conv(192, 1));
    let b1 = convs(g, x, &[conv(192, 1), k(224, 1, 3), k(256, 3, 1)]);
    residual(g, x, &[b0, b1], scale, relu)
}

fn inception_resnet_v2(input: &Shape) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new("inception_resnet_v2", input.dims());
    let x = g.input();
    let x = v3_stem(&mut g, x);
    let x = g.scope("mixed_5b", |g| irv2_mixed_5b(g, x));
    let x = repeat(&mut g, "repeat", 10, x, block35);
    let x = g.scope("mixed_6a", |g| irv2_mixed_6a(g, x));
    let x = repeat(&mut g, "repeat_1", 20, x, block17);
    let x = g.scope("mixed_7a", |g| irv2_mixed_7a(g, x));
    let x = repeat(&mut g, "repeat_2", 9, x, |g, x| block8(g, x, 0.20, true));
    let x = g.scope("block8", |g| block8(g, x, 1.0, false));
    let x = g.scope("conv2d_7b", |g| basic(g, x, conv(1536, 1)));
    let x = classifier(&mut g, x, 1000);
    g.finish(x)
}

const IMAGE: &[usize] = &[3, 299, 299];

pub fn models() -> Vec<ZooModel> {
    let m = Family::new("inception", IMAGE);
    vec![
        m.model(
            "inception_v3",
            &["inception3"],
            "Inception-v3 = torchvision `inception_v3` without the aux head (DLBS `inception3`)",
            published("torchvision 0.29.2 (without the aux head: 27,161,264 - 3,326,696)", 23_834_568, 5.713),
            inception_v3,
        ),
        m.model(
            "se_inception_v3",
            &[],
            "Inception-v3 with squeeze-excite (r 16) after each of its 11 Inception blocks (Hu et al.; seed 000)",
            None,
            se_inception_v3,
        ),
        m.model(
            "inception_v4",
            &["inception4"],
            "Inception-v4 = timm `inception_v4` (DLBS `inception4`)",
            published(TIMM_COMPUTED, 42_679_816, 12.254),
            inception_v4,
        ),
        m.model(
            "inception_resnet_v2",
            &[],
            "Inception-ResNet-v2 = timm `inception_resnet_v2`, Keras/TF-slim layout",
            published(TIMM_COMPUTED, 55_843_464, 13.156),
            inception_resnet_v2,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze;
    use crate::graph::Op;
    use crate::{zoo, Dtype};

    fn totals(name: &str) -> (u64, u64) {
        let a = analyze(&zoo::build(name, None).unwrap(), 1, Dtype::F32);
        (a.totals.params, a.totals.macs)
    }

    /// Output channels of Mixed_5b .. Mixed_7c.
    const V3_BLOCKS: [u64; 11] = [256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048];

    #[test]
    fn se_inception_v3_adds_the_squeeze_excite_parameters() {
        let se_params: u64 = V3_BLOCKS.iter().map(|&c| 2 * c * (c / 16) + c / 16 + c).sum();
        let se_macs: u64 = V3_BLOCKS.iter().map(|&c| 2 * c * (c / 16)).sum();
        assert_eq!((se_params, se_macs), (1_661_620, 1_650_944));
        let (params, macs) = totals("inception_v3");
        assert_eq!(totals("se_inception_v3"), (params + se_params, macs + se_macs));
        assert_eq!(params + se_params, 25_496_188);
        let net = zoo::build("se_inception_v3", None).unwrap();
        assert_eq!(net.nodes.iter().filter(|n| matches!(n.op, Op::Mul)).count(), 11);
    }

    #[test]
    fn torchvision_inception_v3_count_includes_the_aux_head() {
        let conv0 = 768 * 128 + 2 * 128;
        let conv1 = 128 * 768 * 5 * 5 + 2 * 768;
        let fc = 768 * 1000 + 1000;
        assert_eq!(conv0 + conv1 + fc, 3_326_696);
        assert_eq!(totals("inception_v3").0 + conv0 + conv1 + fc, 27_161_264);
    }

    #[test]
    fn keras_counts_add_one_moving_stat_per_bn_channel() {
        // Keras' batch norms have no gamma (scale=False) but count moving mean and variance.
        let bn_channels = |name| -> u64 {
            let net = zoo::build(name, None).unwrap();
            net.nodes.iter().filter(|n| matches!(n.op, Op::BatchNorm { .. })).map(|n| n.shape.channels() as u64).sum()
        };
        assert_eq!(totals("inception_v3").0 + bn_channels("inception_v3"), 23_851_784);
        assert_eq!(totals("inception_resnet_v2").0 + bn_channels("inception_resnet_v2"), 55_873_736);
    }
}
