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
//! * Planes whose rows fill at most half a vector (MobileNet's 7x7 maps: 7 of 16 lanes)
//!   go flat instead, at stride 1 with the output as wide as the input: output
//!   pixel `p` and tap `(ky, kx)` read input `p + (ky - pt) * w + kx - pl`, one shift per
//!   tap, so vectors run over the plane's pixels across rows, each tap's load masked to the
//!   lanes whose input is inside the image (`Flat`, worked out once per call). A 7x7 plane
//!   is 4 vectors x 9 taps instead of 7 rows x 9 taps, three of them border rows: 960
//!   such planes 0.069 -> 0.041 ms on one core. (14 wide, 14 of 16 lanes, the rows win:
//!   they load each input vector once for three output rows, 0.053 against 0.081 ms.)
//!
//! Each input plane is read from memory once and each output plane written once.

use super::kernels::simd::{activate, store_n, Simd};
use super::pack::valid_range;
use super::threads::{share, SendPtr, Threads};
use super::{Epilogue, Isa};

/// Geometry of one channel plane: a depthwise conv's group is one plane, so this is its
/// im2col view with `c == 1` (`PackedConv::geom`).
pub(crate) use super::pack::Geom as DwGeom;

impl DwGeom {
    /// Output rows whose every tap row lies inside the input: `lo .. hi`.
    pub(crate) fn inner_rows(&self) -> (usize, usize) {
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
    pub(crate) fn new(g: &DwGeom, lanes: usize) -> Cols {
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

    /// Whether every tap column of output column vector `c` loads whole.
    pub(crate) fn whole(&self, c: usize) -> bool {
        self.whole[c]
    }
}

/// The `LANES` input columns of a whole output column vector at `src` (its lane 0's), at
/// the conv's column stride.
///
/// Safety: those columns are inside the input row.
#[inline(always)]
pub(crate) unsafe fn load_whole<S: Simd>(g: &DwGeom, src: *const f32) -> S::V {
    match g.sw {
        1 => S::load(src),
        2 => S::load_lanes_stride2(src, 0, S::LANES),
        s => strided::<S>(src, s, 0, S::LANES),
    }
}

/// Output column vector `c` (first column `ox`) of tap column `kx` from input row `row`:
/// the lanes inside the image, zeros elsewhere, at the conv's column stride.
///
/// Safety: `row` is an input row of `g`; `cols` was made for `g` and `S::LANES`.
#[inline(always)]
pub(crate) unsafe fn load_cols<S: Simd>(
    g: &DwGeom,
    cols: &Cols,
    row: *const f32,
    c: usize,
    ox: usize,
    kx: usize,
) -> S::V {
    let (a, b) = cols.lanes[c * g.kw + kx];
    let (a, b) = (a as usize, b as usize);
    // Input column of lane 0 (wrapping: masked-off lanes are never read).
    let src = row.wrapping_offset((ox * g.sw + kx * g.dw) as isize - g.pl as isize);
    match g.sw {
        _ if a >= b => S::zero(),
        _ if a == 0 && b == S::LANES => load_whole::<S>(g, src),
        1 => S::load_lanes(src, a, b),
        2 => S::load_lanes_stride2(src, a, b),
        s => strided::<S>(src, s, a, b),
    }
}

/// The flat form of a small plane (see the module doc): per tap its input shift, per
/// (vector of output pixels, tap) the lanes whose input is inside the image. Vectors come
/// in groups of [`FLAT_GROUP`]; the masks of a group's missing vectors are empty.
pub(crate) struct Flat {
    vectors: usize,
    shifts: Vec<isize>,
    /// `[vector][tap]`, bit `t` for lane `t`.
    masks: Vec<u32>,
}

/// Output vectors a flat plane accumulates at once (independent FMA chains).
const FLAT_GROUP: usize = 4;

impl Flat {
    /// `None` unless the plane suits the flat form: stride 1, output rows as wide as the
    /// input's and at most half a vector of `lanes`.
    pub(crate) fn new(g: &DwGeom, lanes: usize) -> Option<Flat> {
        if g.sh != 1 || g.sw != 1 || g.ow != g.w || 2 * g.ow > lanes || lanes > 32 {
            return None;
        }
        let pixels = g.oh * g.ow;
        let vectors = pixels.div_ceil(lanes);
        let taps: Vec<(isize, isize)> = (0..g.kh)
            .flat_map(|ky| (0..g.kw).map(move |kx| (ky, kx)))
            .map(|(ky, kx)| ((ky * g.dh) as isize - g.pt as isize, (kx * g.dw) as isize - g.pl as isize))
            .collect();
        let shifts = taps.iter().map(|&(dy, dx)| dy * g.w as isize + dx).collect();
        let mut masks = vec![0u32; vectors.next_multiple_of(FLAT_GROUP) * taps.len()];
        for (v, row) in masks.chunks_exact_mut(taps.len()).enumerate().take(vectors) {
            for (bits, &(dy, dx)) in row.iter_mut().zip(&taps) {
                for t in 0..lanes {
                    let p = v * lanes + t;
                    let (iy, ix) = ((p / g.ow) as isize + dy, (p % g.ow) as isize + dx);
                    if p < pixels && (0..g.h as isize).contains(&iy) && (0..g.w as isize).contains(&ix) {
                        *bits |= 1 << t;
                    }
                }
            }
        }
        Some(Flat { vectors, shifts, masks })
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
    /// The flat form, where the plane suits it.
    pub flat: Option<&'a Flat>,
}

/// Per-plane kernel for `S`; each ISA wraps it in a `#[target_feature]` function.
///
/// Safety: the pointers hold what `Plane` says, `cols` was made for `S::LANES`.
#[inline(always)]
pub(crate) unsafe fn plane<S: Simd>(p: &Plane) {
    if let Some(flat) = p.flat {
        return plane_flat::<S>(p, flat);
    }
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

/// The flat form: groups of [`FLAT_GROUP`] output vectors, each tap's weight broadcast
/// once per group and its masked loads feeding every vector of the group.
#[inline(always)]
unsafe fn plane_flat<S: Simd>(p: &Plane, f: &Flat) {
    let pixels = p.g.oh * p.g.ow;
    let taps = f.shifts.len();
    for v0 in (0..f.vectors).step_by(FLAT_GROUP) {
        let mut acc = [S::splat(p.bias); FLAT_GROUP];
        for (t, &shift) in f.shifts.iter().enumerate() {
            let wv = S::splat(*p.taps.add(t));
            for (r, acc) in acc.iter_mut().enumerate() {
                let v = v0 + r;
                // Lanes outside the image (and whole vectors past the plane) are masked
                // off, never read.
                let src = p.x.wrapping_offset((v * S::LANES) as isize + shift);
                *acc = S::fmadd(wv, S::load_mask(src, f.masks[v * taps + t]), *acc);
            }
        }
        for (r, &a) in acc.iter().enumerate() {
            let first = (v0 + r) * S::LANES;
            if first < pixels {
                store_n::<S>(p.y.add(first), activate::<S>(a, p.act), S::LANES.min(pixels - first));
            }
        }
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
    // Inner rows 4 at a time, the 1-3 left over as 2 and 1 (a strip of the fused
    // expansion has 14 rows: 2 of every 14 went through the general kernel, 3x slower).
    let mut oy = 0;
    while oy < p.g.oh {
        let inner = if oy >= lo { hi.saturating_sub(oy) } else { 0 };
        oy += match inner {
            4.. => {
                rows3::<S, 4, ST>(p, oy, &w);
                4
            }
            2..=3 => {
                rows3::<S, 2, ST>(p, oy, &w);
                2
            }
            1 => {
                rows3::<S, 1, ST>(p, oy, &w);
                1
            }
            _ => {
                rows::<S, 1, true, ST>(p, oy);
                1
            }
        };
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

pub(crate) fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
        Isa::Scalar => 1,
    }
}

/// Run one plane with `isa`'s kernel. Safety: `p` is valid for `isa`'s lane count, and the
/// CPU has `isa`.
pub(crate) unsafe fn plane_for(isa: Isa, p: &Plane) {
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

/// Work items for `planes` planes of `out_plane` outputs on `threads` threads: about
/// [`ITEM_OUTPUTS`] each, at least 4 per thread while there are planes for them, and a
/// multiple of the thread count where that leaves an item at least a plane. Items take
/// near-equal shares of the planes: with a short last item (192 planes in items of 21:
/// nine of 21, one of 3) one thread wrote 105 planes and the other 87, and the 1x1 conv
/// after it waited on the thread that read more of its input from the other core.
fn items(planes: usize, out_plane: usize, threads: usize) -> usize {
    let mut items = planes.div_ceil(ITEM_OUTPUTS.div_ceil(out_plane).max(1));
    if threads > 1 {
        items = items.max(4 * threads);
        if items.next_multiple_of(threads) <= planes {
            items = items.next_multiple_of(threads);
        }
    }
    items.min(planes).max(1)
}

pub(crate) struct Call<'a> {
    pub isa: Isa,
    pub g: DwGeom,
    pub channels: usize,
    pub images: usize,
    /// `[channels][kh * kw]`.
    pub taps: &'a [f32],
    pub bias: &'a [f32],
    /// Any activation: ReLU and ReLU6 in the kernel's stores, the others on each work
    /// item's output just after the kernel wrote it, in the core's cache.
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

    let items = items(planes, out_plane, threads.count());
    let cols = Cols::new(&g, lanes(isa));
    let flat = Flat::new(&g, lanes(isa));
    let y = SendPtr(out.as_mut_ptr());

    let item = |i: usize| {
        let (first, end) = share(planes, items, i);
        for pl in first..end {
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
                flat: flat.as_ref(),
            };
            // SAFETY: input plane has h*w floats, output plane oh*ow and is written by this
            // item only, `cols` is for this ISA's lanes, and the ISA was checked when the
            // conv was packed.
            unsafe { plane_for(isa, &p) };
        }
        if !act.in_kernel() {
            // The activations the kernel leaves to a pass, on the planes just written.
            // SAFETY: planes first..end of `out`, this item's own.
            let written =
                unsafe { std::slice::from_raw_parts_mut(y.get().add(first * out_plane), (end - first) * out_plane) };
            super::kernels::activate_in_place(isa, written, act);
        }
    };
    threads.for_each(items, &item);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(h: usize, w: usize, k: usize, s: usize, pad: usize) -> DwGeom {
        let (oh, ow) = ((h + 2 * pad - k) / s + 1, (w + 2 * pad - k) / s + 1);
        DwGeom { c: 1, h, w, kh: k, kw: k, sh: s, sw: s, dh: 1, dw: 1, pt: pad, pl: pad, oh, ow }
    }

    /// Planes each thread runs when it takes its own run of the items (`threads.rs`).
    fn planes_per_thread(planes: usize, out_plane: usize, threads: usize) -> Vec<usize> {
        let items = items(planes, out_plane, threads);
        (0..threads)
            .map(|t| {
                let (a, b) = share(items, threads, t);
                (a..b).map(|i| share(planes, items, i)).map(|(p, q)| q - p).sum()
            })
            .collect()
    }

    #[test]
    fn items_share_the_planes_evenly_between_threads() {
        // MobileNetV2 at batch 1, 2 threads: 192 planes of 28x28 in 10 items of 19-20
        // planes, 96 per thread (fixed items of 21 planes gave 105 and 87).
        assert_eq!(items(192, 784, 2), 10);
        assert_eq!(planes_per_thread(192, 784, 2), [96, 96]);
        // 96 planes of 56x56 (stride 2 from 112x112), 960 of 7x7, 16 images of 144 planes.
        assert_eq!(planes_per_thread(96, 3136, 2), [48, 48]);
        assert_eq!(planes_per_thread(960, 49, 2), [480, 480]);
        assert_eq!(planes_per_thread(16 * 144, 3136, 2), [1152, 1152]);
        // Three threads: a multiple of three items; an odd plane count differs by one.
        assert_eq!(items(192, 784, 3) % 3, 0);
        assert_eq!(planes_per_thread(191, 784, 3), [63, 64, 64]);
        // Fewer planes than the wanted items: one plane each; one thread: no minimum.
        assert_eq!(items(3, 49, 2), 3);
        assert_eq!(items(192, 784, 1), 10);
        assert_eq!(items(1, 49, 1), 1);
    }

    #[test]
    fn flat_form_only_for_narrow_same_width_planes() {
        // MobileNet's 7x7 maps at 16 lanes, not at 8 (7 of 8 lanes: rows), not 14 wide,
        // not stride 2, not a valid (unpadded) conv whose output is narrower than its input.
        assert!(Flat::new(&geom(7, 7, 3, 1, 1), 16).is_some());
        assert!(Flat::new(&geom(7, 7, 3, 1, 1), 8).is_none());
        assert!(Flat::new(&geom(14, 14, 3, 1, 1), 16).is_none());
        assert!(Flat::new(&geom(56, 56, 3, 1, 1), 16).is_none());
        assert!(Flat::new(&geom(14, 14, 3, 2, 1), 16).is_none());
        assert!(Flat::new(&geom(7, 7, 3, 1, 0), 16).is_none());
    }

    #[test]
    fn flat_masks_keep_exactly_the_taps_inside_the_image() {
        let g = geom(7, 7, 3, 1, 1);
        let f = Flat::new(&g, 16).unwrap();
        assert_eq!(f.vectors, 4); // 49 pixels
        assert_eq!(f.shifts, [-8, -7, -6, -1, 0, 1, 6, 7, 8]);
        // Pixel (0, 0): the taps up or left are outside; pixel 48 (6, 6): down or right.
        let lane = |p: usize, tap: usize| f.masks[(p / 16) * 9 + tap] >> (p % 16) & 1;
        assert_eq!((0..9).map(|t| lane(0, t)).collect::<Vec<_>>(), [0, 0, 0, 0, 1, 1, 0, 1, 1]);
        assert_eq!((0..9).map(|t| lane(48, t)).collect::<Vec<_>>(), [1, 1, 0, 1, 1, 0, 0, 0, 0]);
        // Pixel 13 (1, 6): nothing to its right; pixel 14 (2, 0): nothing to its left.
        assert_eq!((0..9).map(|t| lane(13, t)).collect::<Vec<_>>(), [1, 1, 0, 1, 1, 0, 1, 1, 0]);
        assert_eq!((0..9).map(|t| lane(14, t)).collect::<Vec<_>>(), [0, 1, 1, 0, 1, 1, 0, 1, 1]);
        // Lanes past the plane, and the group's missing vector, load nothing.
        assert!((0..9).all(|t| f.masks[3 * 9 + t] >> 1 == 0));
        assert_eq!(f.masks.len(), 4 * 9);
    }
}
