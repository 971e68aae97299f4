//! The CPU conv kernels (`synprof::exec::cpu`) against candle's `Tensor::conv2d` (+ bias,
//! the executor's current path) and im2col + the `gemm` crate, on the conv layers of
//! resnet50, mobilenet_v2 and synNet taken from the zoo, at batch 1 and 16.
//!
//! Two modes:
//!
//! * `cargo bench --bench conv` — criterion, on a few representative layers.
//! * `cargo bench --bench conv -- --summary [--models resnet50,synnet] [--batches 1,16]
//!   [--threads 2] [--isa avx512|avx2|scalar] [--detail] [--layers-json] [--cpu-time]` — every conv layer of each
//!   model, the three implementations timed side by side (interleaved rounds, median),
//!   summed per model into whole-model conv time and an images/s ceiling from convs
//!   alone, and GFLOP/s per layer class. Prints markdown (benches/conv_RESULTS.md).
//! * `cargo bench --bench conv -- --one C,H,W,OC,KH,KW,SH,SW,DH,DW,TOP,LEFT,BOTTOM,RIGHT,GROUPS
//!   [--batch N] [--threads T] [--cpu-time] [--method M] [--winograd 2x2|4x4|off] [--cold] [--after-depthwise] [--layouts IN,OUT]
//!   [--then-depthwise S [--unfused]] [--epilogue none|relu|relu6|silu|sigmoid|hardswish|hardsigmoid]` — one
//!   layer, median seconds on stdout (the method it ran on stderr); `--cold` flushes the caches before each run (weights
//!   from memory, input warm, as inside a model at batch 1); `--after-depthwise` has a 3x3 depthwise conv on the same
//!   threads write the input before each (untimed) run, each thread its share of the channels, as a MobileNet
//!   projection finds it (`CONV_ALL=1` prints every run's time).
//!
//! All three use the same thread count: ours a dedicated pool of that size, candle and
//! gemm rayon's global pool, which is sized to it here before first use. Conversion
//! costs are counted: candle's asymmetric padding (a separate pad, as the lowering does),
//! the gemm baseline's im2col and bias pass. Ours does no layout conversion: NCHW in
//! and out, im2col panels packed inside the timed call.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{Device, Tensor};
use criterion::Criterion;
use rayon::prelude::*;
use synprof::exec::cpu::{ConvSpec, Epilogue, GemmMethod, Isa, Layouts, PackedConv, Threads, Winograd, WinogradTile};
use synprof::graph::Op;

/// One distinct conv layer of a model (identical shapes counted once, `count` times).
#[derive(Clone)]
struct Layer {
    model: String,
    name: String,
    spec: ConvSpec,
    h: usize,
    w: usize,
    count: usize,
}

impl Layer {
    fn class(&self) -> String {
        let s = &self.spec;
        let kind = if s.is_depthwise() {
            "dw "
        } else if s.groups > 1 {
            "grouped "
        } else {
            ""
        };
        let stride = if s.stride[0] == s.stride[1] { format!("s{}", s.stride[0]) } else { format!("s{:?}", s.stride) };
        format!("{kind}{}x{} {stride}", s.kernel[0], s.kernel[1])
    }

    fn flops(&self, n: usize) -> f64 {
        2.0 * self.spec.macs(n, self.h, self.w) as f64
    }

    fn describe(&self) -> String {
        let s = &self.spec;
        let (oh, ow) = s.output_hw(self.h, self.w).unwrap();
        format!("{}x{}x{} -> {}x{}x{}", s.in_channels, self.h, self.w, s.out_channels, oh, ow)
    }
}

