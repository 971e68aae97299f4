//! The channel-vectorized GEMM micro-kernel, for small maps: output channels in the
//! vector lanes, pixels broadcast.
//!
//! The pixel-vectorized tile (`tile.rs`) fills its `NR`-wide panels with pixels, so a 7x7
//! map (49 pixels) runs in 64 lanes and a 14x14 one in 224 (or 222 of a 3x3's padded
//! grid): 23% and 13% of the FMAs thrown away. Channel counts, by contrast, are multiples
//! of 16 in nearly every CNN. Here a tile is `P` pixels (any count up to the ISA's limit,
//! e.g. one 7-pixel output row) by `V` vectors of channels: each K step loads `V` vectors of
//! the A panel (`[k][NC]`, channels contiguous) and broadcasts `P` B scalars, then does
//! `P * V` FMAs (12 x 2 = 24 on AVX-512, as the pixel tile).
//!
//! The price is the store: the accumulators hold one pixel's channels per vector, the
//! output is NCHW (a channel's pixels contiguous), so the tile is transposed. Where its
//! pixels fit one vector (every ISA but scalar) each vector of channels is transposed in
//! registers (`Simd::transpose`: 64 shuffles for AVX-512's 16x16) and each channel's
//! pixels stored as the output row they are; else through a small buffer, stored pixel by
//! pixel and read back a channel at a time with one strided gather per channel
//! (`Simd::gather_stride`). A residual is added to the channel rows, as it lies in memory.
//! The gathers had replaced `NC * P` scalar moves each way (ResNet-50 batch 16 and
//! MobileNetV2 batch 1 about 3% faster); the shuffles replaced the gathers (ResNet-50's
//! 256 -> 256 1x1 at 14x14, batch 16, one thread: 2.0 -> 1.74 ms, as fast as with a blocked
//! output). Either way it costs a few percent of `K * P * V` FMAs once K is in the
//! hundreds (`gemm::method` weighs it).

use super::super::blocked::BLOCK;
use super::simd::{activate, load_n, prefetch_l1, prefetch_l2, store_n, Simd, MAX_LANES, PREFETCH_STEPS};

/// One channel-vectorized tile: `C[m x n] = A[m x kc] * B[kc x n] + bias`, activated.
///
/// * `a`: an A^T panel, `kc` steps of `NC` floats (channels past `m` are zero).
/// * `b`, `boff`: pixel `i` of K row `k` is the float at `b + boff[k] + i`.
/// * `c`: channel 0, pixel 0 of the tile in the output; channels `ldc` apart, a channel's
///   `n` pixels contiguous.
#[derive(Clone, Copy)]
pub(crate) struct CTile {
    pub kc: usize,
    pub a: *const f32,
    pub b: *const f32,
    pub boff: *const u32,
    pub c: *mut f32,
    pub ldc: usize,
    /// Channels (`<= V * LANES`).
    pub m: usize,
    /// Pixels (`== P`).
    pub n: usize,
    pub bias: *const f32,
    /// A residual added before `act`, laid out as `c`; null for none.
    pub res: *const f32,
    pub act: super::Epilogue,
    /// Floats to bring into L2 while the tile computes (part of the next A^T panel, see
    /// `gemm::run_channels`): `pf + (k * pf_step >> 16)` at step `k`. At batch 1 the
    /// weights stream from memory; fetched during the tiles before them, their loads
    /// overlap the FMAs instead of stalling the first tile of each panel.
    pub pf: *const f32,
    /// Floats per K step, 16.16 fixed point (0: the same line every step).
    pub pf_step: u32,
    /// Blocked output (`blocked.rs`): the tile's first channel's lane in its block of
    /// [`BLOCK`]; `c` then points at that block's lane 0 of the tile's first pixel, and
    /// `ldc` is the floats between blocks. Unused for NCHW output.
    pub lane0: usize,
    /// Pixels per B row segment for a tile over several output rows (`ctile`'s `SEG`;
    /// 0: the tile's pixels are one run of B).
    pub seg: usize,
    /// With `seg`: floats from one segment's first B pixel to the next's (the grid's row).
    pub row_step: usize,
    /// A tile whose K is cut into parts (A's part then stays in L1 across the tiles of a
    /// run): its running sums, pixel-major, `NC` floats a pixel; null for a tile over all of
    /// K. The tile starts from them unless `first_part`, and, unless `last_part`, stores
    /// them there instead of finishing into `c`.
    pub sums: *mut f32,
    pub first_part: bool,
    pub last_part: bool,
}

