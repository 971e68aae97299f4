//! Convs in training on the CPU, f32: forward and both gradients on the packed kernels.
//!
//! candle's CPU conv backward takes the input gradient from `conv_transpose2d`, a dot
//! product per element, and the weight gradient from a `conv2d` of transposed tensors on
//! its AVX2 GEMM; with its forward that was most of a ResNet training step. Here:
//!
//! * **forward**: a [`PackedConv`] (no bias: the lowering adds it as a candle op), its
//!   weights re-packed each step ([`PackedConv::set_weights`]) so the B form timed on the
//!   first call of each shape (`tune.rs`) is kept.
//! * **input gradient**, three ways:
//!   - stride 1, padding within the kernel's reach: a packed conv of `dy` with the weights'
//!     in and out channels swapped (per group) and their taps flipped, padded by
//!     `dilation * (k - 1) - padding` on each side: Winograd and all;
//!   - any other dense or grouped conv: `dcol = W^T dy`, a packed 1x1 conv with
//!     `in / groups * kh * kw` outputs per group, then col2im adds each tap's plane into
//!     the input positions it read;
//!   - a strided depthwise conv: that sum directly, per channel.
//! * **weight gradient**: `weight_grad.rs` (`dy * im2col(x)^T` on the GEMM micro-kernel).

use super::scratch::output_buffer;
use super::threads::{SendPtr, Threads};
use super::{weight_grad, ConvSpec, Epilogue, PackedConv};
use crate::graph::Padding;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use std::sync::{Arc, Mutex};

/// One conv layer's packed state, kept across training steps.
pub struct TrainConv {
    spec: ConvSpec,
    threads: &'static Threads,
    /// The forward conv, made on the first step.
    forward: Mutex<Option<PackedConv>>,
    /// The input gradient's conv (flipped, or the 1x1 `W^T`), made on the first backward.
    input_grad: Mutex<Option<PackedConv>>,
}

impl std::fmt::Debug for TrainConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrainConv({:?})", self.spec)
    }
}

impl TrainConv {
    pub(crate) fn new(spec: ConvSpec, threads: &'static Threads) -> Arc<TrainConv> {
        Arc::new(TrainConv { spec, threads, forward: Mutex::new(None), input_grad: Mutex::new(None) })
    }
}

/// `conv(x, w)` (no bias) whose forward and backward run on the packed kernels.
pub(crate) fn conv2d_train(x: &Tensor, w: &Tensor, conv: &Arc<TrainConv>) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, Forward(conv.clone()))
}

/// The gradients of [`conv2d_train`]'s input (`dx`, where `want_dx`) and weight (where
/// `want_dw`) from its output's, `dy`.
pub(crate) fn conv2d_train_grads(
    x: &Tensor,
    w: &Tensor,
    conv: &Arc<TrainConv>,
    dy: &Tensor,
    want_dx: bool,
    want_dw: bool,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let dy = dy.contiguous()?;
    let dx = if want_dx {
        let (_, _, h, wd) = x.dims4()?;
        Some(dy.apply_op2_no_bwd(&w.contiguous()?, &InputGrad(conv.clone(), [h, wd]))?)
    } else {
        None
    };
    let dw = if want_dw { Some(x.contiguous()?.apply_op2_no_bwd(&dy, &WeightGrad(conv.clone()))?) } else { None };
    Ok((dx, dw))
}

struct Forward(Arc<TrainConv>);
/// `(dy, w) -> dx` for an input of `[height, width]`.
struct InputGrad(Arc<TrainConv>, [usize; 2]);
/// `(x, dy) -> dw`.
struct WeightGrad(Arc<TrainConv>);

/// How the input gradient is computed (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputGradForm {
    Flipped,
    Col2im,
    Depthwise,
}

fn input_grad_form(s: &ConvSpec) -> InputGradForm {
    let reach = |k: usize, d: usize| d * (k - 1);
    let (rh, rw) = (reach(s.kernel[0], s.dilation[0]), reach(s.kernel[1], s.dilation[1]));
    let p = s.padding;
    if s.stride == [1, 1] && p.top.max(p.bottom) <= rh && p.left.max(p.right) <= rw {
        InputGradForm::Flipped
    } else if s.is_depthwise() {
        InputGradForm::Depthwise
    } else {
        InputGradForm::Col2im
    }
}

/// Contiguous f32 data of a storage, or an error naming `what`.
fn f32s<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    super::contiguous_f32(s, l, &format!("conv (training): {what}"))
}

