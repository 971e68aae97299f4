//! Micro-kernels. One generic source (`tile.rs`, and `depthwise.rs` one level up) written
//! against the small [`Simd`] trait; each ISA file implements the trait with its intrinsics
//! and wraps the generic code in `#[target_feature]` entry points, so the same loops compile
//! to AVX-512, AVX2+FMA or plain scalar code.

mod ctile;
pub(crate) mod simd;
mod tile;
mod transpose;

pub(crate) use ctile::CTile;
pub(crate) use transpose::{transpose, TransposeJob};

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
pub(crate) mod scalar;

use super::{Epilogue, Isa};

/// `out[i] = act(x[i])` over `min(x.len(), out.len())` floats with `isa`'s vectors; plain
/// f32 where the CPU lacks `isa`.
pub(crate) fn activate_slice(isa: Isa, x: &[f32], out: &mut [f32], act: Epilogue) {
    let n = x.len().min(out.len());
    // SAFETY: both slices hold `n` floats.
    unsafe { activate_raw(isa, x.as_ptr(), out.as_mut_ptr(), n, act) }
}

/// `buf[i] = act(buf[i])`: the activations the kernels leave to a pass after them
/// ([`Epilogue::in_kernel`]), on data the kernel just wrote (in L1 or L2).
pub(crate) fn activate_in_place(isa: Isa, buf: &mut [f32], act: Epilogue) {
    let (p, n) = (buf.as_mut_ptr(), buf.len());
    // SAFETY: `buf` holds `n` floats; reading and writing the same vector is allowed.
    unsafe { activate_raw(isa, p, p, n, act) }
}

/// Safety: `src` and `dst` hold `n` floats (maybe the same ones).
unsafe fn activate_raw(isa: Isa, src: *const f32, dst: *mut f32, n: usize, act: Epilogue) {
    match isa {
        // SAFETY: the CPU has the ISA (checked).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_available() => avx512::activate_slice(src, dst, n, act),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if isa.is_available() => avx2::activate_slice(src, dst, n, act),
        // The scalar "vector" ops are plain f32 arithmetic.
        _ => simd::activate_slice::<scalar::Scalar>(src, dst, n, act),
    }
}

/// One micro-kernel call: `C[m x n] (+)= A[m x kc] * B[kc x n]`, then, on the last K block,
/// `+ bias` and the activation.
///
/// * `a`: an A micro-panel, `kc` steps of `MR` floats (rows past `m` are zero).
/// * `b`, `boff`: row `k` of B is the `NR` floats at `b + boff[k]` (a packed panel:
///   `boff[k] = k * NR`; the input or a padded copy of it: the row's offset there).
/// * `c`: row-major, `ldc` apart; only `m` rows and `n` columns are read or written.
#[derive(Clone, Copy)]
pub(crate) struct Tile {
    pub kc: usize,
    pub a: *const f32,
    pub b: *const f32,
    pub boff: *const u32,
    pub c: *mut f32,
    pub ldc: usize,
    pub m: usize,
    pub n: usize,
    /// Add to what `c` holds (a later K block) instead of overwriting it.
    pub accumulate: bool,
    /// Last K block: add `bias[0..m]` (and the residual) and apply `act`.
    pub finish: bool,
    pub bias: *const f32,
    /// A residual added before `act` on the last K block, laid out as `c` (`ldc` apart);
    /// null for none.
    pub res: *const f32,
    pub act: Epilogue,
}

/// An ISA's GEMM micro-kernel and its tile shape: `mr` output channels by `nr` pixels.
#[derive(Clone, Copy)]
pub(crate) struct KernelSet {
    pub mr: usize,
    pub nr: usize,
    /// Floats per vector.
    pub lanes: usize,
    /// The channel-vectorized tile (`ctile.rs`): A^T panels of `nc` channels, at most
    /// `max_pixels` pixels a tile.
    pub nc: usize,
    pub max_pixels: usize,
    /// Output rows of this many pixels go two to a `ctile` tile on the direct grid
    /// (`CTile::seg`, every layout); 0: never.
    pub two_row_run: usize,
    /// Computes one tile. Safety: the tile's pointers cover what `Tile` describes, and the
    /// CPU has the ISA.
    pub tile: unsafe fn(&Tile),
    /// Computes one channel-vectorized tile, by layout, `[input blocked][output blocked]`
    /// (`blocked.rs`; `[0][0]` NCHW both sides). Safety: as `tile`, for what `CTile`
    /// describes; a blocked input's pixels lie `BLOCK` floats apart, and a blocked output's
    /// tile has whole vectors of channels.
    pub ctile_layouts: [[unsafe fn(&CTile); 2]; 2],
    /// Packs B panels (`pack.rs`) with the same ISA.
    pub pack: unsafe fn(&super::pack::PackJob),
    /// Transposes a block into panel rows (`transpose.rs`).
    pub transpose: unsafe fn(&TransposeJob),
    /// Copies input rows into a padded, phase-split grid (`direct.rs`).
    pub pad: unsafe fn(&super::direct::PadJob),
    /// Copies a tile computed on that grid to the output.
    pub scatter: unsafe fn(&super::direct::ScatterJob),
    /// Winograd's input and output transforms of one plane (`winograd/vectors.rs`).
    pub winograd_input: unsafe fn(&super::winograd::InputJob),
    pub winograd_output: unsafe fn(&mut super::winograd::OutputJob),
    /// One plane of a 3x3 stride-2 max pool (`pool.rs`); false where it may hold a NaN.
    pub pool3s2: unsafe fn(&super::pool::Pool3s2Job) -> bool,
}

