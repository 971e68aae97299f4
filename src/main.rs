//! The `synprof` command line: parse, call the library, print.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use synprof::cli;
use synprof::exec::run::{RunOptions, Window};
use synprof::exec::{device, DeviceSpec, Mode};
use synprof::graph::{format, Shape};
use synprof::{source, Dtype};

/// Comma-separated batch sizes (clap would take a `Vec` as repeated flags).
#[derive(Clone, Debug)]
struct Batches(Vec<usize>);

fn parse_batches(text: &str) -> Result<Batches, String> {
    text.split(',')
        .map(|b| match b.trim().parse::<usize>() {
            Ok(n) if (1..=1 << 20).contains(&n) => Ok(n),
            _ => Err(format!("`{b}` is not a batch size: expected a list such as 1,8,32")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Batches)
}

const COUNTING: &str = "\
Counting conventions:
  params   trainable parameters; batch-norm gamma and beta count, running mean and
           variance do not (shown apart), as torchvision and PyTorch's numel sum do
  MACs     multiply-accumulates of conv and linear layers only (torchvision/fvcore
           convention: their published \"GFLOPS\" compare with our GMACs)
  FLOPs    2 x MACs, plus the other arithmetic (bias, batch-norm, activations, pooling,
           elementwise) counted separately and reported beside it
  bytes    the minimum traffic of each layer at the dtype: inputs, outputs and weights
           once; arithmetic intensity = FLOPs / bytes";

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// synprof's model file.
    Json,
    Onnx,
    /// A readable PyTorch nn.Module (.py) from a template.
    Pytorch,
    /// The seeded weights (--seed) as safetensors, under synprof's parameter names.
    Safetensors,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum WeightsChoice {
    Random,
    None,
}

#[derive(Parser)]
#[command(name = "synprof", version, about = "Synthetic and reference CNN workloads, profiled on CPUs and GPUs", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where, in which precision and at which batch sizes a model runs (`run`, `paired`).
#[derive(Args)]
struct Workload {
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu", value_parser = DeviceSpec::parse)]
    device: DeviceSpec,
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
    /// Batch sizes, comma separated.
    #[arg(long, default_value = "1", value_parser = parse_batches)]
    batch: Batches,
}

// One value per process, parsed once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// List the reference models with their parameter and MAC counts.
    #[command(after_help = "Examples:\n  synprof zoo\n  synprof zoo --family resnet\n  synprof zoo --json")]
    Zoo {
        /// Only this family (resnet, inception, mobilenet, ...).
        #[arg(long)]
        family: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a model's layers with shapes, params, MACs and totals.
    #[command(after_help = format!("Examples:\n  synprof inspect resnet50\n  synprof inspect resnet50 --input 3x320x320 --batch 8 --dtype f16\n  synprof inspect resnet50 --json\n  synprof inspect my_net.json\n\n{COUNTING}"))]
    Inspect {
        /// A zoo model name (see `synprof zoo`) or a model file (.json).
        model: String,
        /// Per-sample input shape, e.g. 3x320x320 (default: the model's own).
        #[arg(long, value_parser = Shape::parse)]
        input: Option<Shape>,
        /// Batch size the counts are for.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        batch: u32,
        /// Element type for bytes and arithmetic intensity.
        #[arg(long, value_enum, default_value_t = Dtype::F32)]
        dtype: Dtype,
        /// Also print the workload characteristics (MAC shares, intensity, widths).
        #[arg(long)]
        characteristics: bool,
        /// Print JSON (layers, totals and characteristics) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Execute a model and print throughput and latency (inference or training).
    #[command(
        after_help = "Examples:\n  synprof run resnet50 --batch 1,8\n  synprof run mobilenet_v2 --batch 16 --threads 2 --layers\n  synprof run resnet50 --mode train --batch 8\n  synprof run resnet50 --device cuda:0 --dtype bf16 --batch 1,32,128\n  synprof run my_net.json --json\n\nTiming: warm-up (iterations and seconds), then a measured window of at least --iters\niterations and --min-secs seconds; the device is synchronised around every timed\niteration; latencies are per batch; images/s = images / measured time."
    )]
    Run {
        /// A zoo model name or a model file.
        model: String,
        #[command(flatten)]
        workload: Workload,
        #[arg(long, value_enum, default_value_t = Mode::Infer)]
        mode: Mode,
        /// CPU threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Per-sample input shape (default: the model's own).
        #[arg(long, value_parser = Shape::parse)]
        input: Option<Shape>,
        #[arg(long, default_value_t = 3)]
        warmup_iters: usize,
        #[arg(long, default_value_t = 1.0)]
        warmup_secs: f64,
        /// Measure at least this many iterations...
        #[arg(long, default_value_t = 10)]
        iters: usize,
        /// ...and at least this many seconds.
        #[arg(long, default_value_t = 3.0)]
        min_secs: f64,
        /// Stop measuring after this many seconds even below --iters.
        #[arg(long, default_value_t = 120.0)]
        max_secs: f64,
        /// Seed for weights, inputs and labels.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Keep batch-norms separate instead of folding them into convs.
        #[arg(long)]
        no_fold: bool,
        /// How convs run at f32 inference on the CPU: `packed` (synprof's kernels, bias and
        /// ReLU fused) or `candle` (Tensor::conv2d). Default: $SYNPROF_CPU_CONV, else packed.
        #[arg(long, value_enum)]
        cpu_conv: Option<synprof::exec::lower::ConvAlgorithm>,
        /// Also time every layer (inference).
        #[arg(long)]
        layers: bool,
        /// candle (synprof's own), or an external runtime in a Python subprocess: onnxruntime
        /// (f32 inference on the ONNX export) or pytorch (eager, torch.nn.functional).
        /// Python: SYNPROF_PYTHON, else python3.
        #[arg(long, value_enum, default_value_t = synprof::exec::Backend::Candle)]
        backend: synprof::exec::Backend,
        /// Do not sample power, energy, utilisation and clocks (telemetry) during the run.
        #[arg(long)]
        no_telemetry: bool,
        /// Telemetry sampling interval in ms (default: twice as fast as the counters update).
        #[arg(long)]
        telemetry_interval_ms: Option<f64>,
        /// Print JSON (every case with all latencies).
        #[arg(long)]
        json: bool,
    },
    /// Run a profile (a sweep of cases) and write results and a report under reports/.
    #[command(
        after_help = "Examples:\n  synprof profile                     # the default profile (quick)\n  synprof profile quick --dry-run     # the plan and an estimated time\n  synprof profile profiles/my.toml\n  synprof profile quick --resume reports/latest\n\nEvery case runs in its own process; results are appended to\nreports/<run-id>/results.jsonl as each case finishes, so Ctrl-C or a crash loses\nnothing already measured. reports/latest points at the newest run."
    )]
    Profile {
        /// A shipped profile name (quick) or a profile file.
        #[arg(default_value = "quick")]
        profile: String,
        /// Print the plan with an estimated time and stop.
        #[arg(long)]
        dry_run: bool,
        /// Continue a run directory, skipping cases it already has.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Where run directories go.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
    },
    /// Measure how representative a mimic proxy is: target and proxy on the same device
    /// across configurations and batch sizes (throughput error, op-type time shares,
    /// relative speed across configurations).
    #[command(
        after_help = "Examples:\n  synprof fidelity --like resnet50\n  synprof fidelity --like mobilenet_v2 --threads 1,2 --batch 1,8 --seconds 3\n  synprof fidelity --like resnet50 --device cuda:0 --dtype f32,bf16 --batch 1,32\n  synprof fidelity --from reports/latest\n\nRuns a profile (written into the run directory) of TARGET and `mimic:like=TARGET,seed=S`\non every combination of --device, --dtype, --threads and --batch, with per-layer timing,\nthen writes fidelity.md and fidelity.json beside the usual report. --from reads any run\nthat holds a model and its mimic proxy. Targets: throughput within 10%, relative speed\n(each configuration against the first) within 5%."
    )]
    Fidelity {
        /// The target model (zoo name or model file).
        #[arg(long, required_unless_present = "from")]
        like: Option<String>,
        /// The proxy's seed (`mimic:like=TARGET,seed=S`).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Start the proxy's search from a copy of the target given this many random changes
        /// per layer (`mimic:...,jitter=J`; 0.5: about half its layers): a proxy that is not
        /// the target's own layers.
        #[arg(long)]
        jitter: Option<f64>,
        /// Devices (comma-separated): cpu, cuda:0, ...
        #[arg(long, default_value = "cpu", value_delimiter = ',')]
        device: Vec<String>,
        #[arg(long, default_value = "f32", value_delimiter = ',')]
        dtype: Vec<String>,
        /// CPU thread counts to compare (the default: 1 and all cores).
        #[arg(long, value_delimiter = ',')]
        threads: Vec<usize>,
        #[arg(long, default_value = "1,8", value_delimiter = ',')]
        batch: Vec<usize>,
        /// Minimum measured seconds per case.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Skip the per-layer timing (no op-type shares, faster).
        #[arg(long)]
        no_layers: bool,
        /// Rounds over all cases (each case's figures in the report are its median round).
        #[arg(long, default_value_t = 1)]
        repeats: usize,
        /// Burst pairs of the paired timing (target and proxy alternating in one process, per
        /// configuration and batch); the throughput and ratio errors come from it. 0: skip it.
        #[arg(long, default_value_t = 12)]
        bursts: usize,
        /// Compute the fidelity of an existing run directory instead of running.
        #[arg(long, conflicts_with = "like")]
        from: Option<PathBuf>,
        /// Print the plan and stop.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
    },
    /// Write the HTML report of a run: index.html with PNG/SVG plots and CSV tables beside it.
    #[command(
        after_help = "Examples:\n  synprof report reports/latest\n  synprof report reports/latest --out /tmp/r --templates my_templates/\n\nThe page opens from disk with no network. Templates (report.html, compare.html,\nmacros.html, style.css) come from --templates, RUN_DIR/templates, the run directory's\nparent's templates/ or ./templates when there, else the built-in ones."
    )]
    Report {
        /// A run directory (reports/<run-id> or reports/latest).
        run_dir: PathBuf,
        /// Write into this directory instead of the run directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A directory of templates overriding the built-in ones, file by file.
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Compare runs: images/s and speedups per model, mode, dtype and batch (first run = baseline).
    #[command(
        after_help = "Examples:\n  synprof compare reports/2026-11-23T15-11-41Z_quick reports/latest\n  synprof compare cpu_run/ gpu_run/ --out reports/cpu-vs-gpu\n\nSpeedup = images/s of a side / images/s of the baseline for the same model, mode,\ndtype and batch; a side is one run on one device with one backend. One run that\nused several devices can be compared on its own."
    )]
    Compare {
        /// Run directories; the first is the baseline.
        #[arg(required = true, num_args = 1..)]
        runs: Vec<PathBuf>,
        /// Output directory (default: reports/compare-<UTC time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// A directory of templates overriding the built-in ones, file by file.
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Time synprof against onnxruntime or PyTorch in alternating bursts: one ratio per pair.
    #[command(
        after_help = "Examples:\n  synprof paired resnet50 --threads 2\n  synprof paired mobilenet_v2 --batch 1,16 --bursts 30 --burst-secs 1\n  synprof paired resnet50 --against pytorch --json\n\nThe peer (A) runs in a Python subprocess (SYNPROF_PYTHON, else python3) that keeps the\nmodel loaded and warm and times a burst when asked; synprof (B) runs in this process.\nBursts alternate A B, B A, ...; each pair gives a ratio B / A measured within about a\nsecond, so a machine whose speed drifts slows both sides alike. Inference."
    )]
    Paired {
        /// A zoo model name or a model file.
        model: String,
        /// The peer runtime.
        #[arg(long, value_enum, default_value_t = synprof::exec::Backend::Onnxruntime)]
        against: synprof::exec::Backend,
        #[command(flatten)]
        workload: Workload,
        /// CPU threads, both sides (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Per-sample input shape (default: the model's own).
        #[arg(long, value_parser = Shape::parse)]
        input: Option<Shape>,
        /// Burst pairs per batch.
        #[arg(long, default_value_t = 20)]
        bursts: usize,
        /// Seconds per burst (at least one iteration).
        #[arg(long, allow_negative_numbers = true, default_value_t = 0.5)]
        burst_secs: f64,
        /// Warm-up seconds per side before the first pair.
        #[arg(long, allow_negative_numbers = true, default_value_t = 2.0)]
        warmup_secs: f64,
        /// Idle seconds before each burst, so the other side's threads have gone quiet
        /// (onnxruntime's pool spins ~30 ms after a run, taking a core from the next burst).
        #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
        settle_secs: f64,
        /// Seed for weights and inputs (both sides run the same ones).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print JSON (every burst of both sides).
        #[arg(long)]
        json: bool,
    },
    /// Run one case of a sweep (used by `synprof profile`; prints a JSON reply).
    #[command(hide = true)]
    Case {
        /// The case order as JSON.
        order: String,
    },
    /// Time two models in alternating bursts (used by `synprof fidelity`; prints a JSON reply).
    #[command(hide = true)]
    Pair {
        /// The pair order as JSON.
        order: String,
    },
    /// List the CPU and GPUs: names, driver, memory, power limit, clocks, telemetry.
    #[command(
        after_help = "Examples:\n  synprof devices\n  synprof devices --peak --threads 8\n  synprof devices --json\n\n--peak measures ceilings with microbenchmarks: f32 matmul GFLOP/s (candle) and a\nmemory-bandwidth triad on the CPU; f32, tf32, f16 and bf16 matmul and device bandwidth\non each GPU (CUDA builds). Datasheet peaks come from profiles/devices/*.toml."
    )]
    Devices {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also measure peak matmul FLOP/s and memory bandwidth.
        #[arg(long)]
        peak: bool,
        /// CPU threads for the CPU microbenchmarks (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Generate synthetic nets (synNet-style samples, ParaDnn grids) as model files.
    #[command(
        after_help = "Examples:\n  synprof generate --style synnet --seed 7\n  synprof generate --style synnet --seed 7 --groups 6 --input 224 --mix plain:0.6,bottleneck:0.2,inverted:0.2 --se 0.25 --max-gmacs 5 -o net.json\n  synprof generate --family paradnn --filters 32 --blocks 4 --input 200 --block bottleneck -o f.json\n  synprof generate --family paradnn --sweep filters=16,32,64 blocks=1,2,4 -o grid/\n  synprof generate --style synnet --sweep seed=1..100 --max-gmacs 2 -o samples/\n  synprof generate --spec my_generator.toml -o net.json\n\nsynnet keys: seed groups input classes layers_mean layers_sd layers_min layers_max\n  kernels (size:weight,...) channels_mu channels_slope channels_sigma channels_min\n  channels_max mix (plain|bottleneck|inception|dense|separable|inverted:weight,...) se\n  max_gmacs max_params resample (the defaults are fitted to AI Matrix's synNet)\nparadnn keys: block filters blocks input classes\nA spec file (TOML, or JSON by extension) holds the same keys, family = \"synnet\" and\ntables for weights ([mix] plain = 0.7). Flags override it; --set key=value sets any key.\nThe same nets load anywhere a model goes as a spec string, e.g.\n  synprof inspect synnet:seed=7,max_gmacs=5"
    )]
    Generate {
        /// Generator family: synnet or paradnn.
        #[arg(long, visible_alias = "style")]
        family: Option<String>,
        /// A spec file (TOML or .json) or a spec string (synnet:seed=7,...).
        #[arg(long)]
        spec: Option<String>,
        #[arg(long)]
        seed: Option<String>,
        /// synnet: groups of layers at halving resolutions.
        #[arg(long)]
        groups: Option<String>,
        /// Input height and width.
        #[arg(long)]
        input: Option<String>,
        #[arg(long)]
        classes: Option<String>,
        /// synnet: block kinds with weights, e.g. plain:0.5,bottleneck:0.2,inception:0.1,dense:0.1,inverted:0.1.
        #[arg(long)]
        mix: Option<String>,
        /// synnet: kernel sizes with weights, e.g. 3:0.6,5:0.4.
        #[arg(long)]
        kernels: Option<String>,
        /// synnet: probability of a squeeze-excite after a layer.
        #[arg(long)]
        se: Option<String>,
        /// synnet: at most this many GMACs per image.
        #[arg(long)]
        max_gmacs: Option<String>,
        /// synnet: at most this many trainable parameters.
        #[arg(long)]
        max_params: Option<String>,
        /// paradnn: filters of the first group.
        #[arg(long)]
        filters: Option<String>,
        /// paradnn: blocks per group.
        #[arg(long)]
        blocks: Option<String>,
        /// paradnn: residual or bottleneck.
        #[arg(long)]
        block: Option<String>,
        /// mimic: the zoo model(s) whose workload characteristics to match, e.g. resnet50 or
        /// resnet50,googlenet (implies --family mimic; prints the distance per characteristic).
        #[arg(long)]
        like: Option<String>,
        /// mimic: weights of a mix, e.g. resnet50:0.7,googlenet:0.3.
        #[arg(long, value_name = "MODEL:WEIGHT,...")]
        mix_weights: Option<String>,
        /// mimic: scale the proxy to this many GMACs per image.
        #[arg(long)]
        budget_gmacs: Option<String>,
        /// Any key as key=value (repeatable), e.g. --set channels_sigma=1.0.
        #[arg(long, value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// One net per combination: key=v1,v2,... or key=a..b, several keys.
        #[arg(long, num_args = 1..)]
        sweep: Vec<String>,
        /// Output file (a directory with --sweep); without it only a summary is printed.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Read an ONNX model into a synprof model file (JSON).
    #[command(
        after_help = "Examples:\n  synprof import resnet50.onnx -o resnet50.json\n  synprof import my_model.onnx --input 3x512x512 -o my_model.json\n  synprof import resnet50.onnx --weights-out resnet50.safetensors\n\nAny .onnx file also works directly where a model is expected (inspect, run, profile,\ngenerate --like). Supported: the CNN ops of the IR (conv, batch-norm, activations, pools,\nLRN, add, mul, concat, split/slice, shuffle, flatten, gemm/matmul, dropout, softmax) and\nconstant subgraphs; anything else is an error naming the op and the node."
    )]
    Import {
        /// The ONNX file.
        file: PathBuf,
        /// Write the synprof model file here.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Per-sample input shape, for models with symbolic spatial sizes (e.g. 3x224x224).
        #[arg(long, value_parser = Shape::parse)]
        input: Option<Shape>,
        /// The net's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Write the model's own weights as safetensors (synprof's parameter names).
        #[arg(long)]
        weights_out: Option<PathBuf>,
    },
    /// Write a model as a synprof model file (JSON) or as ONNX.
    #[command(
        after_help = "Examples:\n  synprof export resnet50 -o resnet50.json\n  synprof export mobilenet_v2 --input 3x160x160 -o mnv2_160.json\n  synprof export resnet50 --format onnx -o resnet50.onnx\n  synprof export resnet50 --format onnx --weights none --batch 8 -o r50_graph_only.onnx\n  synprof export resnet50 --format pytorch -o resnet50.py\n  synprof export resnet50 --format safetensors -o resnet50.safetensors\n\nONNX: opset 17, input `input` [N, ...], weights from --seed as initializers (the same\nweights `synprof run --seed` uses), or graph inputs with --weights none.\nPyTorch: a readable nn.Module (templates/export/pytorch.py.j2, or --template); load the\nseeded weights written by --format safetensors with its load_synprof_weights()."
    )]
    Export {
        /// A zoo model name or a model file.
        model: String,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Per-sample input shape (default: the model's own).
        #[arg(long, value_parser = Shape::parse)]
        input: Option<Shape>,
        /// ONNX: carry deterministic random weights, or none (parameters become inputs).
        #[arg(long, value_enum, default_value_t = WeightsChoice::Random)]
        weights: WeightsChoice,
        /// ONNX: seed of the weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// ONNX: a fixed batch size instead of the symbolic `N`.
        #[arg(long)]
        batch: Option<usize>,
        /// PyTorch: a template to render instead of templates/export/pytorch.py.j2.
        #[arg(long)]
        template: Option<PathBuf>,
    },
}

