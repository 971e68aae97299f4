//! ResNet (He et al. 2015), ResNeXt (Xie et al. 2017), ResNet-D (He et al. 2019,
//! "Bag of Tricks") and SE-ResNet (Hu et al. 2018).
//!
//! | stage  | output | basic (18, 34)   | bottleneck (50 and up)        |
//! |--------|--------|------------------|-------------------------------|
//! | conv1  | 112    | 7x7, 64, /2      | 7x7, 64, /2                   |
//! | pool   | 56     | 3x3 max, /2      | 3x3 max, /2                   |
//! | layer1 | 56     | [3x3 64, 3x3 64] | [1x1 64, 3x3 64, 1x1 256]     |
//! | layer2 | 28     | [3x3 128] x2     | [1x1 128, 3x3 128, 1x1 512]   |
//! | layer3 | 14     | [3x3 256] x2     | [1x1 256, 3x3 256, 1x1 1024]  |
//! | layer4 | 7      | [3x3 512] x2     | [1x1 512, 3x3 512, 1x1 2048]  |
//! | head   | 1      | average pool, 1000-way fc                        |
//!
//! Definitions follow torchvision (stride on the 3x3 conv, "ResNet v1.5"), whose counts
//! are published; the v1 placement of the stride on the first 1x1 changes MACs but not
//! parameters.
//!
//! DLBS publishes Caffe counts (its `models/<name>` prototxts): every blob, so each
//! batch-norm adds its running mean and variance (2C) and one moving-average factor, on
//! top of our trainable count. Its resnet18/34 also have a 1x1 64->64 projection with
//! batch-norm in the first block (+64*64 + 4*64 + 1 = 4,353) and its resnet50's conv1
//! has a bias (+64). Keras' ResNet50/101/152 totals (25,636,712 / 44,707,176 /
//! 60,419,944) keep a bias on every conv (one per batch-norm channel) and count the
//! running statistics: ours + 3 x the batch-norm channels. `tests/zoo_published.rs`
//! asserts exactly these differences.

use super::blocks::{classifier, conv_bn, conv_bn_relu, squeeze_excite};
use super::sources::*;
use super::{published, Family, ZooModel};
use crate::graph::{conv, pool, GraphError, Net, NetBuilder, Op, Shape, T};

#[derive(Debug, Clone, Copy)]
enum Block {
    Basic,
    Bottleneck,
}

#[derive(Debug, Clone, Copy)]
struct ResNetSpec {
    block: Block,
    layers: [usize; 4],
    groups: usize,
    width_per_group: usize,
    /// ResNet-D: three 3x3 stem convs (32, 32, 64) and average-pool downsampling.
    deep_stem_avg_down: bool,
    /// Squeeze-excite with this channel reduction after each block's last batch-norm.
    se_reduction: Option<usize>,
}

const fn spec(block: Block, layers: [usize; 4]) -> ResNetSpec {
    ResNetSpec { block, layers, groups: 1, width_per_group: 64, deep_stem_avg_down: false, se_reduction: None }
}

const fn resnext(layers: [usize; 4], groups: usize, width_per_group: usize, d: bool) -> ResNetSpec {
    ResNetSpec { block: Block::Bottleneck, layers, groups, width_per_group, deep_stem_avg_down: d, se_reduction: None }
}

fn stem(g: &mut NetBuilder, x: T, s: &ResNetSpec, filters: usize) -> T {
    if s.deep_stem_avg_down {
        g.scope("stem", |g| {
            let x = conv_bn_relu(g, x, conv(32, 3).stride(2).pad(1));
            let x = conv_bn_relu(g, x, conv(32, 3).pad(1));
            conv_bn_relu(g, x, conv(64, 3).pad(1))
        })
    } else {
        conv_bn_relu(g, x, conv(filters, 7).stride(2).pad(3))
    }
}

fn downsample(g: &mut NetBuilder, x: T, out: usize, stride: usize, s: &ResNetSpec) -> T {
    g.scope("downsample", |g| {
        if s.deep_stem_avg_down && stride > 1 {
            let x = g.avg_pool(x, pool(stride).ceil().exclude_pad());
            conv_bn(g, x, conv(out, 1))
        } else {
            conv_bn(g, x, conv(out, 1).stride(stride))
        }
    })
}