/// Largest `P * NC` of any ISA (AVX-512: 14 pixels x 32 channels).
const TRANSPOSE_FLOATS: usize = 14 * 32;

/// Where pixel `i` of a tile lies in B row `b`: `PS` floats apart, and with `SEG` > 0 in
/// segments of `SEG` pixels, `row_step` floats apart (a tile over whole output rows of a
/// small map on the direct grid, whose rows hold gap columns).
#[inline(always)]
fn pixel_at<const PS: usize, const SEG: usize>(b: *const f32, i: usize, row_step: usize) -> *const f32 {
    if SEG == 0 {
        b.wrapping_add(i * PS)
    } else {
        b.wrapping_add(i % SEG * PS + i / SEG * row_step)
    }
}

/// `P` pixels by `V` channel vectors; `NC` is the A panel's width (`>= V * LANES`).
/// B's pixels lie `PS` floats apart: 1 in an NCHW input, [`BLOCK`] in a blocked one;
/// `SEG` > 0: in segments of `SEG` pixels (`CTile::seg`), the output's pixels contiguous.
/// `BLOCKED`: the output is blocked (each vector stored as it is, no transpose), and the
/// tile's channels fill its vectors.
#[inline(always)]
pub(crate) unsafe fn ctile<
    S: Simd,
    const P: usize,
    const V: usize,
    const NC: usize,
    const PS: usize,
    const BLOCKED: bool,
    const SEG: usize,
>(
    t: &CTile,
) {
    debug_assert!(t.n == P && t.m <= V * S::LANES && P * NC <= TRANSPOSE_FLOATS);
    debug_assert!(!BLOCKED || (t.m == V * S::LANES && BLOCK.is_multiple_of(S::LANES)));
    debug_assert!(t.seg == SEG && (SEG == 0 || P.is_multiple_of(SEG)));
    let mut acc = [[S::zero(); V]; P];
    if !t.sums.is_null() && !t.first_part {
        for (i, row) in acc.iter_mut().enumerate() {
            for (j, x) in row.iter_mut().enumerate() {
                *x = S::load(t.sums.add(i * NC + j * S::LANES));
            }
        }
    }
    let mut a = t.a;
    let mut pf = 0usize;
    let ahead = t.kc.saturating_sub(PREFETCH_STEPS);
    let segments = P.checked_div(SEG).unwrap_or(1);
    let seg_len = if SEG == 0 { P } else { SEG };
    for k in 0..t.kc {
        if k < ahead {
            let row = t.b.wrapping_add(*t.boff.add(k + PREFETCH_STEPS) as usize);
            for s in 0..segments {
                prefetch_l1(pixel_at::<PS, SEG>(row, s * seg_len, t.row_step));
                prefetch_l1(pixel_at::<PS, SEG>(row, s * seg_len + seg_len - 1, t.row_step));
            }
        }
        prefetch_l2(t.pf.wrapping_add(pf >> 16));
        pf += t.pf_step as usize;
        let b = t.b.add(*t.boff.add(k) as usize);
        let mut av = [S::zero(); V];
        for (j, v) in av.iter_mut().enumerate() {
            *v = S::load(a.add(j * S::LANES));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let bi = S::splat(*pixel_at::<PS, SEG>(b, i, t.row_step));
            for (j, x) in row.iter_mut().enumerate() {
                *x = S::fmadd(av[j], bi, *x);
            }
        }
        a = a.add(NC);
    }

    // Bias (and, without a residual, the activation) on the vectors, then the transpose:
    // pixel-major buffer rows of NC channels, gathered back a channel at a time.
    // (Static loops only: indexing `acc` with a run-time bound makes LLVM keep it in
    // memory, storing every accumulator on every K step.) The dispatcher picks `V` so
    // every vector has at least one channel.
    debug_assert!(t.m > (V - 1) * S::LANES);
    if !t.sums.is_null() && !t.last_part {
        for (i, row) in acc.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                S::store(t.sums.add(i * NC + j * S::LANES), x);
            }
        }
        return;
    }
    if BLOCKED {
        store_blocked::<S, P, V>(t, &acc);
        return;
    }
    let mut bias = [S::zero(); V];
    for (j, b) in bias.iter_mut().enumerate() {
        *b = load_n::<S>(t.bias.add(j * S::LANES), (t.m - j * S::LANES).min(S::LANES));
    }
    // With a residual the activation waits for it: it is added to the channel rows, where
    // its rows lie as they are in memory (no transposing it in).
    let has_res = !t.res.is_null();
    if P <= S::LANES {
        // Each vector of channels transposed in registers (pixels 0..P of each channel),
        // its channels stored as output rows. (`acc` read with static indices only, as
        // above: `acc[i][j]` inside the loop over `j` made LLVM keep it in memory, 2.5x
        // slower.)
        let mut rows = [[S::zero(); MAX_LANES]; V];
        for (i, row) in acc.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                let v = S::add(x, bias[j]);
                rows[j][i] = if has_res { v } else { activate::<S>(v, t.act) };
            }
        }
        for (j, &rows) in rows.iter().enumerate() {
            let cols = S::transpose(rows);
            for (l, &col) in cols.iter().enumerate().take(S::LANES) {
                let ch = j * S::LANES + l;
                if ch >= t.m {
                    break;
                }
                let (dst, res) = (t.c.add(ch * t.ldc), t.res.wrapping_add(ch * t.ldc));
                let v = if has_res { activate::<S>(S::add(col, load_n::<S>(res, P)), t.act) } else { col };
                store_n::<S>(dst, v, P);
            }
        }
        return;
    }
    let mut buf = [0.0f32; TRANSPOSE_FLOATS];
    for (i, row) in acc.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            let v = S::add(x, bias[j]);
            let v = if has_res { v } else { activate::<S>(v, t.act) };
            S::store(buf.as_mut_ptr().add(i * NC + j * S::LANES), v);
        }
    }
    // Each channel's P pixels gathered from the buffer's column (NC apart), a vector at a
    // time, and stored as the output row they are.
    for ch in 0..t.m {
        let (dst, res) = (t.c.add(ch * t.ldc), t.res.wrapping_add(ch * t.ldc));
        let mut i = 0;
        while i < P {
            let n = (P - i).min(S::LANES);
            let mut v = S::gather_stride(buf.as_ptr().add(i * NC + ch), NC, n);
            if has_res {
                v = activate::<S>(S::add(v, load_n::<S>(res.add(i), n)), t.act);
            }
            store_n::<S>(dst.add(i), v, n);
            i += S::LANES;
        }
    }
}

