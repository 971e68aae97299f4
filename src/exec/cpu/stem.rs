//! Convs over a few input channels: a net's first conv, on the 3 channels of an image
//! (MobileNetV2's 3x3 stride 2 to 32 channels, ResNet-50's 7x7 stride 2 to 64).
//!
//! As a GEMM its K is tiny (27 and 147 rows) against thousands of output pixels per
//! channel, so the tile's fixed costs swamp its short K loop: the padded grid copy of the
//! input and, on the channel tile, the transpose of every tile into NCHW. MobileNetV2's
//! took 271 us on one core for 21.7 MFLOP (80 GFLOP/s, a third of the FMA peak).
//!
//! Here the output's columns go in vectors, as NCHW holds them, so nothing is transposed,
//! and the input is read in place (no padded copy). For one output vector (a row's 16
//! columns) and a group of 16 output channels, the taps (input channel, tap row, tap
//! column) go in chunks of a few: a chunk's input vectors are loaded into registers
//! (deinterleaved at stride 2, where a 3-wide row's three columns share two loads; masked to
//! the lanes inside the image at the edges), then each of the 16 channels' accumulators
//! takes them with its weights broadcast from memory. MobileNetV2's stem: 236-270 us on the
//! direct grid -> 199 us on one core, 130 -> 101 us on two.
//!
//! Only small windows: over 9 taps per channel the GEMM's K is long enough for its tiles.

use super::depthwise::{load_cols, load_whole, Cols};
use super::kernels::simd::{activate, store_n, Simd, MAX_LANES};
use super::pack::Geom;
use super::threads::{share, SendPtr, Threads};
use super::{ConvSpec, Epilogue, Isa, BLOCK};

/// Most input channels a conv has to run here.
const MAX_CHANNELS: usize = 4;
/// Work items per thread (load balance).
const ITEMS_PER_THREAD: usize = 4;

/// Largest window (taps per input channel) run here. Over it the GEMM's K is long enough
/// for its tiles: ResNet-50's 7x7 stem (147 taps) took 1.7 ms on one core on the direct
/// grid and 2.5 ms here.
const MAX_WINDOW: usize = 9;

/// Whether a conv of `spec` on geometry `g` runs here with `isa`: one group of at most
/// [`MAX_CHANNELS`] input channels, a window of at most [`MAX_WINDOW`] taps, output rows at
/// least a vector wide, a vector ISA.
pub(crate) fn applies(spec: &ConvSpec, g: &Geom, isa: Isa) -> bool {
    let lanes = super::depthwise::lanes(isa);
    may_apply(spec) && lanes > 1 && g.ow >= lanes
}

/// Whether [`applies`] may hold for some input shape and ISA: the spec's side of it.
pub(crate) fn may_apply(spec: &ConvSpec) -> bool {
    spec.groups == 1 && spec.in_channels <= MAX_CHANNELS && spec.kernel[0] * spec.kernel[1] <= MAX_WINDOW
}

/// Taps per chunk: a 3-wide window's row (its three columns share their loads at stride
/// 2), else the largest of these dividing a conv's taps, so no chunk is padded. A chunk's
/// tap vectors stay in registers beside the accumulators of [`GROUP`] output channels; more
/// taps a chunk (up to 14) measured no faster.
const CHUNK_SIZES: [usize; 4] = [4, 3, 2, 1];

/// The weights in chunks: `[chunks][m][chunk]`, each output channel's taps in `[c][kh][kw]`
/// order (a chunk's weights of a group of output channels at constant offsets from the
/// group's first).
pub(crate) struct Weights {
    pub m: usize,
    pub chunk: usize,
    pub chunks: usize,
    pub w: Vec<f32>,
}

