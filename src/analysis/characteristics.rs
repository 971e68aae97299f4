//! The workload-characteristics vector: what a synthetic proxy must match to behave
//! like its target (AI Matrix's "statistical workload characteristics").

use super::Analysis;
use crate::graph::{Net, Op, OpClass};
use serde::Serialize;
use std::collections::BTreeMap;

/// Quantiles reported for distributions over layers.
pub const QUANTILES: [f64; 5] = [0.10, 0.25, 0.50, 0.75, 0.90];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Characteristics {
    pub macs: u64,
    pub params: u64,
    /// Conv and linear layers.
    pub weighted_layers: usize,
    /// Weighted layers on the longest input-to-output path.
    pub depth: usize,
    /// Share of MACs by layer kind: `conv` (dense), `conv_grouped`, `conv_depthwise`,
    /// `conv_pointwise` (1x1, dense), `linear`.
    pub mac_share_by_kind: BTreeMap<String, f64>,
    /// Share of MACs by kernel size (`3x3`, `1x7`, ...; `fc` for linear layers).
    pub mac_share_by_kernel: BTreeMap<String, f64>,
    /// Share of MACs by output resolution of conv layers (`56`, `28`, ...).
    pub mac_share_by_resolution: BTreeMap<String, f64>,
    /// Arithmetic intensity (FLOP/byte) of the weighted layers at the quantiles in
    /// [`QUANTILES`], each layer weighted by its MACs.
    pub intensity_quantiles: Vec<f64>,
    /// Share of MACs per intensity bin `[2^k, 2^(k+1))`, keyed by `k`.
    pub intensity_histogram: BTreeMap<i32, f64>,
    pub weight_bytes: u64,
    pub activation_bytes: u64,
    pub peak_activation_bytes: u64,
    /// Output channels of the weighted layers at [`QUANTILES`] (unweighted).
    pub width_quantiles: Vec<f64>,
    pub max_width: usize,
    /// Elements the pools read per image: output elements x window (the input, for a
    /// global pool). Pools have no MACs, yet a 3x3 max pool over a 56x56 map costs a
    /// large conv's time on a CPU: without this a proxy could add pools for free.
    pub pool_reads: u64,
}

/// Characteristics at the analysis' batch and dtype (intensity depends on both).
pub fn characterize(net: &Net, analysis: &Analysis) -> Characteristics {
    let total = analysis.totals.macs.max(1) as f64;
    let mut by_kind = BTreeMap::new();
    let mut by_kernel = BTreeMap::new();
    let mut by_resolution = BTreeMap::new();
    let mut intensity: Vec<(f64, f64)> = Vec::new();
    let mut widths: Vec<f64> = Vec::new();
    let mut pool_reads = 0u64;
    for (node, row) in net.nodes.iter().zip(&analysis.layers) {
        match &node.op {
            Op::MaxPool2d(p) | Op::AvgPool2d(p) => {
                pool_reads += node.shape.elements() * (p.kernel[0] * p.kernel[1]) as u64;
            }
            Op::GlobalAvgPool => pool_reads += net.nodes[node.inputs[0]].shape.elements(),
            _ => {}
        }
        if !matches!(row.class, OpClass::Conv | OpClass::Linear) {
            continue;
        }
        let share = row.macs as f64 / total;
        let (kind, kernel) = match &node.op {
            Op::Conv2d(c) => {
                let cin = net.nodes[node.inputs[0]].shape.channels();
                let kind = if c.groups == 1 {
                    if c.kernel == [1, 1] {
                        "conv_pointwise"
                    } else {
                        "conv"
                    }
                } else if c.groups == cin && c.groups == c.out_channels {
                    "conv_depthwise"
                } else {
                    "conv_grouped"
                };
                *by_resolution.entry(node.shape.dims()[1].to_string()).or_insert(0.0) += share;
                (kind, format!("{}x{}", c.kernel[0], c.kernel[1]))
            }
            _ => ("linear", "fc".to_string()),
        };
        *by_kind.entry(kind.to_string()).or_insert(0.0) += share;
        *by_kernel.entry(kernel).or_insert(0.0) += share;
        intensity.push((row.arithmetic_intensity, row.macs as f64));
        widths.push(node.shape.channels() as f64);
    }
    let mut histogram = BTreeMap::new();
    for &(ai, macs) in &intensity {
        if ai > 0.0 {
            *histogram.entry(ai.log2().floor() as i32).or_insert(0.0) += macs / total;
        }
    }
    let intensity_quantiles = QUANTILES.iter().map(|&q| weighted_quantile(&mut intensity.clone(), q)).collect();
    let mut unweighted: Vec<(f64, f64)> = widths.iter().map(|&w| (w, 1.0)).collect();
    let width_quantiles = QUANTILES.iter().map(|&q| weighted_quantile(&mut unweighted, q)).collect();
    Characteristics {
        macs: analysis.totals.macs,
        params: analysis.totals.params,
        weighted_layers: widths.len(),
        depth: weighted_depth(net),
        mac_share_by_kind: by_kind,
        mac_share_by_kernel: by_kernel,
        mac_share_by_resolution: by_resolution,
        intensity_quantiles,
        intensity_histogram: histogram,
        weight_bytes: analysis.totals.weight_bytes,
        activation_bytes: analysis.totals.activation_bytes,
        peak_activation_bytes: analysis.totals.peak_activation_bytes,
        width_quantiles,
        max_width: widths.iter().fold(0.0f64, |a, &b| a.max(b)) as usize,
        pool_reads,
    }
}

