//! 3x3 stride-1 convs by Winograd's minimal filtering, F(2x2, 3x3) (Lavin & Gray, 2016).
//!
//! Each 2x2 block of output pixels (a *tile*) is computed from the 4x4 input patch under
//! it in a transformed space where the 3x3 conv becomes 16 element-wise products:
//!
//! ```text
//! Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A      (g: 3x3 filter, d: 4x4 patch, Y: 2x2 output)
//! ```
//!
//! Summed over input channels, the 16 products are 16 independent GEMMs,
//! `M[e] = U[e] · V[e]` with `U[e]` the transformed weights (`out x in`) and `V[e]` the
//! transformed patches (`in x tiles`): 16 MACs per tile per channel pair where the direct
//! conv does 36, **2.25x fewer multiplies**. The three steps:
//!
//! 1. input transform (`transform_input`): per input channel, `V[e][c][tile]`;
//! 2. the 16 GEMMs, run as one grouped 1x1 conv (16 groups, a `1 x tiles` map) on the
//!    packed kernels of `gemm.rs`, B read in place;
//! 3. output transform (`transform_output`): per output channel, `A^T m A`, then bias,
//!    residual and activation, into NCHW.
//!
//! The transforms are adds only and run at memory speed; they pay off where the GEMM is
//! large next to them (`worth_it`). Each step is spread over the threads, except in convs
//! run in blocks of tile rows (few channels, large maps): there each block runs all three
//! steps on one thread (`run_blocks_per_thread`), so its buffers never cross cores. Rounding: each output sums 16 transformed products
//! instead of 9 plain ones, with transform constants 0.5 and 1; in f32 the results stay
//! within a few 1e-6 of the direct conv (tests/cpu_conv.rs checks against an f64 reference).
//!
//! Throughput figures elsewhere (`GFLOP/s`) count the direct conv's FLOPs, as cuDNN's and
//! oneDNN's users do: they say how fast the layer ran, not how many multiplies it did.

use super::eltwise::act_of;
use super::gemm::{self, GemmWeights};
use super::isa::widest_vectors;
use super::kernels::KernelSet;
use super::pack::Geom;
use super::scratch::{with_shared, AlignedBuf};
use super::threads::{SendPtr, Threads};
use super::{ConvSpec, Epilogue};
use std::sync::Mutex;

/// Transformed points per tile (4 x 4).
const POINTS: usize = 16;
/// Floats of transformed input and GEMM output one batch chunk may hold together (16 MiB).
const CHUNK_FLOATS: usize = 4 << 20;

/// Whether a conv can run as F(2x2, 3x3): one group, 3x3, stride 1, dilation 1.
pub(crate) fn applies(spec: &ConvSpec) -> bool {
    spec.groups == 1 && spec.kernel == [3, 3] && spec.stride == [1, 1] && spec.dilation == [1, 1]
}

/// Whether F(2x2, 3x3) beats the direct GEMM on `images` outputs of `oh x ow`, measured
/// inside ResNet-50 on one core (benches/conv_RESULTS.md):
///
/// * the transformed weights are 16/9 of the plain ones and stream from memory once per
///   batch: on 7x7 maps (16 tiles) at batch 1 that traffic costs more than the multiplies
///   saved (at batch 16 it is shared by 16 images and pays again);
/// * the transformed input and GEMM output (`16 (in + out) tiles` floats per image) evict
///   the activations the next convs read: at 56x56 with 64 channels (6.4 MB) the 3x3
///   conv gained 12% and its neighbours lost more, so such convs run in blocks of tile
///   rows (`block_rows`), and past `MAX_BUFFER_BYTES` a block it is off;
/// * with few channels the transforms cost more than a GEMM of them.
pub(crate) fn worth_it(spec: &ConvSpec, images: usize, oh: usize, ow: usize) -> bool {
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let (c, m) = (spec.in_channels, spec.out_channels);
    let buffer_bytes = POINTS * (c + m) * block_rows(c, m, th, tw) * tw * 4;
    applies(spec) && c >= 16 && m >= 16 && th * tw * images >= 49 && buffer_bytes <= MAX_BUFFER_BYTES
}

