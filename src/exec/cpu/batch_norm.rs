//! Batch-norm in training form (batch statistics) on the CPU, f32: one candle custom op
//! forward and one backward, each a pass or two over the tensor per channel.
//!
//! Why: written as candle ops (`mean_keepdim((0, 2, 3))`, broadcast subtract, multiply and
//! add), every reduction over `(0, 2, 3)` and every broadcast's backward (a sum over the
//! broadcast dims) takes candle's generic reduction, three divisions per element. On
//! ResNet-18 training at batch 4 that reduction alone was a fifth of the step.
//!
//! Forward, per channel over its `m = n * h * w` values: `mean`, `var` (biased, two passes
//! in f64), `inv = 1 / sqrt(var + eps)`, `y = (x - mean) * inv * gamma + beta`.
//! Backward, with `xhat = (x - mean) * inv` recomputed: `dbeta = sum(dy)`,
//! `dgamma = sum(dy * xhat)`, `dx = gamma * inv * (dy - dbeta / m - xhat * dgamma / m)`.
//! A ReLU or ReLU6 after the batch-norm can run inside it: the forward applies it, the
//! backward first zeroes `dy` where it cut (the pre-activation value recomputed with the
//! forward's own f32 arithmetic, so the mask is the forward's exactly).

use super::eltwise::act_of;
use super::isa::widest_vectors;
use super::scratch::{output_buffer, with_scratch};
use super::storage::contiguous_f32;
use super::threads::{SendPtr, Threads};
use super::Epilogue;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// `y = batch_norm(x; gamma, beta)` with the batch's statistics; `x` is `(n, c, h, w)`,
/// `gamma` and `beta` hold `c` values (any shape, e.g. `(1, c, 1, 1)`). The channels are
/// shared between `threads` (the packed convs' pool), forward and backward.
pub(crate) fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    act: Epilogue,
    threads: &'static Threads,
) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, Forward { eps, act, threads })
}

/// A training batch-norm as a candle op (its `bwd` is [`Forward::grads`]).
#[derive(Clone, Copy)]
pub(crate) struct Forward {
    pub eps: f64,
    /// The activation after the batch-norm, fused (its gradient masks `dy` in the backward).
    pub act: Epilogue,
    pub threads: &'static Threads,
}

impl Forward {
    /// The gradients `[dx, dgamma, dbeta]` of this batch-norm's inputs from its output's,
    /// `dy` (`x`, `gamma` and `beta` the forward's).
    pub(crate) fn grads(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, dy: &Tensor) -> Result<[Tensor; 3]> {
        let beta = match self.act {
            Epilogue::None => Vec::new(),
            _ => beta.flatten_all()?.to_vec1::<f32>()?,
        };
        let backward = Backward { eps: self.eps, act: self.act, beta, threads: self.threads };
        let packed = x.contiguous()?.apply_op3_no_bwd(&dy.contiguous()?, &gamma.contiguous()?, &backward)?;
        let (len, c) = (x.elem_count(), gamma.elem_count());
        let dx = packed.narrow(0, 0, len)?.reshape(x.shape())?;
        let dgamma = packed.narrow(0, len, c)?.reshape(gamma.shape())?;
        let dbeta = packed.narrow(0, len + c, c)?.reshape(gamma.shape())?;
        Ok([dx, dgamma, dbeta])
    }
}

/// The backward's three results in one buffer, `[dx (n c h w) | dgamma (c) | dbeta (c)]`.
struct Backward {
    eps: f64,
    act: Epilogue,
    /// beta's values, to recompute the activation's input where `act` is not `None`.
    beta: Vec<f32>,
    threads: &'static Threads,
}

/// Contiguous f32 data of a storage, or an error naming `what`.
fn f32s<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    contiguous_f32(s, l, &format!("batch-norm (training): {what}"))
}

/// `(n, c, h * w)` of a 4-D layout whose channel count matches `channels` values.
fn dims(l: &Layout, channels: usize) -> Result<(usize, usize, usize)> {
    let &[n, c, h, w] = l.dims() else { bail!("batch-norm (training): input of shape {:?}, not 4-D", l.dims()) };
    if c != channels {
        bail!("batch-norm (training): {c} channels against {channels} gamma/beta values");
    }
    Ok((n, c, h * w))
}

/// Channel `ch`'s `n` runs of `hw` values in an `(n, c, hw)` buffer.
#[inline(always)]
fn runs(x: &[f32], (n, c, hw): (usize, usize, usize), ch: usize) -> impl Iterator<Item = &[f32]> {
    (0..n).map(move |i| &x[(i * c + ch) * hw..][..hw])
}

