//! The CPU conv kernels (`synprof::exec::cpu`) against a naive f64 convolution, on every
//! ISA this CPU has (AVX-512, AVX2+FMA and the scalar fallback are each forced in turn),
//! with one and several threads: hundreds of random shapes covering odd sizes, channel
//! counts off the vector width, rectangular and dilated kernels, per-axis strides,
//! asymmetric padding, grouped and depthwise convs, every epilogue, batch 1..3, plus the
//! shapes that cross the kernels' block boundaries.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use synprof::exec::cpu::{
    from_blocked, global_avg_pool_blocked, to_blocked, ConvSpec, Epilogue, GemmMethod, Isa, Layouts, PackedConv,
    Threads, Winograd, WinogradTile, BLOCK,
};

/// Allowed error, relative to the largest |output|...
const TOLERANCE: f64 = 1e-5;
/// ...and for F(4x4, 3x3), whose transforms reach 8 and 1/24 (`src/exec/cpu/winograd/`).
const TOLERANCE_WINOGRAD_4X4: f64 = 5e-5;

/// The tolerance for what `conv` runs on `case`'s inputs.
fn tolerance(conv: &PackedConv, case: &Case) -> f64 {
    if conv.method_for(case.n, case.h, case.w) == "winograd/4x4" {
        TOLERANCE_WINOGRAD_4X4
    } else {
        TOLERANCE
    }
}

/// Naive f64 conv + bias (+ residual) + epilogue: the definition.
#[allow(clippy::too_many_arguments)]
fn reference(
    spec: &ConvSpec,
    weight: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    epi: Epilogue,
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
) -> Vec<f64> {
    let (oh, ow) = spec.output_hw(h, w).unwrap();
    let (cin, cout, g) = (spec.in_channels, spec.out_channels, spec.groups);
    let (cg, mg) = (cin / g, cout / g);
    let [kh, kw] = spec.kernel;
    let p = spec.padding;
    let mut out = vec![0.0f64; n * cout * oh * ow];
    for b in 0..n {
        for o in 0..cout {
            let grp = o / mg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias.map_or(0.0, |bs| bs[o] as f64);
                    for ci in 0..cg {
                        let c = grp * cg + ci;
                        for ky in 0..kh {
                            let iy = (oy * spec.stride[0] + ky * spec.dilation[0]) as isize - p.top as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix = (ox * spec.stride[1] + kx * spec.dilation[1]) as isize - p.left as isize;
                                if ix < 0 || ix >= w as isize {
                                    continue;
                                }
                                let wv = weight[((o * cg + ci) * kh + ky) * kw + kx] as f64;
                                let xv = x[((b * cin + c) * h + iy as usize) * w + ix as usize] as f64;
                                acc += wv * xv;
                            }
                        }
                    }
                    let at = ((b * cout + o) * oh + oy) * ow + ox;
                    acc += residual.map_or(0.0, |r| r[at] as f64);
                    out[at] = activation(acc, epi);
                }
            }
        }
    }
    out
}

/// Each epilogue's definition, in f64.
fn activation(x: f64, epi: Epilogue) -> f64 {
    let sigmoid = 1.0 / (1.0 + (-x).exp());
    let hard_sigmoid = (x + 3.0).clamp(0.0, 6.0) / 6.0;
    match epi {
        Epilogue::None => x,
        Epilogue::Relu => x.max(0.0),
        Epilogue::Relu6 => x.clamp(0.0, 6.0),
        Epilogue::Silu => x * sigmoid,
        Epilogue::Sigmoid => sigmoid,
        Epilogue::HardSwish => x * hard_sigmoid,
        Epilogue::HardSigmoid => hard_sigmoid,
    }
}

/// Every epilogue.
const EPILOGUES: [Epilogue; 7] = [
    Epilogue::None,
    Epilogue::Relu,
    Epilogue::Relu6,
    Epilogue::Silu,
    Epilogue::Sigmoid,
    Epilogue::HardSwish,
    Epilogue::HardSigmoid,
];

struct Case {
    spec: ConvSpec,
    n: usize,
    h: usize,
    w: usize,
    bias: bool,
    epi: Epilogue,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.spec;
        write!(
            f,
            "n{} {}x{}x{} -> {} k{:?} s{:?} d{:?} pad({},{},{},{}) g{} bias {} {:?}",
            self.n,
            s.in_channels,
            self.h,
            self.w,
            s.out_channels,
            s.kernel,
            s.stride,
            s.dilation,
            s.padding.top,
            s.padding.bottom,
            s.padding.left,
            s.padding.right,
            s.groups,
            self.bias,
            self.epi
        )
    }
}

/// Run `case` on `isa` with each thread pool and compare with the reference; GEMM convs
/// also with each way of forming B forced (the automatic choice covers only some shapes),
/// and with a residual added before the activation.
fn check(case: &Case, isa: Isa, pools: &[Threads], rng: &mut ChaCha8Rng) {
    let s = case.spec;
    let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let weight = random(s.weight_len());
    let bias = random(s.out_channels);
    let x = random(case.n * s.in_channels * case.h * case.w);
    let bias = case.bias.then_some(&bias[..]);
    let want = reference(&s, &weight, bias, None, case.epi, &x, case.n, case.h, case.w);
    let mut conv = PackedConv::with_isa(&weight, bias, s, case.epi, isa).unwrap();
    // (Winograd on/off/automatic, GEMM method): every way of forming B, and for 3x3
    // stride-1 convs F(2x2, 3x3) and F(4x4, 3x3) with each orientation of their inner GEMM.
    let mut forced: Vec<(Option<Winograd>, Option<GemmMethod>)> = vec![(None, None)];
    if !s.is_depthwise() {
        for m in [GemmMethod::Pointwise, GemmMethod::Direct, GemmMethod::Im2col, GemmMethod::Channels] {
            forced.push((None, Some(m)));
        }
    }
    if s.groups == 1 && s.kernel == [3, 3] && s.stride == [1, 1] && s.dilation == [1, 1] {
        forced.push((Some(Winograd::Off), None));
        for tile in [WinogradTile::F2x2, WinogradTile::F4x4] {
            for m in [None, Some(GemmMethod::Pointwise), Some(GemmMethod::Channels)] {
                forced.push((Some(Winograd::On(tile)), m));
            }
        }
    }
    for (&(winograd, force), threads) in forced.iter().flat_map(|f| pools.iter().map(move |t| (f, t))) {
        conv.force_winograd(winograd);
        conv.force_gemm_method(force);
        // Poison the output: the conv must overwrite every element.
        let mut got = vec![f32::NAN; want.len()];
        conv.run(&x, case.n, case.h, case.w, &mut got, threads).unwrap();
        let what = || format!("{isa} ({}), {threads:?}, {case:?}", conv.method_for(case.n, case.h, case.w));
        compare(&got, &want, tolerance(&conv, case), what);
    }
    strided_outputs(&mut conv, case, &x, &want, &forced, &pools[pools.len() - 1]);
    if s.is_depthwise() {
        return;
    }
    let residual = random(want.len());
    let want = reference(&s, &weight, bias, Some(&residual), case.epi, &x, case.n, case.h, case.w);
    for &(winograd, force) in &forced {
        conv.force_winograd(winograd);
        conv.force_gemm_method(force);
        let threads = &pools[pools.len() - 1];
        let mut got = vec![f32::NAN; want.len()];
        conv.run_with_residual(&x, case.n, case.h, case.w, Some(&residual), &mut got, threads).unwrap();
        let what =
            || format!("{isa} ({}) with a residual, {threads:?}, {case:?}", conv.method_for(case.n, case.h, case.w));
        compare(&got, &want, tolerance(&conv, case), what);
        // The residual in the output's buffer: each tile must read it before it writes
        // there. Twice: the first call of a shape may time the forms (on a copy).
        for call in 0..2 {
            let mut acc = residual.clone();
            conv.run_add_in_place(&x, case.n, case.h, case.w, &mut acc, threads).unwrap();
            let what = || {
                let method = conv.method_for(case.n, case.h, case.w);
                format!("{isa} ({method}) with the residual in place, call {call}, {threads:?}, {case:?}")
            };
            compare(&acc, &want, tolerance(&conv, case), what);
        }
    }
}