/// Largest transformed input + GEMM output of one image (or block) for which Winograd
/// is chosen.
const MAX_BUFFER_BYTES: usize = 4 << 20;
/// Transformed weights small enough to read once per block of tile rows (from L2)...
const BLOCK_WEIGHT_BYTES: usize = 512 << 10;
/// ...and the buffers of such a block: about an L2.
const BLOCK_BYTES: usize = 1 << 20;

/// Tile rows run through the three steps at a time: all of them, unless the transformed
/// weights are small (few channels, as at 56x56 in ResNet-50) and may be read once per
/// block, so that the buffers stay in L2 instead of evicting the next convs' inputs.
fn block_rows(c: usize, m: usize, th: usize, tw: usize) -> usize {
    let row_bytes = POINTS * (c + m) * tw * 4;
    if POINTS * c * m * 4 <= BLOCK_WEIGHT_BYTES {
        (BLOCK_BYTES / row_bytes.max(1)).clamp(1, th.max(1))
    } else {
        th.max(1)
    }
}

/// The 16 GEMMs' A: `U[e] = (G g G^T)[e]` for every (out, in) channel pair, packed as a
/// 16-group 1x1 conv's weights.
pub(crate) fn transform_weights(weight: &[f32], spec: &ConvSpec, ks: &KernelSet) -> Transformed {
    let (oc, ic) = (spec.out_channels, spec.in_channels);
    // G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
    let mut u = vec![0.0f32; POINTS * oc * ic];
    for o in 0..oc {
        for i in 0..ic {
            let g = &weight[(o * ic + i) * 9..][..9];
            // G g (4x3), then (G g) G^T (4x4).
            let mut gg = [[0.0f64; 3]; 4];
            for (r, row) in gg.iter_mut().enumerate() {
                for (c, x) in row.iter_mut().enumerate() {
                    *x = (0..3).map(|k| G[r][k] * g[k * 3 + c] as f64).sum();
                }
            }
            for r in 0..4 {
                for c in 0..4 {
                    let v: f64 = (0..3).map(|k| gg[r][k] * G[c][k]).sum();
                    u[((r * 4 + c) * oc + o) * ic + i] = v as f32;
                }
            }
        }
    }
    Transformed { gemm: GemmWeights::new(&u, POINTS, oc, ic, ks.mr, ks.nc), zero_bias: vec![0.0; POINTS * oc] }
}

/// The transformed weights, packed for the 16 GEMMs, and their (zero) bias: the conv's
/// bias is added after the output transform.
pub(crate) struct Transformed {
    pub gemm: GemmWeights,
    zero_bias: Vec<f32>,
}

/// Tile grid of one call.
#[derive(Clone, Copy)]
struct Tiles {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    /// Padding above and left: tile `(ty, tx)` reads input rows from `2 ty - pt`, columns
    /// from `2 tx - pl`; whatever falls outside the input is zero.
    pt: usize,
    pl: usize,
    /// This block's first tile row, and its tile rows.
    ty0: usize,
    th: usize,
    tw: usize,
}

impl Tiles {
    fn count(&self) -> usize {
        self.th * self.tw
    }
}

/// Everything one call needs.
pub(crate) struct Call<'a> {
    pub spec: &'a ConvSpec,
    pub weights: &'a Transformed,
    pub kernels: KernelSet,
    pub bias: &'a [f32],
    pub act: Epilogue,
    pub images: usize,
    pub h: usize,
    pub w: usize,
    pub residual: Option<&'a [f32]>,
    /// The inner GEMM's method, when a test forces one.
    pub force: Option<gemm::Method>,
}

/// The transformed input and GEMM output of one chunk of images, shared by every
/// Winograd conv in the process (`scratch::with_shared`): one buffer stays in cache where
/// one per conv would be written cold by each.
static BUFFERS: Mutex<Vec<f32>> = Mutex::new(Vec::new());

