//! A 1x1 expansion conv and the depthwise conv after it (MobileNetV2's inverted residual),
//! run as one: the expanded rows a strip of depthwise output needs are computed into a
//! per-thread buffer that stays in L2, and the depthwise conv reads them there. The
//! expanded tensor, the widest in the block (MobileNetV2's first: 96 x 112 x 112, 4.8 MB
//! per image), is never written to memory nor read back.
//!
//! A work item is (image, run of strips, chunk of the expanded channels): the channels
//! are independent through both convs, so a chunk computes its A micro-panels of the
//! expansion and the depthwise planes of the same channels. Consecutive strips of a run
//! keep the rows they share (the depthwise conv's overlapping taps): only the first strip
//! of a run computes its top halo rows again. With fewer images than threads (batch 1),
//! each thread takes one run, its share of the rows, and channel chunks make up the items
//! (at least 4 per thread): the 1x1 projection after it, cut into pixel blocks, then reads
//! the rows its own core wrote (MobileNetV2 at batch 1: about 1% faster, 0.98-1.00 over
//! three alternated runs, than runs of short strips on 112x112 maps and channel chunks on
//! 28x28 ones).

use super::depthwise::{self, Cols, DwGeom, Flat, Plane};
use super::gemm;
use super::kernels;
use super::scratch::with_scratch;
use super::threads::{share, SendPtr, Threads};
use super::{Body, ConvError, PackedConv};

/// Floats of expanded rows a strip holds: 512 KiB, in L2 beside the expansion's weights.
const STRIP_FLOATS: usize = 128 * 1024;
/// Work items wanted per thread (load balance).
const ITEMS_PER_THREAD: usize = 4;

/// How a call is cut: `runs` runs of strips per image, each `strip` output rows (the last
/// shorter), times `chunks` chunks of the expanded channels, in A micro-panels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FusedPlan {
    pub strip: usize,
    pub strips: usize,
    pub runs: usize,
    pub chunks: usize,
}

/// The plan for `images` images on `threads` threads: `channels` expanded channels in
/// panels of `mr`, depthwise geometry `g`, strips of at most `budget` floats
/// ([`STRIP_FLOATS`]) of a chunk's channels. Fewer images than threads: a run of rows per
/// thread, then the chunks that give each thread its items. Otherwise the fewest chunks
/// that do (each chunk reads the narrow input again), with runs as the strips allow.
pub(crate) fn plan(g: &DwGeom, channels: usize, mr: usize, images: usize, threads: usize, budget: usize) -> FusedPlan {
    let want = if threads > 1 { ITEMS_PER_THREAD * threads } else { 1 };
    let panels = channels.div_ceil(mr);
    // Input rows one output row reads, and the tallest strip whose rows of a chunk's
    // channels fit the budget when the channels are cut into `chunks`.
    let span = (g.kh - 1) * g.dh + 1;
    let tallest = |chunks: usize| {
        let rows = (budget / (panels.div_ceil(chunks) * mr * g.w).max(1)).max(span);
        ((rows - span) / g.sh + 1).clamp(1, g.oh)
    };
    if images < threads {
        let runs = threads.div_ceil(images).min(g.oh);
        let chunks = want.div_ceil(images * runs).clamp(1, panels);
        // Each run's rows in equal strips.
        let per_run = g.oh.div_ceil(runs);
        let strip = per_run.div_ceil(per_run.div_ceil(tallest(chunks)));
        let strips = g.oh.div_ceil(strip);
        return FusedPlan { strip, strips, runs: runs.min(strips), chunks };
    }
    let mut chunks = 1;
    loop {
        let strip = tallest(chunks);
        let strips = g.oh.div_ceil(strip);
        let runs = want.div_ceil(images * chunks).clamp(1, strips);
        if images * runs * chunks >= want || chunks >= panels {
            return FusedPlan { strip, strips, runs, chunks };
        }
        chunks = (chunks * 2).min(panels);
    }
}

impl PackedConv {
    /// Whether this conv, a 1x1 stride-1 expansion, and the depthwise conv `dw` reading its
    /// output can run fused ([`PackedConv::run_expand_depthwise`]) on inputs of `h x w`:
    /// `dw`'s planes that size do not take the flat form (7x7 maps, which suit it better
    /// whole) and neither conv has a forced form.
    pub fn fuses_with(&self, dw: &PackedConv, h: usize, w: usize) -> bool {
        let (Ok(e), Ok(g)) = (self.geom(h, w), dw.geom(h, w)) else { return false };
        self.spec.groups == 1
            && e.is_pointwise()
            && matches!(self.body, Body::Gemm(_))
            && matches!(dw.body, Body::Depthwise(_))
            && dw.spec.in_channels == self.spec.out_channels
            && self.isa == dw.isa
            && self.force.is_none()
            && Flat::new(&g, depthwise::lanes(dw.isa)).is_none()
    }

