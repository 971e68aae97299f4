//! Channel concats without their copy: each packed conv that alone feeds a concat writes
//! its output straight into its channels of the concat's output buffer.
//!
//! SqueezeNet's fire modules concatenate two expand convs, Inception's blocks three or four
//! branches: at batch 1 the concats' copies were 10% of SqueezeNet 1.1's time.
//!
//! An image's channels in a concat are its inputs' channels one after the other, in NCHW
//! and blocked alike (`cpu::concat_channels`). At batch 1 an input's channels are one run of
//! the output, so its conv writes there as into a buffer of its own. At larger batches the
//! GEMM and Winograd convs write each image's output a concat image apart
//! (`PackedConv::run_strided`, NCHW and blocked); the other kernels (the first-conv kernel,
//! depthwise and grouped convs) write their own buffer, then each image's run is copied in,
//! as the concat did. (A conv call per image, straight into its runs, made SqueezeNet 1.1 5%
//! slower at batch 16.)
//!
//! The first of the writers (in node order) makes the buffer; each later one takes it as
//! a second input (the value of an earlier writer, or of a layer passing one on, that is
//! still held) and writes into it in place. The concat itself copies only the inputs no
//! writer made (a pool branch, a slice) and passes the buffer on.

use super::{Layer, PackedConvOp};
use crate::exec::cpu::{contiguous_f32, copy_into_images, output_buffer, Threads};
use crate::graph::Net;
use candle_core::{bail, CpuStorage, Layout, Result, Shape};
use std::sync::Arc;

/// What writes one input's channels of a concat's output: a packed conv's output, or the
/// input as it is (a copy, for an input no writer made).
#[derive(Debug, Clone)]
pub struct IntoConcatOp {
    conv: Option<Arc<PackedConvOp>>,
    /// The first channel of the concat's output written.
    first_channel: usize,
    /// The concat's output channels.
    channels: usize,
    /// The threads the copies run on.
    threads: &'static Threads,
}

impl IntoConcatOp {
    /// The packed conv whose output goes in, if it is one.
    pub fn conv(&self) -> Option<&Arc<PackedConvOp>> {
        self.conv.as_ref()
    }

    /// Write the conv's output of `x` (laid out as `layout`), or `x` itself, into its
    /// channels of `buffer`, the concat's output for the same images.
    fn write(&self, x: &[f32], layout: &Layout, buffer: &mut [f32]) -> Result<()> {
        let (images, c, h, w) = layout.shape().dims4()?;
        let (m, plane) = match &self.conv {
            Some(op) => {
                let (_, m, oh, ow) = op.output_shape(layout, None)?.dims4()?;
                (m, oh * ow)
            }
            None => (c, h * w),
        };
        let expected = images * self.channels * plane;
        if self.first_channel + m > self.channels || buffer.len() != expected {
            bail!(
                "writing {m} channels from channel {} into a concat of {} channels of {images} images of {plane} \
                 pixels: its buffer has {} floats, expected {expected}",
                self.first_channel,
                self.channels,
                buffer.len()
            )
        }
        let (offset, out_image) = (self.first_channel * plane, self.channels * plane);
        let copy = |src: &[f32], buffer: &mut [f32]| {
            copy_into_images(src, images, offset, out_image, buffer, self.threads).map_err(candle_core::Error::msg)
        };
        match &self.conv {
            Some(op) if images == 1 => op.run_into(x, [1, h, w], &mut buffer[offset..][..m * plane]),
            Some(op) if op.conv.writes_strided(images, h, w, op.layouts) => op
                .conv
                .run_strided(x, [images, h, w], &mut buffer[offset..], out_image, op.layouts, op.threads)
                .map_err(candle_core::Error::msg),
            Some(op) => {
                let mut own = output_buffer(images * m * plane);
                op.run_into(x, [images, h, w], &mut own)?;
                copy(&own, buffer)
            }
            None => copy(x, buffer),
        }
    }

    /// The concat's output shape for an input laid out as `layout`.
    fn buffer_shape(&self, layout: &Layout) -> Result<Shape> {
        let Some(op) = &self.conv else { bail!("a copy into a concat makes no buffer") };
        let (images, _, oh, ow) = op.output_shape(layout, None)?.dims4()?;
        Ok((images, self.channels, oh, ow).into())
    }
}

/// The first writer: makes the concat's buffer and writes its channels.
impl candle_core::CustomOp1 for IntoConcatOp {
    fn name(&self) -> &'static str {
        "packed-conv2d-into-concat"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "packed conv's input (into a concat)")?;
        let shape = self.buffer_shape(layout)?;
        let mut buffer = output_buffer(shape.elem_count());
        self.write(x, layout, &mut buffer)?;
        Ok((CpuStorage::F32(buffer), shape))
    }
}