/// The blocked store: vector `j` of pixel `i` is `LANES` consecutive channels of one
/// block, so it goes to memory as it is, the residual read the same way.
#[inline(always)]
unsafe fn store_blocked<S: Simd, const P: usize, const V: usize>(t: &CTile, acc: &[[S::V; V]; P]) {
    let has_res = !t.res.is_null();
    for j in 0..V {
        let lane = t.lane0 + j * S::LANES;
        let at = (lane / BLOCK) * t.ldc + lane % BLOCK;
        let bias = S::load(t.bias.add(j * S::LANES));
        for (i, row) in acc.iter().enumerate() {
            let off = at + i * BLOCK;
            let mut v = S::add(row[j], bias);
            if has_res {
                v = S::add(v, S::load(t.res.add(off)));
            }
            S::store(t.c.add(off), activate::<S>(v, t.act));
        }
    }
}

/// Call `$f::<P, V>(t)` for the tile's pixel count `P` (one of the listed literals) and
/// `V` = 1 or 2 channel vectors, so each shape gets its own fully unrolled instance; `$ps`
/// and `$blocked` pick the layouts (`ctile`'s `PS` and `BLOCKED`).
macro_rules! dispatch_ctile {
    ($f:ident, $t:expr, $lanes:expr, $ps:tt, $blocked:tt, [$($p:literal),*]) => {{
        let t: &$crate::exec::cpu::kernels::CTile = $t;
        let two = t.m > $lanes;
        match t.n {
            $( $p => if two { $f::<$p, 2, $ps, $blocked>(t) } else { $f::<$p, 1, $ps, $blocked>(t) }, )*
            _ => unreachable!("channel tile pixels {} out of range", t.n),
        }
    }};
}
pub(crate) use dispatch_ctile;
