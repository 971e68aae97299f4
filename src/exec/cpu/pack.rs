//! Data re-layout for the GEMM: input pixels into B panels (im2col fused with packing, per
//! call; the weights' A panels are packed in `gemm.rs`).
//!
//! The conv of one image and one group is `C[m x p] = A[m x k] * B[k x p]` with `m` the
//! group's output channels, `k = (ic, ky, kx)` in the weight's own order and `p = (oy, ox)`
//! the output pixels, so `C` is the NCHW output as is. B is never materialised whole: each
//! worker packs the `kc x nc` block it is about to use into its scratch, straight from the
//! NCHW input, with the padding written as zeros (no bounds checks in the micro-kernel).

use super::kernels::simd::{fill_run, zero_n, Simd};

/// The im2col view of one group's input planes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geom {
    /// Input channels of the group (the input slice starts at the group's first plane).
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: usize,
    pub pl: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geom {
    /// The pointwise geometry of `c` planes of `h x w` ([`Geom::is_pointwise`]).
    pub(crate) fn pointwise(c: usize, h: usize, w: usize) -> Geom {
        Geom { c, h, w, kh: 1, kw: 1, sh: 1, sw: 1, dh: 1, dw: 1, pt: 0, pl: 0, oh: h, ow: w }
    }

    /// Rows of B: `c * kh * kw`.
    pub(crate) fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Columns of B: output pixels.
    pub(crate) fn pixels(&self) -> usize {
        self.oh * self.ow
    }

    /// A 1x1 stride-1 unpadded conv: B is the input itself (`[c][h*w]`), no im2col.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.pt == 0
            && self.pl == 0
            && self.oh == self.h
            && self.ow == self.w
    }
}

/// A stretch of one output row inside a B panel: pixels `(oy, ox0 .. ox0+len)` land in
/// lanes `lane0 .. lane0+len`.
#[derive(Clone, Copy, Default)]
struct Run {
    oy: usize,
    ox0: usize,
    lane0: usize,
    len: usize,
}

/// Most runs one panel can have: one per lane (output width 1).
const MAX_NR: usize = 32;

/// One B block to pack: rows `k0 .. k0+kc`, columns (pixels) `p0 .. p0+np`, into
/// `ceil(np / nr)` panels of `kc x nr` floats at `dst` (row-major, `nr` apart; columns past
/// `np` zero). `x` points at the group's `c` input planes.
pub(crate) struct PackJob {
    pub g: Geom,
    pub x: *const f32,
    pub k0: usize,
    pub kc: usize,
    pub p0: usize,
    pub np: usize,
    pub nr: usize,
    pub dst: *mut f32,
}