/// Run the conv over all images into `out` (NCHW, fully overwritten).
pub(crate) fn run(call: &Call, input: &[f32], out: &mut [f32], threads: &Threads) {
    let (c, m) = (call.spec.in_channels, call.spec.out_channels);
    let (oh, ow) = call.spec.output_hw(call.h, call.w).expect("the caller checked the sizes");
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let rows = block_rows(c, m, th, tw);
    if rows < th && threads.count() > 1 {
        return run_blocks_per_thread(call, input, out, threads);
    }
    let (in_image, out_image) = (c * call.h * call.w, m * oh * ow);
    let per_image = POINTS * (c + m) * rows * tw;
    // Blocked convs take one image at a time: the point of the blocks is buffers in L2.
    let chunk = if rows < th { 1 } else { (CHUNK_FLOATS / per_image).clamp(1, call.images) };
    with_shared(&BUFFERS, chunk * per_image, |buf| {
        let (v, mm) = buf.split_at_mut(chunk * POINTS * c * rows * tw);
        for first in (0..call.images).step_by(chunk) {
            let n = chunk.min(call.images - first);
            let x = &input[first * in_image..][..n * in_image];
            let res = call.residual.map(|r| &r[first * out_image..][..n * out_image]);
            let o = SendPtr(out[first * out_image..][..n * out_image].as_mut_ptr());
            for ty0 in (0..th).step_by(rows) {
                let t = call.tiles(oh, ow, ty0, rows.min(th - ty0));
                let v = &mut v[..n * POINTS * c * t.count()];
                let mm = &mut mm[..n * POINTS * m * t.count()];
                transform_input(x, c, &t, v, threads);
                gemm::run(&call.inner_gemm(n, t.count()), v, mm, threads);
                // SAFETY: `o` is the chunk's `n` output images, borrowed mutably above.
                unsafe { transform_output(mm, m, &t, call, res, o, n * m, threads) };
            }
        }
    })
}

/// The blocked convs (few channels, large maps) on several threads: each block of tile
/// rows runs its three steps on one thread, in that thread's own buffers, so that the
/// transformed input and GEMM output never move between cores. Splitting each step over
/// the threads instead makes every step read what the other core wrote: on a VM whose
/// vCPUs sit on different core complexes that ran ResNet-50's 64-channel 56x56 conv at
/// 1.8x its time (benches/conv_RESULTS.md).
fn run_blocks_per_thread(call: &Call, input: &[f32], out: &mut [f32], threads: &Threads) {
    let (c, m) = (call.spec.in_channels, call.spec.out_channels);
    let (oh, ow) = call.spec.output_hw(call.h, call.w).expect("the caller checked the sizes");
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    // Blocks small enough for every thread to get several (the last ones balance the rest).
    let rows = block_rows(c, m, th, tw).min((th / (BLOCKS_PER_THREAD * threads.count())).max(1));
    let blocks = th.div_ceil(rows);
    let (in_image, out_image) = (c * call.h * call.w, m * oh * ow);
    let o = SendPtr(out.as_mut_ptr());
    threads.for_each(call.images * blocks, &|i| {
        let (img, ty0) = (i / blocks, i % blocks * rows);
        let t = call.tiles(oh, ow, ty0, rows.min(th - ty0));
        let x = &input[img * in_image..][..in_image];
        let res = call.residual.map(|r| &r[img * out_image..][..out_image]);
        BLOCK_BUFFERS.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.ensure(POINTS * (c + m) * t.count());
            let (v, mm) = buf.as_mut_slice()[..POINTS * (c + m) * t.count()].split_at_mut(POINTS * c * t.count());
            SERIAL.with(|serial| {
                transform_input(x, c, &t, v, serial);
                gemm::run(&call.inner_gemm(1, t.count()), v, mm, serial);
                // SAFETY: image `img` of `out`; this item writes only its block's rows.
                unsafe { transform_output(mm, m, &t, call, res, SendPtr(o.get().add(img * out_image)), m, serial) };
            })
        })
    });
}

/// Blocks per thread in `run_blocks_per_thread`: with items handed out one by one, the
/// threads finish within about one block of each other.
const BLOCKS_PER_THREAD: usize = 6;

