//! A conv's weight gradient on the CPU, f32: `dW = sum over images of dy * im2col(x)^T`.
//!
//! Per group, `dW[m][kk] = sum_n sum_p dy[n][m][p] * col_n[kk][p]`, with `kk = (c, i, j)` a
//! tap of the group's input channel `c` and `p` an output pixel: a GEMM `[M x P] * [P x K]`
//! whose reduction runs over every pixel of every image. It runs on the same micro-kernel
//! as the forward convs (`kernels/tile.rs`), GotoBLAS style:
//!
//! ```text
//! for each work item (group, M rows or K columns of dW: one item per thread):
//!   for each image, for each block of kc pixels:
//!     pack the item's dy rows into A panels [kc][mr]        (L2)
//!     for each B panel: pack its im2col columns [kc][nr]    (L1)
//!       for each A panel: tile, accumulating into dW
//! ```
//!
//! Both packs are transposes (dy and x both have the pixels contiguous, the kernel wants
//! them as its K steps, `kernels/transpose.rs`): `P * (M + K)` moves against
//! `2 * P * M * K` flops, which for ResNet's 64-channel layers is not small, so each item
//! packs each of its rows and columns once (an item per thread, dW cut along the side whose
//! re-packing is cheaper). Items split dW, never the reduction, so no partial sums are
//! added up afterwards.
//! Depthwise convs (one input channel per output channel: a 1-row GEMM) take a direct
//! loop instead.

use super::kernels::{kernel_set, KernelSet, Tile, TransposeJob};
use super::scratch::with_scratch;
use super::threads::{SendPtr, Threads};
use super::{ConvError, ConvSpec, Epilogue, Isa};

/// Most pixels per reduction block: an AVX-512 A panel of 12 x 256 floats (12 KiB) and a
/// B panel of 256 x 32 (32 KiB) share L1.
const KC: usize = 256;
/// Fewest pixels per block, however many dy rows an item has.
const KC_MIN: usize = 64;
/// Floats of an item's A block (its dy rows, packed), kept in L2 while the B panels pass.
const A_FLOATS: usize = 128 * 1024;

/// `dw` (`[out][in / groups][kh][kw]`, overwritten) from `n` input images `x` (NCHW,
/// `h x w`) and the output gradient `dy` (NCHW, the conv's output shape).
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_grad(
    spec: &ConvSpec,
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    n: usize,
    h: usize,
    w: usize,
    dw: &mut [f32],
    threads: &Threads,
) -> Result<(), ConvError> {
    spec.validate()?;
    let (oh, ow) = spec.output_hw(h, w)?;
    let want = [(x.len(), n * spec.in_channels * h * w), (dy.len(), n * spec.out_channels * oh * ow)];
    for ((got, need), what) in want.into_iter().zip(["input", "output gradient"]) {
        if got != need {
            return Err(ConvError::new(format!(
                "weight gradient: the {what} has {got} floats, {n} images of this conv need {need}"
            )));
        }
    }
    if dw.len() != spec.weight_len() {
        return Err(ConvError::new(format!(
            "weight gradient: {} floats for the weights, the spec has {}",
            dw.len(),
            spec.weight_len()
        )));
    }
    if !isa.is_available() {
        return Err(ConvError::new(format!("this CPU cannot run the {isa} kernels")));
    }
    let g = Geometry::new(spec, n, h, w, oh, ow);
    if spec.is_depthwise() {
        depthwise(&g, x, dy, dw, threads);
    } else {
        gemm(&g, isa, x, dy, dw, threads);
    }
    Ok(())
}

/// Everything the loops need about the conv and its input.
struct Geometry {
    groups: usize,
    /// Output channels per group (dW rows of a group).
    m: usize,
    /// Input channels per group.
    c: usize,
    /// `c * kh * kw` (dW columns).
    k: usize,
    n: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    pt: usize,
    pl: usize,
}