/// Pack one B block (see [`PackJob`]). Generic over the vector type; each ISA wraps it in
/// a `#[target_feature]` function. Every run of pixels is one or two masked vector loads
/// (stride 1) or masked loads plus a lane gather (stride 2), zeros where the tap falls in
/// the padding; no division or call in the inner loop.
///
/// Safety: `x` holds `c * h * w` floats, `dst` `ceil(np / nr) * kc * nr`, and the block
/// lies inside B.
#[inline(always)]
pub(crate) unsafe fn pack_b<S: Simd>(job: &PackJob) {
    let PackJob { g, x, k0, kc, p0, np, nr, dst } = *job;
    debug_assert!(nr <= MAX_NR && k0 + kc <= g.k() && p0 + np <= g.pixels());
    let plane_len = g.h * g.w;
    if g.is_pointwise() {
        // B row k is input plane k: a straight copy, row by row, so that each plane's run
        // of `np` pixels is read front to back (one stream the prefetchers follow) and
        // scattered into the panels.
        let panels = np.div_ceil(nr);
        for kk in 0..kc {
            let src = x.add((k0 + kk) * plane_len + p0);
            for pj in 0..panels {
                let qn = nr.min(np - pj * nr);
                fill_run::<S>(dst.add(pj * kc * nr + kk * nr), nr, src.add(pj * nr), 1, 0, qn);
            }
        }
        return;
    }
    for pj in 0..np.div_ceil(nr) {
        let q0 = p0 + pj * nr;
        let qn = nr.min(p0 + np - q0);
        let panel = dst.add(pj * kc * nr);
        // Split the panel's pixels into output-row runs once; they serve every k.
        let mut runs = [Run::default(); MAX_NR];
        let mut nruns = 0;
        let mut q = q0;
        while q < q0 + qn {
            let (oy, ox0) = (q / g.ow, q % g.ow);
            let len = (g.ow - ox0).min(q0 + qn - q);
            runs[nruns] = Run { oy, ox0, lane0: q - q0, len };
            nruns += 1;
            q += len;
        }
        let runs = &runs[..nruns];

        // k = (ic * kh + ky) * kw + kx, walked incrementally.
        let taps = g.kh * g.kw;
        let (mut ic, mut ky, mut kx) = (k0 / taps, (k0 % taps) / g.kw, k0 % g.kw);
        let lanes = S::LANES;
        for kk in 0..kc {
            let row = panel.add(kk * nr);
            let plane = x.add(ic * plane_len);
            // Input column of output column ox: ox * sw + off.
            let off = (kx * g.dw) as isize - g.pl as isize;
            // Each run's source, as a pointer for panel lane 0 (wrapping: only valid lanes
            // are read), and its valid lanes.
            let mut segs = [(std::ptr::null::<f32>(), 0usize, 0usize); MAX_NR];
            let mut nsegs = 0;
            for r in runs {
                let iy = (r.oy * g.sh + ky * g.dh) as isize - g.pt as isize;
                if iy < 0 || iy >= g.h as isize {
                    continue;
                }
                let (lo, hi) = valid_range(r.ox0, r.len, g.sw, off, g.w);
                if lo < hi {
                    let first = (r.ox0 * g.sw) as isize + off - (r.lane0 * g.sw) as isize;
                    segs[nsegs] = (plane.add(iy as usize * g.w).wrapping_offset(first), r.lane0 + lo, r.lane0 + hi);
                    nsegs += 1;
                }
            }
            let segs = &segs[..nsegs];
            if g.sw > 2 {
                zero_n::<S>(row, nr);
                for &(src, a, b) in segs {
                    for t in a..b {
                        *row.add(t) = *src.wrapping_add(t * g.sw);
                    }
                }
            } else {
                // Build each vector of the row from the runs that overlap it (disjoint lanes,
                // zeros elsewhere) and store it whole: no masked stores.
                let mut c = 0;
                while c < nr {
                    let mut v = S::zero();
                    for &(src, a, b) in segs {
                        let (a, b) = (a.clamp(c, c + lanes) - c, b.clamp(c, c + lanes) - c);
                        if a < b {
                            let part = if g.sw == 1 {
                                S::load_lanes(src.wrapping_add(c), a, b)
                            } else {
                                S::load_lanes_stride2(src.wrapping_add(2 * c), a, b)
                            };
                            v = S::add(v, part);
                        }
                    }
                    S::store(row.add(c), v);
                    c += lanes;
                }
            }
            kx += 1;
            if kx == g.kw {
                kx = 0;
                ky += 1;
                if ky == g.kh {
                    ky = 0;
                    ic += 1;
                }
            }
        }
    }
}

/// `floor(x / s)` for `s >= 1`, with the common strides 1 and 2 division-free.
#[inline(always)]
fn div_floor(x: isize, s: isize) -> isize {
    match s {
        1 => x,
        2 => x >> 1,
        _ => x.div_euclid(s),
    }
}

/// For output columns `ox0 + t`, `t < len`, reading input column `(ox0 + t) * s + off`:
/// the range `lo..hi` of `t` whose column lies inside `0..w` (`lo <= hi`; empty as `lo..lo`).
#[inline(always)]
pub(crate) fn valid_range(ox0: usize, len: usize, s: usize, off: isize, w: usize) -> (usize, usize) {
    let (ox0, len, s) = (ox0 as isize, len as isize, s as isize);
    // (ox0 + t) * s + off >= 0  <=>  ox0 + t >= ceil(-off / s) = -floor(off / s)
    let lo = (-div_floor(off, s) - ox0).clamp(0, len);
    // (ox0 + t) * s + off <= w - 1  <=>  ox0 + t <= floor((w - 1 - off) / s)
    let hi = (div_floor(w as isize - 1 - off, s) + 1 - ox0).clamp(0, len);
    (lo as usize, hi.max(lo) as usize)
}
