//! Depthwise conv (groups == in == out channels): one small filter per channel plane, far
//! too little work per byte for a GEMM. Direct and memory-bound instead, reading the
//! NCHW input in place (no padded copy):
//!
//! * Output columns go in vectors. For each tap column `kx` and each vector of output
//!   columns, the lanes whose input column falls inside the image are worked out once per
//!   call (`Cols`); interior vectors load whole, edge vectors load masked (zeros in the
//!   padding). Stride 2 loads two vectors' worth and keeps the even lanes.
//! * Output rows go four at a time where every tap row is inside the image (4
//!   independent FMA chains hide the FMA latency, and the 4 rows share their input rows
//!   in L1); border rows one at a time, skipping the tap rows in the padding.
//!
//! Each input plane is read from memory once and each output plane written once.

use super::kernels::simd::{activate, store_n, Simd};
use super::pack::valid_range;
use super::threads::{SendPtr, Threads};
use super::{Epilogue, Isa};

/// Geometry of one channel plane.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DwGeom {
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

impl DwGeom {
    /// Output rows whose every tap row lies inside the input: `lo .. hi`.
    fn inner_rows(&self) -> (usize, usize) {
        let lo = self.pt.div_ceil(self.sh).min(self.oh);
        // oy * sh + (kh - 1) * dh - pt <= h - 1
        let top = (self.h + self.pt) as isize - 1 - ((self.kh - 1) * self.dh) as isize;
        let hi = if top < 0 { 0 } else { (top as usize / self.sh + 1).min(self.oh) };
        (lo, hi.max(lo))
    }
}

/// Valid lanes `lo .. hi` of each (output column vector, tap column), `[vector][kx]`, and
/// per vector whether every tap column loads whole (no padding, no ragged end).
pub(crate) struct Cols {
    lanes: Vec<(u32, u32)>,
    whole: Vec<bool>,
}

impl Cols {
    fn new(g: &DwGeom, lanes: usize) -> Cols {
        let (mut v, mut whole) = (Vec::new(), Vec::new());
        for ox in (0..g.ow).step_by(lanes) {
            let n = lanes.min(g.ow - ox);
            let mut all = true;
            for kx in 0..g.kw {
                let (lo, hi) = valid_range(ox, n, g.sw, (kx * g.dw) as isize - g.pl as isize, g.w);
                all &= lo == 0 && hi == lanes;
                v.push((lo as u32, hi as u32));
            }
            whole.push(all);
        }
        Cols { lanes: v, whole }
    }
}

/// One channel plane of one image.
pub(crate) struct Plane<'a> {
    pub g: DwGeom,
    /// `h * w` input floats.
    pub x: *const f32,
    /// `oh * ow` output floats.
    pub y: *mut f32,
    /// `kh * kw` taps.
    pub taps: *const f32,
    pub bias: f32,
    pub act: Epilogue,
    pub cols: &'a Cols,
}

/// Per-plane kernel for `S`; each ISA wraps it in a `#[target_feature]` function.
///
/// Safety: the pointers hold what `Plane` says, `cols` was made for `S::LANES`.
#[inline(always)]
pub(crate) unsafe fn plane<S: Simd>(p: &Plane) {
    let g = &p.g;
    let square3 = g.kh == 3 && g.kw == 3 && g.dh == 1 && g.dw == 1 && g.sh == g.sw;
    match (g.sw, square3) {
        (1, true) => plane3::<S, 1>(p),
        (2, true) => plane3::<S, 2>(p),
        (1, false) => plane_sw::<S, 1>(p),
        (2, false) => plane_sw::<S, 2>(p),
        _ => plane_sw::<S, 0>(p),
    }
}

/// MobileNet's case, 3x3 at stride `ST` in both axes: the 9 weights stay in registers,
/// and with the loops fully unrolled the input vectors that several output rows share
/// (stride 1: row `oy + ky` serves three of them) are loaded once.
#[inline(always)]
unsafe fn plane3<S: Simd, const ST: usize>(p: &Plane) {
    let (lo, hi) = p.g.inner_rows();
    let mut w = [S::zero(); 9];
    for (i, w) in w.iter_mut().enumerate() {
        *w = S::splat(*p.taps.add(i));
    }
    let mut oy = 0;
    while oy < p.g.oh {
        if oy >= lo && oy + 4 <= hi {
            rows3::<S, 4, ST>(p, oy, &w);
            oy += 4;
        } else {
            rows::<S, 1, true, ST>(p, oy);
            oy += 1;
        }
    }
}