fn model_layers(model: &str) -> Vec<Layer> {
    let net = synprof::zoo::build(model, None).unwrap_or_else(|e| panic!("zoo model {model}: {e:?}"));
    let mut layers: Vec<Layer> = Vec::new();
    for node in &net.nodes {
        let Op::Conv2d(c) = &node.op else { continue };
        let dims = &net.nodes[node.inputs[0]].shape.0;
        let spec = ConvSpec::from_graph(c, dims[0]);
        let (h, w) = (dims[1], dims[2]);
        match layers.iter_mut().find(|l| l.spec == spec && l.h == h && l.w == w) {
            Some(l) => l.count += 1,
            None => layers.push(Layer { model: model.to_string(), name: node.name.clone(), spec, h, w, count: 1 }),
        }
    }
    layers
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    // A cheap LCG: benchmark data only needs to be finite and not all equal.
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// One layer at one batch, ready to run three ways.
struct Setup {
    layer: Layer,
    n: usize,
    ours: PackedConv,
    input: Vec<f32>,
    out: Vec<f32>,
    x_t: Tensor,
    w_t: Tensor,
    b_t: Tensor,
    weight: Vec<f32>,
    bias: Vec<f32>,
    col: Vec<f32>,
    out_gemm: Vec<f32>,
}

impl Setup {
    fn new(layer: &Layer, n: usize, isa: Isa) -> Setup {
        let s = layer.spec;
        let (oh, ow) = s.output_hw(layer.h, layer.w).unwrap();
        let weight = random(s.weight_len(), 1);
        let bias = random(s.out_channels, 2);
        let input = random(n * s.in_channels * layer.h * layer.w, 3);
        let ours = PackedConv::with_isa(&weight, Some(&bias), s, Epilogue::None, isa).unwrap();
        let dev = Device::Cpu;
        let x_t = Tensor::from_slice(&input, (n, s.in_channels, layer.h, layer.w), &dev).unwrap();
        let w_t =
            Tensor::from_slice(&weight, (s.out_channels, s.in_channels / s.groups, s.kernel[0], s.kernel[1]), &dev)
                .unwrap();
        let b_t = Tensor::from_slice(&bias, (1, s.out_channels, 1, 1), &dev).unwrap();
        let pointwise = s.kernel == [1, 1] && s.stride == [1, 1] && s.padding == synprof::graph::Padding::ZERO;
        let k = s.in_channels / s.groups * s.kernel[0] * s.kernel[1];
        let col = if pointwise { Vec::new() } else { vec![0.0; k * oh * ow] };
        Setup {
            layer: layer.clone(),
            n,
            ours,
            input,
            out: vec![0.0; n * s.out_channels * oh * ow],
            x_t,
            w_t,
            b_t,
            weight,
            bias,
            col,
            out_gemm: vec![0.0; n * s.out_channels * oh * ow],
        }
    }

    fn run_ours(&mut self, threads: &Threads) {
        let l = &self.layer;
        self.ours.run(&self.input, self.n, l.h, l.w, &mut self.out, threads).unwrap();
    }

    /// What the candle lowering does: pad separately when candle's one symmetric padding
    /// cannot say it, conv2d, add the bias.
    fn run_candle(&self) -> Tensor {
        let s = &self.layer.spec;
        let p = s.padding;
        assert_eq!(s.stride[0], s.stride[1], "per-axis strides are not in these models");
        assert_eq!(s.dilation[0], s.dilation[1]);
        let uniform = p.top == p.bottom && p.left == p.right && p.top == p.left;
        let (x, pad) = if uniform {
            (self.x_t.clone(), p.top)
        } else {
            (self.x_t.pad_with_zeros(2, p.top, p.bottom).unwrap().pad_with_zeros(3, p.left, p.right).unwrap(), 0)
        };
        let y = x.conv2d(&self.w_t, pad, s.stride[0], s.dilation[0], s.groups).unwrap();
        y.broadcast_add(&self.b_t).unwrap()
    }

    /// im2col (parallel over rows) + `gemm::gemm` per image and group + a bias pass.
    fn run_gemm(&mut self, threads: usize) {
        let l = &self.layer;
        let s = l.spec;
        let (oh, ow) = s.output_hw(l.h, l.w).unwrap();
        let (cg, mg) = (s.in_channels / s.groups, s.out_channels / s.groups);
        let k = cg * s.kernel[0] * s.kernel[1];
        let p = oh * ow;
        for img in 0..self.n {
            for g in 0..s.groups {
                let x = &self.input[(img * s.in_channels + g * cg) * l.h * l.w..][..cg * l.h * l.w];
                let rhs: &[f32] = if self.col.is_empty() {
                    x
                } else {
                    im2col(&s, x, l.h, l.w, oh, ow, &mut self.col[..k * p]);
                    &self.col[..k * p]
                };
                let dst = &mut self.out_gemm[(img * s.out_channels + g * mg) * p..][..mg * p];
                let lhs = &self.weight[g * mg * k..][..mg * k];
                // SAFETY: dst is mg x p, lhs mg x k, rhs k x p, all row-major.
                unsafe {
                    gemm::gemm(
                        mg,
                        p,
                        k,
                        dst.as_mut_ptr(),
                        1,
                        p as isize,
                        false,
                        lhs.as_ptr(),
                        1,
                        k as isize,
                        rhs.as_ptr(),
                        1,
                        p as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None },
                    );
                }
            }
        }
        let bias = &self.bias;
        let oc = s.out_channels;
        self.out_gemm.par_chunks_mut(p).enumerate().for_each(|(i, row)| {
            let b = bias[i % oc];
            row.iter_mut().for_each(|v| *v += b);
        });
    }
}

