//! Elementwise ops the lowering fuses at inference, spread over the conv threads: `a + b`,
//! then an [`Epilogue`] (the residual add and ReLU of a ResNet block in one pass instead of
//! two), and a batch-norm that cannot fold into a conv (`x * scale + shift` per channel,
//! DenseNet's BN-ReLU after a concatenation) with its activation.

use super::isa::widest_vectors;
use super::kernels::{activate_in_place, activate_slice};
use super::Isa;
use super::{ConvError, Epilogue, Threads};

/// Elements per work item.
const CHUNK: usize = 1 << 14;
/// Below this many elements, one thread does it all.
const SERIAL: usize = 1 << 16;

widest_vectors! {
    fn add_act_serial(a: &[f32], b: &[f32], out: &mut [f32], act: Epilogue) {
        for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
            *o = act_of(x + y, act);
        }
    }
}

widest_vectors! {
    /// `dst = act(src * a + b)`.
    pub(super) fn affine_act_serial(src: &[f32], a: f32, b: f32, dst: &mut [f32], act: Epilogue) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = act_of(v * a + b, act);
        }
    }
}

widest_vectors! {
    fn act_grad_serial(y: &[f32], dy: &[f32], out: &mut [f32], act: Epilogue) {
        for (o, (&y, &g)) in out.iter_mut().zip(y.iter().zip(dy)) {
            *o = if act_passes(y, act) { g } else { 0.0 };
        }
    }
}

/// `out = dy` where the activation's output `y` shows it passed its input, else 0: an
/// [`Epilogue`]'s gradient, for training (ReLU: `y > 0`, PyTorch's convention at 0).
pub fn act_grad(y: &[f32], dy: &[f32], out: &mut [f32], act: Epilogue, threads: &Threads) -> Result<(), ConvError> {
    if !act.masks_from_output() {
        return Err(ConvError::new(format!("no gradient of {act:?} from its output alone (it needs its input)")));
    }
    binary(y, dy, out, "activation gradient of", act, threads, act_grad_serial)
}

/// `serial(a, b, out, act)` over `CHUNK`-element pieces on `threads` (one thread below
/// `SERIAL` elements), all three of one length (else an error naming `what`).
fn binary(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    what: &str,
    act: Epilogue,
    threads: &Threads,
    serial: fn(&[f32], &[f32], &mut [f32], Epilogue),
) -> Result<(), ConvError> {
    if a.len() != out.len() || b.len() != out.len() {
        return Err(ConvError::new(format!(
            "{what} {} and {} elements into {}: the lengths must agree",
            a.len(),
            b.len(),
            out.len()
        )));
    }
    if out.len() < SERIAL || threads.count() == 1 {
        serial(a, b, out, act);
        return Ok(());
    }
    threads.for_each_chunk(out, CHUNK, &|i, o| {
        let (start, end) = (i * CHUNK, i * CHUNK + o.len());
        serial(&a[start..end], &b[start..end], o, act);
    });
    Ok(())
}

/// Whether an activation whose output is `y` passed its input through (its gradient is 1
/// there, 0 elsewhere).
#[inline(always)]
fn act_passes(y: f32, act: Epilogue) -> bool {
    match act {
        Epilogue::Relu => y > 0.0,
        Epilogue::Relu6 => y > 0.0 && y < 6.0,
        // None; the others `act_grad` refuses.
        _ => true,
    }
}

/// `out = act(x)`, both of one length: an activation the lowering could not fuse, with the
/// detected ISA's vectors.
pub fn act(x: &[f32], out: &mut [f32], act: Epilogue, threads: &Threads) -> Result<(), ConvError> {
    act_with(Isa::detect(), x, out, act, threads)
}

/// [`act`] with `isa`'s kernels (tests: each ISA against the definition).
pub(crate) fn act_with(
    isa: Isa,
    x: &[f32],
    out: &mut [f32],
    act: Epilogue,
    threads: &Threads,
) -> Result<(), ConvError> {
    if x.len() != out.len() {
        return Err(ConvError::new(format!(
            "{act:?} of {} elements into {}: the lengths must agree",
            x.len(),
            out.len()
        )));
    }
    if out.len() < SERIAL || threads.count() == 1 {
        activate_slice(isa, x, out, act);
        return Ok(());
    }
    threads.for_each_chunk(out, CHUNK, &|i, o| activate_slice(isa, &x[i * CHUNK..][..o.len()], o, act));
    Ok(())
}