thread_local! {
    /// Each thread's transformed input and GEMM output in `run_blocks_per_thread`.
    static BLOCK_BUFFERS: std::cell::RefCell<AlignedBuf> = std::cell::RefCell::new(AlignedBuf::default());
    /// The steps' thread pool there: the calling thread alone.
    static SERIAL: Threads = Threads::single();
}

impl Call<'_> {
    /// Tile rows `ty0 .. ty0 + rows` of an `oh x ow` output.
    fn tiles(&self, oh: usize, ow: usize, ty0: usize, rows: usize) -> Tiles {
        let (pt, pl) = (self.spec.padding.top, self.spec.padding.left);
        Tiles { h: self.h, w: self.w, oh, ow, pt, pl, ty0, th: rows, tw: ow.div_ceil(2) }
    }

    /// The 16 GEMMs over `tiles` tiles of `images` images, as one 16-group 1x1 conv.
    fn inner_gemm(&self, images: usize, tiles: usize) -> gemm::Call<'_> {
        let c = self.spec.in_channels;
        gemm::Call {
            weights: &self.weights.gemm,
            kernels: self.kernels,
            bias: &self.weights.zero_bias,
            act: Epilogue::None,
            groups: POINTS,
            geom: Geom { c, h: 1, w: tiles, kh: 1, kw: 1, sh: 1, sw: 1, dh: 1, dw: 1, pt: 0, pl: 0, oh: 1, ow: tiles },
            images,
            residual: None,
            residual_in_output: false,
            force: self.force,
        }
    }
}

/// `V[img][e][ch][tile]` from NCHW `x`, one work item per (image, channel).
fn transform_input(x: &[f32], c: usize, t: &Tiles, v: &mut [f32], threads: &Threads) {
    let (plane, tiles) = (t.h * t.w, t.count());
    let vp = SendPtr(v.as_mut_ptr());
    let planes = v.len() / (POINTS * tiles);
    let scratch = 2 * (t.tw + 1) + (2 * t.th + 2) * 4 * t.tw;
    threads.for_each_run(planes, &|run| {
        super::scratch::with_scratch(scratch, |buf| {
            for plane_at in run {
                let (img, ch) = (plane_at / c, plane_at % c);
                let src = &x[plane_at * plane..][..plane];
                // SAFETY: plane (img, ch) writes only V[img][e][ch][..] for the 16 e, rows
                // no other plane writes, all inside `v` (img < images, ch < c).
                let rows: [&mut [f32]; POINTS] = std::array::from_fn(|e| unsafe {
                    std::slice::from_raw_parts_mut(vp.get().add(((img * POINTS + e) * c + ch) * tiles), tiles)
                });
                input_plane(src, t, buf, rows);
            }
        })
    });
}

widest_vectors! {
    /// One channel: its input, zero-padded, split into even and odd columns (so every
    /// patch column is a contiguous run over the tiles), each row times B once, then B^T
    /// down the rows of each tile row: `B^T d B` for all its tiles.
    fn input_plane(src: &[f32], t: &Tiles, scratch: &mut [f32], v: [&mut [f32]; POINTS]) {
        let (cols, tw, rows) = (t.tw + 1, t.tw, 2 * t.th + 2);
        let (padded, hrows) = scratch.split_at_mut(2 * cols);
        let (pl, w) = (t.pl, t.w);
        let keep = w.min(2 * cols - pl.min(2 * cols));
        // hrows: for input row r, 4 runs of tw (the row times B, column j of every tile).
        for r in 0..rows {
            let h = &mut hrows[r * 4 * tw..][..4 * tw];
            let y = (r + 2 * t.ty0) as isize - t.pt as isize;
            if y < 0 || y >= t.h as isize {
                h.fill(0.0);
                continue;
            }
            padded.fill(0.0);
            padded[pl.min(2 * cols)..][..keep].copy_from_slice(&src[y as usize * w..][..keep]);
            let (h0, rest) = h.split_at_mut(tw);
            let (h1, rest) = rest.split_at_mut(tw);
            let (h2, h3) = rest.split_at_mut(tw);
            times_b(padded, h0, h1, h2, h3);
        }
        let mut v = v;
        for ty in 0..t.th {
            let s = ty * tw;
            let h = |i: usize, j: usize| &hrows[((2 * ty + i) * 4 + j) * tw..][..tw];
            for j in 0..4 {
                let [a, b, c, d] = v_rows(&mut v, j, s, tw);
                b_transposed(h(0, j), h(1, j), h(2, j), h(3, j), a, b, c, d);
            }
        }
    }
}