/// `conv` (no residual) once more with each image's output a run of a larger tensor's
/// images (`run_strided`, a concat's input in its output): the runs as `want` (within
/// `tolerance`), the floats between them untouched, where the conv says it writes so
/// (`writes_strided`), else an error. Images lie whole blocks apart where a side is blocked
/// (as a concat's inputs of whole blocks lie), else at an odd stride. Returns whether it wrote.
fn strided_in_layouts(
    conv: &PackedConv,
    input: &[f32],
    [n, h, w]: [usize; 3],
    layouts: Layouts,
    want: &[f64],
    tolerance: f64,
    threads: &Threads,
) -> bool {
    let spec = *conv.spec();
    let (oh, ow) = spec.output_hw(h, w).unwrap();
    let (m, packed) = (spec.out_channels, spec.out_channels * oh * ow);
    let stride = packed + 2 * BLOCK + if layouts.any_blocked() { 0 } else { 3 };
    let mut got = vec![GAP; n * stride];
    let result = conv.run_strided(input, [n, h, w], &mut got, stride, layouts, threads);
    let method = conv.method_for(n, h, w);
    if !conv.writes_strided(n, h, w, layouts) {
        assert!(result.is_err(), "{method}, {spec:?} {layouts:?} wrote strided output while saying it cannot");
        return false;
    }
    result.unwrap();
    let runs: Vec<f32> = got.chunks(stride).flat_map(|image| image[..packed].to_vec()).collect();
    let runs = if layouts.output { from_blocked(&runs, n, m, oh * ow) } else { runs };
    compare(&runs, want, tolerance, || format!("{method} strided, {spec:?} {layouts:?}, {n}x{h}x{w}, {threads:?}"));
    let gaps_kept = got.chunks(stride).all(|image| image[packed..].iter().all(|&v| v == GAP));
    assert!(gaps_kept, "{method}, {spec:?} {layouts:?} wrote between the images' runs");
    true
}

/// What strided outputs leave between the images' runs (an activation would change it).
const GAP: f32 = -7.25;

/// Each way of forming B of `forced` once more with each image's output a run of a larger
/// tensor's images, NCHW ([`strided_in_layouts`]).
fn strided_outputs(
    conv: &mut PackedConv,
    case: &Case,
    x: &[f32],
    want: &[f64],
    forced: &[(Option<Winograd>, Option<GemmMethod>)],
    threads: &Threads,
) {
    for &(winograd, force) in forced {
        conv.force_winograd(winograd);
        conv.force_gemm_method(force);
        let tolerance = tolerance(conv, case);
        strided_in_layouts(conv, x, [case.n, case.h, case.w], Layouts::NCHW, want, tolerance, threads);
    }
}

/// Every element within `tolerance` of the largest |want|.
fn compare(got: &[f32], want: &[f64], tolerance: f64, what: impl Fn() -> String) {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
    let (worst, at) = got.iter().zip(want).enumerate().fold((0.0f64, 0), |(m, at), (i, (&g, &r))| {
        let e = if g.is_finite() { (g as f64 - r).abs() } else { f64::INFINITY };
        if e > m {
            (e, i)
        } else {
            (m, at)
        }
    });
    assert!(
        worst <= tolerance * scale,
        "{}: error {worst:e} at {at} (got {}, want {}), max |out| {scale}",
        what(),
        got[at],
        want[at]
    );
}

fn pools() -> Vec<Threads> {
    // Threaded pools split even tiny convs (normally run serially) to test the split.
    vec![Threads::single(), Threads::new(2).unwrap().always_parallel(), Threads::new(3).unwrap().always_parallel()]
}

fn isas() -> Vec<Isa> {
    let isas = Isa::available();
    eprintln!("ISAs tested on this CPU: {isas:?} (detected: {})", Isa::detect());
    isas
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

fn epilogue(rng: &mut ChaCha8Rng) -> Epilogue {
    pick(rng, &EPILOGUES)
}

/// A random case of the given group structure, sized so the output is at least 1x1.
fn random_case(rng: &mut ChaCha8Rng, kind: &str) -> Case {
    let kernel = [rng.random_range(1..=7), rng.random_range(1..=7)];
    let stride = [rng.random_range(1..=3), rng.random_range(1..=3)];
    let dilation = if rng.random_bool(0.25) { [rng.random_range(1..=3), rng.random_range(1..=3)] } else { [1, 1] };
    let pad = |rng: &mut ChaCha8Rng, k: usize| rng.random_range(0..=k.min(4));
    let (top, bottom, left, right) =
        (pad(rng, kernel[0]), pad(rng, kernel[0]), pad(rng, kernel[1]), pad(rng, kernel[1]));
    let (cin, cout, groups) = match kind {
        "dense" => (rng.random_range(1..=24), rng.random_range(1..=40), 1),
        "grouped" => {
            let g = rng.random_range(2..=6);
            (g * rng.random_range(1..=5), g * rng.random_range(1..=6), g)
        }
        "depthwise" => {
            let c = rng.random_range(2..=20);
            (c, c, c)
        }
        _ => unreachable!(),
    };
    let span = |k: usize, d: usize| (k - 1) * d + 1;
    let h = rng.random_range(span(kernel[0], dilation[0]).saturating_sub(top + bottom).max(1)..=24);
    let w = rng.random_range(span(kernel[1], dilation[1]).saturating_sub(left + right).max(1)..=24);
    let spec = ConvSpec::new(cin, cout, kernel)
        .with_stride(stride[0], stride[1])
        .with_dilation(dilation[0], dilation[1])
        .with_padding(top, bottom, left, right)
        .with_groups(groups);
    Case { spec, n: rng.random_range(1..=3), h, w, bias: rng.random_bool(0.7), epi: epilogue(rng) }
}

fn run_random(kind: &str, count: usize, seed: u64) {
    let pools = pools();
    let isas = isas();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..count {
        let case = random_case(&mut rng, kind);
        for &isa in &isas {
            check(&case, isa, &pools, &mut rng);
        }
    }
}

#[test]
fn random_dense_convs() {
    run_random("dense", 250, 1);
}

#[test]
fn random_grouped_convs() {
    run_random("grouped", 120, 2);
}

#[test]
fn random_depthwise_convs() {
    run_random("depthwise", 150, 3);
}

/// 3x3 stride-1 convs, the ones F(2x2, 3x3) takes: odd and even sizes (a last tile
/// cut off), every padding up to 2 on each side, maps down to 1x1.
#[test]
fn random_winograd_convs() {
    let pools = pools();
    let isas = isas();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..80 {
        let pads: [usize; 4] = std::array::from_fn(|_| rng.random_range(0..=2));
        let spec = ConvSpec::new(rng.random_range(1..=40), rng.random_range(1..=40), [3, 3])
            .with_padding(pads[0], pads[1], pads[2], pads[3]);
        let h = rng.random_range(3usize.saturating_sub(pads[0] + pads[1]).max(1)..=20);
        let w = rng.random_range(3usize.saturating_sub(pads[2] + pads[3]).max(1)..=20);
        let case = Case { spec, n: rng.random_range(1..=3), h, w, bias: rng.random_bool(0.7), epi: epilogue(&mut rng) };
        for &isa in &isas {
            check(&case, isa, &pools, &mut rng);
        }
    }
    // Channels enough that the tile rows run in blocks (`winograd::block_rows`), the last
    // one short, with odd sizes and uneven padding; rows of more tiles than a vector has
    // lanes (F(4x4)'s transforms take a vector of tiles at a time), the last run short.
    for (spec, n, h, w) in [
        (ConvSpec::new(64, 64, [3, 3]).with_padding(1, 1, 1, 1), 1, 40, 40),
        (ConvSpec::new(64, 48, [3, 3]).with_padding(2, 0, 1, 2), 2, 37, 29),
        (ConvSpec::new(8, 12, [3, 3]).with_padding(0, 2, 1, 0), 1, 9, 75),
        (ConvSpec::new(16, 16, [3, 3]).with_padding(1, 1, 1, 1), 1, 6, 130),
    ] {
        for &isa in &isas {
            check(&case(spec, n, h, w, Epilogue::Relu), isa, &pools, &mut rng);
        }
    }
}

/// Which convs write each image's output a run of a larger tensor's images
/// (`run_strided`, checked against the definition in every `check`): Winograd and every GEMM
/// method on NCHW tensors, not the first-conv kernel, a depthwise or grouped conv, nor a
/// subsampled 1x1 stride-2 input.
#[test]
fn strided_outputs_where_the_kernels_write_them() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let pools = pools();
    let isa = Isa::detect();
    let winograd = ConvSpec::new(32, 32, [3, 3]).with_padding(1, 1, 1, 1);
    let strided_3x3 = ConvSpec::new(16, 32, [3, 3]).with_stride(2, 2);
    for (spec, h, w, writes) in [
        (winograd, 28, 28, true),
        (ConvSpec::new(32, 48, [1, 1]), 14, 14, true),
        (strided_3x3, 17, 17, true),
        (ConvSpec::new(3, 32, [3, 3]).with_stride(2, 2), 64, 64, false),
        (ConvSpec::new(32, 32, [3, 3]).with_padding(1, 1, 1, 1).with_groups(32), 14, 14, false),
        (ConvSpec::new(32, 32, [3, 3]).with_padding(1, 1, 1, 1).with_groups(4), 14, 14, false),
        (ConvSpec::new(32, 64, [1, 1]).with_stride(2, 2), 28, 28, false),
    ] {
        let conv = PackedConv::with_isa(&vec![0.5; spec.weight_len()], None, spec, Epilogue::Silu, isa).unwrap();
        assert_eq!(conv.writes_strided(3, h, w, Layouts::NCHW), writes, "{spec:?} at {h}x{w}");
        check(&case(spec, 3, h, w, Epilogue::Silu), isa, &pools, &mut rng);
    }
}

