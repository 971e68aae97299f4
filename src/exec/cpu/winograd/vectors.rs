//! F(4x4, 3x3)'s transforms as ISA kernels (`kernels/`), in vectors over tiles. The step
//! down the patch rows runs over all the tiles of a plane. The step across a row runs over
//! one tile row's tiles, where a row of the plane is read or written: its tiles' columns are
//! split from the input row, and put back together into the output row, by vector permutes
//! (`Simd::columns6_stride4`, `Simd::interleave4`). A row of 4-wide tiles is 4-14 tiles in
//! ResNet-50, so that step fills 4-14 of AVX-512's 16 lanes; before, gathers and scalar
//! stores cost more than the idle lanes do (benches/peers/RESULTS.md section 20).

use super::{Tiles, WinogradTile};
use crate::exec::cpu::kernels::simd::{activate, load_n, store_n, Simd};
use crate::exec::cpu::Epilogue;

/// One channel plane's input transform, for the ISA kernels (`input_plane`).
pub(crate) struct InputJob<'a> {
    pub(super) src: &'a [f32],
    pub(super) t: Tiles,
    /// `Tiles::input_scratch` floats.
    pub(super) scratch: *mut f32,
    /// Point e's row of `t.count()` floats at `v + e * v_stride`.
    pub(super) v: *mut f32,
    pub(super) v_stride: usize,
}

/// `B^T d B` for every tile of one channel plane, in vectors over the tiles: each input
/// row's six patch columns of every tile (`Simd::columns6_stride4`, straight from the
/// plane) times `B` across, into `half[k][j][tile]`; then `B^T` down the patch rows.
///
/// # Safety
/// `job`'s pointers as documented there; instantiated inside a `#[target_feature]`
/// function of `S`'s ISA (`kernels/`).
#[inline(always)]
pub(crate) unsafe fn input_plane<S: Simd>(job: &InputJob) {
    let t = &job.t;
    debug_assert_eq!(t.tile, WinogradTile::F4x4, "F(2x2) runs row by row (`rows.rs`)");
    let (tw, tiles) = (t.tw, t.count());
    // `t.input_scratch()` floats: every tile's input rows times B.
    let half = job.scratch;
    for ty in 0..t.th {
        for k in 0..6 {
            let y = (4 * (t.ty0 + ty) + k) as isize - t.pt as isize;
            let row = (0..t.h as isize).contains(&y).then(|| job.src[y as usize * t.w..].as_ptr());
            for x in (0..tw).step_by(S::LANES) {
                // Element e of this run of tiles is input column 4 x + e - pl.
                let d = match row {
                    Some(row) => {
                        let (first, end) = (t.pl.saturating_sub(4 * x), (t.pl + t.w).saturating_sub(4 * x));
                        Bt4::apply::<S>(S::columns6_stride4(row.wrapping_add(4 * x).wrapping_sub(t.pl), first, end))
                    }
                    None => [S::zero(); 6],
                };
                for (j, &v) in d.iter().enumerate() {
                    store_n::<S>(half.add((k * 6 + j) * tiles + ty * tw + x), v, (tw - x).min(S::LANES));
                }
            }
        }
    }
    // V[i * 6 + j] = (B^T half[.][j])[i].
    for j in 0..6 {
        down::<S, Bt4, 6, 6>(
            half.add(j * tiles),
            6 * tiles,
            job.v.add(j * job.v_stride),
            6 * job.v_stride,
            tiles,
            None,
        );
    }
}

/// `outs[i][t] = F(ins[0][t], .., ins[A - 1][t])[i] (+ bias)` for `t` in `0..n`, in
/// vectors: one transform down `A` rows (`in_stride` apart) into `O` rows (`out_stride`
/// apart).
///
/// # Safety
/// The rows readable and writable for `n` floats; no output row overlaps an input row;
/// `S`'s ISA available (called inside its `#[target_feature]` function).
#[inline(always)]
unsafe fn down<S: Simd, F: Rows<A, O>, const A: usize, const O: usize>(
    ins: *const f32,
    in_stride: usize,
    outs: *mut f32,
    out_stride: usize,
    n: usize,
    bias: Option<f32>,
) {
    let mut t = 0;
    while t < n {
        let lanes = (n - t).min(S::LANES);
        let mut d = [S::zero(); A];
        for (k, v) in d.iter_mut().enumerate() {
            *v = load_n::<S>(ins.add(k * in_stride + t), lanes);
        }
        for (i, &v) in F::apply::<S>(d).iter().enumerate() {
            let v = match bias {
                Some(b) => S::add(v, S::splat(b)),
                None => v,
            };
            store_n::<S>(outs.add(i * out_stride + t), v, lanes);
        }
        t += S::LANES;
    }
}

/// One of the transforms (`B^T` or `A^T`): `A` values in, `O` out, lane by lane.
trait Rows<const A: usize, const O: usize> {
    /// Safety: `S`'s ISA available.
    unsafe fn apply<S: Simd>(d: [S::V; A]) -> [S::V; O];
}

