//! Plain (non-branching) CNNs: AlexNet two ways, OverFeat, VGG, and Keras' CIFAR-10
//! example (seed 002). Fully connected layers follow the input size: there is no
//! adaptive pooling, so at a non-default input the first fc layer changes size.

use super::blocks::conv_relu;
use super::sources::*;
use super::{published, published_params, ZooModel};
use crate::graph::{conv, pool, GraphError, Net, NetBuilder, Shape, T};

/// fc -> relu -> dropout for each width, then the 1000-way classifier.
fn fc_head(g: &mut NetBuilder, x: T, widths: &[usize], classes: usize) -> T {
    let mut x = g.flatten(x);
    for &w in widths {
        x = g.linear(x, w);
        x = g.relu(x);
        x = g.dropout(x, 0.5);
    }
    g.named("fc").linear(x, classes)
}

/// BVLC AlexNet as DLBS runs it: **without** the two-GPU groups of conv2/4/5 (DLBS's
/// footnote: "roughly from 0.7 gFLOP to 1.14 gFLOP"), with LRN, at 227x227.
///
/// | layer | config                         | output |
/// |-------|--------------------------------|--------|
/// | conv1 | 11x11, 96, /4; relu; LRN; pool | 27     |
/// | conv2 | 5x5, 256, pad 2; relu; LRN; pool | 13   |
/// | conv3-5 | 3x3: 384, 384, 256; pool     | 6      |
/// | fc    | 4096, 4096, 1000               |        |
fn alexnet(input: &Shape) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new("alexnet", input.dims());
    let x = g.input();
    let x = conv_relu(&mut g, x, conv(96, 11).stride(4));
    let x = g.lrn(x, 5, 1e-4, 0.75, 1.0);
    let x = g.max_pool(x, pool(3).stride(2));
    let x = conv_relu(&mut g, x, conv(256, 5).pad(2));
    let x = g.lrn(x, 5, 1e-4, 0.75, 1.0);
    let x = g.max_pool(x, pool(3).stride(2));
    let x = conv_relu(&mut g, x, conv(384, 3).pad(1));
    let x = conv_relu(&mut g, x, conv(384, 3).pad(1));
    let x = conv_relu(&mut g, x, conv(256, 3).pad(1));
    let x = g.max_pool(x, pool(3).stride(2));
    let x = fc_head(&mut g, x, &[4096, 4096], 1000);
    g.finish(x)
}

/// "One weird trick" AlexNet (Krizhevsky 2014) = torchvision's `alexnet`: 64-192-384-256-256.
fn alexnet_owt(input: &Shape) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new("alexnet_owt", input.dims());
    let x = g.input();
    let x = conv_relu(&mut g, x, conv(64, 11).stride(4).pad(2));
    let x = g.max_pool(x, pool(3).stride(2));
    let x = conv_relu(&mut g, x, conv(192, 5).pad(2));
    let x = g.max_pool(x, pool(3).stride(2));
    let x = conv_relu(&mut g, x, conv(384, 3).pad(1));
    let x = conv_relu(&mut g, x, conv(256, 3).pad(1));
    let x = conv_relu(&mut g, x, conv(256, 3).pad(1));
    let x = g.max_pool(x, pool(3).stride(2));
    let x = g.flatten(x);
    let x = g.dropout(x, 0.5);
    let x = g.linear(x, 4096);
    let x = g.relu(x);
    let x = g.dropout(x, 0.5);
    let x = g.linear(x, 4096);
    let x = g.relu(x);
    let x = g.named("fc").linear(x, 1000);
    g.finish(x)
}

/// OverFeat "fast" (Sermanet et al. 2013) as tf_cnn_benchmarks defines it, with the
/// dropout DLBS adds after fc6 and fc7; input 231x231.
fn overfeat(input: &Shape) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new("overfeat", input.dims());
    let x = g.input();
    let x = conv_relu(&mut g, x, conv(96, 11).stride(4).valid());
    let x = g.max_pool(x, pool(2));
    let x = conv_relu(&mut g, x, conv(256, 5).valid());
    let x = g.max_pool(x, pool(2));
    let x = conv_relu(&mut g, x, conv(512, 3).same());
    let x = conv_relu(&mut g, x, conv(1024, 3).same());
    let x = conv_relu(&mut g, x, conv(1024, 3).same());
    let x = g.max_pool(x, pool(2));
    let x = fc_head(&mut g, x, &[3072, 4096], 1000);
    g.finish(x)
}

