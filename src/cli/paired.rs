//! `synprof paired`: synprof against an external runtime in alternating bursts.

use super::text::Table;
use crate::exec::paired::PairedResult;

/// The pairs of one model, a row per batch: both sides' median images/s and the quartiles
/// of the per-pair ratios synprof / peer.
pub fn render(model: &str, results: &[PairedResult]) -> String {
    let Some(first) = results.first() else { return String::new() };
    let o = &first.options;
    let threads = o.threads.map_or_else(|| "all cores".to_string(), |t| format!("{t} threads"));
    let mut out = format!(
        "{model} on {} {}, {threads}: {} burst pairs of {} s each (A B, B A, ...) after {} s of warm-up each, \
         {} s idle before each burst\n\
         A: {}\nB: {}\n\n",
        o.device, o.dtype, o.bursts, o.burst_seconds, o.warmup_seconds, o.settle_seconds, first.a, first.b
    );
    let mut table = Table::new(&["batch", "A images/s", "B images/s", "B / A (median pair)", "25%", "75%"]);
    for r in results {
        let [q1, median, q3] = r.ratio_quartiles().unwrap_or([f64::NAN; 3]);
        table.row(vec![
            r.options.batch.to_string(),
            format!("{:.2}", r.a_median()),
            format!("{:.2}", r.b_median()),
            format!("{median:.3}"),
            format!("{q1:.3}"),
            format!("{q3:.3}"),
        ]);
    }
    out.push_str(&table.render());
    out.push_str(
        "\nB / A: synprof's speed over the peer's, one ratio per burst pair (each pair within about a second,\n\
         so both sides see the same machine state); images/s are each side's median burst.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::lower::ConvAlgorithm;
    use crate::exec::paired::PairedOptions;

    #[test]
    fn a_row_per_batch_with_the_pair_ratios() {
        let r = |batch: usize, a: Vec<f64>, b: Vec<f64>| PairedResult {
            a: "onnxruntime 1.0".into(),
            b: "synprof".into(),
            options: PairedOptions { batch, threads: Some(2), bursts: a.len(), ..Default::default() },
            conv_algorithm: ConvAlgorithm::Packed,
            a_images_per_s: a,
            b_images_per_s: b,
        };
        let text =
            render("resnet50", &[r(1, vec![10.0, 20.0, 10.0], vec![11.0, 18.0, 10.0]), r(16, vec![4.0], vec![5.0])]);
        assert!(text.contains("resnet50 on cpu f32, 2 threads: 3 burst pairs"), "{text}");
        assert!(text.contains("A: onnxruntime 1.0\nB: synprof"), "{text}");
        // batch 1: ratios 1.1, 0.9, 1.0 -> median 1.000, quartiles 0.950 and 1.050; medians 10 and 11.
        let row1 = text.lines().find(|l| l.trim_start().starts_with("1 ")).unwrap();
        let cells: Vec<&str> = row1.split_whitespace().collect();
        assert_eq!(cells, ["1", "10.00", "11.00", "1.000", "0.950", "1.050"], "{text}");
        let row16 = text.lines().find(|l| l.trim_start().starts_with("16 ")).unwrap();
        assert!(row16.contains("1.250"), "{text}");
    }
}
