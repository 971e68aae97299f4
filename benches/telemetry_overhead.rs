//! Sampler overhead on throughput: `run_case` on a small model with no sampler, and with the
//! monitor sampling every 100 ms and every 10 ms in the background, in alternating order
//! (each round rotates the order), so that drifts of a shared machine hit all three alike.
//! Also the sampler's own cost per sample, timed alone (its CPU share is cost / interval).
//!
//! `cargo bench --bench telemetry_overhead` (env: SYNPROF_BENCH_ROUNDS, default 8;
//! SYNPROF_BENCH_DEVICE, default cpu, e.g. cuda:0 with `--features cuda`). Prints a
//! markdown table for benches/TELEMETRY.md.

use std::time::Duration;
use std::time::Instant;
use synprof::exec::run::{run_case, RunOptions, Window};
use synprof::exec::{device, DeviceSpec};
use synprof::telemetry::energy::median;
use synprof::telemetry::session::sampler_for;
use synprof::telemetry::{CpuSampler, Monitor};

struct Block {
    images_per_s: f64,
    sample_cost_us: f64,
    samples: u64,
}

fn block(net: &synprof::graph::Net, opts: &RunOptions, interval: Option<Duration>) -> Block {
    let monitor = interval.map(|i| Monitor::start(sampler_for(opts.device).0, i));
    let result = run_case(net, opts).expect("the case runs");
    let recording = monitor.map(|m| m.stop());
    Block {
        images_per_s: result.latency.images_per_s,
        sample_cost_us: recording.as_ref().map_or(0.0, |r| r.mean_sample_cost.as_secs_f64() * 1e6),
        samples: recording.map_or(0, |r| r.samples_taken),
    }
}

/// Median of paired log-ratios and its 95% bootstrap interval, as % change.
fn paired_change(ratios: &[f64]) -> (f64, f64, f64) {
    let logs: Vec<f64> = ratios.iter().map(|r| r.ln()).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64; // a fixed seed: the same figures from the same data
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % logs.len() as u64) as usize
    };
    let mut medians: Vec<f64> =
        (0..2000).map(|_| median((0..logs.len()).map(|_| logs[next()]).collect()).unwrap()).collect();
    medians.sort_by(f64::total_cmp);
    let pct = |l: f64| 100.0 * (l.exp() - 1.0);
    (pct(median(logs.clone()).unwrap()), pct(medians[50]), pct(medians[1949]))
}

/// One sample's cost, the sampler alone in a tight loop: (minimum, median) in us.
fn sample_cost(device: DeviceSpec) -> (f64, f64) {
    let mut sampler = sampler_for(device).0;
    let epoch = Instant::now();
    let mut costs: Vec<f64> = (0..5000)
        .map(|_| {
            let t0 = Instant::now();
            std::hint::black_box(sampler.sample(epoch.elapsed()));
            t0.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    costs.sort_by(f64::total_cmp);
    (costs[0], costs[costs.len() / 2])
}

fn main() {
    let rounds: usize = std::env::var("SYNPROF_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let device = std::env::var("SYNPROF_BENCH_DEVICE").map_or(DeviceSpec::Cpu, |d| DeviceSpec::parse(&d).unwrap());
    let threads = device::set_cpu_threads(None).unwrap();
    let net = synprof::zoo::build("keras_cifar10_cnn", None).unwrap();
    let opts = RunOptions {
        device,
        batch: 8,
        warmup: Window { iterations: 3, seconds: 0.2 },
        measure: Window { iterations: 10, seconds: 0.5 },
        // the bench runs its own monitor beside the case; the case's own is off
        telemetry: false,
        ..RunOptions::default()
    };
    let conditions = [None, Some(Duration::from_millis(100)), Some(Duration::from_millis(10))];
    let mut results: Vec<Vec<Block>> = conditions.iter().map(|_| Vec::new()).collect();
    block(&net, &opts, None); // warm the process: allocator, thread pools, caches
    for round in 0..rounds {
        for k in 0..conditions.len() {
            let c = (k + round) % conditions.len();
            let b = block(&net, &opts, conditions[c]);
            eprintln!("round {round} {:?}: {:.2} images/s", conditions[c], b.images_per_s);
            results[c].push(b);
        }
    }

    let (cost_min_us, cost_median_us) = sample_cost(device);
    let cpu = CpuSampler::new().facts();
    println!(
        "Machine: {} ({} threads used), device {device}; model keras_cifar10_cnn batch 8; {rounds} rounds of \
         3 blocks (0.5 s measured each), order rotated every round.\n",
        cpu.model_name.show(|m| m.clone()),
        threads
    );
    println!(
        "Sampler `{}` alone, 5,000 calls: {cost_min_us:.1} us minimum, {cost_median_us:.1} us median per sample: \
         {:.3}% of one core at 10 ms, {:.4}% at 100 ms.\n",
        sampler_for(device).0.name(),
        100.0 * cost_median_us * 1e-6 / 0.010,
        100.0 * cost_median_us * 1e-6 / 0.100
    );
    println!(
        "| sampler | median images/s | change vs none: median of paired rounds [95% bootstrap interval] | wall time \
         per sample on the thread | thread share at that |"
    );
    println!("|---|---|---|---|---|");
    let baseline: Vec<f64> = results[0].iter().map(|b| b.images_per_s).collect();
    for (c, blocks) in conditions.iter().zip(&results) {
        let ips: Vec<f64> = blocks.iter().map(|b| b.images_per_s).collect();
        let ratios: Vec<f64> = ips.iter().zip(&baseline).map(|(x, base)| x / base).collect();
        let cost_us = median(blocks.iter().map(|b| b.sample_cost_us).collect()).unwrap_or(0.0);
        let samples: u64 = blocks.iter().map(|b| b.samples).sum();
        match c {
            None => println!("| none | {:.2} | - | - | - |", median(ips).unwrap()),
            Some(i) => {
                let (change, lo, hi) = paired_change(&ratios);
                println!(
                    "| every {} ms | {:.2} | {change:+.2}% [{lo:+.2}%, {hi:+.2}%] | {cost_us:.1} us ({samples} samples) | \
                     {:.3}% of one core |",
                    i.as_millis(),
                    median(ips).unwrap(),
                    100.0 * cost_us * 1e-6 / i.as_secs_f64()
                )
            }
        }
    }
}