impl Weights {
    /// From `weight` `[m][k]` (`k = c * kh * kw`) of a window `kw` wide.
    pub(crate) fn new(weight: &[f32], m: usize, k: usize, kw: usize) -> Weights {
        assert_eq!(weight.len(), m * k);
        let divides = |t: usize| k.is_multiple_of(t);
        let chunk = if kw == 3 { 3 } else { *CHUNK_SIZES.iter().find(|&&t| divides(t)).expect("1 divides k") };
        let chunks = k / chunk;
        let mut w = vec![0.0; chunks * m * chunk];
        for (oc, src) in weight.chunks_exact(k).enumerate() {
            for (t, &x) in src.iter().enumerate() {
                w[(t / chunk * m + oc) * chunk + t % chunk] = x;
            }
        }
        Weights { m, chunk, chunks, w }
    }
}

/// One tap of the flat tap list: its input plane's offset, its row and column in the
/// window (the row scaled by the dilation), and its input's offset from the window's
/// top-left pixel in the first plane.
#[derive(Clone, Copy)]
pub(crate) struct Tap {
    plane: usize,
    dy: usize,
    kx: usize,
    offset: usize,
}

/// `$body` for `$t` in `0..$n` (`$n` a constant at most 4), unrolled: the tap vectors live
/// in registers only where every access has a constant index (else LLVM may keep them on
/// the stack and load them for every FMA).
macro_rules! unrolled {
    ($n:expr, |$t:ident| $body:block) => {
        unrolled!(@ $n, $t, $body, 0 1 2 3)
    };
    (@ $n:expr, $t:ident, $body:block, $($i:literal)*) => {
        $(
            if $i < $n {
                let $t: usize = $i;
                $body
            }
        )*
    };
}

/// Output rows `oy0..oy1` of one image.
pub(crate) struct Job<'a> {
    pub g: Geom,
    pub weights: &'a Weights,
    /// The `k` taps in `[c][kh][kw]` order.
    pub taps: &'a [Tap],
    pub cols: &'a Cols,
    pub bias: &'a [f32],
    pub act: Epilogue,
    /// The image's `c` planes of `h * w` floats.
    pub x: *const f32,
    /// The image's `m` output planes of `oh * ow` floats; blocked, its `m / 16` blocks of
    /// `oh * ow` pixels of 16 channels (`to_blocked`).
    pub y: *mut f32,
    pub blocked: bool,
    pub oy0: usize,
    pub oy1: usize,
    /// Output rows whose every tap row lies inside the input.
    pub inner_rows: (usize, usize),
    /// A 3-wide window at column stride 2 without dilation (a chunk of 3 taps is a row).
    pub taps3_stride2: bool,
}

/// Output channels summed at once (their accumulators beside a chunk's tap vectors: 16
/// chains of FMAs interleave; 8 ran 25% slower).
const GROUP: usize = 16;

/// The kernel over one [`Job`].
///
/// Safety: the job's pointers hold what it says; `cols` was made for `S::LANES`.
#[inline(always)]
pub(crate) unsafe fn rows<S: Simd>(j: &Job) {
    match j.weights.chunk {
        4 => rows_t::<S, 4>(j),
        3 => rows_t::<S, 3>(j),
        2 => rows_t::<S, 2>(j),
        _ => rows_t::<S, 1>(j),
    }
}

/// [`rows`] with its chunk's `T` taps held in registers.
#[inline(always)]
unsafe fn rows_t<S: Simd, const T: usize>(j: &Job) {
    let g = j.g;
    let m = j.weights.m;
    debug_assert_eq!(T, j.weights.chunk);
    // AVX2's 16 registers hold 8 accumulators beside the taps and a broadcast weight.
    let group = if S::LANES >= 16 { GROUP } else { GROUP / 2 };
    for oy in j.oy0..j.oy1 {
        for (c, ox) in (0..g.ow).step_by(S::LANES).enumerate() {
            let whole = (j.inner_rows.0..j.inner_rows.1).contains(&oy) && j.cols.whole(c);
            let at = Vector { oy, c, ox, n: S::LANES.min(g.ow - ox), whole };
            let mut oc = 0;
            if j.blocked {
                // Whole vectors of channels (the call checked m), each a block's lanes.
                while oc < m {
                    match S::LANES {
                        16 => channels::<S, T, 16>(j, &at, oc),
                        _ => channels::<S, T, 8>(j, &at, oc),
                    }
                    oc += S::LANES;
                }
                continue;
            }
            if group == GROUP {
                while oc + GROUP <= m {
                    channels::<S, T, GROUP>(j, &at, oc);
                    oc += GROUP;
                }
            }
            while oc + GROUP / 2 <= m {
                channels::<S, T, { GROUP / 2 }>(j, &at, oc);
                oc += GROUP / 2;
            }
            for oc in oc..m {
                channels::<S, T, 1>(j, &at, oc);
            }
        }
    }
}

