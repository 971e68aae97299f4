//! ONNX export: every zoo model passes the official checker (with `full_check`, so ONNX's
//! own shape inference must agree with ours), and onnxruntime computes what a naive
//! reference implementation of the IR's (PyTorch's) semantics computes, on nets that use
//! every op and its corner cases: asymmetric padding, dilation, groups, pools that round
//! up with and without counting padding, LRN of odd and even size, shuffles and slices.
//!
//! Python with onnx, onnxruntime and numpy comes from `common::python` (a venv under the
//! target directory, made once, or `SYNPROF_PYTHON`).

use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Command;
use synprof::export::onnx::{to_onnx, ExportError};
use synprof::export::onnx_proto::{tensor_shape_proto::dimension::Value as Dim, type_proto, ModelProto};
use synprof::graph::{Net, NetBuilder, Op};
use synprof::weights::{synthetic_input, NodeParams, Weights};
use synprof::zoo;

mod common;
use common::npy::{read_npy, write_npy};
use common::op_nets::{convs_and_activations, everything_else, flat_mlp, pools};
use common::python::python_with;

const PACKAGES: &[&str] = &["onnx", "onnxruntime", "numpy"];

/// Models checked with their weights (and run once by onnxruntime), besides the sweep of
/// every zoo model without weights.
const WITH_WEIGHTS: &[&str] = &[
    "resnet18",
    "mobilenet_v2",
    "squeezenet1_1",
    "shufflenet_v2_x1_0",
    "googlenet",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "keras_cifar10_cnn",
];

/// A fresh scratch directory, removed when the test passes.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("synprof-onnx-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `tests/python/onnx_check.py` with `args`; panics with its output on failure.
fn onnx_check(args: &[&std::ffi::OsStr]) -> String {
    let python = python_with(PACKAGES);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/onnx_check.py");
    let out = Command::new(&python).arg(&script).args(args).output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        panic!("onnx_check.py failed ({}):\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    stdout
}

#[test]
fn every_zoo_model_passes_the_onnx_checker() {
    let dir = Scratch::new("zoo");
    let mut files = Vec::new();
    for model in zoo::registry().iter().filter(|m| m.build.is_some()) {
        let net = model.build(None).unwrap();
        let bytes = to_onnx(&net, None, None).unwrap_or_else(|e| panic!("{}: {e}", model.name));
        let path = dir.0.join(format!("{}.onnx", model.name));
        std::fs::write(&path, bytes).unwrap();
        files.push(path);
    }
    let swept = files.len();
    assert!(swept >= 40, "only {swept} zoo models");
    for name in WITH_WEIGHTS {
        let net = zoo::build(name, None).unwrap();
        let weights = Weights::init(&net, 1);
        let bytes = to_onnx(&net, Some(&weights), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let path = dir.0.join(format!("{name}.weights.onnx"));
        std::fs::write(&path, bytes).unwrap();
        files.push(path);
    }
    // A fixed batch as well as the symbolic one.
    let net = zoo::build("resnet50", None).unwrap();
    let path = dir.0.join("resnet50.batch8.onnx");
    std::fs::write(&path, to_onnx(&net, None, Some(8)).unwrap()).unwrap();
    files.push(path);

    let mut args: Vec<&std::ffi::OsStr> = vec!["--smoke".as_ref()];
    args.extend(files.iter().map(|p| p.as_os_str()));
    let stdout = onnx_check(&args);
    let ok = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(ok, files.len(), "{stdout}");
    let ran = stdout.lines().filter(|l| l.contains("; ran: ")).count();
    assert_eq!(ran, WITH_WEIGHTS.len(), "every model with weights runs:\n{stdout}");
    eprintln!("{swept} zoo models without weights and {} with weights pass the checker", WITH_WEIGHTS.len());
}

fn dims(value: &synprof::export::onnx_proto::ValueInfoProto) -> Vec<String> {
    let Some(type_proto::Value::TensorType(t)) = value.r#type.as_ref().and_then(|t| t.value.clone()) else {
        panic!("{} is not a tensor", value.name)
    };
    t.shape
        .unwrap()
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Dim::DimValue(v)) => v.to_string(),
            Some(Dim::DimParam(p)) => p.clone(),
            None => "?".to_string(),
        })
        .collect()
}

