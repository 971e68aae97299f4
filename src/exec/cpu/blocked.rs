//! The blocked activation layout, `[n][c / 16][h][w][16]`: one pixel's 16 channels lie
//! together (onnxruntime's NCHWc), wherever every layer reading a tensor can take it.
//!
//! Why: at batch 1 on two threads, NCHW makes the layers of an inverted residual block cut
//! their work differently. A 1x1 conv and a depthwise conv on a 14x14 map cut by pixels
//! read every channel of their rows, and a depthwise conv on NCHW planes cuts well only by
//! channels, so the 1x1 projection after it read half its input from the other core's
//! cache (benches/peers/RESULTS.md sections 15-16: +15-25% on those layers). Blocked, a
//! depthwise conv computes a pixel's 16 channels as one vector, so every layer cuts by the
//! same pixel ranges ([`chunks`]): thread `t` owns the same pixels of every layer, and only
//! a depthwise conv's halo row crosses between cores.
//!
//! * 1x1 convs run on the channel-vectorized GEMM tile (`kernels/ctile.rs`; a strided one
//!   on its gathered pixels, `subsample.rs`, as ResNet's downsampling shortcuts), which
//!   reads B pixels `BLOCK` apart from a blocked input and stores its vectors as they are
//!   to a blocked output (no transpose). Either side may be NCHW, where the blocked stretch
//!   of a net begins or ends. Where the weights outweigh the activations twice over (7x7
//!   maps at batch 1: MobileNetV2's 960 -> 160 projection has 150 K weights for 49 pixels
//!   of 1120 channels) a 1x1 conv cuts by output channels instead ([`cut_by_channels`]):
//!   cut by pixels, each thread would read all of them.
//! * Convs on the direct grid that neither Winograd nor the stem kernel may take (ResNet's
//!   3x3 stride-2 convs) run on its channel tile (`gemm::run_channels`, `Call::layouts`):
//!   a blocked input copied into a blocked grid a vector at a time, a blocked output
//!   stored without the transpose.
//! * Depthwise convs: blocked in and out, any kernel, stride, dilation and padding.
//! * Global average pooling of a blocked input gives `[n][c]` as from NCHW.
//!
//! Which tensors of a net are blocked is the lowering's choice (`exec::lower`): those whose
//! every reader runs blocked, channels a multiple of [`BLOCK`].

use super::gemm::{gcd, plane_offsets, residual_ptr, KParts, B_FLOATS};
use super::kernels::{simd::activate, simd::Simd, CTile, KernelSet};
use super::pack::Geom;
use super::scratch::with_sums;
use super::threads::{share, SendPtr};
use super::{Epilogue, Isa, Threads};

/// Channels per block: one pixel's 16 channels lie together, `[n][c / BLOCK][h][w][BLOCK]`.
pub const BLOCK: usize = 16;

/// Work items per thread for one image's pixels (load balance against the tile count).
const RUNS_PER_THREAD: usize = 2;
/// Fewest pixels a chunk of a layer's work covers.
const MIN_CHUNK_PIXELS: usize = 8;

/// How a conv's input and output lie in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Layouts {
    /// The input is blocked (else NCHW).
    pub input: bool,
    /// The output, and a residual added to it, are blocked (else NCHW).
    pub output: bool,
}

impl Layouts {
    /// Both sides NCHW: every conv runs so.
    pub const NCHW: Layouts = Layouts { input: false, output: false };
    /// Both sides blocked (a depthwise conv's only blocked form).
    pub const BLOCKED: Layouts = Layouts { input: true, output: true };

    pub fn any_blocked(self) -> bool {
        self.input || self.output
    }
}

/// Offset of channel `ch`, pixel `p` in one blocked image of `hw` pixels.
#[inline]
fn at(ch: usize, p: usize, hw: usize) -> usize {
    (ch / BLOCK * hw + p) * BLOCK + ch % BLOCK
}

/// `n` NCHW images of `c` channels (a multiple of [`BLOCK`]) and `hw` pixels, blocked.
pub fn to_blocked(x: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    reorder(x, n, c, hw, |ch, p| ch * hw + p, |ch, p| at(ch, p, hw))
}

/// The inverse of [`to_blocked`].
pub fn from_blocked(x: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    reorder(x, n, c, hw, |ch, p| at(ch, p, hw), |ch, p| ch * hw + p)
}