/// The tile-row slices `s..s + tw` of points `j, 4 + j, 8 + j, 12 + j` (column `j`).
#[inline(always)]
fn v_rows<'a>(v: &'a mut [&mut [f32]; POINTS], j: usize, s: usize, tw: usize) -> [&'a mut [f32]; 4] {
    let [r0, r1, r2, r3] = [j, 4 + j, 8 + j, 12 + j];
    let (lo, hi) = v.split_at_mut(8);
    let (a, b) = lo.split_at_mut(4);
    let (c, d) = hi.split_at_mut(4);
    [&mut a[r0][s..][..tw], &mut b[r1 - 4][s..][..tw], &mut c[r2 - 8][s..][..tw], &mut d[r3 - 12][s..][..tw]]
}

/// A padded row times B, for every tile: patch columns `p[2x .. 2x + 4]` become
/// `(d0 - d2, d1 + d2, d2 - d1, d1 - d3)`.
#[inline(always)]
fn times_b(p: &[f32], h0: &mut [f32], h1: &mut [f32], h2: &mut [f32], h3: &mut [f32]) {
    let n = h0.len();
    let (h1, h2, h3) = (&mut h1[..n], &mut h2[..n], &mut h3[..n]);
    let p = &p[..2 * n + 2];
    for x in 0..n {
        let (d0, d1, d2, d3) = (p[2 * x], p[2 * x + 1], p[2 * x + 2], p[2 * x + 3]);
        h0[x] = d0 - d2;
        h1[x] = d1 + d2;
        h2[x] = d2 - d1;
        h3[x] = d1 - d3;
    }
}

/// B^T down four rows `(a, b, c, d)`: `(a - c, b + c, c - b, b - d)`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn b_transposed(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    d: &[f32],
    v0: &mut [f32],
    v1: &mut [f32],
    v2: &mut [f32],
    v3: &mut [f32],
) {
    let n = v0.len();
    let (a, b, c, d) = (&a[..n], &b[..n], &c[..n], &d[..n]);
    let (v1, v2, v3) = (&mut v1[..n], &mut v2[..n], &mut v3[..n]);
    for x in 0..n {
        v0[x] = a[x] - c[x];
        v1[x] = b[x] + c[x];
        v2[x] = c[x] - b[x];
        v3[x] = b[x] - d[x];
    }
}

/// The block's output rows of `planes` NCHW planes at `out`, from `M[img][e][ch][tile]`;
/// one work item per (image, output channel).
///
/// # Safety
/// `out` points at `planes` planes of `oh x ow` floats that nothing else reads or writes
/// in these rows during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output(
    mm: &[f32],
    m: usize,
    t: &Tiles,
    call: &Call,
    residual: Option<&[f32]>,
    out: SendPtr,
    planes: usize,
    threads: &Threads,
) {
    let (plane, tiles) = (t.oh * t.ow, t.count());
    let first_row = 2 * t.ty0;
    let rows = (2 * (t.ty0 + t.th)).min(t.oh) - first_row;
    threads.for_each_run(planes, &|run| {
        super::scratch::with_scratch(12 * t.tw, |buf| {
            for item in run {
                let (img, ch) = (item / m, item % m);
                let m_rows: [&[f32]; POINTS] =
                    std::array::from_fn(|e| &mm[((img * POINTS + e) * m + ch) * tiles..][..tiles]);
                let at = item * plane + first_row * t.ow;
                // SAFETY: these rows of plane `item` are written by this run only, inside
                // `out` (the caller's promise).
                let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(at), rows * t.ow) };
                let res = residual.map(|r| &r[at..][..rows * t.ow]);
                output_plane(m_rows, t, call.bias[ch], res, call.act, buf, dst);
            }
        })
    });
}

