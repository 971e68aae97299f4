//! Which SIMD instruction set the kernels use, found at run time.
//!
//! One binary runs everywhere: the AVX-512 and AVX2 code is compiled with
//! `#[target_feature]` and only called after `is_x86_feature_detected!` said yes.

/// A kernel family. `detect()` picks the widest one the CPU has; tests and benches force
/// each in turn with [`PackedConv::with_isa`](super::PackedConv::with_isa).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F: 16 f32 lanes, 32 registers (12x32 GEMM tile).
    Avx512,
    /// AVX2 + FMA: 8 lanes, 16 registers (6x16 GEMM tile).
    Avx2,
    /// Portable Rust, no intrinsics: correct everywhere, fast nowhere.
    Scalar,
}

impl Isa {
    /// The fastest family this CPU runs.
    pub fn detect() -> Isa {
        [Isa::Avx512, Isa::Avx2].into_iter().find(|isa| isa.is_available()).unwrap_or(Isa::Scalar)
    }

    /// Whether this CPU (and this build's target) can run the family.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every family this CPU runs, widest first.
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Scalar].into_iter().filter(|isa| isa.is_available()).collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Scalar => "scalar",
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Define `fn $name(args)` (or `unsafe fn`) that runs `$body` compiled for the widest vectors this CPU has:
/// the body is compiled three times, in `#[target_feature]` functions for AVX-512 and
/// AVX2+FMA and as is, and the fastest available one is called. For plain-Rust loops
/// (pooling, element-wise passes) that the compiler vectorizes itself: without it they
/// get the baseline x86-64 SSE2 (4 lanes). The body must be safe code; calling it inside
/// a target-feature function is sound once the CPU was checked to have the feature.
macro_rules! widest_vectors {
    ($(#[$meta:meta])* $vis:vis unsafe fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis unsafe fn $name($($arg: $ty),*) {
            $crate::exec::cpu::isa::widest_vectors!(@dispatch ($($arg: $ty),*) $body)
        }
    };
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            $crate::exec::cpu::isa::widest_vectors!(@dispatch ($($arg: $ty),*) $body)
        }
    };
    (@dispatch ($($arg:ident: $ty:ty),*) $body:block) => {{
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) $body
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $body
                match $crate::exec::cpu::Isa::detect() {
                    // SAFETY: `detect` found the features these functions are compiled for
                    // (and an `unsafe fn`'s caller keeps its contract for all three).
                    $crate::exec::cpu::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    $crate::exec::cpu::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::exec::cpu::Isa::Scalar => {}
                }
            }
            $body
    }};
}
pub(crate) use widest_vectors;
