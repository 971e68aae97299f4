//! Portable fallback: a "vector" of one f32. Same loops as the SIMD paths, so it checks
//! the blocking and packing logic on any CPU. GEMM tile 4 x 8 (4 x 8 scalar accumulators).

use super::ctile::dispatch_ctile;
use super::simd::Simd;
use super::tile::dispatch_tile;
use super::{CTile, Tile};

pub(crate) const MR: usize = 4;
pub(crate) const NR: usize = 8;
pub(crate) const LANES: usize = 1;
/// Channel tile: up to 4 pixels by 2 channels.
pub(crate) const NC: usize = 2;
pub(crate) const MAX_PIXELS: usize = 4;

#[derive(Clone, Copy)]
pub(crate) struct Scalar;

impl Simd for Scalar {
    const LANES: usize = 1;
    type V = f32;

    #[inline(always)]
    unsafe fn zero() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        *p
    }
    #[inline(always)]
    unsafe fn load_partial(_p: *const f32, _n: usize) -> f32 {
        0.0 // n < LANES = 1 means n == 0
    }
    #[inline(always)]
    unsafe fn gather_stride(p: *const f32, _stride: usize, _n: usize) -> f32 {
        *p // n == LANES == 1
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        *p = v
    }
    #[inline(always)]
    unsafe fn store_partial(_p: *mut f32, _v: f32, _n: usize) {}
    #[inline(always)]
    unsafe fn load_lanes(p: *const f32, a: usize, _b: usize) -> f32 {
        if a == 0 {
            *p
        } else {
            0.0
        }
    }
    #[inline(always)]
    unsafe fn load_mask(p: *const f32, bits: u32) -> f32 {
        if bits & 1 == 1 {
            *p
        } else {
            0.0
        }
    }
    #[inline(always)]
    unsafe fn load_lanes_stride2(p: *const f32, a: usize, b: usize) -> f32 {
        Self::load_lanes(p, a, b)
    }
    #[inline(always)]
    unsafe fn fmadd(a: f32, b: f32, c: f32) -> f32 {
        // Not `mul_add`: without hardware FMA that is a slow libm call. Rounding differs
        // from the fused paths by well under the tests' tolerance.
        a * b + c
    }
    #[inline(always)]
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    unsafe fn mul(a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    unsafe fn max(a: f32, b: f32) -> f32 {
        a.max(b)
    }
    #[inline(always)]
    unsafe fn recip(v: f32) -> f32 {
        1.0 / v
    }
    #[inline(always)]
    unsafe fn zero_below(v: f32, limit: f32) -> f32 {
        if v >= limit {
            v
        } else {
            0.0
        }
    }
    #[inline(always)]
    unsafe fn floor(v: f32) -> f32 {
        v.floor()
    }
    #[inline(always)]
    unsafe fn pow2i(n: f32) -> f32 {
        f32::from_bits(((n as i32 + 127) as u32) << 23)
    }
    #[inline(always)]
    unsafe fn min(a: f32, b: f32) -> f32 {
        a.min(b)
    }
}

/// The dispatcher's `V` (1 or 2 vectors per row) is for wide vectors; a scalar tile always
/// runs as `NR` one-lane "vectors", and its store loop stops at `n` columns.
unsafe fn tile_mv<const M: usize, const V: usize>(t: &Tile) {
    super::tile::tile::<Scalar, M, NR, MR>(t)
}

/// Safety: see [`super::KernelSet::tile`].
pub(crate) unsafe fn tile(t: &Tile) {
    dispatch_tile!(tile_mv, t, 1, [1, 2, 3, 4])
}

unsafe fn ctile_pv<const P: usize, const V: usize, const PS: usize, const BLOCKED: bool>(t: &CTile) {
    super::ctile::ctile::<Scalar, P, V, NC, PS, BLOCKED, 0>(t)
}

/// Safety: see [`super::KernelSet::ctile`].
pub(crate) unsafe fn ctile(t: &CTile) {
    dispatch_ctile!(ctile_pv, t, LANES, 1, false, [1, 2, 3, 4])
}

/// NCHW in, blocked out. Safety: see [`super::KernelSet::ctile_layouts`].
pub(crate) unsafe fn ctile_to_blocked(t: &CTile) {
    dispatch_ctile!(ctile_pv, t, LANES, 1, true, [1, 2, 3, 4])
}

/// Blocked in and out. Safety: see [`super::KernelSet::ctile_layouts`].
pub(crate) unsafe fn ctile_blocked(t: &CTile) {
    dispatch_ctile!(ctile_pv, t, LANES, 16, true, [1, 2, 3, 4])
}

/// Blocked in, NCHW out. Safety: see [`super::KernelSet::ctile_layouts`].
pub(crate) unsafe fn ctile_from_blocked(t: &CTile) {
    dispatch_ctile!(ctile_pv, t, LANES, 16, false, [1, 2, 3, 4])
}

pub(crate) unsafe fn transpose(job: &super::TransposeJob) {
    super::transpose::<Scalar>(job)
}

pub(crate) unsafe fn pad(job: &crate::exec::cpu::direct::PadJob) {
    crate::exec::cpu::direct::pad_copy::<Scalar>(job)
}

pub(crate) unsafe fn scatter(job: &crate::exec::cpu::direct::ScatterJob) {
    crate::exec::cpu::direct::scatter::<Scalar>(job)
}

pub(crate) unsafe fn pack_b(job: &crate::exec::cpu::pack::PackJob) {
    crate::exec::cpu::pack::pack_b::<Scalar>(job)
}

pub(crate) unsafe fn depthwise_plane(p: &crate::exec::cpu::depthwise::Plane) {
    crate::exec::cpu::depthwise::plane::<Scalar>(p)
}

/// Winograd transform kernel instances; see `super::super::winograd`.
pub(crate) unsafe fn winograd_input(job: &crate::exec::cpu::winograd::InputJob) {
    crate::exec::cpu::winograd::input_plane::<Scalar>(job)
}

pub(crate) unsafe fn winograd_output(job: &mut crate::exec::cpu::winograd::OutputJob) {
    crate::exec::cpu::winograd::output_plane::<Scalar>(job)
}

/// Blocked depthwise kernel instance; see `super::super::blocked`.
pub(crate) unsafe fn blocked_depthwise(j: &crate::exec::cpu::blocked::DwJob) {
    crate::exec::cpu::blocked::depthwise_block::<Scalar>(j)
}

pub(crate) unsafe fn pool3s2(job: &crate::exec::cpu::pool::Pool3s2Job) -> bool {
    crate::exec::cpu::pool::pool3s2_plane::<Scalar>(job)
}

/// First-conv kernel instance; see `super::super::stem`.
pub(crate) unsafe fn stem_rows(job: &crate::exec::cpu::stem::Job) {
    crate::exec::cpu::stem::rows::<Scalar>(job)
}