/// Each image's float of channel `ch`, pixel `p` moved from `from(ch, p)` to `to(ch, p)`.
fn reorder(
    x: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    from: impl Fn(usize, usize) -> usize,
    to: impl Fn(usize, usize) -> usize,
) -> Vec<f32> {
    assert!(c.is_multiple_of(BLOCK) && x.len() == n * c * hw, "{n}x{c}x{hw} to or from blocked: {} floats", x.len());
    let mut out = vec![0.0; x.len()];
    for (src, dst) in x.chunks_exact(c * hw).zip(out.chunks_exact_mut(c * hw)) {
        for ch in 0..c {
            for p in 0..hw {
                dst[to(ch, p)] = src[from(ch, p)];
            }
        }
    }
    out
}

/// Pixel chunks per image a layer of `images` images of `pixels` output pixels is cut
/// into: work item `i` is image `i / chunks`, chunk `i % chunks`. Every blocked layer of a
/// net at one batch and map size cuts the same way, so thread `t` (which owns the `t`-th
/// run of items, `threads.rs`) computes the same pixels in each.
pub(crate) fn chunks(images: usize, pixels: usize, threads: usize) -> usize {
    let wanted = (threads * RUNS_PER_THREAD).div_ceil(images.max(1));
    wanted.min(pixels.div_ceil(MIN_CHUNK_PIXELS)).max(1)
}

/// Whether a 1x1 conv of `k -> m` channels over `pixels` pixels (all images) cuts its work
/// by output channels rather than by pixels. By pixels, each thread reads all the weights
/// (`k * m` floats, streamed from memory at batch 1); by channels, each reads all of its
/// input, half of it written by the other core, and (for a reader cut by pixels) half its
/// output crosses too (`(k + m) * pixels` floats in all). A float read from the other core
/// costs more than one streamed from memory, the more so where the two vCPUs sit on core
/// complexes with L3s of their own (benches/peers/RESULTS.md section 19), so the weights
/// must outnumber those floats twice over: ResNet-50's 14x14 convs (ratio 1.0-1.7) cut by
/// pixels (3-5% faster whole model), its 7x7 ones (8-14) and MobileNetV2's 7x7 ones (2.8;
/// by pixels 3-4% slower) by channels.
pub(crate) fn cut_by_channels(k: usize, m: usize, pixels: usize) -> bool {
    k * m > 2 * (k + m) * pixels
}

/// One 1x1 stride-1 conv on blocked or NCHW tensors.
pub(crate) struct Pointwise<'a> {
    pub kernels: KernelSet,
    /// A^T panels of `kernels.nc` channels, `[m / nc][k][nc]` (`GemmWeights`).
    pub panels: &'a [f32],
    /// Input channels (K) and output channels (M).
    pub k: usize,
    pub m: usize,
    pub bias: &'a [f32],
    /// Any activation: the kernels apply those they can in their stores
    /// ([`Epilogue::in_kernel`]), the others run on each tile just written ([`activate_tile`]).
    pub act: Epilogue,
    pub isa: Isa,
    pub images: usize,
    pub pixels: usize,
    pub layouts: Layouts,
    /// Added before the activation, laid out as the output.
    pub residual: Option<&'a [f32]>,
    /// The residual is the output itself: each tile reads it before writing there.
    pub residual_in_output: bool,
    /// Floats from one output image to the next, where not `m * pixels` (no residual):
    /// each image's output a run of a larger tensor's images (`gemm::Call::out_image`).
    pub out_image: Option<usize>,
}