/// One output vector: row `oy`, column vector `c` (first column `ox`, `n` lanes); `whole`:
/// every tap loads whole (its rows and columns inside the input).
struct Vector {
    oy: usize,
    c: usize,
    ox: usize,
    n: usize,
    whole: bool,
}

/// Output channels `oc..oc + G` of one output vector, all their taps, chunk by chunk: the
/// chunk's tap vectors loaded once for the `G` channels.
#[inline(always)]
unsafe fn channels<S: Simd, const T: usize, const G: usize>(j: &Job, at: &Vector, oc: usize) {
    let (g, wt) = (&j.g, j.weights);
    let iy0 = (at.oy * g.sh) as isize - g.pt as isize;
    let out_plane = g.oh * g.ow;
    let y = j.y.add(at.oy * g.ow + at.ox);
    let mut acc = [S::zero(); G];
    for (i, acc) in acc.iter_mut().enumerate() {
        *acc = S::splat(*j.bias.get_unchecked(oc + i));
    }
    // The window's top-left input pixel for lane 0 (where the vector is whole).
    let corner = j.x.wrapping_offset(iy0 * g.w as isize + (at.ox * g.sw) as isize - g.pl as isize);
    for chunk in 0..wt.chunks {
        let taps = j.taps.as_ptr().add(chunk * T);
        let mut v = [S::zero(); T];
        if at.whole && T == 3 && j.taps3_stride2 {
            // A chunk is one tap row of a 3-wide stride-2 window: its three columns share
            // two loads.
            let row = S::load_taps3_stride2(corner.add((*taps).offset));
            for (v, r) in v.iter_mut().zip(row) {
                *v = r;
            }
        } else if at.whole {
            unrolled!(T, |t| {
                v[t] = load_whole::<S>(g, corner.add((*taps.add(t)).offset));
            });
        } else {
            unrolled!(T, |t| {
                let tap = *taps.add(t);
                let iy = iy0 + tap.dy as isize;
                if iy >= 0 && iy < g.h as isize {
                    let row = j.x.add(tap.plane + iy as usize * g.w);
                    v[t] = load_cols::<S>(g, j.cols, row, at.c, at.ox, tap.kx);
                }
            });
        }
        let w = wt.w.as_ptr().add((chunk * wt.m + oc) * T);
        unrolled!(T, |t| {
            for (i, acc) in acc.iter_mut().enumerate() {
                *acc = S::fmadd(v[t], S::splat(*w.add(i * T + t)), *acc);
            }
        });
    }
    if j.blocked {
        // Rows of channels, lanes of pixels, turned into a vector of channels per pixel: pixel
        // q's channels oc.. at lane oc % 16 of its block.
        let mut rows = [S::zero(); MAX_LANES];
        for (r, &acc) in rows.iter_mut().zip(&acc).take(S::LANES) {
            *r = activate::<S>(acc, j.act);
        }
        let pixels = S::transpose(rows);
        let y = j.y.add((oc / BLOCK * out_plane + at.oy * g.ow + at.ox) * BLOCK + oc % BLOCK);
        store_pixels::<S>(y, &pixels, at.n);
        return;
    }
    for (i, &acc) in acc.iter().enumerate() {
        store_n::<S>(y.add((oc + i) * out_plane), activate::<S>(acc, j.act), at.n);
    }
}

/// `pixels[q]` stored at `y + q * BLOCK` for `q < n`, each straight from its register. (A
/// loop over the array, where AVX-512's lanes fill a block, is one run of floats: LLVM made
/// it a `memcpy` call from the stack, 2.5% of SqueezeNet 1.1's run at batch 16.)
#[inline(always)]
unsafe fn store_pixels<S: Simd>(y: *mut f32, pixels: &[S::V; MAX_LANES], n: usize) {
    let n = n.min(S::LANES);
    macro_rules! each {
        ($($q:literal)*) => {
            $(
                if $q < n {
                    S::store(y.add($q * BLOCK), pixels[$q]);
                }
            )*
        };
    }
    each!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
}

