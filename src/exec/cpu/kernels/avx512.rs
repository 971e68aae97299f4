//! AVX-512F: 16-lane vectors, 32 registers. GEMM tile 12 x 32 (24 accumulators + 2 B
//! vectors; A is broadcast straight from memory into the FMA).

use std::arch::x86_64::*;

use super::ctile::dispatch_ctile;
use super::simd::Simd;
use super::tile::dispatch_tile;
use super::{CTile, Tile};

pub(crate) const MR: usize = 12;
pub(crate) const NR: usize = 32;
pub(crate) const LANES: usize = 16;
/// Channel tile: up to 14 pixels by 32 channels (28 accumulators + 2 A vectors + the
/// broadcast: 31 of the 32 registers).
pub(crate) const NC: usize = 32;
pub(crate) const MAX_PIXELS: usize = 14;
/// A channel tile may span two output rows of this many pixels on the direct grid
/// (`CTile::seg`): a 7x7 map's rows are 7 pixels, half a tile, and a tile of 7 reads twice
/// the A panel per FMA (512 -> 512 3x3 at 7x7, one thread: 146 against 171 GFLOP/s at 14x14).
pub(crate) const TWO_ROW_RUN: usize = 7;

#[derive(Clone, Copy)]
pub(crate) struct Avx512;

#[inline(always)]
fn mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// Bits `a..b` set (`a <= b <= 32`).
#[inline(always)]
fn bits(a: usize, b: usize) -> u32 {
    (((1u64 << b) - 1) & !((1u64 << a) - 1)) as u32
}

/// Lane `t` = `first + 2 t`: the permute index of every other element of `lo ++ hi`.
#[inline(always)]
unsafe fn stride2_index(first: i32) -> __m512i {
    let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    _mm512_add_epi32(evens, _mm512_set1_epi32(first))
}

/// The three tap columns of a stride-2 3-wide filter from elements 0..32 (`lo`, `hi`) and
/// element 32 (`last`, broadcast: lane 15 of the third column); lanes outside `keep[kx]`
/// are zero.
#[inline(always)]
unsafe fn taps3_stride2(lo: __m512, hi: __m512, last: __m512, keep: [u16; 3]) -> [__m512; 3] {
    let third = _mm512_maskz_permutex2var_ps(keep[2] & 0x7fff, lo, stride2_index(2), hi);
    [
        _mm512_maskz_permutex2var_ps(keep[0], lo, stride2_index(0), hi),
        _mm512_maskz_permutex2var_ps(keep[1], lo, stride2_index(1), hi),
        _mm512_mask_mov_ps(third, keep[2] & 0x8000, last),
    ]
}