impl Geometry {
    fn new(spec: &ConvSpec, n: usize, h: usize, w: usize, oh: usize, ow: usize) -> Geometry {
        let c = spec.in_channels / spec.groups;
        let [kh, kw] = spec.kernel;
        Geometry {
            groups: spec.groups,
            m: spec.out_channels / spec.groups,
            c,
            k: c * kh * kw,
            n,
            h,
            w,
            oh,
            ow,
            kh,
            kw,
            sh: spec.stride[0],
            sw: spec.stride[1],
            dh: spec.dilation[0],
            dw: spec.dilation[1],
            pt: spec.padding.top,
            pl: spec.padding.left,
        }
    }

    fn pixels(&self) -> usize {
        self.oh * self.ow
    }

    /// Input row read by output row `oy` at tap row `i`, if inside the image.
    fn in_row(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.sh + i * self.dh).checked_sub(self.pt).filter(|&y| y < self.h)
    }

    /// The output columns `ox` whose tap column `j` reads inside the image: `lo..hi`, and
    /// the input column of `ox` is `ox * sw + j * dw - pl`.
    fn valid_cols(&self, j: usize) -> (usize, usize) {
        let off = j * self.dw;
        let lo = self.pl.saturating_sub(off).div_ceil(self.sw).min(self.ow);
        // ox * sw + off - pl < w  <=>  ox * sw < w + pl - off
        let hi = (self.w + self.pl).saturating_sub(off).div_ceil(self.sw).min(self.ow);
        (lo, hi.max(lo))
    }
}

fn gemm(g: &Geometry, isa: Isa, x: &[f32], dy: &[f32], dw: &mut [f32], threads: &Threads) {
    let ks = kernel_set(isa);
    let (mr, nr) = (ks.mr, ks.nr);
    // One item per thread: the groups, else dW cut along the side whose re-packing costs
    // less (each item packs its own rows of dy and its own im2col columns, so cutting the
    // rows packs every column once per item, and the other way round).
    let parts = if g.groups >= threads.count() { 1 } else { threads.count().div_ceil(g.groups) };
    let (m_units, k_units) = (g.m.div_ceil(mr), g.k.div_ceil(nr));
    let (m_parts, k_parts) = if g.k < g.m { (parts.min(m_units), 1) } else { (1, parts.min(k_units)) };
    let (mc, nc) = (m_units.div_ceil(m_parts) * mr, k_units.div_ceil(k_parts) * nr);
    let (m_items, k_items) = (g.m.div_ceil(mc), g.k.div_ceil(nc));
    // Pixels per block: the item's A block (its dy rows) stays within A_FLOATS.
    let kc_max = (A_FLOATS / mc).clamp(KC_MIN, KC) / 16 * 16;
    let boff: Vec<u32> = (0..kc_max + super::kernels::simd::PREFETCH_STEPS).map(|k| (k * nr) as u32).collect();
    let zeros = vec![0.0f32; mr];
    let out = SendPtr(dw.as_mut_ptr());
    threads.for_each(g.groups * m_items * k_items, &|item| {
        let (group, rest) = (item / (m_items * k_items), item % (m_items * k_items));
        let (m0, k0) = (rest / k_items * mc, rest % k_items * nc);
        let (m1, k1) = ((m0 + mc).min(g.m), (k0 + nc).min(g.k));
        let (a_panels, b_panels) = ((m1 - m0).div_ceil(mr), (k1 - k0).div_ceil(nr));
        let a_len = a_panels * kc_max * mr;
        with_scratch(a_len + 2 * nr * kc_max, |scratch| {
            let (a, rest) = scratch.split_at_mut(a_len);
            let (b, rows) = rest.split_at_mut(nr * kc_max);
            let mut first = true;
            for img in 0..g.n {
                let dy_rows = &dy[(img * g.groups + group) * g.m * g.pixels()..][..g.m * g.pixels()];
                let x_planes = &x[(img * g.groups + group) * g.c * g.h * g.w..][..g.c * g.h * g.w];
                for p0 in (0..g.pixels()).step_by(kc_max) {
                    let kc = kc_max.min(g.pixels() - p0);
                    pack_dy(&ks, dy_rows, g.pixels(), m0, m1, p0, kc, kc_max, a);
                    for bp in 0..b_panels {
                        // One B panel at a time (it stays in L1), swept by every A panel.
                        let col = k0 + bp * nr;
                        pack_cols(&ks, g, x_planes, col, nr.min(k1 - col), p0, kc, b, rows);
                        for ap in 0..a_panels {
                            let row = m0 + ap * mr;
                            let tile = Tile {
                                kc,
                                a: a[ap * kc_max * mr..].as_ptr(),
                                b: b.as_ptr(),
                                boff: boff.as_ptr(),
                                // SAFETY (pointer arithmetic): inside dW, row `row` of the group.
                                c: unsafe { out.get().add((group * g.m + row) * g.k + col) },
                                ldc: g.k,
                                m: mr.min(m1 - row),
                                n: nr.min(k1 - col),
                                accumulate: !first,
                                finish: false,
                                bias: zeros.as_ptr(),
                                res: std::ptr::null(),
                                act: Epilogue::None,
                            };
                            // SAFETY: A panel `ap` holds kc steps of mr floats and the B
                            // panel kc rows of nr floats (boff[k] = k * nr, the table long
                            // enough for the prefetches past kc); the C tile lies in this
                            // item's part of dW, which no other item writes; the ISA is
                            // available (checked by the caller).
                            unsafe { (ks.tile)(&tile) };
                        }
                    }
                    first = false;
                }
            }
        });
    });
}

