//! Max pooling of NCHW f32 planes straight from the unpadded input: each window is clipped
//! to the input (padding never wins a max), planes spread over the conv threads. Replaces,
//! at inference on the packed path, candle's pad-with-minus-infinity copy followed by its
//! single-threaded pool. The global average pool likewise: each plane's mean, planes spread
//! over the threads, in place of candle's single-threaded `mean_keepdim` (ResNet-50 at batch
//! 16: 0.77 ms against onnxruntime's 0.21).
//!
//! The 3x3 stride-2 max pool after a stem (ResNet, GoogLeNet) has a kernel of its own per
//! ISA ([`pool3s2_plane`]): each output row's three input rows reduced in vectors, then the
//! column triples taken two apart by permutes; the general path splits each strided row
//! into phases first (ResNet-50's pool on one thread: 0.191 ms general, 0.087 ms its own).

use super::isa::widest_vectors;
use super::kernels::simd::{load_n, prefetch_l2, store_n, Simd};
use super::kernels::{kernel_set, KernelSet};
use super::{ConvError, Isa, Threads};

/// A pool's window geometry: kernel, stride, leading padding and output size (the output
/// size carries the trailing padding and any ceil-mode rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Top and left padding.
    pub pad_before: [usize; 2],
    pub out_hw: [usize; 2],
}

/// Planes per work item at least this many output elements.
const MIN_ITEM: usize = 1 << 12;

/// `max(m, v)` where a NaN wins, as in PyTorch. `NAN`: the plane may hold NaNs. Without
/// them, a plain compare-and-select: one `vmaxps` where the result goes to a fresh place
/// ([`reduce_of`]). (`f32::max` costs a compare and a blend more per element for its NaN
/// rule; and a select written back over its own input, `*m = max(*m, v)`, becomes a
/// masked store of `v` that the next tap's loads stall on: a ResNet stem pool took 1.4 ms
/// instead of 0.1.)
#[inline(always)]
fn mx<const NAN: bool>(m: f32, v: f32) -> f32 {
    if !NAN {
        if m > v {
            m
        } else {
            v
        }
    } else if v > m || v.is_nan() {
        v
    } else {
        m
    }
}

/// How a separable pool ([`plane_body`]) combines the elements of a window: the maximum
/// ([`Max`]) or the sum ([`Sum`], an average pool's before its divisor).
pub(super) trait Reduce {
    /// A window with nothing in it (every tap in the padding).
    const EMPTY: f32;
    /// Give up on a plane where a NaN shows (a [`Max`] that assumed none).
    const BAILS_ON_NAN: bool;
    /// `a` combined with `b`, into a fresh place.
    fn two(a: f32, b: f32) -> f32;
    /// `acc` combined with `v`, written back over `acc` (no masked store).
    fn fold(acc: f32, v: f32) -> f32;
}

/// The maximum; `NAN`: the plane may hold NaNs, which win ([`mx`]).
pub(super) struct Max<const NAN: bool>;

impl<const NAN: bool> Reduce for Max<NAN> {
    const EMPTY: f32 = f32::NEG_INFINITY;
    const BAILS_ON_NAN: bool = !NAN;
    #[inline(always)]
    fn two(a: f32, b: f32) -> f32 {
        mx::<NAN>(a, b)
    }
    #[inline(always)]
    fn fold(acc: f32, v: f32) -> f32 {
        if NAN {
            mx::<true>(acc, v)
        } else {
            acc.max(v)
        }
    }
}

/// The sum (a NaN or infinity carries through by itself).
pub(super) struct Sum;