impl Simd for Avx512 {
    const LANES: usize = 16;
    type V = __m512;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> __m512 {
        _mm512_maskz_loadu_ps(mask(n), p)
    }
    #[inline(always)]
    unsafe fn gather_stride(p: *const f32, stride: usize, n: usize) -> __m512 {
        let index = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(stride as i32),
        );
        _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask(n), index, p.cast())
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn store_partial(p: *mut f32, v: __m512, n: usize) {
        _mm512_mask_storeu_ps(p, mask(n), v)
    }
    #[inline(always)]
    unsafe fn load_lanes(p: *const f32, a: usize, b: usize) -> __m512 {
        _mm512_maskz_loadu_ps(bits(a, b) as __mmask16, p)
    }
    #[inline(always)]
    unsafe fn load_mask(p: *const f32, bits: u32) -> __m512 {
        _mm512_maskz_loadu_ps(bits as __mmask16, p)
    }
    #[inline(always)]
    unsafe fn load_lanes_stride2(p: *const f32, a: usize, b: usize) -> __m512 {
        // The even source elements 2a..2b of 32, in two masked loads, then gathered.
        let m = bits(2 * a, 2 * b) & 0x5555_5555;
        let lo = _mm512_maskz_loadu_ps(m as __mmask16, p);
        let hi = _mm512_maskz_loadu_ps((m >> 16) as __mmask16, p.wrapping_add(16));
        _mm512_permutex2var_ps(lo, stride2_index(0), hi)
    }
    #[inline(always)]
    unsafe fn load_taps3_stride2(p: *const f32) -> [__m512; 3] {
        // Two whole loads give all three columns; the third's last lane is element 32.
        let (lo, hi) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
        taps3_stride2(lo, hi, _mm512_set1_ps(*p.add(32)), [0xffff; 3])
    }
    #[inline(always)]
    unsafe fn load_taps3_stride2_lanes(p: *const f32, cols: &[(u32, u32)]) -> [__m512; 3] {
        // Only the elements some valid lane needs (element `2 t + kx` for lane `t` of tap
        // column `kx`) are loaded, and each column keeps only its valid lanes.
        let (mut keep, mut elements) = ([0u16; 3], 0u64);
        for (kx, &(a, b)) in cols[..3].iter().enumerate() {
            let (a, b) = (a as usize, b as usize);
            if a < b {
                keep[kx] = bits(a, b) as u16;
                elements |= ((bits(2 * a, 2 * b) & 0x5555_5555) as u64) << kx;
            }
        }
        let lo = _mm512_maskz_loadu_ps(elements as __mmask16, p);
        let hi = _mm512_maskz_loadu_ps((elements >> 16) as __mmask16, p.wrapping_add(16));
        let last = if keep[2] >> 15 == 1 { _mm512_set1_ps(*p.wrapping_add(32)) } else { _mm512_setzero_ps() };
        taps3_stride2(lo, hi, last, keep)
    }
    #[inline(always)]
    unsafe fn columns6_stride4(p: *const f32, a: usize, b: usize) -> [__m512; 6] {
        // Elements 0..66 in five masked loads (the fifth for the next tile's first two),
        // split by phase in two rounds of permutes: even and odd elements, then every
        // fourth; columns 4 and 5 are columns 0 and 1 one tile on.
        let lanes_at = |base: usize| {
            let (lo, hi) = (a.saturating_sub(base).min(16), b.saturating_sub(base).min(16));
            bits(lo, hi.max(lo)) as __mmask16
        };
        let [v0, v1, v2, v3, v4] =
            std::array::from_fn(|k| _mm512_maskz_loadu_ps(lanes_at(16 * k), p.wrapping_add(16 * k)));
        let (evens, odds) = (stride2_index(0), stride2_index(1));
        let (e01, o01) = (_mm512_permutex2var_ps(v0, evens, v1), _mm512_permutex2var_ps(v0, odds, v1));
        let (e23, o23) = (_mm512_permutex2var_ps(v2, evens, v3), _mm512_permutex2var_ps(v2, odds, v3));
        let c0 = _mm512_permutex2var_ps(e01, evens, e23);
        let c1 = _mm512_permutex2var_ps(o01, evens, o23);
        // Lanes 1..16 of c0 (c1), then element 64 (65): lane 0 (1) of v4.
        let next0 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
        let next1 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17);
        [
            c0,
            c1,
            _mm512_permutex2var_ps(e01, odds, e23),
            _mm512_permutex2var_ps(o01, odds, o23),
            _mm512_permutex2var_ps(c0, next0, v4),
            _mm512_permutex2var_ps(c1, next1, v4),
        ]
    }
    #[inline(always)]
    unsafe fn interleave4(v: [__m512; 4]) -> [__m512; 4] {
        // Pairs first (columns 0 and 1, 2 and 3, lane by lane), then the pairs of pairs.
        let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
        let (lo01, hi01) = (_mm512_permutex2var_ps(v[0], lo, v[1]), _mm512_permutex2var_ps(v[0], hi, v[1]));
        let (lo23, hi23) = (_mm512_permutex2var_ps(v[2], lo, v[3]), _mm512_permutex2var_ps(v[2], hi, v[3]));
        let pairs_lo = _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
        let pairs_hi = _mm512_add_epi32(pairs_lo, _mm512_set1_epi32(8));
        [
            _mm512_permutex2var_ps(lo01, pairs_lo, lo23),
            _mm512_permutex2var_ps(lo01, pairs_hi, lo23),
            _mm512_permutex2var_ps(hi01, pairs_lo, hi23),
            _mm512_permutex2var_ps(hi01, pairs_hi, hi23),
        ]
    }
    #[inline(always)]
    unsafe fn transpose(r: [__m512; 16]) -> [__m512; 16] {
        // (Loops, not `array::from_fn`: an intrinsic called from a closure is not inlined.)
        // Pairs of rows interleaved within each 128-bit quarter q: columns 4q and 4q + 1 of
        // the two rows, then 4q + 2 and 4q + 3.
        let mut t = [_mm512_setzero_ps(); 16];
        for i in (0..16).step_by(2) {
            t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
        }
        // Pairs of pairs: `s[g + c]`'s quarter q is column 4q + c of rows g .. g + 4.
        let mut s = [_mm512_setzero_ps(); 16];
        for g in (0..16).step_by(4) {
            for h in 0..2 {
                let (a, b) = (_mm512_castps_pd(t[g + h]), _mm512_castps_pd(t[g + h + 2]));
                s[g + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
                s[g + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
            }
        }
        // Quarters: `u[h + j]` (j < 4) holds columns j and j + 8 of rows h .. h + 8,
        // `u[h + 4 + j]` columns j + 4 and j + 12; then each column's four quarters.
        let mut u = [_mm512_setzero_ps(); 16];
        for h in (0..16).step_by(8) {
            for j in 0..4 {
                u[h + j] = _mm512_shuffle_f32x4::<0x88>(s[h + j], s[h + j + 4]);
                u[h + j + 4] = _mm512_shuffle_f32x4::<0xdd>(s[h + j], s[h + j + 4]);
            }
        }
        let mut c = [_mm512_setzero_ps(); 16];
        for j in 0..8 {
            c[j] = _mm512_shuffle_f32x4::<0x88>(u[j], u[j + 8]);
            c[j + 8] = _mm512_shuffle_f32x4::<0xdd>(u[j], u[j + 8]);
        }
        c
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        _mm512_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        _mm512_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn recip(v: __m512) -> __m512 {
        // 14 bits, then r (2 - v r): about 23.
        let r = _mm512_rcp14_ps(v);
        _mm512_mul_ps(r, _mm512_fnmadd_ps(v, r, _mm512_set1_ps(2.0)))
    }
    #[inline(always)]
    unsafe fn zero_below(v: __m512, limit: f32) -> __m512 {
        _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, _mm512_set1_ps(limit)), v)
    }
    #[inline(always)]
    unsafe fn floor(v: __m512) -> __m512 {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(v)
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127))))
    }
    #[inline(always)]
    unsafe fn mul_pow2i(v: __m512, n: __m512) -> __m512 {
        _mm512_scalef_ps(v, n)
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        _mm512_min_ps(a, b)
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn tile_mv<const M: usize, const V: usize>(t: &Tile) {
    super::tile::tile::<Avx512, M, V, MR>(t)
}

/// Safety: see [`super::KernelSet::tile`]; needs AVX-512F.
pub(crate) unsafe fn tile(t: &Tile) {
    dispatch_tile!(tile_mv, t, 16, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
}

#[target_feature(enable = "avx512f")]
unsafe fn ctile_pv<const P: usize, const V: usize, const PS: usize, const BLOCKED: bool>(t: &CTile) {
    super::ctile::ctile::<Avx512, P, V, NC, PS, BLOCKED, 0>(t)
}

#[target_feature(enable = "avx512f")]
unsafe fn ctile_rows<const V: usize, const PS: usize, const BLOCKED: bool>(t: &CTile) {
    super::ctile::ctile::<Avx512, { 2 * TWO_ROW_RUN }, V, NC, PS, BLOCKED, TWO_ROW_RUN>(t)
}

/// The tile over two output rows (`CTile::seg`), or `P` pixels of one run.
#[inline(always)]
unsafe fn ctile_any<const PS: usize, const BLOCKED: bool>(t: &CTile) {
    if t.seg != 0 {
        debug_assert!(t.seg == TWO_ROW_RUN && t.n == 2 * TWO_ROW_RUN);
        return if t.m > LANES { ctile_rows::<2, PS, BLOCKED>(t) } else { ctile_rows::<1, PS, BLOCKED>(t) };
    }
    dispatch_ctile!(ctile_pv, t, LANES, PS, BLOCKED, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
}

/// Safety: see [`super::KernelSet::ctile`]; needs AVX-512F.
pub(crate) unsafe fn ctile(t: &CTile) {
    ctile_any::<1, false>(t)
}

/// NCHW in, blocked out. Safety: see [`super::KernelSet::ctile_layouts`]; needs AVX-512F.
pub(crate) unsafe fn ctile_to_blocked(t: &CTile) {
    ctile_any::<1, true>(t)
}

/// Blocked in and out. Safety: see [`super::KernelSet::ctile_layouts`]; needs AVX-512F.
pub(crate) unsafe fn ctile_blocked(t: &CTile) {
    ctile_any::<16, true>(t)
}

/// Blocked in, NCHW out. Safety: see [`super::KernelSet::ctile_layouts`]; needs AVX-512F.
pub(crate) unsafe fn ctile_from_blocked(t: &CTile) {
    ctile_any::<16, false>(t)
}

#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn transpose(job: &super::TransposeJob) {
    super::transpose::<Avx512>(job)
}

#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pad(job: &crate::exec::cpu::direct::PadJob) {
    crate::exec::cpu::direct::pad_copy::<Avx512>(job)
}

#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn scatter(job: &crate::exec::cpu::direct::ScatterJob) {
    crate::exec::cpu::direct::scatter::<Avx512>(job)
}

