//! Lowering the IR to candle: each node becomes a [`Layer`] holding its device tensors
//! and a plan for the candle calls, prepared once; [`Lowered::forward`] then runs the
//! net with nothing but tensor ops.
//!
//! What candle lacks is built from what it has: asymmetric or per-axis padding is an
//! explicit pad; pool padding pads with -inf (max) or zeros (average, with a precomputed
//! divisor map where PyTorch's divisor varies); ceil mode is extra trailing padding; LRN
//! is an average pool over channels. At inference, a batch-norm whose input is a conv
//! used by nothing else is folded into that conv's weights and bias (exact up to rounding),
//! and so is a constant scale after such a conv (Inception-ResNet's residual scales).
//!
//! Inference at f32 on the CPU runs convs on the packed kernels of [`super::cpu`] by
//! default ([`ConvAlgorithm::Packed`]): weights are packed here, once, and each conv is a
//! candle custom op, so the rest of the graph stays candle tensors. Any padding, per-axis
//! stride or dilation goes to the kernel directly (no pad op), the bias is fused, and a
//! ReLU or ReLU6 that is the conv's (or its folded batch-norm's) only reader is fused into
//! the conv's store and becomes an identity; a two-input add (with the ReLU after it,
//! likewise) is one pass on the same threads; a fully connected layer runs as a 1x1 conv
//! whose pixels are the batch (its weights stream once, on all the threads, where
//! candle's matmul used one). `SYNPROF_CPU_CONV=candle` (or
//! [`RunOptions::cpu_conv`](super::run::RunOptions)) keeps candle's `conv2d`; other dtypes
//! and other devices always use it.
//!
//! Training at f32 on the CPU runs on the same kernels and threads, each as a custom op
//! with its backward: convs (`cpu::conv2d_train`: the weights re-packed each step, the
//! gradients packed convs and a GEMM), batch-norm with the ReLU or ReLU6 that is its only
//! reader, two-input adds with theirs, and max pools. The step's reverse pass over these
//! layers is `exec::backward` (their backwards without candle's autograd between them).

mod concat_in_place;

use super::cpu::{contiguous_f32, output_buffer, ConvSpec, Epilogue, Layouts, PackedConv, Threads, TrainConv, BLOCK};
use super::ExecError;
use crate::analysis::cost::node_cost;
use crate::graph::{Conv2d, Net, Op, Padding, Pool2d};
use crate::weights::{HostTensor, NodeParams, Weights};
use candle_core::{CpuStorage, DType, Device, Layout, Tensor, D};
pub use concat_in_place::IntoConcatOp;
use std::sync::{Arc, OnceLock};

/// How inference convs run on the CPU at f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ConvAlgorithm {
    /// candle's `Tensor::conv2d`, then the bias and activation as separate ops.
    Candle,
    /// `exec::cpu`: weights packed at prepare time, bias and ReLU/ReLU6 fused.
    #[default]
    Packed,
}

impl ConvAlgorithm {
    /// The environment variable that chooses the algorithm when no option does.
    pub const ENV: &'static str = "SYNPROF_CPU_CONV";

    pub fn parse(text: &str) -> Result<ConvAlgorithm, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "candle" => Ok(ConvAlgorithm::Candle),
            "packed" => Ok(ConvAlgorithm::Packed),
            other => Err(format!("`{other}` is not a CPU conv algorithm: expected candle or packed")),
        }
    }

    /// `SYNPROF_CPU_CONV` if set (an error if it says something else than `candle` or
    /// `packed`), else [`ConvAlgorithm::Packed`].
    pub fn from_env() -> Result<ConvAlgorithm, ExecError> {
        match std::env::var(Self::ENV) {
            Ok(v) if !v.trim().is_empty() => {
                ConvAlgorithm::parse(&v).map_err(|m| ExecError::new(format!("{}: {m}", Self::ENV)))
            }
            _ => Ok(ConvAlgorithm::Packed),
        }
    }
}

impl std::fmt::Display for ConvAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConvAlgorithm::Candle => "candle",
            ConvAlgorithm::Packed => "packed",
        })
    }
}

/// Whether two-input add node `add` can run inside the conv on one side of it:
/// `(slot, conv, residual)` with `inputs[slot]` the conv's output (or its folded
/// batch-norm's) read by the add alone, `residual` the other input, computed before the
/// conv runs (node order is run order), all three of one shape, and the conv not
/// depthwise. Of two such sides, the later conv (ResNet's downsample branch, when it
/// follows the main path).
fn residual_fusion(
    net: &Net,
    readers: &[usize],
    folded_into: &[Option<usize>],
    add: usize,
) -> Option<(usize, usize, usize)> {
    let node = &net.nodes[add];
    if !matches!(node.op, Op::Add) || node.inputs.len() != 2 {
        return None;
    }
    (0..2)
        .filter_map(|slot| {
            let (p, residual) = (node.inputs[slot], node.inputs[1 - slot]);
            if readers[p] != 1 || net.outputs.contains(&p) {
                return None;
            }
            let conv = folded_into[p].unwrap_or(p);
            let Op::Conv2d(c) = &net.nodes[conv].op else { return None };
            let in_channels = net.nodes[net.nodes[conv].inputs[0]].shape.channels();
            let depthwise = ConvSpec::from_graph(c, in_channels).is_depthwise();
            let same = net.nodes[p].shape == node.shape && net.nodes[residual].shape == node.shape;
            (residual < conv && same && !depthwise).then_some((slot, conv, residual))
        })
        .max_by_key(|&(_, conv, _)| conv)
}

/// The packed convs' worker pool, shared by every model in the process. Sized, on first
/// use, to the executor's CPU thread count ([`super::device::set_cpu_threads`], else all
/// cores), the same count candle's pool gets.
pub(crate) fn conv_threads() -> Result<&'static Threads, ExecError> {
    if let Some(t) = CONV_THREADS.get() {
        return Ok(t);
    }
    let count = super::device::cpu_threads().unwrap_or_else(super::device::available_cores);
    let threads = Threads::new(count).map_err(|e| ExecError::new(format!("conv thread pool: {e}")))?;
    Ok(CONV_THREADS.get_or_init(|| threads))
}

static CONV_THREADS: OnceLock<Threads> = OnceLock::new();

/// The pools packed ops run their work items on: the conv threads (once started) and the
/// one-thread pool of tiny convs.
fn packed_pools() -> impl Iterator<Item = &'static Threads> {
    CONV_THREADS.get().into_iter().chain([super::cpu::serial_threads()])
}

/// How many threads the packed convs' pool has, once started.
pub fn conv_thread_count() -> Option<usize> {
    CONV_THREADS.get().map(Threads::count)
}

/// Per-node times of timed passes ([`Lowered::infer_timed`]), summed over the passes.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTimes {
    /// Wall time, the device synchronised after each node.
    pub wall_ms: Vec<f64>,
    /// Time the CPU conv threads together spent in the node's work items: up to the
    /// thread count times its wall time; 0 where the node ran no work items (candle's own
    /// ops, CUDA).
    pub busy_ms: Vec<f64>,
}

impl NodeTimes {
    /// Zero times for `nodes` nodes.
    pub fn new(nodes: usize) -> NodeTimes {
        NodeTimes { wall_ms: vec![0.0; nodes], busy_ms: vec![0.0; nodes] }
    }
}

/// `act(a + b)` of two same-shaped f32 tensors as one candle op on the conv threads; its
/// backward (training) passes `dy` masked by the activation's gradient to both inputs.
#[derive(Debug, Clone)]
pub struct AddActOp {
    act: Epilogue,
    threads: &'static Threads,
}

impl candle_core::CustomOp2 for AddActOp {
    fn name(&self) -> &'static str {
        "add-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        elementwise2(s1, l1, s2, l2, "fused add", |a, b, out| super::cpu::add_act(a, b, out, self.act, self.threads))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = match self.act {
            Epilogue::None => dy.clone(),
            _ => activation_grad(y, dy, self.act, self.threads)?,
        };
        Ok((Some(g.clone()), Some(g)))
    }
}

/// `dy` masked where the activation `act`, whose output is `y`, did not pass its input: one
/// threaded pass (`cpu::act_grad`), f32 on the CPU.
pub(crate) fn activation_grad(
    y: &Tensor,
    dy: &Tensor,
    act: Epilogue,
    threads: &'static Threads,
) -> candle_core::Result<Tensor> {
    y.contiguous()?.apply_op2_no_bwd(&dy.contiguous()?, &ActGradOp { act, threads })
}

/// The [`Epilogue`] a ReLU or ReLU6 node's op is: the activations training fuses (their
/// gradient is a mask their output gives).
pub(crate) fn epilogue_of(op: &Op) -> Option<Epilogue> {
    match op {
        Op::Relu => Some(Epilogue::Relu),
        Op::Relu6 => Some(Epilogue::Relu6),
        _ => None,
    }
}

/// The [`Epilogue`] an activation node's op is, for inference: also SiLU, sigmoid and the
/// hard ones (EfficientNet's and MobileNetV3's), which the packed kernels compute in their
/// output stores and [`ActOp`] alone.
pub(crate) fn inference_epilogue_of(op: &Op) -> Option<Epilogue> {
    match op {
        Op::Silu => Some(Epilogue::Silu),
        Op::Sigmoid => Some(Epilogue::Sigmoid),
        Op::HardSwish => Some(Epilogue::HardSwish),
        Op::HardSigmoid => Some(Epilogue::HardSigmoid),
        op => epilogue_of(op),
    }
}

/// `dy` masked where an activation (whose output `y` is the first input) did not pass.
struct ActGradOp {
    act: Epilogue,
    threads: &'static Threads,
}

impl candle_core::CustomOp2 for ActGradOp {
    fn name(&self) -> &'static str {
        "activation-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        elementwise2(s1, l1, s2, l2, "activation gradient", |y, dy, out| {
            super::cpu::act_grad(y, dy, out, self.act, self.threads)
        })
    }
}

/// `f(a, b, out)` on two f32 tensors of one shape into a new one of that shape.
fn elementwise2(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    what: &str,
    f: impl FnOnce(&[f32], &[f32], &mut [f32]) -> Result<(), super::cpu::ConvError>,
) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
    let (a, b) = two_f32_inputs(s1, l1, s2, l2, what)?;
    if l1.shape() != l2.shape() {
        candle_core::bail!("{what} of shapes {:?} and {:?}", l1.shape(), l2.shape())
    }
    let mut out = output_buffer(a.len());
    f(a, b, &mut out).map_err(candle_core::Error::msg)?;
    Ok((CpuStorage::F32(out), l1.shape().clone()))
}

/// `f(x, out)` on an f32 tensor (`what` names it in errors) into a new one of its shape.
fn elementwise1(
    storage: &CpuStorage,
    layout: &Layout,
    what: &str,
    f: impl FnOnce(&[f32], &mut [f32]) -> Result<(), super::cpu::ConvError>,
) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
    let x = contiguous_f32(storage, layout, what)?;
    let mut out = output_buffer(x.len());
    f(x, &mut out).map_err(candle_core::Error::msg)?;
    Ok((CpuStorage::F32(out), layout.shape().clone()))
}

/// A batch-norm that could not fold, maybe with the ReLU after it, in one threaded pass
/// (packed path): `act(x * scale[c] + shift[c])`.
#[derive(Debug)]
pub struct AffineActOp {
    scale: Vec<f32>,
    shift: Vec<f32>,
    act: Epilogue,
    threads: &'static Threads,
}

impl candle_core::CustomOp1 for AffineActOp {
    fn name(&self) -> &'static str {
        "affine-act"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        let plane: usize = layout.shape().dims().iter().skip(2).product();
        elementwise1(storage, layout, "fused batch-norm's input", |x, out| {
            super::cpu::affine_act(x, &self.scale, &self.shift, plane.max(1), out, self.act, self.threads)
        })
    }
}

/// `x * s` where `s` holds one value per image and channel (a squeeze-and-excitation
/// block's scale, `[n, c, 1, 1]`), one threaded pass (packed path, inference): candle's
/// broadcast multiply took 3-4x onnxruntime's time in EfficientNet. `scale_first`: the
/// scale is the op's first input.
#[derive(Debug)]
pub struct ChannelScaleOp {
    scale_first: bool,
    /// The scaled tensor and the output are blocked (`cpu::to_blocked`); the scale, one
    /// value per image and channel, lies the same either way.
    blocked: bool,
    threads: &'static Threads,
}