/// B^T of F(4x4, 3x3) on six values: `(4 d0 - 5 d2 + d4, (d3 + d4) - 4 (d1 + d2),
/// (d4 - d3) + 4 (d1 - d2), (d4 - d2) + 2 (d3 - d1), (d4 - d2) - 2 (d3 - d1),
/// 4 d1 - 5 d3 + d5)`.
struct Bt4;
impl Rows<6, 6> for Bt4 {
    #[inline(always)]
    unsafe fn apply<S: Simd>(d: [S::V; 6]) -> [S::V; 6] {
        let [d0, d1, d2, d3, d4, d5] = d;
        let (k4, k5, k2) = (S::splat(4.0), S::splat(5.0), S::splat(2.0));
        let (s12, s34, t13, t42) = (S::add(d1, d2), S::add(d3, d4), S::sub(d3, d1), S::sub(d4, d2));
        [
            S::sub(S::fmadd(k4, d0, d4), S::mul(k5, d2)),
            S::sub(s34, S::mul(k4, s12)),
            S::fmadd(k4, S::sub(d1, d2), S::sub(d4, d3)),
            S::fmadd(k2, t13, t42),
            S::sub(t42, S::mul(k2, t13)),
            S::sub(S::fmadd(k4, d1, d5), S::mul(k5, d3)),
        ]
    }
}

/// One output channel plane's transform, for the ISA kernels (`output_plane`).
pub(crate) struct OutputJob<'a> {
    /// Point e's row of `t.count()` floats at `m + e * m_stride`.
    pub(super) m: *const f32,
    pub(super) m_stride: usize,
    pub(super) t: Tiles,
    pub(super) bias: f32,
    /// The block's rows of the residual, if any.
    pub(super) res: Option<&'a [f32]>,
    pub(super) act: Epilogue,
    /// `Tiles::output_scratch` floats.
    pub(super) scratch: *mut f32,
    /// The block's output rows.
    pub(super) dst: &'a mut [f32],
}

/// `A^T m A` + bias for every tile of one output channel plane, in vectors over the tiles:
/// `A^T` down the points' rows into `half`; then per output row, each run of tiles' four
/// columns (`half[i][.] A`) interleaved into the row (`Simd::interleave4`), the residual
/// added and activated.
///
/// # Safety
/// As `input_plane`, for `job`'s pointers.
#[inline(always)]
pub(crate) unsafe fn output_plane<S: Simd>(job: &mut OutputJob) {
    let t = job.t;
    debug_assert_eq!(t.tile, WinogradTile::F4x4, "F(2x2) runs row by row (`rows.rs`)");
    let (tw, tiles, ow) = (t.tw, t.count(), t.ow);
    // half[i][j] = (A^T m[.][j])[i].
    let h = job.scratch;
    for j in 0..6 {
        down::<S, At4, 6, 4>(job.m.add(j * job.m_stride), 6 * job.m_stride, h.add(j * tiles), 6 * tiles, tiles, None);
    }
    let bias = S::splat(job.bias);
    let rows = (t.oh - 4 * t.ty0).min(4 * t.th);
    for row_at in 0..rows {
        let (ty, i) = (row_at / 4, row_at % 4);
        let (dst, res) = (job.dst[row_at * ow..][..ow].as_mut_ptr(), job.res.map(|r| r[row_at * ow..][..ow].as_ptr()));
        for x in (0..tw).step_by(S::LANES) {
            let lanes = (tw - x).min(S::LANES);
            let half_row: [S::V; 6] =
                std::array::from_fn(|j| load_n::<S>(h.add((i * 6 + j) * tiles + ty * tw + x), lanes));
            let cols = At4::apply::<S>(half_row).map(|c| S::add(c, bias));
            for (k, v) in S::interleave4(cols).into_iter().enumerate() {
                // Output columns 4 x + k LANES onwards.
                let at = 4 * x + k * S::LANES;
                if at >= ow {
                    break;
                }
                let n = (ow - at).min(S::LANES);
                let v = match res {
                    Some(r) => S::add(v, load_n::<S>(r.add(at), n)),
                    None => v,
                };
                store_n::<S>(dst.add(at), activate::<S>(v, job.act), n);
            }
        }
    }
}

/// A^T of F(4x4, 3x3) on six values: `(m0 + a + c, b + 2 d, a + 4 c, b + 8 d + m5)` with
/// `a = m1 + m2`, `b = m1 - m2`, `c = m3 + m4`, `d = m3 - m4`.
struct At4;
impl Rows<6, 4> for At4 {
    #[inline(always)]
    unsafe fn apply<S: Simd>(v: [S::V; 6]) -> [S::V; 4] {
        let [m0, m1, m2, m3, m4, m5] = v;
        let (a, b, c, d) = (S::add(m1, m2), S::sub(m1, m2), S::add(m3, m4), S::sub(m3, m4));
        [
            S::add(S::add(m0, a), c),
            S::fmadd(S::splat(2.0), d, b),
            S::fmadd(S::splat(4.0), c, a),
            S::add(S::fmadd(S::splat(8.0), d, b), m5),
        ]
    }
}
