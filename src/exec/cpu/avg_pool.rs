//! Average pooling of f32 NCHW planes and blocked tensors (`blocked.rs`) straight from the
//! unpadded input, on the conv threads: each window's sum over its taps inside the input
//! (padding adds nothing), divided by PyTorch's divisor, the window's size clipped to the
//! padded input (`count_include_pad`) or the number of its taps inside the input. Replaces,
//! at inference on the packed path, candle's padded copy, its single-threaded pool and a
//! rescale by a divisor map (Inception-v3's 3x3 stride-1 pools at 35x35 took 1.5-2.1 ms each
//! that way, onnxruntime's 0.06-0.08).
//!
//! NCHW planes pool separably as the max pool's do (`pool::plane_body` with [`Sum`]);
//! blocked pixels sum their window's pixels 16 channels at a time.

use super::isa::widest_vectors;
use super::pool::{
    blocked_pixel_items, horizontal_taps, plane_body, plane_items, reduce_pixels_blocked, HTap, PoolSpec, Sum,
};
use super::{ConvError, Threads};

/// An average pool: its window, the trailing padding (which the divisor counts where
/// `count_include_pad`) and whether padded taps count in the divisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPoolSpec {
    pub window: PoolSpec,
    /// Bottom and right padding.
    pub pad_after: [usize; 2],
    /// Divide by the window's size inside the padded input (PyTorch's default), not by
    /// its taps inside the input.
    pub count_include_pad: bool,
}

impl AvgPoolSpec {
    /// The divisor's factor along `axis` (0 rows, 1 columns) for every output index, on an
    /// input `n` long; a window's divisor is its row factor times its column factor.
    pub(crate) fn divisors(&self, axis: usize, n: usize) -> Vec<f32> {
        let (k, s) = (self.window.kernel[axis] as isize, self.window.stride[axis] as isize);
        let (before, after) = (self.window.pad_before[axis] as isize, self.pad_after[axis] as isize);
        (0..self.window.out_hw[axis] as isize)
            .map(|o| {
                let start = o * s - before;
                let end = (start + k).min(n as isize + after);
                let taps = if self.count_include_pad { end - start } else { end.min(n as isize) - start.max(0) };
                taps as f32
            })
            .collect()
    }

    /// One over each row and column divisor factor for an `h x w` input (the sums are
    /// multiplied: `vdivps` alone took a quarter of a pool's time), or an error where a
    /// window has nothing to divide by.
    fn inverse_divisors(&self, h: usize, w: usize) -> Result<(Vec<f32>, Vec<f32>), ConvError> {
        let (rows, cols) = (self.divisors(0, h), self.divisors(1, w));
        if rows.iter().chain(&cols).any(|&d| d <= 0.0) {
            return Err(ConvError::new(format!(
                "average pool of {h}x{w} into {:?}, kernel {:?}, stride {:?}, padding {:?} before and {:?} after: \
                 a window lies wholly in the padding",
                self.window.out_hw, self.window.kernel, self.window.stride, self.window.pad_before, self.pad_after
            )));
        }
        let inverse = |d: Vec<f32>| d.iter().map(|d| 1.0 / d).collect();
        Ok((inverse(rows), inverse(cols)))
    }
}

/// Average-pool `planes` planes of `h x w` into `out` (`planes x out_h x out_w`).
pub fn avg_pool(
    x: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    s: &AvgPoolSpec,
    out: &mut [f32],
    threads: &Threads,
) -> Result<(), ConvError> {
    let window = &s.window;
    let [oh, ow] = window.out_hw;
    let (inv_rows, inv_cols) = s.inverse_divisors(h, w)?;
    let taps = horizontal_taps(window, w);
    plane_items("average", x, planes, h, w, window, out, threads, &|first, o| {
        let x = &x[first * h * w..(first + o.len() / (oh * ow)) * h * w];
        average_planes(x, h, w, window, &taps, &inv_rows, &inv_cols, o)
    })
}

