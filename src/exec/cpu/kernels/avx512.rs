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
/// Channel tile: up to 12 pixels by 32 channels (24 accumulators + 2 A vectors).
pub(crate) const NC: usize = 32;
pub(crate) const MAX_PIXELS: usize = 12;

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
    unsafe fn load_lanes_stride2(p: *const f32, a: usize, b: usize) -> __m512 {
        // The even source elements 2a..2b of 32, in two masked loads, then gathered.
        let m = bits(2 * a, 2 * b) & 0x5555_5555;
        let lo = _mm512_maskz_loadu_ps(m as __mmask16, p);
        let hi = _mm512_maskz_loadu_ps((m >> 16) as __mmask16, p.wrapping_add(16));
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        _mm512_permutex2var_ps(lo, evens, hi)
    }
    #[inline(always)]
    unsafe fn load_taps3_stride2(p: *const f32) -> [__m512; 3] {
        // Two whole loads give all three: the even elements, the odd ones, and the even ones
        // from 2 on, whose last lane (element 32) comes from a broadcast.
        let (lo, hi) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let next = _mm512_setr_epi32(2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 0);
        let shifted = _mm512_permutex2var_ps(lo, next, hi);
        [
            _mm512_permutex2var_ps(lo, evens, hi),
            _mm512_permutex2var_ps(lo, odds, hi),
            _mm512_mask_mov_ps(shifted, 1 << 15, _mm512_set1_ps(*p.add(32))),
        ]
    }
    #[inline(always)]
    unsafe fn load_taps3_stride2_lanes(p: *const f32, cols: &[(u32, u32)]) -> [__m512; 3] {
        // As `load_taps3_stride2`, loading only the elements some valid lane needs (element
        // `2 t + kx` for lane `t` of tap column `kx`) and zeroing the other lanes.
        let lanes: [u32; 3] = std::array::from_fn(|kx| {
            let (a, b) = (cols[kx].0 as usize, cols[kx].1 as usize);
            if a < b {
                bits(a, b)
            } else {
                0
            }
        });
        let spread = |kx: usize| {
            let (a, b) = (cols[kx].0 as usize, cols[kx].1 as usize);
            if a < b {
                ((bits(2 * a, 2 * b) & 0x5555_5555) as u64) << kx
            } else {
                0
            }
        };
        let elements = spread(0) | spread(1) | spread(2);
        let lo = _mm512_maskz_loadu_ps(elements as __mmask16, p);
        let hi = _mm512_maskz_loadu_ps((elements >> 16) as __mmask16, p.wrapping_add(16));
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let next = _mm512_setr_epi32(2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 0);
        let mut third = _mm512_maskz_permutex2var_ps((lanes[2] & 0x7fff) as __mmask16, lo, next, hi);
        if lanes[2] >> 15 & 1 == 1 {
            third = _mm512_mask_mov_ps(third, 1 << 15, _mm512_set1_ps(*p.wrapping_add(32)));
        }
        [
            _mm512_maskz_permutex2var_ps(lanes[0] as __mmask16, lo, evens, hi),
            _mm512_maskz_permutex2var_ps(lanes[1] as __mmask16, lo, odds, hi),
            third,
        ]
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
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        _mm512_max_ps(a, b)
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
unsafe fn ctile_pv<const P: usize, const V: usize>(t: &CTile) {
    super::ctile::ctile::<Avx512, P, V, NC>(t)
}

/// Safety: see [`super::KernelSet::ctile`]; needs AVX-512F.
pub(crate) unsafe fn ctile(t: &CTile) {
    dispatch_ctile!(ctile_pv, t, LANES, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
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