/// `col[(ic, ky, kx)][(oy, ox)]` for one group's planes.
fn im2col(s: &ConvSpec, x: &[f32], h: usize, w: usize, oh: usize, ow: usize, col: &mut [f32]) {
    let [kh, kw] = s.kernel;
    let p = s.padding;
    col.par_chunks_mut(oh * ow).enumerate().for_each(|(r, row)| {
        let (ic, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
        let plane = &x[ic * h * w..][..h * w];
        for oy in 0..oh {
            let iy = (oy * s.stride[0] + ky * s.dilation[0]) as isize - p.top as isize;
            let dst = &mut row[oy * ow..][..ow];
            if iy < 0 || iy >= h as isize {
                dst.fill(0.0);
                continue;
            }
            let src = &plane[iy as usize * w..][..w];
            for (ox, d) in dst.iter_mut().enumerate() {
                let ix = (ox * s.stride[1] + kx * s.dilation[1]) as isize - p.left as isize;
                *d = if ix >= 0 && ix < w as isize { src[ix as usize] } else { 0.0 };
            }
        }
    });
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// Time by the process's CPU time instead of the wall clock (`--cpu-time`, meant for
/// `--threads 1`): on a machine shared with other work it leaves out the time the OS gave
/// to others, so it measures the code, not the neighbours (cache sharing still counts).
static CPU_TIME: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(target_os = "linux")]
fn process_cpu_secs() -> f64 {
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut [i64; 2]) -> i32;
    }
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = [0i64; 2];
    // SAFETY: `ts` is a valid `struct timespec` (two 64-bit fields on 64-bit Linux).
    unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts[0] as f64 + ts[1] as f64 * 1e-9
}

#[cfg(not(target_os = "linux"))]
fn process_cpu_secs() -> f64 {
    panic!("--cpu-time needs Linux")
}

