//! The target: the workload characteristics of one model, or of a weighted mix.
//!
//! A mix weighs each model's characteristics by its normalized weight: scalars are
//! weighted means (counts rounded), share maps weighted sums, and the quantiles come
//! from the pooled layers (a model's layers carry its weight, spread by MACs for
//! intensity and evenly for widths), so a one-model mix is exactly [`characterize`].

use crate::analysis::characteristics::{weighted_quantile, QUANTILES};
use crate::analysis::{analyze, characteristics::characterize, Characteristics};
use crate::dtype::Dtype;
use crate::graph::{Net, OpClass};
use std::collections::BTreeMap;

/// Characteristics of `targets` (weights need not sum to one) at a batch and dtype.
pub fn mix(targets: &[(Net, f64)], batch: usize, dtype: Dtype) -> Characteristics {
    let chars: Vec<Characteristics> = targets.iter().map(|(n, _)| characterize(n, &analyze(n, batch, dtype))).collect();
    if targets.len() == 1 {
        return chars[0].clone();
    }
    let total_weight: f64 = targets.iter().map(|t| t.1).sum();
    let w: Vec<f64> = targets.iter().map(|t| t.1 / total_weight).collect();
    let mean = |f: &dyn Fn(&Characteristics) -> f64| chars.iter().zip(&w).map(|(c, w)| f(c) * w).sum::<f64>();
    let mean_u64 = |f: &dyn Fn(&Characteristics) -> f64| mean(f).round() as u64;
    let shares = |f: &dyn Fn(&Characteristics) -> &BTreeMap<String, f64>| {
        let mut out = BTreeMap::new();
        for (c, w) in chars.iter().zip(&w) {
            for (k, v) in f(c) {
                *out.entry(k.clone()).or_insert(0.0) += v * w;
            }
        }
        out
    };
    let mut histogram = BTreeMap::new();
    for (c, w) in chars.iter().zip(&w) {
        for (k, v) in &c.intensity_histogram {
            *histogram.entry(*k).or_insert(0.0) += v * w;
        }
    }
    let mut intensity: Vec<(f64, f64)> = Vec::new();
    let mut widths: Vec<(f64, f64)> = Vec::new();
    for ((net, _), w) in targets.iter().zip(&w) {
        let a = analyze(net, batch, dtype);
        let total = a.totals.macs.max(1) as f64;
        let rows: Vec<_> = net
            .nodes
            .iter()
            .zip(&a.layers)
            .filter(|(_, r)| matches!(r.class, OpClass::Conv | OpClass::Linear))
            .collect();
        for (node, row) in &rows {
            intensity.push((row.arithmetic_intensity, w * row.macs as f64 / total));
            widths.push((node.shape.channels() as f64, w / rows.len().max(1) as f64));
        }
    }
    Characteristics {
        macs: mean_u64(&|c| c.macs as f64),
        params: mean_u64(&|c| c.params as f64),
        weighted_layers: mean(&|c| c.weighted_layers as f64).round() as usize,
        depth: mean(&|c| c.depth as f64).round() as usize,
        mac_share_by_kind: shares(&|c| &c.mac_share_by_kind),
        mac_share_by_kernel: shares(&|c| &c.mac_share_by_kernel),
        mac_share_by_resolution: shares(&|c| &c.mac_share_by_resolution),
        intensity_quantiles: QUANTILES.iter().map(|&q| weighted_quantile(&mut intensity, q)).collect(),
        intensity_histogram: histogram,
        weight_bytes: mean_u64(&|c| c.weight_bytes as f64),
        activation_bytes: mean_u64(&|c| c.activation_bytes as f64),
        peak_activation_bytes: mean_u64(&|c| c.peak_activation_bytes as f64),
        width_quantiles: QUANTILES.iter().map(|&q| weighted_quantile(&mut widths, q)).collect(),
        max_width: mean(&|c| c.max_width as f64).round() as usize,
        pool_reads: mean_u64(&|c| c.pool_reads as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_of_one_model_twice_is_that_model() {
        let net = crate::zoo::build("resnet18", None).unwrap();
        let one = mix(&[(net.clone(), 1.0)], 1, Dtype::F32);
        let twice = mix(&[(net.clone(), 0.3), (net, 0.7)], 1, Dtype::F32);
        assert_eq!(one.macs, twice.macs);
        assert_eq!(one.intensity_quantiles, twice.intensity_quantiles);
        assert_eq!(one.width_quantiles, twice.width_quantiles);
        assert!(super::super::distance::tvd(&one.mac_share_by_kernel, &twice.mac_share_by_kernel) < 1e-12);
    }
}
