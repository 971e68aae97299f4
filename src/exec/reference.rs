//! A naive interpreter of the IR: plain loops over host arrays, accumulating in f64,
//! written straight from each op's definition (PyTorch semantics). Slow and obviously
//! right; the candle backend and the ONNX export are tested against it.

use crate::graph::{Net, Node, Op, Pool2d};
use crate::weights::{HostTensor, NodeParams, Weights};

/// Dense NCHW (or N x F) values in f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Array {
    fn zeros(shape: Vec<usize>) -> Array {
        let n = shape.iter().product();
        Array { shape, data: vec![0.0; n] }
    }

    pub fn from_host(t: &HostTensor) -> Array {
        Array { shape: t.shape.clone(), data: t.data.iter().map(|&v| v as f64).collect() }
    }

    fn nchw(&self) -> (usize, usize, usize, usize) {
        match self.shape.as_slice() {
            [n, c, h, w] => (*n, *c, *h, *w),
            [n, c] => (*n, *c, 1, 1),
            _ => (self.shape[0], self.data.len() / self.shape[0].max(1), 1, 1),
        }
    }

    fn at(&self, n: usize, c: usize, h: usize, w: usize) -> f64 {
        let (_, cc, hh, ww) = self.nchw();
        self.data[((n * cc + c) * hh + h) * ww + w]
    }
}

/// Run `net` on `input` (`[N, ...per-sample]`); returns every node's output.
pub fn run(net: &Net, weights: &Weights, input: &HostTensor) -> Vec<Array> {
    let mut values: Vec<Array> = Vec::with_capacity(net.nodes.len());
    for node in &net.nodes {
        let inputs: Vec<&Array> = node.inputs.iter().map(|&i| &values[i]).collect();
        let out = eval(node, &inputs, weights.get(&node.name), input);
        values.push(out);
    }
    values
}

fn map(x: &Array, f: impl Fn(f64) -> f64) -> Array {
    Array { shape: x.shape.clone(), data: x.data.iter().map(|&v| f(v)).collect() }
}

