//! Analysing the whole zoo at batch 1 (target: under 100 ms in total).

use criterion::{criterion_group, criterion_main, Criterion};
use synprof::analysis::characteristics::characterize;
use synprof::{analysis, zoo, Dtype};

/// The full analysis `synprof inspect` does: layer table, totals and characteristics.
fn full(net: &synprof::graph::Net) -> u64 {
    let a = analysis::analyze(net, 1, Dtype::F32);
    characterize(net, &a).weighted_layers as u64 + a.totals.macs
}

fn whole_zoo(c: &mut Criterion) {
    let nets: Vec<_> = zoo::registry().iter().filter_map(|m| m.build(None).ok()).collect();
    c.bench_function("analyze_whole_zoo_batch1", |b| b.iter(|| nets.iter().map(full).sum::<u64>()));
    c.bench_function("build_and_analyze_whole_zoo_batch1", |b| {
        b.iter(|| zoo::registry().iter().filter_map(|m| m.build(None).ok()).map(|n| full(&n)).sum::<u64>())
    });
}

criterion_group!(benches, whole_zoo);
criterion_main!(benches);
