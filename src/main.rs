//! The `synprof` command line: parse, call the library, print.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use synprof::cli;
use synprof::graph::{format, Shape};
use synprof::{source, Dtype};

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

#[derive(Parser)]
#[command(name = "synprof", version, about = "Synthetic and reference CNN workloads, profiled on CPUs and GPUs", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
    /// Write a model as a synprof model file (JSON).
    #[command(
        after_help = "Examples:\n  synprof export resnet50 -o resnet50.json\n  synprof export mobilenet_v2 --input 3x160x160 -o mnv2_160.json"
    )]
    Export {
        /// A zoo model name or a model file.
        model: String,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
        /// Per-sample input shape (default: the model's own).
        #[arg(long, value_parser = Shape::parse)]
        input: Option<Shape>,
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
        Command::Export { model, output, input } => {
            let net = source::load(&model, input.as_ref())?;
            format::save(&net, &output).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
            Ok(format!("wrote {} ({} nodes) to {}\n", net.name, net.nodes.len(), output.display()))
        }
    }
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
