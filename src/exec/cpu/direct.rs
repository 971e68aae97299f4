//! Implicit GEMM without im2col: B read straight from a padded copy of the input.
//!
//! For a stride-1 3x3 conv, output pixel `(oy, ox)` and tap `(ky, kx)` read padded input
//! `(oy + ky, ox + kx)`. On a grid `wq` columns wide (output width + `kw - 1`), the
//! "virtual" pixel `v = oy * wq + ox` reads `padded[v + ky * wq + kx]`: B row
//! `(ic, ky, kx)` is the padded plane shifted by a constant, so a table of row offsets
//! replaces im2col entirely (9x less data moved than packing B for a 3x3). The price: the
//! `kw - 1` grid columns past the output width are computed and thrown away (3% at 56
//! wide, 12% at 14), and tiles whose columns cross such gaps are written through a small
//! buffer and scattered.
//!
//! Other strides: the padded input is split into `sh * sw` phases (phase `(rh, rw)` holds
//! padded rows `rh, rh + sh, ...` and columns `rw, rw + sw, ...`), after which every tap
//! is again a constant shift inside one phase. Dilation folds into the same offsets.
//! Each work item copies only the rows its pixels need, into its thread's scratch.
//!
//! A blocked input (`blocked.rs`, `[c / 16][h][w][16]`) gets a blocked grid
//! ([`Grid::blocked`]): `[c / 16][phase][row][wq][16]`, each grid pixel a pixel's 16
//! channels, copied a vector at a time (no transpose), and B row `(ic, ky, kx)` is the
//! same shifted plane read 16 floats a pixel from lane `ic % 16`.

use super::blocked::BLOCK;
use super::kernels::simd::{activate, fill_run, load_n, store_n, zero_n, Simd};
use super::pack::{valid_range, Geom};

/// The phase-split padded grid of one conv.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    pub g: Geom,
    /// Grid width: output width plus the widest tap shift.
    pub wq: usize,
    /// Grid rows a block reads past its last output row (the tallest tap shift).
    pub halo: usize,
    /// Phase planes kept per channel: only those some tap reads (a 1x1 stride-2 conv
    /// reads one phase of four).
    pub phases: usize,
    /// Bit `rh * sw + rw` set for each phase kept.
    used: u64,
    /// Floats per grid pixel: 1, or [`BLOCK`] on a blocked grid.
    pub ps: usize,
}

impl Grid {
    /// `None` past 64 phases (strides over 8x8), which the im2col path takes instead.
    pub(crate) fn new(g: Geom) -> Option<Grid> {
        if g.sh * g.sw > 64 {
            return None;
        }
        let mut used = 0u64;
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                used |= 1 << (((ky * g.dh) % g.sh) * g.sw + (kx * g.dw) % g.sw);
            }
        }
        Some(Grid {
            g,
            wq: g.ow + (g.kw - 1) * g.dw / g.sw,
            halo: (g.kh - 1) * g.dh / g.sh,
            phases: used.count_ones() as usize,
            used,
            ps: 1,
        })
    }

    /// The grid of a blocked input (channels whole blocks of [`BLOCK`]): laid out
    /// `[c / BLOCK][phase][row][wq][BLOCK]`.
    pub(crate) fn blocked(self) -> Grid {
        debug_assert!(self.g.c.is_multiple_of(BLOCK));
        Grid { ps: BLOCK, ..self }
    }

    /// Plane index of phase `(rh, rw)` among the kept ones, if kept.
    fn phase(&self, rh: usize, rw: usize) -> Option<usize> {
        let bit = rh * self.g.sw + rw;
        (self.used >> bit & 1 == 1).then(|| (self.used & ((1u64 << bit) - 1)).count_ones() as usize)
    }

    /// Virtual pixels, up to the last real one.
    pub(crate) fn pixels(&self) -> usize {
        (self.g.oh - 1) * self.wq + self.g.ow
    }

    /// Whether the grid has no thrown-away columns (virtual pixel == output pixel).
    pub(crate) fn is_dense(&self) -> bool {
        self.wq == self.g.ow
    }

    /// Output rows `r_a .. r_b` holding virtual pixels `v_a .. v_b`.
    pub(crate) fn rows(&self, v_a: usize, v_b: usize) -> (usize, usize) {
        (v_a / self.wq, (v_b - 1) / self.wq + 1)
    }

    /// Input rows `y0 .. y1` that grid rows `r_a .. r_a + rows` read, clamped to the input.
    pub(crate) fn input_rows(&self, r_a: usize, rows: usize) -> (usize, usize) {
        let g = &self.g;
        let y0 = (r_a * g.sh).saturating_sub(g.pt).min(g.h);
        let y1 = ((r_a + rows) * g.sh).saturating_sub(g.pt).min(g.h);
        (y0, y1.max(y0))
    }

    /// Floats of a local copy with room for `r_loc` grid rows per phase plane, plus the
    /// slack that the thrown-away lanes of the last tile may read.
    pub(crate) fn local_len(&self, r_loc: usize, nr: usize) -> usize {
        self.g.c * self.phases * r_loc * self.wq + (self.wq + nr + 16) * self.ps
    }

    /// Floats of a local copy from channel 0 to channel `c0` (on a blocked grid a multiple
    /// of [`BLOCK`]).
    pub(crate) fn channel_offset(&self, c0: usize, r_loc: usize) -> usize {
        debug_assert!(c0.is_multiple_of(self.ps));
        c0 * self.phases * r_loc * self.wq
    }

    /// Offset of B row `k = (ic, ky, kx)` in a local copy with `r_loc` rows per plane.
    pub(crate) fn offsets(&self, r_loc: usize) -> Vec<u32> {
        let g = &self.g;
        let plane = r_loc * self.wq;
        let mut offs = Vec::with_capacity(g.k());
        for ic in 0..g.c {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let (y, x) = (ky * g.dh, kx * g.dw);
                    let phase = self.phase(y % g.sh, x % g.sw).expect("a tap's phase is kept");
                    let (unit, lane) = (ic / self.ps, ic % self.ps);
                    let off = ((unit * self.phases + phase) * plane + (y / g.sh) * self.wq + x / g.sw) * self.ps + lane;
                    offs.push(u32::try_from(off).expect("conv input block too large for 32-bit offsets"));
                }
            }
        }
        offs
    }
}