/// A panels from dy rows `m0..m1` (`pixels` apart), pixels `p0..p0 + kc`: panel `ap` is
/// `[kc][mr]` at `ap * stride * mr`, rows past `m1` zero.
#[allow(clippy::too_many_arguments)]
fn pack_dy(
    ks: &KernelSet,
    dy: &[f32],
    pixels: usize,
    m0: usize,
    m1: usize,
    p0: usize,
    kc: usize,
    stride: usize,
    a: &mut [f32],
) {
    let mr = ks.mr;
    for (ap, panel) in a.chunks_exact_mut(stride * mr).enumerate().take((m1 - m0).div_ceil(mr)) {
        let row = m0 + ap * mr;
        let job = TransposeJob {
            src: dy[row * pixels + p0..].as_ptr(),
            src_stride: pixels,
            rows: mr.min(m1 - row),
            cols: kc,
            dst: panel.as_mut_ptr(),
            width: mr,
        };
        // SAFETY: `rows` rows of `kc` floats from dy row `row` on, all inside dy (rows
        // `< m1`, pixels `< p0 + kc <= pixels`); the panel holds at least kc * mr floats.
        unsafe { (ks.transpose)(&job) };
    }
}

/// One B panel: im2col columns `first..first + live` (tap `(c, i, j)` of the group's
/// input planes `x`) at output pixels `p0..p0 + kc`, as `[kc][nr]` (taps reading outside
/// the image and columns past `live` zero). The columns are gathered as rows into `rows`
/// (`nr * kc` floats), then transposed in; a 1x1 stride-1 conv's are the input planes.
#[allow(clippy::too_many_arguments)]
fn pack_cols(
    ks: &KernelSet,
    g: &Geometry,
    x: &[f32],
    first: usize,
    live: usize,
    p0: usize,
    kc: usize,
    panel: &mut [f32],
    rows: &mut [f32],
) {
    let (nr, taps, plane) = (ks.nr, g.kh * g.kw, g.h * g.w);
    let as_is = taps == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.oh == g.h && g.ow == g.w;
    let (src, src_stride) = if as_is {
        (x[first * plane + p0..].as_ptr(), plane)
    } else {
        for (col, row) in rows.chunks_exact_mut(kc).take(live).enumerate() {
            let kk = first + col;
            let (c, i, j) = (kk / taps, kk % taps / g.kw, kk % g.kw);
            gather_tap(g, &x[c * plane..][..plane], i, j, p0, row);
        }
        (rows.as_ptr(), kc)
    };
    let job = TransposeJob { src, src_stride, rows: live, cols: kc, dst: panel.as_mut_ptr(), width: nr };
    // SAFETY: `live` rows of kc floats at `src`, `src_stride` apart (the gathered rows, or
    // input planes `first..` from pixel p0, all inside x); the panel holds kc * nr floats.
    unsafe { (ks.transpose)(&job) };
}

