//! `synprof inspect`: a layer table like Keras' `model.summary()`, with totals.

use super::text::{bytes, percent, si, thousands, Table};
use crate::analysis::characteristics::{characterize, Characteristics, QUANTILES};
use crate::analysis::{analyze, Analysis};
use crate::graph::Net;
use crate::Dtype;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct InspectReport {
    #[serde(flatten)]
    pub analysis: Analysis,
    pub characteristics: Characteristics,
}

pub fn report(net: &Net, batch: usize, dtype: Dtype) -> InspectReport {
    let analysis = analyze(net, batch, dtype);
    let characteristics = characterize(net, &analysis);
    InspectReport { analysis, characteristics }
}

pub fn render(r: &InspectReport, show_characteristics: bool) -> String {
    let a = &r.analysis;
    let mut t = Table::new(&["layer", "op", "output", "params", "MACs", "share"]);
    for l in &a.layers {
        t.row(vec![
            l.name.clone(),
            l.op.to_string(),
            l.output_shape.to_string(),
            thousands(l.params),
            if l.macs == 0 { "0".into() } else { si(l.macs as f64) },
            if l.macs == 0 { String::new() } else { percent(l.mac_share) },
        ]);
    }
    let tt = &a.totals;
    let mut out =
        format!("Model: {}   input {} (per sample), batch {}, {}\n\n", a.model, a.input_shape, a.batch, a.dtype);
    out.push_str(&t.render());
    out.push_str(&format!(
        "\nparams            {} trainable ({} in batch-norm running statistics, not counted)\n",
        thousands(tt.params),
        thousands(tt.buffers)
    ));
    out.push_str(&format!(
        "layers            {} conv, {} linear, {} batch-norm, {} nodes in all\n",
        tt.conv_layers,
        tt.linear_layers,
        tt.batch_norm_layers,
        a.layers.len()
    ));
    out.push_str(&format!(
        "MACs              {} ({} per image)\n",
        si(tt.macs as f64),
        si(tt.macs as f64 / a.batch as f64)
    ));
    out.push_str(&format!(
        "FLOPs             {} = 2 x MACs + {} other arithmetic\n",
        si(tt.flops as f64),
        si(tt.other_flops as f64)
    ));
    out.push_str(&format!("weights           {}\n", bytes(tt.weight_bytes)));
    out.push_str(&format!(
        "activations       {} in all, {} peak alive at once\n",
        bytes(tt.activation_bytes),
        bytes(tt.peak_activation_bytes)
    ));
    out.push_str(&format!(
        "bytes moved       {} (each layer's inputs, outputs and weights once)\n",
        bytes(tt.bytes_moved)
    ));
    out.push_str(&format!("intensity         {:.1} FLOP/byte\n", tt.arithmetic_intensity));
    if show_characteristics {
        out.push('\n');
        out.push_str(&render_characteristics(&r.characteristics));
    }
    out
}

fn shares(map: &std::collections::BTreeMap<String, f64>) -> String {
    let mut v: Vec<(&String, &f64)> = map.iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1));
    v.iter().map(|(k, s)| format!("{k} {}", percent(**s))).collect::<Vec<_>>().join(", ")
}

pub fn render_characteristics(c: &Characteristics) -> String {
    let q = |v: &[f64]| {
        QUANTILES.iter().zip(v).map(|(q, x)| format!("p{:.0} {:.1}", q * 100.0, x)).collect::<Vec<_>>().join(", ")
    };
    let mut out = String::from("Workload characteristics (what a synthetic proxy matches)\n");
    out.push_str(&format!(
        "  depth             {} weighted layers on the longest path, {} in all\n",
        c.depth, c.weighted_layers
    ));
    out.push_str(&format!("  MACs by kind      {}\n", shares(&c.mac_share_by_kind)));
    out.push_str(&format!("  MACs by kernel    {}\n", shares(&c.mac_share_by_kernel)));
    out.push_str(&format!("  MACs by output    {}\n", shares(&c.mac_share_by_resolution)));
    out.push_str(&format!("  intensity         {} FLOP/byte (MAC-weighted)\n", q(&c.intensity_quantiles)));
    out.push_str(&format!("  widths            {} channels; max {}\n", q(&c.width_quantiles), c.max_width));
    out
}
