//! `synprof zoo`: the reference models with their counts beside the published ones.

use super::text::{si, thousands, Table};
use crate::analysis::analyze;
use crate::zoo::{registry, ZooModel};
use crate::Dtype;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ZooRow {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub family: &'static str,
    pub input: String,
    pub available: bool,
    pub params: Option<u64>,
    pub macs: Option<u64>,
    pub published_source: Option<&'static str>,
    pub published_params: Option<u64>,
    pub published_gmacs: Option<f64>,
    /// Params equal and GMACs within 0.5% of the published figure.
    pub matches_published: Option<bool>,
    pub summary: &'static str,
}

pub fn rows(family: Option<&str>) -> Vec<ZooRow> {
    registry().iter().filter(|m| family.is_none_or(|f| m.family.eq_ignore_ascii_case(f))).map(row).collect()
}

fn row(m: &ZooModel) -> ZooRow {
    let counts = m.build(None).ok().map(|net| analyze(&net, 1, Dtype::F32).totals);
    let published = m.published;
    let matches = match (&counts, published) {
        (Some(t), Some(p)) => Some(p.matches(t.params, t.macs)),
        _ => None,
    };
    ZooRow {
        name: m.name,
        aliases: m.aliases,
        family: m.family,
        input: m.default_input().to_string(),
        available: m.build.is_some(),
        params: counts.as_ref().map(|t| t.params),
        macs: counts.as_ref().map(|t| t.macs),
        published_source: published.map(|p| p.source),
        published_params: published.and_then(|p| p.params),
        published_gmacs: published.and_then(|p| p.gmacs),
        matches_published: matches,
        summary: m.summary,
    }
}

pub fn render(rows: &[ZooRow]) -> String {
    let mut t =
        Table::new(&["model", "family", "input", "params", "GMACs", "published", "source of the published count"]);
    for r in rows {
        let params = r.params.map(thousands).unwrap_or_else(|| "-".into());
        let gmacs = r.macs.map(|m| format!("{:.3}", m as f64 / 1e9)).unwrap_or_else(|| "-".into());
        let published = match (r.matches_published, r.published_params, r.published_gmacs) {
            (Some(true), _, _) => "= ours".to_string(),
            (_, Some(p), _) => thousands(p),
            (_, None, Some(g)) => format!("{} MACs", si(g * 1e9)),
            _ => "-".to_string(),
        };
        let source = if r.available {
            r.published_source.unwrap_or("(none published)").to_string()
        } else {
            "not available (`synprof inspect` says why)".to_string()
        };
        t.row(vec![r.name.to_string(), r.family.to_string(), r.input.clone(), params, gmacs, published, source]);
    }
    let available = rows.iter().filter(|r| r.available).count();
    format!(
        "{}\n{available} models available ({} listed). Params: trainable; MACs: conv and linear multiply-accumulates per image.\n`synprof inspect MODEL` shows the layers.\n",
        t.render(),
        rows.len()
    )
}