fn run(cli: Cli) -> Result<String, Box<dyn std::error::Error>> {
    match cli.command {
        Command::Zoo { family, json } => {
            let rows = cli::zoo::rows(family.as_deref());
            if rows.is_empty() {
                return Err(format!(
                    "no zoo family `{}`; `synprof zoo` lists the families",
                    family.unwrap_or_default()
                )
                .into());
            }
            Ok(if json { serde_json::to_string_pretty(&rows)? + "\n" } else { cli::zoo::render(&rows) })
        }
        Command::Inspect { model, input, batch, dtype, characteristics, json } => {
            let net = source::load(&model, input.as_ref())?;
            let report = cli::inspect::report(&net, batch as usize, dtype);
            Ok(if json {
                serde_json::to_string_pretty(&report)? + "\n"
            } else {
                cli::inspect::render(&report, characteristics)
            })
        }
        Command::Run {
            model,
            workload: Workload { device: device_spec, dtype, batch },
            mode,
            threads,
            input,
            warmup_iters,
            warmup_secs,
            iters,
            min_secs,
            max_secs,
            seed,
            no_fold,
            cpu_conv,
            layers,
            no_telemetry,
            telemetry_interval_ms,
            backend,
            json,
        } => {
            let batches = batch.0;
            if let Some(ms) = telemetry_interval_ms.filter(|ms| !(ms.is_finite() && *ms >= 1.0 && *ms <= 10_000.0)) {
                return Err(
                    format!("--telemetry-interval-ms {ms}: give a number of milliseconds from 1 to 10000").into()
                );
            }
            device::set_cpu_threads(threads)?;
            let net = source::load(&model, input.as_ref())?;
            let opts = RunOptions {
                device: device_spec,
                dtype,
                batch: batches[0],
                mode,
                warmup: Window { iterations: warmup_iters, seconds: warmup_secs },
                measure: Window { iterations: iters.max(1), seconds: min_secs },
                max_seconds: max_secs,
                seed,
                fold_batch_norm: !no_fold,
                layers,
                telemetry: !no_telemetry,
                telemetry_interval_ms,
                live: false,
                cpu_conv,
                backend,
            };
            let outcomes = cli::run::run_batches(&net, &opts, &batches, &mut |_| {});
            let failed = outcomes.iter().filter(|o| matches!(o, cli::run::Outcome::Failed { .. })).count();
            let text = if json { serde_json::to_string_pretty(&outcomes)? + "\n" } else { cli::run::render(&outcomes) };
            if failed == outcomes.len() {
                print!("{text}");
                std::io::Write::flush(&mut std::io::stdout())?;
                return Err(format!("all {failed} case(s) failed").into());
            }
            Ok(text)
        }
        Command::Profile { profile, dry_run, resume, reports } => {
            run_profile(&profile, dry_run, resume.as_deref(), &reports)
        }
        Command::Fidelity {
            like,
            seed,
            jitter,
            device,
            dtype,
            threads,
            batch,
            seconds,
            no_layers,
            repeats,
            bursts,
            from,
            dry_run,
            reports,
        } => {
            let dir = match (from, like) {
                (Some(dir), _) => dir,
                (None, Some(target)) => {
                    let request = cli::fidelity::Request {
                        target,
                        seed,
                        jitter,
                        device,
                        dtype,
                        threads,
                        batch,
                        seconds,
                        layers: !no_layers,
                        repeats,
                        bursts,
                    };
                    let text = cli::fidelity::profile_text(&request)?;
                    let (printed, dir) =
                        run_profile_text(&text, "fidelity.toml", "fidelity.toml", dry_run, None, &reports)?;
                    match dir {
                        Some(dir) => {
                            print!("{printed}");
                            let exe = synprof::sweep::runner::current_exe()?;
                            eprint!("{}", cli::fidelity::measure_pairs(&request, &dir, &exe)?);
                            if bursts > 0 {
                                // The report again, now with the paired figures in its Fidelity section.
                                synprof::report::report(&dir, &synprof::report::Options::default())?;
                            }
                            dir
                        }
                        None => return Ok(printed),
                    }
                }
                (None, None) => return Err("give --like TARGET or --from RUN_DIR".into()),
            };
            Ok(cli::fidelity::write(&dir)?)
        }
        Command::Report { run_dir, out, templates } => {
            let options = synprof::report::Options { out_dir: out, templates };
            Ok(synprof::report::report(&run_dir, &options)?.summary())
        }
        Command::Compare { runs, out, templates } => {
            let out = out.unwrap_or_else(|| synprof::report::default_compare_dir(std::path::Path::new("reports")));
            let options = synprof::report::Options { out_dir: None, templates };
            Ok(synprof::report::compare::compare(&runs, &out, &options)?.summary())
        }
        Command::Case { order } => {
            let order: synprof::sweep::runner::CaseOrder =
                serde_json::from_str(&order).map_err(|e| format!("not a case order: {e}"))?;
            let reply = synprof::sweep::runner::run_order(&order);
            Ok(serde_json::to_string(&reply)? + "\n")
        }
        Command::Paired {
            model,
            against,
            workload: Workload { device: device_spec, dtype, batch },
            threads,
            input,
            bursts,
            burst_secs,
            warmup_secs,
            settle_secs,
            seed,
            json,
        } => {
            let net = source::load(&model, input.as_ref())?;
            let render = |results: &[synprof::exec::paired::PairedResult]| -> Result<String, serde_json::Error> {
                Ok(if json {
                    serde_json::to_string_pretty(results)? + "\n"
                } else {
                    cli::paired::render(&net.name, results)
                })
            };
            let mut results = Vec::new();
            for b in batch.0 {
                let o = synprof::exec::paired::PairedOptions {
                    device: device_spec,
                    dtype,
                    batch: b,
                    threads,
                    bursts,
                    burst_seconds: burst_secs,
                    warmup_seconds: warmup_secs,
                    settle_seconds: settle_secs,
                    seed,
                };
                let r = match synprof::exec::paired::run_paired_with_peer(&net, against, &o) {
                    Ok(r) => r,
                    Err(e) => {
                        // What was measured before the failure is still printed.
                        if !results.is_empty() {
                            print!("{}", render(&results)?);
                        }
                        return Err(format!("{model} batch {b} against {against}: {e}").into());
                    }
                };
                if let Some([_, median, _]) = r.ratio_quartiles() {
                    eprintln!("batch {b}: synprof / {against} {median:.3} (median of {bursts} pairs)");
                }
                results.push(r);
            }
            Ok(render(&results)?)
        }
        Command::Pair { order } => {
            let order: cli::fidelity::PairOrder =
                serde_json::from_str(&order).map_err(|e| format!("not a pair order: {e}"))?;
            Ok(serde_json::to_string(&cli::fidelity::run_pair_order(&order))? + "\n")
        }
        Command::Devices { json, peak, threads } => {
            device::set_cpu_threads(threads)?;
            let report = cli::devices::report(peak, std::time::Duration::from_secs(2));
            Ok(if json { serde_json::to_string_pretty(&report)? + "\n" } else { cli::devices::render(&report) })
        }
        Command::Generate {
            family,
            spec,
            seed,
            groups,
            input,
            classes,
            mix,
            kernels,
            se,
            max_gmacs,
            max_params,
            filters,
            blocks,
            block,
            like,
            mix_weights,
            budget_gmacs,
            set,
            sweep,
            output,
        } => {
            // mimic's lists are `;`-separated inside a spec string
            // (--mix-weights names the models itself: it replaces --like's list)
            let mix_weights = mix_weights.map(|w| w.replace(',', ";"));
            let like = like.filter(|_| mix_weights.is_none()).map(|l| l.replace(',', ";"));
            let family = family.or_else(|| (like.is_some() || mix_weights.is_some()).then(|| "mimic".to_string()));
            let flags = [
                ("seed", seed),
                ("groups", groups),
                ("input", input),
                ("classes", classes),
                ("mix", mix),
                ("kernels", kernels),
                ("se", se),
                ("max_gmacs", max_gmacs),
                ("max_params", max_params),
                ("filters", filters),
                ("blocks", blocks),
                ("block", block),
                ("like", like),
                ("weights", mix_weights),
                ("budget_gmacs", budget_gmacs),
            ];
            let mut values: Vec<(String, String)> =
                flags.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))).collect();
            for kv in set {
                let (k, v) = kv.split_once('=').ok_or_else(|| format!("--set `{kv}`: expected key=value"))?;
                values.push((k.trim().to_string(), v.trim().to_string()));
            }
            let request = cli::generate::Request { family, spec, values, sweep, output };
            Ok(cli::generate::run(&request)?)
        }
        Command::Import { file, output, input, name, weights_out } => {
            Ok(cli::import::run(&cli::import::Request { file, output, input, name, weights_out })?)
        }
        Command::Export { model, output, format: file_format, input, weights, seed, batch, template } => {
            let net = source::load(&model, input.as_ref())?;
            let bytes = match file_format {
                ExportFormat::Json => format::to_string(&net).into_bytes(),
                ExportFormat::Pytorch => {
                    let template = template
                        .map(|t| std::fs::read_to_string(&t).map_err(|e| format!("{}: {e}", t.display())))
                        .transpose()?;
                    synprof::export::pytorch::to_pytorch(&net, &model, template.as_deref())?.into_bytes()
                }
                ExportFormat::Safetensors => {
                    let weights = synprof::weights::Weights::init(&net, seed);
                    synprof::export::safetensors::to_bytes(&synprof::export::safetensors::named_tensors(&weights))
                }
                ExportFormat::Onnx => {
                    let weights =
                        matches!(weights, WeightsChoice::Random).then(|| synprof::weights::Weights::init(&net, seed));
                    synprof::export::onnx::to_onnx(&net, weights.as_ref(), batch)?
                }
            };
            std::fs::write(&output, &bytes).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
            Ok(format!(
                "wrote {} ({} nodes, {} bytes) to {}\n",
                net.name,
                net.nodes.len(),
                bytes.len(),
                output.display()
            ))
        }
    }
}

