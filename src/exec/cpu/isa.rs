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