/// `rows` for 3x3 at stride `ST`, all tap rows inside the input.
#[inline(always)]
unsafe fn rows3<S: Simd, const R: usize, const ST: usize>(p: &Plane, oy0: usize, w: &[S::V; 9]) {
    let g = p.g;
    // Input row of output row oy0, tap row 0.
    let top = p.x.add((oy0 * ST - g.pt) * g.w);
    for (c, ox) in (0..g.ow).step_by(S::LANES).enumerate() {
        let src = top.wrapping_offset((ox * ST) as isize - g.pl as isize);
        let cols = &p.cols.lanes[c * 3..c * 3 + 3];
        let acc = if p.cols.whole[c] {
            chunk3::<S, R, ST, true>(p, src, w, cols)
        } else {
            chunk3::<S, R, ST, false>(p, src, w, cols)
        };
        let n = S::LANES.min(g.ow - ox);
        for (r, &a) in acc.iter().enumerate() {
            store_n::<S>(p.y.add((oy0 + r) * g.ow + ox), activate::<S>(a, p.act), n);
        }
    }
}

/// One vector of output columns for `R` rows: walk the input rows once, each row's three
/// shifted vectors feeding every output row that uses it (live registers: R accumulators,
/// 9 weights, 3 inputs). `WHOLE`: no lane is in the padding.
#[inline(always)]
unsafe fn chunk3<S: Simd, const R: usize, const ST: usize, const WHOLE: bool>(
    p: &Plane,
    src: *const f32,
    w: &[S::V; 9],
    cols: &[(u32, u32)],
) -> [S::V; R] {
    let mut acc = [S::splat(p.bias); R];
    for i in 0..(R - 1) * ST + 3 {
        let row = src.wrapping_add(i * p.g.w);
        let v: [S::V; 3] = match (ST, WHOLE) {
            (1, true) => std::array::from_fn(|kx| S::load(row.wrapping_add(kx))),
            (1, false) => std::array::from_fn(|kx| {
                let (a, b) = (cols[kx].0 as usize, cols[kx].1 as usize);
                if a >= b {
                    S::zero()
                } else {
                    S::load_lanes(row.wrapping_add(kx), a, b)
                }
            }),
            // Stride 2: the three tap columns share two loads.
            (_, true) => S::load_taps3_stride2(row),
            (_, false) => S::load_taps3_stride2_lanes(row, cols),
        };
        // Input row i serves output row r through tap row ky = i - r * ST.
        for (r, acc) in acc.iter_mut().enumerate() {
            if i >= r * ST && i - r * ST < 3 {
                let ky = i - r * ST;
                for (kx, &v) in v.iter().enumerate() {
                    *acc = S::fmadd(w[ky * 3 + kx], v, *acc);
                }
            }
        }
    }
    acc
}

/// `SW`: the column stride, or 0 for "any, read lane by lane".
#[inline(always)]
unsafe fn plane_sw<S: Simd, const SW: usize>(p: &Plane) {
    let (lo, hi) = p.g.inner_rows();
    let mut oy = 0;
    while oy < p.g.oh {
        if oy >= lo && oy + 4 <= hi {
            rows::<S, 4, false, SW>(p, oy);
            oy += 4;
        } else {
            rows::<S, 1, true, SW>(p, oy);
            oy += 1;
        }
    }
}

