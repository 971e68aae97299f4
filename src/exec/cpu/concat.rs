//! Channel concatenation on the conv threads, maybe with the inference batch-norm that
//! alone reads it (and that norm's activation) applied on the way: DenseNet's every layer
//! concatenates all the features before it and normalises the result, which candle's
//! `cat` (one thread) and a separate batch-norm pass read and wrote twice.
//!
//! An image's channels are its inputs' channels one after the other, in NCHW (a plane per
//! channel) and in the blocked layout (`to_blocked`: a group of 16 channels per block) alike,
//! so the output is a sequence of channel groups each copied from one input's group.

use super::eltwise::{act_of, affine_act_serial};
use super::isa::widest_vectors;
use super::kernels::activate_in_place;
use super::{ConvError, Epilogue, Isa, Threads, BLOCK};

/// Floats per work item, at least.
const CHUNK: usize = 1 << 14;
/// Below this many floats, one thread does it all.
const SERIAL: usize = 1 << 15;
/// Below this many output floats a concat without an affine pays no threads (nor this
/// module: candle's `cat` copies as fast on one thread). Measured in `--layers` on the 2-vCPU
/// Xeon: ShuffleNetV2's concats (up to 182K floats) ran 10-40% slower here, threaded or
/// not, while Inception-v4's (98K-470K) took 1.7 ms against 2.4, and SqueezeNet's largest
/// (387K) made the net 5% faster.
pub const PLAIN_COPY_MIN_FLOATS: usize = 1 << 18;

/// A per-channel `act(x * scale[c] + shift[c])` (an inference batch-norm and its activation).
#[derive(Debug, Clone, Copy)]
pub struct ChannelAffine<'a> {
    pub scale: &'a [f32],
    pub shift: &'a [f32],
    pub act: Epilogue,
}

widest_vectors! {
    /// `dst = act(src * a + b)` over blocked pixels, `a` and `b` a block's 16 lanes.
    fn affine_act_lanes(src: &[f32], a: &[f32; BLOCK], b: &[f32; BLOCK], dst: &mut [f32], act: Epilogue) {
        for (d, v) in dst.chunks_exact_mut(BLOCK).zip(src.chunks_exact(BLOCK)) {
            for l in 0..BLOCK {
                d[l] = act_of(v[l] * a[l] + b[l], act);
            }
        }
    }
}

/// `out` = the channel concatenation of `inputs`, each `images` images of its own channel
/// count at `pixels` pixels per channel, laid out in groups of `block` channels (1: NCHW; 16:
/// blocked, every input's channels whole blocks); with `affine`, each output channel `c`
/// becomes `act(x * scale[c] + shift[c])`. Sizes that do not agree are an error.
pub fn concat_channels(
    inputs: &[&[f32]],
    images: usize,
    pixels: usize,
    block: usize,
    affine: Option<ChannelAffine>,
    out: &mut [f32],
    threads: &Threads,
) -> Result<(), ConvError> {
    let sizes = || inputs.iter().map(|x| x.len().to_string()).collect::<Vec<_>>().join(", ");
    let per_channel = images * pixels;
    if per_channel == 0 || !(block == 1 || block == BLOCK) {
        return Err(ConvError::new(format!(
            "channel concat of {images} images of {pixels} pixels in groups of {block} channels: expected images, \
             pixels and groups of 1 or {BLOCK} channels"
        )));
    }
    // Each input's channel groups, and which input (and its first group) each group of an
    // output image comes from.
    let mut groups_of = Vec::with_capacity(inputs.len());
    let mut owner = Vec::new();
    for (i, x) in inputs.iter().enumerate() {
        if !x.len().is_multiple_of(per_channel * block) {
            return Err(ConvError::new(format!(
                "channel concat of inputs of {} floats: input {i} is not whole groups of {block} channels of \
                 {images} images of {pixels} pixels",
                sizes()
            )));
        }
        let groups = x.len() / (per_channel * block);
        owner.extend((0..groups).map(|k| (i, k)));
        groups_of.push(groups);
    }
    let group = block * pixels;
    let image_groups = owner.len();
    let channels = image_groups * block;
    if out.len() != images * channels * pixels {
        return Err(ConvError::new(format!(
            "channel concat of inputs of {} floats ({channels} channels) into {} floats: expected {}",
            sizes(),
            out.len(),
            images * channels * pixels
        )));
    }
    if let Some(a) = affine {
        if a.scale.len() != channels || a.shift.len() != channels {
            return Err(ConvError::new(format!(
                "channel concat of {channels} channels with {} scales and {} shifts: one each per channel",
                a.scale.len(),
                a.shift.len()
            )));
        }
    }
    // Output groups `first..` into `o`, a whole number of groups: each run of groups from
    // one input's image at once (one copy, or the affine group by group, then the
    // activations `affine_act_serial` leaves out, on the run just written).
    let isa = Isa::detect();
    let run = |first: usize, o: &mut [f32]| {
        let mut done = 0;
        while done < o.len() {
            let g = first + done / group;
            let (image, j) = (g / image_groups, g % image_groups);
            let (i, k) = owner[j];
            let run = (groups_of[i] - k).min((o.len() - done) / group);
            let src = &inputs[i][(image * groups_of[i] + k) * group..][..run * group];
            let dst = &mut o[done..][..run * group];
            done += run * group;
            let Some(a) = affine else {
                dst.copy_from_slice(src);
                continue;
            };
            for (r, (dst, src)) in dst.chunks_exact_mut(group).zip(src.chunks_exact(group)).enumerate() {
                let c = (j + r) * block;
                if block == 1 {
                    affine_act_serial(src, a.scale[c], a.shift[c], dst, a.act);
                } else {
                    let lanes = |v: &[f32]| -> [f32; BLOCK] { v[c..][..BLOCK].try_into().expect("a block") };
                    affine_act_lanes(src, &lanes(a.scale), &lanes(a.shift), dst, a.act);
                }
            }
            if !a.act.in_kernel() {
                activate_in_place(isa, dst, a.act);
            }
        }
    };
    let per_item = CHUNK.div_ceil(group).max(1);
    if out.len() < SERIAL || threads.count() == 1 {
        run(0, out);
    } else {
        threads.for_each_chunk(out, per_item * group, &|i, o| run(i * per_item, o));
    }
    Ok(())
}

