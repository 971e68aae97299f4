//! The handful of vector operations the generic kernels need.
//!
//! Every method is `#[inline(always)]` in its implementations and is only ever called from
//! inside a `#[target_feature]` function of the same ISA, where LLVM inlines the intrinsics.

/// The most lanes any ISA's vectors have (AVX-512), for the defaults' stack buffers and
/// [`Simd::transpose`]'s arrays.
pub(crate) const MAX_LANES: usize = 16;

/// A vector of `LANES` f32s. Implemented by zero-sized marker types, one per ISA.
pub(crate) trait Simd {
    const LANES: usize;
    type V: Copy;

    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` floats from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self::V;
    /// The first `n < LANES` floats from `p`, zeros above; reads nothing past `p + n`.
    unsafe fn load_partial(p: *const f32, n: usize) -> Self::V;
    /// Lanes `0..n` from `p`, `p + stride`, `p + 2 stride`, ... (`1 <= n <= LANES`); the
    /// rest zero.
    unsafe fn gather_stride(p: *const f32, stride: usize, n: usize) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The first `n < LANES` lanes to `p`; writes nothing past `p + n`.
    unsafe fn store_partial(p: *mut f32, v: Self::V, n: usize);
    /// Lanes `a..b` (`a < b <= LANES`) loaded from `p + lane`, the others zero. Lanes outside
    /// `a..b` are never read, so `p` may point (wrapping) outside the buffer for them.
    unsafe fn load_lanes(p: *const f32, a: usize, b: usize) -> Self::V;
    /// Lanes whose bit is set in `bits` (bit `t` for lane `t`) loaded from `p + t`, the
    /// others zero. Lanes whose bit is clear are never read, so `p` may point (wrapping)
    /// outside the buffer for them.
    unsafe fn load_mask(p: *const f32, bits: u32) -> Self::V;
    /// Lane `t` = `*p.add(2 * t)` for `t` in `a..b`, the others zero (read as `load_lanes`).
    unsafe fn load_lanes_stride2(p: *const f32, a: usize, b: usize) -> Self::V;
    /// `load_lanes_stride2` of `p`, `p + 1` and `p + 2`, all lanes: the three tap columns
    /// of a stride-2 3-wide filter. Reads `p[0 ..= 2 * LANES]`.
    #[inline(always)]
    unsafe fn load_taps3_stride2(p: *const f32) -> [Self::V; 3] {
        std::array::from_fn(|kx| Self::load_lanes_stride2(p.add(kx), 0, Self::LANES))
    }
    /// `load_lanes_stride2` of `p + kx` with lanes `cols[kx]`, for kx 0, 1, 2 (a vector at
    /// the edge of a row: some lanes in the padding, never read).
    #[inline(always)]
    unsafe fn load_taps3_stride2_lanes(p: *const f32, cols: &[(u32, u32)]) -> [Self::V; 3] {
        std::array::from_fn(|kx| {
            let (a, b) = (cols[kx].0 as usize, cols[kx].1 as usize);
            if a >= b {
                Self::zero()
            } else {
                Self::load_lanes_stride2(p.wrapping_add(kx), a, b)
            }
        })
    }
    /// The six columns of F(4x4, 3x3) input patches along a row: lane `t` of column `q` is
    /// element `4 t + q` of `p` (tile `t`'s column `q`) if that element lies in `a..b`, else
    /// zero. Elements outside `a..b` are never read, so `p` may point (wrapping) outside
    /// the buffer for them. This default copies the row into a padded one and gathers.
    #[inline(always)]
    unsafe fn columns6_stride4(p: *const f32, a: usize, b: usize) -> [Self::V; 6] {
        assert!(Self::LANES <= MAX_LANES);
        let mut row = [0.0f32; 4 * MAX_LANES + 2];
        for (e, x) in row.iter_mut().enumerate().take(b.min(4 * Self::LANES + 2)).skip(a) {
            *x = *p.wrapping_add(e);
        }
        std::array::from_fn(|q| Self::gather_stride(row.as_ptr().add(q), 4, Self::LANES))
    }
    /// The four vectors' elements interleaved: element `4 t + c` of the result (vector
    /// `(4 t + c) / LANES`) is lane `t` of `v[c]`, as an output row is put together from its
    /// tiles' four columns. This default goes through memory.
    #[inline(always)]
    unsafe fn interleave4(v: [Self::V; 4]) -> [Self::V; 4] {
        assert!(Self::LANES <= MAX_LANES);
        let (mut cols, mut row) = ([0.0f32; 4 * MAX_LANES], [0.0f32; 4 * MAX_LANES]);
        for (c, &x) in v.iter().enumerate() {
            Self::store(cols.as_mut_ptr().add(c * Self::LANES), x);
        }
        for (e, x) in row.iter_mut().enumerate().take(4 * Self::LANES) {
            *x = cols[(e % 4) * Self::LANES + e / 4];
        }
        std::array::from_fn(|k| Self::load(row.as_ptr().add(k * Self::LANES)))
    }
    /// The square of the first `LANES` vectors transposed: lane `r` of result `l` is lane
    /// `l` of `rows[r]`, for `r, l < LANES` (the entries past `LANES` are unused). This
    /// default goes through memory.
    #[inline(always)]
    unsafe fn transpose(rows: [Self::V; MAX_LANES]) -> [Self::V; MAX_LANES] {
        assert!(Self::LANES <= MAX_LANES);
        let (mut by_row, mut by_col) = ([0.0f32; MAX_LANES * MAX_LANES], [0.0f32; MAX_LANES * MAX_LANES]);
        for (r, &v) in rows.iter().enumerate().take(Self::LANES) {
            Self::store(by_row.as_mut_ptr().add(r * Self::LANES), v);
        }
        for l in 0..Self::LANES {
            for r in 0..Self::LANES {
                by_col[l * Self::LANES + r] = by_row[r * Self::LANES + l];
            }
        }
        std::array::from_fn(
            |l| if l < Self::LANES { Self::load(by_col.as_ptr().add(l * Self::LANES)) } else { rows[l] },
        )
    }
    /// `a * b + c`, fused.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    /// `1 / v` to within 2 ulp: an estimate refined by a Newton step, instead of a division
    /// (about 16 cycles a vector on AVX-512; in EfficientNet the two ran alike, the
    /// activation pass bound by its memory). For `|v| < 2^126` only: past it AVX's estimate
    /// is 0 but AVX-512's is denormal, and a denormal costs a microcode assist in every
    /// multiply it reaches.
    unsafe fn recip(v: Self::V) -> Self::V;
    /// `v`, with the lanes under `limit` (and NaN lanes) 0.
    unsafe fn zero_below(v: Self::V, limit: f32) -> Self::V;
    /// Each lane rounded down to an integer.
    unsafe fn floor(v: Self::V) -> Self::V;
    /// `2^n` for lanes holding integers `n` in `-126 ..= 127` (built in the exponent bits).
    unsafe fn pow2i(n: Self::V) -> Self::V;
    /// `v * 2^n` for lanes holding integers `n` in `-126 ..= 127` (AVX-512: one `vscalefps`
    /// where `pow2i` and the multiply take four instructions).
    #[inline(always)]
    unsafe fn mul_pow2i(v: Self::V, n: Self::V) -> Self::V {
        Self::mul(v, Self::pow2i(n))
    }
}

/// Ask for the cache line holding `p` in L1 (a hint: never faults, even outside any buffer).
#[inline(always)]
pub(crate) unsafe fn prefetch_l1(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Ask for the cache line holding `p` in L1, to be written (`prefetchw`: the store then
/// finds the line owned instead of waiting for it). A hint, as `prefetch_l1`.
#[inline(always)]
pub(crate) unsafe fn prefetch_write(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_ET0 }>(p.cast());
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// K steps ahead that the GEMM tiles ask for their B rows (`tile.rs`, `ctile.rs`). B rows
/// read in place or from the direct grid lie a plane apart: no hardware prefetcher follows
/// hundreds of such streams, and without the hint every step waits on L2 or L3. Measured
/// on a 1x1 conv read in place (benches/host/tile_prefetch.c): 16 steps ahead took one core
/// from 78 to 148 GFLOP/s with B in L3 and from 131 to 179 with it in L2; packed panels,
/// which the prefetchers do follow, change by a few percent either way alone and gain a
/// little inside a model (ResNet-50 batch 1: asking for packed rows too was 1-2% faster).
pub(crate) const PREFETCH_STEPS: usize = 16;

/// Ask for the cache line holding `p` in L2 (a hint: never faults, even outside any buffer).
#[inline(always)]
pub(crate) unsafe fn prefetch_l2(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p.cast());
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Apply the epilogue's activation (bias is added by the caller): the ones the kernels
/// compute in their stores ([`super::Epilogue::in_kernel`]); the others are identity here
/// and run as a pass over the output after the kernel ([`super::activate_in_place`]). Code
/// for `exp` inlined into every store loop made LLVM keep the loops' accumulators in
/// memory: MobileNetV2, ReLU6 only, ran at 0.6 of its speed.
#[inline(always)]
pub(crate) unsafe fn activate<S: Simd>(v: S::V, act: super::Epilogue) -> S::V {
    use super::Epilogue;
    match act {
        Epilogue::Relu => S::max(v, S::zero()),
        Epilogue::Relu6 => S::min(S::max(v, S::zero()), S::splat(6.0)),
        _ => v,
    }
}

/// Every activation: [`activate_slice`]'s.
#[inline(always)]
pub(crate) unsafe fn activate_any<S: Simd>(v: S::V, act: super::Epilogue) -> S::V {
    use super::Epilogue;
    match act {
        // x * sigmoid(x) (a NaN stays NaN: x is a factor).
        Epilogue::Silu => S::mul(v, sigmoid::<S>(v)),
        // A gate: 0 or at least 2^-100, so that its product with anything over 2^-26 is a
        // normal float (SE-ResNet-50's saturated gates at about 1e-38 made its channel
        // scales take a microcode assist per product: 3.0 ms of the model's 34, now 1.6).
        Epilogue::Sigmoid => S::zero_below(sigmoid::<S>(v), SIGMOID_FLOOR),
        // x * relu6(x + 3) / 6 and relu6(x + 3) / 6.
        Epilogue::HardSwish => S::mul(v, hard_sigmoid::<S>(v)),
        Epilogue::HardSigmoid => hard_sigmoid::<S>(v),
        cheap => activate::<S>(v, cheap),
    }
}

/// Sigmoid outputs under this are 0 (`Epilogue::Sigmoid`): `2^-100`.
pub(crate) const SIGMOID_FLOOR: f32 = f32::from_bits(27 << 23);

/// `1 / (1 + e^-x)`, at least about 1.6e-38 (never denormal: `exp` stops at e^87).
#[inline(always)]
pub(crate) unsafe fn sigmoid<S: Simd>(v: S::V) -> S::V {
    S::recip(S::add(S::splat(1.0), exp::<S>(S::sub(S::zero(), v))))
}

/// `dst[i] = act(src[i])` for `i < n` (`src == dst` allowed: in place).
#[inline(always)]
pub(crate) unsafe fn activate_slice<S: Simd>(src: *const f32, dst: *mut f32, n: usize, act: super::Epilogue) {
    let mut i = 0;
    while i + S::LANES <= n {
        S::store(dst.add(i), activate_any::<S>(S::load(src.add(i)), act));
        i += S::LANES;
    }
    if i < n {
        S::store_partial(dst.add(i), activate_any::<S>(S::load_partial(src.add(i), n - i), act), n - i);
    }
}

#[inline(always)]
unsafe fn hard_sigmoid<S: Simd>(v: S::V) -> S::V {
    let r6 = S::min(S::max(S::add(v, S::splat(3.0)), S::zero()), S::splat(6.0));
    S::mul(r6, S::splat(1.0 / 6.0))
}

/// `e^x` to about 2 ulp over f32's range: `x = n ln2 + r` with `|r| <= ln2 / 2` (ln 2 in
/// two parts, Cody and Waite), `e^r` by its degree-7 Taylor-like polynomial (Cephes' `expf`
/// coefficients, then 1 and 1) in Horner's form, times `2^n`. Inputs are clamped to
/// `-87.3 ..= 87` first, where `2^n` stays a normal float: below, results are about 1e-38
/// instead of going denormal or zero; above, about 6e37 instead of infinity, so that
/// `1 + e^x` stays under 2^126, past which [`Simd::recip`] would be denormal (sigmoid and
/// SiLU saturate long before).
/// A NaN lane gives an unspecified finite value: the callers keep NaN through `x` itself.
#[inline(always)]
pub(crate) unsafe fn exp<S: Simd>(x: S::V) -> S::V {
    let x = S::min(S::max(x, S::splat(-87.3)), S::splat(87.0));
    let n = S::floor(S::fmadd(x, S::splat(std::f32::consts::LOG2_E), S::splat(0.5)));
    let r = S::fmadd(n, S::splat(-0.693_359_4), x);
    let r = S::fmadd(n, S::splat(2.121_944_4e-4), r);
    let mut p = S::splat(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5, 1.0, 1.0] {
        p = S::fmadd(p, r, S::splat(c));
    }
    S::mul_pow2i(p, n)
}

/// Load `n` floats (`1 <= n <= LANES`), zero-filled above.
#[inline(always)]
pub(crate) unsafe fn load_n<S: Simd>(p: *const f32, n: usize) -> S::V {
    if n >= S::LANES {
        S::load(p)
    } else {
        S::load_partial(p, n)
    }
}

/// Store the first `n` lanes (`1 <= n <= LANES`).
#[inline(always)]
pub(crate) unsafe fn store_n<S: Simd>(p: *mut f32, v: S::V, n: usize) {
    if n >= S::LANES {
        S::store(p, v)
    } else {
        S::store_partial(p, v, n)
    }
}

/// Zero `n` floats at `dst`.
#[inline(always)]
pub(crate) unsafe fn zero_n<S: Simd>(dst: *mut f32, n: usize) {
    let mut i = 0;
    while i < n {
        store_n::<S>(dst.add(i), S::zero(), (n - i).min(S::LANES));
        i += S::LANES;
    }
}

/// `dst[t] = src[t * s]` for `t` in `lo..hi`, zero for the other `t < len`. `src` may point
/// (wrapping) outside the buffer: only the elements of `lo..hi` are read.
#[inline(always)]
pub(crate) unsafe fn fill_run<S: Simd>(dst: *mut f32, len: usize, src: *const f32, s: usize, lo: usize, hi: usize) {
    if s > 2 {
        for t in 0..len {
            *dst.add(t) = if t >= lo && t < hi { *src.wrapping_add(t * s) } else { 0.0 };
        }
        return;
    }
    let mut t0 = 0;
    while t0 < len {
        let n = (len - t0).min(S::LANES);
        // Valid lanes of this chunk.
        let (a, b) = (lo.saturating_sub(t0).min(n), hi.saturating_sub(t0).min(n));
        let v = if a >= b {
            S::zero()
        } else if s == 1 {
            S::load_lanes(src.wrapping_add(t0), a, b)
        } else {
            S::load_lanes_stride2(src.wrapping_add(2 * t0), a, b)
        };
        store_n::<S>(dst.add(t0), v, n);
        t0 += S::LANES;
    }
}
