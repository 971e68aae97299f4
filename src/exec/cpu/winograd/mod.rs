//! 3x3 stride-1 convs by Winograd's minimal filtering, F(2x2, 3x3) and F(4x4, 3x3)
//! (Lavin & Gray, 2016).
//!
//! Each `m x m` block of output pixels (a *tile*, `m` = 2 or 4) is computed from the
//! `a x a` input patch under it (`a = m + 2`) in a transformed space where the 3x3 conv
//! becomes `a^2` element-wise products:
//!
//! ```text
//! Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A      (g: 3x3 filter, d: a x a patch, Y: m x m output)
//! ```
//!
//! Summed over input channels, the `a^2` products are `a^2` independent GEMMs,
//! `M[e] = U[e] · V[e]` with `U[e]` the transformed weights (`out x in`) and `V[e]` the
//! transformed patches (`in x tiles`): per output pixel and channel pair, F(2x2) does
//! 16 / 4 = 4 MACs and F(4x4) 36 / 16 = 2.25 where the direct conv does 9, **2.25x and
//! 4x fewer multiplies**. The three steps:
//!
//! 1. input transform (`transform_input`): per input channel, `V[e][c][tile]`;
//! 2. the `a^2` GEMMs, run as one grouped 1x1 conv (`a^2` groups, a `1 x tiles` map whose
//!    tiles are those of every image of the chunk) on the packed kernels of `gemm.rs`, B
//!    read in place;
//! 3. output transform (`transform_output`): per output channel, `A^T m A`, then bias,
//!    residual and activation, into NCHW.
//!
//! The transforms are adds and a few constant multiplies and run at memory speed; they pay
//! off where the GEMM is large next to them (`worth_it`). F(2x2)'s run a tile row at a time
//! (`rows.rs`), F(4x4)'s in vectors over all the tiles of a plane (`vectors.rs`). Each step is spread over the
//! threads, except in convs run in blocks of tile rows (few channels, large maps): there
//! each block runs all three steps on one thread (`run_blocks_per_thread`), so its buffers
//! never cross cores.
//!
//! Rounding: each output sums `a^2` transformed products instead of 9 plain ones. F(2x2)'s
//! constants are 0.5 and 1, and its f32 results stay within a few 1e-6 of the direct conv;
//! F(4x4)'s reach 8 and 1/24 (interpolation points 0, ±1, ±2), and its results stay within
//! a few 1e-5 (tests/cpu_conv.rs checks both against an f64 reference) — the trade every
//! library that runs F(4x4, 3x3) in f32 (cuDNN, oneDNN, NNPACK) makes.
//!
//! Throughput figures elsewhere (`GFLOP/s`) count the direct conv's FLOPs, as cuDNN's and
//! oneDNN's users do: they say how fast the layer ran, not how many multiplies it did.

use super::gemm::{self, GemmWeights};
use super::kernels::KernelSet;
use super::pack::Geom;
use super::scratch::{with_shared, AlignedBuf};
use super::threads::{share, SendPtr, Threads};
use super::{ConvSpec, Epilogue};
use std::sync::Mutex;

mod rows;
mod vectors;

use rows::{input_plane_2x2, output_plane_2x2};
pub(crate) use vectors::{input_plane, output_plane, InputJob, OutputJob};

/// The output tile: F(2x2, 3x3) or F(4x4, 3x3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WinogradTile {
    F2x2,
    F4x4,
}

impl WinogradTile {
    /// Output pixels per tile edge (`m`).
    pub(crate) fn m(self) -> usize {
        match self {
            WinogradTile::F2x2 => 2,
            WinogradTile::F4x4 => 4,
        }
    }

    /// Input pixels per patch edge (`a = m + 2`).
    fn alpha(self) -> usize {
        self.m() + 2
    }

    /// Transformed points per tile (`a^2`): the GEMMs.
    pub(crate) fn points(self) -> usize {
        self.alpha() * self.alpha()
    }