/// Run a [`Pointwise`] conv: items are (image, pixel chunk), each running every panel of
/// output channels over its pixels in tiles of up to `max_pixels`; or, cut by channels
/// ([`cut_by_channels`]), (panel, image, part of its pixels), panels slowest, so a thread's
/// run of items is a run of panels.
pub(crate) fn run_pointwise(call: &Pointwise, input: &[f32], out: &mut [f32], threads: &Threads) {
    let Pointwise { kernels: ks, panels, k, m, pixels: hw, layouts, .. } = *call;
    assert_eq!(input.len(), call.images * k * hw);
    let out_image = match call.out_image {
        None => {
            assert_eq!(out.len(), call.images * m * hw);
            m * hw
        }
        Some(stride) => {
            assert!(call.residual.is_none() && !call.residual_in_output, "strided: no residual");
            assert!(stride >= m * hw && out.len() >= (call.images - 1) * stride + m * hw);
            stride
        }
    };
    assert_eq!(call.bias.len(), m);
    assert!(call.residual.is_none_or(|r| r.len() == out.len()));
    assert!(!layouts.input || k.is_multiple_of(BLOCK), "a blocked input has whole blocks");
    assert!(!layouts.output || m.is_multiple_of(BLOCK), "a blocked output has whole blocks");
    let nc = ks.nc;
    let panel = k * nc;
    assert_eq!(panels.len(), m.div_ceil(nc) * panel);
    let ctile = ks.ctile_layouts[layouts.input as usize][layouts.output as usize];
    // B row (input channel) `kk` of pixel 0, and the floats between pixels.
    let (offsets, pixel_stride): (Vec<u32>, usize) = if layouts.input {
        ((0..k).map(|kk| at(kk, 0, hw) as u32).collect(), BLOCK)
    } else {
        (plane_offsets(k, hw), 1)
    };
    // Output channel `ch`, pixel `q` of an image; the floats between (blocks of) channels.
    let (out_at, ldc): (fn(usize, usize, usize) -> usize, usize) = if layouts.output {
        (|ch, q, hw| at(ch - ch % BLOCK, q, hw), BLOCK * hw)
    } else {
        (|ch, q, hw| ch * hw + q, hw)
    };
    // Cut by output channels: an item per panel (per part of one, when the panels do not
    // share out evenly between the threads); else by pixels.
    let m_panels = m.div_ceil(nc);
    let kparts = KParts::new(k, &ks);
    let threads_n = threads.count();
    let (m_chunks, per_image) = if cut_by_channels(k, m, call.images * hw) {
        let parts = threads_n / gcd(threads_n, call.images * m_panels);
        (m_panels, parts.min(hw.div_ceil(MIN_CHUNK_PIXELS)).max(1))
    } else {
        (1, chunks(call.images, hw, threads_n))
    };
    let out_ptr = SendPtr(out.as_mut_ptr());
    let res_ptr = residual_ptr(call.residual, call.residual_in_output, out);
    let per_chunk = call.images * per_image;
    threads.for_each(m_chunks * per_chunk, &|i| {
        let (mc, rest) = (i / per_chunk, i % per_chunk);
        let (img, (pa, pb)) = (rest / per_image, share(hw, per_image, rest % per_image));
        let (ma, mb) = share(m_panels, m_chunks, mc);
        let tiles = (pb - pa).div_ceil(ks.max_pixels);
        if tiles == 0 {
            return;
        }
        let x = &input[img * k * hw..][..k * hw];
        let (c0, r0) = (img * out_image, res_ptr.get());
        // Runs of tiles whose B stays in L2 while every panel (each part of its K in turn,
        // `gemm::KParts`) passes over them (an image of 1024 channels at 14x14 is 800 KB).
        let runs = tiles.div_ceil((B_FLOATS / (ks.max_pixels * k)).max(1));
        with_sums(kparts.sums_len(tiles.div_ceil(runs)), |sums| {
            for run in 0..runs {
                let (ta, tb) = share(tiles, runs, run);
                for mp in ma..mb {
                    let ch = mp * nc;
                    // The panel after this one: the item's first again for the next run.
                    let next = if mp + 1 == mb && run + 1 < runs { ma } else { (mp + 1).min(m_panels - 1) };
                    for part in 0..kparts.parts {
                        let (k0, k1) = kparts.rows(part);
                        let pf = kparts.prefetch(mp, part, next, tb - ta);
                        // Tile t's pixels a .. b of the item's (`share`, one division a tile).
                        let mut b = ta * (pb - pa) / tiles;
                        for t in ta..tb {
                            let a = b;
                            b = (t + 1) * (pb - pa) / tiles;
                            let q = pa + a;
                            let o = c0 + out_at(ch, q, hw);
                            let ct = CTile {
                                kc: k1 - k0,
                                a: panels[mp * panel + k0 * nc..].as_ptr(),
                                b: x[q * pixel_stride..].as_ptr(),
                                boff: offsets[k0..].as_ptr(),
                                // SAFETY (of the offsets): `o` is inside `out`, as is every
                                // float of the tile (its channels and pixels are this item's).
                                c: unsafe { out_ptr.get().add(o) },
                                ldc,
                                m: nc.min(m - ch),
                                n: b - a,
                                bias: call.bias[ch..].as_ptr(),
                                res: if r0.is_null() { r0 } else { r0.wrapping_add(o) },
                                act: call.act,
                                pf: pf.pf(panels, t - ta),
                                pf_step: pf.step,
                                lane0: ch % BLOCK,
                                seg: 0,
                                row_step: 0,
                                sums: kparts.sums_of(sums, t - ta),
                                first_part: part == 0,
                                last_part: part + 1 == kparts.parts,
                            };
                            // SAFETY: the A^T panel's part has (k1 - k0) * nc floats; B rows
                            // `b + offsets[kk]` hold the tile's pixels `pixel_stride` apart
                            // inside the image; the C tile and its sums are this item's own;
                            // a blocked side has whole blocks (asserted).
                            unsafe { ctile(&ct) };
                            if ct.last_part && !call.act.in_kernel() {
                                let tile = Tile { c: ct.c, ldc, m: ct.m, n: ct.n, lane0: ct.lane0 };
                                // SAFETY: the tile just written, this item's own.
                                unsafe { activate_tile(call.isa, &tile, layouts.output, call.act) };
                            }
                        }
                    }
                }
            }
        });
    });
}