impl Reduce for Sum {
    const EMPTY: f32 = 0.0;
    const BAILS_ON_NAN: bool = false;
    #[inline(always)]
    fn two(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn fold(acc: f32, v: f32) -> f32 {
        acc + v
    }
}

/// `out[i] = R over s in starts of base[s + i]`. Up to three sources in one pass that only
/// writes `out`, so it vectorizes to plain maxima or sums; more fold into `out`.
#[inline(always)]
fn reduce_of<R: Reduce>(out: &mut [f32], base: &[f32], starts: &[usize]) {
    let n = out.len();
    let src = |i: usize| &base[starts[i]..starts[i] + n];
    match starts.len() {
        0 => out.fill(R::EMPTY),
        1 => out.copy_from_slice(src(0)),
        2 => {
            for ((o, &a), &b) in out.iter_mut().zip(src(0)).zip(src(1)) {
                *o = R::two(a, b);
            }
        }
        more => {
            for (((o, &a), &b), &c) in out.iter_mut().zip(src(0)).zip(src(1)).zip(src(2)) {
                *o = R::two(R::two(a, b), c);
            }
            for i in 3..more {
                for (o, &v) in out.iter_mut().zip(src(i)) {
                    *o = R::fold(*o, v);
                }
            }
        }
    }
}

/// Output positions `o` whose window tap `k` lands inside `0..n`: `o * s + k - pad` in range.
fn taps_inside(k: usize, pad: usize, s: usize, n: usize, out: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(k).div_ceil(s);
    let hi = (n + pad).saturating_sub(k).div_ceil(s).min(out);
    (lo, hi.max(lo))
}

/// One plane of a 3x3 stride-2 max pool (ResNet's and GoogLeNet's after the stem) with
/// at most one row and column of leading padding: [`pool3s2_plane`].
pub(crate) struct Pool3s2Job {
    pub x: *const f32,
    pub h: usize,
    pub w: usize,
    /// Leading padding, rows and columns (0 or 1).
    pub pad: [usize; 2],
    pub out_hw: [usize; 2],
    pub out: *mut f32,
    /// Scratch of [`pool3s2_rows`] rows of [`pool3s2_row_len`] floats each, minus infinity
    /// outside columns `1..=w` of every row (the kernel writes only those).
    pub rows: *mut f32,
    /// The next plane this thread pools (`h * w` floats), or null: asked for while this one
    /// is pooled, where small ([`SMALL_PLANE_FLOATS`]).
    pub next: *const f32,
}

/// Planes at most this large (64x64) are pooled in two passes after a NaN scan, and the next
/// one is asked for meanwhile ([`pool3s2_plane`]).
const SMALL_PLANE_FLOATS: usize = 4096;

/// Rows of [`Pool3s2Job::rows`]: one per output row of a small plane, else one.
pub(crate) fn pool3s2_rows(h: usize, w: usize, oh: usize) -> usize {
    if h * w <= SMALL_PLANE_FLOATS {
        oh.max(1)
    } else {
        1
    }
}

/// Floats of each row of [`Pool3s2Job::rows`]: a padded row of column maxima, and the slack
/// the last vector of taps reads (`2 * lanes + 1` floats for `lanes` outputs).
pub(crate) fn pool3s2_row_len(w: usize, ow: usize) -> usize {
    (w + 2).max(2 * ow.next_multiple_of(16) + 2)
}

/// [`Pool3s2Job`] in vectors: per output row, the maximum of its (up to) three input rows
/// into a row of the buffer with minus infinity either side ([`column_maxima`]), then each
/// output the maximum of three neighbouring columns of it, taken two apart ([`row_taps`]).
/// Every input float is read once or twice, no phase copies.
///
/// A small plane ([`SMALL_PLANE_FLOATS`]) goes through the first pass whole, then the
/// second, after a scan for NaNs that asks for the next plane ([`nan_free`]). One output row
/// through both passes at a time, the taps' loads spanned the row's stores still in flight
/// (the last one masked) and waited for them to land: on SqueezeNet 1.1's 27x27 planes, 31%
/// of the kernel's time on the instruction after them. A large plane goes a row at a time,
/// as its long rows hide that wait and the NaN scan is folded into the first pass:
/// Inception-v4's 64 x 147x147 pool took 0.32 ms the small planes' way against 0.24.
///
/// Returns false, the output unfinished, where the plane may hold a NaN (its sum of `x * 0`
/// is NaN: an infinity gives a false alarm), which `vmaxps` would not let win: the caller
/// then pools it NaN-aware.
///
/// Safety: `x` holds `h * w` floats, `out` `oh * ow`, `rows` as [`Pool3s2Job::rows`] says;
/// every window holds at least one input row (`2 (oh - 1) < h + pad`).
#[inline(always)]
pub(crate) unsafe fn pool3s2_plane<S: Simd>(j: &Pool3s2Job) -> bool {
    let (h, w, oh) = (j.h, j.w, j.out_hw[0]);
    let row_len = pool3s2_row_len(w, j.out_hw[1]);
    let row = |i: usize| j.rows.add(i * row_len);
    if h * w <= SMALL_PLANE_FLOATS {
        if !nan_free::<S>(j.x, h * w, j.next) {
            return false;
        }
        for oy in 0..oh {
            column_maxima::<S>(j, oy, row(oy), None);
        }
        for oy in 0..oh {
            row_taps::<S>(j, oy, row(oy));
        }
        return true;
    }
    let mut nan = S::zero();
    for oy in 0..oh {
        column_maxima::<S>(j, oy, row(0), Some(&mut nan));
        row_taps::<S>(j, oy, row(0));
    }
    let mut lanes = [0.0f32; 64];
    S::store(lanes.as_mut_ptr(), nan);
    !lanes[..S::LANES].iter().any(|v| v.is_nan())
}

/// Output row `oy`'s column maxima over its window's input rows into `row` (input column
/// `c` at `row[c + 1]`); each input vector's `x * 0` added into `nan` if given.
#[inline(always)]
unsafe fn column_maxima<S: Simd>(j: &Pool3s2Job, oy: usize, row: *mut f32, mut nan: Option<&mut S::V>) {
    let (h, w, pt) = (j.h, j.w, j.pad[0]);
    let cols = row.add(1);
    let first = (2 * oy).saturating_sub(pt);
    let last = (2 * oy + 3 - pt).min(h);
    debug_assert!(first < last, "a window with no input row");
    let mut c = 0;
    while c < w {
        let n = (w - c).min(S::LANES);
        let load = |y: usize| load_n::<S>(j.x.add(y * w + c), n);
        let mut m = load(first);
        if let Some(nan) = nan.as_deref_mut() {
            *nan = S::fmadd(m, S::zero(), *nan);
        }
        for y in first + 1..last {
            let v = load(y);
            if let Some(nan) = nan.as_deref_mut() {
                *nan = S::fmadd(v, S::zero(), *nan);
            }
            m = S::max(m, v);
        }
        store_n::<S>(cols.add(c), m, n);
        c += S::LANES;
    }
}

/// Output row `oy` from its column maxima in `row` ([`column_maxima`]).
#[inline(always)]
unsafe fn row_taps<S: Simd>(j: &Pool3s2Job, oy: usize, row: *mut f32) {
    let ow = j.out_hw[1];
    // Output ox's window starts at column 2 ox - pl.
    let taps = row.add(1 - j.pad[1]);
    let o = j.out.add(oy * ow);
    let mut ox = 0;
    while ox < ow {
        let [a, b, t] = S::load_taps3_stride2(taps.add(2 * ox));
        let m = S::max(S::max(a, b), t);
        store_n::<S>(o.add(ox), m, ow - ox);
        ox += S::LANES;
    }
}

/// Whether the `n` floats at `x` hold no NaN: their sum of `x * 0` is not NaN (an infinity
/// gives a false alarm), summed in four chains of FMAs (one chain waited on each FMA's
/// latency, 14% of the 3x3 stride-2 pool's time). Unless null, the `n` floats at `next`
/// are asked for on the way, a line for each line read (all at once, the requests waited
/// for each other).
///
/// Safety: `x` holds `n` floats.
#[inline(always)]
unsafe fn nan_free<S: Simd>(x: *const f32, n: usize, next: *const f32) -> bool {
    const LINE: usize = 16;
    let ask = |i: usize| {
        if !next.is_null() {
            prefetch_l2(next.wrapping_add(i));
        }
    };
    let mut acc = [S::zero(); 4];
    let mut i = 0;
    while i + 4 * S::LANES <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            *acc = S::fmadd(S::load(x.add(i + k * S::LANES)), S::zero(), *acc);
        }
        for line in (0..4 * S::LANES).step_by(LINE) {
            ask(i + line);
        }
        i += 4 * S::LANES;
    }
    while i < n {
        let v = load_n::<S>(x.add(i), n - i);
        acc[0] = S::fmadd(v, S::zero(), acc[0]);
        for line in (0..S::LANES).step_by(LINE) {
            ask(i + line);
        }
        i += S::LANES;
    }
    let sum = S::add(S::add(acc[0], acc[1]), S::add(acc[2], acc[3]));
    let mut lanes = [0.0f32; 64];
    S::store(lanes.as_mut_ptr(), sum);
    !lanes[..S::LANES].iter().any(|v| v.is_nan())
}

widest_vectors! {
    /// The planes whose outputs are `out` (`first` is the first one's index in `x`), one at
    /// a time, separably: each input row's maxima over the horizontal windows into `rows`
    /// (`h x ow`), then each output row the maximum of its window's rows. Both passes run over
    /// whole rows, so they vectorize; windows are clipped to the input. A strided row is first
    /// split into its `sw` phases, after which every tap reads a contiguous run.
    fn pool_planes(x: &[f32], first: usize, h: usize, w: usize, s: &PoolSpec, taps: &[HTap], out: &mut [f32]) {
        let (mut rows, mut phases, mut starts) = (Vec::new(), Vec::new(), Vec::new());
        for (p, o) in out.chunks_mut(s.out_hw[0] * s.out_hw[1]).enumerate() {
            let x = &x[(first + p) * h * w..(first + p + 1) * h * w];
            // A strided pool reads every input once as it splits the rows and notices a NaN
            // there (then its plane is redone); others (2x2 windows two apart too, which
            // split nothing) look for one first. (A fold, not
            // `any`: without the early exit the scan vectorizes.)
            let splits = s.stride[1] > 1 && s.out_hw != [1, 1] && !in_pairs(s, h, w);
            let nan = !splits && x.chunks(256).any(|c| c.iter().fold(false, |nan, v| nan | v.is_nan()));
            if nan || !plane_body::<Max<false>>(x, h, w, s, taps, o, &mut rows, &mut phases, &mut starts) {
                plane_body::<Max<true>>(x, h, w, s, taps, o, &mut rows, &mut phases, &mut starts);
            }
        }
    }
}

