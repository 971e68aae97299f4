//! Transposing a block into panel rows: packing the weights' A panels (`gemm.rs`) and the
//! weight gradient's A and B panels (`weight_grad.rs`), in squares transposed in registers
//! ([`Simd::transpose`]).

use super::simd::{load_n, store_n, Simd, MAX_LANES};

/// `dst[q][r] = src[r][q]` for `rows` rows of `cols` floats (`src_stride` apart) into
/// `cols` rows of `width` floats (`width >= rows`; lanes `rows..width` zero).
pub(crate) struct TransposeJob {
    pub src: *const f32,
    pub src_stride: usize,
    pub rows: usize,
    pub cols: usize,
    pub dst: *mut f32,
    pub width: usize,
}

/// [`TransposeJob`] in squares of `LANES x LANES` transposed in registers.
///
/// Safety: `src` has `rows` readable rows of `cols` floats, `dst` `cols * width` writable
/// floats, and the CPU has `S`'s ISA.
#[inline(always)]
pub(crate) unsafe fn transpose<S: Simd>(job: &TransposeJob) {
    let l = S::LANES;
    for r0 in (0..job.width).step_by(l) {
        let (band, live) = (l.min(job.width - r0), job.rows.saturating_sub(r0).min(l));
        for q0 in (0..job.cols).step_by(l) {
            let n = l.min(job.cols - q0);
            let mut v = [S::zero(); MAX_LANES];
            for (r, v) in v.iter_mut().enumerate().take(live) {
                *v = load_n::<S>(job.src.add((r0 + r) * job.src_stride + q0), n);
            }
            let t = S::transpose(v);
            for (q, &t) in t.iter().enumerate().take(n) {
                store_n::<S>(job.dst.add((q0 + q) * job.width + r0), t, band);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::cpu::kernels::kernel_set;
    use crate::exec::cpu::Isa;

    /// Every ISA, blocks that are and are not whole squares, bands of zero lanes past
    /// `rows`, a source stride wider than the block.
    #[test]
    fn each_isa_transposes_blocks_into_panel_rows() {
        for isa in Isa::available() {
            let ks = kernel_set(isa);
            for (rows, cols, width, stride) in
                [(12, 256, 12, 300), (32, 40, 32, 40), (5, 17, 16, 20), (1, 3, 8, 3), (7, 33, 7, 50)]
            {
                let src: Vec<f32> = (0..rows * stride).map(|i| i as f32 * 0.5 + 1.0).collect();
                let mut dst = vec![f32::NAN; cols * width];
                let job =
                    TransposeJob { src: src.as_ptr(), src_stride: stride, rows, cols, dst: dst.as_mut_ptr(), width };
                // SAFETY: the buffers hold what the job describes; the ISA is available.
                unsafe { (ks.transpose)(&job) };
                for q in 0..cols {
                    for r in 0..width {
                        let want = if r < rows { src[r * stride + q] } else { 0.0 };
                        assert_eq!(dst[q * width + r], want, "{isa}: {rows}x{cols} into {width}, at [{q}][{r}]");
                    }
                }
            }
        }
    }
}
