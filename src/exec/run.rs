//! One measured case: prepare, warm up, then a measured window of at least N iterations
//! and T seconds, the device synchronised around every timed iteration, every latency kept.

use super::device::{self, DeviceSpec};
use super::lower::{ConvAlgorithm, Lowered, Phase};
use super::memory;
use super::stats::{summarize, LatencyStats};
use super::train::{Sgd, Trainer};
use super::{Backend, ExecError, Mode};
use crate::analysis::analyze;
use crate::graph::Net;
use crate::telemetry::{self, CaseTelemetry, Telemetry, TelemetryOptions};
use crate::weights::{synthetic_input, Weights};
use crate::Dtype;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// At least this many iterations...
    pub iterations: usize,
    /// ...and at least this many seconds.
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    pub device: DeviceSpec,
    pub dtype: Dtype,
    pub batch: usize,
    pub mode: Mode,
    pub warmup: Window,
    pub measure: Window,
    /// Stop measuring after this long even if `measure.iterations` is not reached.
    pub max_seconds: f64,
    pub seed: u64,
    pub fold_batch_norm: bool,
    /// Also time every layer (inference only), after the measured window.
    pub layers: bool,
    /// Sample power, energy, utilisation, clocks and temperature while the case runs.
    #[serde(default = "yes")]
    pub telemetry: bool,
    /// Telemetry sampling interval; None: chosen from the counters' measured update periods.
    #[serde(default)]
    pub telemetry_interval_ms: Option<f64>,
    /// Print the running throughput to stderr about twice a second (`@live PHASE IMAGES/S`),
    /// for a sweep's progress bar.
    #[serde(default)]
    pub live: bool,
    /// How inference convs run on the CPU at f32; `None`: `SYNPROF_CPU_CONV`, else packed.
    #[serde(default)]
    pub cpu_conv: Option<ConvAlgorithm>,
    #[serde(default)]
    pub backend: Backend,
}

/// The stderr line prefix of live throughput reports (see `RunOptions::live`).
pub const LIVE_PREFIX: &str = "@live ";

/// Throughput so far, printed at most every half second.
struct Live {
    enabled: bool,
    batch: usize,
    last: Instant,
}

impl Live {
    fn report(&mut self, phase: &str, iterations: usize, since: Instant) {
        if self.enabled && self.last.elapsed() >= Duration::from_millis(500) {
            let rate = (iterations * self.batch) as f64 / since.elapsed().as_secs_f64();
            eprintln!("{LIVE_PREFIX}{phase} {rate:.3}");
            self.last = Instant::now();
        }
    }
}

