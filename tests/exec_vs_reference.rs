//! The candle backend against the naive reference interpreter (`exec::reference`): every
//! op in its configurations, random nets, folding on and off, and small zoo models.

mod common;
use candle_core::{DType, Device, Tensor};
use common::random_net::random_net;
use synprof::exec::lower::{ConvAlgorithm, Layer, Lowered, NodeTimes, PackedConvOp, Phase};
use synprof::exec::reference;
use synprof::graph::{conv, conv_hw, pool, Net, NetBuilder, Op, Padding, PoolSpec, T};
use synprof::weights::{synthetic_input, Weights};
use synprof::zoo;

/// Largest |candle - reference| over the output, relative to the output's largest value.
/// Convs run as `SYNPROF_CPU_CONV` says (packed by default).
fn compare(net: &Net, fold: bool, seed: u64, batch: usize) -> f64 {
    compare_with(net, fold, seed, batch, ConvAlgorithm::from_env().unwrap())
}

fn compare_with(net: &Net, fold: bool, seed: u64, batch: usize, conv: ConvAlgorithm) -> f64 {
    let weights = Weights::init(net, seed);
    let input = synthetic_input(net, batch, seed);
    let expected = reference::run(net, &weights, &input);
    let phase = Phase::Inference { fold_batch_norm: fold };
    let lowered = Lowered::with_conv(net, &weights, &Device::Cpu, DType::F32, phase, conv).unwrap();
    assert_eq!(lowered.conv_algorithm, conv, "{}", net.name);
    let x = Tensor::from_vec(input.data.clone(), input.shape.clone(), &Device::Cpu).unwrap();
    let outputs = lowered.infer(&x).unwrap_or_else(|e| panic!("{}: {e}", net.name));
    let mut worst = 0f64;
    for (out, &o) in outputs.iter().zip(&net.outputs) {
        let want = &expected[o];
        assert_eq!(out.dims(), want.shape.as_slice(), "{}: output shape", net.name);
        let got: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        let scale = want.data.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
        for (g, w) in got.iter().zip(&want.data) {
            assert!(g.is_finite(), "{}: non-finite output", net.name);
            worst = worst.max((*g as f64 - w).abs() / scale);
        }
    }
    worst
}

fn single(name: &str, input: &[usize], body: impl FnOnce(&mut NetBuilder, T) -> T) -> Net {
    let mut g = NetBuilder::new(name, input);
    let x = g.input();
    let y = body(&mut g, x);
    g.finish(y).unwrap()
}

const TOLERANCE: f64 = 1e-5;