/// The planes whose outputs are `out` on the 3x3 stride-2 kernel (`ks.pool3s2`), each
/// plane where it finds a NaN pooled again NaN-aware (`pool_planes`).
#[allow(clippy::too_many_arguments)]
fn pool3s2_planes(
    ks: &KernelSet,
    x: &[f32],
    first: usize,
    h: usize,
    w: usize,
    s: &PoolSpec,
    taps: &[HTap],
    out: &mut [f32],
) {
    let [oh, ow] = s.out_hw;
    let mut rows = vec![f32::NEG_INFINITY; pool3s2_rows(h, w, oh) * pool3s2_row_len(w, ow)];
    let planes = out.len() / (oh * ow);
    for (p, o) in out.chunks_exact_mut(oh * ow).enumerate() {
        let plane = first + p;
        let job = Pool3s2Job {
            x: x[plane * h * w..(plane + 1) * h * w].as_ptr(),
            h,
            w,
            pad: s.pad_before,
            out_hw: s.out_hw,
            out: o.as_mut_ptr(),
            rows: rows.as_mut_ptr(),
            next: if p + 1 < planes { x[(plane + 1) * h * w..].as_ptr() } else { std::ptr::null() },
        };
        // SAFETY: the plane, its output and the row buffer have the sizes the job says;
        // `max_pool`'s caller sized the output so that every window starts inside.
        if !unsafe { (ks.pool3s2)(&job) } {
            pool_planes(x, plane, h, w, s, taps, o);
        }
    }
}

/// One plane `x` (`h x w`) pooled by `R` into `out`, separably (see [`pool_planes`]); the
/// `rows`, `phases` and `starts` buffers are reused across planes. Returns false, `out`
/// unfinished, where `R` bails on a NaN it met.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn plane_body<R: Reduce>(
    x: &[f32],
    h: usize,
    w: usize,
    s: &PoolSpec,
    taps: &[HTap],
    out: &mut [f32],
    rows: &mut Vec<f32>,
    phases: &mut Vec<f32>,
    starts: &mut Vec<usize>,
) -> bool {
    let [kh, kw] = s.kernel;
    let [sh, sw] = s.stride;
    let [pt, pl] = s.pad_before;
    let [oh, ow] = s.out_hw;
    if s.stride == [1, 1] && s.out_hw == [h, w] && h >= kh && w >= kw {
        same_size_plane::<R>(x, h, w, s, out, rows, starts);
        return true;
    }
    if in_pairs(s, h, w) {
        pairs_plane::<R>(x, w, s.out_hw, out, rows);
        return true;
    }
    if oh == 1 && ow == 1 {
        // One window over the plane (a pool to 1x1, as proxies end with): its rows reduced
        // directly, no per-row bookkeeping.
        // Window rows k - pt and columns k - pl, clipped to the plane.
        let (y1, x1) = (kh.saturating_sub(pt).min(h), kw.saturating_sub(pl).min(w));
        let mut m = R::EMPTY;
        for row in x.chunks_exact(w).take(y1) {
            m = row[..x1].iter().fold(m, |m, &v| R::two(m, v));
        }
        out[0] = m;
        return true;
    }
    // Every element of every row is written below (the taps' common span, then the edges).
    rows.resize(rows.len().max(h * ow), 0.0);
    let pw = w.div_ceil(sw); // floats per phase
    phases.resize(sw * pw, 0.0);
    for (src, r) in x.chunks_exact(w).zip(rows.chunks_exact_mut(ow)) {
        let src = if sw == 1 {
            src
        } else {
            if split_phases(src, sw, pw, phases) && R::BAILS_ON_NAN {
                return false;
            }
            &phases[..]
        };
        // Outputs every tap reaches at once, then the few at the edges tap by tap.
        let (lo, hi) = taps.iter().fold((0, ow), |(lo, hi), t| (lo.max(t.lo), hi.min(t.hi)));
        let lo = lo.min(hi);
        starts.clear();
        starts.extend(taps.iter().map(|t| t.start + (lo - t.lo)));
        reduce_of::<R>(&mut r[lo..hi], src, starts);
        for o in (0..lo).chain(hi..ow) {
            let inside = taps.iter().filter(|t| (t.lo..t.hi).contains(&o));
            r[o] = inside.fold(R::EMPTY, |m, t| R::two(m, src[t.start + o - t.lo]));
        }
    }
    for (oy, o) in out.chunks_exact_mut(ow).enumerate().take(oh) {
        starts.clear();
        // Window rows oy * sh + k - pt, clipped to the plane.
        let rows_in = (0..kh).map(|k| (oy * sh + k).wrapping_sub(pt)).filter(|&y| y < h);
        starts.extend(rows_in.map(|y| y * ow));
        reduce_of::<R>(o, rows, starts);
    }
    true
}

/// [`plane_body`] for a stride-1 pool whose output is the size of its input (Inception's
/// and GoogLeNet's 3x3 pools with padding 1): both passes run over the whole plane as one
/// flat run of floats, a window's columns (rows) `1` (`w`) floats apart, and only the
/// edges, where a flat window would wrap into the next row or fall off the plane, are
/// redone or done row by row. (Row by row, a 35-wide row ran as two vectors and scalar
/// tails in each pass: 4-5 cycles an output.)
#[inline(always)]
fn same_size_plane<R: Reduce>(
    x: &[f32],
    h: usize,
    w: usize,
    s: &PoolSpec,
    out: &mut [f32],
    rows: &mut Vec<f32>,
    starts: &mut Vec<usize>,
) {
    let ([kh, kw], [pt, pl]) = (s.kernel, s.pad_before);
    // The same size at stride 1: kw - 1 - pl columns (kh - 1 - pt rows) of trailing padding.
    let (pr, pb) = (kw - 1 - pl, kh - 1 - pt);
    let hw = h * w;
    rows.resize(rows.len().max(hw), 0.0);
    let rows = &mut rows[..hw];
    // Horizontal, flat: rows[i] = R over t of x[i + t - pl], right away from the side edges.
    starts.clear();
    starts.extend(0..kw);
    reduce_of::<R>(&mut rows[pl..hw - pr], x, starts);
    if kw == 3 && pl == 1 {
        // Inception's branch pools: each row's first and last column, their two columns
        // inside. (The general fold below cost a 7x7 plane more than its vector passes.)
        for (src, r) in x.chunks_exact(w).zip(rows.chunks_exact_mut(w)) {
            r[0] = R::two(src[0], src[1]);
            r[w - 1] = R::two(src[w - 2], src[w - 1]);
        }
    } else {
        for (src, r) in x.chunks_exact(w).zip(rows.chunks_exact_mut(w)) {
            for o in (0..pl).chain(w - pr..w) {
                let (lo, hi) = (o.saturating_sub(pl), (o + pr + 1).min(w));
                r[o] = src[lo + 1..hi].iter().fold(src[lo], |m, &v| R::two(m, v));
            }
        }
    }
    // Vertical, flat over the rows whose windows lie inside; the top and bottom rows alone.
    starts.clear();
    starts.extend((0..kh).map(|k| k * w));
    reduce_of::<R>(&mut out[pt * w..(h - pb) * w], rows, starts);
    for oy in (0..pt).chain(h - pb..h) {
        starts.clear();
        starts.extend((oy.saturating_sub(pt)..(oy + pb + 1).min(h)).map(|y| y * w));
        reduce_of::<R>(&mut out[oy * w..(oy + 1) * w], rows, starts);
    }
}

