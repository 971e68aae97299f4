//! Fast f32 convolution on the CPU, in plain Rust with `std::arch` intrinsics.
//!
//! [`PackedConv::new`] re-lays the weights out once, at model prepare time;
//! [`PackedConv::run`] then computes NCHW in, NCHW out, with bias and ReLU/ReLU6 fused.
//!
//! * Dense and grouped convs run as GEMM (`gemm.rs`): A = the pre-packed weights, C = the
//!   NCHW output itself, and B in the cheapest of three forms: the input as it lies (1x1
//!   stride 1), shifted rows of a padded copy of the input (`direct.rs`: most other convs,
//!   no im2col), or im2col panels packed per cache block (`pack.rs`: large channel counts
//!   on small maps). Register-blocked micro-kernels (`kernels/`): 12x32 on AVX-512, 6x16
//!   on AVX2+FMA, 4x8 scalar, with bias and activation fused into the final store.
//! * On small maps (7x7, 14x14), where pixel panels would leave lanes idle, the tile turns
//!   round (`kernels/ctile.rs`): output channels in the lanes, up to 12 pixels broadcast,
//!   the result transposed into NCHW; `gemm::method` weighs the two by lanes wasted.
//! * 3x3 stride-1 convs on mid-sized maps run as Winograd F(4x4, 3x3) or F(2x2, 3x3)
//!   (`winograd/`): 4x or 2.25x fewer multiplies, its 36 or 16 GEMMs on the same
//!   kernels, its transforms in vectors over the tiles; `winograd::worth_it` says where
//!   each beats the direct GEMM.
//! * Strided unpadded 1x1 convs gather their pixels once (`subsample.rs`) and run as
//!   stride-1 pointwise convs, on NCHW or blocked tensors.
//! * Depthwise convs (groups == in == out) run a direct, memory-bound kernel
//!   (`depthwise.rs`). After a 1x1 expansion they can run fused with it
//!   ([`PackedConv::run_expand_depthwise`], `fused.rs`): strips of the expanded rows
//!   computed into L2 and read there, never written out.
//! * 1x1 and depthwise convs also run on blocked tensors, on maps of any size,
//!   `[n][c / 16][h][w][16]` ([`PackedConv::run_in_layouts`], `blocked.rs`): a depthwise
//!   conv then computes a pixel's 16 channels as one vector, and every layer of a stretch
//!   cuts its work by the same pixels, so each thread reads what it wrote. So do the convs
//!   on the direct grid that Winograd and the stem kernel never take (ResNet's 3x3 stride-2
//!   convs), on the grid's channel tile.
//! * The ISA is found at run time ([`Isa::detect`]) and can be forced
//!   ([`PackedConv::with_isa`]), which the tests do for each one the CPU has.
//! * Threads come from the caller ([`Threads`]): a small dedicated pool, not candle's
//!   rayon pool; share one `Threads` across all the convs of a model. Its helpers are
//!   pinned to CPUs and the caller kept off theirs (`affinity.rs`).
//! * No allocation per call in steady state: per-thread scratch is kept and reused.
//!
//! ```
//! use synprof::exec::cpu::{ConvSpec, Epilogue, PackedConv, Threads};
//! // 3x3, 2 -> 4 channels, padding 1.
//! let spec = ConvSpec::new(2, 4, [3, 3]).with_padding(1, 1, 1, 1);
//! let weight = vec![0.1f32; 4 * 2 * 3 * 3];
//! let conv = PackedConv::new(&weight, None, spec, Epilogue::Relu).unwrap();
//! let (n, h, w) = (1, 5, 5);
//! let input = vec![1.0f32; n * 2 * h * w];
//! let (oh, ow) = conv.output_hw(h, w).unwrap();
//! let mut output = vec![0.0f32; n * 4 * oh * ow];
//! conv.run(&input, n, h, w, &mut output, &Threads::single()).unwrap();
//! assert!((output[2 * ow + 2] - 1.8).abs() < 1e-5); // an inner pixel: 18 taps of 0.1
//! ```

mod affinity;
mod alloc;
mod avg_pool;
mod batch_norm;
mod blocked;
mod concat;
mod conv_train;
mod depthwise;
mod direct;
mod eltwise;
mod fused;
mod gemm;
mod isa;
pub(crate) mod kernels;
mod pack;
mod pool;
mod scratch;
mod sgd;
mod stem;
mod storage;
mod subsample;
mod threads;
mod tune;
mod weight_grad;
mod winograd;

pub use avg_pool::{avg_pool, avg_pool_blocked, AvgPoolSpec};
pub(crate) use batch_norm::{batch_norm_train, Forward as BatchNormTrainOp};
pub use blocked::{from_blocked, global_avg_pool_blocked, to_blocked, Layouts, BLOCK};
pub use concat::{concat_channels, copy_into_images, ChannelAffine, PLAIN_COPY_MIN_FLOATS};
pub use conv_train::TrainConv;
pub(crate) use conv_train::{conv2d_train, conv2d_train_grads};
pub use eltwise::{act, act_grad, add_act, affine_act, channel_scale};
pub use gemm::Method as GemmMethod;
pub use isa::Isa;
pub use pool::{global_avg_pool, max_pool, max_pool_blocked, max_pool_grad, PoolSpec};
pub(crate) use scratch::output_buffer;
pub use sgd::SgdStep;
pub(crate) use storage::contiguous_f32;
pub use threads::Threads;
use weight_grad::weight_grad;
pub use winograd::WinogradTile;

/// A forced Winograd choice ([`PackedConv::force_winograd`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winograd {
    Off,
    On(WinogradTile),
}

use crate::graph::Padding;

/// GEMM MACs one depthwise MAC counts as when deciding whether a conv is worth threads.
const DEPTHWISE_MAC_COST: u64 = 16;
/// GEMM MACs reading one weight counts as there: a conv over few pixels streams its weights
/// from memory and does little else (a classifier's 1024 -> 1000 layer at batch 1 is 1.0M
/// MACs, under the serial threshold, but 4 MB of weights: 0.33 ms on one thread).
const WEIGHT_READ_COST: u64 = 16;

