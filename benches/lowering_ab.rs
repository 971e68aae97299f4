//! In-process A/B of a lowering switch: `cargo bench --bench lowering_ab -- MODEL BATCH
//! VAR=VALUE [ROUNDS] [BURST_MS]`.
//!
//! Lowers the model twice in one process, A with `VAR` unset and B with `VAR=VALUE` (the
//! switches read at lowering: `SYNPROF_CPU_BLOCKED`, `SYNPROF_CPU_FUSE`, ...; not
//! `SYNPROF_CPU_TUNE`, read once per process, which it refuses), then
//! alternates bursts of inferences (A B, B A, ...) on the same conv threads and prints the
//! median of the per-pair ratios B / A of the burst medians. On a host whose speed drifts by
//! 1.5x within minutes (the 2-vCPU dev VM, benches/peers/RESULTS.md section 16), two
//! processes run one after the other compare the host's phases more than the code; bursts
//! a few hundred milliseconds apart in one process see the same phase.

use std::time::Instant;
use synprof::exec::lower::{Lowered, Phase};
use synprof::weights::{synthetic_input, Weights};

/// Switches read once per process, not at lowering.
const PER_PROCESS: [&str; 1] = ["SYNPROF_CPU_TUNE"];

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median latency (ms) of inferences over `burst_ms`.
fn burst(lowered: &Lowered, input: &candle_core::Tensor, burst_ms: f64) -> f64 {
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() * 1e3 < burst_ms || lat.len() < 3 {
        let t = Instant::now();
        lowered.infer(input).expect("inference");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(&mut lat)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let [model, batch, switch, rest @ ..] = args.as_slice() else {
        eprintln!("usage: lowering_ab MODEL BATCH VAR=VALUE [ROUNDS] [BURST_MS]");
        std::process::exit(2);
    };
    let batch: usize = batch.parse().expect("BATCH: an integer");
    let rounds: usize = rest.first().map_or(30, |r| r.parse().expect("ROUNDS: an integer"));
    let burst_ms: f64 = rest.get(1).map_or(300.0, |b| b.parse().expect("BURST_MS: a number"));
    let (var, value) = switch.split_once('=').expect("VAR=VALUE");
    if PER_PROCESS.contains(&var) {
        eprintln!("{var} is read once per process: A and B would run the same code (compare two processes)");
        std::process::exit(2);
    }
    let net = synprof::zoo::build(model, None).expect("a zoo model");
    let weights = Weights::init(&net, 1);
    let device = candle_core::Device::Cpu;
    let phase = Phase::Inference { fold_batch_norm: true };
    let lower = || Lowered::new(&net, &weights, &device, candle_core::DType::F32, phase).expect("lowering");
    std::env::remove_var(var);
    let a = lower();
    std::env::set_var(var, value);
    let b = lower();
    std::env::remove_var(var);
    let host = synthetic_input(&net, batch, 1);
    let input = candle_core::Tensor::from_vec(host.data, host.shape, &device).expect("input");
    for l in [&a, &b] {
        burst(l, &input, 1000.0);
    }
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (x, y) = if round % 2 == 0 {
            let x = burst(&a, &input, burst_ms);
            (x, burst(&b, &input, burst_ms))
        } else {
            let y = burst(&b, &input, burst_ms);
            (burst(&a, &input, burst_ms), y)
        };
        ta.push(x);
        tb.push(y);
        ratios.push(y / x);
    }
    let faster = ratios.iter().filter(|&&r| r < 1.0).count();
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p) as usize];
    println!(
        "{model} batch {batch}, A: {var} unset, B: {var}={value}; {rounds} pairs of {burst_ms} ms bursts\n\
         A median {:.3} ms, B median {:.3} ms; B / A (time) median {:.4}, IQR {:.4}-{:.4}, B faster in {faster} of {rounds}",
        median(&mut ta),
        median(&mut tb),
        median(&mut ratios),
        q(0.25),
        q(0.75),
    );
    if std::env::var("AB_LAYERS").is_ok() {
        layers(&a, &b, &input, rounds);
    }
}

/// `AB_LAYERS=1`: both sides' per-layer times (`Lowered::infer_timed`), alternated
/// inference by inference; the 25 layers that differ most, by their medians.
fn layers(a: &Lowered, b: &Lowered, input: &candle_core::Tensor, rounds: usize) {
    use synprof::exec::lower::NodeTimes;
    let n = a.layers.len();
    let mut per: [Vec<Vec<f64>>; 2] = [vec![Vec::new(); n], vec![Vec::new(); n]];
    for _ in 0..rounds * 4 {
        for (side, l) in [a, b].into_iter().enumerate() {
            let mut t = NodeTimes::new(n);
            l.infer_timed(input, &mut t).expect("timed inference");
            for (i, ms) in t.wall_ms.iter().enumerate() {
                per[side][i].push(*ms);
            }
        }
    }
    let mut rows: Vec<(String, f64, f64)> = (0..n)
        .map(|i| (a.net.nodes[i].name.clone(), median(&mut per[0][i]) * 1e3, median(&mut per[1][i]) * 1e3))
        .collect();
    println!(
        "sum of layer medians: A {:.1} us, B {:.1} us",
        rows.iter().map(|r| r.1).sum::<f64>(),
        rows.iter().map(|r| r.2).sum::<f64>()
    );
    rows.sort_by(|x, y| (y.2 - y.1).abs().total_cmp(&(x.2 - x.1).abs()));
    let top: usize = std::env::var("AB_LAYERS").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
    for (name, ta, tb) in rows.iter().take(top) {
        println!("{name:24} {ta:8.1} {tb:8.1} us  {:+7.1}", tb - ta);
    }
}