/// A C tile of a 1x1 conv's output: `m` channels from lane `lane0` of `n` pixels at `c`,
/// `ldc` floats between channels (NCHW) or between blocks of them (blocked; `c` at lane 0).
struct Tile {
    c: *mut f32,
    ldc: usize,
    m: usize,
    n: usize,
    lane0: usize,
}

/// `act` on a tile just written, while it is in this core's cache: the activations the
/// kernels leave to a pass ([`Epilogue::in_kernel`]; EfficientNet's SiLU). A pass over the
/// whole output after the conv read it back from memory, or from the other core's cache.
///
/// # Safety
/// The tile's floats are the caller's to write.
unsafe fn activate_tile(isa: Isa, t: &Tile, blocked: bool, act: Epilogue) {
    let run =
        |at: *mut f32, len: usize| super::kernels::activate_in_place(isa, std::slice::from_raw_parts_mut(at, len), act);
    if !blocked {
        (0..t.m).for_each(|r| run(t.c.add(r * t.ldc), t.n));
    } else if t.lane0 == 0 && t.m.is_multiple_of(BLOCK) {
        (0..t.m / BLOCK).for_each(|j| run(t.c.add(j * t.ldc), t.n * BLOCK));
    } else {
        // Part of a block (the scalar kernels' narrow tiles): lane by lane.
        for r in 0..t.m {
            let (block, lane) = ((t.lane0 + r) / BLOCK, (t.lane0 + r) % BLOCK);
            (0..t.n).for_each(|p| run(t.c.add(block * t.ldc + p * BLOCK + lane), 1));
        }
    }
}

/// One block of channels of a blocked depthwise conv over output pixels `p0..p1`.
pub(crate) struct DwJob {
    /// One group's geometry (a depthwise conv's group is one channel).
    pub g: Geom,
    /// The block's input plane, `h * w` pixels of `BLOCK` floats.
    pub input: *const f32,
    /// The block's output plane.
    pub output: *mut f32,
    /// The block's taps, `[kh * kw][BLOCK]`, and bias, `[BLOCK]`.
    pub taps: *const f32,
    pub bias: *const f32,
    pub act: Epilogue,
    /// Output pixels `p0..p1` (row-major over `oh x ow`).
    pub p0: usize,
    pub p1: usize,
}

/// The depthwise kernel over one [`DwJob`]: each output pixel's `BLOCK` channels as
/// vectors, the taps inside the input summed (a pixel whose window lies inside takes the
/// unchecked path).
#[inline(always)]
pub(crate) unsafe fn depthwise_block<S: Simd>(j: &DwJob) {
    // Stride 1 or 2 without dilation, as mobile nets have them, with their steps as
    // constants (the tap and pixel offsets become immediates).
    let plain = (j.g.dh, j.g.dw) == (1, 1) && j.g.sh == j.g.sw;
    match (j.g.kh, j.g.kw, if plain { j.g.sw } else { 0 }) {
        (3, 3, 1) => depthwise_fixed::<S, 3, 3, 1>(j),
        (3, 3, 2) => depthwise_fixed::<S, 3, 3, 2>(j),
        (3, 3, _) => depthwise_fixed::<S, 3, 3, 0>(j),
        (5, 5, 1) => depthwise_fixed::<S, 5, 5, 1>(j),
        (5, 5, 2) => depthwise_fixed::<S, 5, 5, 2>(j),
        (5, 5, _) => depthwise_fixed::<S, 5, 5, 0>(j),
        _ => depthwise_any::<S>(j),
    }
}