/// What follows the bias, fused into the conv's output store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Epilogue {
    #[default]
    None,
    Relu,
    /// `min(max(x, 0), 6)`, as MobileNet uses.
    Relu6,
    /// `x * sigmoid(x)` (swish), as EfficientNet uses. This and the three below run at
    /// inference only: their gradient needs the input, which a fused op does not keep.
    Silu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `x * relu6(x + 3) / 6`, as MobileNetV3 uses.
    HardSwish,
    /// `relu6(x + 3) / 6`.
    HardSigmoid,
}

impl Epilogue {
    /// Whether the activation's output alone says where its input passed (gradient 1) and
    /// where not (0): ReLU and ReLU6, which training fuses; the others need the input.
    pub fn masks_from_output(self) -> bool {
        matches!(self, Epilogue::None | Epilogue::Relu | Epilogue::Relu6)
    }

    /// Whether the conv kernels compute it in their output stores (ReLU, ReLU6); the others
    /// run as one vector pass over the output after the kernel, while it is in cache.
    pub fn in_kernel(self) -> bool {
        matches!(self, Epilogue::None | Epilogue::Relu | Epilogue::Relu6)
    }
}

/// A 2-D convolution's shape, independent of the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    /// `[height, width]`
    pub kernel: [usize; 2],
    /// `[height, width]`
    pub stride: [usize; 2],
    /// `[height, width]`
    pub dilation: [usize; 2],
    /// Zero padding, four sides (TensorFlow `SAME` pads asymmetrically).
    pub padding: Padding,
    pub groups: usize,
}

impl ConvSpec {
    /// Stride 1, dilation 1, no padding, one group.
    pub fn new(in_channels: usize, out_channels: usize, kernel: [usize; 2]) -> ConvSpec {
        ConvSpec {
            in_channels,
            out_channels,
            kernel,
            stride: [1, 1],
            dilation: [1, 1],
            padding: Padding::ZERO,
            groups: 1,
        }
    }

    pub fn with_stride(self, sh: usize, sw: usize) -> ConvSpec {
        ConvSpec { stride: [sh, sw], ..self }
    }

    pub fn with_dilation(self, dh: usize, dw: usize) -> ConvSpec {
        ConvSpec { dilation: [dh, dw], ..self }
    }

    pub fn with_padding(self, top: usize, bottom: usize, left: usize, right: usize) -> ConvSpec {
        ConvSpec { padding: Padding { top, bottom, left, right }, ..self }
    }

    pub fn with_groups(self, groups: usize) -> ConvSpec {
        ConvSpec { groups, ..self }
    }

    /// The spec of an IR conv node whose input has `in_channels` channels.
    pub fn from_graph(conv: &crate::graph::Conv2d, in_channels: usize) -> ConvSpec {
        ConvSpec {
            in_channels,
            out_channels: conv.out_channels,
            kernel: conv.kernel,
            stride: conv.stride,
            dilation: conv.dilation,
            padding: conv.padding,
            groups: conv.groups,
        }
    }

    pub fn validate(&self) -> Result<(), ConvError> {
        let bad = |what: String| Err(ConvError::new(format!("invalid conv spec: {what}")));
        if self.in_channels == 0 || self.out_channels == 0 || self.groups == 0 {
            return bad(format!(
                "channels {} -> {} and groups {} must be positive",
                self.in_channels, self.out_channels, self.groups
            ));
        }
        if !self.in_channels.is_multiple_of(self.groups) || !self.out_channels.is_multiple_of(self.groups) {
            return bad(format!(
                "groups {} must divide in {} and out {} channels",
                self.groups, self.in_channels, self.out_channels
            ));
        }
        if self.kernel.contains(&0) || self.stride.contains(&0) || self.dilation.contains(&0) {
            return bad(format!(
                "kernel {:?}, stride {:?} and dilation {:?} must be positive",
                self.kernel, self.stride, self.dilation
            ));
        }
        Ok(())
    }

    /// Output `(height, width)` for an `h x w` input.
    pub fn output_hw(&self, h: usize, w: usize) -> Result<(usize, usize), ConvError> {
        let p = self.padding;
        let axis = |n: usize, pad: usize, k: usize, s: usize, d: usize| {
            let span = (k - 1) * d + 1;
            (n + pad >= span).then(|| (n + pad - span) / s + 1)
        };
        match (
            axis(h, p.top + p.bottom, self.kernel[0], self.stride[0], self.dilation[0]),
            axis(w, p.left + p.right, self.kernel[1], self.stride[1], self.dilation[1]),
        ) {
            (Some(oh), Some(ow)) => Ok((oh, ow)),
            _ => Err(ConvError::new(format!(
                "input {h}x{w} with padding {p} is smaller than the {}x{} kernel at dilation {:?}",
                self.kernel[0], self.kernel[1], self.dilation
            ))),
        }
    }

    /// Depthwise: one filter per channel (`groups == in == out`, more than one channel).
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_channels && self.groups == self.out_channels
    }

    /// Floats in the weight: `[out, in / groups, kh, kw]`.
    pub fn weight_len(&self) -> usize {
        self.out_channels * (self.in_channels / self.groups.max(1)) * self.kernel[0] * self.kernel[1]
    }

    /// Multiply-adds for `n` images of `h x w` (0 if the input is too small).
    pub fn macs(&self, n: usize, h: usize, w: usize) -> u64 {
        let Ok((oh, ow)) = self.output_hw(h, w) else { return 0 };
        (n * self.out_channels * oh * ow * (self.in_channels / self.groups) * self.kernel[0] * self.kernel[1]) as u64
    }
}

/// A bad spec, weight, bias or buffer size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvError(pub String);

impl ConvError {
    pub(crate) fn new(message: impl Into<String>) -> ConvError {
        ConvError(message.into())
    }
}

impl std::fmt::Display for ConvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConvError {}

enum Body {
    Gemm(gemm::GemmWeights),
    /// `[channels][kh * kw]`, as given.
    Depthwise(Vec<f32>),
}

impl Body {
    fn pack(weight: &[f32], spec: &ConvSpec, isa: Isa) -> Body {
        if spec.is_depthwise() {
            Body::Depthwise(weight.to_vec())
        } else {
            let m = spec.out_channels / spec.groups;
            let k = spec.in_channels / spec.groups * spec.kernel[0] * spec.kernel[1];
            Body::Gemm(gemm::GemmWeights::new(weight, spec.groups, m, k, &kernels::kernel_set(isa)))
        }
    }
}

