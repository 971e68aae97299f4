//! What one node costs per sample: parameters, multiply-accumulates, other arithmetic.
//!
//! Conventions (also in `synprof inspect --help` and the report):
//! - MACs: conv2d and linear only, `output elements x (in_channels / groups) x kh x kw`
//!   and `in x out` (torchvision/fvcore "GFLOPS" are these MACs). Biases are not MACs.
//! - Params: trainable ones; batch-norm gamma and beta count, its running mean and
//!   variance do not (they are reported apart, as buffers).
//! - Other arithmetic, per output element unless said: bias add 1; batch-norm 2 (scale,
//!   shift); relu/relu6/scale/mul 1; add 1 per extra input; sigmoid, tanh, silu, gelu,
//!   hard-swish, hard-sigmoid 4; softmax 3; max/avg pool: one per window element;
//!   global average pool: one per input element; LRN: size + 3. Data movement ops
//!   (concat, slice, shuffle, flatten, dropout) do no arithmetic.

use crate::graph::{Net, Node, Op};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCost {
    pub params: u64,
    /// Running mean and variance of batch-norm: state, not trainable.
    pub buffers: u64,
    pub macs: u64,
    pub other_flops: u64,
}

pub fn node_cost(net: &Net, node: &Node) -> NodeCost {
    let out = node.shape.elements();
    let input = |i: usize| &net.nodes[node.inputs[i]].shape;
    let mut c = NodeCost::default();
    match &node.op {
        Op::Conv2d(conv) => {
            let cin = input(0).channels() as u64;
            let per_output = cin / conv.groups as u64 * conv.kernel[0] as u64 * conv.kernel[1] as u64;
            c.params = per_output * conv.out_channels as u64;
            c.macs = per_output * out;
            if conv.bias {
                c.params += conv.out_channels as u64;
                c.other_flops = out;
            }
        }
        Op::Linear { out_features, bias } => {
            let fin = input(0).elements();
            c.params = fin * *out_features as u64;
            c.macs = c.params;
            if *bias {
                c.params += *out_features as u64;
                c.other_flops = *out_features as u64;
            }
        }
        Op::BatchNorm { .. } => {
            let channels = node.shape.channels() as u64;
            c.params = 2 * channels;
            c.buffers = 2 * channels;
            c.other_flops = 2 * out;
        }
        Op::Relu | Op::Relu6 | Op::Scale { .. } | Op::Mul => c.other_flops = out,
        Op::Sigmoid | Op::Tanh | Op::Silu | Op::Gelu | Op::HardSwish | Op::HardSigmoid => c.other_flops = 4 * out,
        Op::Softmax => c.other_flops = 3 * out,
        Op::Add => c.other_flops = out * (node.inputs.len() as u64 - 1),
        Op::MaxPool2d(p) | Op::AvgPool2d(p) => c.other_flops = out * p.kernel[0] as u64 * p.kernel[1] as u64,
        Op::GlobalAvgPool => c.other_flops = input(0).elements(),
        Op::Lrn { size, .. } => c.other_flops = out * (*size as u64 + 3),
        Op::Input { .. }
        | Op::Concat { .. }
        | Op::ChannelShuffle { .. }
        | Op::ChannelSlice { .. }
        | Op::Flatten
        | Op::Dropout { .. } => {}
    }
    c
}

/// Ops that are views at inference and move no data.
pub fn is_view(op: &Op) -> bool {
    matches!(op, Op::Input { .. } | Op::Flatten | Op::Dropout { .. })
}

/// Elements read and written by a node per sample (weights excluded).
pub fn activation_traffic_elements(net: &Net, node: &Node) -> u64 {
    if is_view(&node.op) {
        return 0;
    }
    let read: u64 = node.inputs.iter().map(|&i| net.nodes[i].shape.elements()).sum();
    read + node.shape.elements()
}