/// [`depthwise_block`] for a `KH x KW` kernel: the taps held in registers; `S1` is the
/// stride (both ways) of a conv without dilation, 0 where it is any. Row by row, the
/// pixels whose window lies inside the input across several at a time (their chains of
/// taps interleave: one pixel's chain alone waits on the FMA latency at every tap, and 384
/// channels of a 14x14 map took 29 us on one core where the FMAs need 6), those at the
/// left and right edges one by one; only the taps inside the input are summed.
#[inline(always)]
unsafe fn depthwise_fixed<S: Simd, const KH: usize, const KW: usize, const S1: usize>(j: &DwJob) {
    let mut g = j.g;
    if S1 > 0 {
        (g.sh, g.sw, g.dh, g.dw) = (S1, S1, 1, 1);
    }
    let row = g.w * BLOCK;
    // The first tap index at or past `lo` of a window starting at `start`, `step` apart.
    let first_at = |start: isize, step: usize, lo: isize, taps: usize| {
        (0..taps).find(|&k| start + (k * step) as isize >= lo).unwrap_or(taps)
    };
    // Output columns `x_lo..x_hi` have their window inside the input across.
    let x_lo = g.pl.div_ceil(g.sw).min(g.ow);
    let reach = (g.w + g.pl).checked_sub((KW - 1) * g.dw + 1);
    let x_hi = reach.map_or(0, |r| (r / g.sw + 1).min(g.ow)).max(x_lo);
    for sub in (0..BLOCK).step_by(S::LANES) {
        let mut taps = [[S::zero(); KW]; KH];
        for (ky, r) in taps.iter_mut().enumerate() {
            for (kx, t) in r.iter_mut().enumerate() {
                *t = S::load(j.taps.add((ky * KW + kx) * BLOCK + sub));
            }
        }
        let bias = S::load(j.bias.add(sub));
        let input = j.input.add(sub);
        let mut p = j.p0;
        while p < j.p1 {
            let (oy, ox0) = (p / g.ow, p % g.ow);
            let ox1 = g.ow.min(ox0 + (j.p1 - p));
            let out = j.output.add(oy * g.ow * BLOCK + sub);
            let iy0 = (oy * g.sh) as isize - g.pt as isize;
            // The window's tap rows inside the input (all of them away from the top and
            // bottom edges).
            let ky_lo = first_at(iy0, g.dh, 0, KH);
            let rows = (ky_lo, ky_lo + first_at(iy0 + (ky_lo * g.dh) as isize, g.dh, g.h as isize, KH - ky_lo));
            // The window's top-left input pixel at column `ox`, maybe outside the input: only
            // its taps inside are read.
            let base = |ox: usize| {
                input.wrapping_offset(iy0 * row as isize + ((ox * g.sw) as isize - g.pl as isize) * BLOCK as isize)
            };
            let (a, b) = (x_lo.clamp(ox0, ox1), x_hi.clamp(ox0, ox1));
            for ox in (ox0..a).chain(b..ox1) {
                let ix0 = (ox * g.sw) as isize - g.pl as isize;
                let kx_lo = first_at(ix0, g.dw, 0, KW);
                let cols = (kx_lo, kx_lo + first_at(ix0 + (kx_lo * g.dw) as isize, g.dw, g.w as isize, KW - kx_lo));
                dw_pixels::<S, KH, KW, 1>(&taps, bias, base(ox), rows, cols, &g, out.add(ox * BLOCK), j.act);
            }
            let mut ox = a;
            let wide = if S::LANES >= 16 { 8 } else { 4 };
            while ox < b {
                let (at, out) = (base(ox), out.add(ox * BLOCK));
                let n = match (b - ox).min(wide) {
                    8.. => 8,
                    4..=7 => 4,
                    2..=3 => 2,
                    _ => 1,
                };
                match n {
                    8 => dw_pixels::<S, KH, KW, 8>(&taps, bias, at, rows, (0, KW), &g, out, j.act),
                    4 => dw_pixels::<S, KH, KW, 4>(&taps, bias, at, rows, (0, KW), &g, out, j.act),
                    2 => dw_pixels::<S, KH, KW, 2>(&taps, bias, at, rows, (0, KW), &g, out, j.act),
                    _ => dw_pixels::<S, KH, KW, 1>(&taps, bias, at, rows, (0, KW), &g, out, j.act),
                }
                ox += n;
            }
            p += ox1 - ox0;
        }
    }
}