/// `buf = act(buf)` on `threads`: the activation of a conv whose kernels leave it to a
/// pass after them ([`Epilogue::in_kernel`]); nothing for the others.
pub fn act_in_place(isa: Isa, buf: &mut [f32], act: Epilogue, threads: &Threads) {
    if act.in_kernel() {
        return;
    }
    if buf.len() < SERIAL || threads.count() == 1 {
        return activate_in_place(isa, buf, act);
    }
    threads.for_each_chunk(buf, CHUNK, &|_, b| activate_in_place(isa, b, act));
}

/// `out = x * scale[image][channel]`, `x` laid out in groups of `block` channels: NCHW
/// (`block` 1: a plane per channel) or blocked (16: `[n][c / 16][pixels][16]`, `to_blocked`),
/// `pixels` pixels per plane, one scale per image and channel (a squeeze-and-excitation
/// block's).
pub fn channel_scale(
    x: &[f32],
    scale: &[f32],
    block: usize,
    pixels: usize,
    out: &mut [f32],
    threads: &Threads,
) -> Result<(), ConvError> {
    if block == 0 || !scale.len().is_multiple_of(block) || x.len() != out.len() || x.len() != scale.len() * pixels {
        return Err(ConvError::new(format!(
            "channel scale of {} elements ({pixels} pixels per channel, channels in groups of {block}) by {} \
             scales into {}: the sizes must agree",
            x.len(),
            scale.len(),
            out.len()
        )));
    }
    let group = block * pixels;
    let run = |first: usize, o: &mut [f32]| {
        // One group of `block` channels of one image per `group` floats.
        for (k, dst) in o.chunks_mut(group).enumerate() {
            let g = first + k;
            let (s, src) = (&scale[g * block..][..block], &x[g * group..][..group]);
            if block == 1 {
                dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v * s[0]);
                continue;
            }
            for (d, v) in dst.chunks_exact_mut(block).zip(src.chunks_exact(block)) {
                for l in 0..block {
                    d[l] = v[l] * s[l];
                }
            }
        }
    };
    let per_item = CHUNK.div_ceil(group.max(1)).max(1);
    if out.len() < SERIAL || threads.count() == 1 {
        run(0, out);
    } else {
        threads.for_each_chunk(out, per_item * group, &|i, o| run(i * per_item, o));
    }
    Ok(())
}

/// `out = act(a + b)`, all three of one length.
pub fn add_act(a: &[f32], b: &[f32], out: &mut [f32], act: Epilogue, threads: &Threads) -> Result<(), ConvError> {
    binary(a, b, out, "add of", act, threads, add_act_serial)?;
    act_in_place(Isa::detect(), out, act, threads);
    Ok(())
}

/// The activations the kernels compute in their stores ([`Epilogue::in_kernel`]); identity
/// for the others, which the callers apply after their loop ([`act_in_place`]).
#[inline(always)]
pub(crate) fn act_of(v: f32, act: Epilogue) -> f32 {
    match act {
        Epilogue::None => v,
        Epilogue::Relu => v.max(0.0),
        Epilogue::Relu6 => v.clamp(0.0, 6.0),
        // The others as a pass after the loop that calls this ([`act_in_place`]): their
        // `exp` here kept the loops (Winograd's output rows among them) from vectorising,
        // and those convs ran 50% slower.
        _ => v,
    }
}