fn dims4(l: &Layout, what: &str) -> Result<[usize; 4]> {
    match *l.dims() {
        [n, c, h, w] => Ok([n, c, h, w]),
        ref other => bail!("conv (training): {what} has shape {other:?}, not 4-D"),
    }
}

/// Check `w` has the spec's weight shape.
fn check_weight(spec: &ConvSpec, l: &Layout) -> Result<()> {
    let want = [spec.out_channels, spec.in_channels / spec.groups, spec.kernel[0], spec.kernel[1]];
    if l.dims() != want {
        bail!("conv (training): weight of shape {:?}, the conv needs {want:?}", l.dims());
    }
    Ok(())
}

/// Make `slot`'s conv on first use, else give it the new weights; then run `f` on it.
fn with_conv<R>(
    slot: &Mutex<Option<PackedConv>>,
    weight: &[f32],
    spec: ConvSpec,
    threads: &Threads,
    f: impl FnOnce(&PackedConv) -> Result<R>,
) -> Result<R> {
    let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
    match guard.as_mut() {
        Some(conv) => conv.set_weights(weight, threads).map_err(candle_core::Error::wrap)?,
        None => *guard = Some(PackedConv::new(weight, None, spec, Epilogue::None).map_err(candle_core::Error::wrap)?),
    }
    f(guard.as_ref().expect("set above"))
}

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "conv2d-train"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let st = &*self.0;
        let (x, w) = (f32s(xs, xl, "the input")?, f32s(ws, wl, "the weight")?);
        let [n, c, h, wd] = dims4(xl, "the input")?;
        if c != st.spec.in_channels {
            bail!("conv (training): {c} input channels, the conv takes {}", st.spec.in_channels);
        }
        check_weight(&st.spec, wl)?;
        let (oh, ow) = st.spec.output_hw(h, wd).map_err(candle_core::Error::wrap)?;
        let mut y = output_buffer(n * st.spec.out_channels * oh * ow);
        with_conv(&st.forward, w, st.spec, st.threads, |conv| {
            conv.run(x, n, h, wd, &mut y, st.threads).map_err(candle_core::Error::wrap)
        })?;
        Ok((CpuStorage::F32(y), (n, st.spec.out_channels, oh, ow).into()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        conv2d_train_grads(x, w, &self.0, dy, x.track_op(), w.track_op())
    }
}

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "conv2d-train-input-grad"
    }

    fn cpu_fwd(&self, ds: &CpuStorage, dl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (st, [h, w]) = (&*self.0, self.1);
        let s = st.spec;
        let (dy, weight) = (f32s(ds, dl, "the output gradient")?, f32s(ws, wl, "the weight")?);
        check_weight(&s, wl)?;
        let [n, o, oh, ow] = dims4(dl, "the output gradient")?;
        if o != s.out_channels || s.output_hw(h, w).ok() != Some((oh, ow)) {
            bail!("conv (training): an output gradient of {:?} for an input of {h}x{w}", dl.dims());
        }
        let len = n * s.in_channels * h * w;
        // The flipped conv writes every element; col2im and the depthwise sum add into zeros.
        let form = input_grad_form(&s);
        let mut dx = if form == InputGradForm::Flipped { output_buffer(len) } else { vec![0.0f32; len] };
        match form {
            InputGradForm::Flipped => {
                let spec = flipped_spec(&s);
                with_conv(&st.input_grad, &flipped_weights(&s, weight, st.threads), spec, st.threads, |conv| {
                    conv.run(dy, n, oh, ow, &mut dx, st.threads).map_err(candle_core::Error::wrap)
                })?;
            }
            InputGradForm::Col2im => {
                let spec = col_spec(&s);
                let mut dcol = output_buffer(n * spec.out_channels * oh * ow);
                with_conv(&st.input_grad, &col_weights(&s, weight, st.threads), spec, st.threads, |conv| {
                    conv.run(dy, n, oh, ow, &mut dcol, st.threads).map_err(candle_core::Error::wrap)
                })?;
                col2im(&s, &dcol, n, [h, w], [oh, ow], &mut dx, st.threads);
            }
            InputGradForm::Depthwise => depthwise_input_grad(&s, dy, weight, n, [h, w], [oh, ow], &mut dx, st.threads),
        }
        Ok((CpuStorage::F32(dx), (n, s.in_channels, h, w).into()))
    }
}

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "conv2d-train-weight-grad"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ds: &CpuStorage, dl: &Layout) -> Result<(CpuStorage, Shape)> {
        let st = &*self.0;
        let s = st.spec;
        let (x, dy) = (f32s(xs, xl, "the input")?, f32s(ds, dl, "the output gradient")?);
        let [n, _, h, w] = dims4(xl, "the input")?;
        // The first pixel block overwrites every weight (`weight_grad.rs`).
        let mut dw = output_buffer(s.weight_len());
        weight_grad(&s, super::Isa::detect(), x, dy, n, h, w, &mut dw, st.threads).map_err(candle_core::Error::wrap)?;
        let shape = (s.out_channels, s.in_channels / s.groups, s.kernel[0], s.kernel[1]);
        Ok((CpuStorage::F32(dw), shape.into()))
    }
}