/// A convolution with its weights laid out for the kernels of one ISA.
pub struct PackedConv {
    spec: ConvSpec,
    epilogue: Epilogue,
    isa: Isa,
    /// One per output channel (zeros without a bias).
    bias: Vec<f32>,
    body: Body,
    force: Option<GemmMethod>,
    /// `Some(..)`: use Winograd with this tile (or not at all) wherever it applies;
    /// `None`: where it pays.
    force_winograd: Option<Winograd>,
    /// The Winograd-transformed weights (`winograd/`) per tile (`WinogradTile::index`),
    /// made on first use.
    winograd: [std::sync::OnceLock<winograd::Transformed>; 2],
    /// The GEMM method timed fastest per input shape (`tune.rs`), where none is forced.
    tuned: tune::Choices,
    /// A depthwise conv's taps for blocked tensors (`blocked.rs`), made on first use.
    blocked_taps: std::sync::OnceLock<Vec<f32>>,
    /// A first conv's weights in the chunks of its kernel (`stem.rs`), made on first use.
    stem: std::sync::OnceLock<stem::Weights>,
    /// A depthwise conv's input writer on blocked tensors ([`PackedConv::follow_writer`]).
    input_writer: Option<(usize, usize)>,
}

impl PackedConv {
    /// Pack for the fastest ISA this CPU has. `weight` is `[out, in / groups, kh, kw]`,
    /// `bias` one per output channel; `epilogue` runs after the bias.
    pub fn new(
        weight: &[f32],
        bias: Option<&[f32]>,
        spec: ConvSpec,
        epilogue: Epilogue,
    ) -> Result<PackedConv, ConvError> {
        PackedConv::with_isa(weight, bias, spec, epilogue, Isa::detect())
    }

    /// Pack for a given ISA (an error if the CPU lacks it): tests and benchmarks.
    pub fn with_isa(
        weight: &[f32],
        bias: Option<&[f32]>,
        spec: ConvSpec,
        epilogue: Epilogue,
        isa: Isa,
    ) -> Result<PackedConv, ConvError> {
        spec.validate()?;
        if !isa.is_available() {
            return Err(ConvError::new(format!("this CPU cannot run the {isa} kernels")));
        }
        if weight.len() != spec.weight_len() {
            return Err(ConvError::new(format!(
                "weight has {} floats, the spec needs {}",
                weight.len(),
                spec.weight_len()
            )));
        }
        let bias = match bias {
            Some(b) if b.len() != spec.out_channels => {
                return Err(ConvError::new(format!(
                    "bias has {} floats, the conv has {} output channels",
                    b.len(),
                    spec.out_channels
                )))
            }
            Some(b) => b.to_vec(),
            None => vec![0.0; spec.out_channels],
        };
        Ok(PackedConv {
            spec,
            epilogue,
            isa,
            bias,
            body: Body::pack(weight, &spec, isa),
            force: None,
            force_winograd: None,
            winograd: Default::default(),
            tuned: tune::Choices::default(),
            blocked_taps: std::sync::OnceLock::new(),
            stem: std::sync::OnceLock::new(),
            input_writer: None,
        })
    }

    /// Replace the weights (same spec), keeping what was learnt about input shapes (the
    /// timed B form per shape, `tune.rs`): training changes the weights every step. The
    /// weight forms the last weights were used in (channel tile panels, Winograd
    /// transforms) are made now, on `threads`, from `weight` as given, into the buffers
    /// the last weights had.
    pub fn set_weights(&mut self, weight: &[f32], threads: &Threads) -> Result<(), ConvError> {
        if weight.len() != self.spec.weight_len() {
            return Err(ConvError::new(format!(
                "weight has {} floats, the spec needs {}",
                weight.len(),
                self.spec.weight_len()
            )));
        }
        match &mut self.body {
            Body::Gemm(g) => g.repack(weight, threads),
            Body::Depthwise(taps) => taps.copy_from_slice(weight),
        }
        for transformed in self.winograd.iter_mut().filter_map(|slot| slot.get_mut()) {
            transformed.retransform(weight, &self.spec, threads);
        }
        self.blocked_taps = std::sync::OnceLock::new();
        self.stem = std::sync::OnceLock::new();
        Ok(())
    }

    pub fn spec(&self) -> &ConvSpec {
        &self.spec
    }

    pub fn epilogue(&self) -> Epilogue {
        self.epilogue
    }

    /// The activation the kernels compute in their stores: the epilogue where it is one
    /// of theirs ([`Epilogue::in_kernel`]), else none (a pass after them computes it).
    pub(crate) fn kernel_act(&self) -> Epilogue {
        if self.epilogue.in_kernel() {
            self.epilogue
        } else {
            Epilogue::None
        }
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Which kernel runs it on an `h x w` input: "depthwise"; "stem" (a few input channels,
    /// a small window: `stem.rs`; a GEMM form where a residual is added); or GEMM with B as
    /// "pointwise" (1x1 stride 1: the input as is), "direct" (shifted rows of a padded
    /// input copy) or "im2col" (packed patches).
    pub fn method(&self, h: usize, w: usize) -> &'static str {
        self.method_for(1, h, w)
    }

    /// As [`PackedConv::method`], for a batch of `n` (whether Winograd pays depends on it):
    /// "winograd/2x2" for F(2x2, 3x3), "winograd/4x4" for F(4x4, 3x3). Once a shape has
    /// run, the method its timing chose (`tune.rs`); before, `gemm::method`'s guess.
    pub fn method_for(&self, n: usize, h: usize, w: usize) -> &'static str {
        match self.winograd_tile(n, h, w) {
            Some(WinogradTile::F2x2) => return "winograd/2x2",
            Some(WinogradTile::F4x4) => return "winograd/4x4",
            None => {}
        }
        if let (true, Ok((oh, ow))) = (self.subsamples(), self.output_hw(h, w)) {
            let g = self.subsampled_geom(oh, ow);
            let m = self.spec.out_channels / self.spec.groups;
            return match gemm::choose(&g, m, &kernels::kernel_set(self.isa), self.tuned.get([n, h, w])) {
                gemm::Method::Channels => "subsampled/pointwise/channels",
                gemm::Method::Im2col => "subsampled/im2col",
                gemm::Method::Direct => "subsampled/direct",
                gemm::Method::Pointwise => "subsampled/pointwise",
            };
        }
        if self.stem_geom(h, w).is_some() {
            return "stem";
        }
        match (&self.body, self.geom(h, w)) {
            (Body::Depthwise(_), _) => "depthwise",
            (Body::Gemm(_), Err(_)) => "gemm",
            (Body::Gemm(_), Ok(g)) => match gemm::choose(
                &g,
                self.spec.out_channels / self.spec.groups,
                &kernels::kernel_set(self.isa),
                self.force.or(self.tuned.get([n, h, w])),
            ) {
                gemm::Method::Pointwise => "pointwise",
                gemm::Method::Direct => "direct",
                gemm::Method::Im2col => "im2col",
                gemm::Method::Channels if g.is_pointwise() => "pointwise/channels",
                gemm::Method::Channels => "direct/channels",
            },
        }
    }