    /// `dw(self(input))` without the expanded tensor in between (module doc): `input` is
    /// `n` images of this conv's input channels at `h x w`, `output` `dw`'s output.
    #[allow(clippy::too_many_arguments)]
    pub fn run_expand_depthwise(
        &self,
        dw: &PackedConv,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
        threads: &Threads,
    ) -> Result<(), ConvError> {
        self.run_expand_depthwise_in_strips(dw, STRIP_FLOATS, input, n, h, w, output, threads)
    }

    /// [`PackedConv::run_expand_depthwise`] with strips of at most `strip_floats` expanded
    /// floats (at least one output row's worth): tests, to cut small maps into many strips.
    #[allow(clippy::too_many_arguments)]
    pub fn run_expand_depthwise_in_strips(
        &self,
        dw: &PackedConv,
        strip_floats: usize,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
        threads: &Threads,
    ) -> Result<(), ConvError> {
        if !self.fuses_with(dw, h, w) {
            return Err(ConvError::new(format!("{:?} and {:?} cannot run fused", self.spec, dw.spec)));
        }
        let (Body::Gemm(weights), Body::Depthwise(taps)) = (&self.body, &dw.body) else {
            unreachable!("checked by fuses_with")
        };
        let (cin, channels) = (self.spec.in_channels, self.spec.out_channels);
        let g = dw.geom(h, w)?;
        let (hw, out_plane, ntaps) = (h * w, g.oh * g.ow, g.kh * g.kw);
        if input.len() != n * cin * hw {
            return Err(ConvError::new(format!("input has {} floats, {n} x {cin} x {h} x {w} expected", input.len())));
        }
        if output.len() != n * channels * out_plane {
            return Err(ConvError::new(format!(
                "output has {} floats, {n} x {channels} x {} x {} expected",
                output.len(),
                g.oh,
                g.ow
            )));
        }
        let ks = kernels::kernel_set(self.isa);
        let cols = Cols::new(&g, depthwise::lanes(self.isa));
        let offsets = (gemm::plane_offsets(cin, hw), gemm::packed_offsets(cin, ks.nr));
        let p = plan(&g, channels, ks.mr, n, threads.count(), strip_floats);
        let panels = channels.div_ceil(ks.mr);
        let span = (g.kh - 1) * g.dh + 1;
        let cap = (p.strip - 1) * g.sh + span; // buffer rows: the most a strip needs
                                               // Input rows output rows a..b read, inside the image.
        let rows_of = |a: usize, b: usize| {
            let lo = (a * g.sh).saturating_sub(g.pt).min(h);
            let hi = ((b - 1) * g.sh + span).saturating_sub(g.pt).min(h);
            (lo, hi.max(lo))
        };
        let y = SendPtr(output.as_mut_ptr());
        let item = |i: usize| {
            // Images vary slowest, then runs: a thread's items are its own images or rows.
            let (image, rest) = (i / (p.runs * p.chunks), i % (p.runs * p.chunks));
            let (run, chunk) = (rest / p.chunks, rest % p.chunks);
            let (s0, s1) = share(p.strips, p.runs, run);
            let (pa, pb) = share(panels, p.chunks, chunk);
            let (c0, c1) = (pa * ks.mr, (pb * ks.mr).min(channels));
            if s0 == s1 || c0 >= c1 {
                return;
            }
            let x = &input[image * cin * hw..][..cin * hw];
            let ldc = cap * w;
            with_scratch((c1 - c0) * ldc + cin * ks.nr, |buf| {
                let (rows, tail) = buf.split_at_mut((c1 - c0) * ldc);
                // Input rows held_lo..held_hi sit at buffer rows 0.. of each channel.
                let (mut held_lo, mut held_hi) = (0, 0);
                for st in s0..s1 {
                    let (a, b) = (st * p.strip, ((st + 1) * p.strip).min(g.oh));
                    let (lo, hi) = rows_of(a, b);
                    if held_lo <= lo && lo < held_hi {
                        // Keep the rows this strip shares with the last: move them up.
                        let (from, keep) = (lo - held_lo, held_hi - lo);
                        if from > 0 {
                            for c in 0..c1 - c0 {
                                rows.copy_within(c * ldc + from * w..c * ldc + (from + keep) * w, c * ldc);
                            }
                        }
                    } else {
                        held_hi = lo;
                    }
                    held_lo = lo;
                    if hi > held_hi {
                        // SAFETY: rows held_hi..hi of channels c0..c1 fit the buffer (hi - lo
                        // <= cap rows, ldc apart).
                        unsafe {
                            gemm::pointwise_strip(
                                weights,
                                &ks,
                                (c0, c1),
                                &self.bias,
                                self.kernel_act(),
                                x,
                                (hw, held_hi * w, hi * w),
                                (&offsets.0, &offsets.1),
                                tail,
                                (rows.as_mut_ptr().add((held_hi - lo) * w), ldc),
                            )
                        };
                        if !self.epilogue.in_kernel() {
                            // The activation the tile left out, on the rows it just wrote.
                            for c in 0..c1 - c0 {
                                let new = &mut rows[c * ldc + (held_hi - lo) * w..][..(hi - held_hi) * w];
                                kernels::activate_in_place(self.isa, new, self.epilogue);
                            }
                        }
                        held_hi = hi;
                    }
                    // The strip's planes: buffer row 0 is input row lo; padding rows above it
                    // only for the image's top strip, below it where hi reached the bottom.
                    let sg = DwGeom { h: hi - lo, pt: g.pt.saturating_sub(a * g.sh), oh: b - a, ..g };
                    for c in c0..c1 {
                        let plane = Plane {
                            g: sg,
                            x: rows[(c - c0) * ldc..].as_ptr(),
                            // SAFETY (of the offset): rows a..b of plane (image, c) of the output.
                            y: unsafe { y.get().add((image * channels + c) * out_plane + a * g.ow) },
                            taps: taps[c * ntaps..].as_ptr(),
                            bias: dw.bias[c],
                            act: dw.kernel_act(),
                            cols: &cols,
                            flat: None,
                        };
                        // SAFETY: the strip holds hi - lo rows of w floats per channel; output
                        // rows a..b of the plane are written by this item only; `cols` is
                        // for this ISA and row width; the ISA was checked when packing.
                        unsafe { depthwise::plane_for(self.isa, &plane) };
                        if !dw.epilogue.in_kernel() {
                            // SAFETY: rows a..b of the plane, written by this item just now.
                            let out = unsafe { std::slice::from_raw_parts_mut(plane.y, (b - a) * g.ow) };
                            kernels::activate_in_place(self.isa, out, dw.epilogue);
                        }
                    }
                }
            })
        };
        threads.for_each(n * p.runs * p.chunks, &item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(h: usize, s: usize) -> DwGeom {
        let o = (h + 2 - 3) / s + 1;
        DwGeom { c: 1, h, w: h, kh: 3, kw: 3, sh: s, sw: s, dh: 1, dw: 1, pt: 1, pl: 1, oh: o, ow: o }
    }

    #[test]
    fn plans_give_each_thread_items_with_strips_in_l2() {
        // MobileNetV2 at batch 1 on 2 threads (12-row panels): a run of rows per thread in
        // 4 chunks of channels; 96 x 112x112 stride 2 (56 output rows) in strips of 14.
        let p = plan(&geom(112, 2), 96, 12, 1, 2, STRIP_FLOATS);
        assert_eq!(p, FusedPlan { strip: 14, strips: 4, runs: 2, chunks: 4 });
        let p = plan(&geom(28, 1), 192, 12, 1, 2, STRIP_FLOATS);
        assert_eq!(p, FusedPlan { strip: 14, strips: 2, runs: 2, chunks: 4 });
        // Batch 16 takes images; batch 2 on 2 threads runs in 4 strips per image.
        let p = plan(&geom(56, 1), 144, 12, 16, 2, STRIP_FLOATS);
        assert_eq!((p.runs, p.chunks), (1, 1));
        let p = plan(&geom(56, 1), 144, 12, 2, 2, STRIP_FLOATS);
        assert_eq!((p.runs, p.chunks), (4, 1));
        // A strip's rows of a chunk's channels fit the buffer.
        for (g, ch, n, t) in [(geom(112, 2), 96, 1, 2), (geom(56, 1), 144, 1, 2), (geom(14, 1), 576, 1, 16)] {
            let p = plan(&g, ch, 12, n, t, STRIP_FLOATS);
            let chunk = ch.div_ceil(12).div_ceil(p.chunks) * 12;
            assert!(chunk * ((p.strip - 1) * g.sh + 3) * g.w <= STRIP_FLOATS.max(chunk * 3 * g.w), "{p:?}");
            assert_eq!(p.strips, g.oh.div_ceil(p.strip));
        }
        // One thread: one item per image, whole.
        let p = plan(&geom(56, 1), 144, 12, 1, 1, STRIP_FLOATS);
        assert_eq!((p.runs, p.chunks), (1, 1));
    }
}