/// A later writer or a copy: `s1` the concat's buffer, `s2` the conv's (or the copy's) input.
impl candle_core::InplaceOp2 for IntoConcatOp {
    fn name(&self) -> &'static str {
        "into-concat-in-place"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let x = contiguous_f32(s2, l2, "input written into a concat")?;
        let CpuStorage::F32(buffer) = s1 else { bail!("a concat's buffer is f32") };
        let Some((start, end)) = l1.contiguous_offsets() else { bail!("a concat's buffer is contiguous") };
        if l1.shape().dims4()?.1 != self.channels {
            bail!("a concat's buffer of shape {:?} has not the concat's {} channels", l1.shape(), self.channels)
        }
        self.write(x, l2, &mut buffer[start..end])
    }
}

/// The writer conv of a concat's input `p`, through the layers that pass its output on,
/// where each of them (and the conv) is read by nothing else and the conv writes in the
/// concat's layout; with the nodes of that chain.
fn writer(net: &Net, readers: &[usize], layers: &[Layer], mut p: usize, blocked: bool) -> Option<Vec<usize>> {
    let mut chain = Vec::new();
    loop {
        if readers[p] != 1 || net.outputs.contains(&p) {
            return None;
        }
        chain.push(p);
        match &layers[p] {
            Layer::Identity => p = *net.nodes[p].inputs.first()?,
            Layer::PackedConv(op) if op.layouts().output == blocked => return Some(chain),
            _ => return None,
        }
    }
}

/// Let the packed convs that alone feed a channel concat write into its output's buffer
/// (the module's doc); the concat then copies only its other inputs. Leaves the concats
/// that run a fused batch-norm. Returns how many concats changed (none with
/// `SYNPROF_CPU_CONCAT_IN_PLACE=off`). Runs after `block_tensors`: a conv writes in the
/// layout the concat was given.
pub(super) fn concats_in_place(net: &Net, readers: &[usize], layers: &mut [Layer]) -> usize {
    if crate::exec::switched_off("SYNPROF_CPU_CONCAT_IN_PLACE") {
        return 0;
    }
    let mut changed = 0;
    for j in 0..layers.len() {
        let Layer::PackedConcat(concat) = &layers[j] else { continue };
        if concat.affine.is_some() {
            continue;
        }
        let (blocked, threads) = (concat.blocked, concat.threads);
        let inputs = &net.nodes[j].inputs;
        let channels = net.nodes[j].shape.channels();
        let chains: Vec<Option<Vec<usize>>> =
            inputs.iter().map(|&p| writer(net, readers, layers, p, blocked)).collect();
        // The writers (conv nodes, each its chain's last) in the order they run.
        let mut writers: Vec<(usize, usize)> =
            chains.iter().enumerate().filter_map(|(k, c)| Some((*c.as_ref()?.last()?, k))).collect();
        if writers.is_empty() {
            continue;
        }
        writers.sort_unstable();
        let mut first_channel = vec![0; inputs.len()];
        for k in 1..inputs.len() {
            first_channel[k] = first_channel[k - 1] + net.nodes[inputs[k - 1]].shape.channels();
        }
        // Each writer after the first reads the buffer from the latest node before it of the
        // chains before it: that node's reader (the next of its chain, or the concat) runs
        // after the writer, so the value is still held.
        let mut held = Vec::new();
        for &(conv, k) in &writers {
            let buffer = held.iter().copied().filter(|&v| v < conv).max();
            let Layer::PackedConv(op) = &layers[conv] else { unreachable!("a writer is a packed conv") };
            let op = IntoConcatOp { conv: Some(op.clone()), first_channel: first_channel[k], channels, threads };
            layers[conv] = Layer::PackedConvIntoConcat { op: Arc::new(op), buffer };
            held.extend(chains[k].iter().flatten());
        }
        let copies = chains
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_none())
            .map(|(k, _)| (k, IntoConcatOp { conv: None, first_channel: first_channel[k], channels, threads }))
            .collect();
        layers[j] = Layer::ConcatInPlace { buffer: writers[0].1, copies, blocked };
        changed += 1;
    }
    changed
}

/// The concat's run: the inputs no writer made copied into the buffer, which it passes on.
pub(super) fn run_concat(
    inputs: &[&candle_core::Tensor],
    buffer: usize,
    copies: &[(usize, IntoConcatOp)],
) -> Result<candle_core::Tensor> {
    let out = inputs[buffer];
    for (k, op) in copies {
        out.inplace_op2(&inputs[*k].contiguous()?, op)?;
    }
    Ok(out.clone())
}

/// The kernel name `--layers` shows for a concat run in place.
pub(super) fn concat_name(copies: usize, blocked: bool) -> &'static str {
    match (copies > 0, blocked) {
        (false, false) => "concat-in-place",
        (false, true) => "concat-in-place-blocked",
        (true, false) => "concat-in-place+copy",
        (true, true) => "concat-in-place+copy-blocked",
    }
}