    /// As [`PackedConv::method_for`], its tensors laid out as `layouts`: a conv reading or
    /// writing a blocked tensor runs `blocked.rs`'s kernels whatever the NCHW choice, a 1x1
    /// conv on the channel tile ("pointwise/channels + blocked", strided ones on gathered
    /// pixels), a wider one on the direct grid's channel tile ("direct/channels + blocked"),
    /// a depthwise conv on blocked rows ("depthwise + blocked").
    pub fn kernel_in(&self, layouts: Layouts, n: usize, h: usize, w: usize) -> String {
        if !layouts.any_blocked() {
            return self.method_for(n, h, w).to_string();
        }
        let kernel = match &self.body {
            Body::Depthwise(_) => "depthwise",
            Body::Gemm(_) if self.stem_writes_blocked(layouts) => {
                return self.method_for(n, h, w).to_string() + " + blocked"
            }
            Body::Gemm(_) if self.blocked_grid() => "direct/channels",
            Body::Gemm(_) if self.subsamples() => "subsampled/pointwise/channels",
            Body::Gemm(_) => "pointwise/channels",
        };
        format!("{kernel} + blocked")
    }

    /// A strided, unpadded 1x1 conv, not forced onto a method: its pixels are gathered
    /// first (`subsample.rs`), then it runs as a stride-1 pointwise conv.
    fn subsamples(&self) -> bool {
        let s = &self.spec;
        self.force.is_none()
            && !s.is_depthwise()
            && s.kernel == [1, 1]
            && s.stride != [1, 1]
            && s.padding == Padding::ZERO
    }

    /// `f` on what this conv reads as a stride-1 pointwise conv: `input` itself, or where
    /// it [`subsamples`](Self::subsamples), its pixels gathered (`subsample.rs`; `blocked`:
    /// pixels of 16 floats, a blocked plane holding 16 channels).
    fn with_pointwise_input<R>(
        &self,
        input: &[f32],
        [n, h, w]: [usize; 3],
        out_hw: [usize; 2],
        blocked: bool,
        threads: &Threads,
        f: impl FnOnce(&[f32]) -> R,
    ) -> R {
        if !self.subsamples() {
            return f(input);
        }
        let lanes = if blocked { blocked::BLOCK } else { 1 };
        let planes = n * self.spec.in_channels / lanes;
        subsample::with_subsampled(input, planes, lanes, h, w, self.spec.stride, out_hw, threads, f)
    }

    /// The pointwise geometry of a subsampled conv's gathered `oh x ow` input.
    fn subsampled_geom(&self, oh: usize, ow: usize) -> pack::Geom {
        pack::Geom::pointwise(self.spec.in_channels / self.spec.groups, oh, ow)
    }

    /// One group's im2col geometry on an `h x w` input.
    fn geom(&self, h: usize, w: usize) -> Result<pack::Geom, ConvError> {
        let s = &self.spec;
        let (oh, ow) = s.output_hw(h, w)?;
        let p = s.padding;
        Ok(pack::Geom {
            c: s.in_channels / s.groups,
            h,
            w,
            kh: s.kernel[0],
            kw: s.kernel[1],
            sh: s.stride[0],
            sw: s.stride[1],
            dh: s.dilation[0],
            dw: s.dilation[1],
            pt: p.top,
            pl: p.left,
            oh,
            ow,
        })
    }

    /// Force how a GEMM conv forms B (`None`: choose per input size, the default), so
    /// tests can check every method on every shape. No effect on depthwise convs; a
    /// forced `Pointwise` applies only where the conv is 1x1 stride 1 unpadded.
    #[doc(hidden)]
    pub fn force_gemm_method(&mut self, method: Option<GemmMethod>) {
        self.force = method;
    }

    /// Force Winograd on with a tile (where it applies: 3x3, stride 1, dilation 1, one
    /// group) or off; `None`: where it pays, with the tile that pays (the default). A
    /// forced GEMM method turns it off unless it is forced on too, and then applies to its
    /// inner GEMM.
    #[doc(hidden)]
    pub fn force_winograd(&mut self, choice: Option<Winograd>) {
        self.force_winograd = choice;
    }

    /// The Winograd tile this conv runs with on `n x h x w` inputs, if any.
    fn winograd_tile(&self, n: usize, h: usize, w: usize) -> Option<WinogradTile> {
        let (oh, ow) = self.spec.output_hw(h, w).ok()?;
        match self.force_winograd {
            Some(Winograd::On(tile)) => winograd::applies(&self.spec).then_some(tile),
            Some(Winograd::Off) => None,
            None if self.force.is_none() => winograd::worth_it(&self.spec, n, oh, ow),
            None => None,
        }
    }

    /// Bytes of packed weights held.
    pub fn packed_bytes(&self) -> usize {
        let winograd: usize = self.winograd.iter().filter_map(|t| t.get()).map(|t| t.gemm.bytes()).sum();
        let stem = self.stem.get().map_or(0, |s| s.w.len() * 4);
        winograd
            + stem
            + match &self.body {
                Body::Gemm(g) => g.bytes(),
                Body::Depthwise(w) => w.len() * 4,
            }
    }

    /// Output `(height, width)` for an `h x w` input.
    pub fn output_hw(&self, h: usize, w: usize) -> Result<(usize, usize), ConvError> {
        self.spec.output_hw(h, w)
    }

