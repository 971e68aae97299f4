//! Deterministic parameters for any net, on the host, independent of any backend.
//!
//! Every tensor comes from its own ChaCha8 stream seeded by `(seed, node name, tensor
//! name)`, so a node's weights do not change when other nodes are added or removed, and
//! the same seed gives the same weights on every machine and backend (candle, the ONNX
//! export, the PyTorch reference).
//!
//! Distributions (chosen so activations stay of order one through deep nets):
//! - conv and linear weights: Kaiming uniform for ReLU, U(-b, b) with b = sqrt(6 / fan_in);
//! - biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's default);
//! - batch-norm: gamma U(0.5, 1.5), beta U(-0.2, 0.2), running mean U(-0.2, 0.2), running
//!   variance U(0.5, 1.5): not the identity, so folding and normalisation are exercised.

use crate::graph::{Net, Node, Op};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// A host tensor: row-major f32 data with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn elements(&self) -> usize {
        self.data.len()
    }
}

/// The parameters of one node, by role.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeParams {
    /// weight `[out, in / groups, kh, kw]`, optional bias `[out]`.
    Conv { weight: HostTensor, bias: Option<HostTensor> },
    /// weight `[out, in]`, optional bias `[out]` (PyTorch's layout).
    Linear { weight: HostTensor, bias: Option<HostTensor> },
    /// Each `[channels]`.
    BatchNorm { gamma: HostTensor, beta: HostTensor, mean: HostTensor, var: HostTensor, eps: f64 },
}

/// All parameters of a net, by node name (sorted, so iteration is deterministic).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Weights {
    pub seed: u64,
    pub by_node: BTreeMap<String, NodeParams>,
}

/// A stable 64-bit hash (FNV-1a) of a name: `std`'s hasher may change between versions.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

fn stream(seed: u64, node: &str, tensor: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ fnv1a(node).rotate_left(17) ^ fnv1a(tensor))
}

fn uniform(rng: &mut ChaCha8Rng, shape: Vec<usize>, lo: f32, hi: f32) -> HostTensor {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    HostTensor { shape, data }
}

impl Weights {
    /// Parameters for every conv, linear and batch-norm node of `net`.
    pub fn init(net: &Net, seed: u64) -> Weights {
        let mut by_node = BTreeMap::new();
        for node in &net.nodes {
            if let Some(p) = init_node(net, node, seed) {
                by_node.insert(node.name.clone(), p);
            }
        }
        Weights { seed, by_node }
    }

    pub fn get(&self, node: &str) -> Option<&NodeParams> {
        self.by_node.get(node)
    }

    /// Trainable parameter count (must equal the analysis' count).
    pub fn trainable_elements(&self) -> usize {
        self.by_node
            .values()
            .map(|p| match p {
                NodeParams::Conv { weight, bias } | NodeParams::Linear { weight, bias } => {
                    weight.elements() + bias.as_ref().map_or(0, HostTensor::elements)
                }
                NodeParams::BatchNorm { gamma, beta, .. } => gamma.elements() + beta.elements(),
            })
            .sum()
    }
}

fn init_node(net: &Net, node: &Node, seed: u64) -> Option<NodeParams> {
    let input = |i: usize| &net.nodes[node.inputs[i]].shape;
    let name = node.name.as_str();
    match &node.op {
        Op::Conv2d(c) => {
            let cin = input(0).channels() / c.groups;
            let fan_in = (cin * c.kernel[0] * c.kernel[1]) as f32;
            let (w, b) = ((6.0 / fan_in).sqrt(), 1.0 / fan_in.sqrt());
            let weight =
                uniform(&mut stream(seed, name, "weight"), vec![c.out_channels, cin, c.kernel[0], c.kernel[1]], -w, w);
            let bias = c.bias.then(|| uniform(&mut stream(seed, name, "bias"), vec![c.out_channels], -b, b));
            Some(NodeParams::Conv { weight, bias })
        }
        Op::Linear { out_features, bias } => {
            let fin = input(0).elements() as usize;
            let (w, b) = ((6.0 / fin as f32).sqrt(), 1.0 / (fin as f32).sqrt());
            let weight = uniform(&mut stream(seed, name, "weight"), vec![*out_features, fin], -w, w);
            let bias = bias.then(|| uniform(&mut stream(seed, name, "bias"), vec![*out_features], -b, b));
            Some(NodeParams::Linear { weight, bias })
        }
        Op::BatchNorm { eps } => {
            let c = node.shape.channels();
            Some(NodeParams::BatchNorm {
                gamma: uniform(&mut stream(seed, name, "gamma"), vec![c], 0.5, 1.5),
                beta: uniform(&mut stream(seed, name, "beta"), vec![c], -0.2, 0.2),
                mean: uniform(&mut stream(seed, name, "running_mean"), vec![c], -0.2, 0.2),
                var: uniform(&mut stream(seed, name, "running_var"), vec![c], 0.5, 1.5),
                eps: *eps,
            })
        }
        _ => None,
    }
}

/// A synthetic input batch, U(-1, 1) from the seed (AI Matrix's "synthetic input").
pub fn synthetic_input(net: &Net, batch: usize, seed: u64) -> HostTensor {
    let mut shape = vec![batch];
    shape.extend_from_slice(net.input_shape().dims());
    uniform(&mut stream(seed, "<input>", "data"), shape, -1.0, 1.0)
}

/// Random class labels in `0..classes`, for the training loss.
pub fn synthetic_labels(batch: usize, classes: usize, seed: u64) -> Vec<u32> {
    let mut rng = stream(seed, "<labels>", "data");
    (0..batch).map(|_| rng.random_range(0..classes as u32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze;
    use crate::zoo;

    #[test]
    fn weights_are_deterministic_and_count_like_the_analysis() {
        let net = zoo::build("resnet18", None).unwrap();
        let a = Weights::init(&net, 7);
        let b = Weights::init(&net, 7);
        assert_eq!(a, b);
        assert_ne!(a, Weights::init(&net, 8));
        assert_eq!(a.trainable_elements() as u64, analyze(&net, 1, crate::Dtype::F32).totals.params);
    }

    #[test]
    fn a_node_keeps_its_weights_when_others_change() {
        let small = zoo::build("resnet18", None).unwrap();
        let big = zoo::build("resnet34", None).unwrap();
        let (a, b) = (Weights::init(&small, 1), Weights::init(&big, 1));
        assert_eq!(a.get("conv1"), b.get("conv1"));
        assert_eq!(a.get("layer1.0.conv1"), b.get("layer1.0.conv1"));
    }

    #[test]
    fn kaiming_bound_holds() {
        let net = zoo::build("resnet18", None).unwrap();
        let w = Weights::init(&net, 3);
        let Some(NodeParams::Conv { weight, .. }) = w.get("conv1") else { panic!() };
        let bound = (6.0f32 / (3.0 * 49.0)).sqrt();
        assert!(weight.data.iter().all(|v| v.abs() <= bound));
        let max = weight.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max > 0.95 * bound, "samples should reach near the bound");
    }
}
