//! `synprof run`: measure a model at several batch sizes and print a result table.

use super::text::{bytes, percent, Table};
use crate::exec::run::{run_case, CaseResult, RunOptions};
use crate::graph::Net;
use serde::Serialize;

/// A case that ran, or why it did not.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    Done(Box<CaseResult>),
    Failed { model: String, batch: usize, mode: String, dtype: String, device: String, error: String },
}

/// Run every batch size; a failing batch is recorded and the others still run.
pub fn run_batches(
    net: &Net,
    base: &RunOptions,
    batches: &[usize],
    progress: &mut dyn FnMut(&Outcome),
) -> Vec<Outcome> {
    batches
        .iter()
        .map(|&batch| {
            let opts = RunOptions { batch, ..base.clone() };
            let outcome = match run_case(net, &opts) {
                Ok(r) => Outcome::Done(Box::new(r)),
                Err(e) => Outcome::Failed {
                    model: net.name.clone(),
                    batch,
                    mode: opts.mode.to_string(),
                    dtype: opts.dtype.to_string(),
                    device: opts.device.to_string(),
                    error: e.to_string(),
                },
            };
            progress(&outcome);
            outcome
        })
        .collect()
}

pub fn render(outcomes: &[Outcome]) -> String {
    let mut t = Table::new(&[
        "model",
        "device",
        "dtype",
        "mode",
        "batch",
        "images/s",
        "median ms",
        "p90 ms",
        "p99 ms",
        "mean ms",
        "jitter ms",
        "GFLOP/s",
        "peak mem",
    ]);
    let mut failures = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Done(r) => {
                let l = &r.latency;
                t.row(vec![
                    r.model.clone(),
                    r.device.to_string(),
                    r.dtype.to_string(),
                    r.mode.to_string(),
                    r.batch.to_string(),
                    format!("{:.2}", l.images_per_s),
                    format!("{:.3}", l.median_ms),
                    format!("{:.3}", l.p90_ms),
                    format!("{:.3}", l.p99_ms),
                    format!("{:.3} ± {:.3}", l.mean_ms, l.stderr_ms),
                    format!("{:.3}", l.mad_jitter_ms),
                    format!("{:.1}", r.achieved_gflops_per_s),
                    r.peak_memory_bytes.map(bytes).unwrap_or_else(|| "-".into()),
                ]);
            }
            Outcome::Failed { model, batch, error, .. } => failures.push(format!("  {model} batch {batch}: {error}")),
        }
    }
    let mut out = if failures.len() < outcomes.len() { t.render() } else { String::new() };
    if let Some(Outcome::Done(r)) = outcomes.iter().find(|o| matches!(o, Outcome::Done(_))) {
        out.push_str(&format!(
            "\n{} warm-up iterations, then at least the measured window; latencies are per batch, synchronised; jitter = 1.4826 x MAD.\n",
            r.warmup_iterations
        ));
        match (r.folded_batch_norms, r.folded_scales) {
            (0, 0) => {}
            (bns, 0) => out.push_str(&format!("{bns} batch-norms folded into their convs.\n")),
            (bns, scales) => {
                out.push_str(&format!("{bns} batch-norms and {scales} constant scales folded into their convs.\n"))
            }
        }
        match r.conv_algorithm {
            Some(crate::exec::lower::ConvAlgorithm::Packed) if r.mode == crate::exec::Mode::Train => out.push_str(
                "convs: packed CPU kernels, forward and both gradients (batch-norms with their ReLU fused; --cpu-conv candle for candle's conv2d).\n",
            ),
            Some(crate::exec::lower::ConvAlgorithm::Packed) => {
                out.push_str(&format!(
                    "convs: packed CPU kernels (bias fused, {} activations and {} residual adds fused; --cpu-conv candle for candle's conv2d).\n",
                    r.fused_activations, r.fused_residual_adds
                ));
                if r.fused_expansions > 0 {
                    out.push_str(&format!(
                        "{} 1x1 expansions ran fused with the depthwise conv after them (the expanded tensor never written; --layers counts their time in the depthwise layer).\n",
                        r.fused_expansions
                    ));
                }
                if r.blocked_convs > 0 {
                    out.push_str(&format!(
                        "{} convs ran on blocked tensors (16 channels of a pixel together; SYNPROF_CPU_BLOCKED=off for NCHW).\n",
                        r.blocked_convs
                    ));
                }
                if r.concats_in_place > 0 {
                    out.push_str(&format!(
                        "{} channel concats took their convs' outputs in place (written into the concat, not copied; SYNPROF_CPU_CONCAT_IN_PLACE=off to copy).\n",
                        r.concats_in_place
                    ));
                }
                if r.winograd_convs > 0 {
                    out.push_str(&format!(
                        "{} 3x3 convs ran as Winograd F(2x2, 3x3) or F(4x4, 3x3) at batch {} (2.25x or 4x fewer multiplies; GFLOP/s counts the direct conv's FLOPs).\n",
                        r.winograd_convs, r.batch
                    ));
                }
            }
            Some(crate::exec::lower::ConvAlgorithm::Candle) => out.push_str("convs: candle conv2d.\n"),
            None => {}
        }
        if let (Some(a), Some(b)) = (r.loss_first, r.loss_last) {
            out.push_str(&format!("training loss {a:.4} -> {b:.4} over the measured steps (fixed batch).\n"));
        }
        if let Some(backward) = &r.backward {
            out.push_str(&format!("backward: {backward}.\n"));
        }
        if let Some(runtime) = &r.runtime {
            out.push_str(&format!("backend {}: {runtime}.\n", r.backend));
        }
        if let Some(threads) = r.cpu_threads {
            out.push_str(&format!("{threads} CPU threads.\n"));
        }
    }
    for o in outcomes {
        if let Outcome::Done(r) = o {
            if let Some(t) = &r.telemetry {
                out.push_str(&format!("\nTelemetry, {} batch {} (measured window):\n", r.model, r.batch));
                for line in t.summary_lines() {
                    out.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    for o in outcomes {
        if let Outcome::Done(r) = o {
            if let Some(layers) = &r.layers {
                out.push_str(&format!(
                    "\nPer-layer times, {} batch {} (synchronised after every layer):\n",
                    r.model, r.batch
                ));
                out.push_str(&render_layers(layers));
            }
        }
    }
    if !failures.is_empty() {
        out.push_str(&format!("\n{} case(s) failed:\n{}\n", failures.len(), failures.join("\n")));
    }
    out
}

fn render_layers(layers: &[crate::exec::run::LayerTime]) -> String {
    let mut sorted: Vec<_> = layers.iter().filter(|l| l.mean_ms > 0.0).collect();
    sorted.sort_by(|a, b| b.mean_ms.total_cmp(&a.mean_ms));
    let mut t = Table::new(&["layer", "op", "ms", "share", "GFLOP/s", "FLOP/byte", "threads busy", "kernel"]);
    let shown = sorted.len().min(25);
    for l in &sorted[..shown] {
        t.row(vec![
            l.name.clone(),
            l.op.clone(),
            format!("{:.3}", l.mean_ms),
            percent(l.share),
            format!("{:.1}", l.achieved_gflops_per_s),
            format!("{:.1}", l.arithmetic_intensity),
            l.thread_use.map_or_else(|| "-".into(), percent),
            l.kernel.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut by_op: std::collections::BTreeMap<&str, f64> = Default::default();
    for l in layers {
        *by_op.entry(l.op.as_str()).or_default() += l.share;
    }
    let mut ops: Vec<_> = by_op.into_iter().filter(|(_, s)| *s > 0.0).collect();
    ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    let summary: Vec<String> = ops.iter().map(|(op, s)| format!("{op} {}", percent(*s))).collect();
    format!(
        "{}(top {shown} of {} layers)\ntime by op: {}\nthreads busy: the share of the conv threads' time in the layer spent in its work; \
         below 100% they waited for each other or had none (- : not on the conv threads); kernel: the packed CPU kernel a conv ran on\n",
        t.render(),
        layers.len(),
        summary.join(", ")
    )
}