fn block(g: &mut NetBuilder, x: T, planes: usize, stride: usize, s: &ResNetSpec) -> T {
    let (expansion, residual) = match s.block {
        Block::Basic => {
            let y = conv_bn_relu(g, x, conv(planes, 3).stride(stride).pad(1));
            (1, conv_bn(g, y, conv(planes, 3).pad(1)))
        }
        Block::Bottleneck => {
            let width = planes * s.width_per_group / 64 * s.groups;
            let y = conv_bn_relu(g, x, conv(width, 1));
            let y = conv_bn_relu(g, y, conv(width, 3).stride(stride).pad(1).groups(s.groups));
            (4, conv_bn(g, y, conv(planes * 4, 1)))
        }
    };
    let out = planes * expansion;
    let residual = match s.se_reduction {
        Some(r) => squeeze_excite(g, residual, out / r, &Op::Relu, &Op::Sigmoid),
        None => residual,
    };
    let shortcut = if stride != 1 || g.channels(x) != out { downsample(g, x, out, stride, s) } else { x };
    let y = g.add(residual, shortcut);
    g.relu(y)
}

fn resnet(name: &str, input: &Shape, s: ResNetSpec) -> Result<Net, GraphError> {
    resnet_with(name, input, s, 64, 1000)
}

/// A ResNet whose stem has `filters` channels and whose stages have `filters` x 1, 2, 4, 8
/// planes: ParaDnn's CNN template (Wang, Wei and Brooks 2019), one of `synth`'s families.
pub fn parametric(
    name: &str,
    input: &Shape,
    bottleneck: bool,
    blocks_per_group: usize,
    filters: usize,
    classes: usize,
) -> Result<Net, GraphError> {
    let block = if bottleneck { Block::Bottleneck } else { Block::Basic };
    resnet_with(name, input, spec(block, [blocks_per_group; 4]), filters, classes)
}

fn resnet_with(name: &str, input: &Shape, s: ResNetSpec, filters: usize, classes: usize) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new(name, input.dims());
    let x = g.input();
    let x = stem(&mut g, x, &s, filters);
    let mut x = g.max_pool(x, pool(3).stride(2).pad(1));
    let planes = [filters, 2 * filters, 4 * filters, 8 * filters];
    for (stage, (&blocks, planes)) in s.layers.iter().zip(planes).enumerate() {
        x = g.scope(format!("layer{}", stage + 1), |g| {
            (0..blocks).fold(x, |x, i| {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                g.scope(i, |g| block(g, x, planes, stride, &s))
            })
        });
    }
    let x = classifier(&mut g, x, classes);
    g.finish(x)
}

macro_rules! builder {
    ($fn_name:ident, $name:literal, $spec:expr) => {
        fn $fn_name(input: &Shape) -> Result<Net, GraphError> {
            resnet($name, input, $spec)
        }
    };
}

builder!(resnet18, "resnet18", spec(Block::Basic, [2, 2, 2, 2]));
builder!(resnet34, "resnet34", spec(Block::Basic, [3, 4, 6, 3]));
builder!(resnet50, "resnet50", spec(Block::Bottleneck, [3, 4, 6, 3]));
builder!(resnet101, "resnet101", spec(Block::Bottleneck, [3, 4, 23, 3]));
builder!(resnet152, "resnet152", spec(Block::Bottleneck, [3, 8, 36, 3]));
// DLBS's deeper ResNets extend ResNet-152's stages (its generate_units.sh).
builder!(resnet200, "resnet200", spec(Block::Bottleneck, [3, 24, 36, 3]));
builder!(resnet269, "resnet269", spec(Block::Bottleneck, [3, 30, 48, 8]));
builder!(resnext50_32x4d, "resnext50_32x4d", resnext([3, 4, 6, 3], 32, 4, false));
builder!(resnext101_32x8d, "resnext101_32x8d", resnext([3, 4, 23, 3], 32, 8, false));
builder!(resnext101_64x4d, "resnext101_64x4d", resnext([3, 4, 23, 3], 64, 4, false));
builder!(
    resnet_v1_50_d,
    "resnet_v1_50_d",
    ResNetSpec { deep_stem_avg_down: true, ..spec(Block::Bottleneck, [3, 4, 6, 3]) }
);
builder!(
    resnet_v1_101_d,
    "resnet_v1_101_d",
    ResNetSpec { deep_stem_avg_down: true, ..spec(Block::Bottleneck, [3, 4, 23, 3]) }
);
builder!(resnext_50_32x4d_d, "resnext_50_32x4d_d", resnext([3, 4, 6, 3], 32, 4, true));
builder!(resnext_50_64x4d_d, "resnext_50_64x4d_d", resnext([3, 4, 6, 3], 64, 4, true));
builder!(resnext_101_64x4d_d, "resnext_101_64x4d_d", resnext([3, 4, 23, 3], 64, 4, true));
builder!(se_resnet50, "se_resnet50", ResNetSpec { se_reduction: Some(16), ..spec(Block::Bottleneck, [3, 4, 6, 3]) });