impl candle_core::CustomOp2 for ChannelScaleOp {
    fn name(&self) -> &'static str {
        "channel-scale"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        let ((sx, lx), (ss, ls)) = if self.scale_first { ((s2, l2), (s1, l1)) } else { ((s1, l1), (s2, l2)) };
        let x = contiguous_f32(sx, lx, "scaled tensor")?;
        let scale = contiguous_f32(ss, ls, "per-channel scale")?;
        let dims = lx.shape().dims();
        let images_channels: usize = dims.iter().take(2).product();
        let plane: usize = dims.iter().skip(2).product();
        let whole_blocks = !self.blocked || dims.get(1).is_some_and(|c| c.is_multiple_of(super::cpu::BLOCK));
        if dims.len() != 4 || scale.len() != images_channels || !whole_blocks {
            candle_core::bail!(
                "channel scale: {} scales for a {:?} tensor ({images_channels} planes)",
                scale.len(),
                dims
            );
        }
        let mut out = output_buffer(x.len());
        let block = if self.blocked { super::cpu::BLOCK } else { 1 };
        super::cpu::channel_scale(x, scale, block, plane, &mut out, self.threads).map_err(candle_core::Error::msg)?;
        Ok((CpuStorage::F32(out), lx.shape().clone()))
    }
}

/// An activation alone (not fused into the op before it), one threaded vector pass
/// (packed path, inference).
#[derive(Debug)]
pub struct ActOp {
    act: Epilogue,
    threads: &'static Threads,
}

impl candle_core::CustomOp1 for ActOp {
    fn name(&self) -> &'static str {
        "activation"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        elementwise1(storage, layout, "activation's input", |x, out| super::cpu::act(x, out, self.act, self.threads))
    }
}

/// A channel concat on the conv threads (packed path, inference), maybe with the inference
/// batch-norm that alone reads it and that norm's activation fused (DenseNet's BN-ReLU after
/// every concat): one threaded pass where candle's `cat` copied on one thread and the norm
/// read the copy again. NCHW or blocked, inputs and output alike. A plain concat under
/// `cpu::PLAIN_COPY_MIN_FLOATS` stays candle's `cat`.
#[derive(Debug)]
pub struct ConcatOp {
    /// The fused norm's per-channel scale and shift and its activation.
    affine: Option<(Vec<f32>, Vec<f32>, Epilogue)>,
    blocked: bool,
    threads: &'static Threads,
}

impl ConcatOp {
    /// Its kernel's name, as `--layers` shows it: `concat`, with `-affine-act` where a
    /// batch-norm is fused, with `-blocked` on blocked tensors.
    pub fn name(&self) -> &'static str {
        match (&self.affine, self.blocked) {
            (None, false) => "concat",
            (None, true) => "concat-blocked",
            (Some(_), false) => "concat-affine-act",
            (Some(_), true) => "concat-affine-act-blocked",
        }
    }

    /// The concat of `inputs` (each `[n, c_i, h, w]`, f32 on the CPU) along channels.
    fn run(&self, inputs: &[&Tensor]) -> candle_core::Result<Tensor> {
        let first = inputs.first().ok_or_else(|| candle_core::Error::msg("channel concat of no inputs"))?;
        let (images, _, h, w) = first.dims4()?;
        let mut channels = 0;
        for (i, x) in inputs.iter().enumerate() {
            let (n, c, xh, xw) = x.dims4()?;
            if (n, xh, xw) != (images, h, w) {
                candle_core::bail!("channel concat: input {i} is {:?}, input 0 {:?}", x.dims(), first.dims())
            }
            channels += c;
        }
        if self.affine.is_none() && images * channels * h * w < super::cpu::PLAIN_COPY_MIN_FLOATS {
            return Tensor::cat(inputs, 1);
        }
        let inputs: Vec<Tensor> = inputs.iter().map(|x| x.contiguous()).collect::<candle_core::Result<_>>()?;
        let guards: Vec<_> = inputs.iter().map(Tensor::storage_and_layout).collect();
        let slices = guards
            .iter()
            .enumerate()
            .map(|(i, (storage, layout))| match &**storage {
                candle_core::Storage::Cpu(s) => contiguous_f32(s, layout, &format!("channel concat's input {i}")),
                _ => candle_core::bail!("channel concat's input {i} is not on the CPU"),
            })
            .collect::<candle_core::Result<Vec<&[f32]>>>()?;
        let mut out = output_buffer(images * channels * h * w);
        let affine =
            self.affine.as_ref().map(|(scale, shift, act)| super::cpu::ChannelAffine { scale, shift, act: *act });
        let block = if self.blocked { BLOCK } else { 1 };
        super::cpu::concat_channels(&slices, images, h * w, block, affine, &mut out, self.threads)
            .map_err(candle_core::Error::msg)?;
        drop(guards);
        Tensor::from_vec(out, (images, channels, h, w), first.device())
    }
}

/// A packed conv as a candle op (f32 in and out, NCHW or blocked as `layouts` says: a
/// blocked tensor keeps its NCHW shape in candle, its data in `cpu::to_blocked`'s order;
/// inference only, no backward).
#[derive(Debug)]
pub struct PackedConvOp {
    conv: PackedConv,
    threads: &'static Threads,
    layouts: Layouts,
}

impl PackedConvOp {
    pub fn conv(&self) -> &PackedConv {
        &self.conv
    }

    /// How its input and output lie: NCHW or blocked (`block_tensors`).
    pub fn layouts(&self) -> Layouts {
        self.layouts
    }

    /// The conv of a contiguous f32 input of `n` images of `h x w` into `out`, the output's size.
    fn run_into(&self, x: &[f32], [n, h, w]: [usize; 3], out: &mut [f32]) -> candle_core::Result<()> {
        self.conv
            .run_in_layouts(x, n, h, w, None, false, out, self.layouts, self.threads)
            .map_err(candle_core::Error::msg)
    }

    /// The conv of a contiguous NCHW f32 input (`layout`), with a residual shaped as the
    /// output added before the activation if given.
    fn forward(
        &self,
        x: &[f32],
        layout: &Layout,
        residual: Option<(&[f32], &Layout)>,
    ) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        let (n, _, h, w) = layout.shape().dims4()?;
        let shape = self.output_shape(layout, residual.map(|(_, l)| l))?;
        let mut out = output_buffer(shape.elem_count());
        self.conv
            .run_in_layouts(x, n, h, w, residual.map(|(r, _)| r), false, &mut out, self.layouts, self.threads)
            .map_err(candle_core::Error::msg)?;
        Ok((CpuStorage::F32(out), shape))
    }

    /// The output's shape for an input laid out as `input`, once the input's channels and
    /// the residual's shape (if any) agree with the conv.
    fn output_shape(&self, input: &Layout, residual: Option<&Layout>) -> candle_core::Result<candle_core::Shape> {
        let (n, c, h, w) = input.shape().dims4()?;
        let s = self.conv.spec();
        if c != s.in_channels {
            candle_core::bail!("packed conv expects {} input channels, got {c}", s.in_channels)
        }
        let (oh, ow) = self.conv.output_hw(h, w).map_err(candle_core::Error::msg)?;
        let shape: candle_core::Shape = (n, s.out_channels, oh, ow).into();
        if let Some(l) = residual.filter(|l| l.shape() != &shape) {
            candle_core::bail!("residual {:?} does not match the conv's output {shape:?}", l.shape())
        }
        Ok(shape)
    }
}

impl candle_core::CustomOp1 for PackedConvOp {
    fn name(&self) -> &'static str {
        "packed-conv2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        self.forward(contiguous_f32(storage, layout, "packed conv's input")?, layout, None)
    }
}

impl candle_core::CustomOp2 for PackedConvOp {
    fn name(&self) -> &'static str {
        "packed-conv2d-add"
    }

    /// `s1` the conv's input, `s2` the residual (the output's shape).
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        let (x, r) = two_f32_inputs(s1, l1, s2, l2, "packed conv with a residual")?;
        self.forward(x, l1, Some((r, l2)))
    }
}

/// `s1` the residual, which receives the output; `s2` the conv's input.
impl candle_core::InplaceOp2 for PackedConvOp {
    fn name(&self) -> &'static str {
        "packed-conv2d-add-in-place"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        let x = contiguous_f32(s2, l2, "packed conv's input (residual in place)")?;
        let (n, _, h, w) = l2.shape().dims4()?;
        self.output_shape(l2, Some(l1))?;
        let CpuStorage::F32(acc) = s1 else { candle_core::bail!("packed conv with a residual in place takes f32") };
        let Some((start, end)) = l1.contiguous_offsets() else {
            candle_core::bail!("packed conv with a residual in place takes a contiguous residual")
        };
        self.conv
            .run_in_layouts(x, n, h, w, None, true, &mut acc[start..end], self.layouts, self.threads)
            .map_err(candle_core::Error::msg)
    }
}

/// A 1x1 expansion and the depthwise conv reading its output, run fused
/// ([`PackedConv::run_expand_depthwise`]): the expanded tensor is never materialised.
#[derive(Debug)]
pub struct ExpandDepthwiseOp {
    expand: Arc<PackedConvOp>,
    depthwise: Arc<PackedConvOp>,
    /// The expansion's node (its own layer passes its input through).
    expand_node: usize,
}

impl candle_core::CustomOp1 for ExpandDepthwiseOp {
    fn name(&self) -> &'static str {
        "packed-expand-depthwise"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        let x = contiguous_f32(storage, layout, "fused expansion and depthwise conv's input")?;
        let (n, c, h, w) = layout.shape().dims4()?;
        let (e, d) = (self.expand.conv(), self.depthwise.conv());
        if c != e.spec().in_channels {
            candle_core::bail!("fused expansion expects {} input channels, got {c}", e.spec().in_channels)
        }
        let (oh, ow) = d.output_hw(h, w).map_err(candle_core::Error::msg)?;
        let shape: candle_core::Shape = (n, d.spec().out_channels, oh, ow).into();
        let mut out = output_buffer(shape.elem_count());
        e.run_expand_depthwise(d, x, n, h, w, &mut out, self.expand.threads).map_err(candle_core::Error::msg)?;
        Ok((CpuStorage::F32(out), shape))
    }
}

/// Expanded maps of at least this many pixels run fused with their depthwise conv.
/// Smaller ones (14x14 at batch 1) fit in the caches anyway, and their expansions split by
/// channels already keep each thread's depthwise input on its own core.
const FUSE_MIN_PIXELS: usize = 28 * 28;

/// Fuse each packed 1x1 expansion into the packed depthwise conv that alone reads its
/// output (through folded batch-norms and fused activations, which pass it on):
/// `layers[depthwise]` becomes [`Layer::PackedExpandDepthwise`] on the expansion's input
/// and `layers[expansion]` passes that input through. Returns how many were fused
/// (none with `SYNPROF_CPU_FUSE=off`).
fn fuse_expansions(net: &Net, readers: &[usize], layers: &mut [Layer]) -> usize {
    if super::switched_off("SYNPROF_CPU_FUSE") {
        return 0;
    }
    let mut fused = 0;
    for d in 0..layers.len() {
        let Layer::PackedConv(dw) = &layers[d] else { continue };
        if !dw.conv().spec().is_depthwise() {
            continue;
        }
        // Walk back over the layers that pass the expansion's output on.
        let mut p = net.nodes[d].inputs[0];
        let expand = loop {
            if readers[p] != 1 || net.outputs.contains(&p) {
                break None;
            }
            match &layers[p] {
                Layer::Identity => p = net.nodes[p].inputs[0],
                Layer::PackedConv(op) => break Some((p, op.clone())),
                _ => break None,
            }
        };
        let Some((e, expand)) = expand else { continue };
        let Some([h, w]) = net.nodes[net.nodes[e].inputs[0]].shape.hw() else { continue };
        if h * w < FUSE_MIN_PIXELS || !expand.conv().fuses_with(dw.conv(), h, w) {
            continue;
        }
        let op = ExpandDepthwiseOp { expand, depthwise: dw.clone(), expand_node: e };
        layers[d] = Layer::PackedExpandDepthwise(Arc::new(op));
        layers[e] = Layer::Identity;
        fused += 1;
    }
    fused
}