widest_vectors! {
    /// The planes of `x` into `out`, one at a time: each window's sum (`plane_body`), then
    /// output row `oy`, column `ox` times `inv_rows[oy]` and `inv_cols[ox]`.
    #[allow(clippy::too_many_arguments)]
    fn average_planes(
        x: &[f32],
        h: usize,
        w: usize,
        s: &PoolSpec,
        taps: &[HTap],
        inv_rows: &[f32],
        inv_cols: &[f32],
        out: &mut [f32],
    ) {
        let (mut sums, mut phases, mut starts) = (Vec::new(), Vec::new(), Vec::new());
        let ow = s.out_hw[1];
        for (plane, o) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(s.out_hw[0] * ow)) {
            plane_body::<Sum>(plane, h, w, s, taps, o, &mut sums, &mut phases, &mut starts);
            for (row, &r) in o.chunks_exact_mut(ow).zip(inv_rows) {
                for (v, &c) in row.iter_mut().zip(inv_cols) {
                    *v *= r * c;
                }
            }
        }
    }
}

/// Average-pool `n` blocked images (`[n][c / 16][h][w][16]`) of `c` channels into `out`,
/// blocked the same way, cut into work items as the max pool's are
/// (`pool::blocked_pixel_items`).
#[allow(clippy::too_many_arguments)]
pub fn avg_pool_blocked(
    x: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    s: &AvgPoolSpec,
    out: &mut [f32],
    threads: &Threads,
) -> Result<(), ConvError> {
    let (inv_rows, inv_cols) = s.inverse_divisors(h, w)?;
    blocked_pixel_items("average", x, n, c, h, w, &s.window, out, threads, &|src, dst, p0, columns| {
        average_pixels_blocked(src, dst, h, w, &s.window, p0, columns, &inv_rows, &inv_cols)
    })
}

