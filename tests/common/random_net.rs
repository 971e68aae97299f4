//! Random small nets that use every op in many configurations, for cross-checks between
//! executors (candle, the naive reference, onnxruntime, PyTorch). Not the product's
//! synthetic generator: these aim at coverage, not realism.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use synprof::graph::{conv, conv_hw, pool, Net, NetBuilder, Op, Padding, T};

fn pick<'a, X>(rng: &mut ChaCha8Rng, items: &'a [X]) -> &'a X {
    &items[rng.random_range(0..items.len())]
}

const ACTIVATIONS: [Op; 8] =
    [Op::Relu, Op::Relu6, Op::Sigmoid, Op::Tanh, Op::Silu, Op::HardSwish, Op::HardSigmoid, Op::Gelu];

/// One random block on `x`; keeps spatial size >= 3 where it can.
fn block(g: &mut NetBuilder, rng: &mut ChaCha8Rng, x: T) -> T {
    let c = g.channels(x);
    let hw = g.shape(x).hw().unwrap_or([1, 1]);
    let small = hw[0] < 6 || hw[1] < 6;
    match rng.random_range(0..12) {
        // conv with random kernel, stride, dilation, padding (incl. asymmetric), groups, bias
        0..=3 => {
            let fits: Vec<usize> = [1, 2, 3, 5].into_iter().filter(|&k| k <= hw[0].min(hw[1])).collect();
            let k = *pick(rng, &fits);
            let out: usize = *pick(rng, &[4, 6, 8, 12]);
            let divisors: Vec<usize> = (1..=c).filter(|g| c.is_multiple_of(*g) && out.is_multiple_of(*g)).collect();
            let groups = *pick(rng, &divisors);
            let mut spec = if rng.random_bool(0.15) && !small { conv_hw(out, 1, k.max(3)) } else { conv(out, k) };
            let k = if small { k } else { k.max(3) }; // the kernel's larger side, for the checks below
            spec = spec.groups(groups).bias(rng.random_bool(0.5));
            if !small && rng.random_bool(0.3) {
                spec = spec.stride(2);
            }
            if !small && 2 * k - 1 <= hw[0].min(hw[1]) / 2 && rng.random_bool(0.2) {
                spec = spec.dilation(2);
            }
            spec = match rng.random_range(0..4) {
                0 => spec.same(),
                1 => spec.padding(Padding {
                    top: rng.random_range(0..2),
                    bottom: rng.random_range(0..3),
                    left: rng.random_range(0..3),
                    right: rng.random_range(0..2),
                }),
                2 => spec.pad_half(),
                _ => spec,
            };
            let y = g.conv(x, spec);
            if rng.random_bool(0.6) {
                let y = g.bn(y);
                let act = pick(rng, &ACTIVATIONS).clone();
                g.act(y, &act)
            } else {
                y
            }
        }
        4 if !small => {
            let k = *pick(rng, &[2, 3]);
            let mut spec = pool(k).stride(*pick(rng, &[1, 2]));
            if k == 3 && rng.random_bool(0.5) {
                spec = spec.pad(1);
            }
            if rng.random_bool(0.5) {
                spec = spec.ceil();
            }
            if rng.random_bool(0.5) {
                g.max_pool(x, spec)
            } else {
                if rng.random_bool(0.5) {
                    spec = spec.exclude_pad();
                }
                g.avg_pool(x, spec)
            }
        }
        5 => {
            // residual: conv back to c channels, add (sometimes three-way), optional scale
            let a = g.conv(x, conv(c, 3).pad(1));
            let a = g.relu(a);
            if rng.random_bool(0.3) {
                let b = g.conv(x, conv(c, 1));
                g.add_all(&[x, a, b])
            } else {
                let a = if rng.random_bool(0.5) { g.scale(a, 0.2) } else { a };
                g.add(x, a)
            }
        }
        6 => {
            // inception-style branches, concatenated
            let a = g.conv(x, conv(4, 1));
            let b = g.conv(x, conv(6, 3).pad(1));
            let p = g.max_pool(x, pool(3).stride(1).pad(1));
            g.cat(&[a, b, p])
        }
        7 => {
            // squeeze-excite
            let r = (c / 2).max(1);
            let s = g.global_avg_pool(x);
            let s = g.conv(s, conv(r, 1));
            let s = g.relu(s);
            let s = g.conv(s, conv(c, 1));
            let s = g.sigmoid(s);
            g.mul(x, s)
        }
        8 if c.is_multiple_of(2) => g.channel_shuffle(x, 2),
        9 if c >= 2 => {
            let half = c / 2;
            let a = g.channel_slice(x, 0, half);
            let b = g.channel_slice(x, half, c);
            let b = g.conv(b, conv(c - half, 3).pad(1).depthwise());
            g.cat(&[b, a])
        }
        10 => g.lrn(x, *pick(rng, &[3, 5]), 1e-2, 0.75, *pick(rng, &[1.0, 2.0])),
        _ => {
            let act = pick(rng, &ACTIVATIONS).clone();
            g.act(x, &act)
        }
    }
}

/// A valid random net of 4 to 10 blocks on a small input, ending in a classifier.
pub fn random_net(seed: u64) -> Net {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = *pick(&mut rng, &[3, 4, 8]);
    let hw = *pick(&mut rng, &[12, 16, 19, 24]);
    let mut g = NetBuilder::new(&format!("random{seed}"), &[c, hw, hw]);
    let mut x = g.input();
    for i in 0..rng.random_range(4..=10) {
        x = g.scope(format!("b{i}"), |g| block(g, &mut rng, x));
    }
    let x = if rng.random_bool(0.5) { g.global_avg_pool(x) } else { x };
    let x = g.flatten(x);
    let x = if rng.random_bool(0.3) { g.dropout(x, 0.5) } else { x };
    let x = g.linear(x, 10);
    let x = if rng.random_bool(0.3) { g.softmax(x) } else { x };
    g.finish(x).unwrap_or_else(|e| panic!("random net {seed} is invalid: {e}"))
}