    /// Convolve `n` NCHW images of `h x w` into `output` (NCHW, `n * out * oh * ow`
    /// floats, overwritten).
    pub fn run(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        output: &mut [f32],
        threads: &Threads,
    ) -> Result<(), ConvError> {
        self.run_with_residual(input, n, h, w, None, output, threads)
    }

    /// As [`PackedConv::run`], with `residual` (shaped as the output) added after the bias
    /// and before the activation: a ResNet block's `relu(bn3(conv3(x)) + identity)` in the
    /// conv's own store, no separate pass over the tensors. GEMM convs only (a depthwise
    /// conv is refused).
    #[allow(clippy::too_many_arguments)]
    pub fn run_with_residual(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        residual: Option<&[f32]>,
        output: &mut [f32],
        threads: &Threads,
    ) -> Result<(), ConvError> {
        self.check_with_residual(input.len(), n, h, w, residual, output.len())?;
        if n == 0 {
            return Ok(());
        }
        self.execute(input, n, h, w, residual, false, output, None, threads)
    }

    /// The sizes checked, and a residual beside the output shaped as it and taken by this
    /// conv; the output's `(height, width)`.
    fn check_with_residual(
        &self,
        input_len: usize,
        n: usize,
        h: usize,
        w: usize,
        residual: Option<&[f32]>,
        output_len: usize,
    ) -> Result<(usize, usize), ConvError> {
        let (oh, ow) = self.check_sizes(input_len, n, h, w, output_len, "output")?;
        if let Some(r) = residual {
            if r.len() != output_len {
                return Err(ConvError::new(format!(
                    "residual has {} floats, the output {n}x{}x{oh}x{ow} has {output_len}",
                    r.len(),
                    self.spec.out_channels,
                )));
            }
            self.takes_a_residual()?;
        }
        Ok((oh, ow))
    }

    /// The output's `(height, width)` for `n` images of `h x w`, once the input's and the
    /// output's lengths (`output` names the latter in the error) match them.
    fn check_sizes(
        &self,
        input: usize,
        n: usize,
        h: usize,
        w: usize,
        out: usize,
        output: &str,
    ) -> Result<(usize, usize), ConvError> {
        let s = &self.spec;
        let (oh, ow) = s.output_hw(h, w)?;
        if input != n * s.in_channels * h * w {
            let want = n * s.in_channels * h * w;
            return Err(ConvError::new(format!(
                "input has {input} floats, {n}x{}x{h}x{w} needs {want}",
                s.in_channels
            )));
        }
        if out != n * s.out_channels * oh * ow {
            let want = n * s.out_channels * oh * ow;
            return Err(ConvError::new(format!(
                "{output} has {out} floats, {n}x{}x{oh}x{ow} needs {want}",
                s.out_channels
            )));
        }
        Ok((oh, ow))
    }

    /// A residual is fused into GEMM convs only.
    fn takes_a_residual(&self) -> Result<(), ConvError> {
        match self.body {
            Body::Depthwise(_) => Err(ConvError::new("a residual is fused only into GEMM convs, not depthwise ones")),
            Body::Gemm(_) => Ok(()),
        }
    }

    /// As [`PackedConv::run_with_residual`] with the residual already in `acc`, which
    /// receives the output: `acc = act(conv(input) + bias + acc)`. A ResNet block's last
    /// conv then reads its residual and writes its output through one buffer, not three
    /// (the residual, the output and the output lines fetched before they are written):
    /// what onnxruntime's conv with a fused Sum does. GEMM convs only. Every tile reads the
    /// residual under its outputs before writing them; where the conv cannot keep to that
    /// (Winograd, a shape whose forms are still being timed), the residual is copied
    /// aside first.
    pub fn run_add_in_place(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        acc: &mut [f32],
        threads: &Threads,
    ) -> Result<(), ConvError> {
        self.check_sizes(input.len(), n, h, w, acc.len(), "residual (the output's buffer)")?;
        self.takes_a_residual()?;
        if n == 0 {
            return Ok(());
        }
        if self.times_forms([n, h, w]) || self.winograd_tile(n, h, w).is_some() {
            let residual = acc.to_vec();
            return self.execute(input, n, h, w, Some(&residual), false, acc, None, threads);
        }
        self.execute(input, n, h, w, None, true, acc, None, threads)
    }

    /// Whether [`PackedConv::run_strided`] runs for `n` images of `h x w` in `layouts`:
    /// Winograd or a GEMM method (on NCHW tensors: not the first-conv kernel, a subsampled
    /// input, groups or a depthwise conv; blocked: the 1x1 and grid channel tiles).
    pub fn writes_strided(&self, n: usize, h: usize, w: usize, layouts: Layouts) -> bool {
        let one_gemm = matches!(self.body, Body::Gemm(_)) && self.spec.groups == 1;
        if layouts.any_blocked() {
            return one_gemm && self.runs_in(layouts) && !self.stem_writes_blocked(layouts);
        }
        one_gemm && (self.winograd_tile(n, h, w).is_some() || (self.stem_geom(h, w).is_none() && !self.subsamples()))
    }

    /// The conv of `n` images in `layouts` into `output`, image `i`'s output at
    /// `i * out_image` floats: runs of a larger tensor's images, as a channel concat's input
    /// lies in its output (NCHW and blocked alike). Where [`PackedConv::writes_strided`] does
    /// not hold, or the sizes do not fit, an error.
    pub fn run_strided(
        &self,
        input: &[f32],
        [n, h, w]: [usize; 3],
        output: &mut [f32],
        out_image: usize,
        layouts: Layouts,
        threads: &Threads,
    ) -> Result<(), ConvError> {
        let (oh, ow) = self.spec.output_hw(h, w)?;
        let packed = self.spec.out_channels * oh * ow;
        // The input's size (the output's is checked here, against the stride).
        self.check_sizes(input.len(), n, h, w, n * packed, "output")?;
        if out_image < packed || output.len() < n.saturating_sub(1) * out_image + packed {
            return Err(ConvError::new(format!(
                "output of {} floats for {n} images of {packed} floats each, {out_image} floats apart",
                output.len()
            )));
        }
        if !self.writes_strided(n, h, w, layouts) {
            return Err(ConvError::new(format!(
                "a {}x{} conv of {} -> {} channels in {} groups on {n}x{h}x{w} ({layouts:?}) does not write images apart",
                self.spec.kernel[0], self.spec.kernel[1], self.spec.in_channels, self.spec.out_channels, self.spec.groups
            )));
        }
        if n == 0 {
            return Ok(());
        }
        if layouts.any_blocked() {
            return self.run_blocked(input, [n, h, w], None, false, output, layouts, Some(out_image), threads);
        }
        self.execute(input, n, h, w, None, false, output, Some(out_image), threads)
    }