widest_vectors! {
    /// Output pixels `p0 ..` (as many as `dst` holds, 16 floats each) of one blocked plane
    /// `src` of `h x w` pixels: the sum of the window's pixels inside the input
    /// (`pool::reduce_pixels_blocked`), times one over its divisor's row and column factors.
    #[allow(clippy::too_many_arguments)]
    fn average_pixels_blocked(
        src: &[f32],
        dst: &mut [f32],
        h: usize,
        w: usize,
        s: &PoolSpec,
        p0: usize,
        columns: &mut [f32],
        inv_rows: &[f32],
        inv_cols: &[f32],
    ) {
        const B: usize = super::blocked::BLOCK;
        reduce_pixels_blocked::<Sum>(src, dst, h, w, s, p0, columns);
        let ow = s.out_hw[1];
        let (mut oy, mut ox) = (p0 / ow, p0 % ow);
        for px in dst.chunks_exact_mut(B) {
            let inv = inv_rows[oy] * inv_cols[ox];
            for p in px {
                *p *= inv;
            }
            ox += 1;
            if ox == ow {
                (oy, ox) = (oy + 1, 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::cpu::{from_blocked, to_blocked};

    /// The definition, in f64: pad with zeros, sum every window, divide by its size inside
    /// the padded input (clipped at the trailing padding) or by its taps inside the input.
    fn naive(x: &[f32], planes: usize, h: usize, w: usize, s: &AvgPoolSpec) -> Vec<f32> {
        let (k, st, pb, pa) = (s.window.kernel, s.window.stride, s.window.pad_before, s.pad_after);
        let [oh, ow] = s.window.out_hw;
        let mut out = Vec::new();
        for p in 0..planes {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut sum, mut inside, mut padded) = (0.0f64, 0, 0);
                    for ky in 0..k[0] {
                        for kx in 0..k[1] {
                            let y = (oy * st[0] + ky) as isize - pb[0] as isize;
                            let xx = (ox * st[1] + kx) as isize - pb[1] as isize;
                            if y < (h + pa[0]) as isize && xx < (w + pa[1]) as isize {
                                padded += 1;
                            }
                            if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                                sum += f64::from(x[p * h * w + y as usize * w + xx as usize]);
                                inside += 1;
                            }
                        }
                    }
                    let divisor = if s.count_include_pad { padded } else { inside };
                    out.push((sum / f64::from(divisor)) as f32);
                }
            }
        }
        out
    }

    type Case = (usize, usize, usize, [usize; 2], [usize; 2], [usize; 2], [usize; 2]);

    /// Cases (planes or images x channels, h, w, kernel, stride, padding before, after):
    /// Inception's 3x3 stride-1 pools and others whose output is the input's size (the flat
    /// passes, and a plane too small for them), DenseNet's 2x2 stride 2, ceil sizes (a window
    /// past the trailing padding), asymmetric padding, strides past the kernel, the whole plane.
    const CASES: [Case; 13] = [
        (32, 35, 35, [3, 3], [1, 1], [1, 1], [1, 1]),
        (16, 17, 17, [3, 3], [1, 1], [1, 1], [1, 1]),
        (16, 9, 12, [2, 3], [1, 1], [0, 1], [1, 1]),
        (16, 6, 7, [5, 4], [1, 1], [3, 1], [1, 2]),
        (16, 3, 9, [5, 3], [1, 1], [2, 1], [2, 1]),
        (32, 9, 8, [2, 2], [2, 2], [0, 0], [0, 0]),
        (16, 9, 7, [2, 2], [2, 2], [0, 0], [1, 1]),
        (16, 7, 9, [3, 3], [2, 2], [1, 1], [1, 1]),
        (16, 10, 11, [3, 2], [2, 1], [0, 1], [2, 0]),
        (16, 6, 13, [2, 3], [3, 2], [1, 2], [0, 1]),
        (16, 10, 11, [3, 3], [3, 3], [1, 1], [2, 1]),
        (48, 5, 6, [5, 6], [5, 6], [0, 0], [0, 0]),
        (16, 5, 6, [4, 5], [4, 5], [1, 2], [0, 0]),
    ];

    fn spec(
        h: usize,
        w: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 2],
        after: [usize; 2],
    ) -> [AvgPoolSpec; 2] {
        // PyTorch's ceil rule: the output reaches the trailing padding (and one window
        // further where the stride leaves one starting inside), never a window wholly in it.
        let out = |a: usize, n: usize| {
            let floor = (n + pad[a] + after[a] - kernel[a]) / stride[a] + 1;
            let ceil = (n + pad[a] + after[a] - kernel[a]).div_ceil(stride[a]) + 1;
            if (ceil - 1) * stride[a] < n + pad[a] {
                ceil
            } else {
                floor
            }
        };
        let window = PoolSpec { kernel, stride, pad_before: pad, out_hw: [out(0, h), out(1, w)] };
        [true, false].map(|count_include_pad| AvgPoolSpec { window, pad_after: after, count_include_pad })
    }

    fn input(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|j| (((j + seed) * 7919) % 101) as f32 / 16.0 - 3.0).collect()
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{what}: element {i} is {a}, wants {b}");
        }
    }

    #[test]
    fn nchw_planes_match_the_definition() {
        let threads = [Threads::single(), Threads::new(3).unwrap().always_parallel()];
        for (i, (planes, h, w, kernel, stride, pad, after)) in CASES.into_iter().enumerate() {
            for s in spec(h, w, kernel, stride, pad, after) {
                let x = input(planes * h * w, i);
                let want = naive(&x, planes, h, w, &s);
                for t in &threads {
                    let mut out = vec![f32::NAN; want.len()];
                    avg_pool(&x, planes, h, w, &s, &mut out, t).unwrap();
                    assert_close(&out, &want, &format!("{planes}x{h}x{w} {s:?} {t:?}"));
                }
            }
        }
    }

    #[test]
    fn blocked_images_match_the_definition() {
        let threads = [Threads::single(), Threads::new(3).unwrap().always_parallel()];
        for (i, (c, h, w, kernel, stride, pad, after)) in CASES.into_iter().enumerate() {
            let n = 1 + i % 2;
            for s in spec(h, w, kernel, stride, pad, after) {
                let x = input(n * c * h * w, i);
                let want = naive(&x, n * c, h, w, &s);
                let [oh, ow] = s.window.out_hw;
                for t in &threads {
                    let mut out = vec![f32::NAN; want.len()];
                    avg_pool_blocked(&to_blocked(&x, n, c, h * w), n, c, h, w, &s, &mut out, t).unwrap();
                    let got = from_blocked(&out, n, c, oh * ow);
                    assert_close(&got, &want, &format!("{n}x{c}x{h}x{w} {s:?} {t:?}"));
                }
            }
        }
    }

    #[test]
    fn impossible_pools_are_errors() {
        let t = Threads::single();
        let [s, _] = spec(4, 4, [2, 2], [2, 2], [0, 0], [0, 0]);
        let e = avg_pool(&[0.0; 15], 1, 4, 4, &s, &mut [0.0; 4], &t).unwrap_err();
        assert!(e.to_string().contains("sizes do not agree"), "{e}");
        let e = avg_pool_blocked(&[0.0; 24 * 16], 1, 24, 4, 4, &s, &mut [0.0; 24 * 4], &t).unwrap_err();
        assert!(e.to_string().contains("whole blocks of 16"), "{e}");
        // A third output row would start in the trailing padding: nothing to divide by.
        let mut far = s;
        far.window.out_hw = [3, 2];
        far.count_include_pad = false;
        let e = avg_pool(&[0.0; 16], 1, 4, 4, &far, &mut [0.0; 6], &t).unwrap_err();
        assert!(e.to_string().contains("wholly in the padding"), "{e}");
    }

    fn time(c: usize, h: usize, w: usize, s: &AvgPoolSpec, blocked: bool) -> f64 {
        let x = input(c * h * w, 0);
        let [oh, ow] = s.window.out_hw;
        let mut out = vec![0.0; c * oh * ow];
        let t = Threads::single();
        let run = |out: &mut [f32]| {
            if blocked {
                avg_pool_blocked(&x, 1, c, h, w, s, out, &t).unwrap()
            } else {
                avg_pool(&x, c, h, w, s, out, &t).unwrap()
            }
        };
        for _ in 0..3 {
            run(&mut out);
        }
        let t0 = std::time::Instant::now();
        for _ in 0..100 {
            run(&mut out);
        }
        t0.elapsed().as_secs_f64() * 1e3 / 100.0
    }

    /// `cargo test --release --lib avg_pool::tests::time -- --ignored --nocapture`: one thread, ms.
    #[test]
    #[ignore]
    fn time_pools() {
        for (c, hw) in [(256, 35), (768, 17), (1280, 8)] {
            let [s, _] = spec(hw, hw, [3, 3], [1, 1], [1, 1], [1, 1]);
            let (nchw, blocked) = (time(c, hw, hw, &s, false), time(c, hw, hw, &s, true));
            eprintln!("3x3 stride 1, {c} x {hw}x{hw}: NCHW {nchw:.3} ms, blocked {blocked:.3} ms");
        }
        for (c, hw) in [(256, 56), (512, 28)] {
            let [s, _] = spec(hw, hw, [2, 2], [2, 2], [0, 0], [0, 0]);
            let (nchw, blocked) = (time(c, hw, hw, &s, false), time(c, hw, hw, &s, true));
            eprintln!("2x2 stride 2, {c} x {hw}x{hw}: NCHW {nchw:.3} ms, blocked {blocked:.3} ms");
        }
    }
}