/// Copy `src` (`images` images of `image` floats each) into its place in each image of `out`
/// (`images` images of `out_image` floats): image `i` at `out[i * out_image + offset..]`.
/// A concat's inputs lie so in NCHW and blocked alike (`offset`: the input's first channel
/// times the pixels per channel). Sizes that do not agree are an error.
pub fn copy_into_images(
    src: &[f32],
    images: usize,
    offset: usize,
    out_image: usize,
    out: &mut [f32],
    threads: &Threads,
) -> Result<(), ConvError> {
    let image = src.len() / images.max(1);
    if images == 0 || image * images != src.len() || offset + image > out_image || out.len() != images * out_image {
        return Err(ConvError::new(format!(
            "copy of {} floats as {images} images into floats {offset}.. of {out_image}-float images of {} floats",
            src.len(),
            out.len()
        )));
    }
    let copy = |i: usize, o: &mut [f32]| o[offset..][..image].copy_from_slice(&src[i * image..][..image]);
    if src.len() < SERIAL || images == 1 || threads.count() == 1 {
        out.chunks_exact_mut(out_image).enumerate().for_each(|(i, o)| copy(i, o));
    } else {
        threads.for_each_chunk(out, out_image, &copy);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{from_blocked, to_blocked};
    use super::*;

    /// The definition: NCHW inputs `[images][c_i][pixels]` into `[images][sum c_i][pixels]`,
    /// then the affine and activation per output channel, in f64.
    fn concat_reference(
        inputs: &[Vec<f32>],
        channels: &[usize],
        images: usize,
        pixels: usize,
        affine: Option<ChannelAffine>,
    ) -> Vec<f32> {
        let mut out = Vec::new();
        for n in 0..images {
            for (x, &c) in inputs.iter().zip(channels) {
                out.extend_from_slice(&x[n * c * pixels..][..c * pixels]);
            }
        }
        let Some(a) = affine else { return out };
        let total: usize = channels.iter().sum();
        for (p, plane) in out.chunks_mut(pixels).enumerate() {
            let c = p % total;
            for v in plane {
                let y = *v as f64 * a.scale[c] as f64 + a.shift[c] as f64;
                *v = match a.act {
                    Epilogue::None => y,
                    Epilogue::Relu => y.max(0.0),
                    Epilogue::Silu => y / (1.0 + (-y).exp()),
                    other => unreachable!("{other:?} is not tested here"),
                } as f32;
            }
        }
        out
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 7919 + seed * 104729) % 41) as f32 * 0.25 - 5.0).collect()
    }

    fn close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{what}: element {i}: {g} against {w}");
        }
    }

    #[test]
    fn nchw_and_blocked_concats_match_the_definition() {
        let threads = [Threads::single(), Threads::new(3).unwrap()];
        // DenseNet-like (a growing input and a small one), and many small inputs on a large map.
        let cases: [(&[usize], usize, usize); 3] =
            [(&[64, 32], 2, 56 * 56), (&[16, 48, 32, 16], 3, 7 * 7), (&[32], 1, 9)];
        for (channels, images, pixels) in cases {
            let inputs: Vec<Vec<f32>> =
                channels.iter().enumerate().map(|(s, &c)| values(images * c * pixels, s)).collect();
            let total: usize = channels.iter().sum();
            let (scale, shift) = (values(total, 7), values(total, 8));
            for affine in [None, Some(Epilogue::Relu), Some(Epilogue::None), Some(Epilogue::Silu)] {
                let affine = affine.map(|act| ChannelAffine { scale: &scale, shift: &shift, act });
                let want = concat_reference(&inputs, channels, images, pixels, affine);
                for t in &threads {
                    let what =
                        format!("{channels:?} x {images} images of {pixels} pixels, {affine:?}, {} threads", t.count());
                    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
                    let mut out = vec![f32::NAN; want.len()];
                    concat_channels(&refs, images, pixels, 1, affine, &mut out, t).unwrap();
                    close(&out, &want, &format!("NCHW {what}"));

                    let blocked: Vec<Vec<f32>> =
                        inputs.iter().zip(channels).map(|(x, &c)| to_blocked(x, images, c, pixels)).collect();
                    let refs: Vec<&[f32]> = blocked.iter().map(Vec::as_slice).collect();
                    let mut out = vec![f32::NAN; want.len()];
                    concat_channels(&refs, images, pixels, BLOCK, affine, &mut out, t).unwrap();
                    close(&from_blocked(&out, images, total, pixels), &want, &format!("blocked {what}"));
                }
            }
        }
    }

    /// Each image's run lands at its offset and nothing else of `out` changes, on 1 and 3
    /// threads, serial and threaded sizes.
    #[test]
    fn copies_into_images_land_at_their_offsets() {
        for t in [Threads::single(), Threads::new(3).unwrap()] {
            for (images, image, offset, out_image) in [(1, 5, 3, 9), (4, 6000, 2000, 9000), (5, 1 << 14, 0, 1 << 15)] {
                let src = values(images * image, 1);
                let before = values(images * out_image, 2);
                let mut out = before.clone();
                copy_into_images(&src, images, offset, out_image, &mut out, &t).unwrap();
                for (i, (o, b)) in out.chunks(out_image).zip(before.chunks(out_image)).enumerate() {
                    assert_eq!(&o[offset..][..image], &src[i * image..][..image], "image {i}");
                    assert_eq!(&o[..offset], &b[..offset], "image {i} before its run");
                    assert_eq!(&o[offset + image..], &b[offset + image..], "image {i} after its run");
                }
            }
            let mut out = vec![0.0; 2 * 10];
            // A run past the image's end; images that are no whole number; an output of the wrong size.
            assert!(copy_into_images(&[0.0; 8], 2, 7, 10, &mut out, &t).is_err());
            assert!(copy_into_images(&[0.0; 7], 2, 0, 10, &mut out, &t).is_err());
            assert!(copy_into_images(&[0.0; 8], 2, 0, 10, &mut out[1..], &t).is_err());
        }
    }

    #[test]
    fn sizes_that_do_not_agree_are_errors() {
        let t = Threads::single();
        let (a, b) = (vec![0.0; 2 * 16 * 4], vec![0.0; 2 * 8 * 4]);
        let mut out = vec![0.0; 2 * 24 * 4];
        let scale = vec![1.0; 24];
        // Whole channels, but an output of the wrong size.
        let err = concat_channels(&[&a, &b], 2, 4, 1, None, &mut out[1..], &t).unwrap_err();
        assert!(err.0.contains("into 191 floats"), "{}", err.0);
        // An input of a part of a channel.
        assert!(concat_channels(&[&a, &b[1..]], 2, 4, 1, None, &mut out, &t).is_err());
        // 8 channels are not a whole block.
        let err = concat_channels(&[&a, &b], 2, 4, BLOCK, None, &mut out, &t).unwrap_err();
        assert!(err.0.contains("input 1"), "{}", err.0);
        // One scale short.
        let affine = ChannelAffine { scale: &scale[1..], shift: &scale, act: Epilogue::Relu };
        assert!(concat_channels(&[&a, &b], 2, 4, 1, Some(affine), &mut out, &t).is_err());
        // Groups of 4 channels are no layout.
        assert!(concat_channels(&[&a, &b], 2, 4, 4, None, &mut out, &t).is_err());
        concat_channels(&[&a, &b], 2, 4, 1, None, &mut out, &t).unwrap();
    }
}
