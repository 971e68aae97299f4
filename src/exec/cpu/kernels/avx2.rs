//! AVX2 + FMA: 8-lane vectors, 16 registers. GEMM tile 6 x 16 (12 accumulators, 2 B
//! vectors, 1 broadcast register: the classic Haswell shape).

use std::arch::x86_64::*;

use super::ctile::dispatch_ctile;
use super::simd::Simd;
use super::tile::dispatch_tile;
use super::{CTile, Tile};

pub(crate) const MR: usize = 6;
pub(crate) const NR: usize = 16;
pub(crate) const LANES: usize = 8;
/// Channel tile: up to 6 pixels by 16 channels (12 accumulators + 2 A vectors).
pub(crate) const NC: usize = 16;
pub(crate) const MAX_PIXELS: usize = 6;

#[derive(Clone, Copy)]
pub(crate) struct Avx2;

/// Lane mask for `maskload`/`maskstore`: lanes below `n` have their sign bit set.
#[inline(always)]
unsafe fn mask(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// Lanes `a..b` of 8 set.
#[inline(always)]
unsafe fn range(a: usize, b: usize) -> __m256i {
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_andnot_si256(
        _mm256_cmpgt_epi32(_mm256_set1_epi32(a as i32), iota),
        _mm256_cmpgt_epi32(_mm256_set1_epi32(b as i32), iota),
    )
}

impl Simd for Avx2 {
    const LANES: usize = 8;
    type V = __m256;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> __m256 {
        _mm256_maskload_ps(p, mask(n))
    }
    #[inline(always)]
    unsafe fn gather_stride(p: *const f32, stride: usize, n: usize) -> __m256 {
        let index = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride as i32));
        _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), p, index, _mm256_castsi256_ps(mask(n)))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn store_partial(p: *mut f32, v: __m256, n: usize) {
        _mm256_maskstore_ps(p, mask(n), v)
    }
    #[inline(always)]
    unsafe fn load_lanes(p: *const f32, a: usize, b: usize) -> __m256 {
        _mm256_maskload_ps(p, range(a, b))
    }
    #[inline(always)]
    unsafe fn load_mask(p: *const f32, bits: u32) -> __m256 {
        // Lane t's mask word all ones where bit t is set.
        let bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        let set = _mm256_and_si256(_mm256_set1_epi32(bits as i32), bit);
        _mm256_maskload_ps(p, _mm256_cmpeq_epi32(set, bit))
    }
    #[inline(always)]
    unsafe fn load_lanes_stride2(p: *const f32, a: usize, b: usize) -> __m256 {
        // Even source elements 2a..2b of 16 in two masked loads, then the evens gathered:
        // shuffle gives [l0 l2 h0 h2 l4 l6 h4 h6], the 64-bit permute orders it.
        let even = _mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0);
        let lo = _mm256_maskload_ps(p, _mm256_and_si256(range(2 * a, 2 * b), even));
        let hi = _mm256_maskload_ps(
            p.wrapping_add(8),
            _mm256_and_si256(range((2 * a).saturating_sub(8), (2 * b).saturating_sub(8)), even),
        );
        let mixed = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
        _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(mixed)))
    }
    #[inline(always)]
    unsafe fn columns6_stride4(p: *const f32, a: usize, b: usize) -> [__m256; 6] {
        // Elements 0..34 in five masked loads (the fifth for the next tile's first two):
        // tiles 0 and 4, 1 and 5, ... paired across the halves, then a 4x4 transpose in
        // each half; columns 4 and 5 are columns 0 and 1 one tile on.
        let [v0, v1, v2, v3, v4] = std::array::from_fn(|k| {
            let lanes = (a.saturating_sub(8 * k).min(8), b.saturating_sub(8 * k).min(8));
            _mm256_maskload_ps(p.wrapping_add(8 * k), range(lanes.0, lanes.1))
        });
        let (u0, u1) = (_mm256_permute2f128_ps::<0x20>(v0, v2), _mm256_permute2f128_ps::<0x20>(v1, v3));
        let (u2, u3) = (_mm256_permute2f128_ps::<0x31>(v0, v2), _mm256_permute2f128_ps::<0x31>(v1, v3));
        let (x0, x1) = (_mm256_unpacklo_ps(u0, u2), _mm256_unpacklo_ps(u1, u3));
        let (x2, x3) = (_mm256_unpackhi_ps(u0, u2), _mm256_unpackhi_ps(u1, u3));
        let (c0, c1) = (_mm256_shuffle_ps::<0x44>(x0, x1), _mm256_shuffle_ps::<0xee>(x0, x1));
        let on = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
        let next = |c: __m256, e: i32| {
            let last = _mm256_permutevar8x32_ps(v4, _mm256_set1_epi32(e));
            _mm256_blend_ps::<0x80>(_mm256_permutevar8x32_ps(c, on), last)
        };
        [c0, c1, _mm256_shuffle_ps::<0x44>(x2, x3), _mm256_shuffle_ps::<0xee>(x2, x3), next(c0, 0), next(c1, 1)]
    }
    #[inline(always)]
    unsafe fn interleave4(v: [__m256; 4]) -> [__m256; 4] {
        // A 4x8 transpose: each half's four tiles by unpacking, then the halves paired.
        let (t0, t1) = (_mm256_unpacklo_ps(v[0], v[2]), _mm256_unpacklo_ps(v[1], v[3]));
        let (t2, t3) = (_mm256_unpackhi_ps(v[0], v[2]), _mm256_unpackhi_ps(v[1], v[3]));
        let (u0, u1) = (_mm256_unpacklo_ps(t0, t1), _mm256_unpackhi_ps(t0, t1));
        let (u2, u3) = (_mm256_unpacklo_ps(t2, t3), _mm256_unpackhi_ps(t2, t3));
        [
            _mm256_permute2f128_ps::<0x20>(u0, u1),
            _mm256_permute2f128_ps::<0x20>(u2, u3),
            _mm256_permute2f128_ps::<0x31>(u0, u1),
            _mm256_permute2f128_ps::<0x31>(u2, u3),
        ]
    }
    #[inline(always)]
    unsafe fn transpose(r: [__m256; 16]) -> [__m256; 16] {
        // As AVX-512's (loops, not closures, for the intrinsics to inline), in two 128-bit
        // halves: pairs of rows, pairs of pairs (`s[g + c]`'s half q is column 4q + c of rows
        // g .. g + 4), then the halves.
        let mut t = [_mm256_setzero_ps(); 8];
        for i in (0..8).step_by(2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        let mut s = [_mm256_setzero_ps(); 8];
        for g in (0..8).step_by(4) {
            for h in 0..2 {
                let (a, b) = (_mm256_castps_pd(t[g + h]), _mm256_castps_pd(t[g + h + 2]));
                s[g + 2 * h] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, b));
                s[g + 2 * h + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, b));
            }
        }
        let mut c = r;
        for j in 0..4 {
            c[j] = _mm256_permute2f128_ps::<0x20>(s[j], s[j + 4]);
            c[j + 4] = _mm256_permute2f128_ps::<0x31>(s[j], s[j + 4]);
        }
        c
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        _mm256_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        _mm256_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        _mm256_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn recip(v: __m256) -> __m256 {
        // 12 bits, then r (2 - v r): about 22.
        let r = _mm256_rcp_ps(v);
        _mm256_mul_ps(r, _mm256_fnmadd_ps(v, r, _mm256_set1_ps(2.0)))
    }
    #[inline(always)]
    unsafe fn zero_below(v: __m256, limit: f32) -> __m256 {
        _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_GE_OQ>(v, _mm256_set1_ps(limit)))
    }
    #[inline(always)]
    unsafe fn floor(v: __m256) -> __m256 {
        _mm256_floor_ps(v)
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m256) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127))))
    }
    #[inline(always)]
    unsafe fn min(a: __m256, b: __m256) -> __m256 {
        _mm256_min_ps(a, b)
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn tile_mv<const M: usize, const V: usize>(t: &Tile) {
    super::tile::tile::<Avx2, M, V, MR>(t)
}

/// Safety: see [`super::KernelSet::tile`]; needs AVX2 and FMA.
pub(crate) unsafe fn tile(t: &Tile) {
    dispatch_tile!(tile_mv, t, 8, [1, 2, 3, 4, 5, 6])
}

#[target_feature(enable = "avx2,fma")]
unsafe fn ctile_pv<const P: usize, const V: usize, const PS: usize, const BLOCKED: bool>(t: &CTile) {
    super::ctile::ctile::<Avx2, P, V, NC, PS, BLOCKED, 0>(t)
}

/// Safety: see [`super::KernelSet::ctile`]; needs AVX2 and FMA.
pub(crate) unsafe fn ctile(t: &CTile) {
    dispatch_ctile!(ctile_pv, t, LANES, 1, false, [1, 2, 3, 4, 5, 6])
}

/// NCHW in, blocked out. Safety: see [`super::KernelSet::ctile_layouts`]; needs AVX2 and FMA.
pub(crate) unsafe fn ctile_to_blocked(t: &CTile) {
    dispatch_ctile!(ctile_pv, t, LANES, 1, true, [1, 2, 3, 4, 5, 6])
}

/// Blocked in and out. Safety: see [`super::KernelSet::ctile_layouts`]; needs AVX2 and FMA.
pub(crate) unsafe fn ctile_blocked(t: &CTile) {
    dispatch_ctile!(ctile_pv, t, LANES, 16, true, [1, 2, 3, 4, 5, 6])
}

/// Blocked in, NCHW out. Safety: see [`super::KernelSet::ctile_layouts`]; needs AVX2 and FMA.
pub(crate) unsafe fn ctile_from_blocked(t: &CTile) {
    dispatch_ctile!(ctile_pv, t, LANES, 16, false, [1, 2, 3, 4, 5, 6])
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn transpose(job: &super::TransposeJob) {
    super::transpose::<Avx2>(job)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn pad(job: &crate::exec::cpu::direct::PadJob) {
    crate::exec::cpu::direct::pad_copy::<Avx2>(job)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn scatter(job: &crate::exec::cpu::direct::ScatterJob) {
    crate::exec::cpu::direct::scatter::<Avx2>(job)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn pack_b(job: &crate::exec::cpu::pack::PackJob) {
    crate::exec::cpu::pack::pack_b::<Avx2>(job)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn depthwise_plane(p: &crate::exec::cpu::depthwise::Plane) {
    crate::exec::cpu::depthwise::plane::<Avx2>(p)
}

/// Winograd transform kernel instances; see `super::super::winograd`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn winograd_input(job: &crate::exec::cpu::winograd::InputJob) {
    crate::exec::cpu::winograd::input_plane::<Avx2>(job)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn winograd_output(job: &mut crate::exec::cpu::winograd::OutputJob) {
    crate::exec::cpu::winograd::output_plane::<Avx2>(job)
}

/// Blocked depthwise kernel instance; see `super::super::blocked`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn blocked_depthwise(j: &crate::exec::cpu::blocked::DwJob) {
    crate::exec::cpu::blocked::depthwise_block::<Avx2>(j)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn pool3s2(job: &crate::exec::cpu::pool::Pool3s2Job) -> bool {
    crate::exec::cpu::pool::pool3s2_plane::<Avx2>(job)
}

/// First-conv kernel instance; see `super::super::stem`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn stem_rows(job: &crate::exec::cpu::stem::Job) {
    crate::exec::cpu::stem::rows::<Avx2>(job)
}

/// Activation of `n` floats, maybe in place; see [`super::activate_slice`].
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn activate_slice(src: *const f32, dst: *mut f32, n: usize, act: super::Epilogue) {
    super::simd::activate_slice::<Avx2>(src, dst, n, act)
}