#[test]
fn conv_in_every_configuration() {
    let paddings = [
        Padding::ZERO,
        Padding::symmetric(1, 1),
        Padding::symmetric(2, 1),
        Padding { top: 0, bottom: 1, left: 1, right: 2 },
        Padding { top: 2, bottom: 0, left: 0, right: 1 },
    ];
    let mut cases = 0;
    for k in [1, 2, 3, 5] {
        for stride in [1, 2] {
            for dilation in [1, 2] {
                for groups in [1, 2, 8] {
                    for (pi, pad) in paddings.iter().enumerate() {
                        for bias in [false, true] {
                            let name = format!("conv_k{k}_s{stride}_d{dilation}_g{groups}_p{pi}_b{bias}");
                            let net = single(&name, &[8, 11, 13], |g, x| {
                                g.conv(
                                    x,
                                    conv(8, k)
                                        .stride(stride)
                                        .dilation(dilation)
                                        .groups(groups)
                                        .padding(*pad)
                                        .bias(bias),
                                )
                            });
                            let err = compare(&net, true, cases, 2);
                            assert!(err < TOLERANCE, "{name}: {err}");
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    // rectangular kernels, per-axis strides, TF SAME with even kernels
    for (i, spec) in [
        conv_hw(6, 1, 7).pad_hw(0, 3),
        conv_hw(6, 7, 1).pad_hw(3, 0),
        conv(6, 3).stride_hw(1, 2).pad(1),
        conv(6, 4).same(),
        conv(6, 2).same().stride(2),
    ]
    .into_iter()
    .enumerate()
    {
        let net = single(&format!("conv_extra{i}"), &[4, 14, 15], |g, x| g.conv(x, spec));
        let err = compare(&net, true, i as u64, 2);
        assert!(err < TOLERANCE, "extra conv {i}: {err}");
    }
}

#[test]
fn pools_with_padding_ceil_and_divisors() {
    let mut cases = 0;
    for k in [2, 3] {
        for stride in [1, 2, 3] {
            for pad in [0, 1] {
                if pad >= k {
                    continue;
                }
                for ceil in [false, true] {
                    for include in [false, true] {
                        for max in [false, true] {
                            let mut spec: PoolSpec = pool(k).stride(stride).pad(pad);
                            if ceil {
                                spec = spec.ceil();
                            }
                            if !include {
                                spec = spec.exclude_pad();
                            }
                            let name = format!("pool_k{k}_s{stride}_p{pad}_c{ceil}_i{include}_m{max}");
                            let net = single(&name, &[3, 10, 11], |g, x| {
                                if max {
                                    g.max_pool(x, spec)
                                } else {
                                    g.avg_pool(x, spec)
                                }
                            });
                            let err = compare(&net, true, cases, 2);
                            assert!(err < TOLERANCE, "{name}: {err}");
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    // TF SAME pooling (asymmetric, padding excluded from averages)
    let net = single("avg_same", &[3, 10, 11], |g, x| g.avg_pool(x, pool(3).stride(2).same()));
    assert!(compare(&net, true, 1, 2) < TOLERANCE);
    assert!(cases >= 80);
}

#[test]
fn every_other_op() {
    let activations = [Op::Relu, Op::Relu6, Op::Sigmoid, Op::Tanh, Op::Silu, Op::HardSwish, Op::HardSigmoid, Op::Gelu];
    for act in &activations {
        // scale the input up so that relu6 / hard-sigmoid clip and gelu sees its tails
        let net = single(act.type_name(), &[4, 5, 5], |g, x| {
            let x = g.scale(x, 5.0);
            g.act(x, act)
        });
        assert!(compare(&net, true, 3, 2) < TOLERANCE, "{}", act.type_name());
    }
    let nets = vec![
        single("lrn", &[7, 5, 5], |g, x| g.lrn(x, 5, 1e-2, 0.75, 2.0)),
        single("lrn3", &[7, 5, 5], |g, x| g.lrn(x, 3, 1e-1, 0.5, 1.0)),
        single("bn", &[6, 5, 5], |g, x| g.bn(x)),
        single("gap", &[6, 5, 7], |g, x| g.global_avg_pool(x)),
        single("concat", &[6, 5, 5], |g, x| {
            let a = g.conv(x, conv(3, 1));
            g.cat(&[x, a, x])
        }),
        single("shuffle", &[12, 3, 3], |g, x| g.channel_shuffle(x, 3)),
        single("slice", &[12, 3, 3], |g, x| g.channel_slice(x, 3, 8)),
        single("se", &[8, 5, 5], |g, x| {
            let s = g.global_avg_pool(x);
            let s = g.conv(s, conv(2, 1));
            let s = g.relu(s);
            let s = g.conv(s, conv(8, 1));
            let s = g.sigmoid(s);
            g.mul(x, s)
        }),
        single("add3", &[6, 5, 5], |g, x| {
            let a = g.conv(x, conv(6, 3).pad(1));
            let b = g.conv(x, conv(6, 1));
            g.add_all(&[x, a, b])
        }),
        single("head", &[6, 5, 5], |g, x| {
            let x = g.flatten(x);
            let x = g.dropout(x, 0.5);
            let x = g.linear(x, 7);
            let x = g.linear_no_bias(x, 5);
            g.softmax(x)
        }),
        single("flat_input", &[20], |g, x| {
            let x = g.linear(x, 9);
            g.tanh(x)
        }),
    ];
    for net in &nets {
        let err = compare(net, true, 5, 3);
        assert!(err < TOLERANCE, "{}: {err}", net.name);
    }
}

#[test]
fn random_nets_agree_with_folding_on_and_off() {
    for seed in 0..40 {
        let net = random_net(seed);
        for fold in [true, false] {
            let err = compare(&net, fold, seed, 2);
            assert!(err < 1e-4, "{} (fold {fold}): {err}", net.name);
        }
    }
}

#[test]
fn packed_and_candle_convs_with_fused_activations() {
    // conv -> relu; conv -> bn -> relu6 (fused through the folded batch-norm); a conv read
    // twice (its relu must not be fused); add -> relu; a conv -> relu that is also an output.
    let mut g = NetBuilder::new("fusion", &[6, 13, 12]);
    let x = g.input();
    let a = g.conv(x, conv(8, 3).pad(1));
    let a = g.relu(a);
    let b = g.conv(a, conv(8, 3).stride(2).pad(1).groups(8));
    let b = g.bn(b);
    let b = g.act(b, &Op::Relu6);
    let c = g.conv(b, conv(8, 1));
    let c_relu = g.relu(c);
    let d = g.add(c_relu, c);
    let d = g.relu(d); // add + relu in one op
    let e = g.conv(d, conv(5, 2).same());
    let e_bn = g.bn(e);
    let e_relu = g.relu(e_bn);
    let net = g.finish_many(&[e_relu, e_bn]).unwrap();
    let weights = Weights::init(&net, 3);
    for (conv, fold, fused) in [
        (ConvAlgorithm::Packed, true, 3),
        // unfolded, the batch-norm runs as one threaded pass with the ReLU6 after it
        (ConvAlgorithm::Packed, false, 3),
        (ConvAlgorithm::Candle, true, 0),
        (ConvAlgorithm::Candle, false, 0),
    ] {
        let phase = Phase::Inference { fold_batch_norm: fold };
        let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, conv).unwrap();
        assert_eq!(lowered.fused_activations, fused, "{conv} fold {fold}");
        let err = compare_with(&net, fold, 3, 2, conv);
        assert!(err < TOLERANCE, "{conv} fold {fold}: {err}");
    }
    // both algorithms on random nets (the other tests use the default, packed)
    for seed in 0..12 {
        let net = random_net(seed);
        for conv in [ConvAlgorithm::Packed, ConvAlgorithm::Candle] {
            let err = compare_with(&net, true, seed, 2, conv);
            assert!(err < 1e-4, "{} ({conv}): {err}", net.name);
        }
    }
    // packed applies to f32 on the CPU only: inference, and training on the training convs
    let f64_lowered = Lowered::with_conv(
        &net,
        &weights,
        &Device::Cpu,
        DType::F64,
        Phase::Inference { fold_batch_norm: true },
        ConvAlgorithm::Packed,
    )
    .unwrap();
    assert_eq!(f64_lowered.conv_algorithm, ConvAlgorithm::Candle);
    let training =
        Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, Phase::Training, ConvAlgorithm::Packed).unwrap();
    assert_eq!(training.conv_algorithm, ConvAlgorithm::Packed);
    let train_convs = |l: &Lowered| {
        l.layers.iter().filter(|l| matches!(l, synprof::exec::lower::Layer::Conv { train: Some(_), .. })).count()
    };
    assert_eq!(train_convs(&training), 4, "every conv on the packed training op");
    let f64_training =
        Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F64, Phase::Training, ConvAlgorithm::Packed).unwrap();
    assert_eq!(f64_training.conv_algorithm, ConvAlgorithm::Candle);
    assert_eq!(train_convs(&f64_training), 0);
}

/// A residual add runs inside the conv on one side of it (its ReLU too) where that conv's
/// output feeds the add alone and the other side is computed first; nowhere else.
#[test]
fn residual_adds_fuse_into_the_conv_before_them() {
    let mut g = NetBuilder::new("residual", &[16, 9, 10]);
    let x = g.input();
    let stem = g.conv(x, conv(16, 3).pad(1));
    let stem = g.relu(stem);
    // identity shortcut: conv -> bn -> add(., stem) -> relu: fused, ReLU included
    let a = g.conv(stem, conv(16, 3).pad(1));
    let a = g.bn(a);
    let a = g.add(a, stem);
    let a = g.relu(a);
    // projection shortcut: both sides convs; the later one (the shortcut) takes the add
    let main = g.conv(a, conv(24, 1));
    let main = g.bn(main);
    let short = g.conv(a, conv(24, 1));
    let short = g.bn(short);
    let b = g.add(main, short);
    // a depthwise conv is not fused; nor a conv whose output is also the net's output
    let dw = g.conv(b, conv(24, 3).pad(1).groups(24));
    let c = g.add(dw, b);
    let out = g.conv(c, conv(24, 1));
    let d = g.add(out, c);
    let net = g.finish_many(&[d, out]).unwrap();
    let weights = Weights::init(&net, 4);
    // In place (the conv writes into the residual's buffer): the projection shortcut's
    // add; not the identity one, whose conv reads the residual as its input.
    for (conv, fold, fused, in_place) in [
        (ConvAlgorithm::Packed, true, 2, 1),
        // unfolded, the batch-norm stands between conv and add
        (ConvAlgorithm::Packed, false, 0, 0),
        (ConvAlgorithm::Candle, true, 0, 0),
    ] {
        let phase = Phase::Inference { fold_batch_norm: fold };
        let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, conv).unwrap();
        assert_eq!(lowered.fused_residual_adds, fused, "{conv} fold {fold}");
        assert_eq!(lowered.residual_adds_in_place, in_place, "{conv} fold {fold}");
        for batch in [1, 3] {
            let err = compare_with(&net, fold, 4, batch, conv);
            assert!(err < TOLERANCE, "{conv} fold {fold} batch {batch}: {err}");
        }
    }
    // The zoo's residual nets: every block's add.
    use synprof::graph::Shape;
    for (name, adds) in [("resnet50", 16), ("mobilenet_v2", 10), ("resnet18", 8)] {
        let net = zoo::build(name, Some(&Shape::chw(3, 64, 64))).unwrap();
        let weights = Weights::init(&net, 0);
        let phase = Phase::Inference { fold_batch_norm: true };
        let lowered =
            Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
        assert_eq!(lowered.fused_residual_adds, adds, "{name}");
        // Each block's input is read last by the block's first conv, before the add.
        assert_eq!(lowered.residual_adds_in_place, adds, "{name}");
        let err = compare(&net, true, 6, 2);
        assert!(err < 1e-4, "{name}: {err}");
    }
}

/// MobileNetV2's 1x1 expansions on maps of 28x28 and more run fused with the depthwise
/// convs after them (`exec::cpu::fused`): blocks 2-7 at 224x224, none on the candle path,
/// and the net's output still the reference's. An expansion whose output is also read
/// elsewhere stays on its own.
#[test]
fn expansions_fuse_into_their_depthwise_convs() {
    use synprof::graph::Shape;
    let net = zoo::build("mobilenet_v2", Some(&Shape::chw(3, 224, 224))).unwrap();
    let weights = Weights::init(&net, 0);
    let phase = Phase::Inference { fold_batch_norm: true };
    for (conv, fused) in [(ConvAlgorithm::Packed, 6), (ConvAlgorithm::Candle, 0)] {
        let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, conv).unwrap();
        assert_eq!(lowered.fused_expansions, fused, "{conv}");
        // A fused block's projection still writes into its residual's buffer (the fused
        // op's output is a buffer of its own, not a view of the block's input).
        assert_eq!(lowered.residual_adds_in_place, if fused > 0 { 10 } else { 0 }, "{conv}");
    }
    let err = compare_with(&net, true, 8, 2, ConvAlgorithm::Packed);
    assert!(err < 1e-4, "mobilenet_v2 with fused expansions: {err}");

    let mut g = NetBuilder::new("expansion_read_twice", &[8, 30, 30]);
    let x = g.input();
    let e = g.conv(x, conv(48, 1));
    let e = g.bn(e);
    let e = g.relu6(e);
    let d = g.conv(e, conv(48, 3).pad(1).depthwise());
    let y = g.add(d, e);
    let net = g.finish(y).unwrap();
    let weights = Weights::init(&net, 1);
    let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
    assert_eq!(lowered.fused_expansions, 0);
    let err = compare_with(&net, true, 2, 2, ConvAlgorithm::Packed);
    assert!(err < TOLERANCE, "{err}");
}

/// A classifier head on `x`: global average pool, flatten, 10 logits.
fn with_head(mut g: NetBuilder, x: T) -> Net {
    let q = g.global_avg_pool(x);
    let q = g.flatten(q);
    let y = g.linear(q, 10);
    g.finish(y).unwrap()
}

/// Each packed conv's (input blocked, output blocked), in node order, of those `keep` picks.
fn conv_layouts(lowered: &Lowered, keep: impl Fn(&PackedConvOp) -> bool) -> Vec<(bool, bool)> {
    let layouts = |op: &PackedConvOp| (op.layouts().input, op.layouts().output);
    lowered.layers.iter().filter_map(|l| l.packed_conv().filter(|op| keep(op)).map(|op| layouts(op))).collect()
}

/// Tensors run blocked (a pixel's 16 channels together, `exec::cpu::blocked`) where every
/// reader can: MobileNetV2 from block 7's projection to the head (before it, each block's
/// expansion runs fused with its depthwise conv and reads NCHW), ResNet-50, and a net
/// with each kind of boundary, against the reference.
#[test]
fn tensors_run_blocked_where_every_reader_can() {
    use synprof::graph::Shape;
    let net = zoo::build("mobilenet_v2", Some(&Shape::chw(3, 224, 224))).unwrap();
    let weights = Weights::init(&net, 0);
    let phase = Phase::Inference { fold_batch_norm: true };
    for (conv, blocked) in [(ConvAlgorithm::Packed, 32), (ConvAlgorithm::Candle, 0)] {
        let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, conv).unwrap();
        // blocks.7's projection writes blocked; blocks 8-17 (three convs each) and the
        // head run blocked; the global average pool reads the head's blocked output.
        assert_eq!(lowered.blocked_convs, blocked, "{conv}");
    }
    let err = compare_with(&net, true, 8, 1, ConvAlgorithm::Packed);
    assert!(err < 1e-4, "mobilenet_v2 with blocked tensors: {err}");

    // A stem conv (3 input channels) writes blocked for a max pool that pools blocked where
    // its NCHW rows would not be whole cache lines (SqueezeNet's 31 pixels at 64x64), NCHW
    // where they are (MobileNetV2's 112 at 224x224).
    let first = |op: &PackedConvOp| op.conv().spec().in_channels == 3;
    let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
    assert_eq!(conv_layouts(&lowered, first), [(false, false)]);
    let net = zoo::build("squeezenet1_1", Some(&Shape::chw(3, 64, 64))).unwrap();
    let weights = Weights::init(&net, 2);
    let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
    assert_eq!(conv_layouts(&lowered, first), [(false, true)]);
    assert!(lowered
        .layers
        .iter()
        .any(|l| matches!(l, Layer::PackedPool(op) if format!("{op:?}").contains("MaxBlocked"))));
    for batch in [1, 2] {
        let err = compare_with(&net, true, 3, batch, ConvAlgorithm::Packed);
        assert!(err < 1e-4, "squeezenet1_1 with a blocked stem, batch {batch}: {err}");
    }

    // EfficientNet's squeeze-and-excitation: the channel scale keeps its input's layout and
    // the average pool reads blocked, so the depthwise convs before them run blocked (52
    // blocked convs; 30 while the scale read NCHW only).
    let net = zoo::build("efficientnet_b0", None).unwrap();
    let weights = Weights::init(&net, 0);
    let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
    assert_eq!(lowered.blocked_convs, 52);
    let net = zoo::build("efficientnet_b0", Some(&Shape::chw(3, 64, 64))).unwrap();
    let err = compare_with(&net, true, 9, 2, ConvAlgorithm::Packed);
    assert!(err < 1e-4, "efficientnet_b0 with blocked tensors: {err}");

    // Every boundary: entering (1x1, NCHW in), residuals fused beside and in place, a
    // strided depthwise conv, leaving for a dense 3x3 conv (1x1, NCHW out), a tensor also
    // read by a concat (stays NCHW, so the depthwise conv reading it does too), channels
    // not whole blocks (stays NCHW), a blocked global average pool.
    let mut g = NetBuilder::new("blocked_boundaries", &[8, 14, 14]);
    let x = g.input();
    let a = g.conv(x, conv(32, 1));
    let a = g.relu6(a);
    let b = g.conv(a, conv(32, 3).pad(1).depthwise());
    let b = g.relu6(b);
    let c = g.conv(b, conv(32, 1));
    let c = g.add(c, a);
    let d = g.conv(c, conv(32, 3).pad(1).stride(2).depthwise());
    let e = g.conv(d, conv(48, 1));
    let f = g.conv(e, conv(32, 3).pad(1));
    let k = g.conv(d, conv(16, 1));
    let kd = g.conv(k, conv(16, 3).pad(1).depthwise());
    let odd = g.conv(d, conv(24, 1));
    let odd = g.conv(odd, conv(24, 3).pad(1).depthwise());
    let j = g.cat(&[f, kd, k, odd]);
    let p = g.conv(j, conv(64, 1));
    let p = g.relu(p);
    let net = with_head(g, p);
    let weights = Weights::init(&net, 5);
    let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
    // Each conv's (input, output) blocked, in node order: a, b, c (its residual a), d, e,
    // f, k, kd, the 24-channel pair, p. k and the 24-channel 1x1 read d blocked but write
    // NCHW for their readers.
    let layouts = conv_layouts(&lowered, |_| true);
    let (nchw, entry, exit, blocked) = ((false, false), (false, true), (true, false), (true, true));
    assert_eq!(layouts, [entry, blocked, blocked, blocked, exit, nchw, exit, nchw, exit, nchw, entry]);
    assert_eq!(lowered.blocked_convs, 8);
    assert!(lowered
        .layers
        .iter()
        .any(|l| matches!(l, Layer::PackedPool(op) if format!("{op:?}").contains("GlobalAvgBlocked"))));
    for batch in [1, 3] {
        let err = compare_with(&net, true, 5, batch, ConvAlgorithm::Packed);
        assert!(err < TOLERANCE, "batch {batch}: {err}");
    }

    // Inception's blocks: branches of whole blocks concatenated blocked (each image's inputs
    // one after the other, the same copy as NCHW), read blocked by a 1x1 conv and by average
    // pools (one excluding the padding) whose 1x1 convs read blocked too; a concat with a
    // branch of 8 channels stays NCHW, so the convs writing it write NCHW.
    let mut g = NetBuilder::new("blocked_concats", &[16, 12, 11]);
    let x = g.input();
    let x = g.conv(x, conv(32, 1));
    let a = g.conv(x, conv(32, 1));
    let p = g.avg_pool(x, pool(3).stride(1).pad(1));
    let p = g.conv(p, conv(16, 1));
    let j = g.cat(&[a, p]);
    let y = g.conv(j, conv(48, 1));
    let q = g.avg_pool(j, pool(3).stride(1).pad(1).exclude_pad());
    let q = g.conv(q, conv(16, 1));
    let odd = g.conv(x, conv(8, 1));
    let k = g.cat(&[y, q, odd]);
    let k = g.conv(k, conv(32, 1));
    let net = with_head(g, k);
    let weights = Weights::init(&net, 6);
    let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
    // x, a, the first pool's 1x1, y, the second pool's 1x1, odd, k.
    let layouts = conv_layouts(&lowered, |_| true);
    assert_eq!(layouts, [entry, blocked, blocked, exit, exit, exit, entry]);
    let pools = |kind: &str| {
        let of_kind = |l: &&Layer| matches!(l, Layer::PackedPool(op) if format!("{op:?}").contains(kind));
        lowered.layers.iter().filter(of_kind).count()
    };
    assert_eq!(pools("pool: AvgBlocked"), 2);
    for batch in [1, 3] {
        let err = compare_with(&net, true, 6, batch, ConvAlgorithm::Packed);
        assert!(err < TOLERANCE, "blocked concats, batch {batch}: {err}");
    }

    // ResNet's downsampling shortcuts (strided 1x1 convs) gather blocked pixels: every
    // ResNet-50 1x1 conv runs blocked on some side, maps of every size. The stem (7x7, too
    // wide for the stem kernel) writes blocked for the max pool, which pools blocked for
    // layer1.0's 1x1 convs. The three 3x3 stride-2 convs run blocked in and out on the
    // direct grid's channel tile, as do the 1x1 convs around them; the 3x3 stride-1 convs
    // (Winograd's on some shapes) stay NCHW, the 1x1 convs before them reading blocked and
    // writing NCHW, those after them reading NCHW and writing blocked. The residual stream
    // is blocked throughout.
    let net = zoo::build("resnet50", Some(&Shape::chw(3, 224, 224))).unwrap();
    let weights = Weights::init(&net, 0);
    let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
    let pointwise = |op: &PackedConvOp| op.conv().spec().kernel == [1, 1];
    let strided_3x3 = |op: &PackedConvOp| op.conv().spec().kernel == [3, 3] && op.conv().spec().stride == [2, 2];
    let stem = |op: &PackedConvOp| op.conv().spec().kernel == [7, 7];
    let other_wide = |op: &PackedConvOp| !pointwise(op) && !strided_3x3(op) && !stem(op);
    assert_eq!(conv_layouts(&lowered, stem), [entry]);
    assert!(lowered
        .layers
        .iter()
        .any(|l| matches!(l, Layer::PackedPool(op) if format!("{op:?}").contains("MaxBlocked"))));
    assert_eq!(conv_layouts(&lowered, strided_3x3), [blocked; 3]);
    let others = conv_layouts(&lowered, other_wide);
    assert!(others.len() == 13 && others.iter().all(|&l| l == nchw), "{others:?}");
    let layouts = conv_layouts(&lowered, pointwise);
    assert_eq!(layouts.len(), 36);
    assert_eq!(layouts[0], exit, "layer1.0.conv1");
    assert!(layouts.iter().all(|&(i, o)| i || o), "{layouts:?}");
    // layer2.0.conv1 .. layer4.0.conv1: before a stride-2 conv, blocked both sides.
    assert_eq!([layouts[7], layouts[16], layouts[29]], [blocked; 3], "{layouts:?}");
    assert_eq!(lowered.blocked_convs, 40);
    // (Its outputs against onnxruntime's: `exec_vs_onnxruntime`.)
    let mut g = NetBuilder::new("blocked_shortcuts", &[8, 13, 13]);
    let x = g.input();
    let a = g.conv(x, conv(32, 1).stride(2));
    let b = g.conv(x, conv(32, 3).pad(1).stride(2));
    let b = g.conv(b, conv(32, 1));
    let c = g.add(a, b);
    let c = g.relu(c);
    let d = g.conv(c, conv(48, 1).stride(2));
    let e = g.conv(c, conv(48, 1));
    let e = g.conv(e, conv(48, 3).pad(1).stride(2));
    let e = g.conv(e, conv(48, 1));
    let f = g.add(d, e);
    let net = with_head(g, f);
    let weights = Weights::init(&net, 6);
    let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
    let strided = conv_layouts(&lowered, |op| op.conv().spec().stride == [2, 2]);
    // a (NCHW in, blocked out), b (3x3 on the 8-channel input: NCHW in, blocked out), d
    // (blocked in and out), e's 3x3 (blocked in and out).
    assert_eq!(strided, [entry, entry, blocked, blocked]);
    for batch in [1, 2] {
        let err = compare_with(&net, true, 7, batch, ConvAlgorithm::Packed);
        assert!(err < TOLERANCE, "blocked shortcuts, batch {batch}: {err}");
    }
}

/// A residual still read after its add keeps its buffer: the conv writes a new one.
#[test]
fn a_residual_read_later_is_not_overwritten() {
    let mut g = NetBuilder::new("residual_read_later", &[8, 12, 12]);
    let x = g.input();
    let r = g.conv(x, conv(16, 1));
    let r = g.relu(r);
    let m = g.conv(x, conv(16, 3).pad(1));
    let b = g.add(m, r); // m's conv takes the add; r is its residual
    let z = g.conv(r, conv(16, 1)); // ... and r is read again afterwards
    let y = g.add(b, z);
    let net = g.finish(y).unwrap();
    let weights = Weights::init(&net, 3);
    let phase = Phase::Inference { fold_batch_norm: true };
    let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
    assert!(lowered.fused_residual_adds >= 1, "the add after m's conv fuses");
    assert_eq!(lowered.residual_adds_in_place, lowered.fused_residual_adds - 1, "all but m's conv in place");
    for batch in [1, 2] {
        let err = compare_with(&net, true, 3, batch, ConvAlgorithm::Packed);
        assert!(err < TOLERANCE, "batch {batch}: {err}");
    }
}

#[test]
fn folding_is_recorded_and_only_where_exact() {
    let net = zoo::build("resnet18", Some(&synprof::graph::Shape::chw(3, 32, 32))).unwrap();
    let weights = Weights::init(&net, 0);
    let folded =
        Lowered::new(&net, &weights, &Device::Cpu, DType::F32, Phase::Inference { fold_batch_norm: true }).unwrap();
    assert_eq!(folded.folded_batch_norms, 20);
    let off =
        Lowered::new(&net, &weights, &Device::Cpu, DType::F32, Phase::Inference { fold_batch_norm: false }).unwrap();
    assert_eq!(off.folded_batch_norms, 0);
    // densenet is pre-activation: only conv0 -> norm0 and each dense layer's
    // bottleneck conv1 -> norm2 (58 of them) have a conv feeding a batch-norm
    let net = zoo::build("densenet121", Some(&synprof::graph::Shape::chw(3, 32, 32))).unwrap();
    let weights = Weights::init(&net, 0);
    let lowered =
        Lowered::new(&net, &weights, &Device::Cpu, DType::F32, Phase::Inference { fold_batch_norm: true }).unwrap();
    assert_eq!(lowered.folded_batch_norms, 1 + 58);
}

/// A constant scale after a conv (or after the batch-norm folded into one) folds into that
/// conv, and the residual add and ReLU after it then fuse into the conv too (Inception-
/// ResNet's blocks); a scale whose conv is read elsewhere, or that reads no conv, stays.
#[test]
fn constant_scales_fold_into_their_convs() {
    let mut g = NetBuilder::new("scaled_residuals", &[16, 10, 10]);
    let x = g.input();
    let a = g.conv(x, conv(16, 3).pad(1)); // conv -> scale -> add -> relu
    let a = g.scale(a, 0.17);
    let a = g.add(a, x);
    let a = g.relu(a);
    let b = g.conv(a, conv(16, 1)); // conv -> bn -> scale -> add
    let b = g.bn(b);
    let b = g.scale(b, -0.5);
    let b = g.add(a, b);
    let c = g.conv(b, conv(16, 1)); // read twice: its scale stays
    let s = g.scale(c, 2.0);
    let c = g.add(s, c);
    let d = g.scale(c, 0.25); // reads an add: stays
    let net = g.finish(d).unwrap();
    let weights = Weights::init(&net, 5);
    for (fold, scales, adds) in [(true, 2, 2), (false, 0, 0)] {
        let phase = Phase::Inference { fold_batch_norm: fold };
        let lowered =
            Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
        assert_eq!(lowered.folded_scales, scales, "fold {fold}");
        assert_eq!(lowered.folded_batch_norms, usize::from(fold), "fold {fold}");
        assert_eq!(lowered.fused_residual_adds, adds, "fold {fold}");
        for conv in [ConvAlgorithm::Packed, ConvAlgorithm::Candle] {
            let err = compare_with(&net, fold, 5, 2, conv);
            assert!(err < TOLERANCE, "fold {fold}, {conv}: {err}");
        }
    }
    // Inception-ResNet-v2: every block's last conv carries its scale (10 + 20 + 10 blocks).
    let net = zoo::build("inception_resnet_v2", Some(&synprof::graph::Shape::chw(3, 75, 75))).unwrap();
    let weights = Weights::init(&net, 0);
    let phase = Phase::Inference { fold_batch_norm: true };
    let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
    assert_eq!(lowered.folded_scales, 40);
}

#[test]
fn small_zoo_models_agree() {
    use synprof::graph::Shape;
    for (name, input) in [
        ("keras_cifar10_cnn", None),
        ("squeezenet1_1", Some(Shape::chw(3, 64, 64))),
        ("shufflenet_v2_x1_0", Some(Shape::chw(3, 64, 64))),
        ("mobilenet_v3_small", Some(Shape::chw(3, 64, 64))),
        ("googlenet_bvlc", Some(Shape::chw(3, 224, 224))),
        ("synnet", Some(Shape::chw(3, 64, 64))),
    ] {
        let net = zoo::build(name, input.as_ref()).unwrap();
        let err = compare(&net, true, 11, 1);
        assert!(err < 1e-4, "{name}: {err}");
    }
}

#[test]
fn random_nets_cover_every_op() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..40 {
        for node in &random_net(seed).nodes {
            seen.insert(node.op.type_name());
        }
    }
    let missing: Vec<_> = Op::TYPE_NAMES.iter().filter(|t| !seen.contains(*t)).collect();
    assert!(missing.is_empty(), "random nets never use {missing:?}");
}

/// The smallest batch `lowered` runs split.
fn first_split_batch(lowered: &Lowered) -> usize {
    (2..=512).find(|&b| lowered.batch_split(b).is_some()).expect("some batch runs split")
}

/// A batch too large for the cache runs split on the packed CPU path (the first nodes per
/// sub-batch of whole images per thread, the rest whole): the outputs still match the
/// reference, image by image, the last sub-batch short.
#[test]
fn split_batches_agree_with_the_reference() {
    use synprof::graph::Shape;
    for name in ["resnet18", "mobilenet_v2", "googlenet"] {
        let net = zoo::build(name, Some(&Shape::chw(3, 224, 224))).unwrap();
        let weights = Weights::init(&net, 5);
        let phase = Phase::Inference { fold_batch_norm: true };
        let lowered =
            Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
        let batch = first_split_batch(&lowered);
        let split = lowered.batch_split(batch).unwrap();
        assert!(split.sub_batch < batch && split.cut > 0 && split.cut < net.nodes.len(), "{name}: {split:?}");
        assert_eq!(split.sub_batch % lowered.split_threads(), 0, "{name}: whole images per thread: {split:?}");
        assert_ne!(batch % split.sub_batch, 0, "{name}: batch {batch} ends on a short sub-batch");
        assert_eq!(lowered.batch_split(1), None);
        // Off the packed path (candle convs, training) nothing is split.
        let candle =
            Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Candle).unwrap();
        assert_eq!(candle.batch_split(batch), None);
        let err = compare_with(&net, true, 5, batch, ConvAlgorithm::Packed);
        assert!(err < 1e-4, "{name}: {err}");
    }
}

/// Where the split ends: before the first stretch whose whole-batch activations fit the
/// budget or whose weights outweigh its activations. ResNet-50's layer3 (4.5 MB of weights
/// per block against 0.8 MB per image) runs whole even though its batch-16 activations
/// (12.8 MB) exceed the budget; MobileNetV2's light blocks 1-7 run split. On 2 threads,
/// batch 16.
#[test]
fn the_split_leaves_weight_heavy_stretches_whole() {
    let cut_at = |name: &str| {
        let net = zoo::build(name, None).unwrap();
        let weights = Weights::init(&net, 5);
        let phase = Phase::Inference { fold_batch_norm: true };
        let lowered =
            Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
        let split = lowered.batch_split_for(16, 2).unwrap_or_else(|| panic!("{name}: batch 16 is not split"));
        (net.nodes[split.cut].name.clone(), split.sub_batch)
    };
    // Two images per thread fit the budget beside layer1's 3.2 MB per image; one beside
    // MobileNetV2's 4.8 MB (blocks.2's expansion, 96 channels at 112x112).
    assert_eq!(cut_at("resnet50"), ("layer2.3.relu3".to_string(), 4));
    assert_eq!(cut_at("mobilenet_v2"), ("blocks.7.relu61".to_string(), 2));
}

/// `--layers` times the run as a plain inference makes it: the same outputs (the batch
/// split included), and a time for every node.
#[test]
fn per_layer_timing_runs_the_plain_inference() {
    use synprof::graph::Shape;
    let net = zoo::build("resnet18", Some(&Shape::chw(3, 224, 224))).unwrap();
    let weights = Weights::init(&net, 5);
    let phase = Phase::Inference { fold_batch_norm: true };
    let lowered = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
    let batch = first_split_batch(&lowered);
    let input = Tensor::randn(0f32, 1f32, (batch, 3, 224, 224), &Device::Cpu).unwrap();
    // The first call of each conv shape times its forms and may keep the output of a form
    // it then passes over (the same values to rounding, not bit for bit): warm up first.
    lowered.infer(&input).unwrap();
    let plain = lowered.infer(&input).unwrap();
    let mut times = NodeTimes::new(net.nodes.len());
    let timed = lowered.infer_timed(&input, &mut times).unwrap();
    assert_eq!(plain.len(), timed.len());
    for (a, b) in plain.iter().zip(&timed) {
        let (a, b) =
            (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(a, b, "the timed run computes what the plain one does");
    }
    for (node, ms) in net.nodes.iter().zip(&times.wall_ms) {
        assert!(ms.is_finite() && *ms > 0.0, "{}: {ms} ms", node.name);
    }
    // The packed convs ran work items on the conv threads; the flatten is candle's own.
    for ((node, busy), layer) in net.nodes.iter().zip(&times.busy_ms).zip(&lowered.layers) {
        match layer {
            Layer::PackedConv(_) | Layer::PackedConvAdd { .. } => assert!(*busy > 0.0, "{}: no busy time", node.name),
            Layer::Flatten => assert_eq!(*busy, 0.0, "{}", node.name),
            _ => {}
        }
    }
}

/// The convs that alone feed a channel concat write into its buffer, the concat copying only
/// the inputs no such conv made: against the reference at batch 1 (each writer straight into
/// its channels) and 3 (its own buffer, then each image's run copied in), NCHW and blocked,
/// folding on and off, writers running in another order than their channels lie, a chain of
/// pass-throughs between a writer and the concat, and a concat that no conv alone feeds.
#[test]
fn convs_write_into_the_concat_that_alone_reads_them() {
    let mut g = NetBuilder::new("concats_in_place", &[16, 9, 10]);
    let x = g.input();
    let x = g.conv(x, conv(16, 1));
    // A fire module whose 3x3 runs before its 1x1 but lies after it; each ReLU (fused, a
    // pass-through) runs after both convs.
    let e3 = g.conv(x, conv(24, 3).pad(1));
    let e1 = g.conv(x, conv(8, 1));
    let e1 = g.bn(e1);
    let e3 = g.relu(e3);
    let e1 = g.relu(e1);
    let fire = g.cat(&[e1, e3]);
    // A reduction: two strided convs and a max pool (copied); the pool's input is read twice.
    let r1 = g.conv(fire, conv(16, 3).stride(2));
    let r2 = g.conv(fire, conv(8, 1));
    let r2 = g.conv(r2, conv(16, 3).stride(2));
    let rp = g.max_pool(fire, pool(3).stride(2));
    let reduction = g.cat(&[r1, rp, r2]);
    // Blocked: 1x1 convs of whole blocks reading a blocked tensor and writing blocked.
    let b = g.conv(reduction, conv(32, 1));
    let b1 = g.conv(b, conv(16, 1));
    let b2 = g.conv(b, conv(32, 1));
    let blocked = g.cat(&[b1, b2]);
    let y = g.conv(blocked, conv(16, 1));
    // No writer: both inputs are read by others too.
    let plain = g.cat(&[y, b]);
    let z = g.conv(plain, conv(16, 1));
    let y = g.add(z, y);
    let net = with_head(g, y);
    let weights = Weights::init(&net, 21);
    for fold in [true, false] {
        let phase = Phase::Inference { fold_batch_norm: fold };
        let lowered =
            Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
        let kernels = concat_kernels(&lowered);
        // Unfolded, e1's norm runs on its own and passes no conv's output on: e1 is copied.
        let fire = if fold { "concat-in-place" } else { "concat-in-place+copy" };
        assert_eq!(kernels, [fire, "concat-in-place+copy", "concat-in-place-blocked", "concat-blocked"], "fold {fold}");
        assert_eq!(lowered.concats_in_place, 3);
        for batch in [1, 3] {
            let err = compare_with(&net, fold, 22, batch, ConvAlgorithm::Packed);
            assert!(err < TOLERANCE, "fold {fold}, batch {batch}: {err}");
        }
    }
}

/// The packed concat kernel of each concat node, in node order.
fn concat_kernels(lowered: &Lowered) -> Vec<&'static str> {
    lowered.layers.iter().filter_map(Layer::concat_kernel).collect()
}

/// Channel concats run on the conv threads, and a batch-norm (with its ReLU) that alone reads
/// one runs inside it (DenseNet's layers): NCHW and blocked, against the reference, where the
/// norm is fused and where it may not be (the concat read twice, the norm an output).
#[test]
fn concats_run_on_the_threads_with_the_norm_after_them() {
    let mut g = NetBuilder::new("dense_concats", &[16, 9, 10]);
    let x = g.input();
    let x = g.conv(x, conv(32, 1));
    // A dense layer: concat, BN-ReLU, 1x1, BN-ReLU (folds into the 1x1), 3x3.
    let dense = |g: &mut NetBuilder, features: &[T], growth: usize| {
        let j = g.cat(features);
        let j = g.bn(j);
        let j = g.relu(j);
        let j = g.conv(j, conv(32, 1));
        let j = g.bn(j);
        let j = g.relu(j);
        g.conv(j, conv(growth, 3).pad(1))
    };
    // Growth of 8 channels: NCHW concats.
    let a = dense(&mut g, &[x], 8);
    let b = dense(&mut g, &[x, a], 8);
    // A concat read twice (by its norm and by a 1x1 conv beside it): the norm runs on its own.
    let twice = g.cat(&[x, a, b]);
    let t = g.bn(twice);
    let t = g.relu(t);
    let t = g.conv(t, conv(16, 1));
    let u = g.conv(twice, conv(16, 1));
    // Whole blocks, written blocked by the 1x1 convs: a blocked concat with its norm fused,
    // read by a 1x1 conv reading blocked.
    let t2 = g.conv(t, conv(32, 1));
    let u2 = g.conv(u, conv(16, 1));
    let k = g.cat(&[t2, u2]);
    let k = g.bn(k);
    let k = g.relu(k);
    let k = g.conv(k, conv(16, 1));
    let net = with_head(g, k);
    let weights = Weights::init(&net, 11);
    for fold in [true, false] {
        let phase = Phase::Inference { fold_batch_norm: fold };
        let lowered =
            Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed).unwrap();
        let kernels = concat_kernels(&lowered);
        // a's "concat" of x alone passes x through; then b's, the one read twice (b's 3x3 conv
        // writes into it, x and a are copied), the blocked one.
        assert_eq!(kernels, ["concat-affine-act", "concat-in-place+copy", "concat-affine-act-blocked"]);
        for batch in [1, 3] {
            let err = compare_with(&net, fold, 12, batch, ConvAlgorithm::Packed);
            assert!(err < TOLERANCE, "fold {fold}, batch {batch}: {err}");
        }
    }
    let phase = Phase::Inference { fold_batch_norm: true };
    let candle = Lowered::with_conv(&net, &weights, &Device::Cpu, DType::F32, phase, ConvAlgorithm::Candle).unwrap();
    assert!(concat_kernels(&candle).is_empty());

    // A norm that is the net's output fuses too: it is the concat that must be read once.
    let mut g = NetBuilder::new("norm_output", &[8, 5, 5]);
    let x = g.input();
    let a = g.conv(x, conv(8, 3).pad(1));
    let j = g.cat(&[x, a]);
    let y = g.bn(j);
    let net = g.finish(y).unwrap();
    let lowered =
        Lowered::with_conv(&net, &Weights::init(&net, 3), &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed)
            .unwrap();
    assert_eq!(concat_kernels(&lowered), ["concat-affine-act"]);
    let err = compare_with(&net, true, 4, 2, ConvAlgorithm::Packed);
    assert!(err < TOLERANCE, "{err}");

    // DenseNet-121 (at 64x64): every dense layer's and transition's norm fused.
    let net = zoo::build("densenet121", Some(&synprof::graph::Shape::chw(3, 64, 64))).unwrap();
    let lowered =
        Lowered::with_conv(&net, &Weights::init(&net, 0), &Device::Cpu, DType::F32, phase, ConvAlgorithm::Packed)
            .unwrap();
    let kernels = concat_kernels(&lowered);
    // 58 dense layers, the first of each block reading one input (no concat), and each
    // block's output concat.
    assert_eq!(kernels.len(), 58 - 4 + 4);
    assert!(kernels.iter().all(|k| k.starts_with("concat-affine-act")), "{kernels:?}");
    let err = compare_with(&net, true, 5, 1, ConvAlgorithm::Packed);
    assert!(err < 1e-4, "densenet121: {err}");
}