    /// The activations the kernels leave to a pass ([`Epilogue::in_kernel`]), over each of
    /// the `n` output images of `packed` floats (`out_image` floats apart, else packed).
    fn act_in_images(&self, output: &mut [f32], [n, packed]: [usize; 2], out_image: Option<usize>, threads: &Threads) {
        match out_image {
            None => eltwise::act_in_place(self.isa, output, self.epilogue, threads),
            Some(stride) => {
                for image in 0..n {
                    eltwise::act_in_place(self.isa, &mut output[image * stride..][..packed], self.epilogue, threads);
                }
            }
        }
    }

    /// The geometry of an `h x w` input where the conv runs on the first-conv kernel
    /// (`stem.rs`): not forced onto a GEMM method nor Winograd, a few input channels and a
    /// window wider than a pixel (a 1x1 conv keeps its in-place GEMM).
    fn stem_geom(&self, h: usize, w: usize) -> Option<pack::Geom> {
        let s = &self.spec;
        let g = self.geom(h, w).ok()?;
        let plain = self.force.is_none() && !matches!(self.force_winograd, Some(Winograd::On(_)));
        (plain && !s.is_depthwise() && s.kernel != [1, 1] && stem::applies(s, &g, self.isa)).then_some(g)
    }

    /// Whether the next call of this input shape times the GEMM forms (`tune.rs`): none is
    /// forced, timing is on and the shape has not been timed yet.
    fn times_forms(&self, shape: [usize; 3]) -> bool {
        self.force.is_none() && tune::enabled() && self.tuned.get(shape).is_none()
    }