/// `out = act(x * scale[c] + shift[c])` over NCHW `x` whose planes hold `plane` elements,
/// `scale` and `shift` one per channel.
pub fn affine_act(
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    plane: usize,
    out: &mut [f32],
    act: Epilogue,
    threads: &Threads,
) -> Result<(), ConvError> {
    let channels = scale.len();
    if shift.len() != channels || x.len() != out.len() || plane == 0 || !x.len().is_multiple_of(plane * channels.max(1))
    {
        return Err(ConvError::new(format!(
            "per-channel affine of {} elements ({} per plane) with {} scales and {} shifts into {}: the sizes \
             must agree",
            x.len(),
            plane,
            channels,
            shift.len(),
            out.len()
        )));
    }
    let per_item = CHUNK.div_ceil(plane).max(1);
    let run = |first: usize, o: &mut [f32]| {
        for (k, dst) in o.chunks_mut(plane).enumerate() {
            let p = first + k;
            let (a, b) = (scale[p % channels], shift[p % channels]);
            affine_act_serial(&x[p * plane..(p + 1) * plane], a, b, dst, act);
        }
    };
    if out.len() < SERIAL || threads.count() == 1 {
        run(0, out);
    } else {
        threads.for_each_chunk(out, per_item * plane, &|i, o| run(i * per_item, o));
    }
    act_in_place(Isa::detect(), out, act, threads);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_act_matches_a_plain_loop() {
        let n = 3 * SERIAL + 17;
        let a: Vec<f32> = (0..n).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect();
        let b: Vec<f32> = (0..n).map(|i| ((i * 104729) % 19) as f32 * 0.5 - 4.0).collect();
        for threads in [Threads::single(), Threads::new(3).unwrap()] {
            for act in [Epilogue::None, Epilogue::Relu, Epilogue::Relu6] {
                for len in [0, 5, n] {
                    let mut out = vec![f32::NAN; len];
                    add_act(&a[..len], &b[..len], &mut out, act, &threads).unwrap();
                    for i in 0..len {
                        let s = a[i] + b[i];
                        let want = match act {
                            Epilogue::None => s,
                            Epilogue::Relu => s.max(0.0),
                            Epilogue::Relu6 => s.clamp(0.0, 6.0),
                            other => unreachable!("{other:?} is not tested here"),
                        };
                        assert_eq!(out[i], want, "{act:?} at {i} of {len}");
                    }
                }
            }
        }
        assert!(add_act(&a[..3], &b[..4], &mut [0.0; 3], Epilogue::None, &Threads::single()).is_err());
        // The activations with exp: a pass after the sum, as `act` computes them.
        for epi in [Epilogue::Silu, Epilogue::HardSigmoid] {
            let (mut got, mut want, mut sum) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            add_act(&a, &b, &mut got, epi, &Threads::new(2).unwrap()).unwrap();
            add_act(&a, &b, &mut sum, Epilogue::None, &Threads::single()).unwrap();
            act(&sum, &mut want, epi, &Threads::single()).unwrap();
            assert_eq!(got, want, "{epi:?}");
        }
    }

    /// The gradient passes exactly where the activation's output shows its input passed:
    /// not at 0 (PyTorch's convention), not at 6 for ReLU6.
    #[test]
    fn act_grad_masks_where_the_activation_cut() {
        let n = 3 * SERIAL + 17;
        let y: Vec<f32> = (0..n).map(|i| [0.0, 2.5, 6.0, 0.25, 7.0][i % 5]).collect();
        let dy: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
        for threads in [Threads::single(), Threads::new(3).unwrap()] {
            for act in [Epilogue::None, Epilogue::Relu, Epilogue::Relu6] {
                let mut out = vec![f32::NAN; n];
                act_grad(&y, &dy, &mut out, act, &threads).unwrap();
                for i in 0..n {
                    let pass = match act {
                        Epilogue::None => true,
                        Epilogue::Relu => y[i] > 0.0,
                        Epilogue::Relu6 => y[i] > 0.0 && y[i] < 6.0,
                        other => unreachable!("{other:?} is not tested here"),
                    };
                    assert_eq!(out[i], if pass { dy[i] } else { 0.0 }, "{act:?} at {i}, y = {}", y[i]);
                }
            }
        }
        assert!(act_grad(&y[..3], &dy[..4], &mut [0.0; 3], Epilogue::Relu, &Threads::single()).is_err());
        // SiLU's output does not say where its gradient is: refused, not a wrong mask.
        let err = act_grad(&y, &dy, &mut vec![0.0; n], Epilogue::Silu, &Threads::single()).unwrap_err();
        assert!(err.to_string().contains("needs its input"), "{err}");
    }

    /// Every activation against its definition in f64, over f32's range: the vector `exp`
    /// within a few ulp, saturating far out (never a denormal: every multiply a denormal
    /// reaches costs a microcode assist; a sigmoid gate 0 or at least 2^-100, so that its
    /// products stay normal too), a NaN input giving NaN where the activation
    /// multiplies by its input (SiLU, hard swish) as PyTorch's does.
    #[test]
    fn act_matches_the_definition() {
        let n = 3 * SERIAL + 17;
        let x: Vec<f32> =
            (0..n).map(|i| (i as f32 / n as f32 - 0.5) * 200.0).chain([0.0, -0.0, 1e-30, -3.0, 3.0]).collect();
        for (isa, threads) in
            Isa::available().into_iter().flat_map(|i| [(i, Threads::single()), (i, Threads::new(3).unwrap())])
        {
            for epi in [
                Epilogue::None,
                Epilogue::Relu,
                Epilogue::Relu6,
                Epilogue::Silu,
                Epilogue::Sigmoid,
                Epilogue::HardSwish,
                Epilogue::HardSigmoid,
            ] {
                let mut out = vec![f32::NAN; x.len()];
                act_with(isa, &x, &mut out, epi, &threads).unwrap();
                for (&v, &got) in x.iter().zip(&out) {
                    let v64 = v as f64;
                    let sigmoid = 1.0 / (1.0 + (-v64).exp());
                    let hard = (v64 + 3.0).clamp(0.0, 6.0) / 6.0;
                    let want = match epi {
                        Epilogue::None => v64,
                        Epilogue::Relu => v64.max(0.0),
                        Epilogue::Relu6 => v64.clamp(0.0, 6.0),
                        Epilogue::Silu => v64 * sigmoid,
                        Epilogue::Sigmoid => sigmoid,
                        Epilogue::HardSwish => v64 * hard,
                        Epilogue::HardSigmoid => hard,
                    };
                    let err = (got as f64 - want).abs();
                    // A sigmoid under 2^-100 is 0: a gate whose product is a normal float.
                    let floor = if epi == Epilogue::Sigmoid { 2f64.powi(-100) } else { 1e-35 };
                    assert!(err <= 4e-7 * want.abs() + floor, "{isa:?} {epi:?}({v}) = {got}, want {want}");
                    assert!(!got.is_subnormal(), "{isa:?} {epi:?}({v}) = {got}: a denormal");
                    if epi == Epilogue::Sigmoid {
                        assert!(got == 0.0 || got as f64 >= floor, "{isa:?} sigmoid({v}) = {got}: a gate under 2^-100");
                    }
                }
                let mut nan = [0.0];
                act_with(isa, &[f32::NAN], &mut nan, epi, &threads).unwrap();
                if matches!(epi, Epilogue::None | Epilogue::Silu | Epilogue::HardSwish) {
                    assert!(nan[0].is_nan(), "{isa:?} {epi:?}(NaN) = {}", nan[0]);
                }
            }
        }
        assert!(act(&x[..3], &mut [0.0; 4], Epilogue::Silu, &Threads::single()).is_err());
    }

    /// Each channel of each image times its own scale, NCHW and blocked, threaded or not.
    #[test]
    fn channel_scale_multiplies_each_channel_by_its_scale() {
        let (n, c, pixels) = (3, 32, 29 * 31);
        let scale: Vec<f32> = (0..n * c).map(|i| i as f32 * 0.25 - 3.0).collect();
        let x: Vec<f32> = (0..n * c * pixels).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect();
        for threads in [Threads::single(), Threads::new(3).unwrap()] {
            let mut out = vec![f32::NAN; x.len()];
            channel_scale(&x, &scale, 1, pixels, &mut out, &threads).unwrap();
            for (i, (&o, &v)) in out.iter().zip(&x).enumerate() {
                assert_eq!(o, v * scale[i / pixels], "NCHW at {i}");
            }
            channel_scale(&x, &scale, 16, pixels, &mut out, &threads).unwrap();
            for (i, (&o, &v)) in out.iter().zip(&x).enumerate() {
                // [n][c / 16][pixels][16]: block i / (16 pixels), lane i % 16.
                let ch = i / (16 * pixels) * 16 + i % 16;
                assert_eq!(o, v * scale[ch], "blocked at {i}");
            }
        }
        assert!(channel_scale(&x[..10], &scale, 1, pixels, &mut [0.0; 10], &Threads::single()).is_err());
    }

    #[test]
    fn affine_act_matches_a_plain_loop() {
        // 3 images x 5 channels x 67 x 61: large enough to be spread over threads.
        let (n, c, plane) = (3, 5, 67 * 61);
        let x: Vec<f32> = (0..n * c * plane).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect();
        let scale = [0.5, -1.0, 2.0, 0.0, 1.5];
        let shift = [1.0, 0.25, -3.0, 4.0, 0.0];
        for threads in [Threads::single(), Threads::new(3).unwrap()] {
            for act in [Epilogue::None, Epilogue::Relu, Epilogue::Relu6] {
                let mut out = vec![f32::NAN; x.len()];
                affine_act(&x, &scale, &shift, plane, &mut out, act, &threads).unwrap();
                for (i, (&o, &v)) in out.iter().zip(&x).enumerate() {
                    let ch = (i / plane) % c;
                    assert_eq!(o, act_of(v * scale[ch] + shift[ch], act), "{act:?} at {i}");
                }
            }
        }
        let mut out = vec![0.0; 10];
        assert!(affine_act(&x[..10], &scale, &shift, 3, &mut out, Epilogue::None, &Threads::single()).is_err());
        let (mut got, mut want, mut plain) = (vec![0.0; x.len()], vec![0.0; x.len()], vec![0.0; x.len()]);
        affine_act(&x, &scale, &shift, plane, &mut got, Epilogue::Silu, &Threads::new(2).unwrap()).unwrap();
        affine_act(&x, &scale, &shift, plane, &mut plain, Epilogue::None, &Threads::single()).unwrap();
        act(&plain, &mut want, Epilogue::Silu, &Threads::single()).unwrap();
        assert_eq!(got, want, "SiLU after the affine");
    }
}
