//! SqueezeNet (Iandola et al. 2016, table 1) as torchvision defines it: v1.0 is the
//! paper's, v1.1 (from the SqueezeNet repository) has a 3x3 stem and pools earlier, for
//! 2.4x fewer MACs at the same accuracy. Every convolution has a bias and a ReLU; max
//! pools are 3x3/2 with `ceil_mode`.
//!
//! | layer  | v1.0: squeeze, expand (1x1 = 3x3) | v1.1              |
//! |--------|-----------------------------------|-------------------|
//! | conv1  | 7x7, 96, /2; pool                 | 3x3, 64, /2; pool |
//! | fire2  | 16, 64                            | 16, 64            |
//! | fire3  | 16, 64                            | 16, 64; pool      |
//! | fire4  | 32, 128; pool                     | 32, 128           |
//! | fire5  | 32, 128                           | 32, 128; pool     |
//! | fire6  | 48, 192                           | 48, 192           |
//! | fire7  | 48, 192                           | 48, 192           |
//! | fire8  | 64, 256; pool                     | 64, 256           |
//! | fire9  | 64, 256                           | 64, 256           |
//! | conv10 | dropout 0.5; 1x1, 1000; global average pool (both)    |

use super::blocks::conv_relu;
use super::sources::*;
use super::{published, Family, ZooModel};
use crate::graph::{conv, pool, GraphError, Net, NetBuilder, Shape, T};

enum Layer {
    Pool,
    /// Squeeze channels, expand channels (each of the 1x1 and 3x3 branches).
    Fire(usize, usize),
}
use Layer::{Fire, Pool};

const V1_0: &[Layer] = &[
    Pool,
    Fire(16, 64),
    Fire(16, 64),
    Fire(32, 128),
    Pool,
    Fire(32, 128),
    Fire(48, 192),
    Fire(48, 192),
    Fire(64, 256),
    Pool,
    Fire(64, 256),
];
const V1_1: &[Layer] = &[
    Pool,
    Fire(16, 64),
    Fire(16, 64),
    Pool,
    Fire(32, 128),
    Fire(32, 128),
    Pool,
    Fire(48, 192),
    Fire(48, 192),
    Fire(64, 256),
    Fire(64, 256),
];

/// Squeeze 1x1, then expand with 1x1 and 3x3 side by side, concatenated.
fn fire(g: &mut NetBuilder, x: T, squeeze: usize, expand: usize) -> T {
    let s = conv_relu(g, x, conv(squeeze, 1));
    let e1 = conv_relu(g, s, conv(expand, 1));
    let e3 = conv_relu(g, s, conv(expand, 3).pad(1));
    g.cat(&[e1, e3])
}

fn squeezenet(name: &str, input: &Shape, stem: (usize, usize), layers: &[Layer]) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new(name, input.dims());
    let x = g.input();
    let (out, kernel) = stem;
    let mut x = conv_relu(&mut g, x, conv(out, kernel).stride(2));
    let mut n = 1;
    for layer in layers {
        x = match *layer {
            Pool => g.max_pool(x, pool(3).stride(2).ceil()),
            Fire(s, e) => {
                n += 1;
                g.scope(format!("fire{n}"), |g| fire(g, x, s, e))
            }
        };
    }
    let x = g.dropout(x, 0.5);
    let x = g.named("conv10").conv(x, conv(1000, 1));
    let x = g.relu(x);
    let x = g.global_avg_pool(x);
    let x = g.flatten(x);
    g.finish(x)
}

fn squeezenet1_0(input: &Shape) -> Result<Net, GraphError> {
    squeezenet("squeezenet1_0", input, (96, 7), V1_0)
}
fn squeezenet1_1(input: &Shape) -> Result<Net, GraphError> {
    squeezenet("squeezenet1_1", input, (64, 3), V1_1)
}

pub fn models() -> Vec<ZooModel> {
    let m = Family::new("squeezenet", &[3, 224, 224]);
    vec![
        m.model(
            "squeezenet1_0",
            &["squeezenet1.0", "squeezenet_v1.0"],
            "SqueezeNet v1.0, the paper's: 7x7 stem, fire modules 2-9",
            published(TORCHVISION, 1_248_424, 0.819),
            squeezenet1_0,
        ),
        m.model(
            "squeezenet1_1",
            &["squeezenet1.1", "squeezenet_v1.1"],
            "SqueezeNet v1.1: 3x3 stem, earlier pooling, 2.4x fewer MACs",
            published(TORCHVISION, 1_235_496, 0.349),
            squeezenet1_1,
        ),
    ]
}