const IMAGE: &[usize] = &[3, 224, 224];

pub fn models() -> Vec<ZooModel> {
    let m = Family::new("resnet", IMAGE);
    vec![
        m.model("resnet18", &[], "ResNet-18 (DLBS)", published(TORCHVISION, 11_689_512, 1.814), resnet18),
        m.model("resnet34", &[], "ResNet-34 (DLBS)", published(TORCHVISION, 21_797_672, 3.664), resnet34),
        m.model(
            "resnet50",
            &["resnet_v1_50", "resnet-50"],
            "ResNet-50 v1.5 (AI Matrix, DLBS, seed 000's resnet_v1_50)",
            published(TORCHVISION, 25_557_032, 4.089),
            resnet50,
        ),
        m.model("resnet101", &[], "ResNet-101 (DLBS)", published(TORCHVISION, 44_549_160, 7.801), resnet101),
        m.model(
            "resnet152",
            &[],
            "ResNet-152 (AI Matrix, DLBS)",
            published(TORCHVISION, 60_192_808, 11.514),
            resnet152,
        ),
        m.model(
            "resnet200",
            &[],
            "ResNet-200, stages 3-24-36-3 (DLBS)",
            published(TIMM_COMPUTED, 64_673_832, 15.007),
            resnet200,
        ),
        m.model("resnet269", &[], "ResNet-269, stages 3-30-48-8 (DLBS; no torchvision/timm version)", None, resnet269),
        m.model("resnext50_32x4d", &[], "ResNeXt-50 32x4d", published(TORCHVISION, 25_028_904, 4.230), resnext50_32x4d),
        m.model(
            "resnext101_32x8d",
            &[],
            "ResNeXt-101 32x8d",
            published(TORCHVISION, 88_791_336, 16.414),
            resnext101_32x8d,
        ),
        m.model(
            "resnext101_64x4d",
            &[],
            "ResNeXt-101 64x4d",
            published(TORCHVISION, 83_455_272, 15.460),
            resnext101_64x4d,
        ),
        m.model(
            "resnet_v1_50_d",
            &["resnet50d"],
            "ResNet-50-D: deep stem, avg-pool shortcut (seed 000)",
            published(TIMM_COMPUTED, 25_576_264, 4.329),
            resnet_v1_50_d,
        ),
        m.model(
            "resnet_v1_101_d",
            &["resnet101d"],
            "ResNet-101-D (seed 000)",
            published(TIMM_COMPUTED, 44_568_392, 8.041),
            resnet_v1_101_d,
        ),
        m.model(
            "resnext_50_32x4d_d",
            &["resnext50d_32x4d"],
            "ResNeXt-50 32x4d with ResNet-D tweaks (seed 000)",
            published(TIMM_COMPUTED, 25_048_136, 4.470),
            resnext_50_32x4d_d,
        ),
        m.model(
            "resnext_50_64x4d_d",
            &[],
            "ResNeXt-50 64x4d with ResNet-D tweaks (seed 000)",
            published(TIMM_COMPUTED, 45_211_720, 8.221),
            resnext_50_64x4d_d,
        ),
        m.model(
            "resnext_101_64x4d_d",
            &[],
            "ResNeXt-101 64x4d with ResNet-D tweaks (seed 000)",
            published(TIMM_COMPUTED, 83_474_504, 15.700),
            resnext_101_64x4d_d,
        ),
        m.model(
            "se_resnet50",
            &["seresnet50", "se-resnet-50"],
            "SE-ResNet-50, reduction 16 (Hu et al.; seed 000)",
            published(TIMM_COMPUTED, 28_088_024, 4.092),
            se_resnet50,
        ),
    ]
}