fn eval(node: &Node, inputs: &[&Array], params: Option<&NodeParams>, input: &HostTensor) -> Array {
    let x = inputs.first().copied();
    match &node.op {
        Op::Input { .. } => Array::from_host(input),
        Op::Conv2d(c) => {
            let Some(NodeParams::Conv { weight, bias }) = params else { panic!("{}: no conv weights", node.name) };
            let x = x.unwrap();
            let (n, cin, h, w) = x.nchw();
            let (cout, oh, ow) = (c.out_channels, node.shape.dims()[1], node.shape.dims()[2]);
            let (cin_g, cout_g) = (cin / c.groups, cout / c.groups);
            let mut out = Array::zeros(vec![n, cout, oh, ow]);
            for b in 0..n {
                for o in 0..cout {
                    let g = o / cout_g;
                    for y in 0..oh {
                        for xx in 0..ow {
                            let mut acc = bias.as_ref().map_or(0.0, |b| b.data[o] as f64);
                            for i in 0..cin_g {
                                for ky in 0..c.kernel[0] {
                                    let iy = (y * c.stride[0] + ky * c.dilation[0]) as isize - c.padding.top as isize;
                                    if iy < 0 || iy >= h as isize {
                                        continue;
                                    }
                                    for kx in 0..c.kernel[1] {
                                        let ix =
                                            (xx * c.stride[1] + kx * c.dilation[1]) as isize - c.padding.left as isize;
                                        if ix < 0 || ix >= w as isize {
                                            continue;
                                        }
                                        let wv =
                                            weight.data[((o * cin_g + i) * c.kernel[0] + ky) * c.kernel[1] + kx] as f64;
                                        acc += wv * x.at(b, g * cin_g + i, iy as usize, ix as usize);
                                    }
                                }
                            }
                            out.data[((b * cout + o) * oh + y) * ow + xx] = acc;
                        }
                    }
                }
            }
            out
        }
        Op::BatchNorm { .. } => {
            let Some(NodeParams::BatchNorm { gamma, beta, mean, var, eps }) = params else { panic!() };
            let x = x.unwrap();
            let (_, c, h, w) = x.nchw();
            let mut out = x.clone();
            for (i, v) in out.data.iter_mut().enumerate() {
                let ch = (i / (h * w)) % c;
                let inv = 1.0 / (var.data[ch] as f64 + eps).sqrt();
                *v = (*v - mean.data[ch] as f64) * inv * gamma.data[ch] as f64 + beta.data[ch] as f64;
            }
            out
        }
        Op::Relu => map(x.unwrap(), |v| v.max(0.0)),
        Op::Relu6 => map(x.unwrap(), |v| v.clamp(0.0, 6.0)),
        Op::Sigmoid => map(x.unwrap(), sigmoid),
        Op::Tanh => map(x.unwrap(), f64::tanh),
        Op::Silu => map(x.unwrap(), |v| v * sigmoid(v)),
        Op::HardSigmoid => map(x.unwrap(), |v| (v + 3.0).clamp(0.0, 6.0) / 6.0),
        Op::HardSwish => map(x.unwrap(), |v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0),
        Op::Gelu => map(x.unwrap(), |v| 0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2))),
        Op::Scale { factor } => map(x.unwrap(), |v| v * factor),
        Op::Dropout { .. } => x.unwrap().clone(),
        Op::MaxPool2d(p) => pool(node, x.unwrap(), p, true),
        Op::AvgPool2d(p) => pool(node, x.unwrap(), p, false),
        Op::GlobalAvgPool => {
            let x = x.unwrap();
            let (n, c, h, w) = x.nchw();
            let mut out = Array::zeros(vec![n, c, 1, 1]);
            for b in 0..n {
                for ch in 0..c {
                    let s: f64 = (0..h * w).map(|i| x.data[(b * c + ch) * h * w + i]).sum();
                    out.data[b * c + ch] = s / (h * w) as f64;
                }
            }
            out
        }
        Op::Lrn { size, alpha, beta, k } => {
            let x = x.unwrap();
            let (n, c, h, w) = x.nchw();
            let mut out = x.clone();
            let (before, after) = (size / 2, (size - 1) / 2);
            for b in 0..n {
                for ch in 0..c {
                    for p in 0..h * w {
                        let lo = ch.saturating_sub(before);
                        let hi = (ch + after).min(c - 1);
                        let sq: f64 = (lo..=hi).map(|j| x.data[(b * c + j) * h * w + p].powi(2)).sum();
                        let i = (b * c + ch) * h * w + p;
                        out.data[i] = x.data[i] / (k + alpha / *size as f64 * sq).powf(*beta);
                    }
                }
            }
            out
        }
        Op::Add => {
            let mut out = inputs[0].clone();
            for other in &inputs[1..] {
                for (o, v) in out.data.iter_mut().zip(&other.data) {
                    *o += v;
                }
            }
            out
        }
        Op::Mul => {
            let (a, b) = (inputs[0], inputs[1]);
            let shape: Vec<usize> = a.shape.iter().zip(&b.shape).map(|(&p, &q)| p.max(q)).collect();
            let mut out = Array::zeros(shape.clone());
            let index = |arr: &Array, flat: usize| -> f64 {
                // broadcast: size-1 axes repeat
                let mut rest = flat;
                let mut offset = 0;
                let mut stride = 1;
                for (d, &dim) in shape.iter().enumerate().rev() {
                    let coord = rest % dim;
                    rest /= dim;
                    let own = arr.shape[d];
                    offset += if own == 1 { 0 } else { coord } * stride;
                    stride *= own;
                }
                arr.data[offset]
            };
            for i in 0..out.data.len() {
                out.data[i] = index(a, i) * index(b, i);
            }
            out
        }
        Op::Concat { axis } => {
            let outer: usize = inputs[0].shape[..*axis].iter().product();
            let mut shape = inputs[0].shape.clone();
            shape[*axis] = inputs.iter().map(|a| a.shape[*axis]).sum();
            let mut data = Vec::with_capacity(shape.iter().product());
            for o in 0..outer {
                for a in inputs {
                    let chunk: usize = a.shape[*axis..].iter().product();
                    data.extend_from_slice(&a.data[o * chunk..(o + 1) * chunk]);
                }
            }
            Array { shape, data }
        }
        Op::ChannelShuffle { groups } => {
            let x = x.unwrap();
            let (n, c, h, w) = x.nchw();
            let per = c / groups;
            let mut out = x.clone();
            for b in 0..n {
                for ch in 0..c {
                    // output channel ch = input channel (ch % groups) * per + ch / groups
                    let src = (ch % groups) * per + ch / groups;
                    for p in 0..h * w {
                        out.data[(b * c + ch) * h * w + p] = x.data[(b * c + src) * h * w + p];
                    }
                }
            }
            out
        }
        Op::ChannelSlice { start, end } => {
            let x = x.unwrap();
            let n = x.shape[0];
            let c = x.shape[1];
            let inner: usize = x.shape[2..].iter().product();
            let mut shape = x.shape.clone();
            shape[1] = end - start;
            let mut data = Vec::new();
            for b in 0..n {
                data.extend_from_slice(&x.data[(b * c + start) * inner..(b * c + end) * inner]);
            }
            Array { shape, data }
        }
        Op::Flatten => {
            let x = x.unwrap();
            let n = x.shape[0];
            Array { shape: vec![n, x.data.len() / n], data: x.data.clone() }
        }
        Op::Linear { out_features, .. } => {
            let Some(NodeParams::Linear { weight, bias }) = params else { panic!() };
            let x = x.unwrap();
            let (n, fin) = (x.shape[0], x.data.len() / x.shape[0]);
            let mut out = Array::zeros(vec![n, *out_features]);
            for b in 0..n {
                for o in 0..*out_features {
                    let mut acc = bias.as_ref().map_or(0.0, |b| b.data[o] as f64);
                    for i in 0..fin {
                        acc += weight.data[o * fin + i] as f64 * x.data[b * fin + i];
                    }
                    out.data[b * out_features + o] = acc;
                }
            }
            out
        }
        Op::Softmax => {
            let x = x.unwrap();
            let (n, c, h, w) = x.nchw();
            let mut out = x.clone();
            for b in 0..n {
                for p in 0..h * w {
                    let idx = |ch: usize| (b * c + ch) * h * w + p;
                    let max = (0..c).map(|ch| x.data[idx(ch)]).fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = (0..c).map(|ch| (x.data[idx(ch)] - max).exp()).sum();
                    for ch in 0..c {
                        out.data[idx(ch)] = (x.data[idx(ch)] - max).exp() / sum;
                    }
                }
            }
            out
        }
    }
}