/// The flipped conv's spec: channels swapped, stride 1, padding `reach - padding`.
fn flipped_spec(s: &ConvSpec) -> ConvSpec {
    let (rh, rw) = (s.dilation[0] * (s.kernel[0] - 1), s.dilation[1] * (s.kernel[1] - 1));
    let p = s.padding;
    ConvSpec {
        in_channels: s.out_channels,
        out_channels: s.in_channels,
        padding: Padding { top: rh - p.top, bottom: rh - p.bottom, left: rw - p.left, right: rw - p.right },
        ..*s
    }
}

/// `W'[g * cg + c][m][kh - 1 - i][kw - 1 - j] = W[g * mg + m][c][i][j]`, one output
/// channel of `W'` per item on `threads`.
fn flipped_weights(s: &ConvSpec, w: &[f32], threads: &Threads) -> Vec<f32> {
    let (g, [kh, kw]) = (s.groups, s.kernel);
    let (cg, mg, taps) = (s.in_channels / g, s.out_channels / g, kh * kw);
    let mut out = output_buffer(w.len()); // every entry written below
    let dst = SendPtr(out.as_mut_ptr());
    threads.for_each_run(g * cg, &|rows| {
        for row in rows {
            let (grp, c) = (row / cg, row % cg);
            // SAFETY: row `row` of `W'` (mg * taps floats) is written by this item only.
            let out = unsafe { std::slice::from_raw_parts_mut(dst.get().add(row * mg * taps), mg * taps) };
            for m in 0..mg {
                let src = &w[((grp * mg + m) * cg + c) * taps..][..taps];
                for (t, &v) in out[m * taps..][..taps].iter_mut().rev().zip(src) {
                    *t = v;
                }
            }
        }
    });
    out
}

/// The 1x1 conv giving each output pixel's contribution to every tap: `out / groups`
/// inputs, `in / groups * kh * kw` outputs per group.
fn col_spec(s: &ConvSpec) -> ConvSpec {
    let taps = s.kernel[0] * s.kernel[1];
    ConvSpec::new(s.out_channels, s.in_channels * taps, [1, 1]).with_groups(s.groups)
}

/// `W''[g][(c, i, j)][m] = W[g * mg + m][c][i][j]`, a group's rows shared out on `threads`.
fn col_weights(s: &ConvSpec, w: &[f32], threads: &Threads) -> Vec<f32> {
    let g = s.groups;
    let (k, mg) = (s.in_channels / g * s.kernel[0] * s.kernel[1], s.out_channels / g);
    let mut out = output_buffer(w.len()); // every entry written below
    let dst = SendPtr(out.as_mut_ptr());
    threads.for_each_run(g * k, &|rows| {
        for row in rows {
            let (grp, kk) = (row / k, row % k);
            // SAFETY: row `row` of `W''` (mg floats) is written by this item only.
            let out = unsafe { std::slice::from_raw_parts_mut(dst.get().add(row * mg), mg) };
            for (m, o) in out.iter_mut().enumerate() {
                *o = w[(grp * mg + m) * k + kk];
            }
        }
    });
    out
}

/// Input position `(y, x)` read by output `(oy, ox)` at tap `(i, j)`, if inside.
fn tap_source(s: &ConvSpec, [h, w]: [usize; 2], [oy, ox]: [usize; 2], [i, j]: [usize; 2]) -> Option<[usize; 2]> {
    let y = (oy * s.stride[0] + i * s.dilation[0]).checked_sub(s.padding.top).filter(|&y| y < h)?;
    let x = (ox * s.stride[1] + j * s.dilation[1]).checked_sub(s.padding.left).filter(|&x| x < w)?;
    Some([y, x])
}