/// Whether [`pairs_plane`] pools an `h x w` plane.
fn in_pairs(s: &PoolSpec, h: usize, w: usize) -> bool {
    let [oh, ow] = s.out_hw;
    s.kernel == [2, 2] && s.stride == [2, 2] && s.pad_before == [0, 0] && 2 * oh <= h + 1 && 2 * ow <= w + 1
}

/// [`plane_body`] for 2x2 windows two apart with no leading padding (VGG's max pools,
/// DenseNet's average ones; ceil sizes take a last lone row or column): each output row
/// reduces its two input rows into `rows`, a flat run, then neighbouring pairs of that.
/// (Split into phases first, DenseNet's 256 x 56x56 pool took 0.30 ms on one thread.)
#[inline(always)]
fn pairs_plane<R: Reduce>(x: &[f32], w: usize, [oh, ow]: [usize; 2], out: &mut [f32], rows: &mut Vec<f32>) {
    rows.resize(rows.len().max(w), 0.0);
    let both = &mut rows[..w];
    let whole = w / 2; // columns with both pairs inside
    for (oy, o) in out.chunks_exact_mut(ow).enumerate().take(oh) {
        let top = &x[2 * oy * w..][..w];
        match x.get((2 * oy + 1) * w..(2 * oy + 2) * w) {
            Some(bottom) => {
                for ((b, &t), &u) in both.iter_mut().zip(top).zip(bottom) {
                    *b = R::two(t, u);
                }
            }
            None => both.copy_from_slice(top),
        }
        for (o, pair) in o.iter_mut().zip(both.chunks_exact(2)) {
            *o = R::two(pair[0], pair[1]);
        }
        if ow > whole {
            o[whole] = both[w - 1];
        }
    }
}

/// One horizontal window tap, the same for every row of every plane: row results `lo..hi`
/// take it from the row (or its phases) at `start..`.
#[derive(Clone, Copy)]
pub(super) struct HTap {
    lo: usize,
    hi: usize,
    start: usize,
}

/// The taps that land inside a row of `w` (worked out once per call: the divisions cost
/// more than a small plane's maxima).
pub(super) fn horizontal_taps(s: &PoolSpec, w: usize) -> Vec<HTap> {
    let (kw, sw, pl, ow) = (s.kernel[1], s.stride[1], s.pad_before[1], s.out_hw[1]);
    let pw = w.div_ceil(sw);
    (0..kw)
        .filter_map(|k| {
            let (lo, hi) = taps_inside(k, pl, sw, w, ow);
            // Column o * sw + k - pl of the row is phase (k - pl) mod sw, element o + (k - pl) div sw.
            let shift = k as isize - pl as isize;
            let (phase, q) = (shift.rem_euclid(sw as isize) as usize, shift.div_euclid(sw as isize));
            let start = ((phase * pw) as isize + lo as isize + q) as usize;
            (lo < hi).then_some(HTap { lo, hi, start })
        })
        .collect()
}

/// `phases[r * pw + i] = src[i * sw + r]` (the tail of a short phase left as it was: no
/// tap inside the row reads it). Returns whether `src` holds a NaN.
#[inline(always)]
fn split_phases(src: &[f32], sw: usize, pw: usize, phases: &mut [f32]) -> bool {
    let mut nan = false;
    if sw == 2 {
        let (even, odd) = phases.split_at_mut(pw);
        for ((pair, e), o) in src.chunks_exact(2).zip(even.iter_mut()).zip(odd.iter_mut()) {
            *e = pair[0];
            *o = pair[1];
            nan |= pair[0].is_nan() | pair[1].is_nan();
        }
        if src.len() % 2 == 1 {
            even[pw - 1] = src[src.len() - 1];
            nan |= even[pw - 1].is_nan();
        }
        return nan;
    }
    for (i, chunk) in src.chunks(sw).enumerate() {
        for (r, &v) in chunk.iter().enumerate() {
            phases[r * pw + i] = v;
            nan |= v.is_nan();
        }
    }
    nan
}

widest_vectors! {
    /// Each `hw`-float plane of `x`'s mean into `out`, summed in 8 interleaved partial sums
    /// (vectorizable; one running sum would chain every add on the last).
    fn plane_means(x: &[f32], hw: usize, out: &mut [f32]) {
        for (o, plane) in out.iter_mut().zip(x.chunks_exact(hw)) {
            let mut acc = [0.0f32; 8];
            let mut chunks = plane.chunks_exact(8);
            for c in &mut chunks {
                for (a, &v) in acc.iter_mut().zip(c) {
                    *a += v;
                }
            }
            let tail: f32 = chunks.remainder().iter().sum();
            *o = (acc.iter().sum::<f32>() + tail) / hw as f32;
        }
    }
}

/// Planes per work item of the global average pool: at least this many input floats.
const MEAN_ITEM: usize = 1 << 14;

/// Global average pool: `out[p]` = the mean of plane `p` of `x` (`planes` planes of `hw`).
pub fn global_avg_pool(
    x: &[f32],
    planes: usize,
    hw: usize,
    out: &mut [f32],
    threads: &Threads,
) -> Result<(), ConvError> {
    if hw == 0 || x.len() != planes * hw || out.len() != planes {
        return Err(ConvError::new(format!(
            "global average pool of {} elements ({planes} planes of {hw}) into {}: the sizes do not agree",
            x.len(),
            out.len()
        )));
    }
    let per_item = MEAN_ITEM.div_ceil(hw).max(1);
    if threads.count() == 1 || planes <= per_item {
        plane_means(x, hw, out);
        return Ok(());
    }
    threads.for_each_chunk(out, per_item, &|i, o| {
        let first = i * per_item;
        plane_means(&x[first * hw..(first + o.len()) * hw], hw, o);
    });
    Ok(())
}

/// Max-pool `planes` planes of `h x w` into `out` (`planes x out_h x out_w`).
pub fn max_pool(
    x: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    s: &PoolSpec,
    out: &mut [f32],
    threads: &Threads,
) -> Result<(), ConvError> {
    let [oh, ow] = s.out_hw;
    let taps = horizontal_taps(s, w);
    // The kernel reads the first row of every window: each must start inside the plane.
    let fast = (s.kernel == [3, 3]
        && s.stride == [2, 2]
        && s.pad_before.iter().all(|&p| p <= 1)
        && oh > 0
        && 2 * (oh - 1) < h + s.pad_before[0]
        && ow > 0)
        .then(|| kernel_set(Isa::detect()));
    plane_items("max", x, planes, h, w, s, out, threads, &|first, o| match &fast {
        Some(ks) => pool3s2_planes(ks, x, first, h, w, s, &taps, o),
        None => pool_planes(x, first, h, w, s, &taps, o),
    })
}