/// Mean and `1 / sqrt(var + eps)` of channel `ch`.
#[inline(always)]
fn stats(x: &[f32], shape: (usize, usize, usize), ch: usize, eps: f64) -> (f64, f64) {
    let m = (shape.0 * shape.2) as f64;
    // Plain loops, no iterator adapters: core's `fold` would not inline into the caller's
    // `widest_vectors` instance and would run at the baseline ISA.
    let (mut total, mut squares) = (0.0, 0.0);
    for r in runs(x, shape, ch) {
        total += sum(r, r, |v, _| v);
    }
    let mean = total / m;
    for r in runs(x, shape, ch) {
        squares += sum(r, r, |v, _| (v - mean) * (v - mean));
    }
    let var = squares / m;
    (mean, 1.0 / (var + eps).sqrt())
}

/// The per-channel `(scale, shift)` in f32 of `y = x * scale + shift`, from the channel's
/// `(mean, 1 / sqrt(var + eps))`: the forward's arithmetic, which the backward repeats to
/// find where a fused activation passed.
#[inline(always)]
fn affine((mean, inv): (f64, f64), gamma: f32, beta: f32) -> (f32, f32) {
    let scale = inv * gamma as f64;
    (scale as f32, (beta as f64 - mean * scale) as f32)
}

/// `out = dy` where `act` passed the pre-activation value `x * scale + shift`, else 0 (a
/// loop per activation, so each vectorises).
#[inline(always)]
fn mask_gradient(x: &[f32], dy: &[f32], out: &mut [f32], scale: f32, shift: f32, act: Epilogue) {
    let pairs = out.iter_mut().zip(x.iter().zip(dy));
    match act {
        Epilogue::None => pairs.for_each(|(o, (_, &g))| *o = g),
        Epilogue::Relu => pairs.for_each(|(o, (&v, &g))| *o = if v * scale + shift > 0.0 { g } else { 0.0 }),
        Epilogue::Relu6 => pairs.for_each(|(o, (&v, &g))| {
            let y = v * scale + shift;
            *o = if y > 0.0 && y < 6.0 { g } else { 0.0 }
        }),
        // No mask (the backward refuses activations `masks_from_output` does not admit).
        _ => pairs.for_each(|(o, (_, &g))| *o = g),
    }
}

/// Independent partial sums in [`sum`]: one running sum is a chain of dependent adds
/// (four cycles each), these vectorise.
const PARTIALS: usize = 8;

/// `sum of f(a[i], b[i])` in f64, over `PARTIALS` partial sums.
#[inline(always)]
fn sum(a: &[f32], b: &[f32], f: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [0.0f64; PARTIALS];
    let (ca, cb) = (a.chunks_exact(PARTIALS), b.chunks_exact(PARTIALS));
    let mut tail = 0.0;
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += f(x as f64, y as f64);
    }
    for (x, y) in ca.zip(cb) {
        for (l, acc) in acc.iter_mut().enumerate() {
            *acc += f(x[l] as f64, y[l] as f64);
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Channel `ch`'s `n` runs of `hw` floats in the `(n, c, hw)` buffer at `out`.
///
/// Safety: `out` holds `n * c * hw` floats and no one else touches channel `ch`'s runs
/// while these slices live.
#[inline(always)]
unsafe fn runs_mut<'a>(
    out: SendPtr,
    (n, c, hw): (usize, usize, usize),
    ch: usize,
) -> impl Iterator<Item = &'a mut [f32]> {
    (0..n).map(move |i| unsafe { std::slice::from_raw_parts_mut(out.get().add((i * c + ch) * hw), hw) })
}