/// `N` consecutive output pixels of a row, summing the taps of rows `rows.0..rows.1` and
/// columns `cols.0..cols.1` of their windows (those must lie inside the input): `base` is
/// the first pixel's top-left input pixel (outside the input where a range starts above 0),
/// `out` its output vector.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn dw_pixels<S: Simd, const KH: usize, const KW: usize, const N: usize>(
    taps: &[[S::V; KW]; KH],
    bias: S::V,
    base: *const f32,
    rows: (usize, usize),
    cols: (usize, usize),
    g: &Geom,
    out: *mut f32,
    act: Epilogue,
) {
    let (row, step) = (g.w * BLOCK, g.sw * BLOCK);
    let mut acc = [bias; N];
    for (ky, r) in taps.iter().enumerate() {
        if ky < rows.0 || ky >= rows.1 {
            continue;
        }
        for (kx, &t) in r.iter().enumerate() {
            if kx < cols.0 || kx >= cols.1 {
                continue;
            }
            let tap = base.wrapping_add(ky * g.dh * row + kx * g.dw * BLOCK);
            for (i, a) in acc.iter_mut().enumerate() {
                *a = S::fmadd(S::load(tap.add(i * step)), t, *a);
            }
        }
    }
    for (i, &a) in acc.iter().enumerate() {
        S::store(out.add(i * BLOCK), activate::<S>(a, act));
    }
}

/// [`depthwise_block`] for any kernel size.
#[inline(always)]
unsafe fn depthwise_any<S: Simd>(j: &DwJob) {
    let g = j.g;
    let row = g.w * BLOCK;
    for sub in (0..BLOCK).step_by(S::LANES) {
        let bias = S::load(j.bias.add(sub));
        for p in j.p0..j.p1 {
            let (oy, ox) = (p / g.ow, p % g.ow);
            let iy0 = (oy * g.sh) as isize - g.pt as isize;
            let ix0 = (ox * g.sw) as isize - g.pl as isize;
            let mut acc = bias;
            for ky in 0..g.kh {
                let iy = iy0 + (ky * g.dh) as isize;
                if iy < 0 || iy as usize >= g.h {
                    continue;
                }
                for kx in 0..g.kw {
                    let ix = ix0 + (kx * g.dw) as isize;
                    if ix >= 0 && (ix as usize) < g.w {
                        let v = S::load(j.input.add(iy as usize * row + ix as usize * BLOCK + sub));
                        acc = S::fmadd(v, S::load(j.taps.add((ky * g.kw + kx) * BLOCK + sub)), acc);
                    }
                }
            }
            S::store(j.output.add(p * BLOCK + sub), activate::<S>(acc, j.act));
        }
    }
}

/// `isa`'s instance of [`depthwise_block`].
pub(crate) fn depthwise_kernel(isa: super::Isa) -> unsafe fn(&DwJob) {
    use super::kernels;
    match isa {
        #[cfg(target_arch = "x86_64")]
        super::Isa::Avx512 => kernels::avx512::blocked_depthwise,
        #[cfg(target_arch = "x86_64")]
        super::Isa::Avx2 => kernels::avx2::blocked_depthwise,
        _ => kernels::scalar::blocked_depthwise,
    }
}

/// A depthwise conv's taps `[c][kh * kw]` blocked: `[c / BLOCK][kh * kw][BLOCK]`.
pub(crate) fn block_taps(taps: &[f32], c: usize) -> Vec<f32> {
    let per = taps.len() / c.max(1);
    let mut out = vec![0.0; taps.len()];
    for ch in 0..c {
        for t in 0..per {
            out[(ch / BLOCK * per + t) * BLOCK + ch % BLOCK] = taps[ch * per + t];
        }
    }
    out
}