/// The smallest value whose cumulative weight reaches `q` of the total.
pub(crate) fn weighted_quantile(values: &mut [(f64, f64)], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = values.iter().map(|v| v.1).sum();
    let mut acc = 0.0;
    for &(v, w) in values.iter() {
        acc += w;
        if acc >= q * total - 1e-12 {
            return v;
        }
    }
    values[values.len() - 1].0
}

/// Longest path counted in conv and linear layers.
fn weighted_depth(net: &Net) -> usize {
    let mut depth = vec![0usize; net.nodes.len()];
    for (i, node) in net.nodes.iter().enumerate() {
        let from_inputs = node.inputs.iter().map(|&p| depth[p]).max().unwrap_or(0);
        let own = matches!(node.op.class(), OpClass::Conv | OpClass::Linear) as usize;
        depth[i] = from_inputs + own;
    }
    net.outputs.iter().map(|&o| depth[o]).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze;
    use crate::dtype::Dtype;
    use crate::graph::{conv, NetBuilder};

    #[test]
    fn shares_and_depth_of_a_branchy_net() {
        let mut g = NetBuilder::new("t", &[8, 16, 16]);
        let x = g.input();
        let a = g.conv(x, conv(8, 1)); // 16*16*8*8 = 16384 MACs
        let b = g.conv(x, conv(8, 3).pad(1)); // 16*16*8*72 = 147456
        let b = g.conv(b, conv(8, 3).pad(1).depthwise()); // 16*16*8*9 = 18432
        let y = g.cat(&[a, b]);
        let net = g.finish(y).unwrap();
        let c = characterize(&net, &analyze(&net, 1, Dtype::F32));
        let total = (16384 + 147456 + 18432) as f64;
        assert!((c.mac_share_by_kind["conv_pointwise"] - 16384.0 / total).abs() < 1e-12);
        assert!((c.mac_share_by_kind["conv_depthwise"] - 18432.0 / total).abs() < 1e-12);
        assert!((c.mac_share_by_kernel["3x3"] - (147456.0 + 18432.0) / total).abs() < 1e-12);
        assert_eq!(c.depth, 2);
        assert_eq!(c.weighted_layers, 3);
        assert_eq!(c.max_width, 8);
        assert_eq!(c.pool_reads, 0);
        // A 3x3 stride-2 max pool to 8x8 over 16 channels, then a global pool over 16x8x8.
        let mut g = NetBuilder::new("p", &[16, 16, 16]);
        let x = g.input();
        let y = g.max_pool(x, crate::graph::pool(3).stride(2).pad(1));
        let y = g.global_avg_pool(y);
        let net = g.finish(y).unwrap();
        let c = characterize(&net, &analyze(&net, 1, Dtype::F32));
        assert_eq!(c.pool_reads, 16 * 8 * 8 * 9 + 16 * 8 * 8);
    }

    #[test]
    fn weighted_quantile_picks_by_weight() {
        let mut v = vec![(1.0, 1.0), (10.0, 8.0), (100.0, 1.0)];
        assert_eq!(weighted_quantile(&mut v, 0.05), 1.0);
        assert_eq!(weighted_quantile(&mut v, 0.5), 10.0);
        assert_eq!(weighted_quantile(&mut v, 0.95), 100.0);
    }
}
