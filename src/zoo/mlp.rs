//! Fully connected networks from DLBS, and DLBS's recurrent DeepSpeech2 (listed, not built).

use super::sources::*;
use super::{published, ZooModel};
use crate::graph::{GraphError, Net, NetBuilder, Shape};

fn mlp(name: &str, input: &Shape, hidden: &[usize], classes: usize) -> Result<Net, GraphError> {
    let mut g = NetBuilder::new(name, input.dims());
    let mut x = g.input();
    if input.rank() > 1 {
        x = g.flatten(x);
    }
    for &width in hidden {
        x = g.linear(x, width);
        x = g.relu(x);
    }
    let x = g.named("fc").linear(x, classes);
    g.finish(x)
}

/// Hybrid HMM-DNN acoustic model (DLBS): 540 features, five 2048-wide layers, 8192 senones.
fn acoustic_model(input: &Shape) -> Result<Net, GraphError> {
    mlp("acoustic_model", input, &[2048; 5], 8192)
}

/// DeepMNIST (Ciresan et al. 2010, DLBS): 784-2500-2000-1500-1000-500-10.
fn deep_mnist(input: &Shape) -> Result<Net, GraphError> {
    mlp("deep_mnist", input, &[2500, 2000, 1500, 1000, 500], 10)
}

pub fn models() -> Vec<ZooModel> {
    vec![
        ZooModel {
            name: "acoustic_model",
            aliases: &[],
            family: "mlp",
            input: &[540],
            summary: "fully connected 540-5x2048-8192 acoustic model (DLBS)",
            published: published(DLBS, 34_678_784, 0.034660),
            build: Some(acoustic_model),
        },
        ZooModel {
            name: "deep_mnist",
            aliases: &["deepmnist"],
            family: "mlp",
            input: &[1, 28, 28],
            summary: "fully connected 784-2500-2000-1500-1000-500-10 (DLBS)",
            published: published(DLBS, 11_972_510, 0.011965),
            build: Some(deep_mnist),
        },
        ZooModel {
            name: "deep_speech2",
            aliases: &["deepspeech2"],
            family: "rnn",
            input: &[1, 200, 161],
            summary: "recurrent (bidirectional RNN/GRU layers over time); synprof's IR describes CNNs, so DLBS's DeepSpeech2 is not available",
            published: None,
            build: None,
        },
    ]
}