impl CustomOp3 for Forward {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, gamma, beta) = (f32s(xs, xl, "the input")?, f32s(gs, gl, "gamma")?, f32s(bs, bl, "beta")?);
        if beta.len() != gamma.len() {
            bail!("batch-norm (training): {} gamma against {} beta values", gamma.len(), beta.len());
        }
        let shape = dims(xl, gamma.len())?;
        let mut y = output_buffer(x.len()); // every channel's runs written below
        let out = SendPtr(y.as_mut_ptr());
        // SAFETY: `y` has the input's `n * c * hw` floats; each item writes its channel only.
        self.threads.for_each(gamma.len(), &|ch| unsafe {
            forward_channel(x, shape, ch, self.eps, gamma[ch], beta[ch], self.act, out)
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dgamma, dbeta] = self.grads(x, gamma, beta, dy)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

impl CustomOp3 for Backward {
    fn name(&self) -> &'static str {
        "batch-norm-train-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, dy, gamma) = (f32s(xs, xl, "the input")?, f32s(ds, dl, "the gradient")?, f32s(gs, gl, "gamma")?);
        if dy.len() != x.len() {
            bail!("batch-norm (training): a gradient of {} values for an input of {}", dy.len(), x.len());
        }
        let shape = dims(xl, gamma.len())?;
        let (len, c) = (x.len(), gamma.len());
        let mut out = output_buffer(len + 2 * c); // dx, dgamma, dbeta of every channel written below
        let dst = SendPtr(out.as_mut_ptr());
        if !self.act.masks_from_output() {
            bail!("batch-norm (training): no backward for a fused {:?} (its gradient needs its input)", self.act);
        }
        if self.act != Epilogue::None && self.beta.len() != c {
            bail!("batch-norm (training): {} beta values for {c} channels", self.beta.len());
        }
        let job = BackwardJob { x, dy, gamma, beta: &self.beta, shape, eps: self.eps, act: self.act, out: dst };
        // SAFETY: `out` holds `dx` then `dgamma` and `dbeta`; each item writes its channel only.
        self.threads.for_each(c, &|ch| unsafe { backward_channel(&job, ch) });
        Ok((CpuStorage::F32(out), Shape::from(len + 2 * c)))
    }
}

widest_vectors! {
    /// Channel `ch` of the forward: its batch statistics, then `act(x * scale + shift)`.
    ///
    /// Safety: `out` holds the input's `n * c * hw` floats, and no one else writes channel
    /// `ch`'s runs meanwhile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn forward_channel(
        x: &[f32],
        shape: (usize, usize, usize),
        ch: usize,
        eps: f64,
        gamma: f32,
        beta: f32,
        act: Epilogue,
        out: SendPtr,
    ) {
        let (scale, shift) = affine(stats(x, shape, ch, eps), gamma, beta);
        // SAFETY: the caller's.
        for (o, r) in unsafe { runs_mut(out, shape, ch) }.zip(runs(x, shape, ch)) {
            for (o, &v) in o.iter_mut().zip(r) {
                *o = act_of(v * scale + shift, act);
            }
        }
    }
}

/// What every channel of one backward reads, and where it writes.
struct BackwardJob<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    gamma: &'a [f32],
    /// beta, where a fused activation's input is recomputed (else empty).
    beta: &'a [f32],
    shape: (usize, usize, usize),
    eps: f64,
    act: Epilogue,
    /// `[dx (n c h w) | dgamma (c) | dbeta (c)]`.
    out: SendPtr,
}