#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pack_b(job: &crate::exec::cpu::pack::PackJob) {
    crate::exec::cpu::pack::pack_b::<Avx512>(job)
}

/// Depthwise plane kernel instance; see `super::super::depthwise`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn depthwise_plane(p: &crate::exec::cpu::depthwise::Plane) {
    crate::exec::cpu::depthwise::plane::<Avx512>(p)
}

/// Winograd transform kernel instances; see `super::super::winograd`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn winograd_input(job: &crate::exec::cpu::winograd::InputJob) {
    crate::exec::cpu::winograd::input_plane::<Avx512>(job)
}

#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn winograd_output(job: &mut crate::exec::cpu::winograd::OutputJob) {
    crate::exec::cpu::winograd::output_plane::<Avx512>(job)
}

/// Blocked depthwise kernel instance; see `super::super::blocked`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn blocked_depthwise(j: &crate::exec::cpu::blocked::DwJob) {
    crate::exec::cpu::blocked::depthwise_block::<Avx512>(j)
}

#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn pool3s2(job: &crate::exec::cpu::pool::Pool3s2Job) -> bool {
    crate::exec::cpu::pool::pool3s2_plane::<Avx512>(job)
}

/// First-conv kernel instance; see `super::super::stem`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn stem_rows(job: &crate::exec::cpu::stem::Job) {
    crate::exec::cpu::stem::rows::<Avx512>(job)
}

/// Activation of `n` floats, maybe in place; see [`super::activate_slice`].
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn activate_slice(src: *const f32, dst: *mut f32, n: usize, act: super::Epilogue) {
    super::simd::activate_slice::<Avx512>(src, dst, n, act)
}