/// What tap `(i, j)` of one input plane reads at output pixels `p0..p0 + out.len()`
/// (zero where it falls outside the image): one im2col row.
fn gather_tap(g: &Geometry, plane: &[f32], i: usize, j: usize, p0: usize, out: &mut [f32]) {
    let (lo, hi) = g.valid_cols(j);
    let shift = j * g.dw;
    let mut q = 0;
    while q < out.len() {
        let p = p0 + q;
        let (oy, ox0) = (p / g.ow, p % g.ow);
        let run = (g.ow - ox0).min(out.len() - q);
        let dst = &mut out[q..q + run];
        match g.in_row(oy, i) {
            None => dst.fill(0.0),
            Some(y) => {
                let row = &plane[y * g.w..][..g.w];
                let (a, b) = (lo.clamp(ox0, ox0 + run), hi.clamp(ox0, ox0 + run));
                dst[..a - ox0].fill(0.0);
                dst[b - ox0..].fill(0.0);
                if g.sw == 1 {
                    dst[a - ox0..b - ox0].copy_from_slice(&row[a + shift - g.pl..b + shift - g.pl]);
                } else {
                    for ox in a..b {
                        dst[ox - ox0] = row[ox * g.sw + shift - g.pl];
                    }
                }
            }
        }
        q += run;
    }
}

