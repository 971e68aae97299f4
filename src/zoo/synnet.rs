//! synNet: AI Matrix's synthetic CNN (alibaba/ai-matrix, `nvcnn.py`,
//! `inference_synthetic_net`), layer for layer as in `shared/reference/synnet.md`.
//!
//! Every conv: stride 1, TensorFlow `SAME` padding (asymmetric for even kernels), no
//! bias, batch norm, ReLU. Every group ends with a 2x2/2 `VALID` max pool. After group 6
//! (7x7, pooled to 3x3x43): flatten and a 1000-way fully connected layer.

use super::blocks::conv_bn_relu;
use super::{Published, ZooModel};
use crate::graph::{conv, pool, GraphError, Net, NetBuilder, Shape};

/// `(kernel, out_channels)` per conv, one row per group (input 224, 112, 56, 28, 14, 7).
#[rustfmt::skip]
pub const GROUPS: [&[(usize, usize)]; 6] = [
    &[(5, 42), (3, 40), (3, 48)],
    &[(5, 4), (5, 93), (5, 2), (5, 52), (5, 46), (5, 54), (5, 2), (5, 22), (3, 2), (3, 46), (3, 206)],
    &[(5, 23), (3, 273), (3, 25), (3, 299), (3, 449), (3, 49), (3, 406), (3, 12), (3, 48), (3, 209), (3, 39), (3, 309)],
    &[(5, 192), (5, 90), (5, 88), (5, 663), (3, 23), (3, 139), (3, 91), (3, 580), (3, 310), (3, 188), (3, 55), (3, 252), (3, 25), (3, 49), (3, 862)],
    &[(5, 147), (5, 177), (5, 82), (4, 517), (3, 307), (3, 182), (3, 367), (3, 131), (3, 291), (2, 456), (1, 345)],
    &[(5, 150), (5, 298), (4, 48), (4, 48), (3, 48), (3, 48), (2, 48), (2, 48), (1, 40), (1, 43)],
];

fn synnet(input: &Shape) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new("synnet", input.dims());
    let mut x = g.input();
    for (i, group) in GROUPS.iter().enumerate() {
        x = g.scope(format!("group{}", i + 1), |g| {
            let x = group.iter().fold(x, |x, &(k, c)| conv_bn_relu(g, x, conv(c, k).same()));
            g.max_pool(x, pool(2).stride(2))
        });
    }
    let x = g.flatten(x);
    let x = g.named("fc").linear(x, 1000);
    g.finish(x)
}

pub fn models() -> Vec<ZooModel> {
    vec![ZooModel {
        name: "synnet",
        aliases: &["syn_net"],
        family: "synnet",
        input: &[3, 224, 224],
        summary: "AI Matrix's synthetic CNN: 62 convs in 6 groups (seed 004)",
        published: Some(Published {
            source: "shared/reference/synnet.md (AI Matrix nvcnn.py)",
            params: None,
            gmacs: Some(19.1),
        }),
        build: Some(synnet),
    }]
}
