//! Small nets that use every op of the IR and its corner cases (asymmetric padding,
//! dilation, groups, pools that round up with and without counting padding, LRN of odd
//! and even size, shuffles, slices), for the ONNX export and import tests.

use synprof::graph::{conv, conv_hw, Net, NetBuilder, Op, Padding, Pool2d, T};

fn pool_op(kernel: usize, stride: usize, padding: Padding, ceil_mode: bool, count_include_pad: bool) -> Pool2d {
    Pool2d { kernel: [kernel, kernel], stride: [stride, stride], padding, ceil_mode, count_include_pad }
}

fn pad(top: usize, bottom: usize, left: usize, right: usize) -> Padding {
    Padding { top, bottom, left, right }
}

/// Convolutions with asymmetric padding, stride, dilation, groups and depthwise; every
/// activation, on values scaled past their knees (relu6 at 6, hard ones at +-3).
pub fn convs_and_activations() -> Net {
    let mut g = NetBuilder::new("convs_and_activations", &[3, 13, 11]);
    let x = g.input();
    let x = g.conv(x, conv_hw(8, 3, 2).stride_hw(2, 1).padding(pad(2, 0, 1, 0)));
    let x = g.conv(x, conv(8, 3).dilation(2).pad(2).groups(2).no_bias());
    let x = g.conv(x, conv(8, 3).stride(2).padding(pad(0, 1, 2, 0)).depthwise());
    let x = g.conv(x, conv(16, 1).groups(4));
    let x = g.scale(x, 4.0);
    let acts = [Op::Relu, Op::Relu6, Op::Sigmoid, Op::Tanh, Op::Silu, Op::HardSwish, Op::HardSigmoid, Op::Gelu];
    let ys: Vec<T> = acts.iter().map(|a| g.act(x, a)).collect();
    let y = g.cat(&ys);
    g.finish(y).unwrap()
}

/// Max and average pools: padding, asymmetric padding, ceil mode (with a last window that
/// hangs over the padding, and one that would start in it), counting padding or not.
pub fn pools() -> Net {
    let mut g = NetBuilder::new("pools", &[4, 11, 10]);
    let x = g.input();
    let specs = [
        (true, pool_op(3, 2, Padding::symmetric(1, 1), true, true)),
        (true, pool_op(2, 2, pad(1, 0, 0, 1), true, true)),
        (true, pool_op(3, 3, Padding::ZERO, false, true)),
        (true, pool_op(2, 2, Padding::symmetric(1, 1), true, true)),
        (false, pool_op(3, 2, Padding::symmetric(1, 1), true, true)),
        (false, pool_op(3, 2, Padding::symmetric(1, 1), true, false)),
        (false, pool_op(3, 1, Padding::symmetric(1, 1), false, true)),
        (false, pool_op(3, 1, Padding::symmetric(1, 1), false, false)),
        (false, pool_op(2, 2, Padding::ZERO, true, true)),
        (false, pool_op(2, 2, Padding::symmetric(1, 1), true, true)),
        (false, pool_op(2, 1, pad(0, 1, 0, 1), false, false)),
        (false, pool_op(3, 2, pad(2, 0, 1, 2), true, true)),
        (false, pool_op(3, 2, pad(2, 0, 1, 2), true, false)),
        // one axis rounds up, the other had its last window dropped (it starts in the padding)
        (true, pool_op(2, 2, pad(1, 1, 1, 0), true, true)),
        (false, pool_op(2, 2, pad(1, 1, 1, 0), true, true)),
        (false, pool_op(2, 2, pad(1, 1, 1, 0), true, false)),
        (true, pool_op(3, 2, pad(0, 1, 2, 2), true, true)),
        (false, pool_op(3, 2, pad(0, 1, 2, 2), true, true)),
        (false, pool_op(3, 2, pad(0, 1, 2, 2), true, false)),
    ];
    let mut flat = Vec::new();
    for (max, p) in specs {
        let y = if max { g.push(Op::MaxPool2d(p), &[x]) } else { g.push(Op::AvgPool2d(p), &[x]) };
        flat.push(g.flatten(y));
    }
    let y = g.global_avg_pool(x);
    flat.push(g.flatten(y));
    let y = g.cat(&flat);
    g.finish(y).unwrap()
}

/// Batch norm, LRN of odd and even size with large alpha, squeeze-excite and channel
/// broadcasts, scale, sums of 2 and 3, shuffles, slices, softmax over a feature map,
/// linear with and without bias, batch norm on flat features; several stages go to the
/// output so that each is compared.
pub fn everything_else() -> Net {
    let mut g = NetBuilder::new("everything_else", &[8, 6, 7]);
    let x = g.input();
    let x = g.conv(x, conv(8, 3).pad(1));
    let bn = g.bn_eps(x, 1e-3);
    let l5 = g.lrn(bn, 5, 0.5, 0.75, 2.0);
    let l4 = g.lrn(l5, 4, 0.3, 0.6, 1.5);
    let l2 = g.lrn(l4, 2, 1.0, 1.0, 1.0);
    let s = g.global_avg_pool(l2);
    let s = g.conv(s, conv(2, 1));
    let s = g.relu(s);
    let s = g.conv(s, conv(8, 1));
    let s = g.sigmoid(s);
    let se = g.mul(l2, s);
    let one = g.channel_slice(se, 3, 4);
    let m = g.mul(one, se);
    let sc = g.scale(m, 0.3);
    let a3 = g.add_all(&[m, sc, bn]);
    let a2 = g.add(a3, se);
    let sh2 = g.channel_shuffle(a2, 2);
    let sh4 = g.channel_shuffle(sh2, 4);
    let sl = g.channel_slice(sh4, 2, 6);
    let sl = g.dropout(sl, 0.5);
    let sm = g.softmax(sl);
    let f = g.flatten(sm);
    let h = g.linear(f, 20);
    let h = g.bn(h);
    let h = g.tanh(h);
    let logits = g.linear_no_bias(h, 10);
    let p = g.softmax(logits);
    let stages: Vec<T> = [l5, l4, l2, se, m, a2, sh2, sh4].iter().map(|&t| g.flatten(t)).collect();
    let mut all = stages;
    all.extend([f, logits, p]);
    let y = g.cat(&all);
    g.finish(y).unwrap()
}

/// Flat input: linear, batch norm, GELU, SiLU on features.
pub fn flat_mlp() -> Net {
    let mut g = NetBuilder::new("flat_mlp", &[12]);
    let x = g.input();
    let x = g.linear(x, 16);
    let x = g.bn(x);
    let x = g.gelu(x);
    let x = g.linear(x, 8);
    let x = g.silu(x);
    let x = g.linear(x, 5);
    let x = g.softmax(x);
    g.finish(x).unwrap()
}