/// Fuse each unfolded inference batch-norm (`Layer::AffineAct`, with its activation) into
/// the packed channel concat that it alone reads (DenseNet's BN-ReLU after each concat):
/// the concat applies it on the way and the norm passes the result through.
fn fuse_concat_norms(net: &Net, readers: &[usize], layers: &mut [Layer]) {
    for j in 0..layers.len() {
        let Layer::AffineAct(norm) = &layers[j] else { continue };
        let p = net.nodes[j].inputs[0];
        if readers[p] != 1 || net.outputs.contains(&p) {
            continue;
        }
        let Layer::PackedConcat(concat) = &layers[p] else { continue };
        if concat.affine.is_some() {
            continue;
        }
        let affine = Some((norm.scale.clone(), norm.shift.clone(), norm.act));
        layers[p] =
            Layer::PackedConcat(Arc::new(ConcatOp { affine, blocked: concat.blocked, threads: concat.threads }));
        layers[j] = Layer::Identity;
    }
}

/// Mark the fused residual adds (`Layer::PackedConvAdd`) that may write their output into
/// the residual's buffer: the residual's value is a buffer one of the packed ops made
/// (through layers that pass it on as is), and no value that may share that buffer is
/// read after the conv or is an output, the conv's own input included. Layers other than
/// the packed ops and the pass-throughs count as possibly sharing their inputs' buffers
/// (a reshape is a view). The add a conv absorbed (`PassInput`) names the residual among
/// its inputs but reads only the conv's output.
fn residual_in_place(net: &Net, layers: &mut [Layer]) {
    let n = layers.len();
    // last_read[p]: the last node that reads p's value (n: an output).
    let mut last_read = vec![0usize; n];
    for (j, (node, layer)) in net.nodes.iter().zip(layers.iter()).enumerate() {
        match layer {
            Layer::PassInput(k) => last_read[node.inputs[*k]] = j,
            Layer::PackedConvAdd { residual, .. } => {
                for &p in node.inputs.iter().chain([residual]) {
                    last_read[p] = j;
                }
            }
            _ => node.inputs.iter().for_each(|&p| last_read[p] = j),
        }
    }
    for &o in &net.outputs {
        last_read[o] = n;
    }
    let fresh = |l: &Layer| {
        matches!(
            l,
            Layer::PackedConv(_)
                | Layer::PackedConvAdd { .. }
                | Layer::PackedExpandDepthwise(_)
                | Layer::AddAct(_)
                | Layer::PackedPool(_)
                | Layer::AffineAct(_)
                | Layer::Act(_)
                | Layer::ChannelScale(_)
                | Layer::PackedConcat(_)
        )
    };
    // root[i]: the node whose fresh buffer node i's value is, where known.
    let mut root: Vec<Option<usize>> = vec![None; n];
    for i in 0..n {
        let inputs = &net.nodes[i].inputs;
        root[i] = match &layers[i] {
            Layer::Identity => inputs.first().and_then(|&p| root[p]),
            Layer::PassInput(k) => root[inputs[*k]],
            Layer::PackedConvAdd { residual, .. } => {
                let owner = root[*residual];
                let ok = owner.is_some_and(|o| {
                    // Values that may share o's buffer: o's own, its pass-throughs, and
                    // whatever an unknown layer made of them.
                    let mut shares = vec![false; n];
                    for j in o..i {
                        shares[j] = root[j] == Some(o)
                            || (root[j].is_none()
                                && !fresh(&layers[j])
                                && net.nodes[j].inputs.iter().any(|&p| shares[p]));
                    }
                    (o..i).all(|j| !shares[j] || last_read[j] <= i) && !shares[inputs[0]]
                });
                if let Layer::PackedConvAdd { in_place, .. } = &mut layers[i] {
                    *in_place = ok;
                }
                if ok {
                    owner
                } else {
                    Some(i)
                }
            }
            l if fresh(l) => Some(i),
            _ => None,
        };
    }
}

/// Keep tensors blocked (`cpu::to_blocked`: a pixel's 16 channels together, onnxruntime's
/// NCHWc) where every layer that reads them can run so: packed 1x1 (strided too) and
/// depthwise convs, convs on the direct grid that Winograd and the stem kernel never take
/// (ResNet's 3x3 stride-2 convs and 7x7 stem; a residual in the layout of the conv's
/// output), max and average pools (blocked on both sides or neither), channel concats of
/// whole blocks (all inputs and the output alike) and the global average pool. A
/// conv other than a depthwise one may read NCHW and write blocked or the other way round,
/// so a blocked stretch needs no conversion at its ends. Then every conv of the stretch cuts its work by
/// the same pixel ranges, and a 1x1 conv writing blocked stores its channel vectors as they
/// are, with no transpose (`cpu/blocked.rs`). Maps of every size: limited to 14x14 and
/// smaller, ResNet-50 ran 3-5% slower at batch 1 and 16 (benches/peers/RESULTS.md section
/// 26). Returns how many convs run on blocked tensors (none with `SYNPROF_CPU_BLOCKED=off`).
fn block_tensors(net: &Net, layers: &mut [Layer]) -> Result<usize, ExecError> {
    if super::switched_off("SYNPROF_CPU_BLOCKED") {
        return Ok(0);
    }
    let n = layers.len();
    let conv_op = |l: &Layer| match l {
        Layer::PackedConv(op) | Layer::PackedConvAdd { op, .. } => Some(op.clone()),
        _ => None,
    };
    // src[i]: the node whose layer made node i's value (through pass-throughs).
    let mut src: Vec<usize> = (0..n).collect();
    for i in 0..n {
        src[i] = match &layers[i] {
            Layer::Identity => net.nodes[i].inputs.first().map_or(i, |&p| src[p]),
            Layer::PassInput(k) => src[net.nodes[i].inputs[*k]],
            _ => i,
        };
    }
    // A max or average pool keeps its input's layout: blocked where its channels are whole
    // blocks and its input and every reader of its output run blocked.
    let window_pool =
        |l: &Layer| matches!(l, Layer::PackedPool(op) if matches!(op.pool, PackedPool::Max(_) | PackedPool::Avg(_)));
    let mut blocked: Vec<bool> = (0..n)
        .map(|i| {
            let writes_blocked = |op: Arc<PackedConvOp>| {
                op.conv().runs_in(Layouts { input: false, output: true }) || op.conv().runs_in(Layouts::BLOCKED)
            };
            let whole_blocks = |node: usize| {
                let dims = net.nodes[node].shape.dims();
                dims.len() == 3 && dims[0].is_multiple_of(BLOCK)
            };
            let keeps_layout = window_pool(&layers[i]) || matches!(layers[i], Layer::ChannelScale(_));
            // A channel concat of blocked images is the same copy as of NCHW ones (each image's
            // inputs one after the other) where every input is whole blocks.
            let blocked_concat =
                matches!(layers[i], Layer::PackedConcat(_)) && net.nodes[i].inputs.iter().all(|&p| whole_blocks(p));
            let out_w = net.nodes[i].shape.hw().map_or(0, |[_, w]| w);
            let pays = |op: &Arc<PackedConvOp>| op.conv().blocked_output_pays(out_w);
            conv_op(&layers[i]).is_some_and(|op| pays(&op) && writes_blocked(op))
                || (keeps_layout && whole_blocks(i))
                || blocked_concat
        })
        .collect();
    for &o in &net.outputs {
        blocked[src[o]] = false;
    }
    loop {
        let mut changed = false;
        let mut unblock = |v: usize, blocked: &mut Vec<bool>| {
            if blocked[v] {
                blocked[v] = false;
                changed = true;
            }
        };
        for j in 0..n {
            let inputs = &net.nodes[j].inputs;
            match &layers[j] {
                Layer::Identity | Layer::PassInput(_) => {}
                Layer::PackedConv(op) | Layer::PackedConvAdd { op, .. } => {
                    let x = src[inputs[0]];
                    let layouts = Layouts { input: blocked[x], output: blocked[j] };
                    if !op.conv().runs_in(layouts) {
                        // A depthwise conv runs blocked on both sides or neither.
                        unblock(x, &mut blocked);
                        unblock(j, &mut blocked);
                    }
                    if let Layer::PackedConvAdd { residual, .. } = &layers[j] {
                        if blocked[src[*residual]] != blocked[j] {
                            unblock(src[*residual], &mut blocked);
                            unblock(j, &mut blocked);
                        }
                    }
                }
                Layer::PackedPool(op) if matches!(op.pool, PackedPool::GlobalAvg) => {}
                l if window_pool(l) => {
                    let x = src[inputs[0]];
                    if blocked[x] != blocked[j] {
                        unblock(x, &mut blocked);
                        unblock(j, &mut blocked);
                    }
                }
                // A channel scale keeps its scaled input's layout, as a max pool does; its
                // scale ([c, 1, 1]) lies the same blocked or not.
                Layer::ChannelScale(op) => {
                    let x = src[inputs[usize::from(op.scale_first)]];
                    if blocked[x] != blocked[j] {
                        unblock(x, &mut blocked);
                        unblock(j, &mut blocked);
                    }
                }
                Layer::PackedConcat(_) if blocked[j] => {
                    if inputs.iter().any(|&p| !blocked[src[p]]) {
                        inputs.iter().for_each(|&p| unblock(src[p], &mut blocked));
                        unblock(j, &mut blocked);
                    }
                }
                _ => inputs.iter().for_each(|&p| unblock(src[p], &mut blocked)),
            }
        }
        if !changed {
            break;
        }
    }
    let mut convs = 0;
    for j in 0..n {
        let Some(&x) = net.nodes[j].inputs.first() else { continue };
        let x = match &layers[j] {
            Layer::ChannelScale(op) => net.nodes[j].inputs[usize::from(op.scale_first)],
            _ => x,
        };
        let input = blocked[src[x]];
        // The 1x1 conv that wrote a blocked input, as (in, out) channels: a depthwise conv
        // reading it cuts its work the same way.
        let writer = conv_op(&layers[src[x]])
            .map(|w| *w.conv().spec())
            .filter(|s| input && !s.is_depthwise())
            .map(|s| (s.in_channels, s.out_channels));
        match &mut layers[j] {
            Layer::PackedConv(op) | Layer::PackedConvAdd { op, .. } => {
                let layouts = Layouts { input, output: blocked[j] };
                if layouts.any_blocked() {
                    let name = &net.nodes[j].name;
                    let op = Arc::get_mut(op).ok_or_else(|| ExecError::at(name, "packed conv shared at lowering"))?;
                    op.layouts = layouts;
                    if let (Some((k, m)), true) = (writer, op.conv.spec().is_depthwise()) {
                        op.conv.follow_writer(k, m);
                    }
                    convs += 1;
                }
            }
            Layer::ChannelScale(op) if input => {
                *op = Arc::new(ChannelScaleOp { scale_first: op.scale_first, blocked: true, threads: op.threads });
            }
            Layer::PackedConcat(op) if blocked[j] => {
                *op = Arc::new(ConcatOp { affine: op.affine.clone(), blocked: true, threads: op.threads });
            }
            Layer::PackedPool(op) if input => {
                let pool = match op.pool {
                    PackedPool::Max(spec) => PackedPool::MaxBlocked(spec),
                    PackedPool::Avg(spec) => PackedPool::AvgBlocked(spec),
                    _ => PackedPool::GlobalAvgBlocked,
                };
                *op = Arc::new(PackedPoolOp { pool, threads: op.threads });
            }
            _ => {}
        }
    }
    Ok(convs)
}

fn layers_in_place(layers: &[Layer]) -> usize {
    layers.iter().filter(|l| matches!(l, Layer::PackedConvAdd { in_place: true, .. })).count()
}

/// `contiguous_f32` of a custom op's two inputs.
fn two_f32_inputs<'a>(
    s1: &'a CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
    what: &str,
) -> candle_core::Result<(&'a [f32], &'a [f32])> {
    Ok((
        contiguous_f32(s1, l1, &format!("{what}'s first input"))?,
        contiguous_f32(s2, l2, &format!("{what}'s second input"))?,
    ))
}

/// Which pool a [`PackedPoolOp`] runs.
#[derive(Debug, Clone, Copy)]
pub enum PackedPool {
    /// Windows clipped to the input (no padded copy).
    Max(super::cpu::PoolSpec),
    /// Each plane's mean.
    GlobalAvg,
    /// Each channel's mean, of a blocked input (`cpu::to_blocked`).
    GlobalAvgBlocked,
    /// `Max` on a blocked input, into a blocked output.
    MaxBlocked(super::cpu::PoolSpec),
    /// Windows clipped to the input, each sum divided as PyTorch divides it.
    Avg(super::cpu::AvgPoolSpec),
    /// `Avg` on a blocked input, into a blocked output.
    AvgBlocked(super::cpu::AvgPoolSpec),
}

/// A pool on the conv threads; NCHW f32. Max pools also train (their backward routes each
/// gradient to its window's maximum, `cpu::max_pool_grad`).
#[derive(Debug, Clone)]
pub struct PackedPoolOp {
    pool: PackedPool,
    threads: &'static Threads,
}