/// VGG configurations A, B, D, E (Simonyan & Zisserman, table 1); 0 = 2x2 max pool.
const VGG11: &[usize] = &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];
const VGG13: &[usize] = &[64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];
const VGG16: &[usize] = &[64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0];
const VGG19: &[usize] = &[64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0];

fn vgg(name: &str, config: &[usize], input: &Shape) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new(name, input.dims());
    let mut x = g.input();
    g.scope("features", |g| {
        for &c in config {
            x = if c == 0 { g.max_pool(x, pool(2)) } else { conv_relu(g, x, conv(c, 3).pad(1)) };
        }
    });
    let x = fc_head(&mut g, x, &[4096, 4096], 1000);
    g.finish(x)
}

fn vgg11(i: &Shape) -> Result<Net, GraphError> {
    vgg("vgg11", VGG11, i)
}
fn vgg13(i: &Shape) -> Result<Net, GraphError> {
    vgg("vgg13", VGG13, i)
}
fn vgg16(i: &Shape) -> Result<Net, GraphError> {
    vgg("vgg16", VGG16, i)
}
fn vgg19(i: &Shape) -> Result<Net, GraphError> {
    vgg("vgg19", VGG19, i)
}

/// Keras' `examples/cifar10_cnn.py`, the model seed 002 trains in six frameworks:
/// Conv32 same, Conv32 valid, pool, Conv64 same, Conv64 valid, pool, Dense 512, Dense 10.
fn keras_cifar10_cnn(input: &Shape) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new("keras_cifar10_cnn", input.dims());
    let x = g.input();
    let x = conv_relu(&mut g, x, conv(32, 3).same());
    let x = conv_relu(&mut g, x, conv(32, 3).valid());
    let x = g.max_pool(x, pool(2));
    let x = g.dropout(x, 0.25);
    let x = conv_relu(&mut g, x, conv(64, 3).same());
    let x = conv_relu(&mut g, x, conv(64, 3).valid());
    let x = g.max_pool(x, pool(2));
    let x = g.dropout(x, 0.25);
    let x = g.flatten(x);
    let x = g.linear(x, 512);
    let x = g.relu(x);
    let x = g.dropout(x, 0.5);
    let x = g.named("fc").linear(x, 10);
    let x = g.softmax(x);
    g.finish(x)
}

pub fn models() -> Vec<ZooModel> {
    let m = |name, aliases, family, input, summary, published, build| ZooModel {
        name,
        aliases,
        family,
        input,
        summary,
        published,
        build: Some(build),
    };
    vec![
        m(
            "alexnet",
            &["alexnet_bvlc_nogroups"],
            "alexnet",
            &[3, 227, 227],
            "BVLC AlexNet without groups, LRN (DLBS `alexnet`)",
            published_params(DLBS, 62_378_344),
            alexnet,
        ),
        m(
            "alexnet_owt",
            &["torchvision_alexnet"],
            "alexnet",
            &[3, 224, 224],
            "one-weird-trick AlexNet = torchvision `alexnet` (DLBS `alexnet_owt`, run at 227)",
            published(TORCHVISION, 61_100_840, 0.714),
            alexnet_owt,
        ),
        m(
            "overfeat",
            &[],
            "overfeat",
            &[3, 231, 231],
            "OverFeat fast, tf_cnn_benchmarks version (DLBS)",
            published_params(DLBS, 145_920_872),
            overfeat,
        ),
        m(
            "vgg11",
            &[],
            "vgg",
            &[3, 224, 224],
            "VGG-11, configuration A (DLBS)",
            published(TORCHVISION, 132_863_336, 7.609),
            vgg11,
        ),
        m(
            "vgg13",
            &[],
            "vgg",
            &[3, 224, 224],
            "VGG-13, configuration B (DLBS)",
            published(TORCHVISION, 133_047_848, 11.308),
            vgg13,
        ),
        m(
            "vgg16",
            &[],
            "vgg",
            &[3, 224, 224],
            "VGG-16, configuration D (DLBS)",
            published(TORCHVISION, 138_357_544, 15.470),
            vgg16,
        ),
        m(
            "vgg19",
            &[],
            "vgg",
            &[3, 224, 224],
            "VGG-19, configuration E (DLBS)",
            published(TORCHVISION, 143_667_240, 19.632),
            vgg19,
        ),
        m(
            "keras_cifar10_cnn",
            &["cifar10_cnn"],
            "keras",
            &[3, 32, 32],
            "Keras CIFAR-10 example CNN (seed 002)",
            published("Keras model.summary() in seed 002", 1_250_858, 0.020741),
            keras_cifar10_cnn,
        ),
    ]
}