    /// Index into per-tile arrays (`[F2x2, F4x4]`).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Floats of transformed input and GEMM output one batch chunk may hold together (16 MiB).
const CHUNK_FLOATS: usize = 4 << 20;

/// Whether a conv can run as Winograd F(m x m, 3x3): one group, 3x3, stride 1, dilation 1.
pub(crate) fn applies(spec: &ConvSpec) -> bool {
    spec.groups == 1 && spec.kernel == [3, 3] && spec.stride == [1, 1] && spec.dilation == [1, 1]
}

/// The tile F(m x m, 3x3) runs with on `images` outputs of `oh x ow`, if it beats the
/// direct GEMM there; measured inside ResNet-50 (benches/conv_RESULTS.md,
/// benches/peers/RESULTS.md section 13):
///
/// * the transformed weights are `a^2 / 9` of the plain ones (16/9, 36/9) and stream from
///   memory once per batch chunk: on 7x7 maps at batch 1 that traffic costs more than the
///   multiplies saved (at batch 16 it is shared by 16 images and pays again);
/// * the transformed input and GEMM output (`a^2 (in + out) tiles` floats per image) evict
///   the activations the next convs read: at 56x56 with 64 channels (6.4 MB) the 3x3
///   conv gained 12% and its neighbours lost more, so such convs run in blocks of tile
///   rows (`block_rows`);
/// * with few channels the transforms cost more than a GEMM of them.
///
/// Convs whose transformed weights are too big to be read once per L2-sized block (over
/// 768 KiB) once ran directly where one image's buffers passed 4 MiB. Measured on a
/// Sapphire Rapids class Xeon at batch 1 (benches/peers/RESULTS.md section 29), Winograd
/// wins there by far: Inception-v3's 80 -> 192 conv at 73x73 takes 1.8 ms against 4.0
/// direct, VGG-16 runs 1.7x faster whole and synNet 1.4x; their buffers (13-29 MB) only
/// bound the blocks now (`MAX_BLOCK_BYTES`).
pub(crate) fn worth_it(spec: &ConvSpec, images: usize, oh: usize, ow: usize) -> Option<WinogradTile> {
    let (c, m) = (spec.in_channels, spec.out_channels);
    if !applies(spec) || c < 16 || m < 16 {
        return None;
    }
    // Few output channels on a map under 32x32: the input transform, the same per tile
    // whatever `m`, outweighs the multiplies saved. DenseNet-121's 128 -> 32 convs in the
    // model, batch 1: 28x28 2.6 ms direct against 3.2 Winograd (12 convs), 14x14 1.7 against
    // 2.7 (24); batch 16: 28x28 a tie, 14x14 20 ms against 26. At 56x56 Winograd still wins
    // (4.1 against 4.7 ms at batch 1), as on Inception-v3's 32 -> 32 conv at 147x147. More
    // output channels with few input ones (SqueezeNet's 32 -> 128 at 27x27) keep it: direct
    // there took SqueezeNet's 3x3 convs at batch 1 from 1.04-1.07 ms to 1.15-1.25
    // (benches/peers/RESULTS.md section 32).
    if m < 64 && oh.min(ow) < 32 {
        return None;
    }
    let tiles2 = oh.div_ceil(2) * ow.div_ceil(2) * images;
    if tiles2 < 49 {
        return None;
    }
    // F(4x4) on maps of at least 4x4 of its tiles (13x13 and up). At 14x14 (4x4 tiles of
    // 16x16, 31% of them padding, 2.25x the weights to stream) it lost to F(2x2) at batch 1
    // while its transforms gathered; with them in permutes (`vectors.rs`) ResNet-50's
    // 256-channel conv takes 0.40 against 0.53-0.58 ms with its weights cold, and the model
    // at batch 1 runs 1-3% faster (benches/peers/RESULTS.md section 20). At 7x7 it loses at
    // batch 1 and ties at batch 16.
    let many = oh.div_ceil(4) * ow.div_ceil(4) >= 16;
    Some(if many { WinogradTile::F4x4 } else { WinogradTile::F2x2 })
}

/// Largest transformed input + GEMM output of one block of tile rows whose transformed
/// weights are too big for L2: past it such a conv runs in blocks too, each reading the
/// weights again (a bound on memory: 256 channels at 112x112 would take 57 MB at once).
const MAX_BLOCK_BYTES: usize = 32 << 20;
/// Transformed weights small enough to read once per block of tile rows (from L2)...
const BLOCK_WEIGHT_BYTES: usize = 768 << 10;
/// ...and the buffers of such a block: about an L2.
const BLOCK_BYTES: usize = 1 << 20;

/// Tile rows run through the three steps at a time: all of them (up to `MAX_BLOCK_BYTES`
/// of buffers), unless the transformed weights are small (few channels, as at 56x56 in
/// ResNet-50) and may be read once per block, so that the buffers stay in L2 instead of
/// evicting the next convs' inputs.
fn block_rows(tile: WinogradTile, c: usize, m: usize, th: usize, tw: usize) -> usize {
    let row_bytes = tile.points() * (c + m) * tw * 4;
    let block = if tile.points() * c * m * 4 <= BLOCK_WEIGHT_BYTES { BLOCK_BYTES } else { MAX_BLOCK_BYTES };
    (block / row_bytes.max(1)).clamp(1, th.max(1))
}

/// The weight transforms `G` (`a x 3`), rows of the interpolation points 0, 1, -1 (and
/// 1/2, -2 scaled) and infinity.
const G2: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
const G4: [[f64; 3]; 6] = [
    [0.25, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// The `a^2` GEMMs' A: `U[e] = (G g G^T)[e]` for every (out, in) channel pair, packed as
/// an `a^2`-group 1x1 conv's weights.
pub(crate) fn transform_weights(weight: &[f32], spec: &ConvSpec, tile: WinogradTile, ks: &KernelSet) -> Transformed {
    let (oc, ic, points) = (spec.out_channels, spec.in_channels, tile.points());
    let u = transformed_taps(weight, spec, tile, &Threads::single());
    Transformed { tile, gemm: GemmWeights::new(&u, points, oc, ic, ks), zero_bias: vec![0.0; points * oc] }
}

impl Transformed {
    /// New weights of the same conv, transformed into the buffers these had.
    pub(crate) fn retransform(&mut self, weight: &[f32], spec: &ConvSpec, threads: &Threads) {
        let u = transformed_taps(weight, spec, self.tile, threads);
        self.gemm.repack(&u, threads);
    }
}

/// `U[e][o][i]`, the transformed taps of every (out, in) channel pair, on `threads`.
fn transformed_taps(weight: &[f32], spec: &ConvSpec, tile: WinogradTile, threads: &Threads) -> Vec<f32> {
    let (oc, ic) = (spec.out_channels, spec.in_channels);
    let g_rows: &[[f64; 3]] = match tile {
        WinogradTile::F2x2 => &G2,
        WinogradTile::F4x4 => &G4,
    };
    let (alpha, points) = (tile.alpha(), tile.points());
    // In f32, `LANES` input channels at a time (the loops over them vectorise, and each
    // point's store is one cache line): training transforms every step's weights.
    const LANES: usize = 16;
    let g32: Vec<[f32; 3]> = g_rows.iter().map(|r| r.map(|v| v as f32)).collect();
    // Every entry is written below.
    let mut u = super::scratch::output_buffer(points * oc * ic);
    let dst = SendPtr(u.as_mut_ptr());
    threads.for_each_run(oc, &|outs| {
        for o in outs {
            for i0 in (0..ic).step_by(LANES) {
                let lanes = LANES.min(ic - i0);
                // taps[k][l] = g[o][i0 + l][k]
                let mut taps = [[0.0f32; LANES]; 9];
                for l in 0..lanes {
                    for (k, t) in taps.iter_mut().enumerate() {
                        t[l] = weight[(o * ic + i0 + l) * 9 + k];
                    }
                }
                // G g (a x 3), then (G g) G^T (a x a).
                let mut gg = [[[0.0f32; LANES]; 3]; 6];
                for (row, gr) in gg.iter_mut().zip(&g32) {
                    for (c, v) in row.iter_mut().enumerate() {
                        for l in 0..LANES {
                            v[l] = gr[0] * taps[c][l] + gr[1] * taps[3 + c][l] + gr[2] * taps[6 + c][l];
                        }
                    }
                }
                for (r, row) in gg.iter().enumerate().take(alpha) {
                    for (c, gc) in g32.iter().enumerate() {
                        let mut v = [0.0f32; LANES];
                        for (l, v) in v.iter_mut().enumerate() {
                            *v = row[0][l] * gc[0] + row[1][l] * gc[1] + row[2][l] * gc[2];
                        }
                        // SAFETY: `lanes` floats inside `u` (`points * oc * ic` of them);
                        // this run alone writes the entries of its output channels `o`.
                        unsafe {
                            let at = dst.get().add(((r * alpha + c) * oc + o) * ic + i0);
                            std::ptr::copy_nonoverlapping(v.as_ptr(), at, lanes);
                        }
                    }
                }
            }
        }
    });
    u
}

/// The transformed weights, packed for the `a^2` GEMMs, and their (zero) bias: the conv's
/// bias is added after the output transform.
pub(crate) struct Transformed {
    pub tile: WinogradTile,
    pub gemm: GemmWeights,
    zero_bias: Vec<f32>,
}

/// Tile grid of one call.
#[derive(Clone, Copy)]
struct Tiles {
    tile: WinogradTile,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    /// Padding above and left: tile `(ty, tx)` reads input rows from `m ty - pt`, columns
    /// from `m tx - pl`; whatever falls outside the input is zero.
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
    /// Transformed for the tile the call runs with.
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
    /// Floats from one output image to the next, where not `m * oh * ow` (no residual):
    /// each image's output a run of a larger tensor's images (`gemm::Call::out_image`).
    pub out_image: Option<usize>,
}

/// The transformed input and GEMM output of one chunk of images, shared by every
/// Winograd conv in the process (`scratch::with_shared`): one buffer stays in cache where
/// one per conv would be written cold by each.
static BUFFERS: Mutex<Vec<f32>> = Mutex::new(Vec::new());

/// Run the conv over all images into `out` (NCHW), fully overwritten (with
/// `Call::out_image`, each image's run of it; the floats between untouched).
pub(crate) fn run(call: &Call, input: &[f32], out: &mut [f32], threads: &Threads) {
    let (c, m, points) = (call.spec.in_channels, call.spec.out_channels, call.weights.tile.points());
    let (oh, ow) = call.spec.output_hw(call.h, call.w).expect("the caller checked the sizes");
    let (th, tw) = (oh.div_ceil(call.weights.tile.m()), ow.div_ceil(call.weights.tile.m()));
    let rows = block_rows(call.weights.tile, c, m, th, tw);
    if rows < th && threads.count() > 1 {
        return run_blocks_per_thread(call, input, out, threads);
    }
    let in_image = c * call.h * call.w;
    let out_image = call.check_output(out.len(), m * oh * ow);
    let per_image = points * (c + m) * rows * tw;
    // Blocked convs take one image at a time: the point of the blocks is buffers in L2.
    let chunk = if rows < th { 1 } else { (CHUNK_FLOATS / per_image).clamp(1, call.images) };
    with_shared(&BUFFERS, chunk * per_image, |buf| {
        let (v, mm) = buf.split_at_mut(chunk * points * c * rows * tw);
        for first in (0..call.images).step_by(chunk) {
            let n = chunk.min(call.images - first);
            let x = &input[first * in_image..][..n * in_image];
            let res = call.residual.map(|r| &r[first * out_image..][..n * out_image]);
            let o = SendPtr(out[first * out_image..].as_mut_ptr());
            for ty0 in (0..th).step_by(rows) {
                let t = call.tiles(oh, ow, ty0, rows.min(th - ty0));
                let v = &mut v[..n * points * c * t.count()];
                let mm = &mut mm[..n * points * m * t.count()];
                transform_input(x, c, n, &t, v, call, threads);
                gemm::run(&call.inner_gemm(n * t.count()), v, mm, threads);
                // SAFETY: `o` is the chunk's `n` output images, borrowed mutably above.
                unsafe { transform_output(mm, m, n, &t, call, res, o, threads) };
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
    let (c, m, points) = (call.spec.in_channels, call.spec.out_channels, call.weights.tile.points());
    let (oh, ow) = call.spec.output_hw(call.h, call.w).expect("the caller checked the sizes");
    let (th, tw) = (oh.div_ceil(call.weights.tile.m()), ow.div_ceil(call.weights.tile.m()));
    // Each image's tile rows in near-equal blocks of at most `block_rows`, a whole number
    // of them per thread where the images are fewer than the threads: thread t's run of
    // items is then an even share (ResNet-50's 14 tile rows at 56x56 on 2 threads: 4 blocks
    // of 3 or 4 rows, each GEMM over 42-56 tiles; blocks of one row made GEMMs of 14 tiles
    // that read all the transformed weights each).
    let max_rows = block_rows(call.weights.tile, c, m, th, tw);
    let threads_per_image = threads.count().div_ceil(call.images);
    let blocks = th.div_ceil(max_rows).next_multiple_of(threads_per_image).min(th);
    let in_image = c * call.h * call.w;
    let out_image = call.check_output(out.len(), m * oh * ow);
    let o = SendPtr(out.as_mut_ptr());
    threads.for_each(call.images * blocks, &|i| {
        let (img, (ty0, ty1)) = (i / blocks, share(th, blocks, i % blocks));
        let t = call.tiles(oh, ow, ty0, ty1 - ty0);
        let x = &input[img * in_image..][..in_image];
        let res = call.residual.map(|r| &r[img * out_image..][..out_image]);
        BLOCK_BUFFERS.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.ensure(points * (c + m) * t.count());
            let (v, mm) = buf.as_mut_slice()[..points * (c + m) * t.count()].split_at_mut(points * c * t.count());
            SERIAL.with(|serial| {
                transform_input(x, c, 1, &t, v, call, serial);
                gemm::run(&call.inner_gemm(t.count()), v, mm, serial);
                // SAFETY: image `img` of `out`; this item writes only its block's rows.
                unsafe { transform_output(mm, m, 1, &t, call, res, SendPtr(o.get().add(img * out_image)), serial) };
            })
        })
    });
}

thread_local! {
    /// Each thread's transformed input and GEMM output in `run_blocks_per_thread`.
    static BLOCK_BUFFERS: std::cell::RefCell<AlignedBuf> = std::cell::RefCell::new(AlignedBuf::default());
    /// The steps' thread pool there: the calling thread alone.
    static SERIAL: Threads = Threads::single();
}

impl Call<'_> {
    /// Floats from one output image to the next in an output of `len` floats, each image's
    /// output `packed` floats (panics where they do not fit).
    fn check_output(&self, len: usize, packed: usize) -> usize {
        match self.out_image {
            None => {
                assert_eq!(len, self.images * packed);
                packed
            }
            Some(stride) => {
                assert!(self.residual.is_none() && stride >= packed, "strided: no residual");
                assert!(len >= (self.images - 1) * stride + packed);
                stride
            }
        }
    }

    /// Tile rows `ty0 .. ty0 + rows` of an `oh x ow` output.
    fn tiles(&self, oh: usize, ow: usize, ty0: usize, rows: usize) -> Tiles {
        let (pt, pl) = (self.spec.padding.top, self.spec.padding.left);
        let tile = self.weights.tile;
        let tw = ow.div_ceil(tile.m());
        Tiles { tile, h: self.h, w: self.w, oh, ow, pt, pl, ty0, th: rows, tw }
    }

    /// The `a^2` GEMMs over `tiles` tiles (those of every image in the chunk, side by
    /// side), as one `a^2`-group 1x1 conv.
    fn inner_gemm(&self, tiles: usize) -> gemm::Call<'_> {
        let c = self.spec.in_channels;
        gemm::Call {
            weights: &self.weights.gemm,
            kernels: self.kernels,
            bias: &self.weights.zero_bias,
            act: Epilogue::None,
            groups: self.weights.tile.points(),
            geom: Geom { c, h: 1, w: tiles, kh: 1, kw: 1, sh: 1, sw: 1, dh: 1, dw: 1, pt: 0, pl: 0, oh: 1, ow: tiles },
            images: 1,
            residual: None,
            residual_in_output: false,
            force: self.force,
            layouts: super::blocked::Layouts::NCHW,
            out_image: None,
        }
    }
}

/// `V[e][ch][img][tile]` from the `n` NCHW images `x`, one work item per (channel, image),
/// images varying fastest: consecutive items write consecutive rows of V.
fn transform_input(x: &[f32], c: usize, n: usize, t: &Tiles, v: &mut [f32], call: &Call, threads: &Threads) {
    let (plane, tiles, points) = (t.h * t.w, t.count(), t.tile.points());
    assert_eq!(v.len(), points * c * n * tiles);
    let vp = SendPtr(v.as_mut_ptr());
    // Point e's row of plane (img, ch): V[e][ch][img], `c * n * tiles` floats apart.
    let v_stride = c * n * tiles;
    threads.for_each_run(n * c, &|run| {
        super::scratch::with_scratch(t.input_scratch(), |buf| {
            for item in run {
                let (ch, img) = (item / n, item % n);
                let src = &x[(img * c + ch) * plane..][..plane];
                let v_at = vp.get().wrapping_add((ch * n + img) * tiles);
                // SAFETY (both arms): plane (img, ch) writes only V[e][ch][img][..] for every
                // point e, rows no other plane writes, all inside `v` (checked above); the
                // scratch is this thread's, `input_scratch` floats long.
                match t.tile {
                    WinogradTile::F2x2 => {
                        let rows: [&mut [f32]; 16] = std::array::from_fn(|e| unsafe {
                            std::slice::from_raw_parts_mut(v_at.add(e * v_stride), tiles)
                        });
                        input_plane_2x2(src, t, buf, rows);
                    }
                    WinogradTile::F4x4 => {
                        let job = InputJob { src, t: *t, scratch: buf.as_mut_ptr(), v: v_at, v_stride };
                        unsafe { (call.kernels.winograd_input)(&job) };
                    }
                }
            }
        })
    });
}

impl Tiles {
    /// Scratch floats of one input plane: F(2x2) a padded row and each input row times B;
    /// F(4x4) every tile's input rows times B (`vectors.rs`).
    fn input_scratch(&self) -> usize {
        match self.tile {
            WinogradTile::F2x2 => 2 * (self.tw + 1) + (2 * self.th + 2) * 4 * self.tw,
            WinogradTile::F4x4 => 36 * self.count(),
        }
    }

    /// Scratch floats of one output plane: F(2x2) one tile row's half-way rows and two
    /// output rows' columns; F(4x4) every tile's half-way rows (`vectors.rs`).
    fn output_scratch(&self) -> usize {
        match self.tile {
            WinogradTile::F2x2 => 12 * self.tw,
            WinogradTile::F4x4 => 6 * 4 * self.count(),
        }
    }
}

/// The block's output rows of the `n` NCHW images at `out` (`m` channels each), from
/// `M[e][ch][img][tile]`; one work item per (output channel, image), images varying
/// fastest: consecutive items read consecutive rows of M.
///
/// # Safety
/// `out` points at `n` images (`Call::out_image` floats apart) of `m` planes of `oh x ow`
/// floats that nothing else reads or writes in these rows during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output(
    mm: &[f32],
    m: usize,
    n: usize,
    t: &Tiles,
    call: &Call,
    residual: Option<&[f32]>,
    out: SendPtr,
    threads: &Threads,
) {
    let (plane, tiles, tm) = (t.oh * t.ow, t.count(), t.tile.m());
    assert_eq!(mm.len(), t.tile.points() * m * n * tiles);
    let first_row = tm * t.ty0;
    let rows = (tm * (t.ty0 + t.th)).min(t.oh) - first_row;
    // Point e's row of plane (img, ch): M[e][ch][img], `m * n * tiles` floats apart.
    let m_stride = m * n * tiles;
    let out_image = call.out_image.unwrap_or(m * plane);
    threads.for_each_run(n * m, &|run| {
        super::scratch::with_scratch(t.output_scratch(), |buf| {
            for item in run {
                let (ch, img) = (item / n, item % n);
                let (m_at, row0) = ((ch * n + img) * tiles, ch * plane + first_row * t.ow);
                // SAFETY: these rows of plane (img, ch), written by this run only, inside
                // `out` (the caller's promise).
                let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(img * out_image + row0), rows * t.ow) };
                let res = residual.map(|r| &r[img * m * plane + row0..][..rows * t.ow]);
                let bias = call.bias[ch];
                match t.tile {
                    WinogradTile::F2x2 => {
                        let m_rows: [&[f32]; 16] = std::array::from_fn(|e| &mm[m_at + e * m_stride..][..tiles]);
                        output_plane_2x2(m_rows, t, bias, res, call.act, buf, dst);
                    }
                    WinogradTile::F4x4 => {
                        let m = mm[m_at..].as_ptr();
                        let scratch = buf.as_mut_ptr();
                        let mut job = OutputJob { m, m_stride, t: *t, bias, res, act: call.act, scratch, dst };
                        // SAFETY: the job's rows lie inside `mm` (its length checked above);
                        // the scratch is this thread's, `output_scratch` floats long.
                        unsafe { (call.kernels.winograd_output)(&mut job) };
                    }
                }
            }
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of tile rows: about an L2 under light weights; under heavy ones the whole map
    /// up to `MAX_BLOCK_BYTES` of buffers, past it as many rows as fit.
    #[test]
    fn blocks_bound_the_buffers() {
        let f4 = WinogradTile::F4x4;
        let row = |c: usize, m: usize, tw: usize| f4.points() * (c + m) * tw * 4;
        // ResNet-50's 64-channel conv at 56x56: 14 tile rows of 258 KB.
        assert_eq!(block_rows(f4, 64, 64, 14, 14), BLOCK_BYTES / row(64, 64, 14));
        // VGG-16's 128-channel convs at 112x112: 28 tile rows, 29 MB, at once.
        assert_eq!(block_rows(f4, 128, 128, 28, 28), 28);
        // 256 channels at 112x112 (57 MB): blocks as large as fit.
        let (rows, bytes) = (block_rows(f4, 256, 256, 28, 28), row(256, 256, 28));
        assert!(rows > 1 && rows * bytes <= MAX_BLOCK_BYTES && (rows + 1) * bytes > MAX_BLOCK_BYTES, "{rows}");
    }
}
