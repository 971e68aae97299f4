//! `synprof generate --like ...`'s report: per characteristic the target, what the
//! mimic achieved, the distance and whether it is within the tolerance.

use crate::synth::mimic::{distance::worst, Mimicked, TOLERANCE};

/// The table of a mimic run (`targets`: what was mimicked, e.g. `resnet50:0.5 googlenet:0.5`).
pub fn mimic_report(targets: &str, m: &Mimicked) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "mimic of {targets}: {} ({} weighted layers, {:.3} GMACs), {} evaluations\n\n",
        m.net.name,
        m.achieved.weighted_layers,
        m.achieved.macs as f64 / 1e9,
        m.evaluations
    ));
    let rows: Vec<[String; 6]> = m
        .distances
        .iter()
        .map(|d| {
            [
                d.name.to_string(),
                d.target.clone(),
                d.achieved.clone(),
                format!("{:.2}%", d.distance * 100.0),
                d.measure.to_string(),
                if !d.counted {
                    "(budget)".to_string()
                } else if d.within(TOLERANCE) {
                    "yes".to_string()
                } else {
                    "NO".to_string()
                },
            ]
        })
        .collect();
    let header = ["characteristic", "target", "achieved", "distance", "measure", "within 5%"];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == 3 {
                s.push_str(&format!("{c:>w$}  "));
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&header.map(String::from)));
    out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
    }
    let within = m.distances.iter().filter(|d| d.counted && d.within(TOLERANCE)).count();
    let counted = m.distances.iter().filter(|d| d.counted).count();
    out.push_str(&format!(
        "\n{within} of {counted} characteristics within {:.0}%; worst {:.2}% (start {:.2}%).\n\
         Distances: scalars relative error, share maps total-variation distance, quantiles the largest relative error.\n",
        TOLERANCE * 100.0,
        worst(&m.distances) * 100.0,
        m.initial_worst * 100.0
    ));
    if m.distances.iter().any(|d| !d.counted) {
        out.push_str("(budget): sizes follow the MAC budget, so they are shown but not matched.\n");
    }
    out
}