fn run_profile(
    spec: &str,
    dry_run: bool,
    resume: Option<&std::path::Path>,
    reports: &std::path::Path,
) -> Result<String, Box<dyn std::error::Error>> {
    let (text, file) = synprof::sweep::shipped::resolve(spec)?;
    Ok(run_profile_text(&text, &file, spec, dry_run, resume, reports)?.0)
}

/// Run a profile given as text; returns what to print and the run directory (none for a
/// dry run). `spec` is how the user named it, for the `--resume` hint.
fn run_profile_text(
    text: &str,
    file: &str,
    spec: &str,
    dry_run: bool,
    resume: Option<&std::path::Path>,
    reports: &std::path::Path,
) -> Result<(String, Option<PathBuf>), Box<dyn std::error::Error>> {
    use synprof::sweep::{plan, profile, runner, store};
    let parsed = profile::parse(text, file)?;
    let plan = plan::expand(&parsed, file, &plan::Machine::detect())?;
    if dry_run {
        return Ok((plan::describe(&plan), None));
    }
    let dir = match resume {
        Some(path) => store::RunDir::open(path)?,
        None => runner::create_run(&plan, text, reports)?,
    };
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // A second Ctrl-C while a case runs falls through to the default (the case process
        // also gets it); the first one lets the loop stop after keeping what finished.
        let _ = ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
    }
    let total = plan.estimated_seconds.max(1.0);
    let bar = indicatif::ProgressBar::new(total.ceil() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {percent:>3}% eta {eta} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let estimates: std::collections::HashMap<String, f64> =
        plan.cases.iter().map(|c| (c.id.clone(), plan::estimate_seconds(c, &plan.profile.run))).collect();
    let last = std::cell::RefCell::new(String::new());
    let mut start = |i: usize, n: usize, case: &plan::Case| {
        bar.set_message(format!("[{}/{}] {}{}", i + 1, n, case.id, last.borrow()))
    };
    let mut done = |r: &synprof::sweep::record::Record| {
        bar.inc(estimates.get(&r.case.id).copied().unwrap_or(1.0).ceil() as u64);
        *last.borrow_mut() = match &r.result {
            Some(result) => format!("  (last: {:.1} images/s)", result.latency.images_per_s),
            None => "  (last: failed)".to_string(),
        };
    };
    let live_bar = bar.clone();
    let live = std::sync::Arc::new(move |phase: &str, rate: f64| {
        let msg = live_bar.message();
        let base = msg.split("  ~").next().unwrap_or_default().to_string();
        live_bar.set_message(format!("{base}  ~{rate:.1} images/s ({phase})"));
    });
    let exe = runner::current_exe()?;
    let ending =
        runner::run(&plan, &dir, &exe, &interrupted, runner::Progress { start: &mut start, done: &mut done, live })?;
    bar.finish_and_clear();
    let records = dir.records()?;
    let failed = records.iter().filter(|r| r.status == synprof::sweep::record::Status::Failed).count();
    let mut out = format!(
        "{} {} of {} cases ({failed} failed) in {}\n",
        if ending == runner::Ending::Interrupted { "interrupted after" } else { "ran" },
        records.len(),
        plan.cases.len(),
        dir.path.display()
    );
    if ending == runner::Ending::Interrupted {
        out.push_str(&format!("continue with: synprof profile {spec} --resume {}\n", dir.path.display()));
    }
    // A report that cannot be written must not lose the run: say so and keep the results.
    match synprof::report::report(&dir.path, &synprof::report::Options::default()) {
        Ok(written) => out.push_str(&written.summary()),
        Err(e) => out.push_str(&format!(
            "the report could not be written ({e}); retry with: synprof report {}\n",
            dir.path.display()
        )),
    }
    Ok((out, Some(dir.path.clone())))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