/// Depthwise: each channel's `kh * kw` taps are dot products of its dy plane with shifted
/// views of its input plane, summed over the images. Channels are the work items.
fn depthwise(g: &Geometry, x: &[f32], dy: &[f32], dw: &mut [f32], threads: &Threads) {
    let taps = g.kh * g.kw;
    let out = SendPtr(dw.as_mut_ptr());
    threads.for_each(g.groups, &|ch| {
        let mut sums = vec![0.0f64; taps];
        for img in 0..g.n {
            let plane = &x[(img * g.groups + ch) * g.h * g.w..][..g.h * g.w];
            let grad = &dy[(img * g.groups + ch) * g.pixels()..][..g.pixels()];
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let (lo, hi) = g.valid_cols(j);
                    let mut s = 0.0f32;
                    for oy in 0..g.oh {
                        let Some(y) = g.in_row(oy, i) else { continue };
                        let (row, d) = (&plane[y * g.w..][..g.w], &grad[oy * g.ow..][..g.ow]);
                        for ox in lo..hi {
                            s += d[ox] * row[ox * g.sw + j * g.dw - g.pl];
                        }
                    }
                    sums[i * g.kw + j] += s as f64;
                }
            }
        }
        for (t, &s) in sums.iter().enumerate() {
            // SAFETY: channel `ch`'s taps are written by this item only.
            unsafe { *out.get().add(ch * taps + t) = s as f32 };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Padding;

    /// The weight gradient by its definition, in f64.
    fn naive(spec: &ConvSpec, x: &[f32], dy: &[f32], n: usize, h: usize, w: usize) -> Vec<f64> {
        let (oh, ow) = spec.output_hw(h, w).unwrap();
        let (g, [kh, kw]) = (spec.groups, spec.kernel);
        let (cg, mg) = (spec.in_channels / g, spec.out_channels / g);
        let mut out = vec![0.0f64; spec.weight_len()];
        for img in 0..n {
            for o in 0..spec.out_channels {
                let grp = o / mg;
                for c in 0..cg {
                    let ic = grp * cg + c;
                    for i in 0..kh {
                        for j in 0..kw {
                            let mut s = 0.0;
                            for oy in 0..oh {
                                for ox in 0..ow {
                                    let y = (oy * spec.stride[0] + i * spec.dilation[0]) as isize
                                        - spec.padding.top as isize;
                                    let xx = (ox * spec.stride[1] + j * spec.dilation[1]) as isize
                                        - spec.padding.left as isize;
                                    if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
                                        continue;
                                    }
                                    let xv = x[((img * spec.in_channels + ic) * h + y as usize) * w + xx as usize];
                                    let dv = dy[((img * spec.out_channels + o) * oh + oy) * ow + ox];
                                    s += xv as f64 * dv as f64;
                                }
                            }
                            out[((o * cg + c) * kh + i) * kw + j] += s;
                        }
                    }
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// Every ISA the CPU has, every shape family: 1x1, padded 3x3, strided, dilated,
    /// asymmetric padding, grouped, depthwise, a 7x7 stem, channel counts off the tile
    /// sizes, reductions longer than one pixel block.
    #[test]
    fn matches_the_definition_on_every_isa() {
        let cases = [
            // (spec, n, h, w)
            (ConvSpec::new(5, 7, [1, 1]), 2, 9, 11),
            (ConvSpec::new(16, 24, [3, 3]).with_padding(1, 1, 1, 1), 2, 12, 10),
            (ConvSpec::new(8, 13, [3, 3]).with_padding(1, 1, 1, 1).with_stride(2, 2), 3, 13, 9),
            (ConvSpec::new(6, 40, [1, 1]).with_stride(2, 2), 2, 10, 10),
            (ConvSpec::new(4, 9, [3, 3]).with_padding(2, 2, 2, 2).with_dilation(2, 2), 1, 11, 12),
            (
                ConvSpec { padding: Padding { top: 0, bottom: 2, left: 1, right: 0 }, ..ConvSpec::new(3, 5, [3, 2]) },
                2,
                8,
                7,
            ),
            (ConvSpec::new(12, 18, [3, 3]).with_padding(1, 1, 1, 1).with_groups(3), 2, 9, 9),
            (ConvSpec::new(10, 10, [3, 3]).with_padding(1, 1, 1, 1).with_groups(10), 2, 9, 8),
            (ConvSpec::new(10, 10, [3, 3]).with_padding(1, 1, 1, 1).with_stride(2, 2).with_groups(10), 2, 9, 8),
            (ConvSpec::new(3, 16, [7, 7]).with_padding(3, 3, 3, 3).with_stride(2, 2), 1, 30, 30),
            (ConvSpec::new(33, 70, [1, 1]), 2, 19, 19),
        ];
        for isa in Isa::available() {
            for threads in [Threads::single(), Threads::new(3).unwrap()] {
                for (spec, n, h, w) in cases {
                    let (oh, ow) = spec.output_hw(h, w).unwrap();
                    let x = values(n * spec.in_channels * h * w, 1);
                    let dy = values(n * spec.out_channels * oh * ow, 7);
                    let mut got = vec![f32::NAN; spec.weight_len()];
                    weight_grad(&spec, isa, &x, &dy, n, h, w, &mut got, &threads).unwrap();
                    let want = naive(&spec, &x, &dy, n, h, w);
                    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                    for (k, (&a, &b)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            ((a as f64 - b) / scale).abs() < 1e-5,
                            "{isa}, {spec:?}, {n}x{h}x{w}, weight {k}: {a} against {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let spec = ConvSpec::new(2, 3, [3, 3]);
        let mut dw = vec![0.0; spec.weight_len()];
        let t = Threads::single();
        let isa = Isa::detect();
        let e = weight_grad(&spec, isa, &[0.0; 2 * 5 * 5], &[0.0; 3 * 3 * 3 - 1], 1, 5, 5, &mut dw, &t).unwrap_err();
        assert!(e.0.contains("output gradient has 26 floats"), "{e}");
        let e = weight_grad(&spec, isa, &[0.0; 2 * 5 * 5], &[0.0; 27], 1, 5, 5, &mut dw[1..], &t).unwrap_err();
        assert!(e.0.contains("weight"), "{e}");
        assert!(weight_grad(&spec, isa, &[0.0; 2 * 2 * 2], &[0.0; 3], 1, 2, 2, &mut dw, &t).is_err());
    }
}
