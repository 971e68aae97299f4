//! Workload analysis: per-layer and total parameters, MACs, FLOPs, bytes moved,
//! arithmetic intensity and activation memory, plus the workload-characteristics
//! summary the synthetic generator matches. Counting conventions: [`cost`].

pub mod characteristics;
pub mod cost;
pub mod memory;

use crate::dtype::Dtype;
use crate::graph::{Net, OpClass, Shape};
pub use characteristics::Characteristics;
pub use cost::{node_cost, NodeCost};
use serde::Serialize;

/// One row of the layer table. Counts are for the whole batch except `params`.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    pub name: String,
    pub op: &'static str,
    pub class: OpClass,
    /// Per-sample output shape.
    pub output_shape: Shape,
    pub params: u64,
    pub buffers: u64,
    pub macs: u64,
    /// 2 x MACs + other arithmetic.
    pub flops: u64,
    pub other_flops: u64,
    pub output_bytes: u64,
    /// Minimum traffic: inputs and outputs once, weights once.
    pub bytes_moved: u64,
    /// FLOPs per byte moved; 0 for layers that move nothing.
    pub arithmetic_intensity: f64,
    /// Share of the net's MACs, in [0, 1].
    pub mac_share: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Totals {
    pub params: u64,
    /// Batch-norm running mean and variance (not trainable, not in `params`).
    pub buffers: u64,
    pub batch_norm_layers: usize,
    pub macs: u64,
    pub flops: u64,
    pub other_flops: u64,
    pub weight_bytes: u64,
    /// Sum of every layer's output (what training keeps for the backward pass, roughly).
    pub activation_bytes: u64,
    /// Largest set of activations alive at once in an inference pass.
    pub peak_activation_bytes: u64,
    pub bytes_moved: u64,
    pub arithmetic_intensity: f64,
    pub conv_layers: usize,
    pub linear_layers: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub model: String,
    pub input_shape: Shape,
    pub batch: usize,
    pub dtype: Dtype,
    pub layers: Vec<LayerRow>,
    pub totals: Totals,
}

/// Count a net at a batch size and dtype.
pub fn analyze(net: &Net, batch: usize, dtype: Dtype) -> Analysis {
    let b = batch as u64;
    let size = dtype.size_bytes();
    let costs: Vec<NodeCost> = net.nodes.iter().map(|n| node_cost(net, n)).collect();
    let total_macs: u64 = costs.iter().map(|c| c.macs).sum::<u64>().saturating_mul(b);
    let layers: Vec<LayerRow> = net
        .nodes
        .iter()
        .zip(&costs)
        .map(|(node, c)| {
            // Saturating: absurd batches of absurd nets must not wrap around.
            let macs = c.macs.saturating_mul(b);
            let other = c.other_flops.saturating_mul(b);
            let flops = macs.saturating_mul(2).saturating_add(other);
            let bytes_moved = cost::activation_traffic_elements(net, node)
                .saturating_mul(b)
                .saturating_add(c.params)
                .saturating_mul(size);
            LayerRow {
                name: node.name.clone(),
                op: node.op.type_name(),
                class: node.op.class(),
                output_shape: node.shape.clone(),
                params: c.params,
                buffers: c.buffers,
                macs,
                flops,
                other_flops: other,
                output_bytes: if cost::is_view(&node.op) {
                    0
                } else {
                    node.shape.elements().saturating_mul(b).saturating_mul(size)
                },
                bytes_moved,
                arithmetic_intensity: ratio(flops, bytes_moved),
                mac_share: ratio(macs, total_macs),
            }
        })
        .collect();
    let sum = |f: fn(&LayerRow) -> u64| layers.iter().map(f).fold(0u64, u64::saturating_add);
    let params = sum(|l| l.params);
    let flops = sum(|l| l.flops);
    let bytes_moved = sum(|l| l.bytes_moved);
    let totals = Totals {
        params,
        buffers: sum(|l| l.buffers),
        batch_norm_layers: layers.iter().filter(|l| l.op == "batch_norm").count(),
        macs: total_macs,
        flops,
        other_flops: sum(|l| l.other_flops),
        weight_bytes: params * size,
        activation_bytes: sum(|l| l.output_bytes),
        peak_activation_bytes: memory::peak_activation_elements(net).saturating_mul(b).saturating_mul(size),
        bytes_moved,
        arithmetic_intensity: ratio(flops, bytes_moved),
        conv_layers: layers.iter().filter(|l| l.class == OpClass::Conv).count(),
        linear_layers: layers.iter().filter(|l| l.class == OpClass::Linear).count(),
    };
    Analysis { model: net.name.clone(), input_shape: net.input_shape().clone(), batch, dtype, layers, totals }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{conv, pool, NetBuilder};

    fn tiny() -> Net {
        // Keras' CIFAR-10 example: the counts are in its model.summary().
        let mut g = NetBuilder::new("cifar", &[3, 32, 32]);
        let x = g.input();
        let x = g.conv(x, conv(32, 3).pad(1));
        let x = g.relu(x);
        let x = g.conv(x, conv(32, 3));
        let x = g.relu(x);
        let x = g.max_pool(x, pool(2));
        let x = g.flatten(x);
        let x = g.linear(x, 10);
        g.finish(x).unwrap()
    }

    #[test]
    fn counts_a_small_net_by_hand() {
        let a = analyze(&tiny(), 1, Dtype::F32);
        // conv1: 3*9*32 + 32 = 896, conv2: 32*9*32 + 32 = 9248, fc: 7200*10 + 10
        assert_eq!(a.totals.params, 896 + 9248 + 72_010);
        assert_eq!(a.layers[1].macs, 32 * 32 * 32 * 27);
        assert_eq!(a.layers[3].macs, 30 * 30 * 32 * 288);
        assert_eq!(a.totals.macs, 884_736 + 8_294_400 + 72_000);
        assert_eq!(a.totals.flops, 2 * a.totals.macs + a.totals.other_flops);
        assert_eq!(a.totals.conv_layers, 2);
        // shares sum to one
        let share: f64 = a.layers.iter().map(|l| l.mac_share).sum();
        assert!((share - 1.0).abs() < 1e-12);
    }

    #[test]
    fn batch_and_dtype_scale_what_they_should() {
        let net = tiny();
        let a1 = analyze(&net, 1, Dtype::F32);
        let a8 = analyze(&net, 8, Dtype::F16);
        assert_eq!(a8.totals.macs, 8 * a1.totals.macs);
        assert_eq!(a8.totals.params, a1.totals.params);
        assert_eq!(a8.totals.weight_bytes * 2, a1.totals.weight_bytes);
        assert_eq!(a8.totals.activation_bytes, a1.totals.activation_bytes * 8 / 2);
        // conv1 at f32, batch 1: reads 3x32x32, writes 32x32x32, weights 896
        let conv1 = &a1.layers[1];
        assert_eq!(conv1.bytes_moved, (3 * 32 * 32 + 32 * 32 * 32 + 896) * 4);
    }
}