/// `(first, out)`: the planes from `first` on pooled into `out` (whole output planes).
pub(super) type PlanesFrom<'a> = dyn Fn(usize, &mut [f32]) + Sync + 'a;

/// An NCHW pool's work (`what`: "max" or "average", for its errors): its sizes checked, then
/// `pool(first, out)` for runs of whole planes of at least `MIN_ITEM` outputs, spread over
/// the threads.
#[allow(clippy::too_many_arguments)]
pub(super) fn plane_items(
    what: &str,
    x: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    s: &PoolSpec,
    out: &mut [f32],
    threads: &Threads,
    pool: &PlanesFrom<'_>,
) -> Result<(), ConvError> {
    let [oh, ow] = s.out_hw;
    if x.len() != planes * h * w || out.len() != planes * oh * ow || s.stride.contains(&0) || s.kernel.contains(&0) {
        return Err(ConvError::new(format!(
            "{what} pool of {} elements ({planes} planes of {h}x{w}) into {} ({oh}x{ow} each), kernel {:?}, \
             stride {:?}: the sizes do not agree",
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
        pool(0, out);
        return Ok(());
    }
    threads.for_each_chunk(out, out_plane * per_item, &|i, o| pool(i * per_item, o));
    Ok(())
}

/// Max-pool `n` blocked images (`[n][c / 16][h][w][16]`, `blocked.rs`) of `c` channels
/// into `out`, blocked the same way: each output pixel's 16 channels the vector maximum of
/// its window's pixels inside the input (a NaN wins, as on NCHW planes).
#[allow(clippy::too_many_arguments)]
pub fn max_pool_blocked(
    x: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    s: &PoolSpec,
    out: &mut [f32],
    threads: &Threads,
) -> Result<(), ConvError> {
    blocked_pixel_items("max", x, n, c, h, w, s, out, threads, &|src, dst, p0, columns| {
        max_pixels_blocked(src, dst, h, w, s, p0, columns)
    })
}

/// `(src, dst, p0, columns)`: output pixels `p0..` of one blocked plane into `dst`, with
/// `columns` (`w * BLOCK` floats, contents unspecified) to work in ([`blocked_pixel_items`]).
pub(super) type PixelsOfPlane<'a> = dyn Fn(&[f32], &mut [f32], usize, &mut [f32]) + Sync + 'a;

/// A blocked pool's work (`what`: "max" or "average", for its errors): `pool(src, dst, p0,
/// columns)` for every work item, `src` one blocked plane of 16 channels (`h x w` pixels),
/// `dst` its output pixels `p0..` and `columns` the thread's scratch. Work items are (image, pixel range) over every block, cut as
/// the blocked convs beside it cut theirs (`blocked::chunks`), so each thread reads the
/// pixels its core wrote.
#[allow(clippy::too_many_arguments)]
pub(super) fn blocked_pixel_items(
    what: &str,
    x: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    s: &PoolSpec,
    out: &mut [f32],
    threads: &Threads,
    pool: &PixelsOfPlane<'_>,
) -> Result<(), ConvError> {
    use super::blocked::{chunks, BLOCK};
    let [oh, ow] = s.out_hw;
    let sizes_agree = x.len() == n * c * h * w && out.len() == n * c * oh * ow;
    let window_fits = s.pad_before[0] < s.kernel[0] && s.pad_before[1] < s.kernel[1];
    if !sizes_agree || !c.is_multiple_of(BLOCK) || s.stride.contains(&0) || !window_fits {
        return Err(ConvError::new(format!(
            "blocked {what} pool of {} elements ({n} images of {c} channels, {h}x{w}) into {} ({oh}x{ow} each), \
             kernel {:?}, stride {:?}, padding {:?}: the sizes do not agree, the channels are not whole blocks \
             of {BLOCK}, or a window lies in the padding",
            x.len(),
            out.len(),
            s.kernel,
            s.stride,
            s.pad_before
        )));
    }
    let (hw, ohw) = (h * w, oh * ow);
    if ohw == 0 || n == 0 {
        return Ok(());
    }
    let per_image = chunks(n, ohw, threads.count());
    let out_ptr = super::threads::SendPtr(out.as_mut_ptr());
    threads.for_each(n * per_image, &|i| {
        let (img, (p0, p1)) = (i / per_image, super::threads::share(ohw, per_image, i % per_image));
        super::scratch::with_scratch(w * BLOCK, |columns| {
            for b in 0..c / BLOCK {
                let plane = img * c / BLOCK + b;
                let src = &x[plane * hw * BLOCK..][..hw * BLOCK];
                // SAFETY: pixels p0..p1 of this plane are this item's alone, inside `out`.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(out_ptr.get().add((plane * ohw + p0) * BLOCK), (p1 - p0) * BLOCK)
                };
                pool(src, dst, p0, columns);
            }
        })
    });
    Ok(())
}

/// Rows `y0..y1` and columns `x0..x1` of an `h x w` input that output pixel (`oy`, `ox`)'s
/// window covers (the window clipped to the input; its padding `< kernel`).
#[inline(always)]
pub(super) fn window_inside(s: &PoolSpec, oy: usize, ox: usize, h: usize, w: usize) -> (usize, usize, usize, usize) {
    let (iy0, ix0) = (oy * s.stride[0], ox * s.stride[1]);
    let (y0, y1) = (iy0.saturating_sub(s.pad_before[0]), (iy0 + s.kernel[0] - s.pad_before[0]).min(h));
    let (x0, x1) = (ix0.saturating_sub(s.pad_before[1]), (ix0 + s.kernel[1] - s.pad_before[1]).min(w));
    (y0, y1, x0, x1)
}

widest_vectors! {
    /// Output pixels `p0 ..` (as many as `dst` holds, `BLOCK` floats each) of one blocked
    /// plane `src` of `h x w` pixels (a NaN wins its windows).
    #[allow(clippy::too_many_arguments)]
    fn max_pixels_blocked(src: &[f32], dst: &mut [f32], h: usize, w: usize, s: &PoolSpec, p0: usize, columns: &mut [f32]) {
        reduce_pixels_blocked::<Max<true>>(src, dst, h, w, s, p0, columns);
    }
}

/// Output pixels `p0 ..` (as many as `dst` holds, `BLOCK` floats each) of one blocked plane
/// `src` of `h x w` pixels, each its window's pixels inside the input reduced by `R`; an
/// output row's run of pixels at a time, separably: its window rows reduced column by column
/// (flat runs of floats), then each pixel its window's columns of those. (A pixel's window
/// reduced in one chain of `kh * kw` dependent adds ran at their latency: 34 cycles a pixel.)
/// `columns`: `w * BLOCK` floats of scratch for a row's reduced columns.
#[inline(always)]
pub(super) fn reduce_pixels_blocked<R: Reduce>(
    src: &[f32],
    dst: &mut [f32],
    h: usize,
    w: usize,
    s: &PoolSpec,
    p0: usize,
    columns: &mut [f32],
) {
    const B: usize = super::blocked::BLOCK;
    let ow = s.out_hw[1];
    let [kw, pl] = [s.kernel[1], s.pad_before[1]];
    // At stride 1, the output columns whose windows lie inside the input: `ox - pl` and
    // `ox - pl + kw` within `0..=w`.
    let inner = if s.stride[1] == 1 { (pl, (w + pl + 1).saturating_sub(kw)) } else { (0, 0) };
    let (mut oy, mut ox0) = (p0 / ow, p0 % ow);
    let (mut rows, mut taps) = (Vec::with_capacity(s.kernel[0]), Vec::with_capacity(kw));
    let mut done = 0;
    while done < dst.len() {
        let ox1 = ow.min(ox0 + (dst.len() - done) / B);
        let (y0, y1, c0, _) = window_inside(s, oy, ox0, h, w);
        let c1 = window_inside(s, oy, ox1 - 1, h, w).3.max(c0);
        // The window's rows in one pass that only writes the run (up to three of them).
        rows.clear();
        rows.extend((y0..y1).map(|y| (y * w + c0) * B));
        reduce_of::<R>(&mut columns[c0 * B..c1 * B], src, &rows);
        let run = &mut dst[done..done + (ox1 - ox0) * B];
        // Whole windows at stride 1 in one flat pass over the run, as the rows: a loop per
        // pixel over its window's columns took 23 cycles a pixel.
        let (a, b) = (inner.0.clamp(ox0, ox1), inner.1.clamp(ox0, ox1));
        if a < b {
            taps.clear();
            taps.extend((0..kw).map(|k| (a - pl + k) * B));
            reduce_of::<R>(&mut run[(a - ox0) * B..(b - ox0) * B], columns, &taps);
        }
        for (ox, px) in (ox0..ox1).zip(run.chunks_exact_mut(B)) {
            if (a..b).contains(&ox) {
                continue;
            }
            let (_, _, x0, x1) = window_inside(s, oy, ox, h, w);
            let mut acc = [R::EMPTY; B];
            for c in columns[x0 * B..x1 * B].chunks_exact(B) {
                for (a, &v) in acc.iter_mut().zip(c) {
                    *a = R::two(*a, v);
                }
            }
            px.copy_from_slice(&acc);
        }
        done += run.len();
        (oy, ox0) = (oy + 1, 0);
    }
}

/// Max pooling's input gradient (training): each output's gradient goes to the first
/// largest element of its window in row-major order, a NaN taking it from any number, as
/// PyTorch routes it (`dx` overwritten). Planes are the work items.
#[allow(clippy::too_many_arguments)]
pub fn max_pool_grad(
    x: &[f32],
    dy: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    s: &PoolSpec,
    dx: &mut [f32],
    threads: &Threads,
) -> Result<(), ConvError> {
    let [oh, ow] = s.out_hw;
    if x.len() != planes * h * w || dx.len() != x.len() || dy.len() != planes * oh * ow || s.stride.contains(&0) {
        return Err(ConvError::new(format!(
            "max pool gradient of {} elements ({planes} planes of {h}x{w}) from {} gradients ({oh}x{ow} each) into \
             {}: the sizes do not agree",
            x.len(),
            dy.len(),
            dx.len()
        )));
    }
    let (plane, out_plane) = (h * w, oh * ow);
    threads.for_each_chunk(dx, plane.max(1), &|p, dx| {
        dx.fill(0.0);
        let (x, dy) = (&x[p * plane..][..plane], &dy[p * out_plane..][..out_plane]);
        for oy in 0..oh {
            let y0 = (oy * s.stride[0]) as isize - s.pad_before[0] as isize;
            let rows = (y0.max(0) as usize)..((y0 + s.kernel[0] as isize).clamp(0, h as isize) as usize);
            for ox in 0..ow {
                let x0 = (ox * s.stride[1]) as isize - s.pad_before[1] as isize;
                let cols = (x0.max(0) as usize)..((x0 + s.kernel[1] as isize).clamp(0, w as isize) as usize);
                let mut best: Option<(usize, f32)> = None;
                for iy in rows.clone() {
                    for ix in cols.clone() {
                        let v = x[iy * w + ix];
                        if best.is_none_or(|(_, m)| v > m || v.is_nan()) {
                            best = Some((iy * w + ix, v));
                        }
                    }
                }
                if let Some((at, _)) = best {
                    dx[at] += dy[oy * ow + ox];
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pad with minus infinity, then take every window's max: the definition.
    fn naive(x: &[f32], planes: usize, h: usize, w: usize, s: &PoolSpec) -> Vec<f32> {
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
            (6, 9, 7, [2, 2], [2, 2], [0, 0], [1, 1]),
            (3, 4, 4, [4, 4], [1, 1], [0, 0], [0, 0]),
            (700, 14, 14, [3, 3], [1, 1], [1, 1], [0, 0]),
            // stride 1, the output the input's size (flat passes; the last too small for them)
            (5, 9, 12, [2, 3], [1, 1], [0, 1], [1, 1]),
            (3, 6, 7, [5, 4], [1, 1], [3, 1], [1, 2]),
            (2, 3, 9, [5, 3], [1, 1], [2, 1], [2, 1]),
            (3, 9, 11, [5, 5], [1, 1], [2, 2], [0, 0]),
            // strides 3 (phases of unequal length), odd widths, a stride past the kernel
            (4, 10, 11, [3, 3], [3, 3], [1, 1], [1, 0]),
            (6, 9, 13, [2, 3], [3, 2], [0, 1], [0, 1]),
            (2, 5, 7, [1, 1], [2, 3], [0, 0], [0, 0]),
            // 3x3 stride 2 (its own kernel): padding 0 or 1 each way, ceil sizes, rows
            // wider than two vectors, a plane of one row or one column
            (3, 112, 112, [3, 3], [2, 2], [1, 1], [0, 0]),
            (2, 17, 37, [3, 3], [2, 2], [0, 1], [1, 1]),
            (2, 16, 34, [3, 3], [2, 2], [1, 0], [1, 1]),
            (4, 9, 40, [3, 3], [2, 2], [0, 0], [0, 1]),
            (2, 1, 5, [3, 3], [2, 2], [1, 1], [1, 0]),
            (2, 6, 1, [3, 3], [2, 2], [1, 1], [1, 1]),
            // (and an output taller than the windows inside the plane: the general path)
            (1, 4, 9, [3, 3], [2, 2], [1, 1], [4, 0]),
            // the whole plane to 1x1 (with and without padding in the window)
            (9, 7, 7, [7, 7], [7, 7], [0, 0], [0, 0]),
            (3, 5, 6, [4, 5], [4, 5], [1, 2], [0, 0]),
        ] {
            let oh = (h + pad[0] + extra[0] - kernel[0]) / stride[0] + 1;
            let ow = (w + pad[1] + extra[1] - kernel[1]) / stride[1] + 1;
            let s = PoolSpec { kernel, stride, pad_before: pad, out_hw: [oh, ow] };
            let x: Vec<f32> = (0..planes * h * w).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
            let want = naive(&x, planes, h, w, &s);
            for t in &threads {
                let mut out = vec![f32::NAN; planes * oh * ow];
                max_pool(&x, planes, h, w, &s, &mut out, t).unwrap();
                assert_eq!(out, want, "{planes}x{h}x{w} k{kernel:?} s{stride:?} p{pad:?}+{extra:?}");
            }
        }
    }

    /// Blocked images (`[n][c / 16][h][w][16]`) give what NCHW planes give, blocked: every
    /// geometry of the test above, batches of 1-3 cut into pixel ranges that split rows, a
    /// NaN winning its windows; channels off whole blocks are an error.
    #[test]
    fn blocked_images_pool_as_their_planes() {
        use crate::exec::cpu::{from_blocked, to_blocked, BLOCK};
        let threads = [Threads::single(), Threads::new(3).unwrap().always_parallel()];
        for (i, (n, c, h, w, kernel, stride, pad, extra)) in [
            (1, 64, 112, 112, [3, 3], [2, 2], [1, 1], [0, 0]),
            (2, 16, 7, 6, [3, 3], [2, 2], [1, 1], [0, 0]),
            (3, 32, 13, 11, [3, 2], [2, 1], [0, 1], [1, 0]),
            (1, 48, 9, 9, [2, 2], [2, 2], [1, 0], [1, 1]),
            (2, 16, 10, 11, [3, 3], [3, 3], [1, 1], [1, 0]),
            (1, 16, 1, 5, [3, 3], [2, 2], [1, 1], [1, 0]),
            (2, 32, 5, 6, [4, 5], [4, 5], [1, 2], [0, 0]),
            // stride 1: a flat pass over the whole windows of a row (Inception's 3x3, and 5x5)
            (2, 16, 9, 11, [3, 3], [1, 1], [1, 1], [0, 0]),
            (1, 16, 9, 11, [5, 5], [1, 1], [2, 2], [0, 0]),
        ]
        .into_iter()
        .enumerate()
        {
            let oh = (h + pad[0] + extra[0] - kernel[0]) / stride[0] + 1;
            let ow = (w + pad[1] + extra[1] - kernel[1]) / stride[1] + 1;
            let s = PoolSpec { kernel, stride, pad_before: pad, out_hw: [oh, ow] };
            let mut x: Vec<f32> = (0..n * c * h * w).map(|j| ((j * 7919) % 101) as f32 - 50.0).collect();
            let at = (i * 31) % x.len();
            x[at] = f32::NAN;
            let want = naive_nan(&x, n * c, h, w, &s);
            for t in &threads {
                let mut out = vec![0.5; n * c * oh * ow];
                max_pool_blocked(&to_blocked(&x, n, c, h * w), n, c, h, w, &s, &mut out, t).unwrap();
                let got = from_blocked(&out, n, c, oh * ow);
                let same = got.iter().zip(&want).all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
                assert!(same, "{n}x{c}x{h}x{w} k{kernel:?} s{stride:?} p{pad:?}+{extra:?}, {t:?}");
            }
        }
        let s = PoolSpec { kernel: [2, 2], stride: [2, 2], pad_before: [0, 0], out_hw: [2, 2] };
        let e = max_pool_blocked(&[0.0; 24 * 16], 1, 24, 4, 4, &s, &mut [0.0; 24 * 4], &Threads::single()).unwrap_err();
        assert!(e.to_string().contains(&format!("whole blocks of {BLOCK}")), "{e}");
    }

    /// [`naive`] with a NaN in a window winning it, as PyTorch's max pool does.
    fn naive_nan(x: &[f32], planes: usize, h: usize, w: usize, s: &PoolSpec) -> Vec<f32> {
        let mut poisoned = vec![0.0f32; x.len()];
        for (p, v) in poisoned.iter_mut().zip(x) {
            *p = if v.is_nan() { f32::INFINITY } else { 0.0 };
        }
        let clean: Vec<f32> = x.iter().map(|v| if v.is_nan() { f32::NEG_INFINITY } else { *v }).collect();
        let (mut out, nan) = (naive(&clean, planes, h, w, s), naive(&poisoned, planes, h, w, s));
        for (o, n) in out.iter_mut().zip(nan) {
            if n == f32::INFINITY {
                *o = f32::NAN;
            }
        }
        out
    }

    /// Each output's gradient lands on its window's first maximum (ties are common: the
    /// input repeats values), summed where windows overlap; sizes that disagree are errors.
    #[test]
    fn gradients_go_to_the_first_maximum_of_each_window() {
        for (planes, h, w, kernel, stride, pad, extra) in [
            (3, 9, 8, [3, 3], [2, 2], [1, 1], [0, 0]),
            (2, 7, 7, [2, 3], [1, 2], [0, 1], [1, 0]),
            (40, 5, 6, [3, 3], [1, 1], [1, 1], [0, 0]),
        ] {
            let oh = (h + pad[0] + extra[0] - kernel[0]) / stride[0] + 1;
            let ow = (w + pad[1] + extra[1] - kernel[1]) / stride[1] + 1;
            let s = PoolSpec { kernel, stride, pad_before: pad, out_hw: [oh, ow] };
            let x: Vec<f32> = (0..planes * h * w).map(|i| ((i * 7919) % 13) as f32).collect();
            let dy: Vec<f32> = (0..planes * oh * ow).map(|i| i as f32 * 0.25 + 1.0).collect();
            let mut want = vec![0.0f32; x.len()];
            for p in 0..planes {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut best: Option<(usize, f32)> = None;
                        for ky in 0..kernel[0] {
                            for kx in 0..kernel[1] {
                                let (iy, ix) = (
                                    (oy * stride[0] + ky) as isize - pad[0] as isize,
                                    (ox * stride[1] + kx) as isize - pad[1] as isize,
                                );
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let at = p * h * w + iy as usize * w + ix as usize;
                                if best.is_none() || x[at] > best.unwrap().1 {
                                    best = Some((at, x[at]));
                                }
                            }
                        }
                        want[best.unwrap().0] += dy[(p * oh + oy) * ow + ox];
                    }
                }
            }
            for t in [Threads::single(), Threads::new(3).unwrap()] {
                let mut dx = vec![f32::NAN; x.len()];
                max_pool_grad(&x, &dy, planes, h, w, &s, &mut dx, &t).unwrap();
                assert_eq!(dx, want, "{planes}x{h}x{w} k{kernel:?} s{stride:?} p{pad:?}");
            }
            assert!(max_pool_grad(&x, &dy[1..], planes, h, w, &s, &mut vec![0.0; x.len()], &Threads::single()).is_err());
        }
    }

    #[test]
    fn nan_wins_its_windows_and_only_those() {
        // Stride 1 looks for NaNs before pooling; stride 2 notices them while splitting
        // the rows into phases (even and odd columns, and an odd width's last column), the
        // 3x3 stride-2 kernel in its scan's four chains (element 85: the second) and tail, or
        // on a plane over 64x64 in its first pass (row 40: never a window's first row).
        for (h, w, stride, nan_at) in [
            (6, 6, 1, (2, 3)),
            (7, 8, 2, (3, 5)),
            (7, 9, 2, (4, 4)),
            (5, 9, 2, (1, 8)),
            (9, 40, 2, (8, 33)),
            (9, 40, 2, (2, 5)),
            (70, 70, 2, (40, 33)),
        ] {
            let mut x: Vec<f32> = (0..h * w).map(|i| i as f32).collect();
            x[nan_at.0 * w + nan_at.1] = f32::NAN;
            let out_hw = [(h + 2 - 3) / stride + 1, (w + 2 - 3) / stride + 1];
            let s = PoolSpec { kernel: [3, 3], stride: [stride; 2], pad_before: [1, 1], out_hw };
            let mut out = vec![0.0; out_hw[0] * out_hw[1]];
            max_pool(&x, 1, h, w, &s, &mut out, &Threads::single()).unwrap();
            for oy in 0..out_hw[0] {
                for ox in 0..out_hw[1] {
                    // The window of (oy, ox) covers rows oy * stride - 1 ..= oy * stride + 1.
                    let covers = |o: usize, at: usize| (o * stride).abs_diff(at) <= 1;
                    let near = covers(oy, nan_at.0) && covers(ox, nan_at.1);
                    assert_eq!(out[oy * out_hw[1] + ox].is_nan(), near, "{h}x{w} stride {stride}: ({oy}, {ox})");
                }
            }
        }
        // 2x2 windows two apart (their own pass, ceil sizes with a lone last row or column).
        for (h, w, nan_at) in [(8, 8, (3, 5)), (7, 9, (6, 8)), (7, 9, (2, 0))] {
            let mut x: Vec<f32> = (0..h * w).map(|i| i as f32).collect();
            x[nan_at.0 * w + nan_at.1] = f32::NAN;
            let s =
                PoolSpec { kernel: [2, 2], stride: [2, 2], pad_before: [0, 0], out_hw: [h.div_ceil(2), w.div_ceil(2)] };
            let mut out = vec![0.0; s.out_hw[0] * s.out_hw[1]];
            max_pool(&x, 1, h, w, &s, &mut out, &Threads::single()).unwrap();
            let want = naive_nan(&x, 1, h, w, &s);
            assert_eq!(out.iter().filter(|v| v.is_nan()).count(), 1, "{h}x{w}");
            assert!(out.iter().zip(&want).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())), "{h}x{w}");
        }
    }

    #[test]
    fn global_means_match_the_definition_on_any_thread_count() {
        for (planes, hw) in [(1, 1), (3, 7), (2048, 49), (96, 12544), (5, 1000)] {
            let x: Vec<f32> = (0..planes * hw).map(|i| ((i * 7919) % 101) as f32 * 0.25 - 12.0).collect();
            let want: Vec<f32> =
                x.chunks(hw).map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32).collect();
            for t in [Threads::single(), Threads::new(2).unwrap()] {
                let mut out = vec![f32::NAN; planes];
                global_avg_pool(&x, planes, hw, &mut out, &t).unwrap();
                for (p, (&o, &w)) in out.iter().zip(&want).enumerate() {
                    assert!((o - w).abs() <= 1e-5 * (1.0 + w.abs()), "{planes}x{hw} plane {p}: {o} vs {w}");
                }
            }
        }
        let e = global_avg_pool(&[0.0; 10], 3, 3, &mut [0.0; 3], &Threads::single()).unwrap_err();
        assert!(e.to_string().contains("10 elements (3 planes of 3)"), "{e}");
    }

    #[test]
    fn wrong_sizes_are_an_error() {
        let s = PoolSpec { kernel: [2, 2], stride: [2, 2], pad_before: [0, 0], out_hw: [2, 2] };
        let mut out = vec![0.0; 3];
        let e = max_pool(&[0.0; 16], 1, 4, 4, &s, &mut out, &Threads::single()).unwrap_err();
        assert!(e.to_string().contains("do not agree"), "{e}");
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    fn time(planes: usize, h: usize, w: usize, s: PoolSpec) -> f64 {
        let x: Vec<f32> = (0..planes * h * w).map(|i| ((i * 7919) % 101) as f32).collect();
        let mut out = vec![0.0; planes * s.out_hw[0] * s.out_hw[1]];
        let t = Threads::single();
        for _ in 0..3 {
            max_pool(&x, planes, h, w, &s, &mut out, &t).unwrap();
        }
        let t0 = std::time::Instant::now();
        for _ in 0..50 {
            max_pool(&x, planes, h, w, &s, &mut out, &t).unwrap();
        }
        t0.elapsed().as_secs_f64() * 1e3 / 50.0
    }

    /// `cargo test --release --lib pool::timing -- --ignored --nocapture`: one thread, ms.
    #[test]
    #[ignore]
    fn time_pools() {
        let stem = PoolSpec { kernel: [3, 3], stride: [2, 2], pad_before: [1, 1], out_hw: [56, 56] };
        eprintln!("ResNet stem pool, 64 x 112x112 -> 56x56: {:.3} ms", time(64, 112, 112, stem));
        let fire = PoolSpec { kernel: [3, 3], stride: [2, 2], pad_before: [0, 0], out_hw: [13, 13] };
        for planes in [256, 4096] {
            eprintln!("SqueezeNet's maxpool3, {planes} x 27x27 -> 13x13: {:.3} ms", time(planes, 27, 27, fire));
        }
        let same = |hw: usize| PoolSpec { kernel: [3, 3], stride: [1, 1], pad_before: [1, 1], out_hw: [hw, hw] };
        for (planes, hw) in [(256, 28), (512, 14), (832, 7)] {
            eprintln!("GoogLeNet's branch max pool, {planes} x {hw}x{hw}: {:.3} ms", time(planes, hw, hw, same(hw)));
        }
        let v4 = PoolSpec { kernel: [3, 3], stride: [2, 2], pad_before: [0, 0], out_hw: [73, 73] };
        eprintln!("Inception-v4's mixed_3a pool, 64 x 147x147 -> 73x73: {:.3} ms", time(64, 147, 147, v4));
        for (planes, hw) in [(480, 28), (832, 14)] {
            let half = PoolSpec { kernel: [3, 3], stride: [2, 2], pad_before: [0, 0], out_hw: [hw / 2, hw / 2] };
            eprintln!("GoogLeNet's 3x3 stride-2 pool, {planes} x {hw}x{hw}: {:.3} ms", time(planes, hw, hw, half));
        }
        let whole = PoolSpec { kernel: [7, 7], stride: [7, 7], pad_before: [0, 0], out_hw: [1, 1] };
        eprintln!("7x7 to 1x1, 1280 planes: {:.3} ms", time(1280, 7, 7, whole));
    }
}