#[test]
fn the_model_has_the_promised_structure() {
    let net = zoo::build("resnet18", None).unwrap();
    let weights = Weights::init(&net, 3);
    let model = ModelProto::decode(to_onnx(&net, Some(&weights), None).unwrap().as_slice()).unwrap();
    assert_eq!(model.ir_version, 8);
    assert_eq!(model.opset_import.len(), 1);
    assert_eq!((model.opset_import[0].domain.as_str(), model.opset_import[0].version), ("", 17));
    assert_eq!(model.producer_name, "synprof");
    assert_eq!(model.producer_version, env!("CARGO_PKG_VERSION"));
    let graph = model.graph.as_ref().unwrap();
    assert_eq!(graph.name, "resnet18");
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name, "input");
    assert_eq!(dims(&graph.input[0]), ["N", "3", "224", "224"]);
    assert_eq!(graph.output.len(), 1);
    assert_eq!(graph.output[0].name, net.nodes[net.outputs[0]].name);
    assert_eq!(dims(&graph.output[0]), ["N", "1000"]);
    // Every IR node's value is there by name.
    let produced: std::collections::HashSet<&str> =
        graph.node.iter().flat_map(|n| n.output.iter().map(String::as_str)).collect();
    for node in net.nodes.iter().filter(|n| !matches!(n.op, Op::Input { .. })) {
        assert!(produced.contains(node.name.as_str()), "no value named {}", node.name);
    }
    // Parameters: raw little-endian f32, PyTorch's names.
    let conv1 = graph.initializer.iter().find(|t| t.name == "conv1.weight").expect("conv1.weight");
    assert_eq!(conv1.dims, [64, 3, 7, 7]);
    let Some(NodeParams::Conv { weight, .. }) = weights.get("conv1") else { panic!() };
    let first = f32::from_le_bytes(conv1.raw_data[..4].try_into().unwrap());
    assert_eq!(first, weight.data[0]);
    assert_eq!(conv1.raw_data.len(), 4 * weight.data.len());
    assert!(graph.initializer.iter().any(|t| t.name == "bn1.running_var"));
    let params: usize = graph
        .initializer
        .iter()
        .filter(|t| !t.name.ends_with("running_mean") && !t.name.ends_with("running_var"))
        .map(|t| t.raw_data.len() / 4)
        .sum();
    assert_eq!(params, weights.trainable_elements());

    // Without weights the parameters are graph inputs; with a batch, N is fixed.
    let model = ModelProto::decode(to_onnx(&net, None, Some(4)).unwrap().as_slice()).unwrap();
    let graph = model.graph.as_ref().unwrap();
    assert!(graph.initializer.is_empty());
    assert_eq!(dims(&graph.input[0]), ["4", "3", "224", "224"]);
    let conv1 = graph.input.iter().find(|v| v.name == "conv1.weight").expect("conv1.weight input");
    assert_eq!(dims(conv1), ["64", "3", "7", "7"]);
    let param_count: usize = net
        .nodes
        .iter()
        .map(|n| match &n.op {
            Op::Conv2d(c) => 1 + c.bias as usize,
            Op::Linear { bias, .. } => 1 + *bias as usize,
            Op::BatchNorm { .. } => 4,
            _ => 0,
        })
        .sum();
    assert_eq!(param_count, 20 + 4 * 20 + 2);
    assert_eq!(graph.input.len(), 1 + param_count);
}

#[test]
fn export_errors_name_the_node() {
    let net = zoo::build("resnet18", None).unwrap();
    let other = Weights::init(&zoo::build("vgg11", None).unwrap(), 1);
    let err: ExportError = to_onnx(&net, Some(&other), None).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.node.as_deref(), Some("conv1"), "{text}");
    assert!(text.contains("`conv1`") && text.contains("ONNX"), "{text}");

    let mut g = NetBuilder::new("clash", &[3, 8, 8]);
    let x = g.named("data").push(Op::Input { shape: vec![3, 8, 8] }, &[]);
    let y = g.named("input").relu(x);
    let net = g.finish(y).unwrap();
    let text = to_onnx(&net, None, None).unwrap_err().to_string();
    assert!(text.contains("`input`") && text.contains("data"), "{text}");
}

// ---------------------------------------------------------------------------------------
// Numeric check: onnxruntime against the naive reference interpreter (exec::reference).

#[test]
fn onnxruntime_computes_what_the_reference_computes() {
    let dir = Scratch::new("numeric");
    let mut cases: Vec<(String, Net, usize, Option<usize>)> = vec![
        ("convs_and_activations".into(), convs_and_activations(), 2, None),
        ("pools".into(), pools(), 2, None),
        ("everything_else".into(), everything_else(), 3, None),
        ("everything_else_batch3".into(), everything_else(), 3, Some(3)),
        ("flat_mlp".into(), flat_mlp(), 4, None),
    ];
    for name in ["keras_cifar10_cnn", "squeezenet1_1"] {
        cases.push((name.into(), zoo::build(name, None).unwrap(), if name == "squeezenet1_1" { 1 } else { 2 }, None));
    }
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for (i, (name, net, batch, fixed)) in cases.iter().enumerate() {
        let weights = Weights::init(net, 11 + i as u64);
        let x = synthetic_input(net, *batch, 5 + i as u64);
        let reference = synprof::exec::reference::run(net, &weights, &x);
        let out = reference[net.outputs[0]].clone();
        let bytes = to_onnx(net, Some(&weights), *fixed).unwrap_or_else(|e| panic!("{name}: {e}"));
        let model = dir.0.join(format!("{name}.onnx"));
        std::fs::write(&model, bytes).unwrap();
        write_npy(&dir.0.join(format!("{name}.input.npy")), &x.shape, &x.data);
        files.push(model);
        expected.push((name.clone(), out));
    }
    let mut args: Vec<&std::ffi::OsStr> = vec!["--run-each".as_ref()];
    args.extend(files.iter().map(|p| p.as_os_str()));
    let stdout = onnx_check(&args);

    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (name, want) in &expected {
        let (shape, got) = read_npy(&dir.0.join(format!("{name}.output.npy")));
        assert_eq!(shape, want.shape, "{name}: output shape\n{stdout}");
        let scale = want.data.iter().fold(0f64, |m, v| m.max(v.abs()));
        let (worst, at) = got
            .iter()
            .zip(&want.data)
            .enumerate()
            .map(|(i, (&g, &w))| ((g as f64 - w).abs(), i))
            .fold((0f64, 0), |a, b| if b.0 > a.0 { b } else { a });
        let relative = worst / scale;
        report.push(format!("{name}: max |ort - reference| = {worst:.3e} ({relative:.2e} of max |output| {scale:.3})"));
        if relative.is_nan() || relative > 1e-4 {
            failures.push(format!("{name}: element {at}: onnxruntime {} vs reference {}", got[at], want.data[at]));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}\n{}", failures.join("\n"), report.join("\n"));
}