    /// `threads`, or the one-thread pool for a conv too small to share (a few microseconds
    /// of work cost less done here than the wake-up of a parked helper). A depthwise MAC
    /// costs 3-14x a GEMM one (memory-bound, and a 7x7 row fills 7 of 16 lanes):
    /// MobileNetV2's 960-channel 7x7 depthwise conv is 0.4M MACs but 48 us of work, which
    /// ran serial under the MAC threshold alone. Reading the weights counts too
    /// (`WEIGHT_READ_COST`).
    fn threads_for<'t>(&self, n: usize, h: usize, w: usize, threads: &'t Threads) -> &'t Threads {
        let s = &self.spec;
        let macs = s.macs(n, h, w) * if s.is_depthwise() { DEPTHWISE_MAC_COST } else { 1 };
        let work = macs.max(s.weight_len() as u64 * WEIGHT_READ_COST);
        if work < threads.serial_below() {
            serial_threads()
        } else {
            threads
        }
    }

    /// Whether the conv runs with its input and output laid out as `layouts` says
    /// (`blocked.rs`): NCHW always; blocked, a depthwise conv (both sides), or a conv of
    /// one group (either side) that runs on the channel tile whatever the input's shape: a
    /// 1x1 unpadded conv (a strided one on its gathered pixels), or one on the direct grid
    /// that neither Winograd (a 3x3 stride-1 conv, on some shapes) nor the stem kernel (a
    /// few input channels, a small window) may take. Their blocked sides' channels are
    /// whole blocks of 16.
    pub fn runs_in(&self, layouts: Layouts) -> bool {
        let s = &self.spec;
        let whole = |c: usize, blocked: bool| !blocked || c.is_multiple_of(blocked::BLOCK);
        match &self.body {
            _ if layouts == Layouts::NCHW => true,
            Body::Depthwise(_) => layouts == Layouts::BLOCKED && whole(s.in_channels, true),
            Body::Gemm(_) if self.stem_writes_blocked(layouts) => true,
            Body::Gemm(_) => {
                s.groups == 1
                    && (self.is_pointwise() || self.subsamples() || self.blocked_grid())
                    && whole(s.in_channels, layouts.input)
                    && whole(s.out_channels, layouts.output)
            }
        }
    }

    /// Whether writing its output blocked (where it [`runs_in`](Self::runs_in) that) may pay
    /// for an output `out_w` pixels wide: always, but on the stem kernel only where NCHW rows
    /// are not whole cache lines. Measured at batch 16 (benches/peers/RESULTS.md section 30):
    /// SqueezeNet's 111-pixel rows took 10.7 ms NCHW and 5.1 blocked; MobileNetV2's
    /// 112-pixel ones ran 8% slower blocked, with the net 6% slower.
    pub fn blocked_output_pays(&self, out_w: usize) -> bool {
        let stem = self.stem_writes_blocked(Layouts { input: false, output: true });
        !stem || !out_w.is_multiple_of(blocked::BLOCK)
    }

    /// The conv on the stem kernel (`stem.rs`), its weights chunked on first use, its output
    /// NCHW or `blocked`.
    #[allow(clippy::too_many_arguments)]
    fn run_stem(
        &self,
        weights: &gemm::GemmWeights,
        g: pack::Geom,
        images: usize,
        input: &[f32],
        output: &mut [f32],
        blocked: bool,
        threads: &Threads,
    ) {
        let m = self.spec.out_channels;
        let chunked = self.stem.get_or_init(|| stem::Weights::new(&weights.unpacked(), m, g.k(), g.kw));
        let call =
            stem::Call { isa: self.isa, g, images, weights: chunked, bias: &self.bias, act: self.epilogue, blocked };
        stem::run(&call, input, output, threads);
    }

    /// Whether the conv writes a blocked output from an NCHW input on the stem kernel
    /// (`stem.rs`: a first conv's few input channels, a small window), its output channels
    /// whole blocks: each output vector's channels turned into a vector per pixel, stored
    /// whole. SqueezeNet's stem at batch 16 wrote its NCHW planes at half onnxruntime's speed:
    /// 111-pixel rows, each vector across two cache lines.
    fn stem_writes_blocked(&self, layouts: Layouts) -> bool {
        let s = &self.spec;
        layouts == (Layouts { input: false, output: true })
            && stem::may_apply(s)
            && !s.is_depthwise()
            && s.kernel != [1, 1]
            && s.out_channels.is_multiple_of(blocked::BLOCK)
    }

    /// Whether the conv runs blocked on the direct grid's channel tile (`gemm::Call::layouts`):
    /// the grid exists (strides up to 8x8), and no shape of input may send it to Winograd
    /// or the stem kernel.
    fn blocked_grid(&self) -> bool {
        let s = &self.spec;
        s.groups == 1
            && s.stride[0] * s.stride[1] <= 64
            && !winograd::applies(s)
            && !stem::may_apply(s)
            && !self.subsamples()
            && !self.is_pointwise()
    }

    /// A 1x1 stride-1 unpadded conv: B is its input as it lies.
    fn is_pointwise(&self) -> bool {
        let s = &self.spec;
        s.kernel == [1, 1] && s.padding == Padding::ZERO && s.stride == [1, 1]
    }

    /// A depthwise conv whose blocked input a 1x1 conv of `k -> m` channels writes: cut the
    /// work as that conv cuts its own, by channels or by pixels (`blocked::cut_by_channels`,
    /// at the batch and map size of each call), so that each thread reads what its core
    /// wrote. No effect on NCHW tensors or GEMM convs.
    pub fn follow_writer(&mut self, k: usize, m: usize) {
        self.input_writer = Some((k, m));
    }

    /// [`PackedConv::run_with_residual`] (or, with `residual_in_output`,
    /// [`PackedConv::run_add_in_place`], the residual in `output`) on tensors laid out as
    /// `layouts` says: a blocked tensor is `[n][c / 16][h][w][16]` ([`to_blocked`]); a
    /// residual lies as the output. An error where the conv does not run in those layouts
    /// ([`PackedConv::runs_in`]).
    #[allow(clippy::too_many_arguments)]
    pub fn run_in_layouts(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        residual: Option<&[f32]>,
        residual_in_output: bool,
        output: &mut [f32],
        layouts: Layouts,
        threads: &Threads,
    ) -> Result<(), ConvError> {
        if layouts == Layouts::NCHW {
            return match residual_in_output {
                true if residual.is_none() => self.run_add_in_place(input, n, h, w, output, threads),
                _ => self.run_with_residual(input, n, h, w, residual, output, threads),
            };
        }
        if !self.runs_in(layouts) {
            return Err(ConvError::new(format!(
                "a {}x{} conv of {} -> {} channels in {} groups (stride {:?}) cannot run on {layouts:?} tensors",
                self.spec.kernel[0],
                self.spec.kernel[1],
                self.spec.in_channels,
                self.spec.out_channels,
                self.spec.groups,
                self.spec.stride
            )));
        }
        self.check_with_residual(input.len(), n, h, w, residual, output.len())?;
        if residual_in_output {
            self.takes_a_residual()?;
        }
        if n == 0 {
            return Ok(());
        }
        self.run_blocked(input, [n, h, w], residual, residual_in_output, output, layouts, None, threads)
    }

    /// [`PackedConv::run_in_layouts`] of a layout with a blocked side, its sizes checked;
    /// with `out_image`, the output images that many floats apart ([`PackedConv::writes_strided`]
    /// holds; no residual).
    #[allow(clippy::too_many_arguments)]
    fn run_blocked(
        &self,
        input: &[f32],
        [n, h, w]: [usize; 3],
        residual: Option<&[f32]>,
        residual_in_output: bool,
        output: &mut [f32],
        layouts: Layouts,
        out_image: Option<usize>,
        threads: &Threads,
    ) -> Result<(), ConvError> {
        let (oh, ow) = self.spec.output_hw(h, w)?;
        let threads = self.threads_for(n, h, w, threads);
        let s = &self.spec;
        match &self.body {
            Body::Gemm(weights) if self.stem_writes_blocked(layouts) => {
                // `writes_strided` keeps strided outputs off the kernels that cannot write them: a
                // drift between the two must fail loudly, not write the images packed.
                assert!(out_image.is_none(), "the stem kernel writes its images packed");
                let (m, ohw) = (s.out_channels, oh * ow);
                match self.stem_geom(h, w) {
                    Some(g) if residual.is_none() && !residual_in_output => {
                        self.run_stem(weights, g, n, input, output, true, threads)
                    }
                    // Another kernel (a forced method, a narrow map, a residual): NCHW, then
                    // reordered.
                    _ => {
                        let residual = match residual_in_output {
                            true => Some(from_blocked(output, n, m, ohw)),
                            false => residual.map(|r| from_blocked(r, n, m, ohw)),
                        };
                        let mut nchw = output_buffer(output.len());
                        self.execute(input, n, h, w, residual.as_deref(), false, &mut nchw, None, threads)?;
                        output.copy_from_slice(&to_blocked(&nchw, n, m, ohw));
                    }
                }
            }
            Body::Gemm(weights) if self.blocked_grid() => {
                let call = gemm::Call {
                    weights,
                    kernels: kernels::kernel_set(self.isa),
                    bias: &self.bias,
                    act: self.kernel_act(),
                    groups: 1,
                    geom: self.geom(h, w)?,
                    images: n,
                    residual: residual.filter(|_| !residual_in_output),
                    residual_in_output,
                    force: Some(GemmMethod::Channels),
                    layouts,
                    out_image,
                };
                gemm::run(&call, input, output, threads);
                self.act_in_images(output, [n, s.out_channels * oh * ow], out_image, threads);
            }
            Body::Gemm(weights) => {
                let call = blocked::Pointwise {
                    kernels: kernels::kernel_set(self.isa),
                    panels: weights.channel_panels(),
                    k: s.in_channels,
                    m: s.out_channels,
                    bias: &self.bias,
                    act: self.epilogue,
                    isa: self.isa,
                    images: n,
                    pixels: oh * ow,
                    layouts,
                    residual: residual.filter(|_| !residual_in_output),
                    residual_in_output,
                    out_image,
                };
                self.with_pointwise_input(input, [n, h, w], [oh, ow], layouts.input, threads, |x| {
                    blocked::run_pointwise(&call, x, output, threads)
                });
            }
            Body::Depthwise(taps) => {
                assert!(out_image.is_none(), "a depthwise conv writes its images packed");
                let taps = self.blocked_taps.get_or_init(|| blocked::block_taps(taps, s.in_channels));
                let g = self.geom(h, w)?;
                let kernel = blocked::depthwise_kernel(self.isa);
                blocked::run_depthwise(
                    self.isa,
                    kernel,
                    g,
                    s.in_channels,
                    n,
                    taps,
                    &self.bias,
                    self.epilogue,
                    input,
                    output,
                    threads,
                    self.input_writer,
                );
            }
        }
        Ok(())
    }

    /// The conv, its sizes checked: the residual beside the output, in it
    /// (`residual_in_output`, GEMM only and never while timing the forms), or none. With
    /// `out_image`, the output images lie that many floats apart ([`PackedConv::writes_strided`]
    /// holds; no residual).
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        residual: Option<&[f32]>,
        residual_in_output: bool,
        output: &mut [f32],
        out_image: Option<usize>,
        threads: &Threads,
    ) -> Result<(), ConvError> {
        let s = &self.spec;
        let (oh, ow) = s.output_hw(h, w)?;
        let threads = self.threads_for(n, h, w, threads);
        // The first-conv kernel takes no residual.
        let stem = if residual.is_none() && !residual_in_output { self.stem_geom(h, w) } else { None };
        match (&self.body, self.winograd_tile(n, h, w), stem) {
            (Body::Gemm(weights), Some(tile), _) => {
                assert!(!residual_in_output, "run_add_in_place copies the residual aside for Winograd");
                let ks = kernels::kernel_set(self.isa);
                let transformed = self.winograd[tile.index()]
                    .get_or_init(|| winograd::transform_weights(&weights.unpacked(), &self.spec, tile, &ks));
                let call = winograd::Call {
                    spec: s,
                    weights: transformed,
                    kernels: ks,
                    bias: &self.bias,
                    act: self.kernel_act(),
                    images: n,
                    h,
                    w,
                    residual,
                    force: self.force,
                    out_image,
                };
                winograd::run(&call, input, output, threads);
                self.act_in_images(output, [n, s.out_channels * oh * ow], out_image, threads);
            }
            (Body::Gemm(weights), None, Some(g)) => {
                assert!(out_image.is_none(), "the stem kernel writes its images packed (`writes_strided`)");
                self.run_stem(weights, g, n, input, output, false, threads);
            }
            (Body::Gemm(weights), None, None) => {
                // (`subsamples` implies no forced method: `self.force` is None there.)
                let subsampled = self.subsamples();
                let geom = if subsampled { self.subsampled_geom(oh, ow) } else { self.geom(h, w)? };
                let ks = kernels::kernel_set(self.isa);
                let run = |force: Option<GemmMethod>, output: &mut [f32]| {
                    let call = gemm::Call {
                        weights,
                        kernels: ks,
                        bias: &self.bias,
                        act: self.kernel_act(),
                        groups: s.groups,
                        geom,
                        images: n,
                        residual,
                        residual_in_output,
                        force,
                        layouts: Layouts::NCHW,
                        out_image,
                    };
                    if subsampled {
                        self.with_pointwise_input(input, [n, h, w], [oh, ow], false, threads, |x| {
                            gemm::run(&call, x, output, threads)
                        });
                    } else {
                        gemm::run(&call, input, output, threads);
                    }
                };
                let force = if self.times_forms([n, h, w]) {
                    // Timing runs the conv several times: the residual must survive.
                    assert!(!residual_in_output, "run_add_in_place times the forms with the residual aside");
                    let m = s.out_channels / s.groups;
                    let (candidates, guess) = (tune::candidates(&geom, m, &ks), gemm::choose(&geom, m, &ks, None));
                    let best = tune::fastest(&candidates, guess, |m| run(Some(m), output));
                    self.tuned.set([n, h, w], best);
                    Some(best)
                } else {
                    self.force.or(self.tuned.get([n, h, w]))
                };
                run(force, output);
                self.act_in_images(output, [n, s.out_channels * oh * ow], out_image, threads);
            }
            (Body::Depthwise(taps), _, _) => {
                assert!(out_image.is_none(), "a depthwise conv writes its images packed (`writes_strided`)");
                let g = self.geom(h, w)?;
                let call = depthwise::Call {
                    isa: self.isa,
                    g,
                    channels: s.in_channels,
                    images: n,
                    taps,
                    bias: &self.bias,
                    act: self.epilogue,
                };
                depthwise::run(&call, input, output, threads);
            }
        }
        Ok(())
    }
}