/// `(x, dy) -> dx` of a max pool.
struct MaxPoolGradOp {
    spec: super::cpu::PoolSpec,
    threads: &'static Threads,
}

impl candle_core::CustomOp2 for MaxPoolGradOp {
    fn name(&self) -> &'static str {
        "max-pool2d-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        let x = contiguous_f32(s1, l1, "max pool gradient's input")?;
        let dy = contiguous_f32(s2, l2, "max pool gradient")?;
        let (n, c, h, w) = l1.shape().dims4()?;
        let mut dx = output_buffer(x.len());
        super::cpu::max_pool_grad(x, dy, n * c, h, w, &self.spec, &mut dx, self.threads)
            .map_err(candle_core::Error::msg)?;
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

impl candle_core::CustomOp1 for PackedPoolOp {
    fn name(&self) -> &'static str {
        match self.pool {
            PackedPool::Max(_) => "packed-max-pool2d",
            PackedPool::GlobalAvg => "packed-global-avg-pool",
            PackedPool::GlobalAvgBlocked => "packed-global-avg-pool-blocked",
            PackedPool::MaxBlocked(_) => "packed-max-pool2d-blocked",
            PackedPool::Avg(_) => "packed-avg-pool2d",
            PackedPool::AvgBlocked(_) => "packed-avg-pool2d-blocked",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        let x = contiguous_f32(storage, layout, &format!("{}'s input", self.name()))?;
        let (n, c, h, w) = layout.shape().dims4()?;
        let [oh, ow] = match &self.pool {
            PackedPool::Max(spec) | PackedPool::MaxBlocked(spec) => spec.out_hw,
            PackedPool::Avg(spec) | PackedPool::AvgBlocked(spec) => spec.window.out_hw,
            PackedPool::GlobalAvg | PackedPool::GlobalAvgBlocked => [1, 1],
        };
        let mut out = output_buffer(n * c * oh * ow);
        match &self.pool {
            PackedPool::Max(spec) => super::cpu::max_pool(x, n * c, h, w, spec, &mut out, self.threads),
            PackedPool::GlobalAvg => super::cpu::global_avg_pool(x, n * c, h * w, &mut out, self.threads),
            PackedPool::GlobalAvgBlocked => super::cpu::global_avg_pool_blocked(x, n, c, h * w, &mut out, self.threads),
            PackedPool::MaxBlocked(spec) => super::cpu::max_pool_blocked(x, n, c, h, w, spec, &mut out, self.threads),
            PackedPool::Avg(spec) => super::cpu::avg_pool(x, n * c, h, w, spec, &mut out, self.threads),
            PackedPool::AvgBlocked(spec) => super::cpu::avg_pool_blocked(x, n, c, h, w, spec, &mut out, self.threads),
        }
        .map_err(candle_core::Error::msg)?;
        Ok((CpuStorage::F32(out), (n, c, oh, ow).into()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let PackedPool::Max(spec) = self.pool else {
            candle_core::bail!("{} has no backward (inference only)", self.name())
        };
        Ok(Some(x.apply_op2_no_bwd(&dy.contiguous()?, &MaxPoolGradOp { spec, threads: self.threads })?))
    }
}

/// How a convolution maps onto candle's `conv2d(padding, stride, dilation, groups)`.
#[derive(Debug, Clone)]
pub struct ConvPlan {
    /// Zero padding applied before the conv when candle's single symmetric one cannot say it.
    pub pre_pad: Option<Padding>,
    pub padding: usize,
    pub stride: usize,
    /// Per-axis strides candle cannot take: conv at stride 1, then keep every n-th row/column.
    pub subsample: Option<[usize; 2]>,
    pub dilation: usize,
    pub groups: usize,
    /// Training at stride > 1: pad explicitly and crop the input to the rows and columns the
    /// kernel reaches, because candle's conv backward sizes the input gradient from the
    /// height alone (wrong for non-square leftovers).
    pub crop_to_reach: bool,
}

#[derive(Debug, Clone)]
pub struct PoolPlan {
    /// Padding including the extra trailing rows/columns of ceil mode.
    pub pad: Padding,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Average pools whose divisor is not kh*kw everywhere: multiply by kh*kw/divisor.
    pub rescale: Option<Tensor>,
}

/// Batch-norm at training time: batch statistics, running statistics updated.
#[derive(Debug, Clone)]
pub struct BatchNormTrain {
    pub gamma: Tensor,
    pub beta: Tensor,
    pub eps: f64,
    /// The activation after it, fused (CPU f32 only; the activation's node passes through).
    pub act: Epilogue,
}

#[derive(Debug, Clone)]
pub enum Layer {
    Input,
    /// Passes its input through: dropout at inference, a batch-norm folded into its conv.
    Identity,
    Conv {
        weight: Tensor,
        bias: Option<Tensor>,
        plan: ConvPlan,
        /// Training on the CPU at f32: forward and gradients on the packed kernels
        /// (`exec::cpu::conv2d_train`) instead of candle's conv and its backward.
        train: Option<Arc<TrainConv>>,
    },
    /// A conv on the packed CPU kernels, with its bias and maybe an activation fused.
    PackedConv(Arc<PackedConvOp>),
    /// A packed conv with the residual add after it fused (and the add's activation):
    /// `act(conv(x) + values[residual])`, the residual a node computed before the conv.
    PackedConvAdd {
        op: Arc<PackedConvOp>,
        residual: usize,
        /// The output goes into the residual's buffer (`PackedConv::run_add_in_place`):
        /// no other value still to be read shares that buffer ([`residual_in_place`]).
        in_place: bool,
    },
    /// A 1x1 expansion and the depthwise conv after it in one op, on the expansion's input
    /// (its own layer, and those between, pass that input through as `Identity`).
    PackedExpandDepthwise(Arc<ExpandDepthwiseOp>),
    /// Passes input `k` through: a residual add fused into the conv that feeds it.
    PassInput(usize),
    /// Max pooling on the conv threads (packed path).
    /// A max or global average pool on the conv threads.
    PackedPool(Arc<PackedPoolOp>),
    /// A two-input add, maybe with the ReLU after it, in one pass (packed path).
    AddAct(Arc<AddActOp>),
    /// Inference batch-norm not folded, maybe with its ReLU, in one threaded pass (packed path).
    AffineAct(Arc<AffineActOp>),
    /// An activation alone, packed path (inference).
    Act(Arc<ActOp>),
    /// A multiply by one value per image and channel, packed path (inference).
    ChannelScale(Arc<ChannelScaleOp>),
    /// Inference batch-norm not folded: `x * scale + shift`, each `[1, C, 1, 1]`.
    Affine {
        scale: Tensor,
        shift: Tensor,
    },
    BatchNormTrain(BatchNormTrain),
    Activation(Op),
    MaxPool(PoolPlan),
    AvgPool(PoolPlan),
    GlobalAvgPool,
    Lrn {
        size: usize,
        alpha: f64,
        beta: f64,
        k: f64,
    },
    Add,
    Mul,
    Scale(f64),
    Concat(usize),
    /// A channel concat on the conv threads, maybe with the batch-norm after it (packed path, inference).
    PackedConcat(Arc<ConcatOp>),
    /// A packed conv writing its output into its channels of the buffer of the channel
    /// concat that alone reads it (`concat_in_place`). `buffer`: the node whose value is
    /// that buffer, made by an earlier writer; `None`: this conv makes it.
    PackedConvIntoConcat {
        op: Arc<IntoConcatOp>,
        buffer: Option<usize>,
    },
    /// A channel concat whose writers wrote into its buffer (`concat_in_place`): input
    /// `buffer`'s value is the buffer, `copies` write the other inputs into it.
    ConcatInPlace {
        buffer: usize,
        copies: Vec<(usize, IntoConcatOp)>,
        blocked: bool,
    },
    ChannelShuffle(usize),
    ChannelSlice {
        start: usize,
        end: usize,
    },
    Flatten,
    /// A fully connected layer on the packed kernels (inference, f32, CPU): a 1x1 conv
    /// over one image whose pixels are the batch.
    PackedLinear(Arc<PackedConvOp>),
    /// `weight_t` is `[in, out]`, so the forward is one matmul.
    Linear {
        weight_t: Tensor,
        bias: Option<Tensor>,
    },
    /// Training-time dropout: a mask per step from the seeded stream.
    Dropout(f64),
    Softmax,
}

impl Layer {
    /// The packed conv this layer runs, if it runs one on its own input.
    pub fn packed_conv(&self) -> Option<&Arc<PackedConvOp>> {
        match self {
            Layer::PackedConv(op) | Layer::PackedConvAdd { op, .. } => Some(op),
            Layer::PackedConvIntoConcat { op, .. } => op.conv(),
            _ => None,
        }
    }

    /// A channel concat's packed kernel, as `--layers` names it.
    pub fn concat_kernel(&self) -> Option<&'static str> {
        match self {
            Layer::PackedConcat(op) => Some(op.name()),
            Layer::ConcatInPlace { copies, blocked, .. } => Some(concat_in_place::concat_name(copies.len(), *blocked)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Inference { fold_batch_norm: bool },
    Training,
}

/// A net lowered onto one device at one dtype.
pub struct Lowered {
    pub net: Net,
    pub phase: Phase,
    pub device: Device,
    pub dtype: DType,
    pub layers: Vec<Layer>,
    /// Index of the last node that reads each node's output (outputs: `nodes.len()`).
    last_use: Vec<usize>,
    pub folded_batch_norms: usize,
    /// Constant scales folded into the conv before them (inference, where folding is on).
    pub folded_scales: usize,
    /// How the convs run: `Packed` only where it applies (CPU, f32; in training the
    /// `TrainConv` ops, forward and both gradients).
    pub conv_algorithm: ConvAlgorithm,
    /// Activations fused into the conv or two-input add before them (packed path only).
    pub fused_activations: usize,
    /// Residual adds fused into the conv feeding them (packed path only).
    pub fused_residual_adds: usize,
    /// Of those, the ones whose conv writes into the residual's buffer.
    pub residual_adds_in_place: usize,
    /// 1x1 expansions run fused with the depthwise conv after them (packed path only).
    pub fused_expansions: usize,
    /// Packed convs that read or write blocked tensors (`block_tensors`).
    pub blocked_convs: usize,
    /// Channel concats whose packed convs write into their buffer (`concat_in_place`).
    pub concats_in_place: usize,
    /// Where a batch can be split (see [`Lowered::batch_split`]); empty when splitting is off.
    cuts: Vec<Cut>,
    /// The conv threads a split batch's images are shared among.
    split_threads: usize,
}

/// A node every path from input to output goes through, with the per-image output bytes
/// the batch split weighs: the widest output up to it and the widest after it.
#[derive(Debug, Clone, Copy)]
struct Cut {
    node: usize,
    widest_before: u64,
    widest_after: u64,
}

/// How the packed CPU path runs a batch: nodes `..=cut` in sub-batches of `sub_batch`
/// images (their activations stay in cache), the rest at the full batch (the weights
/// of the deep, small layers read once for all images).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSplit {
    pub cut: usize,
    pub sub_batch: usize,
}

/// Activation bytes a layer's output should stay within for the batch split: at the full
/// batch after the cut, per conv thread before it. Set at a quarter of the 32 MiB L3 of the
/// 2-vCPU Zen 4 host it was first measured on; on the 2-vCPU Xeon (2 MiB L2 per core, 260
/// MiB L3) 4 and 16 MiB did no better (benches/peers/RESULTS.md section 14).
pub const SPLIT_BUDGET_BYTES: u64 = 8 << 20;

/// `SYNPROF_CPU_BATCH_SPLIT=off` runs every batch whole (for side-by-side measurements).
fn batch_split_enabled() -> bool {
    !super::switched_off("SYNPROF_CPU_BATCH_SPLIT")
}

/// Nodes no edge jumps over (every path goes through them), none after the first output,
/// with their widest per-image f32 outputs up to and after them. The widest after leaves
/// out the stretches between cut nodes whose weights outweigh their widest per-image output
/// (those run whole whatever their activations: [`Lowered::batch_split`]).
fn cut_nodes(net: &Net) -> Vec<Cut> {
    let n = net.nodes.len();
    let bytes: Vec<u64> = net.nodes.iter().map(|x| x.shape.elements() * 4).collect();
    let mut reach = 0usize;
    let mut cut_ids = Vec::new();
    let first_output = net.outputs.iter().copied().min().unwrap_or(n);
    let mut last_read = vec![0usize; n];
    for (i, node) in net.nodes.iter().enumerate() {
        for &p in &node.inputs {
            last_read[p] = last_read[p].max(i);
        }
    }
    for (i, &last) in last_read.iter().enumerate() {
        if reach <= i && i <= first_output {
            cut_ids.push(i);
        }
        reach = reach.max(last);
    }
    // Per node, the bytes that count against the budget at the full batch: none in a heavy
    // stretch. A stretch without weights (the activation after a residual add) goes with
    // the one before it.
    let mut whole_bytes = bytes.clone();
    let (mut start, mut heavy) = (0, false);
    for end in cut_ids.iter().map(|&c| c + 1).chain([n]) {
        if end <= start {
            continue;
        }
        let weight_bytes: u64 = (start..end).map(|i| node_cost(net, &net.nodes[i]).params * 4).sum();
        if weight_bytes > 0 {
            heavy = weight_bytes > bytes[start..end].iter().copied().max().unwrap_or(0);
        }
        if heavy {
            whole_bytes[start..end].fill(0);
        }
        start = end;
    }
    let mut widest_after = vec![0u64; n + 1];
    for i in (0..n).rev() {
        widest_after[i] = widest_after[i + 1].max(whole_bytes[i]);
    }
    let widest_before: Vec<u64> = bytes
        .iter()
        .scan(0u64, |widest, &b| {
            *widest = (*widest).max(b);
            Some(*widest)
        })
        .collect();
    cut_ids
        .into_iter()
        .map(|i| Cut { node: i, widest_before: widest_before[i], widest_after: widest_after[i + 1] })
        .collect()
}

fn err(node: &str, e: impl std::fmt::Display) -> ExecError {
    ExecError::at(node, e.to_string())
}

fn upload(t: &HostTensor, device: &Device, dtype: DType) -> candle_core::Result<Tensor> {
    Tensor::from_slice(&t.data, t.shape.as_slice(), device)?.to_dtype(dtype)
}

fn per_channel(values: &[f32], device: &Device, dtype: DType) -> candle_core::Result<Tensor> {
    Tensor::from_slice(values, (1, values.len(), 1, 1), device)?.to_dtype(dtype)
}

/// The conv feeding a batch-norm, if folding is exact: the conv's only reader is that
/// batch-norm and the conv is not an output.
fn foldable_conv(net: &Net, readers: &[usize], bn: usize) -> Option<usize> {
    let src = *net.nodes[bn].inputs.first()?;
    let is_conv = matches!(net.nodes[src].op, Op::Conv2d(_));
    (is_conv && readers[src] == 1 && !net.outputs.contains(&src)).then_some(src)
}

/// The conv whose output constant scale `scale` multiplies, if folding is exact up to
/// rounding: the scale reads the conv (or the batch-norm folded into it) alone, and that
/// value is not an output. Inception-ResNet scales each block's last conv before its
/// residual add; folded, the add and its ReLU fuse into the conv as well.
fn scalable_conv(net: &Net, readers: &[usize], folded_into: &[Option<usize>], scale: usize) -> Option<usize> {
    let src = *net.nodes[scale].inputs.first()?;
    if readers[src] != 1 || net.outputs.contains(&src) {
        return None;
    }
    match net.nodes[src].op {
        Op::Conv2d(_) => Some(src),
        _ => folded_into[src],
    }
}

/// A conv's (folded) weight and bias times `factor`.
fn scale_folded(mut weight: HostTensor, mut bias: HostTensor, factor: f64) -> (HostTensor, HostTensor) {
    weight.data.iter_mut().chain(bias.data.iter_mut()).for_each(|v| *v = (*v as f64 * factor) as f32);
    (weight, bias)
}

/// `w * gamma / sqrt(var + eps)` per output channel; bias `(b - mean) * that + beta`.
fn fold(conv: &NodeParams, bn: &NodeParams) -> (HostTensor, HostTensor) {
    let (NodeParams::Conv { weight, bias }, NodeParams::BatchNorm { gamma, beta, mean, var, eps }) = (conv, bn) else {
        unreachable!("fold() is called on a conv and its batch-norm")
    };
    let out = weight.shape[0];
    let per_out = weight.data.len() / out;
    let mut w = weight.clone();
    let mut b = HostTensor { shape: vec![out], data: vec![0.0; out] };
    for o in 0..out {
        let s = gamma.data[o] as f64 / (var.data[o] as f64 + eps).sqrt();
        for v in &mut w.data[o * per_out..(o + 1) * per_out] {
            *v = (*v as f64 * s) as f32;
        }
        let b0 = bias.as_ref().map_or(0.0, |b| b.data[o] as f64);
        b.data[o] = ((b0 - mean.data[o] as f64) * s + beta.data[o] as f64) as f32;
    }
    (w, b)
}

fn conv_plan(c: &Conv2d, phase: Phase) -> Result<ConvPlan, String> {
    if c.dilation[0] != c.dilation[1] {
        return Err(format!("dilation {:?} differs between height and width; candle's conv2d takes one", c.dilation));
    }
    let p = c.padding;
    let uniform = p.top == p.bottom && p.left == p.right && p.top == p.left;
    let (pre_pad, padding) = if uniform { (None, p.top) } else { (Some(p), 0) };
    let (stride, subsample) = if c.stride[0] == c.stride[1] { (c.stride[0], None) } else { (1, Some(c.stride)) };
    let crop_to_reach = phase == Phase::Training && stride > 1;
    let (pre_pad, padding) = if crop_to_reach { (Some(p), 0) } else { (pre_pad, padding) };
    Ok(ConvPlan { pre_pad, padding, stride, subsample, dilation: c.dilation[0], groups: c.groups, crop_to_reach })
}

/// A pool's window on the packed path, for an output of `out_hw`.
fn window_of(p: &Pool2d, out_hw: [usize; 2]) -> super::cpu::PoolSpec {
    super::cpu::PoolSpec { kernel: p.kernel, stride: p.stride, pad_before: [p.padding.top, p.padding.left], out_hw }
}

/// An average pool on the packed path, for an output of `out_hw`.
fn avg_spec_of(p: &Pool2d, out_hw: [usize; 2]) -> super::cpu::AvgPoolSpec {
    super::cpu::AvgPoolSpec {
        window: window_of(p, out_hw),
        pad_after: [p.padding.bottom, p.padding.right],
        count_include_pad: p.count_include_pad,
    }
}

/// PyTorch's average-pool divisor per output position (see `reference::pool`): the packed
/// pool's row factor times its column factor (`cpu::AvgPoolSpec::divisors`).
fn avg_divisors(p: &Pool2d, in_hw: [usize; 2], out_hw: [usize; 2]) -> Vec<f32> {
    let spec = avg_spec_of(p, out_hw);
    let (rows, cols) = (spec.divisors(0, in_hw[0]), spec.divisors(1, in_hw[1]));
    rows.iter().flat_map(|r| cols.iter().map(move |c| r * c)).collect()
}

fn pool_plan(
    p: &Pool2d,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    avg: bool,
    device: &Device,
    dtype: DType,
) -> candle_core::Result<PoolPlan> {
    // Trailing padding so that candle's floor rounding gives the (possibly ceil) size.
    let needed = |a: usize| (out_hw[a] - 1) * p.stride[a] + p.kernel[a];
    let have = [in_hw[0] + p.padding.top + p.padding.bottom, in_hw[1] + p.padding.left + p.padding.right];
    let extra = [needed(0).saturating_sub(have[0]), needed(1).saturating_sub(have[1])];
    let pad = Padding { bottom: p.padding.bottom + extra[0], right: p.padding.right + extra[1], ..p.padding };
    let rescale = if avg {
        let window = (p.kernel[0] * p.kernel[1]) as f32;
        let divisors = avg_divisors(p, in_hw, out_hw);
        if divisors.iter().all(|&d| d == window) {
            None
        } else {
            let factors: Vec<f32> = divisors.iter().map(|&d| window / d).collect();
            Some(Tensor::from_vec(factors, (1, 1, out_hw[0], out_hw[1]), device)?.to_dtype(dtype)?)
        }
    } else {
        None
    };
    Ok(PoolPlan { pad, kernel: p.kernel, stride: p.stride, rescale })
}

impl Lowered {
    /// Upload weights and plan every node, convs as [`ConvAlgorithm::from_env`] says.
    pub fn new(
        net: &Net,
        weights: &Weights,
        device: &Device,
        dtype: DType,
        phase: Phase,
    ) -> Result<Lowered, ExecError> {
        Lowered::with_conv(net, weights, device, dtype, phase, ConvAlgorithm::from_env()?)
    }

    /// Upload weights and plan every node; `conv` applies to inference at f32 on the CPU
    /// (elsewhere convs are candle's).
    pub fn with_conv(
        net: &Net,
        weights: &Weights,
        device: &Device,
        dtype: DType,
        phase: Phase,
        conv: ConvAlgorithm,
    ) -> Result<Lowered, ExecError> {
        let n = net.nodes.len();
        let mut readers = vec![0usize; n];
        let mut last_use: Vec<usize> = (0..n).collect();
        for (i, node) in net.nodes.iter().enumerate() {
            for &p in &node.inputs {
                readers[p] += 1;
                last_use[p] = i;
            }
        }
        for &o in &net.outputs {
            last_use[o] = n;
        }
        let fold_enabled = matches!(phase, Phase::Inference { fold_batch_norm: true });
        // conv node -> folded (weight, bias); folded node (batch-norm or constant scale) -> its conv
        let mut folded: std::collections::HashMap<usize, (HostTensor, HostTensor)> = Default::default();
        let mut folded_into: Vec<Option<usize>> = vec![None; n];
        if fold_enabled {
            for (i, node) in net.nodes.iter().enumerate() {
                match node.op {
                    Op::BatchNorm { .. } => {
                        let Some(conv) = foldable_conv(net, &readers, i) else { continue };
                        let (Some(cp), Some(bp)) = (weights.get(&net.nodes[conv].name), weights.get(&node.name)) else {
                            continue;
                        };
                        folded.insert(conv, fold(cp, bp));
                        folded_into[i] = Some(conv);
                    }
                    Op::Scale { factor } => {
                        let Some(conv) = scalable_conv(net, &readers, &folded_into, i) else { continue };
                        let (w, b) = match folded.remove(&conv) {
                            Some(wb) => wb,
                            None => match weights.get(&net.nodes[conv].name) {
                                Some(NodeParams::Conv { weight, bias }) => {
                                    let out = weight.shape[0];
                                    let zeros = || HostTensor { shape: vec![out], data: vec![0.0; out] };
                                    (weight.clone(), bias.clone().unwrap_or_else(zeros))
                                }
                                _ => continue,
                            },
                        };
                        folded.insert(conv, scale_folded(w, b, factor));
                        folded_into[i] = Some(conv);
                    }
                    _ => {}
                }
            }
        }
        let packed = conv == ConvAlgorithm::Packed
            && device.is_cpu()
            && dtype == DType::F32
            && matches!(phase, Phase::Inference { .. });
        let threads = if packed { Some(conv_threads()?) } else { None };
        let packed_training =
            conv == ConvAlgorithm::Packed && device.is_cpu() && dtype == DType::F32 && phase == Phase::Training;
        // conv or two-input add node -> the activation fused into it; the fused activation nodes
        let mut epilogues: std::collections::HashMap<usize, Epilogue> = Default::default();
        let mut fused_acts = vec![false; n];
        if packed || packed_training {
            for (i, node) in net.nodes.iter().enumerate() {
                let of = if packed { inference_epilogue_of } else { epilogue_of };
                let Some(epilogue) = of(&node.op) else { continue };
                let Some(&p) = node.inputs.first() else { continue };
                if readers[p] != 1 || net.outputs.contains(&p) {
                    continue;
                }
                // a folded batch-norm's or scale's conv has it as its only reader (see
                // foldable_conv and scalable_conv)
                let producer = match (folded_into[p], &net.nodes[p].op) {
                    (Some(conv), _) => conv,
                    (None, Op::Conv2d(_)) if packed => p,
                    (None, Op::Add) if net.nodes[p].inputs.len() == 2 => p,
                    // an unfolded inference batch-norm runs as AffineAct, a training one as
                    // the batch-norm op with its activation (`exec::cpu::batch_norm_train`)
                    (None, Op::BatchNorm { .. }) if net.nodes[p].shape.rank() == 3 => p,
                    _ => continue,
                };
                epilogues.insert(producer, epilogue);
                fused_acts[i] = true;
            }
        }
        // Residual adds fused into the conv on one side: conv node -> residual node, and
        // add node -> its input slot that passes the conv's output on.
        let mut residual_of: std::collections::HashMap<usize, usize> = Default::default();
        let mut add_passes: std::collections::HashMap<usize, usize> = Default::default();
        if packed {
            for i in 0..n {
                if let Some((slot, conv, residual)) = residual_fusion(net, &readers, &folded_into, i) {
                    residual_of.insert(conv, residual);
                    add_passes.insert(i, slot);
                    if let Some(act) = epilogues.remove(&i) {
                        epilogues.insert(conv, act);
                    }
                }
            }
        }
        let mut layers = Vec::with_capacity(n);
        for (i, node) in net.nodes.iter().enumerate() {
            let name = node.name.as_str();
            let params =
                || weights.get(name).ok_or_else(|| ExecError::at(name, "no parameters for this node in the weights"));
            let in_hw = |k: usize| net.nodes[node.inputs[k]].shape.hw().unwrap_or([1, 1]);
            let layer = match &node.op {
                Op::Input { .. } => Layer::Input,
                Op::Conv2d(c) if packed => {
                    let (weight, bias) = match folded.remove(&i) {
                        Some((w, b)) => (w.data, Some(b.data)),
                        None => match params()? {
                            NodeParams::Conv { weight, bias } => {
                                (weight.data.clone(), bias.as_ref().map(|b| b.data.clone()))
                            }
                            _ => return Err(ExecError::at(name, "expected conv parameters")),
                        },
                    };
                    let in_channels = net.nodes[node.inputs[0]].shape.channels();
                    let spec = ConvSpec::from_graph(c, in_channels);
                    let epilogue = epilogues.get(&i).copied().unwrap_or_default();
                    let conv = PackedConv::new(&weight, bias.as_deref(), spec, epilogue).map_err(|e| err(name, e))?;
                    let threads = threads.ok_or_else(|| ExecError::at(name, "no conv thread pool"))?;
                    let op = Arc::new(PackedConvOp { conv, threads, layouts: Layouts::NCHW });
                    match residual_of.get(&i) {
                        Some(&residual) => Layer::PackedConvAdd { op, residual, in_place: false },
                        None => Layer::PackedConv(op),
                    }
                }
                _ if fused_acts[i] => Layer::Identity,
                Op::Add if add_passes.contains_key(&i) => Layer::PassInput(add_passes[&i]),
                Op::Add if (packed || packed_training) && node.inputs.len() == 2 => {
                    let act = epilogues.get(&i).copied().unwrap_or_default();
                    let threads = match threads {
                        Some(t) => t,
                        None => conv_threads()?,
                    };
                    Layer::AddAct(Arc::new(AddActOp { act, threads }))
                }
                Op::Conv2d(c) => {
                    let plan = conv_plan(c, phase).map_err(|m| ExecError::at(name, m))?;
                    let (weight, bias) = match folded.remove(&i) {
                        Some((w, b)) => (upload(&w, device, dtype), Some(upload(&b, device, dtype))),
                        None => match params()? {
                            NodeParams::Conv { weight, bias } => {
                                (upload(weight, device, dtype), bias.as_ref().map(|b| upload(b, device, dtype)))
                            }
                            _ => return Err(ExecError::at(name, "expected conv parameters")),
                        },
                    };
                    let weight = weight.map_err(|e| err(name, e))?;
                    let bias = bias.transpose().map_err(|e| err(name, e))?;
                    let train = match packed_training {
                        true => {
                            let spec = ConvSpec::from_graph(c, net.nodes[node.inputs[0]].shape.channels());
                            Some(TrainConv::new(spec, conv_threads()?))
                        }
                        false => None,
                    };
                    Layer::Conv { weight, bias, plan, train }
                }
                Op::BatchNorm { .. } | Op::Scale { .. } if folded_into[i].is_some() => Layer::Identity,
                Op::BatchNorm { .. } => {
                    let NodeParams::BatchNorm { gamma, beta, mean, var, eps } = params()? else {
                        return Err(ExecError::at(name, "expected batch-norm parameters"));
                    };
                    match phase {
                        Phase::Training => Layer::BatchNormTrain(BatchNormTrain {
                            gamma: per_channel(&gamma.data, device, dtype).map_err(|e| err(name, e))?,
                            beta: per_channel(&beta.data, device, dtype).map_err(|e| err(name, e))?,
                            eps: *eps,
                            act: epilogues.get(&i).copied().unwrap_or_default(),
                        }),
                        Phase::Inference { .. } => {
                            let scale: Vec<f32> = (0..gamma.data.len())
                                .map(|c| (gamma.data[c] as f64 / (var.data[c] as f64 + eps).sqrt()) as f32)
                                .collect();
                            let shift: Vec<f32> =
                                (0..gamma.data.len()).map(|c| beta.data[c] - mean.data[c] * scale[c]).collect();
                            if let (true, Some(threads)) = (node.shape.rank() == 3, threads) {
                                let act = epilogues.get(&i).copied().unwrap_or_default();
                                Layer::AffineAct(Arc::new(AffineActOp { scale, shift, act, threads }))
                            } else {
                                Layer::Affine {
                                    scale: per_channel(&scale, device, dtype).map_err(|e| err(name, e))?,
                                    shift: per_channel(&shift, device, dtype).map_err(|e| err(name, e))?,
                                }
                            }
                        }
                    }
                }
                op if op.is_activation() => match (threads, inference_epilogue_of(op)) {
                    (Some(threads), Some(act)) => Layer::Act(Arc::new(ActOp { act, threads })),
                    _ => Layer::Activation(op.clone()),
                },
                Op::MaxPool2d(p) if (threads.is_some() || packed_training) && node.shape.hw().is_some() => {
                    let spec = window_of(p, node.shape.hw().unwrap_or([1, 1]));
                    let threads = match threads {
                        Some(t) => t,
                        None => conv_threads()?,
                    };
                    Layer::PackedPool(Arc::new(PackedPoolOp { pool: PackedPool::Max(spec), threads }))
                }
                Op::MaxPool2d(p) => Layer::MaxPool(
                    pool_plan(p, in_hw(0), node.shape.hw().unwrap_or([1, 1]), false, device, dtype)
                        .map_err(|e| err(name, e))?,
                ),
                Op::AvgPool2d(p) if node.shape.hw().is_some() && threads.is_some() => {
                    let threads = threads.ok_or_else(|| ExecError::at(name, "no conv thread pool"))?;
                    let spec = avg_spec_of(p, node.shape.hw().unwrap_or([1, 1]));
                    Layer::PackedPool(Arc::new(PackedPoolOp { pool: PackedPool::Avg(spec), threads }))
                }
                Op::AvgPool2d(p) => Layer::AvgPool(
                    pool_plan(p, in_hw(0), node.shape.hw().unwrap_or([1, 1]), true, device, dtype)
                        .map_err(|e| err(name, e))?,
                ),
                Op::GlobalAvgPool if threads.is_some() && node.shape.hw().is_some() => {
                    let threads = threads.ok_or_else(|| ExecError::at(name, "no conv thread pool"))?;
                    Layer::PackedPool(Arc::new(PackedPoolOp { pool: PackedPool::GlobalAvg, threads }))
                }
                Op::GlobalAvgPool => Layer::GlobalAvgPool,
                Op::Lrn { size, alpha, beta, k } => Layer::Lrn { size: *size, alpha: *alpha, beta: *beta, k: *k },
                Op::Add => Layer::Add,
                Op::Mul if threads.is_some() => {
                    let threads = threads.ok_or_else(|| ExecError::at(name, "no conv thread pool"))?;
                    let shape = |k: usize| &net.nodes[node.inputs[k]].shape;
                    // One input [c, h, w], the other [c, 1, 1]: a per-channel scale.
                    let per_channel = |x: &crate::graph::Shape, s: &crate::graph::Shape| {
                        x.rank() == 3 && s.rank() == 3 && s.dims()[0] == x.dims()[0] && s.dims()[1..] == [1, 1]
                    };
                    match node.inputs.len() {
                        2 if per_channel(shape(0), shape(1)) => Layer::ChannelScale(Arc::new(ChannelScaleOp {
                            scale_first: false,
                            blocked: false,
                            threads,
                        })),
                        2 if per_channel(shape(1), shape(0)) => {
                            Layer::ChannelScale(Arc::new(ChannelScaleOp { scale_first: true, blocked: false, threads }))
                        }
                        _ => Layer::Mul,
                    }
                }
                Op::Mul => Layer::Mul,
                Op::Scale { factor } => Layer::Scale(*factor),
                Op::Concat { axis: 1 } if threads.is_some() && node.shape.rank() == 3 => {
                    let threads = threads.ok_or_else(|| ExecError::at(name, "no conv thread pool"))?;
                    Layer::PackedConcat(Arc::new(ConcatOp { affine: None, blocked: false, threads }))
                }
                Op::Concat { axis } => Layer::Concat(*axis),
                Op::ChannelShuffle { groups } => Layer::ChannelShuffle(*groups),
                Op::ChannelSlice { start, end } => Layer::ChannelSlice { start: *start, end: *end },
                Op::Flatten => Layer::Flatten,
                Op::Linear { out_features, .. } if packed => {
                    let NodeParams::Linear { weight, bias } = params()? else {
                        return Err(ExecError::at(name, "expected linear parameters"));
                    };
                    let in_features = weight.data.len() / (*out_features).max(1);
                    let spec = ConvSpec::new(in_features, *out_features, [1, 1]);
                    let bias = bias.as_ref().map(|b| b.data.as_slice());
                    let conv = PackedConv::new(&weight.data, bias, spec, Epilogue::None).map_err(|e| err(name, e))?;
                    let threads = threads.ok_or_else(|| ExecError::at(name, "no conv thread pool"))?;
                    Layer::PackedLinear(Arc::new(PackedConvOp { conv, threads, layouts: Layouts::NCHW }))
                }
                Op::Linear { .. } => {
                    let NodeParams::Linear { weight, bias } = params()? else {
                        return Err(ExecError::at(name, "expected linear parameters"));
                    };
                    let weight_t =
                        upload(weight, device, dtype).and_then(|w| w.t()?.contiguous()).map_err(|e| err(name, e))?;
                    let bias = bias.as_ref().map(|b| upload(b, device, dtype)).transpose().map_err(|e| err(name, e))?;
                    Layer::Linear { weight_t, bias }
                }
                Op::Dropout { p } => match phase {
                    Phase::Training if *p > 0.0 => Layer::Dropout(*p),
                    _ => Layer::Identity,
                },
                Op::Softmax => Layer::Softmax,
                // activations are matched by the guard above
                other => return Err(ExecError::at(name, format!("{} cannot be lowered", other.type_name()))),
            };
            layers.push(layer);
        }
        let fused_expansions = if packed { fuse_expansions(net, &readers, &mut layers) } else { 0 };
        fuse_concat_norms(net, &readers, &mut layers);
        residual_in_place(net, &mut layers);
        let residual_adds_in_place = layers_in_place(&layers);
        let blocked_convs = if packed { block_tensors(net, &mut layers)? } else { 0 };
        let concats_in_place = if packed { concat_in_place::concats_in_place(net, &readers, &mut layers) } else { 0 };
        let folded_count = |bn: bool| {
            let is_bn = |i: usize| matches!(net.nodes[i].op, Op::BatchNorm { .. });
            (0..n).filter(|&i| folded_into[i].is_some() && is_bn(i) == bn).count()
        };
        let (folded_batch_norms, folded_scales) = (folded_count(true), folded_count(false));
        Ok(Lowered {
            net: net.clone(),
            phase,
            device: device.clone(),
            dtype,
            layers,
            last_use,
            folded_batch_norms,
            folded_scales,
            conv_algorithm: if packed || packed_training { ConvAlgorithm::Packed } else { ConvAlgorithm::Candle },
            fused_activations: fused_acts.iter().filter(|&&f| f).count(),
            fused_residual_adds: add_passes.len(),
            fused_expansions,
            residual_adds_in_place,
            blocked_convs,
            concats_in_place,
            cuts: if packed && batch_split_enabled() { cut_nodes(net) } else { Vec::new() },
            split_threads: threads.map_or(1, Threads::count),
        })
    }

    /// Packed convs that run as Winograd F(2x2, 3x3) or F(4x4, 3x3) at `batch` (`exec::cpu::winograd`),
    /// given the per-image shapes of `analysis` (nodes before a batch split's cut run at
    /// its sub-batch).
    pub fn winograd_convs(&self, batch: usize, analysis: &crate::analysis::Analysis) -> usize {
        self.conv_kernels(batch, analysis).iter().flatten().filter(|k| k.starts_with("winograd")).count()
    }

    /// Per node, the packed CPU kernel its conv runs on at `batch` in its layouts
    /// (`PackedConv::kernel_in`; "expansion + depthwise" for a fused pair), given the
    /// per-image shapes of `analysis`, or its packed pool's name; `None` for the other nodes.
    pub fn conv_kernels(&self, batch: usize, analysis: &crate::analysis::Analysis) -> Vec<Option<String>> {
        let split = self.batch_split(batch);
        (0..self.layers.len())
            .map(|i| {
                let layer = &self.layers[i];
                let op = match layer {
                    Layer::PackedExpandDepthwise(_) => return Some("expansion + depthwise".to_string()),
                    Layer::PackedPool(op) => {
                        return Some(
                            candle_core::CustomOp1::name(op.as_ref()).trim_start_matches("packed-").to_string(),
                        )
                    }
                    _ => match (layer.packed_conv(), layer.concat_kernel()) {
                        (Some(op), _) => op,
                        (None, concat) => return concat.map(str::to_string),
                    },
                };
                let &input = self.net.nodes[i].inputs.first()?;
                let [h, w] = analysis.layers[input].output_shape.hw()?;
                let n = split.filter(|s| i <= s.cut).map_or(batch, |s| s.sub_batch);
                Some(op.conv().kernel_in(op.layouts(), n, h, w))
            })
            .collect()
    }

    /// The expansion conv node whose work node `node` does (a fused expansion and depthwise
    /// conv), if any.
    pub fn fused_expansion(&self, node: usize) -> Option<usize> {
        match self.layers.get(node)? {
            Layer::PackedExpandDepthwise(op) => Some(op.expand_node),
            _ => None,
        }
    }

    /// The conv threads a split batch's sub-batches are sized for ([`Lowered::batch_split`]).
    pub fn split_threads(&self) -> usize {
        self.split_threads
    }

    /// How a batch of `batch` images runs on the packed CPU path: split where the
    /// activations of the whole batch would not stay in cache.
    ///
    /// * The cut is the earliest cut node after which every node's output for the whole
    ///   batch is within [`SPLIT_BUDGET_BYTES`], leaving out the stretches whose weights
    ///   outweigh one image's widest activation (`cut_nodes`): each sub-batch would read
    ///   those weights again, and they cost more than the activations the split keeps in
    ///   cache (ResNet-50's layer3 and layer4).
    /// * The nodes up to it run in sub-batches of whole images per conv thread: as many
    ///   per thread as fit the budget beside their widest output, at least one. A thread
    ///   then works on its own images; a sub-batch smaller than the thread count makes the
    ///   threads share each image and its activations cross between cores.
    ///
    /// Measured on the 2-vCPU Xeon (benches/peers/RESULTS.md section 14): ResNet-50 at
    /// batch 16 cut after layer2 in sub-batches of 4, MobileNetV2 after blocks.7 in
    /// sub-batches of 2, each the fastest of the cuts and sub-batches tried.
    /// `None`: the batch runs whole.
    pub fn batch_split(&self, batch: usize) -> Option<BatchSplit> {
        self.batch_split_for(batch, self.split_threads)
    }

    /// [`Lowered::batch_split`] as it would be on `threads` conv threads.
    pub fn batch_split_for(&self, batch: usize, threads: usize) -> Option<BatchSplit> {
        if batch <= 1 {
            return None;
        }
        let cut = self.cuts.iter().find(|c| c.widest_after * batch as u64 <= SPLIT_BUDGET_BYTES)?;
        let per_thread = (SPLIT_BUDGET_BYTES / cut.widest_before.max(1)).max(1) as usize;
        let sub_batch = (per_thread * threads.max(1)).min(batch);
        (sub_batch < batch && cut.node > 0).then_some(BatchSplit { cut: cut.node, sub_batch })
    }

    /// Run the net; returns the outputs in `net.outputs` order. `step` feeds dropout masks
    /// at training time (ignored at inference).
    pub fn forward(
        &self,
        input: &Tensor,
        dropout: &mut dyn FnMut(&Tensor, f64) -> candle_core::Result<Tensor>,
    ) -> Result<Vec<Tensor>, ExecError> {
        self.run_whole(input, dropout, None)
    }

    /// Every node at the batch given; the outputs in `net.outputs` order.
    fn run_whole(
        &self,
        input: &Tensor,
        dropout: &mut dyn FnMut(&Tensor, f64) -> candle_core::Result<Tensor>,
        times: Option<&mut NodeTimes>,
    ) -> Result<Vec<Tensor>, ExecError> {
        let mut values: Vec<Option<Tensor>> = vec![None; self.layers.len()];
        self.run_nodes(0..self.layers.len(), input, &mut values, dropout, times)?;
        Ok(self.outputs(&values))
    }

    /// The net's outputs among the computed `values`, in `net.outputs` order.
    fn outputs(&self, values: &[Option<Tensor>]) -> Vec<Tensor> {
        self.net.outputs.iter().map(|&o| values[o].clone().expect("outputs are kept")).collect()
    }

    /// Run nodes `range` in order; each value is dropped after its last reader. With
    /// `times`, each node's wall time (the device synchronised after it) and the conv
    /// threads' busy time in it are added to its entries.
    fn run_nodes(
        &self,
        range: std::ops::Range<usize>,
        input: &Tensor,
        values: &mut [Option<Tensor>],
        dropout: &mut dyn FnMut(&Tensor, f64) -> candle_core::Result<Tensor>,
        mut times: Option<&mut NodeTimes>,
    ) -> Result<(), ExecError> {
        let busy_ns = || packed_pools().map(Threads::busy_ns).sum::<u64>();
        for i in range {
            let node = &self.net.nodes[i];
            let inputs = self.layer_inputs(i, values);
            let busy = times.is_some().then(busy_ns);
            let start = std::time::Instant::now();
            let out = self.run_layer(i, input, &inputs, dropout).map_err(|e| err(&node.name, e))?;
            if let Some(t) = times.as_deref_mut() {
                super::device::synchronize(&self.device).map_err(|e| ExecError::at(&node.name, e.to_string()))?;
                t.wall_ms[i] += start.elapsed().as_secs_f64() * 1e3;
                t.busy_ms[i] += busy_ns().saturating_sub(busy.unwrap_or(0)) as f64 / 1e6;
            }
            values[i] = Some(out);
            self.release_inputs(i, values);
        }
        Ok(())
    }

    /// Drop the values node `i` was the last to read (so a buffer is freed, and its memory
    /// reused, exactly where the model no longer needs it).
    pub fn release_inputs(&self, i: usize, values: &mut [Option<Tensor>]) {
        for &p in &self.net.nodes[i].inputs {
            if self.last_use[p] == i {
                values[p] = None;
            }
        }
    }

    /// [`Lowered::infer`], adding each node's times to `times` ([`NodeTimes`]): the
    /// per-layer view of the same run, batch split included (a node before the cut runs
    /// once per sub-batch; its times add up). The conv threads time their work items
    /// meanwhile.
    pub fn infer_timed(&self, input: &Tensor, times: &mut NodeTimes) -> Result<Vec<Tensor>, ExecError> {
        assert_eq!(times.wall_ms.len(), self.layers.len(), "one time per node");
        assert_eq!(times.busy_ms.len(), self.layers.len(), "one busy time per node");
        packed_pools().for_each(|p| p.set_item_timing(true));
        let outputs = self.infer_with(input, Some(times));
        packed_pools().for_each(|p| p.set_item_timing(false));
        outputs
    }

    /// Inference, split where [`Lowered::batch_split`] says, timing each node into `times`
    /// when given.
    fn infer_with(&self, input: &Tensor, times: Option<&mut NodeTimes>) -> Result<Vec<Tensor>, ExecError> {
        match self.batch_split(input.dim(0)?) {
            Some(split) => self.infer_split(input, split, times),
            None => self.run_whole(input, &mut |x, _| Ok(x.clone()), times),
        }
    }

    /// Inference with the batch split as `split` says: nodes up to the cut per sub-batch,
    /// their outputs at the cut joined, the rest at the full batch.
    fn infer_split(
        &self,
        input: &Tensor,
        split: BatchSplit,
        mut times: Option<&mut NodeTimes>,
    ) -> Result<Vec<Tensor>, ExecError> {
        let n = self.layers.len();
        let batch = input.dim(0)?;
        let mut identity = |x: &Tensor, _: f64| Ok(x.clone());
        let mut parts = Vec::with_capacity(batch.div_ceil(split.sub_batch));
        for start in (0..batch).step_by(split.sub_batch.max(1)) {
            let images = input.narrow(0, start, split.sub_batch.min(batch - start))?;
            let mut values: Vec<Option<Tensor>> = vec![None; n];
            self.run_nodes(0..split.cut + 1, &images, &mut values, &mut identity, times.as_deref_mut())?;
            parts.push(values[split.cut].take().expect("the cut is computed"));
        }
        let mut values: Vec<Option<Tensor>> = vec![None; n];
        values[split.cut] = Some(Tensor::cat(&parts, 0)?);
        drop(parts);
        self.run_nodes(split.cut + 1..n, input, &mut values, &mut identity, times)?;
        Ok(self.outputs(&values))
    }

    /// The values node `i`'s layer reads: its inputs, then a fused residual.
    pub fn layer_inputs<'v>(&self, i: usize, values: &'v [Option<Tensor>]) -> Vec<&'v Tensor> {
        let value = |p: usize| values[p].as_ref().expect("inputs are computed first");
        let mut inputs: Vec<&Tensor> = self.net.nodes[i].inputs.iter().map(|&p| value(p)).collect();
        match &self.layers[i] {
            Layer::PackedConvAdd { residual, .. } => inputs.push(value(*residual)),
            Layer::PackedConvIntoConcat { buffer: Some(b), .. } => inputs.push(value(*b)),
            _ => {}
        }
        inputs
    }

    /// One node's forward on already computed inputs ([`Lowered::layer_inputs`]).
    pub fn run_layer(
        &self,
        i: usize,
        net_input: &Tensor,
        inputs: &[&Tensor],
        dropout: &mut dyn FnMut(&Tensor, f64) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Tensor> {
        let x = || inputs[0];
        match &self.layers[i] {
            Layer::Input => Ok(net_input.clone()),
            Layer::Identity => Ok(x().clone()),
            Layer::Conv { weight, bias, train: Some(op), .. } => {
                let y = super::cpu::conv2d_train(x(), weight, op)?;
                match bias {
                    Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
                    None => Ok(y),
                }
            }
            Layer::Conv { weight, bias, plan, train: None } => conv(x(), weight, bias.as_ref(), plan),
            Layer::PackedConv(op) => x().contiguous()?.apply_op1_no_bwd(op.as_ref()),
            Layer::PackedConvIntoConcat { op, buffer: None } => x().contiguous()?.apply_op1_no_bwd(op.as_ref()),
            Layer::PackedConvIntoConcat { op, buffer: Some(_) } => {
                let buffer = inputs[inputs.len() - 1];
                buffer.inplace_op2(&x().contiguous()?, op.as_ref())?;
                Ok(buffer.clone())
            }
            Layer::PackedExpandDepthwise(op) => x().contiguous()?.apply_op1_no_bwd(op.as_ref()),
            Layer::PackedConvAdd { op, in_place, .. } => {
                let residual = inputs[inputs.len() - 1];
                if *in_place && residual.is_contiguous() {
                    residual.inplace_op2(&x().contiguous()?, op.as_ref())?;
                    Ok(residual.clone())
                } else {
                    x().contiguous()?.apply_op2_no_bwd(&residual.contiguous()?, op.as_ref())
                }
            }
            Layer::PassInput(k) => Ok(inputs[*k].clone()),
            Layer::PackedPool(op) if self.phase == Phase::Training => {
                x().contiguous()?.apply_op1(PackedPoolOp::clone(op))
            }
            Layer::PackedPool(op) => x().contiguous()?.apply_op1_no_bwd(op.as_ref()),
            Layer::AddAct(op) if self.phase == Phase::Training => {
                inputs[0].contiguous()?.apply_op2(&inputs[1].contiguous()?, AddActOp::clone(op))
            }
            Layer::AddAct(op) => inputs[0].contiguous()?.apply_op2_no_bwd(&inputs[1].contiguous()?, op.as_ref()),
            Layer::AffineAct(op) => x().contiguous()?.apply_op1_no_bwd(op.as_ref()),
            Layer::Act(op) => x().contiguous()?.apply_op1_no_bwd(op.as_ref()),
            Layer::Affine { scale, shift } => x().broadcast_mul(scale)?.broadcast_add(shift),
            Layer::BatchNormTrain(bn) => batch_norm_train(x(), bn),
            Layer::Activation(op) => activation(x(), op),
            // candle's pooling backward needs kernel == stride and divisible sizes: training
            // pools by shifted strided views instead, which autograd differentiates exactly.
            Layer::MaxPool(p) if self.phase == Phase::Training => pool_by_shifts(x(), p, true),
            Layer::AvgPool(p) if self.phase == Phase::Training => {
                let y = pool_by_shifts(x(), p, false)?;
                match &p.rescale {
                    Some(r) => y.broadcast_mul(r),
                    None => Ok(y),
                }
            }
            Layer::MaxPool(p) => {
                let padded = pad(x(), &p.pad, f64::NEG_INFINITY)?;
                padded.max_pool2d_with_stride((p.kernel[0], p.kernel[1]), (p.stride[0], p.stride[1]))
            }
            Layer::AvgPool(p) => {
                let padded = pad(x(), &p.pad, 0.0)?;
                let y = padded.avg_pool2d_with_stride((p.kernel[0], p.kernel[1]), (p.stride[0], p.stride[1]))?;
                match &p.rescale {
                    Some(r) => y.broadcast_mul(r),
                    None => Ok(y),
                }
            }
            Layer::GlobalAvgPool => x().mean_keepdim((2, 3)),
            Layer::Lrn { size, alpha, beta, k } => lrn(x(), *size, *alpha, *beta, *k),
            Layer::Add => {
                let mut acc = inputs[0].add(inputs[1])?;
                for more in &inputs[2..] {
                    acc = acc.add(more)?;
                }
                Ok(acc)
            }
            Layer::Mul => inputs[0].broadcast_mul(inputs[1]),
            Layer::ChannelScale(op) => inputs[0].contiguous()?.apply_op2_no_bwd(&inputs[1].contiguous()?, op.as_ref()),
            Layer::Scale(f) => x().affine(*f, 0.0),
            Layer::Concat(axis) => Tensor::cat(inputs, *axis),
            Layer::PackedConcat(op) => op.run(inputs),
            Layer::ConcatInPlace { buffer, copies, .. } => concat_in_place::run_concat(inputs, *buffer, copies),
            Layer::ChannelShuffle(g) => {
                let (n, c, h, w) = x().dims4()?;
                x().reshape((n, *g, c / g, h, w))?.transpose(1, 2)?.contiguous()?.reshape((n, c, h, w))
            }
            Layer::ChannelSlice { start, end } => x().narrow(1, *start, end - start)?.contiguous(),
            Layer::Flatten => x().flatten_from(1),
            Layer::PackedLinear(op) => {
                // [N, F] as one image of N pixels ([1, F, 1, N]): the weights stream once for
                // the whole batch, the batch fills the tiles' pixels.
                let x = x().flatten_from(1)?;
                let (n, f) = x.dims2()?;
                let cols = x.t()?.contiguous()?.reshape((1, f, 1, n))?;
                let y = cols.apply_op1_no_bwd(op.as_ref())?;
                let m = y.dim(1)?;
                y.reshape((m, n))?.t()?.contiguous()
            }
            Layer::Linear { weight_t, bias } => {
                let y = x().matmul(weight_t)?;
                match bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
            Layer::Dropout(p) => dropout(x(), *p),
            Layer::Softmax => {
                let x = x();
                let max = x.max_keepdim(1)?;
                let e = x.broadcast_sub(&max)?.exp()?;
                e.broadcast_div(&e.sum_keepdim(1)?)
            }
        }
    }

    /// Inference (no dropout); on the packed CPU path a large batch may run split ([`Lowered::batch_split`]).
    pub fn infer(&self, input: &Tensor) -> Result<Vec<Tensor>, ExecError> {
        self.infer_with(input, None)
    }
}

/// Zero (or `value`) padding of the spatial axes.
pub fn pad(x: &Tensor, p: &Padding, value: f64) -> candle_core::Result<Tensor> {
    if *p == Padding::ZERO {
        return Ok(x.clone());
    }
    if value == 0.0 {
        return x.pad_with_zeros(2, p.top, p.bottom)?.pad_with_zeros(3, p.left, p.right);
    }
    let side = |t: &Tensor, dim: usize, before: usize, after: usize| -> candle_core::Result<Tensor> {
        if before == 0 && after == 0 {
            return Ok(t.clone());
        }
        let mut dims = t.dims().to_vec();
        let mut parts = Vec::with_capacity(3);
        if before > 0 {
            dims[dim] = before;
            parts.push(Tensor::full(value as f32, dims.as_slice(), t.device())?.to_dtype(t.dtype())?);
        }
        parts.push(t.clone());
        if after > 0 {
            dims[dim] = after;
            parts.push(Tensor::full(value as f32, dims.as_slice(), t.device())?.to_dtype(t.dtype())?);
        }
        Tensor::cat(&parts, dim)
    };
    let y = side(x, 2, p.top, p.bottom)?;
    side(&y, 3, p.left, p.right)
}

fn conv(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, plan: &ConvPlan) -> candle_core::Result<Tensor> {
    let mut x = match &plan.pre_pad {
        Some(p) => pad(x, p, 0.0)?,
        None => x.clone(),
    };
    if plan.crop_to_reach {
        let (_, _, kh, kw) = weight.dims4()?;
        let (_, _, h, w) = x.dims4()?;
        let reach = |n: usize, k: usize| {
            (n - (k - 1) * plan.dilation - 1) / plan.stride * plan.stride + (k - 1) * plan.dilation + 1
        };
        x = x.narrow(2, 0, reach(h, kh))?.narrow(3, 0, reach(w, kw))?;
    }
    let mut y = x.conv2d(weight, plan.padding, plan.stride, plan.dilation, plan.groups)?;
    if let Some([sh, sw]) = plan.subsample {
        let (_, _, h, w) = y.dims4()?;
        let rows: Vec<u32> = (0..h).step_by(sh).map(|v| v as u32).collect();
        let cols: Vec<u32> = (0..w).step_by(sw).map(|v| v as u32).collect();
        let rows = Tensor::from_vec(rows.clone(), rows.len(), y.device())?;
        let cols = Tensor::from_vec(cols.clone(), cols.len(), y.device())?;
        y = y.index_select(&rows, 2)?.index_select(&cols, 3)?;
    }
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

pub fn activation(x: &Tensor, op: &Op) -> candle_core::Result<Tensor> {
    match op {
        Op::Relu => x.relu(),
        Op::Relu6 => x.clamp(0f32, 6f32),
        Op::Sigmoid => sigmoid(x),
        Op::Tanh => x.tanh(),
        Op::Silu => x.silu(),
        Op::Gelu => x.gelu_erf(),
        Op::HardSigmoid => x.affine(1.0, 3.0)?.clamp(0f32, 6f32)?.affine(1.0 / 6.0, 0.0),
        Op::HardSwish => x.mul(&x.affine(1.0, 3.0)?.clamp(0f32, 6f32)?.affine(1.0 / 6.0, 0.0)?),
        other => candle_core::bail!("{} is not an activation", other.type_name()),
    }
}

fn sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

/// Across-channel LRN as PyTorch computes it: zero-pad the squared input by size/2 before
/// and (size-1)/2 after along channels, average over `size` channels (a sum of shifted
/// slices, which autograd also differentiates), then `x / (k + alpha * avg)^beta`.
fn lrn(x: &Tensor, size: usize, alpha: f64, beta: f64, k: f64) -> candle_core::Result<Tensor> {
    let c = x.dim(1)?;
    let sq = x.sqr()?.pad_with_zeros(1, size / 2, (size - 1) / 2)?;
    let mut sum = sq.narrow(1, 0, c)?;
    for offset in 1..size {
        sum = sum.add(&sq.narrow(1, offset, c)?)?;
    }
    x.div(&sum.affine(alpha / size as f64, k)?.powf(beta)?)
}

/// Every `stride`-th element along `dim` starting at `start`, `count` of them.
fn strided(x: &Tensor, dim: usize, start: usize, stride: usize, count: usize) -> candle_core::Result<Tensor> {
    let x = x.narrow(dim, start, count * stride)?;
    if stride == 1 {
        return Ok(x);
    }
    let mut dims = x.dims().to_vec();
    dims[dim] = count;
    dims.insert(dim + 1, stride);
    let picked = x.reshape(dims.as_slice())?.narrow(dim + 1, 0, 1)?;
    picked.squeeze(dim + 1)
}

/// Pooling as the max (or sum) of the kh x kw shifted, strided views of the padded input:
/// plain tensor ops, so autograd gives PyTorch's gradients (for max, ties between equal
/// maxima split the gradient; PyTorch gives it to the first).
fn pool_by_shifts(x: &Tensor, p: &PoolPlan, max: bool) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (ph, pw) = (h + p.pad.top + p.pad.bottom, w + p.pad.left + p.pad.right);
    let (oh, ow) = ((ph - p.kernel[0]) / p.stride[0] + 1, (pw - p.kernel[1]) / p.stride[1] + 1);
    // extra trailing padding so every strided view has room for `oh * stride` rows
    let need_h = (p.kernel[0] - 1) + oh * p.stride[0];
    let need_w = (p.kernel[1] - 1) + ow * p.stride[1];
    let extra = Padding {
        bottom: p.pad.bottom + need_h.saturating_sub(ph),
        right: p.pad.right + need_w.saturating_sub(pw),
        ..p.pad
    };
    let padded = pad(x, &extra, if max { f64::NEG_INFINITY } else { 0.0 })?;
    let mut acc: Option<Tensor> = None;
    for dy in 0..p.kernel[0] {
        let rows = strided(&padded, 2, dy, p.stride[0], oh)?;
        for dx in 0..p.kernel[1] {
            let view = strided(&rows, 3, dx, p.stride[1], ow)?;
            acc = Some(match acc {
                None => view,
                Some(a) if max => a.maximum(&view)?,
                Some(a) => a.add(&view)?,
            });
        }
    }
    let acc = acc.expect("kernels are at least 1x1");
    if max {
        Ok(acc)
    } else {
        acc.affine(1.0 / (p.kernel[0] * p.kernel[1]) as f64, 0.0)
    }
}

/// Batch-norm with the batch's statistics. On the CPU in f32, one custom op each way on
/// the packed convs' threads (`exec::cpu::batch_norm_train`: candle's reductions over
/// `(0, 2, 3)` are slow there); elsewhere candle ops, which autograd differentiates.
fn batch_norm_train(x: &Tensor, bn: &BatchNormTrain) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && x.rank() == 4 {
        let threads = conv_threads().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        return super::cpu::batch_norm_train(x, &bn.gamma, &bn.beta, bn.eps, bn.act, threads);
    }
    if bn.act != Epilogue::None {
        candle_core::bail!("a fused activation after a batch-norm runs on the CPU at f32 only");
    }
    let mean = x.mean_keepdim((0, 2, 3))?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim((0, 2, 3))?;
    let inv = (var + bn.eps)?.sqrt()?.recip()?;
    centered.broadcast_mul(&inv)?.broadcast_mul(&bn.gamma)?.broadcast_add(&bn.beta)
}

/// The gradients `[dx, dgamma, dbeta]` of a [`batch_norm_train`] on the CPU at f32 from
/// its output's, `dy` (the reverse pass, `exec::backward`).
pub(crate) fn batch_norm_train_grads(x: &Tensor, bn: &BatchNormTrain, dy: &Tensor) -> candle_core::Result<[Tensor; 3]> {
    let threads = conv_threads().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    super::cpu::BatchNormTrainOp { eps: bn.eps, act: bn.act, threads }.grads(x, &bn.gamma, &bn.beta, dy)
}

/// The flat last dimension of the first output, as class logits for the training loss.
pub fn logits(outputs: &[Tensor]) -> candle_core::Result<Tensor> {
    outputs[0].flatten_from(1)
}

/// log-softmax cross-entropy against `labels` (one-hot), mean over the batch.
pub fn cross_entropy(logits: &Tensor, one_hot: &Tensor) -> candle_core::Result<Tensor> {
    let lse = logits.log_sum_exp(D::Minus1)?;
    let picked = logits.mul(one_hot)?.sum(D::Minus1)?;
    (lse - picked)?.mean_all()
}
