//! Strided 1x1 convs (ResNet's downsampling shortcuts) read one input pixel in `sh * sw`:
//! those pixels are gathered once into a dense buffer, which the conv then reads as a
//! stride-1 pointwise conv (B in place, no padded grid). The direct method would copy every
//! phase of the input for each channel chunk and use one of them.

use super::isa::widest_vectors;
use super::threads::{SendPtr, Threads};
use std::sync::Mutex;

/// The gathered pixels, kept between calls and shared by every strided 1x1 conv (they run
/// one after another; a call that finds it taken allocates its own).
static BUFFER: Mutex<Vec<f32>> = Mutex::new(Vec::new());

/// Pixel `(oy * sh, ox * sw)` of each of `planes` planes of `h x w`, as `planes x oh x ow`,
/// handed to `f`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn with_subsampled<R>(
    x: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    stride: [usize; 2],
    out_hw: [usize; 2],
    threads: &Threads,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    let [oh, ow] = out_hw;
    debug_assert!(x.len() == planes * h * w && (oh - 1) * stride[0] < h && (ow - 1) * stride[1] < w);
    let len = planes * oh * ow;
    super::scratch::with_shared(&BUFFER, len, |dst| {
        let dp = SendPtr(dst.as_mut_ptr());
        threads.for_each_run(planes, &|run| {
            // SAFETY: this run writes its planes of `dst` only.
            let d = unsafe { std::slice::from_raw_parts_mut(dp.get().add(run.start * oh * ow), run.len() * oh * ow) };
            gather(&x[run.start * h * w..run.end * h * w], h, w, stride[0], stride[1], ow, d);
        });
        f(dst)
    })
}

widest_vectors! {
    /// Every `sh`-th row's every `sw`-th pixel of each plane of `x` into `out`.
    fn gather(x: &[f32], h: usize, w: usize, sh: usize, sw: usize, ow: usize, out: &mut [f32]) {
        let oh = out.len() / ow / (x.len() / (h * w)).max(1);
        for (plane, o) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
            for (row, o) in plane.chunks_exact(w).step_by(sh).zip(o.chunks_exact_mut(ow)) {
                if sw == 2 {
                    for (d, pair) in o.iter_mut().zip(row.chunks(2)) {
                        *d = pair[0];
                    }
                } else {
                    for (d, &v) in o.iter_mut().zip(row.iter().step_by(sw)) {
                        *d = v;
                    }
                }
            }
        }
    }
}
