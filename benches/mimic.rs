//! Mimic search time and worst distance per zoo model (results: benches/MIMIC.md).
//! `cargo bench --bench mimic [-- MODEL|a:0.5;b:0.5 ...]`; `MIMIC_EVALUATIONS` overrides the
//! budget, `MIMIC_VERBOSE` prints every distance.

use std::time::Instant;
use synprof::synth::mimic::{mimic, MimicOptions};

const MODELS: &[&str] = synprof::zoo::AI_MATRIX_AND_DLBS;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let models: Vec<&str> = if args.is_empty() { MODELS.to_vec() } else { args.iter().map(String::as_str).collect() };
    let mut opts = MimicOptions::default();
    if let Ok(v) = std::env::var("MIMIC_JITTER") {
        opts.jitter = v.parse().expect("MIMIC_JITTER: a number");
    }
    if let Ok(v) = std::env::var("MIMIC_EVALUATIONS") {
        opts.evaluations = v.parse().expect("MIMIC_EVALUATIONS: an integer");
    }
    println!("| model | search s | evaluations | worst distance at start | worst distance | worst characteristic |");
    println!("|---|---:|---:|---:|---:|---|");
    for model in models {
        // `a:0.5;b:0.5` is a mix.
        let targets: Vec<(synprof::graph::Net, f64)> = model
            .split(';')
            .map(|part| {
                let (name, w) = part.split_once(':').unwrap_or((part, "1"));
                (synprof::zoo::build(name, None).expect("zoo model"), w.parse().expect("weight"))
            })
            .collect();
        let t = Instant::now();
        let m = mimic(&targets, &opts).expect("mimic");
        let secs = t.elapsed().as_secs_f64();
        let worst = m.distances.iter().filter(|d| d.counted).max_by(|a, b| a.distance.total_cmp(&b.distance)).unwrap();
        println!(
            "| {model} | {secs:.2} | {} | {:.2}% | {:.2}% | {} |",
            m.evaluations,
            m.initial_worst * 100.0,
            m.worst * 100.0,
            worst.name
        );
        if std::env::var("MIMIC_VERBOSE").is_ok() {
            for d in &m.distances {
                println!("    {:24} {:>8.2}%  {} -> {}", d.name, d.distance * 100.0, d.target, d.achieved);
            }
        }
    }
}