fn case(spec: ConvSpec, n: usize, h: usize, w: usize, epi: Epilogue) -> Case {
    Case { spec, n, h, w, bias: true, epi }
}

/// The shapes the zoo models use, shrunk, and ones that cross block boundaries.
#[test]
fn model_like_and_block_boundary_shapes() {
    let pools = pools();
    let isas = isas();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let cases = vec![
        // ResNet: 7x7/2 stem, 3x3, 1x1 (pointwise), 1x1 stride 2 downsample.
        case(ConvSpec::new(3, 16, [7, 7]).with_stride(2, 2).with_padding(3, 3, 3, 3), 2, 33, 35, Epilogue::Relu),
        case(ConvSpec::new(64, 64, [3, 3]).with_padding(1, 1, 1, 1), 1, 14, 14, Epilogue::Relu),
        case(ConvSpec::new(64, 70, [1, 1]), 2, 9, 11, Epilogue::None),
        case(ConvSpec::new(40, 72, [1, 1]).with_stride(2, 2), 1, 13, 13, Epilogue::None),
        // K > 256 (several K blocks), pixels > one B block (several pixel blocks).
        case(ConvSpec::new(300, 37, [1, 1]), 1, 30, 31, Epilogue::Relu),
        case(ConvSpec::new(64, 29, [3, 3]).with_padding(1, 1, 1, 1), 1, 40, 41, Epilogue::Relu),
        case(ConvSpec::new(33, 13, [3, 3]).with_padding(1, 1, 1, 1), 3, 27, 29, Epilogue::Relu6),
        // Many output channels at 7x7 (channel chunks per thread at batch 1).
        case(ConvSpec::new(48, 203, [3, 3]).with_padding(1, 1, 1, 1), 1, 7, 7, Epilogue::Relu),
        case(ConvSpec::new(200, 300, [1, 1]), 1, 7, 7, Epilogue::None),
        // Channel tiles of the most pixels (12x12 in place: 12 tiles of 12), a channel count
        // one past a vector, and a strided small map.
        case(ConvSpec::new(300, 40, [1, 1]), 1, 12, 12, Epilogue::Relu6),
        case(ConvSpec::new(96, 17, [3, 3]).with_padding(1, 1, 1, 1), 2, 7, 7, Epilogue::Relu),
        case(ConvSpec::new(64, 48, [3, 3]).with_stride(2, 2).with_padding(1, 1, 1, 1), 1, 14, 14, Epilogue::None),
        // Output rows 7 wide, two to a channel tile on AVX-512 (`two_row_run`): an odd
        // row count (the last tile one row) under one vector of channels, and dilated.
        case(ConvSpec::new(24, 12, [3, 3]).with_padding(1, 1, 1, 1), 2, 5, 7, Epilogue::Relu),
        case(ConvSpec::new(16, 40, [3, 3]).with_dilation(2, 2).with_padding(2, 2, 2, 2), 1, 7, 7, Epilogue::Relu6),
        // Weights of megabytes at batch 1 (4.5 MiB): the B budget doubles for one pixel block.
        case(ConvSpec::new(512, 256, [3, 3]).with_stride(2, 2).with_padding(1, 1, 1, 1), 1, 14, 14, Epilogue::Relu),
        // MobileNet: depthwise 3x3 stride 1 and 2, Relu6; wide planes.
        case(ConvSpec::new(19, 19, [3, 3]).with_padding(1, 1, 1, 1).with_groups(19), 2, 37, 38, Epilogue::Relu6),
        case(
            ConvSpec::new(24, 24, [3, 3]).with_stride(2, 2).with_padding(1, 1, 1, 1).with_groups(24),
            1,
            56,
            56,
            Epilogue::Relu6,
        ),
        // Planes at most half a vector wide at stride 1, output as wide as the input: the
        // flat depthwise form (MobileNet's 7x7 maps; dilated; shifted by one-sided padding;
        // fewer output rows than input rows; 8 wide, half an AVX-512 vector; a 1x1 map).
        case(ConvSpec::new(21, 21, [3, 3]).with_padding(1, 1, 1, 1).with_groups(21), 3, 7, 7, Epilogue::Relu6),
        case(
            ConvSpec::new(5, 5, [3, 3]).with_dilation(2, 2).with_padding(2, 2, 2, 2).with_groups(5),
            2,
            9,
            6,
            Epilogue::Relu,
        ),
        case(ConvSpec::new(4, 4, [3, 3]).with_padding(0, 0, 2, 0).with_groups(4), 1, 8, 5, Epilogue::None),
        case(ConvSpec::new(3, 3, [5, 5]).with_padding(0, 1, 2, 2).with_groups(3), 2, 13, 8, Epilogue::Relu6),
        case(ConvSpec::new(7, 7, [3, 3]).with_padding(1, 1, 1, 1).with_groups(7), 2, 1, 1, Epilogue::None),
        // Stride 2 on planes wide enough for whole vectors (every tap column inside the row).
        case(
            ConvSpec::new(6, 6, [3, 3]).with_stride(2, 2).with_padding(1, 1, 1, 1).with_groups(6),
            1,
            21,
            75,
            Epilogue::Relu6,
        ),
        case(
            ConvSpec::new(16, 16, [5, 5]).with_stride(2, 2).with_padding(1, 2, 1, 2).with_groups(16),
            1,
            29,
            30,
            Epilogue::None,
        ),
        // TF SAME with even kernels (synNet): 4x4 and 2x2, pad (1,2) / (0,1).
        case(ConvSpec::new(23, 41, [4, 4]).with_padding(1, 2, 1, 2), 2, 14, 14, Epilogue::Relu),
        case(ConvSpec::new(29, 45, [2, 2]).with_padding(0, 1, 0, 1), 1, 14, 14, Epilogue::Relu),
        case(ConvSpec::new(3, 42, [5, 5]).with_padding(2, 2, 2, 2), 1, 45, 47, Epilogue::Relu),
        // Inception-style rectangular kernels.
        case(ConvSpec::new(17, 19, [1, 7]).with_padding(0, 0, 3, 3), 2, 17, 17, Epilogue::Relu),
        case(ConvSpec::new(17, 19, [7, 1]).with_padding(3, 3, 0, 0), 2, 17, 17, Epilogue::Relu),
        // ResNeXt group conv; channel multiplier (groups == in, out = 2 * in).
        case(ConvSpec::new(64, 64, [3, 3]).with_padding(1, 1, 1, 1).with_groups(32), 2, 9, 9, Epilogue::Relu),
        case(ConvSpec::new(8, 16, [3, 3]).with_padding(1, 1, 1, 1).with_groups(8), 1, 10, 10, Epilogue::None),
        // Per-axis stride and dilation.
        case(
            ConvSpec::new(5, 7, [3, 3]).with_stride(1, 2).with_dilation(2, 1).with_padding(2, 2, 1, 1),
            1,
            12,
            13,
            Epilogue::None,
        ),
        // Width 1, height 1, single pixel output.
        case(ConvSpec::new(6, 9, [3, 1]).with_padding(1, 1, 0, 0), 2, 19, 1, Epilogue::None),
        case(ConvSpec::new(6, 9, [1, 3]).with_padding(0, 0, 1, 1), 2, 1, 19, Epilogue::None),
        case(ConvSpec::new(6, 9, [3, 3]), 1, 3, 3, Epilogue::None),
    ];
    for c in &cases {
        for &isa in &isas {
            check(c, isa, &pools, &mut rng);
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let spec = ConvSpec::new(4, 6, [3, 3]);
    assert!(PackedConv::new(&[0.0; 10], None, spec, Epilogue::None).is_err(), "weight length");
    assert!(
        PackedConv::new(&vec![0.0; spec.weight_len()], Some(&[0.0; 5]), spec, Epilogue::None).is_err(),
        "bias length"
    );
    assert!(
        PackedConv::new(&[0.0; 24], None, ConvSpec::new(4, 6, [1, 1]).with_groups(4), Epilogue::None).is_err(),
        "groups"
    );
    assert!(ConvSpec::new(4, 6, [0, 3]).validate().is_err(), "kernel 0");
    let conv = PackedConv::new(&vec![0.0; spec.weight_len()], None, spec, Epilogue::None).unwrap();
    let mut out = vec![0.0; 6 * 3 * 3];
    assert!(conv.run(&[0.0; 4 * 5 * 5], 1, 5, 5, &mut out, &Threads::single()).is_ok());
    assert!(conv.run(&[0.0; 4 * 5 * 5 - 1], 1, 5, 5, &mut out, &Threads::single()).is_err(), "input length");
    assert!(conv.run(&[0.0; 4 * 5 * 5], 1, 5, 5, &mut out[1..], &Threads::single()).is_err(), "output length");
    assert!(conv.run(&[0.0; 4 * 2 * 2], 1, 2, 2, &mut [], &Threads::single()).is_err(), "input smaller than kernel");
    assert!(conv.run(&[], 0, 5, 5, &mut [], &Threads::single()).is_ok(), "empty batch");
}

#[test]
fn detected_isa_is_available_and_methods_are_named() {
    assert!(Isa::detect().is_available());
    assert!(Isa::Scalar.is_available());
    let pw = PackedConv::new(&[0.0; 8], None, ConvSpec::new(2, 4, [1, 1]), Epilogue::None).unwrap();
    let dw = PackedConv::new(&[0.0; 18], None, ConvSpec::new(2, 2, [3, 3]).with_groups(2), Epilogue::None).unwrap();
    let ic = PackedConv::new(&[0.0; 72], None, ConvSpec::new(2, 4, [3, 3]), Epilogue::None).unwrap();
    assert_eq!((pw.method(5, 5), dw.method(5, 5), ic.method(5, 5)), ("pointwise", "depthwise", "direct"));
}

/// A conv on blocked tensors is named for the blocked kernel it runs, whatever its NCHW
/// method: a 1x1 conv on the channel tile (strided ones on gathered pixels), a 3x3
/// stride-2 conv on the direct grid's channel tile, a depthwise conv on blocked rows; on
/// NCHW tensors, its method.
#[test]
fn blocked_convs_are_named_for_the_kernel_they_run() {
    let (c, m) = (32, 64);
    let pw = PackedConv::new(&vec![0.0; c * m], None, ConvSpec::new(c, m, [1, 1]), Epilogue::None).unwrap();
    let strided = ConvSpec::new(c, m, [1, 1]).with_stride(2, 2);
    let strided = PackedConv::new(&vec![0.0; c * m], None, strided, Epilogue::None).unwrap();
    let dw = ConvSpec::new(c, c, [3, 3]).with_groups(c).with_padding(1, 1, 1, 1);
    let dw = PackedConv::new(&vec![0.0; c * 9], None, dw, Epilogue::None).unwrap();
    let s2 = ConvSpec::new(c, m, [3, 3]).with_stride(2, 2).with_padding(1, 1, 1, 1);
    let s2 = PackedConv::new(&vec![0.0; c * m * 9], None, s2, Epilogue::None).unwrap();
    let entry = Layouts { input: false, output: true };
    let exit = Layouts { input: true, output: false };
    for (h, w) in [(56, 56), (7, 7)] {
        assert_eq!(pw.kernel_in(Layouts::NCHW, 1, h, w), pw.method_for(1, h, w));
        for layouts in [entry, exit, Layouts::BLOCKED] {
            assert_eq!(pw.kernel_in(layouts, 1, h, w), "pointwise/channels + blocked", "{h}x{w} {layouts:?}");
            assert_eq!(strided.kernel_in(layouts, 1, h, w), "subsampled/pointwise/channels + blocked");
        }
        assert_eq!(dw.kernel_in(Layouts::BLOCKED, 1, h, w), "depthwise + blocked");
        assert_eq!(dw.kernel_in(Layouts::NCHW, 1, h, w), "depthwise");
        for layouts in [entry, exit, Layouts::BLOCKED] {
            assert_eq!(s2.kernel_in(layouts, 1, h, w), "direct/channels + blocked", "{h}x{w} {layouts:?}");
        }
        assert_ne!(s2.kernel_in(Layouts::NCHW, 1, h, w), "direct/channels + blocked");
    }
}

/// The first call of an input shape times every form of B the conv can take and keeps
/// the fastest for that shape (`tune.rs`): right on that first call (each form's run
/// overwrote the output; the kept form's ran last), bit for bit the same on later calls,
/// and named by `method_for` from then on.
#[test]
fn the_first_call_of_a_shape_picks_a_form_and_keeps_it() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let spec = ConvSpec::new(48, 40, [1, 1]);
    let (weight, bias) = (random(spec.weight_len()), random(40));
    let conv = PackedConv::new(&weight, Some(&bias), spec, Epilogue::Relu).unwrap();
    let threads = Threads::new(2).unwrap().always_parallel();
    for (n, hw) in [(1, 20), (2, 9)] {
        let x = random(n * 48 * hw * hw);
        let want = reference(&spec, &weight, Some(&bias), None, Epilogue::Relu, &x, n, hw, hw);
        let mut first = vec![f32::NAN; want.len()];
        conv.run(&x, n, hw, hw, &mut first, &threads).unwrap();
        compare(&first, &want, TOLERANCE, || format!("first call, {n}x{hw}x{hw}"));
        let kept = conv.method_for(n, hw, hw);
        assert!(["pointwise", "direct", "im2col", "pointwise/channels"].contains(&kept), "{kept}");
        for _ in 0..3 {
            let mut again = vec![f32::NAN; want.len()];
            conv.run(&x, n, hw, hw, &mut again, &threads).unwrap();
            assert!(again.iter().zip(&first).all(|(a, b)| a.to_bits() == b.to_bits()), "{kept}, {n}x{hw}x{hw}");
            assert_eq!(conv.method_for(n, hw, hw), kept);
        }
    }
}

/// With AVX-512's 32-pixel panels a 7x7 map fills 49 of 64 lanes, a 14x14 3x3 grid 196 of
/// 224: those convs take the channel tile; on 56x56 maps the pixel tiles waste under 5%
/// and keep them (ResNet-50's layers).
#[test]
fn small_maps_take_the_channel_tile() {
    if !Isa::Avx512.is_available() {
        eprintln!("no AVX-512 on this CPU: the choice is made for its 32-pixel panels");
        return;
    }
    let method = |spec: ConvSpec, hw: usize| {
        let mut conv =
            PackedConv::with_isa(&vec![0.0; spec.weight_len()], None, spec, Epilogue::Relu, Isa::Avx512).unwrap();
        conv.force_winograd(Some(Winograd::Off));
        conv.method(hw, hw)
    };
    let c3 = |c: usize| ConvSpec::new(c, c, [3, 3]).with_padding(1, 1, 1, 1);
    assert_eq!(method(c3(512), 7), "direct/channels");
    assert_eq!(method(c3(512).with_stride(2, 2), 14), "direct/channels");
    assert_eq!(method(c3(256), 14), "direct/channels");
    assert_eq!(method(ConvSpec::new(2048, 512, [1, 1]), 7), "pointwise/channels");
    assert_eq!(method(ConvSpec::new(1024, 2048, [1, 1]).with_stride(2, 2), 14), "subsampled/pointwise/channels");
    assert_eq!(method(c3(64), 56), "direct");
    assert_eq!(method(ConvSpec::new(64, 256, [1, 1]), 56), "pointwise");
    // 3 MiB of input read in place (the tiles prefetch its rows): no copy, and no
    // transposed store, where the panels waste nothing.
    assert_eq!(method(ConvSpec::new(256, 64, [1, 1]), 56), "pointwise");
    assert_eq!(method(ConvSpec::new(256, 128, [1, 1]), 56), "pointwise");
    assert_eq!(method(ConvSpec::new(256, 512, [1, 1]), 56), "pointwise");
    // Few input channels: the transposed store would cost more than the panels waste.
    assert_eq!(method(ConvSpec::new(16, 64, [1, 1]), 14), "pointwise");
}

/// Convs over a few input channels with a window of at most 9 taps run on the first-conv
/// kernel (`stem.rs`: output columns in vectors, NCHW as it is stored), on every vector ISA
/// and thread pool: every stride, dilation and padding, rows a vector wide and wider (the
/// ragged last vector, the masked edges), output channels in groups of 16, 8 and single
/// ones; against the definition. Wider windows, narrow rows, a residual and a forced method
/// keep the GEMM.
#[test]
fn few_input_channels_run_on_the_stem_kernel() {
    let pools = pools();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let (mut ran, mut blocked_runs) = (0, 0);
    for case in 0..40 {
        let c = rng.random_range(1..=4);
        let m = pick(&mut rng, &[1, 5, 8, 13, 16, 24, 32, 37]);
        let kernel = pick(&mut rng, &[[3, 3], [3, 3], [1, 3], [3, 1], [2, 2], [3, 2]]);
        let stride = pick(&mut rng, &[1, 2, 2, 3]);
        let pad = |rng: &mut ChaCha8Rng, k: usize| rng.random_range(0..=k / 2 + 1);
        let spec = ConvSpec::new(c, m, kernel)
            .with_stride(stride, pick(&mut rng, &[stride, 1, 2]))
            .with_dilation(pick(&mut rng, &[1, 1, 2]), pick(&mut rng, &[1, 1, 2]))
            .with_padding(
                pad(&mut rng, kernel[0]),
                pad(&mut rng, kernel[1]),
                pad(&mut rng, kernel[0]),
                pad(&mut rng, kernel[1]),
            );
        let (n, h, w) = (rng.random_range(1..=2), rng.random_range(1..=12), rng.random_range(16..=80));
        let Ok((oh, ow)) = spec.output_hw(h, w) else { continue };
        let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
        let (weight, bias, x) = (random(spec.weight_len()), random(m), random(n * c * h * w));
        let epi = epilogue(&mut rng);
        let want = reference(&spec, &weight, Some(&bias), None, epi, &x, n, h, w);
        for isa in Isa::available().into_iter().filter(|&isa| isa != Isa::Scalar) {
            let conv = PackedConv::with_isa(&weight, Some(&bias), spec, epi, isa).unwrap();
            let lanes = if isa == Isa::Avx512 { 16 } else { 8 };
            assert_eq!(conv.method_for(n, h, w) == "stem", ow >= lanes, "{isa}, {spec:?} on {h}x{w}");
            // Whole blocks of output channels may be written blocked, from NCHW input.
            let to_blocks = Layouts { input: false, output: true };
            assert_eq!(conv.runs_in(to_blocks), m % 16 == 0, "{spec:?}");
            for threads in &pools {
                let mut got = vec![f32::NAN; n * m * oh * ow];
                conv.run(&x, n, h, w, &mut got, threads).unwrap();
                compare(&got, &want, TOLERANCE, || format!("case {case}: {isa}, {threads:?}, {spec:?}, {n}x{h}x{w}"));
                ran += 1;
                if m % 16 == 0 {
                    let mut got = vec![f32::NAN; n * m * oh * ow];
                    conv.run_in_layouts(&x, n, h, w, None, false, &mut got, to_blocks, threads).unwrap();
                    let got = from_blocked(&got, n, m, oh * ow);
                    compare(&got, &want, TOLERANCE, || format!("blocked, case {case}: {isa}, {threads:?}, {spec:?}"));
                    let kernel = conv.kernel_in(to_blocks, n, h, w);
                    assert_eq!(kernel == "stem + blocked", ow >= lanes, "{kernel}");
                    blocked_runs += 1;
                }
            }
        }
    }
    assert!(Isa::detect() == Isa::Scalar || ran >= 60, "only {ran} runs");
    assert!(Isa::detect() == Isa::Scalar || blocked_runs >= 15, "only {blocked_runs} blocked runs");

    // Written blocked where the stem kernel may not run (a forced method, a residual beside
    // the output or in it): the same sums, NCHW and reordered.
    let spec = ConvSpec::new(3, 32, [3, 3]).with_stride(2, 2).with_padding(1, 1, 1, 1);
    let (n, h, w, m) = (2, 17, 40, 32);
    let (oh, ow) = spec.output_hw(h, w).unwrap();
    let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let (weight, bias, x, res) = (random(spec.weight_len()), random(m), random(n * 3 * h * w), random(n * m * oh * ow));
    let to_blocks = Layouts { input: false, output: true };
    let res_blocked = to_blocked(&res, n, m, oh * ow);
    for (force, residual) in [(Some(GemmMethod::Im2col), 0), (None, 1), (None, 2)] {
        let mut conv = PackedConv::new(&weight, Some(&bias), spec, Epilogue::Silu).unwrap();
        conv.force_gemm_method(force);
        let want =
            reference(&spec, &weight, Some(&bias), (residual > 0).then_some(&res[..]), Epilogue::Silu, &x, n, h, w);
        let mut got = if residual == 2 { res_blocked.clone() } else { vec![f32::NAN; n * m * oh * ow] };
        let beside = (residual == 1).then_some(&res_blocked[..]);
        conv.run_in_layouts(&x, n, h, w, beside, residual == 2, &mut got, to_blocks, &pools[1]).unwrap();
        compare(&from_blocked(&got, n, m, oh * ow), &want, TOLERANCE, || format!("{force:?}, residual {residual}"));
    }

    // MobileNetV2's stem runs here; ResNet-50's 7x7 one, a 1x1 conv, a residual or a
    // forced method keep the GEMM.
    let method = |spec: ConvSpec, force: Option<GemmMethod>| {
        let mut conv = PackedConv::new(&vec![0.5; spec.weight_len()], None, spec, Epilogue::Relu).unwrap();
        conv.force_gemm_method(force);
        conv.method(224, 224)
    };
    let mobile = ConvSpec::new(3, 32, [3, 3]).with_stride(2, 2).with_padding(1, 1, 1, 1);
    let resnet = ConvSpec::new(3, 64, [7, 7]).with_stride(2, 2).with_padding(3, 3, 3, 3);
    if Isa::detect() != Isa::Scalar {
        assert_eq!(method(mobile, None), "stem");
    }
    assert_ne!(method(mobile, Some(GemmMethod::Direct)), "stem");
    assert_ne!(method(resnet, None), "stem");
    assert_ne!(method(ConvSpec::new(3, 32, [1, 1]), None), "stem");
    // With a residual: the GEMM, the same sums.
    let spec = ConvSpec::new(3, 24, [3, 3]).with_padding(1, 1, 1, 1);
    let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let (weight, bias, x, res) = (random(spec.weight_len()), random(24), random(3 * 20 * 40), random(24 * 20 * 40));
    let want = reference(&spec, &weight, Some(&bias), Some(&res), Epilogue::Relu, &x, 1, 20, 40);
    let conv = PackedConv::new(&weight, Some(&bias), spec, Epilogue::Relu).unwrap();
    let mut got = vec![f32::NAN; 24 * 20 * 40];
    conv.run_with_residual(&x, 1, 20, 40, Some(&res), &mut got, &Threads::new(2).unwrap()).unwrap();
    compare(&got, &want, TOLERANCE, || "few channels with a residual".into());
}

/// Winograd where it pays (`winograd::worth_it`): F(4x4, 3x3) on ResNet-50's stride-1 3x3
/// convs over 14x14, 28x28 and 56x56 maps (at 56x56 with 64 channels in blocks of tile
/// rows: whole, its buffers would evict the next convs' inputs); F(2x2, 3x3), for a batch
/// only, on 7x7 ones (the transformed weights cost more memory traffic than one image
/// saves); on large maps under heavy weights too (Inception-v3's 80 -> 192 conv at 73x73,
/// VGG-16's 128-channel ones at 112x112: 2.2x faster than direct, their 13-29 MB of buffers
/// notwithstanding); not on strided, dilated or grouped convs, nor with few channels; with
/// under 64 output channels only on maps of 32x32 and more (DenseNet-121's 128 -> 32 convs:
/// Winograd at 56x56, direct at 28x28 and 14x14).
#[test]
fn winograd_where_it_pays() {
    let method = |spec: ConvSpec, n: usize, hw: usize| {
        let conv = PackedConv::new(&vec![0.0; spec.weight_len()], None, spec, Epilogue::Relu).unwrap();
        conv.method_for(n, hw, hw)
    };
    let c3 = |c: usize| ConvSpec::new(c, c, [3, 3]).with_padding(1, 1, 1, 1);
    for n in [1, 16] {
        assert_eq!(method(c3(64), n, 56), "winograd/4x4");
        assert_eq!(method(c3(128), n, 28), "winograd/4x4");
    }
    // 14x14: 16 tiles of F(4x4) per image, enough at any batch; 12x12 (9 of them) is not,
    // and takes F(2x2) once the batch brings 49 of its tiles.
    for n in [1, 2, 16] {
        assert_eq!(method(c3(256), n, 14), "winograd/4x4");
    }
    assert!(!method(c3(256), 1, 12).starts_with("winograd"));
    assert_eq!(method(c3(256), 2, 12), "winograd/2x2");
    assert_eq!(method(c3(512), 16, 7), "winograd/2x2");
    assert!(!method(c3(512), 1, 7).starts_with("winograd"));
    assert_eq!(method(ConvSpec::new(80, 192, [3, 3]), 1, 73), "winograd/4x4");
    assert_eq!(method(c3(128), 1, 112), "winograd/4x4");
    assert_eq!(method(c3(256), 1, 112), "winograd/4x4");
    let dense = ConvSpec::new(128, 32, [3, 3]).with_padding(1, 1, 1, 1);
    for n in [1, 16] {
        assert_eq!(method(dense, n, 56), "winograd/4x4");
        assert_eq!(method(ConvSpec::new(32, 32, [3, 3]), n, 147), "winograd/4x4");
        for hw in [28, 14] {
            assert!(!method(dense, n, hw).starts_with("winograd"), "DenseNet's conv at {hw}x{hw}, batch {n}");
        }
        assert_eq!(method(ConvSpec::new(32, 128, [3, 3]).with_padding(1, 1, 1, 1), n, 27), "winograd/4x4");
    }
    for not in [c3(256).with_stride(2, 2), c3(256).with_dilation(2, 2), c3(256).with_groups(2), c3(8)] {
        assert!(!method(not, 1, 28).starts_with("winograd"), "{not:?}");
    }
}

/// A 1x1 expansion and the depthwise conv after it run fused (`exec::cpu::fused`), against
/// the two naive convs one after the other: random expansions (channel counts off the
/// micro-panel), depthwise kernels, strides, dilations and paddings, batch 1..3, on every
/// ISA and pool, in strips from one output row to the whole map and the default.
#[test]
fn expansion_and_depthwise_fused() {
    let pools = pools();
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let mut ran = 0;
    for _ in 0..40 {
        let (cin, hidden) = (rng.random_range(1..=20), rng.random_range(2..=50));
        let kernel = [pick(&mut rng, &[1, 3, 5]), pick(&mut rng, &[1, 3, 5])];
        let stride = [rng.random_range(1..=2), rng.random_range(1..=2)];
        let dilation = if rng.random_bool(0.2) { [2, rng.random_range(1..=2)] } else { [1, 1] };
        let pad = |rng: &mut ChaCha8Rng, k: usize| rng.random_range(0..=k / 2 + 1);
        let (top, bottom, left, right) =
            (pad(&mut rng, kernel[0]), pad(&mut rng, kernel[0]), pad(&mut rng, kernel[1]), pad(&mut rng, kernel[1]));
        let (h, w) = (rng.random_range(9..=40), rng.random_range(9..=40));
        let n = rng.random_range(1..=3);
        let expand = ConvSpec::new(cin, hidden, [1, 1]);
        let dw = ConvSpec::new(hidden, hidden, kernel)
            .with_stride(stride[0], stride[1])
            .with_dilation(dilation[0], dilation[1])
            .with_padding(top, bottom, left, right)
            .with_groups(hidden);
        if dw.output_hw(h, w).is_err() {
            continue;
        }
        let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
        let (we, be, wd, bd, x) = (
            random(expand.weight_len()),
            random(hidden),
            random(dw.weight_len()),
            random(hidden),
            random(n * cin * h * w),
        );
        let (epi_e, epi_d) = (epilogue(&mut rng), epilogue(&mut rng));
        let mid: Vec<f32> =
            reference(&expand, &we, Some(&be), None, epi_e, &x, n, h, w).iter().map(|&v| v as f32).collect();
        let want = reference(&dw, &wd, Some(&bd), None, epi_d, &mid, n, h, w);
        let (oh, ow) = dw.output_hw(h, w).unwrap();
        for isa in Isa::available() {
            let e = PackedConv::with_isa(&we, Some(&be), expand, epi_e, isa).unwrap();
            let d = PackedConv::with_isa(&wd, Some(&bd), dw, epi_d, isa).unwrap();
            if !e.fuses_with(&d, h, w) {
                continue;
            }
            for threads in &pools {
                for strip_floats in [1, hidden * w * 4, 1 << 17] {
                    let mut got = vec![f32::NAN; n * hidden * oh * ow];
                    e.run_expand_depthwise_in_strips(&d, strip_floats, &x, n, h, w, &mut got, threads).unwrap();
                    let what =
                        || format!("{isa}, {threads:?}, strips of {strip_floats}, {expand:?} then {dw:?}, {n}x{h}x{w}");
                    compare(&got, &want, TOLERANCE, what);
                    ran += 1;
                }
            }
        }
    }
    assert!(ran > 100, "only {ran} fused runs");
    // MobileNetV2's pairs fuse, except on the 7x7 maps the depthwise conv's flat form takes.
    let mobile = |c: usize, s: usize| {
        let e = PackedConv::new(&vec![0.1; c * c / 6], None, ConvSpec::new(c / 6, c, [1, 1]), Epilogue::Relu6).unwrap();
        let spec = ConvSpec::new(c, c, [3, 3]).with_stride(s, s).with_padding(1, 1, 1, 1).with_groups(c);
        (e, PackedConv::new(&vec![0.1; c * 9], None, spec, Epilogue::Relu6).unwrap())
    };
    let (e, d) = mobile(96, 2);
    assert!(e.fuses_with(&d, 112, 112));
    let (e, d) = mobile(960, 1);
    assert_eq!(e.fuses_with(&d, 7, 7), Isa::detect() != Isa::Avx512);
    // Not a 1x1 stride-1 expansion, or not depthwise after it.
    assert!(!d.fuses_with(&d, 14, 14));
    assert!(!e.fuses_with(&e, 14, 14));
}

/// The blocked layout (`[n][c / 16][h][w][16]`): 1x1 convs with either side blocked and a
/// residual beside the output or in it, and depthwise convs blocked in and out, on every ISA
/// and thread pool, against the NCHW definition converted in and out.
#[test]
fn blocked_layouts_match_the_definition() {
    let pools = pools();
    let mut rng = ChaCha8Rng::seed_from_u64(1616);
    let blocks = |rng: &mut ChaCha8Rng| BLOCK * rng.random_range(1..=6);
    let (mut ran, mut strided) = (0, 0);
    for case in 0..60 {
        let depthwise = case % 2 == 1;
        let (layouts, spec) = if depthwise {
            let c = blocks(&mut rng);
            // Half square 3x3 or 5x5 (the kernels with their taps in registers), half any.
            let kernel = if case % 4 == 1 {
                let k = pick(&mut rng, &[3, 5]);
                [k, k]
            } else {
                [pick(&mut rng, &[1, 3, 5, 2]), pick(&mut rng, &[1, 3, 5, 4])]
            };
            let pad = |rng: &mut ChaCha8Rng, k: usize| rng.random_range(0..=k / 2 + 1);
            let spec = ConvSpec::new(c, c, kernel)
                .with_stride(rng.random_range(1..=2), rng.random_range(1..=2))
                .with_dilation(rng.random_range(1..=2), 1)
                .with_padding(pad(&mut rng, kernel[0]), pad(&mut rng, kernel[0]), pad(&mut rng, kernel[1]), 0)
                .with_groups(c);
            (Layouts::BLOCKED, spec)
        } else {
            let layouts = pick(
                &mut rng,
                &[Layouts::BLOCKED, Layouts { input: false, output: true }, Layouts { input: true, output: false }],
            );
            let side =
                |rng: &mut ChaCha8Rng, blocked: bool| if blocked { blocks(rng) } else { rng.random_range(1..=40) };
            let (k, m) = (side(&mut rng, layouts.input), side(&mut rng, layouts.output));
            // A third strided (ResNet's downsampling shortcuts): the pixels gathered first.
            let stride = |rng: &mut ChaCha8Rng| pick(rng, &[1, 1, 1, 1, 2, 2, 3]);
            (layouts, ConvSpec::new(k, m, [1, 1]).with_stride(stride(&mut rng), stride(&mut rng)))
        };
        // A depthwise conv after a wide 1x1 conv (cut by channels where the weights
        // outnumber the activations twice over: small maps) cuts by channels too.
        let follow = depthwise && rng.random_bool(0.5);
        let side = if follow { 4 } else { 15 };
        let (n, h, w) = (rng.random_range(1..=3), rng.random_range(1..=side), rng.random_range(1..=side));
        let Ok((oh, ow)) = spec.output_hw(h, w) else { continue };
        let (c, m) = (spec.in_channels, spec.out_channels);
        let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
        let (weight, bias, x, res) =
            (random(spec.weight_len()), random(m), random(n * c * h * w), random(n * m * oh * ow));
        // 0: no residual, 1: beside the output, 2: in the output's buffer.
        let residual = if depthwise { 0 } else { rng.random_range(0..3) };
        let epi = epilogue(&mut rng);
        let want = reference(&spec, &weight, Some(&bias), (residual > 0).then_some(&res[..]), epi, &x, n, h, w);
        let input = if layouts.input { to_blocked(&x, n, c, h * w) } else { x.clone() };
        let res_in = if layouts.output { to_blocked(&res, n, m, oh * ow) } else { res.clone() };
        for isa in Isa::available() {
            let mut conv = PackedConv::with_isa(&weight, Some(&bias), spec, epi, isa).unwrap();
            if follow {
                conv.follow_writer(4096, c);
            }
            assert!(conv.runs_in(layouts));
            for threads in &pools {
                let mut got = if residual == 2 { res_in.clone() } else { vec![f32::NAN; n * m * oh * ow] };
                let beside = (residual == 1).then_some(&res_in[..]);
                conv.run_in_layouts(&input, n, h, w, beside, residual == 2, &mut got, layouts, threads).unwrap();
                let got = if layouts.output { from_blocked(&got, n, m, oh * ow) } else { got };
                let what = || {
                    format!(
                        "{isa}, {threads:?}, {spec:?} {layouts:?} residual {residual}, follow {follow}, {n}x{h}x{w}"
                    )
                };
                compare(&got, &want, TOLERANCE, what);
                ran += 1;
            }
            // Each image's output a run of a larger tensor's images (a concat's input in its
            // output) where no residual is fused: the 1x1 tiles write so, a depthwise conv
            // refuses.
            if residual == 0 {
                let wrote =
                    strided_in_layouts(&conv, &input, [n, h, w], layouts, &want, TOLERANCE, &pools[pools.len() - 1]);
                assert_eq!(wrote, !depthwise, "{spec:?} {layouts:?}");
                strided += usize::from(wrote);
            }
        }
    }
    assert!(ran >= 150, "only {ran} blocked runs");
    assert!(strided >= 20, "only {strided} strided blocked runs");

    // A wide input whose pixels do not fit L2 at once: its tiles run in several runs, each
    // passed by every panel (1024 channels x 196 pixels against 512 KiB per run).
    let spec = ConvSpec::new(1024, 48, [1, 1]);
    let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let (weight, bias, x, res) = (random(spec.weight_len()), random(48), random(2 * 1024 * 196), random(2 * 48 * 196));
    let want = reference(&spec, &weight, Some(&bias), Some(&res), Epilogue::Relu, &x, 2, 14, 14);
    for layouts in [Layouts::BLOCKED, Layouts { input: true, output: false }] {
        let input = to_blocked(&x, 2, 1024, 196);
        let res_in = if layouts.output { to_blocked(&res, 2, 48, 196) } else { res.clone() };
        for isa in Isa::available() {
            let conv = PackedConv::with_isa(&weight, Some(&bias), spec, Epilogue::Relu, isa).unwrap();
            for threads in &pools {
                let mut got = vec![f32::NAN; 2 * 48 * 196];
                conv.run_in_layouts(&input, 2, 14, 14, Some(&res_in), false, &mut got, layouts, threads).unwrap();
                let got = if layouts.output { from_blocked(&got, 2, 48, 196) } else { got };
                compare(&got, &want, TOLERANCE, || format!("1024 -> 48 at 14x14, {isa}, {threads:?}, {layouts:?}"));
            }
        }
    }

    // What does not run blocked says so.
    let dw = ConvSpec::new(32, 32, [3, 3]).with_padding(1, 1, 1, 1).with_groups(32);
    let dw = PackedConv::new(&[0.1; 32 * 9], None, dw, Epilogue::None).unwrap();
    let (x, mut out) = (vec![0.0; 32 * 25], vec![0.0; 32 * 25]);
    let half = Layouts { input: false, output: true };
    assert!(dw.runs_in(Layouts::BLOCKED) && !dw.runs_in(half));
    let e = dw.run_in_layouts(&x, 1, 5, 5, None, false, &mut out, half, &Threads::single()).unwrap_err();
    assert!(e.to_string().contains("cannot run on"), "{e}");
    let odd = PackedConv::new(&[0.1; 24 * 16], None, ConvSpec::new(24, 16, [1, 1]), Epilogue::None).unwrap();
    assert!(odd.runs_in(Layouts { input: false, output: true }) && !odd.runs_in(Layouts::BLOCKED));
    let strided = ConvSpec::new(16, 16, [1, 1]).with_stride(2, 2);
    let padded = PackedConv::new(&[0.1; 256], None, strided.with_padding(1, 1, 1, 1), Epilogue::None).unwrap();
    assert!(
        padded.runs_in(Layouts::BLOCKED) && padded.kernel_in(Layouts::BLOCKED, 1, 9, 9) == "direct/channels + blocked"
    );
    let strided = PackedConv::new(&[0.1; 256], None, strided, Epilogue::None).unwrap();
    assert!(strided.runs_in(Layouts::BLOCKED) && strided.runs_in(Layouts { input: true, output: false }));
    let square = ConvSpec::new(16, 16, [3, 3]);
    let square = PackedConv::new(&[0.1; 16 * 16 * 9], None, square, Epilogue::None).unwrap();
    // A 3x3 stride-1 conv may run on Winograd (NCHW only); a conv of 3 input channels on
    // the stem kernel reads NCHW, and writes blocked where its channels are whole blocks.
    assert!(!square.runs_in(Layouts { input: false, output: true }) && square.runs_in(Layouts::NCHW));
    let stem = ConvSpec::new(3, 16, [3, 3]).with_stride(2, 2);
    let stem = PackedConv::new(&[0.1; 16 * 27], None, stem, Epilogue::None).unwrap();
    assert!(stem.runs_in(Layouts { input: false, output: true }) && !stem.runs_in(Layouts::BLOCKED));
    let odd = ConvSpec::new(3, 24, [3, 3]).with_stride(2, 2);
    let odd = PackedConv::new(&[0.1; 24 * 27], None, odd, Epilogue::None).unwrap();
    assert!(!odd.runs_in(Layouts { input: false, output: true }));
    let e =
        dw.run_in_layouts(&x, 1, 5, 5, Some(&x), false, &mut out, Layouts::BLOCKED, &Threads::single()).unwrap_err();
    assert!(e.to_string().contains("residual"), "{e}");

    // Global average pooling of blocked images gives NCHW's means.
    let (n, c, hw) = (3, 48, 13);
    let x: Vec<f32> = (0..n * c * hw).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let want: Vec<f64> = x.chunks(hw).map(|p| p.iter().map(|&v| v as f64).sum::<f64>() / hw as f64).collect();
    for threads in &pools {
        let mut got = vec![f32::NAN; n * c];
        global_avg_pool_blocked(&to_blocked(&x, n, c, hw), n, c, hw, &mut got, threads).unwrap();
        compare(&got, &want, TOLERANCE, || format!("blocked global average pool, {threads:?}"));
    }
    let e = global_avg_pool_blocked(&x[..24 * hw], 1, 24, hw, &mut [0.0; 24], &Threads::single()).unwrap_err();
    assert!(e.to_string().contains("whole blocks"), "{e}");
    assert_eq!(from_blocked(&to_blocked(&x, n, c, hw), n, c, hw), x);
}

/// Convs on the direct grid's channel tile with either side blocked (`Layouts`, a blocked
/// input copied into a blocked grid): ResNet-50's stride-2 3x3 convs, and random kernels,
/// strides, dilations and paddings (never a 3x3 stride-1 undilated conv, which Winograd may
/// take, nor one of a few input channels, the stem's), with a residual beside the output
/// or in it, on every ISA and pool, against the NCHW definition converted in and out. The
/// fixed cases cover 7-pixel rows two to a tile (AVX-512), batch 1 on a 7x7 output whose
/// channel chunks share one grid copy, and batches whose items prefetch the next's rows.
#[test]
fn blocked_grid_convs_match_the_definition() {
    let pools = pools();
    let mut rng = ChaCha8Rng::seed_from_u64(2323);
    let entry = Layouts { input: false, output: true };
    let exit = Layouts { input: true, output: false };
    let s2 = |c: usize, m: usize| ConvSpec::new(c, m, [3, 3]).with_stride(2, 2).with_padding(1, 1, 1, 1);
    // (spec, n, h, w, layouts)
    let mut cases = vec![
        (s2(128, 128), 1, 56, 56, Layouts::BLOCKED),
        (s2(256, 128), 1, 14, 14, Layouts::BLOCKED),
        (s2(64, 48), 3, 14, 14, exit),
        (s2(32, 64), 2, 28, 28, entry),
        (ConvSpec::new(32, 32, [3, 3]).with_dilation(2, 2).with_padding(2, 2, 2, 2), 2, 7, 7, Layouts::BLOCKED),
    ];
    let blocks = |rng: &mut ChaCha8Rng| BLOCK * rng.random_range(1..=4);
    for _ in 0..36 {
        let layouts = pick(&mut rng, &[Layouts::BLOCKED, entry, exit]);
        let c = if layouts.input { blocks(&mut rng) } else { rng.random_range(5..=40) };
        let m = if layouts.output { blocks(&mut rng) } else { rng.random_range(1..=40) };
        let kernel = [pick(&mut rng, &[1, 2, 3, 5, 7]), pick(&mut rng, &[1, 2, 3, 5, 7])];
        let mut stride = [rng.random_range(1..=3), rng.random_range(1..=3)];
        let dilation = if rng.random_bool(0.25) { [2, rng.random_range(1..=2)] } else { [1, 1] };
        if kernel == [3, 3] && stride == [1, 1] && dilation == [1, 1] {
            stride[1] = 2;
        }
        let pad = |rng: &mut ChaCha8Rng, k: usize| rng.random_range(0..=k / 2 + 1);
        let (top, bottom) = (pad(&mut rng, kernel[0]), pad(&mut rng, kernel[0]));
        let (left, right) = (pad(&mut rng, kernel[1]), pad(&mut rng, kernel[1]));
        // A 1x1 conv without padding runs on the pointwise path (tested above).
        let left = if kernel == [1, 1] && top + bottom + left + right == 0 { 1 } else { left };
        let spec = ConvSpec::new(c, m, kernel)
            .with_stride(stride[0], stride[1])
            .with_dilation(dilation[0], dilation[1])
            .with_padding(top, bottom, left, right);
        let (n, h, w) = (rng.random_range(1..=3), rng.random_range(1..=16), rng.random_range(1..=16));
        cases.push((spec, n, h, w, layouts));
    }
    let (mut ran, mut strided) = (0, 0);
    for (spec, n, h, w, layouts) in cases {
        let Ok((oh, ow)) = spec.output_hw(h, w) else { continue };
        let (c, m) = (spec.in_channels, spec.out_channels);
        let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
        let (weight, bias, x, res) =
            (random(spec.weight_len()), random(m), random(n * c * h * w), random(n * m * oh * ow));
        // 0: no residual, 1: beside the output, 2: in the output's buffer.
        let residual = rng.random_range(0..3);
        let epi = epilogue(&mut rng);
        let want = reference(&spec, &weight, Some(&bias), (residual > 0).then_some(&res[..]), epi, &x, n, h, w);
        let input = if layouts.input { to_blocked(&x, n, c, h * w) } else { x.clone() };
        let res_in = if layouts.output { to_blocked(&res, n, m, oh * ow) } else { res.clone() };
        for isa in Isa::available() {
            let conv = PackedConv::with_isa(&weight, Some(&bias), spec, epi, isa).unwrap();
            assert!(conv.runs_in(layouts), "{spec:?} {layouts:?}");
            assert_eq!(conv.kernel_in(layouts, n, h, w), "direct/channels + blocked", "{spec:?}");
            for threads in &pools {
                let mut got = if residual == 2 { res_in.clone() } else { vec![f32::NAN; n * m * oh * ow] };
                let beside = (residual == 1).then_some(&res_in[..]);
                conv.run_in_layouts(&input, n, h, w, beside, residual == 2, &mut got, layouts, threads).unwrap();
                let got = if layouts.output { from_blocked(&got, n, m, oh * ow) } else { got };
                let what = || format!("{isa}, {threads:?}, {spec:?} {layouts:?} residual {residual}, {n}x{h}x{w}");
                compare(&got, &want, TOLERANCE, what);
                ran += 1;
            }
            if residual == 0 {
                let wrote =
                    strided_in_layouts(&conv, &input, [n, h, w], layouts, &want, TOLERANCE, &pools[pools.len() - 1]);
                assert!(wrote, "{spec:?} {layouts:?}: the grid's channel tile writes images apart");
                strided += 1;
            }
        }
    }
    assert!(ran >= 150, "only {ran} blocked grid runs");
    assert!(strided >= 20, "only {strided} strided blocked grid runs");
}

/// The blocked depthwise kernels with their taps in registers (3x3 and 5x5), stride 1 and 2
/// without dilation (their steps constant) and with it: every padding from none to past the
/// half kernel, rows 1 to 21 pixels wide (the pixels inside run 8, 4, 2 and 1 at a time;
/// the edges one by one), cut into pixel ranges that split rows, on every ISA.
#[test]
fn blocked_depthwise_rows_match_the_definition() {
    let pools = pools();
    let mut rng = ChaCha8Rng::seed_from_u64(1717);
    let mut ran = 0;
    for k in [3, 5] {
        for (s, d) in [(1, 1), (2, 1), (1, 2)] {
            for w in (1..=21).step_by(2).chain([8, 16]) {
                let h = rng.random_range(1..=9);
                let pads = [rng.random_range(0..=k / 2 + 1), rng.random_range(0..=k / 2 + 1)];
                let spec = ConvSpec::new(BLOCK, BLOCK, [k, k])
                    .with_stride(s, s)
                    .with_dilation(d, d)
                    .with_padding(pads[0], pads[1], k / 2, pads[1])
                    .with_groups(BLOCK);
                let Ok((oh, ow)) = spec.output_hw(h, w) else { continue };
                let mut random =
                    |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
                let (weight, bias, x) = (random(spec.weight_len()), random(BLOCK), random(2 * BLOCK * h * w));
                let want = reference(&spec, &weight, Some(&bias), None, Epilogue::Relu6, &x, 2, h, w);
                for isa in Isa::available() {
                    let conv = PackedConv::with_isa(&weight, Some(&bias), spec, Epilogue::Relu6, isa).unwrap();
                    for threads in &pools {
                        let mut got = vec![f32::NAN; 2 * BLOCK * oh * ow];
                        let input = to_blocked(&x, 2, BLOCK, h * w);
                        conv.run_in_layouts(&input, 2, h, w, None, false, &mut got, Layouts::BLOCKED, threads).unwrap();
                        let got = from_blocked(&got, 2, BLOCK, oh * ow);
                        compare(&got, &want, TOLERANCE, || format!("{isa}, {threads:?}, {spec:?}, 2x{h}x{w}"));
                        ran += 1;
                    }
                }
            }
        }
    }
    assert!(ran >= 100, "only {ran} runs");
}

/// Training gives a conv new weights every step (`set_weights`): after a run in each form
/// that keeps weights of its own (A panels; the channel tile's panels; both Winograd
/// tiles' transforms; the first-conv kernel's chunks), the new weights give what a conv made from them gives, bit for bit,
/// and again after a second change; a wrong length is an error.
#[test]
fn new_weights_replace_every_packed_form() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let threads = Threads::new(2).unwrap();
    let c3 = ConvSpec::new(24, 20, [3, 3]).with_padding(1, 1, 1, 1);
    let forms: [(ConvSpec, Option<GemmMethod>, Option<Winograd>, usize); 6] = [
        (ConvSpec::new(24, 20, [1, 1]), Some(GemmMethod::Pointwise), None, 9),
        (ConvSpec::new(24, 20, [1, 1]), Some(GemmMethod::Channels), None, 7),
        (c3, None, Some(Winograd::On(WinogradTile::F4x4)), 12),
        (c3, None, Some(Winograd::On(WinogradTile::F2x2)), 10),
        (ConvSpec::new(12, 12, [3, 3]).with_padding(1, 1, 1, 1).with_groups(12), None, None, 9),
        // The first-conv kernel's chunked weights (where the ISA has vectors).
        (ConvSpec::new(3, 20, [3, 3]).with_stride(2, 2).with_padding(1, 1, 1, 1), None, None, 40),
    ];
    for (spec, method, winograd, hw) in forms {
        let x = random(2 * spec.in_channels * hw * hw);
        let (oh, ow) = spec.output_hw(hw, hw).unwrap();
        let configure = |conv: &mut PackedConv| {
            conv.force_gemm_method(method);
            conv.force_winograd(winograd);
        };
        let mut kept = PackedConv::new(&random(spec.weight_len()), None, spec, Epilogue::None).unwrap();
        configure(&mut kept);
        let mut out = vec![0.0f32; 2 * spec.out_channels * oh * ow];
        kept.run(&x, 2, hw, hw, &mut out, &threads).unwrap();
        for _ in 0..2 {
            let weight = random(spec.weight_len());
            kept.set_weights(&weight, &threads).unwrap();
            let mut fresh = PackedConv::new(&weight, None, spec, Epilogue::None).unwrap();
            configure(&mut fresh);
            let (mut got, mut want) = (vec![f32::NAN; out.len()], vec![f32::NAN; out.len()]);
            kept.run(&x, 2, hw, hw, &mut got, &threads).unwrap();
            fresh.run(&x, 2, hw, hw, &mut want, &threads).unwrap();
            let method = kept.method_for(2, hw, hw);
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{spec:?}, {method}");
        }
        assert!(kept.set_weights(&random(spec.weight_len() + 1), &threads).is_err());
    }
}