/// `dx[n][c][tap source] += dcol[n][(c, i, j)][oy][ox]`.
fn col2im(s: &ConvSpec, dcol: &[f32], n: usize, hw: [usize; 2], ohw: [usize; 2], dx: &mut [f32], threads: &Threads) {
    let [kh, kw] = s.kernel;
    let out_plane = ohw[0] * ohw[1];
    scatter_taps(s, n, hw, ohw, dx, threads, |item, i, j, o| dcol[((item * kh + i) * kw + j) * out_plane + o]);
}

/// A depthwise conv's input gradient: `dx[n][c][tap source] += w[c][i][j] * dy[n][c][o]`.
#[allow(clippy::too_many_arguments)]
fn depthwise_input_grad(
    s: &ConvSpec,
    dy: &[f32],
    weight: &[f32],
    n: usize,
    hw: [usize; 2],
    ohw: [usize; 2],
    dx: &mut [f32],
    threads: &Threads,
) {
    let [kh, kw] = s.kernel;
    let out_plane = ohw[0] * ohw[1];
    scatter_taps(s, n, hw, ohw, dx, threads, |item, i, j, o| {
        weight[((item % s.in_channels) * kh + i) * kw + j] * dy[item * out_plane + o]
    });
}

/// `dx[plane][tap source] += value(plane, i, j, output pixel)` for every tap `(i, j)` and
/// output pixel whose tap reads inside the input: one input plane (image, channel) per work
/// item.
fn scatter_taps(
    s: &ConvSpec,
    n: usize,
    hw: [usize; 2],
    [oh, ow]: [usize; 2],
    dx: &mut [f32],
    threads: &Threads,
    value: impl Fn(usize, usize, usize, usize) -> f32 + Sync,
) {
    let [kh, kw] = s.kernel;
    let plane = hw[0] * hw[1];
    let out = SendPtr(dx.as_mut_ptr());
    threads.for_each(n * s.in_channels, &|item| {
        // SAFETY: plane `item` of dx is written by this item only.
        let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(item * plane), plane) };
        for i in 0..kh {
            for j in 0..kw {
                for oy in 0..oh {
                    for ox in 0..ow {
                        if let Some([y, x]) = tap_source(s, hw, [oy, ox], [i, j]) {
                            dst[y * hw[1] + x] += value(item, i, j, oy * ow + ox);
                        }
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
        a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs() / scale))
    }

    /// candle's own conv2d, with asymmetric padding as an explicit pad (reference only).
    fn candle_conv(x: &Tensor, w: &Tensor, s: &ConvSpec) -> Tensor {
        let p = s.padding;
        let x = x.pad_with_zeros(2, p.top, p.bottom).unwrap().pad_with_zeros(3, p.left, p.right).unwrap();
        assert_eq!(s.stride[0], s.stride[1]);
        assert_eq!(s.dilation[0], s.dilation[1]);
        let (st, d) = (s.stride[0], s.dilation[0]);
        // Only the rows and columns the kernel reaches: candle's backward sizes the input
        // gradient from the height alone.
        let reach = |n: usize, k: usize| (n - (k - 1) * d - 1) / st * st + (k - 1) * d + 1;
        let (hp, wp) = (x.dim(2).unwrap(), x.dim(3).unwrap());
        let x = x.narrow(2, 0, reach(hp, s.kernel[0])).unwrap().narrow(3, 0, reach(wp, s.kernel[1])).unwrap();
        x.conv2d(w, 0, st, d, s.groups).unwrap()
    }

    /// Output and both gradients (of a weighted sum of the output) agree with candle's
    /// conv and its backward, for each input-gradient form: flipped (1x1, padded 3x3,
    /// dilated, grouped, depthwise, asymmetric padding), col2im (strided 3x3 and 1x1, a 7x7
    /// stem, padding past the reach, grouped strided) and strided depthwise.
    #[test]
    fn output_and_gradients_match_candle() {
        let dev = Device::Cpu;
        let threads: &'static Threads = Box::leak(Box::new(Threads::new(2).unwrap()));
        let cases = [
            // (spec, n, h, w, form)
            (ConvSpec::new(8, 5, [1, 1]), 2, 7, 9, InputGradForm::Flipped),
            (ConvSpec::new(6, 16, [3, 3]).with_padding(1, 1, 1, 1), 2, 9, 8, InputGradForm::Flipped),
            (
                ConvSpec::new(4, 3, [3, 3]).with_padding(2, 2, 2, 2).with_dilation(2, 2),
                2,
                10,
                9,
                InputGradForm::Flipped,
            ),
            (ConvSpec::new(6, 9, [3, 3]).with_padding(1, 1, 1, 1).with_groups(3), 1, 8, 8, InputGradForm::Flipped),
            (ConvSpec::new(8, 8, [3, 3]).with_padding(1, 1, 1, 1).with_groups(8), 2, 7, 7, InputGradForm::Flipped),
            (ConvSpec::new(3, 4, [3, 3]).with_padding(0, 2, 1, 0), 2, 6, 7, InputGradForm::Flipped),
            (ConvSpec::new(5, 13, [3, 3]).with_padding(1, 1, 1, 1).with_stride(2, 2), 2, 9, 10, InputGradForm::Col2im),
            (ConvSpec::new(7, 12, [1, 1]).with_stride(2, 2), 2, 9, 9, InputGradForm::Col2im),
            (ConvSpec::new(3, 8, [7, 7]).with_padding(3, 3, 3, 3).with_stride(2, 2), 1, 16, 15, InputGradForm::Col2im),
            (ConvSpec::new(4, 6, [1, 1]).with_padding(1, 1, 1, 1), 1, 5, 5, InputGradForm::Col2im),
            (
                ConvSpec::new(6, 6, [3, 3]).with_padding(1, 1, 1, 1).with_stride(2, 2).with_groups(2),
                2,
                8,
                8,
                InputGradForm::Col2im,
            ),
            (
                ConvSpec::new(6, 6, [3, 3]).with_padding(1, 1, 1, 1).with_stride(2, 2).with_groups(6),
                2,
                9,
                9,
                InputGradForm::Depthwise,
            ),
        ];
        for (spec, n, h, w, form) in cases {
            assert_eq!(input_grad_form(&spec), form, "{spec:?}");
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, spec.in_channels, h, w), &dev).unwrap()).unwrap();
            let wshape = (spec.out_channels, spec.in_channels / spec.groups, spec.kernel[0], spec.kernel[1]);
            let wt = Var::from_tensor(&Tensor::randn(0f32, 0.5, wshape, &dev).unwrap()).unwrap();
            let conv = TrainConv::new(spec, threads);
            let run = |ours: bool| {
                let y = if ours {
                    conv2d_train(x.as_tensor(), wt.as_tensor(), &conv).unwrap()
                } else {
                    candle_conv(x.as_tensor(), wt.as_tensor(), &spec)
                };
                let weights = Tensor::ones(y.shape(), candle_core::DType::F32, &dev).unwrap().cumsum(3).unwrap();
                let grads = (&y * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                [y, grads.get(x.as_tensor()).unwrap().clone(), grads.get(wt.as_tensor()).unwrap().clone()]
            };
            // Twice: the second step re-packs the weights into the kept convs.
            for step in 0..2 {
                let (got, want) = (run(true), run(false));
                for (what, (a, b)) in ["y", "dx", "dw"].iter().zip(got.iter().zip(&want)) {
                    assert_eq!(a.dims(), b.dims(), "{what}: {spec:?}");
                    let err = max_rel(a, b);
                    assert!(err < 1e-5, "{what} of {spec:?} on {n}x{h}x{w}, step {step}: relative error {err}");
                }
                wt.set(&(wt.as_tensor() * 0.5).unwrap()).unwrap();
            }
        }
    }

    #[test]
    fn a_wrong_input_is_an_error_not_a_panic() {
        let threads: &'static Threads = Box::leak(Box::new(Threads::single()));
        let conv = TrainConv::new(ConvSpec::new(3, 4, [3, 3]), threads);
        let dev = Device::Cpu;
        let w = Tensor::zeros((4, 3, 3, 3), candle_core::DType::F32, &dev).unwrap();
        let x = Tensor::zeros((1, 2, 5, 5), candle_core::DType::F32, &dev).unwrap();
        let e = conv2d_train(&x, &w, &conv).unwrap_err().to_string();
        assert!(e.contains("2 input channels"), "{e}");
        let x = Tensor::zeros((1, 3, 2, 2), candle_core::DType::F32, &dev).unwrap();
        assert!(conv2d_train(&x, &w, &conv).is_err());
        let x = Tensor::zeros((1, 3, 5, 5), candle_core::DType::F32, &dev).unwrap();
        let w = Tensor::zeros((4, 3, 1, 1), candle_core::DType::F32, &dev).unwrap();
        let e = conv2d_train(&x, &w, &conv).unwrap_err().to_string();
        assert!(e.contains("weight of shape"), "{e}");
    }
}