widest_vectors! {
    /// One output channel: for each tile row, A^T down the 16 points (two rows of four
    /// per tile), then times A across (two output columns, even and odd), bias added;
    /// interleaved into the two output rows, then the residual and activation. `dst` and
    /// `res` are the block's output rows only.
    fn output_plane(
        m: [&[f32]; POINTS],
        t: &Tiles,
        bias: f32,
        res: Option<&[f32]>,
        act: Epilogue,
        scratch: &mut [f32],
        dst: &mut [f32],
    ) {
        let tw = t.tw;
        let (s_rows, y_rows) = scratch.split_at_mut(8 * tw);
        for ty in 0..t.th {
            let at = ty * tw;
            // s_rows: [s0j for j in 0..4, s1j for j in 0..4], tw each.
            let (s0, s1) = s_rows.split_at_mut(4 * tw);
            for j in 0..4 {
                let p = |e: usize| &m[e][at..][..tw];
                a_transposed(p(j), p(4 + j), p(8 + j), p(12 + j), &mut s0[j * tw..][..tw], &mut s1[j * tw..][..tw]);
            }
            let (y0, y1) = y_rows.split_at_mut(2 * tw);
            for (s, y) in [(&*s0, &mut *y0), (&*s1, &mut *y1)] {
                let (even, odd) = y.split_at_mut(tw);
                let q = |j: usize| &s[j * tw..][..tw];
                times_a(q(0), q(1), q(2), q(3), bias, even, odd);
            }
            for (dy, y) in [&*y0, &*y1].into_iter().enumerate() {
                if 2 * (t.ty0 + ty) + dy >= t.oh {
                    break;
                }
                let row_at = 2 * ty + dy;
                let row = &mut dst[row_at * t.ow..][..t.ow];
                interleave(&y[..tw], &y[tw..], row);
                match res.map(|r| &r[row_at * t.ow..][..t.ow]) {
                    Some(rr) => {
                        for (o, &r) in row.iter_mut().zip(rr) {
                            *o = act_of(*o + r, act);
                        }
                    }
                    None if act != Epilogue::None => {
                        for o in row.iter_mut() {
                            *o = act_of(*o, act);
                        }
                    }
                    None => {}
                }
            }
        }
    }
}

/// A^T down one column of points `(a, b, c, d)`: `(a + b + c, b - c - d)`.
#[inline(always)]
fn a_transposed(a: &[f32], b: &[f32], c: &[f32], d: &[f32], s0: &mut [f32], s1: &mut [f32]) {
    let n = s0.len();
    let (a, b, c, d, s1) = (&a[..n], &b[..n], &c[..n], &d[..n], &mut s1[..n]);
    for x in 0..n {
        s0[x] = a[x] + b[x] + c[x];
        s1[x] = b[x] - c[x] - d[x];
    }
}

/// Times A across: output columns `(q0 + q1 + q2, q1 - q2 - q3)` plus the bias.
#[inline(always)]
fn times_a(q0: &[f32], q1: &[f32], q2: &[f32], q3: &[f32], bias: f32, even: &mut [f32], odd: &mut [f32]) {
    let n = even.len();
    let (q0, q1, q2, q3, odd) = (&q0[..n], &q1[..n], &q2[..n], &q3[..n], &mut odd[..n]);
    for x in 0..n {
        even[x] = q0[x] + q1[x] + q2[x] + bias;
        odd[x] = q1[x] - q2[x] - q3[x] + bias;
    }
}

/// `row = even[0], odd[0], even[1], ...`, cut to the row's length.
#[inline(always)]
fn interleave(even: &[f32], odd: &[f32], row: &mut [f32]) {
    let pairs = row.len() / 2;
    let (body, tail) = row.split_at_mut(2 * pairs);
    for ((p, &e), &o) in body.chunks_exact_mut(2).zip(even).zip(odd) {
        p[0] = e;
        p[1] = o;
    }
    if let Some(last) = tail.first_mut() {
        *last = even[pairs];
    }
}