/// Output rows `oy0 .. oy0 + R`, all columns. `CHECK`: skip tap rows outside the input
/// (border rows); without it every tap row must be inside.
#[inline(always)]
unsafe fn rows<S: Simd, const R: usize, const CHECK: bool, const SW: usize>(p: &Plane, oy0: usize) {
    let g = p.g;
    let bias = S::splat(p.bias);
    let row_step = g.sh * g.w; // input floats between consecutive output rows
    for (c, ox) in (0..g.ow).step_by(S::LANES).enumerate() {
        let cols = &p.cols.lanes[c * g.kw..(c + 1) * g.kw];
        let whole = p.cols.whole[c];
        let mut acc = [bias; R];
        for ky in 0..g.kh {
            // Input row of output row oy0: oy0 * sh + ky * dh - pt.
            let iy0 = (oy0 * g.sh + ky * g.dh) as isize - g.pt as isize;
            if CHECK && (iy0 < 0 || iy0 >= g.h as isize) {
                continue;
            }
            let row0 = p.x.wrapping_offset(iy0 * g.w as isize);
            let w_row = p.taps.add(ky * g.kw);
            for (kx, &(a, b)) in cols.iter().enumerate() {
                // Input column of lane 0 (wrapping: masked-off lanes are never read).
                let src = row0.wrapping_offset((ox * g.sw + kx * g.dw) as isize - g.pl as isize);
                let wv = S::splat(*w_row.add(kx));
                if whole {
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let s = src.wrapping_add(r * row_step);
                        let v = if SW == 1 {
                            S::load(s)
                        } else if SW == 2 {
                            S::load_lanes_stride2(s, 0, S::LANES)
                        } else {
                            strided::<S>(s, g.sw, 0, S::LANES)
                        };
                        *acc = S::fmadd(wv, v, *acc);
                    }
                } else if a < b {
                    let (a, b) = (a as usize, b as usize);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let s = src.wrapping_add(r * row_step);
                        let v = if SW == 1 {
                            S::load_lanes(s, a, b)
                        } else if SW == 2 {
                            S::load_lanes_stride2(s, a, b)
                        } else {
                            strided::<S>(s, g.sw, a, b)
                        };
                        *acc = S::fmadd(wv, v, *acc);
                    }
                }
            }
        }
        let n = S::LANES.min(g.ow - ox);
        for (r, &a) in acc.iter().enumerate() {
            store_n::<S>(p.y.add((oy0 + r) * g.ow + ox), activate::<S>(a, p.act), n);
        }
    }
}

/// Lanes `a .. b` of a row read every `s` floats (strides over 2: rare, via a buffer).
#[inline(always)]
unsafe fn strided<S: Simd>(src: *const f32, s: usize, a: usize, b: usize) -> S::V {
    let mut buf = [0.0f32; 64];
    for (t, v) in buf.iter_mut().enumerate().take(b).skip(a) {
        *v = *src.wrapping_add(t * s);
    }
    S::load_lanes(buf.as_ptr(), a, b)
}

fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
        Isa::Scalar => 1,
    }
}

/// Run one plane with `isa`'s kernel. Safety: `p` is valid for `isa`'s lane count, and the
/// CPU has `isa`.
unsafe fn plane_for(isa: Isa, p: &Plane) {
    use super::kernels;
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => kernels::avx512::depthwise_plane(p),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => kernels::avx2::depthwise_plane(p),
        _ => kernels::scalar::depthwise_plane(p),
    }
}

/// Target output floats per work item: enough to amortise handing it out.
const ITEM_OUTPUTS: usize = 16 * 1024;

pub(crate) struct Call<'a> {
    pub isa: Isa,
    pub g: DwGeom,
    pub channels: usize,
    pub images: usize,
    /// `[channels][kh * kw]`.
    pub taps: &'a [f32],
    pub bias: &'a [f32],
    pub act: Epilogue,
}

pub(crate) fn run(call: &Call, input: &[f32], out: &mut [f32], threads: &Threads) {
    let Call { isa, g, channels, images, taps, bias, act } = *call;
    let (in_plane, out_plane, ntaps) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    let planes = images * channels;
    assert_eq!(input.len(), planes * in_plane);
    assert_eq!(out.len(), planes * out_plane);
    assert_eq!(taps.len(), channels * ntaps);
    assert_eq!(bias.len(), channels);

    let mut per_item = ITEM_OUTPUTS.div_ceil(out_plane).max(1);
    let want = 4 * threads.count();
    if threads.count() > 1 && planes.div_ceil(per_item) < want {
        per_item = (planes / want).max(1);
    }
    let items = planes.div_ceil(per_item);
    let cols = Cols::new(&g, lanes(isa));
    let y = SendPtr(out.as_mut_ptr());

    let item = |i: usize| {
        for pl in i * per_item..((i + 1) * per_item).min(planes) {
            let c = pl % channels;
            let p = Plane {
                g,
                x: input[pl * in_plane..].as_ptr(),
                // SAFETY (of the offset): plane `pl < planes` of `out`.
                y: unsafe { y.get().add(pl * out_plane) },
                taps: taps[c * ntaps..].as_ptr(),
                bias: bias[c],
                act,
                cols: &cols,
            };
            // SAFETY: input plane has h*w floats, output plane oh*ow and is written by this
            // item only, `cols` is for this ISA's lanes, and the ISA was checked when the
            // conv was packed.
            unsafe { plane_for(isa, &p) };
        }
    };
    threads.for_each(items, &item);
}
