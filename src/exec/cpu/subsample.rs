//! Strided 1x1 convs (ResNet's downsampling shortcuts) read one input pixel in `sh * sw`:
//! those pixels are gathered once into a dense buffer, which the conv then reads as a
//! stride-1 pointwise conv (B in place, no padded grid). The direct method would copy every
//! phase of the input for each channel chunk and use one of them. A blocked input
//! (`blocked.rs`, a pixel's 16 channels together) gathers whole pixels of 16 floats.

use super::isa::widest_vectors;
use super::threads::{SendPtr, Threads};
use std::sync::Mutex;

/// The gathered pixels, kept between calls and shared by every strided 1x1 conv (they run
/// one after another; a call that finds it taken allocates its own).
static BUFFER: Mutex<Vec<f32>> = Mutex::new(Vec::new());

/// Pixel `(oy * sh, ox * sw)` of each of `planes` planes of `h x w` pixels of `lanes`
/// floats (1 for NCHW, 16 for blocked), as `planes x oh x ow` pixels, handed to `f`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn with_subsampled<R>(
    x: &[f32],
    planes: usize,
    lanes: usize,
    h: usize,
    w: usize,
    stride: [usize; 2],
    out_hw: [usize; 2],
    threads: &Threads,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    let [oh, ow] = out_hw;
    debug_assert!(x.len() == planes * h * w * lanes && (oh - 1) * stride[0] < h && (ow - 1) * stride[1] < w);
    let (in_plane, out_plane) = (h * w * lanes, oh * ow * lanes);
    let len = planes * out_plane;
    super::scratch::with_shared(&BUFFER, len, |dst| {
        let dp = SendPtr(dst.as_mut_ptr());
        threads.for_each_run(planes, &|run| {
            // SAFETY: this run writes its planes of `dst` only.
            let d =
                unsafe { std::slice::from_raw_parts_mut(dp.get().add(run.start * out_plane), run.len() * out_plane) };
            gather(&x[run.start * in_plane..run.end * in_plane], [h, w, lanes], stride, ow, d);
        });
        f(dst)
    })
}

widest_vectors! {
    /// Every `sh`-th row's every `sw`-th pixel of each plane of `x` (`h x w` pixels of
    /// `lanes` floats) into `out`.
    fn gather(x: &[f32], hwl: [usize; 3], stride: [usize; 2], ow: usize, out: &mut [f32]) {
        let ([h, w, lanes], [sh, sw]) = (hwl, stride);
        let oh = out.len() / (ow * lanes) / (x.len() / (h * w * lanes)).max(1);
        for (plane, o) in x.chunks_exact(h * w * lanes).zip(out.chunks_exact_mut(oh * ow * lanes)) {
            for (row, o) in plane.chunks_exact(w * lanes).step_by(sh).zip(o.chunks_exact_mut(ow * lanes)) {
                if lanes > 1 {
                    for (d, pixels) in o.chunks_exact_mut(lanes).zip(row.chunks(sw * lanes)) {
                        d.copy_from_slice(&pixels[..lanes]);
                    }
                } else if sw == 2 {
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
