//! `synprof import`: an ONNX model into a synprof model file, with what was read and folded.

use super::text::{si, thousands};
use crate::analysis::analyze;
use crate::graph::{format, Shape};
use crate::import::{import_file, ImportOptions};
use crate::Dtype;
use std::path::{Path, PathBuf};

pub struct Request {
    pub file: PathBuf,
    pub output: Option<PathBuf>,
    pub input: Option<Shape>,
    pub name: Option<String>,
    /// Where to write the model's own weights (safetensors), if it carries them.
    pub weights_out: Option<PathBuf>,
}

pub fn run(r: &Request) -> Result<String, Box<dyn std::error::Error>> {
    let imported = import_file(&r.file, &ImportOptions { input: r.input.clone(), name: r.name.clone() })?;
    let net = &imported.net;
    let a = analyze(net, 1, Dtype::F32);
    let mut out = format!(
        "imported {} from {}: {} nodes, input {} per sample, {} params, {} MACs per image\n",
        net.name,
        r.file.display(),
        net.nodes.len(),
        net.input_shape(),
        thousands(a.totals.params),
        si(a.totals.macs as f64)
    );
    out.push_str(match &imported.weights {
        Some(_) => "weights: read from the model\n",
        None => "weights: none in the model (parameters are graph inputs); runs use seeded random weights\n",
    });
    let mut counted: Vec<(&String, usize)> = Vec::new();
    for note in &imported.notes {
        match counted.iter_mut().find(|(n, _)| *n == note) {
            Some((_, k)) => *k += 1,
            None => counted.push((note, 1)),
        }
    }
    for (note, k) in counted {
        out.push_str(&format!("  {k} x {note}\n"));
    }
    if let Some(path) = &r.output {
        write(path, format::to_string(net).as_bytes())?;
        out.push_str(&format!("wrote {}\n", path.display()));
    }
    if let Some(path) = &r.weights_out {
        let weights = imported
            .weights
            .as_ref()
            .ok_or_else(|| format!("--weights-out {}: the model carries no weights to write", path.display()))?;
        let tensors = crate::export::safetensors::named_tensors(weights);
        write(path, &crate::export::safetensors::to_bytes(&tensors))?;
        out.push_str(&format!("wrote its weights to {}\n", path.display()));
    }
    if r.output.is_none() {
        out.push_str("(give -o FILE.json to save the model file; any .onnx file also works directly with inspect, run and profile)\n");
    }
    Ok(out)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