fn yes() -> bool {
    true
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            device: DeviceSpec::Cpu,
            dtype: Dtype::F32,
            batch: 1,
            mode: Mode::Infer,
            warmup: Window { iterations: 3, seconds: 1.0 },
            measure: Window { iterations: 10, seconds: 3.0 },
            max_seconds: 60.0,
            seed: 0,
            fold_batch_norm: true,
            layers: false,
            telemetry: true,
            telemetry_interval_ms: None,
            live: false,
            cpu_conv: None,
            backend: Backend::Candle,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerTime {
    pub name: String,
    pub op: String,
    pub mean_ms: f64,
    /// Share of the summed layer times.
    pub share: f64,
    pub flops: u64,
    pub achieved_gflops_per_s: f64,
    pub arithmetic_intensity: f64,
    /// Done inside another layer (a batch-norm folded into its conv, an activation fused
    /// into it, dropout at inference): its own time is only a hand-over, so it has no
    /// achieved FLOP/s (0) and the work shows in the layer that does it.
    #[serde(default)]
    pub fused: bool,
    /// Share of the CPU conv threads' time in this layer spent in its work items: their
    /// busy time over the layer's wall time times the thread count. Below 1, threads
    /// waited for each other or had no work. None where the layer ran no work items
    /// (candle's own ops, CUDA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_use: Option<f64>,
    /// The packed CPU kernel the layer's conv or pool ran on (`Lowered::conv_kernels`):
    /// "direct", "winograd/4x4", "stem", "pointwise/channels + blocked", "avg-pool2d-blocked",
    /// ...; None for other layers and on candle's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub model: String,
    pub device: DeviceSpec,
    #[serde(default)]
    pub backend: Backend,
    /// An external backend's runtime and version, as it described itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    pub dtype: Dtype,
    pub batch: usize,
    pub mode: Mode,
    pub cpu_threads: Option<usize>,
    pub warmup_iterations: usize,
    pub latency: LatencyStats,
    pub latencies_ms: Vec<f64>,
    /// Conv and linear MACs per image (the analysis' count).
    pub macs_per_image: u64,
    /// 2 x MACs x images/s (x3 for training: forward, and two backward products).
    pub achieved_gflops_per_s: f64,
    /// Peak resident memory of the process during the case (CPU) or device memory (CUDA).
    pub peak_memory_bytes: Option<u64>,
    pub memory_source: String,
    pub folded_batch_norms: usize,
    /// Constant scales folded into the conv before them (Inception-ResNet's residual scales).
    #[serde(default)]
    pub folded_scales: usize,
    /// How the convs ran: `packed` (`exec::cpu`) or `candle` (`Tensor::conv2d`; always at
    /// training and off the CPU or f32). Absent in records made before the choice existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv_algorithm: Option<ConvAlgorithm>,
    /// Activations fused into the conv or add before them (packed path).
    #[serde(default)]
    pub fused_activations: usize,
    /// Residual adds fused into the conv that feeds them (packed path).
    #[serde(default)]
    pub fused_residual_adds: usize,
    /// 1x1 expansions run fused with the depthwise conv after them (packed path); their
    /// time counts in the depthwise layer's in `--layers`.
    #[serde(default)]
    pub fused_expansions: usize,
    /// Convs that ran on blocked tensors (packed path; a pixel's 16 channels together:
    /// `exec::cpu::to_blocked`).
    #[serde(default)]
    pub blocked_convs: usize,
    /// Channel concats whose convs wrote their outputs into the concat's buffer (packed
    /// path): the concat copied only its other inputs.
    #[serde(default)]
    pub concats_in_place: usize,
    /// Convs run as Winograd F(2x2, 3x3) or F(4x4, 3x3) (packed path): 2.25x or 4x fewer
    /// multiplies than the direct conv; `achieved_gflops_per_s` still counts the direct
    /// conv's FLOPs.
    #[serde(default)]
    pub winograd_convs: usize,
    /// How the packed CPU path split the batch (`Lowered::batch_split`), if it did: which
    /// nodes ran in sub-batches of how many images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_split: Option<String>,
    /// Training: which backward the steps ran (`Trainer::backward_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backward: Option<String>,
    /// Training: the loss at the first and last measured step.
    pub loss_first: Option<f32>,
    pub loss_last: Option<f32>,
    pub layers: Option<Vec<LayerTime>>,
    /// What the samplers saw: energy and efficiency of the measured window, the timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<CaseTelemetry>,
}

/// The measured window's minimum length: `measure.seconds`, lengthened (within
/// `max_seconds`) until the energy counter updates often enough inside it; a window still
/// too short is flagged in the energy figures.
pub fn measured_window_seconds(opts: &RunOptions, telemetry: Option<&Telemetry>) -> f64 {
    telemetry
        .and_then(Telemetry::required_window)
        .map_or(opts.measure.seconds, |w| opts.measure.seconds.max(w.as_secs_f64().min(opts.max_seconds)))
}

/// Time `step` over warm-up and a measured window; `step` must leave the device idle.
fn measure(
    opts: &RunOptions,
    step: &mut dyn FnMut() -> Result<(), ExecError>,
    sync: &dyn Fn() -> Result<(), ExecError>,
    telemetry: Option<&Telemetry>,
) -> Result<(usize, Vec<f64>), ExecError> {
    let mark = |phase| {
        if let Some(t) = telemetry {
            t.mark(phase)
        }
    };
    let measure_seconds = measured_window_seconds(opts, telemetry);
    mark(telemetry::Phase::Warmup);
    // Both windows end early once `max_seconds` is spent (after at least one iteration), so
    // one slow case cannot stall a sweep.
    let start = Instant::now();
    let mut live = Live { enabled: opts.live, batch: opts.batch, last: start };
    let mut warmup = 0;
    let max = Duration::from_secs_f64(opts.max_seconds.max(measure_seconds));
    while (warmup < opts.warmup.iterations || start.elapsed().as_secs_f64() < opts.warmup.seconds)
        && (start.elapsed() < max || warmup == 0)
    {
        step()?;
        sync()?;
        warmup += 1;
        live.report("warmup", warmup, start);
    }
    let mut latencies = Vec::new();
    mark(telemetry::Phase::Measured);
    let window = Instant::now();
    while (latencies.len() < opts.measure.iterations || window.elapsed().as_secs_f64() < measure_seconds)
        && (window.elapsed() < max || latencies.is_empty())
    {
        let t0 = Instant::now();
        step()?;
        sync()?;
        latencies.push(t0.elapsed().as_secs_f64() * 1e3);
        live.report("measured", latencies.len(), window);
    }
    mark(telemetry::Phase::Cooldown);
    Ok((warmup, latencies))
}

/// Refuse cases that cannot fit in host memory (an allocation failure would abort).
fn check_memory(net: &Net, opts: &RunOptions) -> Result<(), ExecError> {
    if opts.device != DeviceSpec::Cpu {
        return Ok(());
    }
    let a = analyze(net, opts.batch, opts.dtype);
    let need = memory::estimate_bytes(&a, opts.mode);
    if let Some(available) = memory::available_bytes() {
        if need > available {
            return Err(ExecError::new(format!(
                "out of memory: {} batch {} ({}) needs about {:.1} GiB, {:.1} GiB available; use a smaller batch",
                net.name,
                opts.batch,
                opts.mode,
                need as f64 / (1u64 << 30) as f64,
                available as f64 / (1u64 << 30) as f64
            )));
        }
    }
    Ok(())
}

/// What a backend's timing loop gives back.
pub struct Measured {
    pub warmup_iterations: usize,
    pub latencies_ms: Vec<f64>,
    pub folded_batch_norms: usize,
    pub folded_scales: usize,
    /// Training: the loss at the first and last measured step.
    pub losses: Option<(Option<f32>, Option<f32>)>,
    pub layers: Option<Vec<LayerTime>>,
    pub conv_algorithm: Option<ConvAlgorithm>,
    pub fused_activations: usize,
    pub fused_residual_adds: usize,
    pub fused_expansions: usize,
    pub blocked_convs: usize,
    pub concats_in_place: usize,
    pub winograd_convs: usize,
    pub batch_split: Option<String>,
    pub backward: Option<String>,
}

/// Run one case of `net` as `opts` says.
pub fn run_case(net: &Net, opts: &RunOptions) -> Result<CaseResult, ExecError> {
    if opts.batch == 0 {
        return Err(ExecError::new("batch must be at least 1"));
    }
    if opts.layers && opts.mode == Mode::Train {
        return Err(ExecError::new("per-layer timing (--layers) is for inference; drop --layers or use --mode infer"));
    }
    super::external::check(opts)?;
    check_memory(net, opts)?;
    let analysis = analyze(net, opts.batch, opts.dtype);
    let conv = match opts.cpu_conv {
        Some(c) => c,
        None => ConvAlgorithm::from_env()?,
    };
    let start_telemetry = || {
        opts.telemetry.then(|| {
            let interval = opts.telemetry_interval_ms.map(|ms| Duration::from_secs_f64(ms / 1e3));
            Telemetry::start(opts.device, &TelemetryOptions { interval, ..TelemetryOptions::default() })
        })
    };
    let (measured, monitor, runtime, peak_memory) = if opts.backend == Backend::Candle {
        let device = opts.device.open()?;
        let dtype = opts.device.dtype(opts.dtype)?;
        memory::keep_freed_memory();
        memory::release_free_memory();
        memory::reset_peak_rss();
        let monitor = start_telemetry();
        let measured = measure_candle(net, opts, &device, dtype, conv, &analysis, monitor.as_ref())?;
        let peak = if opts.device == DeviceSpec::Cpu { memory::peak_rss_bytes() } else { None };
        (measured, monitor, None, peak)
    } else {
        let monitor = start_telemetry();
        let (measured, runtime, peak) = super::external::measure(net, opts, monitor.as_ref())?;
        (measured, monitor, Some(runtime), peak)
    };
    let latencies = measured.latencies_ms;
    let latency = summarize(&latencies, opts.batch);
    let telemetry = monitor.map(|m| {
        let (report, recording) = m.finish((latencies.len() * opts.batch) as u64);
        CaseTelemetry::new(report, &recording)
    });
    let macs_per_image = analysis.totals.macs / opts.batch as u64;
    let passes = if opts.mode == Mode::Train { 3.0 } else { 1.0 };
    let on_cpu = opts.device == DeviceSpec::Cpu;
    Ok(CaseResult {
        model: net.name.clone(),
        device: opts.device,
        backend: opts.backend,
        runtime,
        dtype: opts.dtype,
        batch: opts.batch,
        mode: opts.mode,
        cpu_threads: if on_cpu { device::cpu_threads() } else { None },
        warmup_iterations: measured.warmup_iterations,
        achieved_gflops_per_s: 2.0 * passes * macs_per_image as f64 * latency.images_per_s / 1e9,
        latency,
        latencies_ms: latencies,
        macs_per_image,
        peak_memory_bytes: peak_memory,
        memory_source: match (on_cpu, opts.backend) {
            (true, Backend::Candle) => "process peak RSS (VmHWM)".into(),
            (true, _) => "the runtime process' peak RSS (VmHWM)".into(),
            (false, _) => "not measured yet on this device".into(),
        },
        folded_batch_norms: measured.folded_batch_norms,
        folded_scales: measured.folded_scales,
        conv_algorithm: measured.conv_algorithm,
        fused_activations: measured.fused_activations,
        fused_residual_adds: measured.fused_residual_adds,
        fused_expansions: measured.fused_expansions,
        blocked_convs: measured.blocked_convs,
        concats_in_place: measured.concats_in_place,
        winograd_convs: measured.winograd_convs,
        batch_split: measured.batch_split,
        backward: measured.backward,
        loss_first: measured.losses.and_then(|l| l.0),
        loss_last: measured.losses.and_then(|l| l.1),
        layers: measured.layers,
        telemetry,
    })
}

/// The candle backend's warm-up and measured window (and per-layer times when asked).
fn measure_candle(
    net: &Net,
    opts: &RunOptions,
    device: &candle_core::Device,
    dtype: candle_core::DType,
    conv: ConvAlgorithm,
    analysis: &crate::analysis::Analysis,
    monitor: Option<&Telemetry>,
) -> Result<Measured, ExecError> {
    let weights = Weights::init(net, opts.seed);
    let sync = || device::synchronize(device);
    match opts.mode {
        Mode::Infer => {
            let phase = Phase::Inference { fold_batch_norm: opts.fold_batch_norm };
            let lowered = Lowered::with_conv(net, &weights, device, dtype, phase, conv)?;
            let host = synthetic_input(net, opts.batch, opts.seed);
            let input = Tensor::from_vec(host.data, host.shape, device)?.to_dtype(dtype)?;
            let mut step = || lowered.infer(&input).map(drop);
            let (w, lat) = measure(opts, &mut step, &sync, monitor)?;
            let layers = if opts.layers {
                Some(time_layers(&lowered, &input, analysis, opts.measure.iterations.max(3))?)
            } else {
                None
            };
            Ok(Measured {
                warmup_iterations: w,
                latencies_ms: lat,
                folded_batch_norms: lowered.folded_batch_norms,
                folded_scales: lowered.folded_scales,
                losses: None,
                layers,
                conv_algorithm: Some(lowered.conv_algorithm),
                fused_activations: lowered.fused_activations,
                fused_residual_adds: lowered.fused_residual_adds,
                fused_expansions: lowered.fused_expansions,
                blocked_convs: lowered.blocked_convs,
                concats_in_place: lowered.concats_in_place,
                winograd_convs: lowered.winograd_convs(opts.batch, analysis),
                batch_split: lowered.batch_split(opts.batch).map(|s| {
                    format!("nodes up to `{}` in sub-batches of {}", lowered.net.nodes[s.cut].name, s.sub_batch)
                }),
                backward: None,
            })
        }
        Mode::Train => {
            let mut trainer = Trainer::new(net, &weights, device, dtype, opts.batch, opts.seed, Sgd::default())?;
            let mut losses = Vec::new();
            let mut step = || trainer.step().map(|l| losses.push(l));
            let (w, lat) = measure(opts, &mut step, &sync, monitor)?;
            let first_measured = losses.get(w).copied();
            Ok(Measured {
                warmup_iterations: w,
                latencies_ms: lat,
                folded_batch_norms: 0,
                folded_scales: 0,
                losses: Some((first_measured, losses.last().copied())),
                layers: None,
                conv_algorithm: Some(trainer.lowered.conv_algorithm),
                fused_activations: 0,
                fused_residual_adds: 0,
                fused_expansions: 0,
                blocked_convs: 0,
                concats_in_place: 0,
                winograd_convs: 0,
                batch_split: None,
                backward: Some(trainer.backward_name()),
            })
        }
    }
}

/// Mean time of every node's forward over `iterations` passes, synchronising after each
/// node. The passes run as a plain inference does (`Lowered::infer_timed`): each output
/// freed after its last reader, and a large batch split where the plain run splits it (at
/// batch 16 the whole-batch activations missed the caches, and the layers then summed to
/// nearly twice the run).
fn time_layers(
    lowered: &Lowered,
    input: &Tensor,
    analysis: &crate::analysis::Analysis,
    iterations: usize,
) -> Result<Vec<LayerTime>, ExecError> {
    let mut times = crate::exec::lower::NodeTimes::new(lowered.net.nodes.len());
    for _ in 0..iterations {
        lowered.infer_timed(input, &mut times)?;
    }
    let threads = crate::exec::lower::conv_thread_count().unwrap_or(1) as f64;
    let sum: f64 = times.wall_ms.iter().sum();
    let batch = input.dims().first().copied().unwrap_or(1);
    let kernels = lowered.conv_kernels(batch, analysis);
    Ok(lowered
        .net
        .nodes
        .iter()
        .zip(&analysis.layers)
        .zip(times.wall_ms.iter().zip(&times.busy_ms))
        .zip(&lowered.layers)
        .zip(kernels)
        .enumerate()
        .map(|(i, ((((node, row), (&t, &busy)), layer), kernel))| {
            let mean_ms = t / iterations as f64;
            let fused = matches!(layer, crate::exec::lower::Layer::Identity | crate::exec::lower::Layer::PassInput(_));
            // A fused expansion's work is done here: its FLOPs count here, and the expanded
            // tensor it would write and this conv read is never moved.
            let (flops, intensity) = match lowered.fused_expansion(i).map(|e| &analysis.layers[e]) {
                Some(e) => {
                    let flops = row.flops + e.flops;
                    let bytes = (row.bytes_moved + e.bytes_moved).saturating_sub(2 * e.output_bytes);
                    (flops, if bytes > 0 { flops as f64 / bytes as f64 } else { 0.0 })
                }
                None => (row.flops, row.arithmetic_intensity),
            };
            LayerTime {
                name: node.name.clone(),
                op: node.op.type_name().to_string(),
                mean_ms,
                share: if sum > 0.0 { t / sum } else { 0.0 },
                flops,
                achieved_gflops_per_s: if mean_ms > 0.0 && !fused { flops as f64 / (mean_ms / 1e3) / 1e9 } else { 0.0 },
                arithmetic_intensity: intensity,
                fused,
                thread_use: (busy > 0.0 && t > 0.0).then(|| busy / (t * threads)),
                kernel,
            }
        })
        .collect())
}