/// The one-thread pool tiny convs run on, whatever pool they were given
/// ([`PackedConv::run`]): its item time counts in a layer's busy time like the pool's.
pub fn serial_threads() -> &'static Threads {
    static SERIAL: std::sync::LazyLock<Threads> = std::sync::LazyLock::new(Threads::single);
    &SERIAL
}

impl std::fmt::Debug for PackedConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedConv")
            .field("spec", &self.spec)
            .field("epilogue", &self.epilogue)
            .field("isa", &self.isa)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny convs run on the calling thread alone; a classifier layer at batch 1 (few MACs
    /// but megabytes of weights), a depthwise conv of many channels and a large conv take
    /// the pool.
    #[test]
    fn only_little_work_runs_serial() {
        let pool = Threads::new(2).unwrap();
        let on_pool = |spec: ConvSpec, hw: usize| {
            let conv = PackedConv::new(&vec![0.0; spec.weight_len()], None, spec, Epilogue::None).unwrap();
            std::ptr::eq(conv.threads_for(1, hw, hw, &pool), &pool)
        };
        let c3 = |c: usize| ConvSpec::new(c, c, [3, 3]).with_padding(1, 1, 1, 1);
        assert!(!on_pool(ConvSpec::new(96, 24, [1, 1]), 1), "a squeeze-and-excitation squeeze");
        assert!(!on_pool(c3(16), 7), "113K MACs");
        assert!(on_pool(ConvSpec::new(1024, 1000, [1, 1]), 1), "DenseNet-121's classifier");
        assert!(on_pool(c3(960).with_groups(960), 7), "MobileNetV2's last depthwise conv");
        assert!(on_pool(c3(64), 56), "ResNet-50's 3x3 conv at 56x56");
    }
}
