//! The GEMM micro-kernel, generic over the vector type.
//!
//! B row `k` is read at `b + boff[k]`: a packed panel (`boff[k] = k * NR`), the input
//! itself (1x1 stride 1: `k * h * w`) or a tap of a padded input copy (`direct.rs`): one
//! kernel for all three, the table lookup costing one scalar load per 2 x 12 FMAs.
//!
//! Register blocking: `M` rows of A (output channels) by `V` vectors of B (pixels), all
//! `M * V` accumulators live in registers for the whole K loop. Each K step loads `V`
//! vectors of B and broadcasts `M` scalars of A (on AVX-512 the broadcast folds into the
//! FMA's memory operand), then does `M * V` FMAs: 12x2 = 24 FMAs per 2 loads + 12
//! broadcasts on AVX-512, which keeps the FMA pipes, not the load ports, the bottleneck.
//!
//! Software prefetch: each step asks for B's row `PREFETCH_STEPS` ahead (rows read in
//! place lie a plane apart, beyond any hardware prefetcher), and the first `M` steps ask
//! for the tile's output and residual rows, which the epilogue touches.

use super::simd::{activate, load_n, prefetch_l1, prefetch_write, store_n, Simd, PREFETCH_STEPS};
use super::{Epilogue, Tile};

/// `M` = rows this call computes (`<= MR`), `V` = vectors per row (`n <= V * LANES`),
/// `MR` = the A panel's row stride.
#[inline(always)]
pub(crate) unsafe fn tile<S: Simd, const M: usize, const V: usize, const MR: usize>(t: &Tile) {
    let mut acc = [[S::zero(); V]; M];
    let mut a = t.a;
    let ahead = t.kc.saturating_sub(PREFETCH_STEPS);
    for k in 0..t.kc {
        if k < M {
            // The tile's output row k (and its residual row), wanted at the end: at batch 1
            // they come from L3 or memory, and a conv with K = 64 has only 64 steps to
            // hide that in.
            let (c, res) = (t.c.wrapping_add(k * t.ldc), t.res.wrapping_add(k * t.ldc));
            for line in [0, (V - 1) * S::LANES, V * S::LANES - 1] {
                prefetch_write(c.wrapping_add(line));
                if !t.res.is_null() {
                    prefetch_l1(res.wrapping_add(line));
                }
            }
        }
        if k < ahead {
            // Every line of the B row `PREFETCH_STEPS` on (three where it straddles lines).
            let row = t.b.wrapping_add(*t.boff.add(k + PREFETCH_STEPS) as usize);
            prefetch_l1(row);
            if V > 1 {
                prefetch_l1(row.wrapping_add(S::LANES));
            }
            prefetch_l1(row.wrapping_add(V * S::LANES - 1));
        } else {
            // The last steps: the next tile's first rows, the pixels after this tile's.
            let row = t.b.wrapping_add(*t.boff.add(k - ahead) as usize + V * S::LANES);
            prefetch_l1(row);
            if V > 1 {
                prefetch_l1(row.wrapping_add(S::LANES));
            }
        }
        let b = t.b.add(*t.boff.add(k) as usize);
        let mut bv = [S::zero(); V];
        for (j, v) in bv.iter_mut().enumerate() {
            *v = S::load(b.add(j * S::LANES));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = S::splat(*a.add(i));
            for (j, x) in row.iter_mut().enumerate() {
                *x = S::fmadd(ai, bv[j], *x);
            }
        }
        a = a.add(MR);
    }

    // A whole tile, finished, with no residual (most tiles): stored from the registers
    // with static loops. The general epilogue below indexes a copy of `acc` with run-time
    // bounds: on `acc` itself that kept it in memory (a stack copy zeroed at the start and
    // stored at the end of every tile, a fifth of a K = 16 tile's time).
    if t.finish && !t.accumulate && t.res.is_null() && t.n == V * S::LANES {
        match t.act {
            Epilogue::None => store_rows::<S, M, V, 0>(t, &acc),
            Epilogue::Relu => store_rows::<S, M, V, 1>(t, &acc),
            Epilogue::Relu6 => store_rows::<S, M, V, 2>(t, &acc),
            // The others run after the kernel (`Epilogue::in_kernel`).
            _ => store_rows::<S, M, V, 0>(t, &acc),
        }
        return;
    }
    let spilled = acc;
    for (i, row) in spilled.iter().enumerate() {
        let c = t.c.add(i * t.ldc);
        let bias = if t.finish { S::splat(*t.bias.add(i)) } else { S::zero() };
        for (j, &x) in row.iter().enumerate() {
            let lanes = t.n.saturating_sub(j * S::LANES).min(S::LANES);
            if lanes == 0 {
                break;
            }
            let cj = c.add(j * S::LANES);
            let mut v = x;
            if t.accumulate {
                v = S::add(v, load_n::<S>(cj, lanes));
            }
            if t.finish {
                v = S::add(v, bias);
                if !t.res.is_null() {
                    v = S::add(v, load_n::<S>(t.res.add(i * t.ldc + j * S::LANES), lanes));
                }
                v = activate::<S>(v, t.act);
            }
            store_n::<S>(cj, v, lanes);
        }
    }
}

/// Row `i` of `acc` plus its bias, through activation `ACT` (0 none, 1 ReLU, 2 ReLU6: a
/// constant, so the loops stay free of branches), stored whole at row `i` of the tile.
/// (No closure for the activation: a closure would not inherit the caller's target features.)
#[inline(always)]
unsafe fn store_rows<S: Simd, const M: usize, const V: usize, const ACT: u8>(t: &Tile, acc: &[[S::V; V]; M]) {
    for (i, row) in acc.iter().enumerate() {
        let c = t.c.add(i * t.ldc);
        let bias = S::splat(*t.bias.add(i));
        for (j, &x) in row.iter().enumerate() {
            let mut v = S::add(x, bias);
            if ACT == 1 || ACT == 2 {
                v = S::max(v, S::zero());
            }
            if ACT == 2 {
                v = S::min(v, S::splat(6.0));
            }
            S::store(c.add(j * S::LANES), v);
        }
    }
}

/// Call `$f::<M, V>(t)` for the tile's row count `M` (one of the listed literals) and
/// `V` = 1 or 2 vectors per row, so each shape gets its own fully unrolled instance.
macro_rules! dispatch_tile {
    ($f:ident, $t:expr, $lanes:expr, [$($m:literal),*]) => {{
        let t: &$crate::exec::cpu::kernels::Tile = $t;
        let two = t.n > $lanes;
        match t.m {
            $( $m => if two { $f::<$m, 2>(t) } else { $f::<$m, 1>(t) }, )*
            _ => unreachable!("tile rows {} out of range", t.m),
        }
    }};
}
pub(crate) use dispatch_tile;