fn secs(f: impl FnOnce()) -> f64 {
    if CPU_TIME.load(std::sync::atomic::Ordering::Relaxed) {
        let t = process_cpu_secs();
        f();
        return process_cpu_secs() - t;
    }
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// Median seconds of ours, candle, gemm: interleaved rounds (ours, candle, gemm, ours, ...)
/// so machine noise hits all three alike; each runs until it has its samples.
fn time_layer(st: &mut Setup, threads: &Threads) -> [f64; 3] {
    let t = threads.count();
    // Warm-up (first touch, packing buffers, thread wake-up) gives the first estimate.
    let est = [secs(|| st.run_ours(threads)), secs(|| drop(st.run_candle())), secs(|| st.run_gemm(t))];
    check(st);
    // About 0.25 s of samples each, at least 3 (2 for runs over 2 s), at most 30.
    let want: Vec<usize> =
        est.iter().map(|&e| if e > 2.0 { 2 } else { ((0.25 / e.max(1e-6)) as usize).clamp(3, 30) }).collect();
    let mut samples: [Vec<f64>; 3] = Default::default();
    while (0..3).any(|i| samples[i].len() < want[i]) {
        if samples[0].len() < want[0] {
            samples[0].push(secs(|| st.run_ours(threads)));
        }
        if samples[1].len() < want[1] {
            samples[1].push(secs(|| drop(st.run_candle())));
        }
        if samples[2].len() < want[2] {
            samples[2].push(secs(|| st.run_gemm(t)));
        }
    }
    [median(&mut samples[0]), median(&mut samples[1]), median(&mut samples[2])]
}

/// Ours against candle and gemm on this layer's data: all three must agree.
fn check(st: &Setup) {
    let want = st.run_candle().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (what, got) in [("ours", &st.out), ("gemm", &st.out_gemm)] {
        let err = got.iter().zip(&want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-4 * scale,
            "{} {} batch {}: {what} differs from candle by {err} (max |out| {scale})",
            st.layer.model,
            st.layer.name,
            st.n
        );
    }
}

/// Best-case f32 FMA throughput of one core: register-only FMA chains.
fn peak_gflops(isa: Isa) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(iters: usize) -> f32 {
            use std::arch::x86_64::*;
            let mut acc = [_mm512_set1_ps(0.0); 24];
            let (a, b) = (_mm512_set1_ps(0.999), _mm512_set1_ps(0.001));
            for _ in 0..iters {
                for x in acc.iter_mut() {
                    *x = _mm512_fmadd_ps(*x, a, b);
                }
            }
            acc.iter().map(|v| _mm512_reduce_add_ps(*v)).sum()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(iters: usize) -> f32 {
            use std::arch::x86_64::*;
            let mut acc = [_mm256_set1_ps(0.0); 12];
            let (a, b) = (_mm256_set1_ps(0.999), _mm256_set1_ps(0.001));
            for _ in 0..iters {
                for x in acc.iter_mut() {
                    *x = _mm256_fmadd_ps(*x, a, b);
                }
            }
            let mut out = [0.0f32; 8];
            acc.iter().for_each(|v| {
                let mut t = [0.0f32; 8];
                _mm256_storeu_ps(t.as_mut_ptr(), *v);
                out.iter_mut().zip(t).for_each(|(o, x)| *o += x);
            });
            out.iter().sum()
        }
        let iters = 20_000_000;
        let (flops, f): (f64, Box<dyn Fn() -> f32>) = match isa {
            Isa::Avx512 => (24.0 * 16.0 * 2.0 * iters as f64, Box::new(move || unsafe { avx512(iters) })),
            Isa::Avx2 => (12.0 * 8.0 * 2.0 * iters as f64, Box::new(move || unsafe { avx2(iters) })),
            Isa::Scalar => return None,
        };
        let best = (0..3)
            .map(|_| {
                secs(|| {
                    let _ = std::hint::black_box(f());
                })
            })
            .fold(f64::MAX, f64::min);
        Some(flops / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        None
    }
}

struct Row {
    layer: Layer,
    n: usize,
    t: [f64; 3],
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn summary(args: &[String]) {
    let models = arg(args, "--models").unwrap_or_else(|| "resnet50,mobilenet_v2,synnet".into());
    let batches: Vec<usize> =
        arg(args, "--batches").unwrap_or_else(|| "1,16".into()).split(',').map(|b| b.parse().unwrap()).collect();
    let nthreads: usize = arg(args, "--threads").map_or(2, |t| t.parse().unwrap());
    let isa = isa_arg(args);
    let detail = args.iter().any(|a| a == "--detail");
    let cpu_time = args.iter().any(|a| a == "--cpu-time");
    assert!(!cpu_time || nthreads == 1, "--cpu-time measures one thread: use --threads 1");
    CPU_TIME.store(cpu_time, std::sync::atomic::Ordering::Relaxed);
    if args.iter().any(|a| a == "--layers-json") {
        // The distinct layers, one JSON object a line (for timing other runtimes on them).
        for model in models.split(',') {
            for l in model_layers(model) {
                let s = &l.spec;
                println!(
                    "{{\"model\":\"{}\",\"name\":\"{}\",\"count\":{},\"c\":{},\"h\":{},\"w\":{},\"oc\":{},\"k\":[{},{}],\"stride\":[{},{}],\"dilation\":[{},{}],\"pads\":[{},{},{},{}],\"groups\":{},\"class\":\"{}\"}}",
                    l.model, l.name, l.count, s.in_channels, l.h, l.w, s.out_channels, s.kernel[0], s.kernel[1], s.stride[0], s.stride[1],
                    s.dilation[0], s.dilation[1], s.padding.top, s.padding.left, s.padding.bottom, s.padding.right, s.groups, l.class()
                );
            }
        }
        return;
    }
    let threads = Threads::new(nthreads).unwrap();

    let clock = if cpu_time { "process CPU time" } else { "wall clock" };
    println!("## Conv layers: ours ({isa}) vs candle conv2d vs im2col + gemm crate, {nthreads} thread(s), {clock}\n");
    if let Some(p) = peak_gflops(isa) {
        println!("Peak FMA throughput of one core ({isa}, register-only FMA loop): {p:.1} GFLOP/s\n");
    }
    let mut rows = Vec::new();
    for model in models.split(',') {
        let layers = model_layers(model);
        for &n in &batches {
            for layer in &layers {
                let mut st = Setup::new(layer, n, isa);
                let t = time_layer(&mut st, &threads);
                eprintln!(
                    "{model} b{n} {:<18} {:<12} {:<28} x{}: ours {:8.3} ms  candle {:8.3} ms  gemm {:8.3} ms",
                    layer.name,
                    layer.class(),
                    layer.describe(),
                    layer.count,
                    t[0] * 1e3,
                    t[1] * 1e3,
                    t[2] * 1e3
                );
                rows.push(Row { layer: layer.clone(), n, t });
            }
        }
    }

    println!("### Whole-model conv time (sum over all conv layers)\n");
    println!("| model | batch | conv GFLOP | ours ms | candle ms | gemm ms | ours img/s | candle img/s | gemm img/s | ours GFLOP/s | vs candle | vs gemm |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut keys: Vec<(String, usize)> = rows.iter().map(|r| (r.layer.model.clone(), r.n)).collect();
    keys.dedup();
    for (model, n) in &keys {
        let rs: Vec<&Row> = rows.iter().filter(|r| &r.layer.model == model && r.n == *n).collect();
        let flops: f64 = rs.iter().map(|r| r.layer.flops(r.n) * r.layer.count as f64).sum();
        let tot = |i: usize| rs.iter().map(|r| r.t[i] * r.layer.count as f64).sum::<f64>();
        let (a, b, c) = (tot(0), tot(1), tot(2));
        println!(
            "| {model} | {n} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}x | {:.2}x |",
            flops / 1e9,
            a * 1e3,
            b * 1e3,
            c * 1e3,
            *n as f64 / a,
            *n as f64 / b,
            *n as f64 / c,
            flops / a / 1e9,
            b / a,
            c / a
        );
    }

    println!("\n### GFLOP/s per layer class (time-weighted over the class's layers)\n");
    println!("| model | batch | class | layers | share of our time | ours GFLOP/s | candle GFLOP/s | gemm GFLOP/s | vs candle | vs gemm |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for (model, n) in &keys {
        let rs: Vec<&Row> = rows.iter().filter(|r| &r.layer.model == model && r.n == *n).collect();
        let total: f64 = rs.iter().map(|r| r.t[0] * r.layer.count as f64).sum();
        let mut classes: BTreeMap<String, (usize, f64, [f64; 3])> = BTreeMap::new();
        for r in &rs {
            let e = classes.entry(r.layer.class()).or_default();
            e.0 += r.layer.count;
            e.1 += r.layer.flops(r.n) * r.layer.count as f64;
            for i in 0..3 {
                e.2[i] += r.t[i] * r.layer.count as f64;
            }
        }
        for (class, (count, flops, t)) in classes {
            println!(
                "| {model} | {n} | {class} | {count} | {:.0}% | {:.1} | {:.1} | {:.1} | {:.2}x | {:.2}x |",
                100.0 * t[0] / total,
                flops / t[0] / 1e9,
                flops / t[1] / 1e9,
                flops / t[2] / 1e9,
                t[1] / t[0],
                t[2] / t[0]
            );
        }
    }

    if detail {
        println!("\n### Per layer\n");
        println!("| model | batch | layer | class | shape | x | MFLOP | ours ms | candle ms | gemm ms | ours GFLOP/s | vs candle | vs gemm |");
        println!("|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            let f = r.layer.flops(r.n);
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.1} | {:.3} | {:.3} | {:.3} | {:.1} | {:.2}x | {:.2}x |",
                r.layer.model,
                r.n,
                r.layer.name,
                r.layer.class(),
                r.layer.describe(),
                r.layer.count,
                f / 1e6,
                r.t[0] * 1e3,
                r.t[1] * 1e3,
                r.t[2] * 1e3,
                f / r.t[0] / 1e9,
                r.t[1] / r.t[0],
                r.t[2] / r.t[0]
            );
        }
    }
}

/// Criterion: a few representative layers at batch 1, three implementations each.
fn criterion_benches(c: &mut Criterion) {
    let threads = Threads::new(2).unwrap();
    let picks = [
        ("resnet50", "layer1.0.conv2"),
        ("resnet50", "layer1.0.conv3"),
        ("resnet50", "layer4.0.conv2"),
        ("mobilenet_v2", "blocks.3.conv2"),
        ("mobilenet_v2", "blocks.4.conv2"),
        ("synnet", "group3.conv5"),
    ];
    for (model, name) in picks {
        let Some(layer) = model_layers(model).into_iter().find(|l| l.name == name) else {
            eprintln!("no layer {name} in {model}");
            continue;
        };
        let mut st = Setup::new(&layer, 1, Isa::detect());
        let mut g = c.benchmark_group(format!("{model}/{name} {} {}", layer.class(), layer.describe()));
        g.sample_size(10);
        g.bench_function("ours", |b| b.iter(|| st.run_ours(&threads)));
        g.bench_function("candle", |b| b.iter(|| st.run_candle()));
        g.bench_function("im2col+gemm", |b| b.iter(|| st.run_gemm(2)));
        g.finish();
    }
}

/// `--one c,h,w,oc,kh,kw,sh,sw,dh,dw,top,left,bottom,right,groups --batch n [--threads t]
/// [--cpu-time] [--method pointwise|direct|im2col|channels]`: ours alone
/// on one layer, printing the median seconds (for interleaving with other runtimes'
/// timings of the same layer from outside, e.g. onnxruntime in conv_RESULTS.md).
fn one(args: &[String], spec_arg: &str) {
    let v: Vec<usize> = spec_arg.split(',').map(|x| x.parse().unwrap()).collect();
    let [c, h, w, oc, kh, kw, sh, sw, dh, dw, top, left, bottom, right, groups] = v[..] else {
        panic!("--one needs 15 numbers")
    };
    let n: usize = arg(args, "--batch").map_or(1, |b| b.parse().unwrap());
    let nthreads: usize = arg(args, "--threads").map_or(2, |t| t.parse().unwrap());
    let cpu_time = args.iter().any(|a| a == "--cpu-time");
    assert!(!cpu_time || nthreads == 1, "--cpu-time measures one thread: use --threads 1");
    CPU_TIME.store(cpu_time, std::sync::atomic::Ordering::Relaxed);
    let spec = ConvSpec::new(c, oc, [kh, kw])
        .with_stride(sh, sw)
        .with_dilation(dh, dw)
        .with_padding(top, bottom, left, right)
        .with_groups(groups);
    let (oh, ow) = spec.output_hw(h, w).unwrap();
    let (weight, bias) = (random(spec.weight_len(), 1), random(oc, 2));
    let epilogue = match arg(args, "--epilogue").as_deref() {
        None | Some("none") => Epilogue::None,
        Some("relu") => Epilogue::Relu,
        Some("relu6") => Epilogue::Relu6,
        Some("silu") => Epilogue::Silu,
        Some("sigmoid") => Epilogue::Sigmoid,
        Some("hardswish") => Epilogue::HardSwish,
        Some("hardsigmoid") => Epilogue::HardSigmoid,
        Some(other) => panic!("--epilogue {other}: none, relu, relu6, silu, sigmoid, hardswish or hardsigmoid"),
    };
    let mut conv = PackedConv::with_isa(&weight, Some(&bias), spec, epilogue, isa_arg(args)).unwrap();
    conv.force_gemm_method(match arg(args, "--method").as_deref() {
        None => None,
        Some("pointwise") => Some(GemmMethod::Pointwise),
        Some("direct") => Some(GemmMethod::Direct),
        Some("im2col") => Some(GemmMethod::Im2col),
        Some("channels") => Some(GemmMethod::Channels),
        Some(other) => panic!("--method {other}: pointwise, direct, im2col or channels"),
    });
    conv.force_winograd(match arg(args, "--winograd").as_deref() {
        None => None,
        // "on": F(2x2), what it meant before F(4x4) existed (older RESULTS commands).
        Some("2x2" | "on") => Some(Winograd::On(WinogradTile::F2x2)),
        Some("4x4") => Some(Winograd::On(WinogradTile::F4x4)),
        Some("off") => Some(Winograd::Off),
        Some(other) => panic!("--winograd {other}: 2x2, 4x4 or off"),
    });
    // --layouts IN,OUT: 1 for a blocked side (`cpu::to_blocked`), 0 for NCHW.
    let layouts = arg(args, "--layouts").map_or(Layouts::NCHW, |l| match l.as_str() {
        "0,0" => Layouts::NCHW,
        "0,1" => Layouts { input: false, output: true },
        "1,0" => Layouts { input: true, output: false },
        "1,1" => Layouts::BLOCKED,
        other => panic!("--layouts {other}: IN,OUT, each 0 (NCHW) or 1 (blocked)"),
    });
    let mut input = random(n * c * h * w, 3);
    // --after-depthwise: the input is what a 3x3 depthwise conv over the threads just wrote
    // (each thread its share of the channels), as a MobileNet projection finds it.
    let depthwise = args.iter().any(|a| a == "--after-depthwise").then(|| {
        let spec = ConvSpec::new(c, c, [3, 3]).with_padding(1, 1, 1, 1).with_groups(c);
        PackedConv::new(&random(spec.weight_len(), 4), Some(&random(c, 5)), spec, Epilogue::None).unwrap()
    });
    let pre_input = input.clone();
    // --then-depthwise S: the layer is a 1x1 expansion and a 3x3 depthwise conv of stride S
    // (padding 1) follows it, as in MobileNetV2's inverted residual; both run fused
    // (`run_expand_depthwise`), or one after the other with --unfused.
    let then_dw = arg(args, "--then-depthwise").map(|s| {
        let s: usize = s.parse().expect("--then-depthwise takes the stride");
        let spec = ConvSpec::new(oc, oc, [3, 3]).with_stride(s, s).with_padding(1, 1, 1, 1).with_groups(oc);
        let conv = PackedConv::new(&random(spec.weight_len(), 6), Some(&random(oc, 7)), spec, Epilogue::None);
        (conv.unwrap(), spec.output_hw(oh, ow).unwrap())
    });
    let fused = !args.iter().any(|a| a == "--unfused");
    if then_dw.is_some() {
        eprintln!("method expansion + depthwise, {}", if fused { "fused" } else { "unfused" });
    }
    // With --then-depthwise the output is the depthwise conv's, `mid` the expansion's.
    let (out_h, out_w) = then_dw.as_ref().map_or((oh, ow), |(_, hw)| *hw);
    let mut out = vec![0.0; n * oc * out_h * out_w];
    let mut mid = vec![0.0; if then_dw.is_some() { n * oc * oh * ow } else { 0 }];
    let threads = Threads::new(nthreads).unwrap();
    // --cold: as inside a model at batch 1, the weights come from memory (the caches are
    // flushed before each run) while the input is warm (the previous layer just wrote it).
    let cold = args.iter().any(|a| a == "--cold").then(|| vec![1.0f32; 128 << 20 >> 2]);
    if then_dw.is_none() {
        eprintln!("method {}", conv.method_for(n, h, w));
    }
    let mut run = || {
        if let Some(flush) = &cold {
            std::hint::black_box(flush.iter().sum::<f32>());
            std::hint::black_box(input.iter().sum::<f32>());
        }
        if let Some(dw) = &depthwise {
            dw.run(&pre_input, n, h, w, &mut input, &threads).unwrap();
        }
        secs(|| match &then_dw {
            Some((dw, _)) if fused => conv.run_expand_depthwise(dw, &input, n, h, w, &mut out, &threads).unwrap(),
            Some((dw, _)) => {
                conv.run(&input, n, h, w, &mut mid, &threads).unwrap();
                dw.run(&mid, n, oh, ow, &mut out, &threads).unwrap()
            }
            None => conv.run_in_layouts(&input, n, h, w, None, false, &mut out, layouts, &threads).unwrap(),
        })
    };
    let est = run();
    // CONV_REPS=N: N runs (for a profiler to sample), else about a quarter second's worth.
    let reps = match std::env::var("CONV_REPS").ok().and_then(|r| r.parse().ok()) {
        Some(reps) => reps,
        None if est > 2.0 => 2,
        None => ((0.25 / est.max(1e-6)) as usize).clamp(3, 30),
    };
    let mut t: Vec<f64> = (0..reps).map(|_| run()).collect();
    if std::env::var_os("CONV_ALL").is_some() {
        eprintln!("est {est} all {t:?}");
    }
    println!("{}", median(&mut t));
}

/// `--isa avx512|avx2|scalar`, else the detected one.
fn isa_arg(args: &[String]) -> Isa {
    match arg(args, "--isa").as_deref() {
        None => Isa::detect(),
        Some("avx512") => Isa::Avx512,
        Some("avx2") => Isa::Avx2,
        Some("scalar") => Isa::Scalar,
        Some(other) => panic!("unknown ISA {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Size rayon's global pool (candle's and gemm's) to the same count as ours.
    let nthreads: usize = arg(&args, "--threads").map_or(2, |t| t.parse().unwrap());
    rayon::ThreadPoolBuilder::new().num_threads(nthreads).build_global().ok();
    std::env::set_var("RAYON_NUM_THREADS", nthreads.to_string());
    if let Some(spec) = arg(&args, "--one") {
        one(&args, &spec);
        return;
    }
    if args.iter().any(|a| a == "--summary") {
        summary(&args);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
}