/// Run a blocked depthwise conv: `images` images of `c` channels, blocked in and out;
/// `taps` from [`block_taps`]. Items are (image, pixel chunk), all blocks of the chunk; or,
/// where the 1x1 conv of `writer`'s `(k, m)` channels that wrote the input cut by channels
/// ([`cut_by_channels`]), (image, run of blocks), all pixels, so each thread reads the
/// channels its core wrote (MobileNetV2's 7x7 depthwise convs at batch 1: 26.5 -> 14.5 us).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_depthwise(
    isa: Isa,
    kernel: unsafe fn(&DwJob),
    g: Geom,
    c: usize,
    images: usize,
    taps: &[f32],
    bias: &[f32],
    act: Epilogue,
    input: &[f32],
    out: &mut [f32],
    threads: &Threads,
    writer: Option<(usize, usize)>,
) {
    assert!(c.is_multiple_of(BLOCK), "a blocked depthwise conv has whole blocks");
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    assert_eq!(input.len(), images * c * hw);
    assert_eq!(out.len(), images * c * ohw);
    assert_eq!(taps.len(), c * g.kh * g.kw);
    assert_eq!(bias.len(), c);
    let blocks = c / BLOCK;
    let by_channels = writer.is_some_and(|(k, m)| cut_by_channels(k, m, images * hw));
    let per_image = if by_channels {
        (threads.count() * RUNS_PER_THREAD).div_ceil(images).min(blocks)
    } else {
        chunks(images, ohw, threads.count())
    };
    let out_ptr = SendPtr(out.as_mut_ptr());
    threads.for_each(images * per_image, &|i| {
        let (img, part) = (i / per_image, i % per_image);
        let ((p0, p1), (b0, b1)) = if by_channels {
            ((0, ohw), share(blocks, per_image, part))
        } else {
            (share(ohw, per_image, part), (0, blocks))
        };
        for b in b0..b1 {
            let plane = img * c / BLOCK + b;
            let job = DwJob {
                g,
                input: input[plane * hw * BLOCK..].as_ptr(),
                // SAFETY (of the offset): the plane lies inside `out`.
                output: unsafe { out_ptr.get().add(plane * ohw * BLOCK) },
                taps: taps[b * g.kh * g.kw * BLOCK..].as_ptr(),
                bias: bias[b * BLOCK..].as_ptr(),
                act,
                p0,
                p1,
            };
            // SAFETY: the job's planes, taps and bias have the sizes asserted above; the
            // pixels p0..p1 of this plane are this item's alone.
            unsafe { kernel(&job) };
            if !act.in_kernel() {
                // SAFETY: as above; the kernel left the activation to this pass.
                let written = unsafe { std::slice::from_raw_parts_mut(job.output.add(p0 * BLOCK), (p1 - p0) * BLOCK) };
                super::kernels::activate_in_place(isa, written, act);
            }
        }
    });
}

/// Global average pooling of `images` blocked images of `c` channels (whole blocks) and
/// `hw` pixels into `[images][c]`, as NCHW gives; an image per work item.
pub fn global_avg_pool_blocked(
    x: &[f32],
    images: usize,
    c: usize,
    hw: usize,
    out: &mut [f32],
    threads: &Threads,
) -> Result<(), super::ConvError> {
    if hw == 0 || !c.is_multiple_of(BLOCK) || x.len() != images * c * hw || out.len() != images * c {
        return Err(super::ConvError::new(format!(
            "blocked global average pool of {} elements ({images} images of {c} channels, {hw} pixels) into {}: \
             the sizes do not agree (or the channels are not whole blocks of {BLOCK})",
            x.len(),
            out.len()
        )));
    }
    let scale = 1.0 / hw as f32;
    let image = |img: usize, means: &mut [f32]| {
        let x = &x[img * c * hw..][..c * hw];
        for (b, mean) in means.chunks_exact_mut(BLOCK).enumerate() {
            sum_block(&x[b * hw * BLOCK..][..hw * BLOCK], mean, scale);
        }
    };
    if images == 1 || threads.count() == 1 {
        out.chunks_exact_mut(c).enumerate().for_each(|(img, means)| image(img, means));
    } else {
        threads.for_each_chunk(out, c, &image);
    }
    Ok(())
}

super::isa::widest_vectors! {
    /// `mean[l] = scale * sum of plane[p * BLOCK + l]` over the pixels.
    fn sum_block(plane: &[f32], mean: &mut [f32], scale: f32) {
        let mut acc = [0.0f32; BLOCK];
        for px in plane.chunks_exact(BLOCK) {
            for (a, v) in acc.iter_mut().zip(px) {
                *a += v;
            }
        }
        for (m, a) in mean.iter_mut().zip(acc) {
            *m = a * scale;
        }
    }
}
