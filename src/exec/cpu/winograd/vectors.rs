//! F(4x4, 3x3)'s transforms as ISA kernels (`kernels/`), in vectors over all the tiles of a
//! plane: a row of 4-wide tiles is 4-14 tiles, shorter than a vector, so transforms run a
//! tile row at a time (as `rows.rs` runs F(2x2)'s) would be scalar.

use super::{finish_row, padded_row, Tiles, WinogradTile};
use crate::exec::cpu::kernels::simd::{load_n, store_n, Simd};
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

/// `B^T d B` for every tile of one channel plane, in vectors over the tiles: each tile's
/// `a x a` patch gathered (`patches[k][q][tile]`), `B^T` down the patch rows, then across.
///
/// # Safety
/// `job`'s pointers as documented there; instantiated inside a `#[target_feature]`
/// function of `S`'s ISA (`kernels/`).
#[inline(always)]
pub(crate) unsafe fn input_plane<S: Simd>(job: &InputJob) {
    debug_assert_eq!(job.t.tile, WinogradTile::F4x4, "F(2x2) runs row by row (`rows.rs`)");
    input_plane_with::<S, Bt4, 6, 4>(job)
}

#[inline(always)]
unsafe fn input_plane_with<S: Simd, Bt: Rows<A, A>, const A: usize, const M: usize>(job: &InputJob) {
    let t = &job.t;
    let (tw, tiles) = (t.tw, t.count());
    let scratch = std::slice::from_raw_parts_mut(job.scratch, t.input_scratch());
    let (padded, rest) = scratch.split_at_mut((M * tw + A - M).next_multiple_of(16));
    let padded = &mut padded[..M * tw + A - M];
    let (patches, half) = rest.split_at_mut(A * A * tiles);
    for ty in 0..t.th {
        for k in 0..A {
            let live = padded_row(job.src, t, M * ty + k, padded);
            for q in 0..A {
                let dst = &mut patches[(k * A + q) * tiles + ty * tw..][..tw];
                if !live {
                    dst.fill(0.0);
                    continue;
                }
                // Column q of every tile's patch: every M-th float from q, a vector at a
                // time (the last vector reads no further than `padded[M (tw - 1) + q]`).
                let (src, dst) = (padded.as_ptr().add(q), dst.as_mut_ptr());
                for x in (0..tw).step_by(S::LANES) {
                    let lanes = (tw - x).min(S::LANES);
                    store_n::<S>(dst.add(x), S::gather_stride(src.add(M * x), M, lanes), lanes);
                }
            }
        }
    }
    // half[i][q] = (B^T patches[.][q])[i], then V[i * A + j] = (half[i][.] B)[j].
    let (p, h) = (patches.as_ptr(), half.as_mut_ptr());
    for q in 0..A {
        down::<S, Bt, A, A>(p.add(q * tiles), A * tiles, h.add(q * tiles), A * tiles, tiles, None);
    }
    for i in 0..A {
        down::<S, Bt, A, A>(h.add(i * A * tiles), tiles, job.v.add(i * A * job.v_stride), job.v_stride, tiles, None);
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

/// `A^T m A` + bias for every tile of one output channel plane, in vectors over the tiles
/// (`A^T` down the points' rows, then across), then each output row put together from its
/// tiles' columns, the residual added and activated.
///
/// # Safety
/// As `input_plane`, for `job`'s pointers.
#[inline(always)]
pub(crate) unsafe fn output_plane<S: Simd>(job: &mut OutputJob) {
    debug_assert_eq!(job.t.tile, WinogradTile::F4x4, "F(2x2) runs row by row (`rows.rs`)");
    output_plane_with::<S, At4, 6, 4>(job)
}

#[inline(always)]
unsafe fn output_plane_with<S: Simd, At: Rows<A, M>, const A: usize, const M: usize>(job: &mut OutputJob) {
    let t = job.t;
    let (tw, tiles) = (t.tw, t.count());
    let scratch = std::slice::from_raw_parts_mut(job.scratch, t.output_scratch());
    let (half, cols) = scratch.split_at_mut(A * M * tiles);
    // half[i][j] = (A^T m[.][j])[i]; cols[i][c] = (half[i][.] A)[c] + bias.
    let h = half.as_mut_ptr();
    for j in 0..A {
        down::<S, At, A, M>(job.m.add(j * job.m_stride), A * job.m_stride, h.add(j * tiles), A * tiles, tiles, None);
    }
    for i in 0..M {
        let out = cols.as_mut_ptr().add(i * M * tiles);
        down::<S, At, A, M>(h.add(i * A * tiles), tiles, out, tiles, tiles, Some(job.bias));
    }
    for ty in 0..t.th {
        for i in 0..M {
            let row_at = M * ty + i;
            if M * t.ty0 + row_at >= t.oh {
                break;
            }
            let row = &mut job.dst[row_at * t.ow..][..t.ow];
            let y = &cols[i * M * tiles + ty * tw..];
            for (p, o) in row.iter_mut().enumerate() {
                *o = y[(p % M) * tiles + p / M];
            }
            finish_row(row, job.res.map(|r| &r[row_at * t.ow..][..t.ow]), job.act);
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
