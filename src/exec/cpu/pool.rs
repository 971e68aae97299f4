//! Max pooling of NCHW f32 planes straight from the unpadded input: each window is clipped
//! to the input (padding never wins a max), planes spread over the conv threads. Replaces,
//! at inference on the packed path, candle's pad-with-minus-infinity copy followed by its
//! single-threaded pool.

use super::{ConvError, Threads};
use std::sync::Mutex;

/// A max pool's geometry: kernel, stride, leading padding and output size (the output
/// size carries the trailing padding and any ceil-mode rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPoolSpec {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Top and left padding.
    pub pad_before: [usize; 2],
    pub out_hw: [usize; 2],
}

/// Planes per work item at least this many output elements.
const MIN_ITEM: usize = 1 << 12;

fn plane(x: &[f32], h: usize, w: usize, s: &MaxPoolSpec, out: &mut [f32]) {
    let [kh, kw] = s.kernel;
    let [sh, sw] = s.stride;
    let [oh, ow] = s.out_hw;
    for oy in 0..oh {
        let y0 = (oy * sh) as isize - s.pad_before[0] as isize;
        let (ya, yb) = (y0.max(0) as usize, ((y0 + kh as isize).max(0) as usize).min(h));
        for ox in 0..ow {
            let x0 = (ox * sw) as isize - s.pad_before[1] as isize;
            let (xa, xb) = (x0.max(0) as usize, ((x0 + kw as isize).max(0) as usize).min(w));
            let mut m = f32::NEG_INFINITY;
            for y in ya..yb {
                for &v in &x[y * w + xa..y * w + xb] {
                    // NaN propagates, as in PyTorch.
                    if v > m || v.is_nan() {
                        m = v;
                    }
                }
            }
            out[oy * ow + ox] = m;
        }
    }
}

/// Max-pool `planes` planes of `h x w` into `out` (`planes x out_h x out_w`).
pub fn max_pool(
    x: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    s: &MaxPoolSpec,
    out: &mut [f32],
    threads: &Threads,
) -> Result<(), ConvError> {
    let [oh, ow] = s.out_hw;
    if x.len() != planes * h * w || out.len() != planes * oh * ow || s.stride.contains(&0) || s.kernel.contains(&0) {
        return Err(ConvError::new(format!(
            "max pool of {} elements ({planes} planes of {h}x{w}) into {} ({oh}x{ow} each), kernel {:?}, stride {:?}: \
             the sizes do not agree",
            x.len(),
            out.len(),
            s.kernel,
            s.stride
        )));
    }
    let out_plane = oh * ow;
    if out_plane == 0 {
        return Ok(());
    }
    let per_item = MIN_ITEM.div_ceil(out_plane).max(1);
    if threads.count() == 1 || planes <= per_item {
        for (p, o) in out.chunks_mut(out_plane).enumerate() {
            plane(&x[p * h * w..(p + 1) * h * w], h, w, s, o);
        }
        return Ok(());
    }
    let items: Vec<Mutex<&mut [f32]>> = out.chunks_mut(out_plane * per_item).map(Mutex::new).collect();
    threads.for_each(items.len(), &|i| {
        let mut o = items[i].lock().unwrap_or_else(|e| e.into_inner());
        for (k, op) in o.chunks_mut(out_plane).enumerate() {
            let p = i * per_item + k;
            plane(&x[p * h * w..(p + 1) * h * w], h, w, s, op);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pad with minus infinity, then take every window's max: the definition.
    fn naive(x: &[f32], planes: usize, h: usize, w: usize, s: &MaxPoolSpec) -> Vec<f32> {
        let [oh, ow] = s.out_hw;
        let mut out = Vec::new();
        for p in 0..planes {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut m = f32::NEG_INFINITY;
                    for ky in 0..s.kernel[0] {
                        for kx in 0..s.kernel[1] {
                            let y = (oy * s.stride[0] + ky) as isize - s.pad_before[0] as isize;
                            let xx = (ox * s.stride[1] + kx) as isize - s.pad_before[1] as isize;
                            if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                                m = m.max(x[p * h * w + y as usize * w + xx as usize]);
                            }
                        }
                    }
                    out.push(m);
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_with_padding_strides_and_ceil_sizes() {
        let threads = [Threads::single(), Threads::new(3).unwrap()];
        for (planes, h, w, kernel, stride, pad, extra) in [
            (5, 7, 6, [3, 3], [2, 2], [1, 1], [0, 0]),
            (64, 13, 11, [3, 2], [2, 1], [0, 1], [1, 0]),
            (300, 9, 9, [2, 2], [2, 2], [1, 0], [1, 1]),
            (3, 4, 4, [4, 4], [1, 1], [0, 0], [0, 0]),
            (700, 14, 14, [3, 3], [1, 1], [1, 1], [0, 0]),
        ] {
            let oh = (h + pad[0] + extra[0] - kernel[0]) / stride[0] + 1;
            let ow = (w + pad[1] + extra[1] - kernel[1]) / stride[1] + 1;
            let s = MaxPoolSpec { kernel, stride, pad_before: pad, out_hw: [oh, ow] };
            let x: Vec<f32> = (0..planes * h * w).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
            let want = naive(&x, planes, h, w, &s);
            for t in &threads {
                let mut out = vec![f32::NAN; planes * oh * ow];
                max_pool(&x, planes, h, w, &s, &mut out, t).unwrap();
                assert_eq!(out, want, "{planes}x{h}x{w} k{kernel:?} s{stride:?} p{pad:?}+{extra:?}");
            }
        }
    }

    #[test]
    fn wrong_sizes_are_an_error() {
        let s = MaxPoolSpec { kernel: [2, 2], stride: [2, 2], pad_before: [0, 0], out_hw: [2, 2] };
        let mut out = vec![0.0; 3];
        let e = max_pool(&[0.0; 16], 1, 4, 4, &s, &mut out, &Threads::single()).unwrap_err();
        assert!(e.to_string().contains("do not agree"), "{e}");
    }
}