fn pool(node: &Node, x: &Array, p: &Pool2d, max: bool) -> Array {
    let (n, c, h, w) = x.nchw();
    let (oh, ow) = (node.shape.dims()[1], node.shape.dims()[2]);
    let mut out = Array::zeros(vec![n, c, oh, ow]);
    for b in 0..n {
        for ch in 0..c {
            for y in 0..oh {
                for xx in 0..ow {
                    let y0 = (y * p.stride[0]) as isize - p.padding.top as isize;
                    let x0 = (xx * p.stride[1]) as isize - p.padding.left as isize;
                    // PyTorch: the divisor with padding counts the window clipped to the padded
                    // input; without it, only the valid elements.
                    let y1 = (y0 + p.kernel[0] as isize).min((h + p.padding.bottom) as isize);
                    let x1 = (x0 + p.kernel[1] as isize).min((w + p.padding.right) as isize);
                    let padded_count = ((y1 - y0) * (x1 - x0)) as f64;
                    let (mut acc, mut valid) = (if max { f64::NEG_INFINITY } else { 0.0 }, 0usize);
                    for iy in y0.max(0)..y1.min(h as isize) {
                        for ix in x0.max(0)..x1.min(w as isize) {
                            let v = x.at(b, ch, iy as usize, ix as usize);
                            acc = if max { acc.max(v) } else { acc + v };
                            valid += 1;
                        }
                    }
                    let v = if max {
                        acc
                    } else if p.count_include_pad {
                        acc / padded_count
                    } else {
                        acc / valid.max(1) as f64
                    };
                    out.data[((b * c + ch) * oh + y) * ow + xx] = v;
                }
            }
        }
    }
    out
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// erf from Numerical Recipes' `erfcc` (fractional error under 1.2e-7 everywhere):
/// enough to check f32 results, and independent of the code under test.
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    if x >= 0.0 {
        1.0 - r
    } else {
        r - 1.0
    }
}
