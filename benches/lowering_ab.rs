//! In-process A/B of a lowering switch: `cargo bench --bench lowering_ab -- MODEL BATCH
//! VAR=VALUE [ROUNDS] [BURST_MS]`.
//!
//! Lowers the model three times in one process, A with `VAR` unset, B with `VAR=VALUE` (the
//! switches read at lowering: `SYNPROF_CPU_BLOCKED`, `SYNPROF_CPU_FUSE`, ...; not
//! `SYNPROF_CPU_TUNE`, read once per process, which it refuses), and A' unset again, then
//! runs bursts of inferences of the three in rounds (each round one of the six orders) on
//! the same conv threads and prints the medians of the per-round ratios B / A, B / A' and
//! the control A' / A. The control is there because identical code lowered twice is not
//! timed alike: on the Zen 5 host (benches/peers/RESULTS.md section 18) two lowerings of it
//! ran 1-2% apart, the tuner on or off, and whichever ran slower stayed slower; an effect
//! that B / A and B / A' do not both show, beyond A' / A's distance from 1, is not the
//! switch's. On a host whose speed drifts by
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
    // A, B, then A again (the control): the same code lowered before and after B.
    std::env::remove_var(var);
    let a = lower();
    std::env::set_var(var, value);
    let b = lower();
    std::env::remove_var(var);
    let a2 = lower();
    let host = synthetic_input(&net, batch, 1);
    let input = candle_core::Tensor::from_vec(host.data, host.shape, &device).expect("input");
    let sides = [&a, &b, &a2];
    for l in sides {
        burst(l, &input, 1000.0);
    }
    // Each round runs the three in one of the six orders, in turn, so none is always first.
    const ORDERS: [[usize; 3]; 6] = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1], [2, 1, 0], [1, 0, 2]];
    let mut t: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        let mut ms = [0.0; 3];
        for side in ORDERS[round % ORDERS.len()] {
            ms[side] = burst(sides[side], &input, burst_ms);
        }
        for (all, x) in t.iter_mut().zip(ms) {
            all.push(x);
        }
    }
    let ratio = |num: usize, den: usize| {
        let mut r: Vec<f64> = t[num].iter().zip(&t[den]).map(|(x, y)| x / y).collect();
        let faster = r.iter().filter(|&&x| x < 1.0).count();
        r.sort_by(f64::total_cmp);
        let q = |p: f64| r[((r.len() - 1) as f64 * p) as usize];
        format!("median {:.4}, IQR {:.4}-{:.4}, faster in {faster} of {rounds}", q(0.5), q(0.25), q(0.75))
    };
    println!(
        "{model} batch {batch}, A: {var} unset, B: {var}={value}, A': A lowered again after B; \
         {rounds} rounds of {burst_ms} ms bursts\n\
         medians: A {:.3} ms, B {:.3} ms, A' {:.3} ms\n\
         B / A  (time) {}\n\
         B / A' (time) {}\n\
         A' / A (time) {}   <- the control: the same code; an effect smaller than its distance from 1 is noise",
        median(&mut t[0].clone()),
        median(&mut t[1].clone()),
        median(&mut t[2].clone()),
        ratio(1, 0),
        ratio(1, 2),
        ratio(2, 0),
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