pub(crate) fn kernel_set(isa: Isa) -> KernelSet {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => KernelSet {
            mr: avx512::MR,
            nr: avx512::NR,
            lanes: avx512::LANES,
            nc: avx512::NC,
            max_pixels: avx512::MAX_PIXELS,
            two_row_run: avx512::TWO_ROW_RUN,
            tile: avx512::tile,
            ctile_layouts: [
                [avx512::ctile, avx512::ctile_to_blocked],
                [avx512::ctile_from_blocked, avx512::ctile_blocked],
            ],
            pack: avx512::pack_b,
            pad: avx512::pad,
            transpose: avx512::transpose,
            scatter: avx512::scatter,
            winograd_input: avx512::winograd_input,
            winograd_output: avx512::winograd_output,
            pool3s2: avx512::pool3s2,
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => KernelSet {
            mr: avx2::MR,
            nr: avx2::NR,
            lanes: avx2::LANES,
            nc: avx2::NC,
            max_pixels: avx2::MAX_PIXELS,
            two_row_run: 0,
            tile: avx2::tile,
            ctile_layouts: [[avx2::ctile, avx2::ctile_to_blocked], [avx2::ctile_from_blocked, avx2::ctile_blocked]],
            pack: avx2::pack_b,
            pad: avx2::pad,
            transpose: avx2::transpose,
            scatter: avx2::scatter,
            winograd_input: avx2::winograd_input,
            winograd_output: avx2::winograd_output,
            pool3s2: avx2::pool3s2,
        },
        _ => KernelSet {
            mr: scalar::MR,
            nr: scalar::NR,
            lanes: scalar::LANES,
            nc: scalar::NC,
            max_pixels: scalar::MAX_PIXELS,
            two_row_run: 0,
            tile: scalar::tile,
            ctile_layouts: [
                [scalar::ctile, scalar::ctile_to_blocked],
                [scalar::ctile_from_blocked, scalar::ctile_blocked],
            ],
            pack: scalar::pack_b,
            pad: scalar::pad,
            transpose: scalar::transpose,
            scatter: scalar::scatter,
            winograd_input: scalar::winograd_input,
            winograd_output: scalar::winograd_output,
            pool3s2: scalar::pool3s2,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::simd::{Simd, MAX_LANES};
    use super::Isa;

    /// `S::transpose` of a square whose entries are all different, entry by entry.
    fn check_transpose<S: Simd>() {
        let n = S::LANES;
        let square: Vec<f32> = (0..n * n).map(|i| i as f32).collect();
        // SAFETY: the caller checked the CPU has `S`'s ISA; every load and store is of `n` floats.
        unsafe {
            let rows = std::array::from_fn(|r| if r < n { S::load(square[r * n..].as_ptr()) } else { S::zero() });
            let cols: [S::V; MAX_LANES] = S::transpose(rows);
            for (l, &col) in cols.iter().enumerate().take(n) {
                let mut got = vec![0.0f32; n];
                S::store(got.as_mut_ptr(), col);
                let want: Vec<f32> = (0..n).map(|r| square[r * n + l]).collect();
                assert_eq!(got, want, "column {l} of a {n}x{n} transpose");
            }
        }
    }

    /// Sigmoid over -100 ..= 100 (SiLU's factor) against f64, never denormal: far out,
    /// `1 + e^-x` stops under 2^126, where AVX-512's reciprocal estimate would go denormal.
    fn check_sigmoid<S: Simd>() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.05;
            let mut got = [0.0f32; MAX_LANES];
            // SAFETY: the caller checked the CPU has `S`'s ISA; the store is of `LANES` floats.
            unsafe { S::store(got.as_mut_ptr(), super::simd::sigmoid::<S>(S::splat(x))) };
            let want = 1.0 / (1.0 + (-x as f64).exp());
            assert!(!got[0].is_subnormal(), "sigmoid({x}) = {}: a denormal", got[0]);
            assert!((got[0] as f64 - want).abs() <= 4e-7 * want + 2e-38, "sigmoid({x}) = {}, want {want}", got[0]);
        }
    }

    /// `check::<S>()` for the scalar ops and each vector ISA this CPU has.
    macro_rules! on_each_isa {
        ($check:ident) => {{
            $check::<super::scalar::Scalar>();
            #[cfg(target_arch = "x86_64")]
            {
                if Isa::Avx2.is_available() {
                    $check::<super::avx2::Avx2>();
                }
                if Isa::Avx512.is_available() {
                    $check::<super::avx512::Avx512>();
                }
            }
        }};
    }

    #[test]
    fn each_isa_keeps_sigmoid_normal() {
        on_each_isa!(check_sigmoid);
    }

    #[test]
    fn each_isa_transposes_its_square() {
        on_each_isa!(check_transpose);
    }
}
