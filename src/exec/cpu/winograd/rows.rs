//! F(2x2, 3x3)'s transforms, a tile row at a time: each input row times B once, then B^T
//! down the rows of each tile row; on the way out A^T down, times A across, the two output
//! columns interleaved. Its adds-only transforms ran faster this way than gathered into
//! patches as F(4x4)'s were (benches/peers/RESULTS.md section 13; F(4x4)'s now split rows by
//! permutes, `vectors.rs`).

use super::Tiles;
use crate::exec::cpu::eltwise::act_of;
use crate::exec::cpu::isa::widest_vectors;
use crate::exec::cpu::Epilogue;

widest_vectors! {
    /// One channel: its input, zero-padded, split into even and odd columns (so every
    /// patch column is a contiguous run over the tiles), each row times B once, then B^T
    /// down the rows of each tile row: `B^T d B` for all its tiles.
    pub(super) fn input_plane_2x2(src: &[f32], t: &Tiles, scratch: &mut [f32], v: [&mut [f32]; 16]) {
        let (cols, tw, rows) = (t.tw + 1, t.tw, 2 * t.th + 2);
        let (padded, hrows) = scratch.split_at_mut(2 * cols);
        // hrows: for input row r, 4 runs of tw (the row times B, column j of every tile).
        for r in 0..rows {
            let h = &mut hrows[r * 4 * tw..][..4 * tw];
            if !padded_row(src, t, r, padded) {
                h.fill(0.0);
                continue;
            }
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
fn v_rows<'a>(v: &'a mut [&mut [f32]; 16], j: usize, s: usize, tw: usize) -> [&'a mut [f32]; 4] {
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

widest_vectors! {
    /// One output channel: for each tile row, A^T down the 16 points (two rows of four
    /// per tile), then times A across (two output columns, even and odd), bias added;
    /// interleaved into the two output rows, then the residual and activation. `dst` and
    /// `res` are the block's output rows only.
    pub(super) fn output_plane_2x2(
        m: [&[f32]; 16],
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
                finish_row(row, res.map(|r| &r[row_at * t.ow..][..t.ow]), act);
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

/// Input row `r` of the block's rows (`r` from the block's first tile's top), zero-padded
/// into `padded` (`padded[j]` = input column `j - pl`); `false` where the row is padding.
#[inline(always)]
fn padded_row(src: &[f32], t: &Tiles, r: usize, padded: &mut [f32]) -> bool {
    let y = (r + t.tile.m() * t.ty0) as isize - t.pt as isize;
    if y < 0 || y >= t.h as isize {
        return false;
    }
    let len = padded.len();
    let (pl, keep) = (t.pl.min(len), t.w.min(len - t.pl.min(len)));
    padded[..pl].fill(0.0);
    padded[pl..][..keep].copy_from_slice(&src[y as usize * t.w..][..keep]);
    padded[pl + keep..].fill(0.0);
    true
}

/// Output row `row`, its residual added and activated.
#[inline(always)]
fn finish_row(row: &mut [f32], res: Option<&[f32]>, act: Epilogue) {
    match res {
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