/// A call: `images` images of `g.c` planes into `weights.m` planes.
pub(crate) struct Call<'a> {
    pub isa: Isa,
    pub g: Geom,
    pub images: usize,
    pub weights: &'a Weights,
    pub bias: &'a [f32],
    /// Any activation: ReLU and ReLU6 in the kernel's stores, the others on each work
    /// item's output just after the kernel wrote it, in the core's cache.
    pub act: Epilogue,
    /// Write the output blocked (`to_blocked`; `m` whole blocks).
    pub blocked: bool,
}

/// Run a call: items of (image, run of output rows), every output channel.
pub(crate) fn run(call: &Call, input: &[f32], out: &mut [f32], threads: &Threads) {
    let Call { isa, g, images, weights, bias, act, blocked } = *call;
    assert!(!blocked || weights.m.is_multiple_of(BLOCK), "a blocked output has whole blocks");
    let (in_image, out_image) = (g.c * g.h * g.w, weights.m * g.oh * g.ow);
    assert_eq!(input.len(), images * in_image);
    assert_eq!(out.len(), images * out_image);
    assert_eq!(bias.len(), weights.m);
    assert_eq!(weights.chunk * weights.chunks, g.k());
    let taps: Vec<Tap> = (0..g.k())
        .map(|t| {
            let (ci, ky, kx) = (t / (g.kh * g.kw), t / g.kw % g.kh, t % g.kw);
            let plane = ci * g.h * g.w;
            Tap { plane, dy: ky * g.dh, kx, offset: plane + ky * g.dh * g.w + kx * g.dw }
        })
        .collect();
    let cols = Cols::new(&g, super::depthwise::lanes(isa));
    let per_image = (ITEMS_PER_THREAD * threads.count()).div_ceil(images).clamp(1, g.oh);
    let y = SendPtr(out.as_mut_ptr());
    threads.for_each(images * per_image, &|i| {
        let (img, part) = (i / per_image, i % per_image);
        let (oy0, oy1) = share(g.oh, per_image, part);
        let job = Job {
            g,
            weights,
            taps: &taps,
            cols: &cols,
            bias,
            act,
            x: input[img * in_image..].as_ptr(),
            // SAFETY (of the offset): image `img < images` of `out`.
            y: unsafe { y.get().add(img * out_image) },
            oy0,
            oy1,
            blocked,
            inner_rows: g.inner_rows(),
            taps3_stride2: g.kw == 3 && g.sw == 2 && g.dw == 1 && weights.chunk == 3,
        };
        // SAFETY: the image's planes have the sizes asserted above, its rows oy0..oy1 are
        // this item's alone, `cols` is for this ISA's lanes, and the ISA was checked when
        // the conv was packed.
        unsafe { rows_for(isa, &job) };
        if !act.in_kernel() {
            // The activations the kernel leaves to a pass, on each plane's rows just written.
            // Rows oy0..oy1 of each plane, or of each block of 16 planes.
            let (planes, width) = if blocked { (weights.m / BLOCK, g.ow * BLOCK) } else { (weights.m, g.ow) };
            for plane in 0..planes {
                // SAFETY: rows oy0..oy1 of a plane (block) of image `img`, this item's own.
                let rows = unsafe {
                    std::slice::from_raw_parts_mut(job.y.add((plane * g.oh + oy0) * width), (oy1 - oy0) * width)
                };
                super::kernels::activate_in_place(isa, rows, act);
            }
        }
    });
}

/// Run one job with `isa`'s kernel. Safety: as [`rows`]; the CPU has `isa`.
unsafe fn rows_for(isa: Isa, job: &Job) {
    use super::kernels;
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => kernels::avx512::stem_rows(job),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => kernels::avx2::stem_rows(job),
        _ => kernels::scalar::stem_rows(job),
    }
}