/// Fill a local copy: grid rows `r_a .. r_a + rows` of every phase plane of every channel.
pub(crate) struct PadJob {
    pub grid: Grid,
    /// The group's input planes.
    pub x: *const f32,
    pub r_a: usize,
    pub rows: usize,
    pub r_loc: usize,
    pub dst: *mut f32,
}

/// Safety: `x` holds the group's `c * h * w` floats (blocked for a blocked grid), `dst`
/// `grid.local_len(r_loc, _)`, `rows <= r_loc`.
///
/// A plane here is one channel, or on a blocked grid one block of [`BLOCK`] channels whose
/// pixels are `ps` floats each: a grid row is then copied a pixel vector at a time.
#[inline(always)]
pub(crate) unsafe fn pad_copy<S: Simd>(job: &PadJob) {
    let PadJob { grid, x, r_a, rows, r_loc, dst } = *job;
    let (g, wq, ps) = (grid.g, grid.wq, grid.ps);
    let row_floats = wq * ps;
    for unit in 0..g.c / ps {
        let plane = x.add(unit * g.h * g.w * ps);
        for rh in 0..g.sh {
            for rw in 0..g.sw {
                let Some(phase) = grid.phase(rh, rw) else { continue };
                let off = rw as isize - g.pl as isize;
                // Grid columns `lo .. hi` read input columns `j * sw + off` inside the row.
                let (lo, hi) = valid_range(0, wq, g.sw, off, g.w);
                let base = dst.add((unit * grid.phases + phase) * r_loc * row_floats);
                for i in 0..rows {
                    let row = base.add(i * row_floats);
                    let iy = ((r_a + i) * g.sh + rh) as isize - g.pt as isize;
                    if iy < 0 || iy >= g.h as isize {
                        zero_n::<S>(row, row_floats);
                        continue;
                    }
                    let src = plane.add(iy as usize * g.w * ps);
                    if ps == 1 {
                        fill_run::<S>(row, wq, src.wrapping_offset(off), g.sw, lo, hi);
                        continue;
                    }
                    zero_n::<S>(row, lo * ps);
                    for j in lo..hi {
                        let from = src.offset(((j * g.sw) as isize + off) * ps as isize);
                        for l in (0..ps).step_by(S::LANES) {
                            S::store(row.add(j * ps + l), S::load(from.add(l)));
                        }
                    }
                    zero_n::<S>(row.add(hi * ps), (wq - hi) * ps);
                }
            }
        }
    }
}

/// Copy a computed tile (rows `nr` apart in `src`) to the output, dropping the grid's
/// thrown-away columns.
pub(crate) struct ScatterJob {
    pub src: *const f32,
    pub nr: usize,
    pub rows: usize,
    /// Virtual pixel of the tile's first column, and its column count.
    pub v0: usize,
    pub n: usize,
    pub wq: usize,
    pub ow: usize,
    /// Output of the tile's first row (channel), pixel 0; channels `ldc` apart.
    pub dst: *mut f32,
    pub ldc: usize,
    /// A residual laid out as `dst`, added and then `act` applied on the way (the tile was
    /// computed without them); null for a plain copy.
    pub res: *const f32,
    pub act: super::Epilogue,
}

/// Safety: `src` holds `rows * nr` floats, `dst` the output planes of `rows` channels.
#[inline(always)]
pub(crate) unsafe fn scatter<S: Simd>(job: &ScatterJob) {
    let ScatterJob { src, nr, rows, v0, n, wq, ow, dst, ldc, res, act } = *job;
    let mut v = v0;
    while v < v0 + n {
        let (oy, ox) = (v / wq, v % wq);
        if ox >= ow {
            v += wq - ox;
            continue;
        }
        let len = (ow - ox).min(v0 + n - v);
        let (from, to) = (src.add(v - v0), dst.add(oy * ow + ox));
        for i in 0..rows {
            let mut t = 0;
            while t < len {
                let l = (len - t).min(S::LANES);
                let mut x = load_n_exact::<S>(from.add(i * nr + t), l);
                if !res.is_null() {
                    let r = load_n_exact::<S>(res.add(oy * ow + ox + i * ldc + t), l);
                    x = activate::<S>(S::add(x, r), act);
                }
                store_n::<S>(to.add(i * ldc + t), x, l);
                t += S::LANES;
            }
        }
        v += len;
    }
}

/// `l` floats (zeros above), never reading past them.
#[inline(always)]
unsafe fn load_n_exact<S: Simd>(p: *const f32, l: usize) -> S::V {
    if l >= S::LANES {
        load_n::<S>(p, l)
    } else {
        S::load_lanes(p, 0, l)
    }
}