widest_vectors! {
    /// Channel `ch` of the backward: `dx`'s runs, `dgamma` and `dbeta` of the channel.
    ///
    /// Safety: `job.out` holds `n * c * hw + 2 * c` floats, and no one else writes channel
    /// `ch`'s runs or entries meanwhile.
    unsafe fn backward_channel(job: &BackwardJob, ch: usize) {
        let BackwardJob { x, dy, gamma, beta, shape, eps, act, out } = *job;
        let ((n, c, hw), len) = (shape, x.len());
        let m = (n * hw) as f64;
        let (mean, inv) = stats(x, shape, ch, eps);
        let fused = act != Epilogue::None;
        with_scratch(if fused { n * hw } else { 0 }, |buf| {
            // A fused activation's gradient first: dy where the forward's pre-activation
            // value (the same f32 arithmetic) passed, else zero.
            if fused {
                let (scale, shift) = affine((mean, inv), gamma[ch], beta[ch]);
                for ((r, d), b) in runs(x, shape, ch).zip(runs(dy, shape, ch)).zip(buf.chunks_exact_mut(hw)) {
                    mask_gradient(r, d, b, scale, shift, act);
                }
            }
            let buf: &[f32] = buf;
            let grad = |i: usize| if fused { &buf[i * hw..][..hw] } else { &dy[(i * c + ch) * hw..][..hw] };
            let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
            for (i, r) in runs(x, shape, ch).enumerate() {
                sum_dy += sum(grad(i), grad(i), |g, _| g);
                sum_dy_xhat += sum(r, grad(i), |v, g| g * (v - mean)) * inv;
            }
            let k = gamma[ch] as f64 * inv;
            let (a, b) = (sum_dy / m, sum_dy_xhat / m);
            // SAFETY: the caller's.
            unsafe {
                for (i, (o, r)) in runs_mut(out, shape, ch).zip(runs(x, shape, ch)).enumerate() {
                    for ((o, &v), &g) in o.iter_mut().zip(r).zip(grad(i)) {
                        *o = (k * (g as f64 - a - (v as f64 - mean) * inv * b)) as f32;
                    }
                }
                *out.get().add(len + ch) = sum_dy_xhat as f32;
                *out.get().add(len + c + ch) = sum_dy as f32;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use std::sync::OnceLock;

    fn pool() -> &'static Threads {
        static POOL: OnceLock<Threads> = OnceLock::new();
        POOL.get_or_init(|| Threads::new(2).unwrap())
    }

    /// The same batch-norm in candle ops (as `exec::lower` writes it for other devices).
    fn reference(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
        let mean = x.mean_keepdim((0, 2, 3))?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim((0, 2, 3))?;
        let inv = (var + eps)?.sqrt()?.recip()?;
        centered.broadcast_mul(&inv)?.broadcast_mul(gamma)?.broadcast_add(beta)
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let (a, b) =
            (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
        a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs() / scale))
    }

    /// Output and the three gradients (of a weighted sum of the output, so each element's
    /// gradient differs) agree with the candle-ops form, alone and with a fused ReLU or
    /// ReLU6 (gamma scaled up there so some values pass 6).
    #[test]
    fn forward_and_gradients_match_candle_ops() {
        let dev = Device::Cpu;
        for act in [Epilogue::None, Epilogue::Relu, Epilogue::Relu6] {
            for &(n, c, h, w) in &[(2, 3, 5, 7), (1, 16, 4, 4), (4, 5, 1, 1), (3, 33, 6, 2)] {
                let x = Tensor::randn(0f32, 1.0, (n, c, h, w), &dev).unwrap().affine(3.0, 1.5).unwrap();
                let x = Var::from_tensor(&x).unwrap();
                let spread = if act == Epilogue::Relu6 { 4.0 } else { 1.0 };
                let gamma = Tensor::randn(1f32, 0.5, (1, c, 1, 1), &dev).unwrap().affine(spread, 0.0).unwrap();
                let gamma = Var::from_tensor(&gamma).unwrap();
                let beta = Var::from_tensor(&Tensor::randn(0f32, 0.5, (1, c, 1, 1), &dev).unwrap()).unwrap();
                let weights = Tensor::randn(0f32, 1.0, (n, c, h, w), &dev).unwrap();
                let run = |op: bool| {
                    let (xt, gt, bt) = (x.as_tensor(), gamma.as_tensor(), beta.as_tensor());
                    let y = if op {
                        batch_norm_train(xt, gt, bt, 1e-5, act, pool()).unwrap()
                    } else {
                        let y = reference(xt, gt, bt, 1e-5).unwrap();
                        match act {
                            Epilogue::None => y,
                            Epilogue::Relu => y.relu().unwrap(),
                            Epilogue::Relu6 => y.clamp(0f32, 6f32).unwrap(),
                            other => unreachable!("{other:?} is not a training activation"),
                        }
                    };
                    let grads = (&y * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                    let g = |v: &Var| grads.get(v.as_tensor()).unwrap().clone();
                    [y, g(&x), g(&gamma), g(&beta)]
                };
                let (got, want) = (run(true), run(false));
                for (what, (a, b)) in ["y", "dx", "dgamma", "dbeta"].iter().zip(got.iter().zip(&want)) {
                    assert_eq!(a.dims(), b.dims(), "{what} shape, {n}x{c}x{h}x{w}");
                    let err = max_rel(a, b);
                    assert!(err < 1e-4, "{what} of {n}x{c}x{h}x{w}, {act:?}: relative error {err}");
                }
            }
        }
    }

    #[test]
    fn wrong_inputs_are_errors_not_panics() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3, 4, 4), DType::F32, &dev).unwrap();
        let three = Tensor::ones((1, 3, 1, 1), DType::F32, &dev).unwrap();
        let four = Tensor::ones((1, 4, 1, 1), DType::F32, &dev).unwrap();
        let err = batch_norm_train(&x, &four, &four, 1e-5, Epilogue::None, pool()).unwrap_err().to_string();
        assert!(err.contains("3 channels against 4"), "{err}");
        let err = batch_norm_train(&x.to_dtype(DType::F64).unwrap(), &three, &three, 1e-5, Epilogue::None, pool())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not f32"), "{err}");
        let err = batch_norm_train(&x.flatten_from(2).unwrap(), &three, &three, 1e-5, Epilogue::None, pool())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not 4-D"), "{err}");
    }
}
