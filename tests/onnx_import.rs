//! ONNX import (`synprof import`, any `.onnx` where a model goes).
//!
//! - Round trips: every zoo model, the op-coverage nets and 20 random nets, exported to
//!   ONNX and imported back, give the same IR (names included, the input's aside), the
//!   same analysis, and the same weights.
//! - Real models: the light model-zoo topologies that ship inside the `onnx` pip package
//!   (Caffe2 conversions: resnet50, densenet121, inception v1/v2, shufflenet, squeezenet,
//!   vgg19, alexnet, zfnet512), with random weights put in place of their constant fills,
//!   computed by synprof after import and by onnxruntime on the original graph: outputs and
//!   logits within 1e-4. Their parameter counts match the published ones.
//! - Bad input: errors name the file, the node, its op and index.
//!
//! Python with onnx, onnxruntime and numpy comes from `common::python`. The torchvision
//! exports are checked by an ignored test that needs PyTorch (`SYNPROF_TORCH_PYTHON`).

mod common;
use candle_core::{DType, Device, Tensor};
use common::npy::read_npy;
use common::op_nets::{convs_and_activations, everything_else, flat_mlp, pools};
use common::python::python_with;
use common::random_net::random_net;
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Command;
use synprof::analysis::analyze;
use synprof::exec::lower::{Lowered, Phase};
use synprof::exec::reference;
use synprof::export::onnx::to_onnx;
use synprof::export::onnx_proto::{
    tensor_proto::DataType, tensor_shape_proto::Dimension, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, ValueInfoProto,
};
use synprof::graph::{Net, Op, Shape};
use synprof::import::{import_bytes, import_file, ImportOptions};
use synprof::weights::{synthetic_input, Weights};
use synprof::{zoo, Dtype};

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("synprof-import-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }
}

/// The layer table and totals, names aside (the input is called `input` in ONNX).
fn analysis_without_names(net: &Net) -> serde_json::Value {
    let mut a = serde_json::to_value(analyze(net, 2, Dtype::F32)).unwrap();
    a["model"] = serde_json::Value::Null;
    for layer in a["layers"].as_array_mut().unwrap() {
        layer["name"] = serde_json::Value::Null;
    }
    a
}

/// Export with weights, import, and compare IR, analysis and weights.
fn round_trip(net: &Net, seed: u64) -> Result<(), String> {
    let weights = Weights::init(net, seed);
    let bytes = to_onnx(net, Some(&weights), None).map_err(|e| e.to_string())?;
    let back = import_bytes(&bytes, &format!("{}.onnx", net.name), None, &ImportOptions::default())
        .map_err(|e| e.to_string())?;
    let (a, b) = (net.to_raw(), back.net.to_raw());
    if a.len() != b.len() {
        return Err(format!("{} nodes came back as {}", a.len(), b.len()));
    }
    // Pools may come back with other flags that compute the same (ONNX spells some of
    // PyTorch's ceil-mode windows as explicit end padding); those nets are run by the
    // reference interpreter and must compute the same.
    let mut rewritten_pools = Vec::new();
    for (x, y) in a.iter().zip(&b).skip(1) {
        let rename = |i: &String| if i == &a[0].name { b[0].name.clone() } else { i.clone() };
        let inputs: Vec<String> = x.inputs.iter().map(rename).collect();
        let both_pools =
            matches!((&x.op, &y.op), (Op::MaxPool2d(_), Op::MaxPool2d(_)) | (Op::AvgPool2d(_), Op::AvgPool2d(_)));
        if x.name != y.name || inputs != y.inputs || (x.op != y.op && !both_pools) {
            return Err(format!(
                "node `{}` {:?} <- {:?} came back as `{}` {:?} <- {:?}",
                x.name, x.op, inputs, y.name, y.op, y.inputs
            ));
        }
        if x.op != y.op {
            rewritten_pools.push(x.name.clone());
        }
    }
    if !rewritten_pools.is_empty() {
        let input = synthetic_input(net, 2, seed);
        let (ours, theirs) = (reference::run(net, &weights, &input), reference::run(&back.net, &weights, &input));
        for (&o, &t) in net.outputs.iter().zip(&back.net.outputs) {
            let worst = ours[o].data.iter().zip(&theirs[t].data).map(|(p, q)| (p - q).abs()).fold(0f64, f64::max);
            if worst > 1e-9 {
                return Err(format!(
                    "pools {rewritten_pools:?} came back different and compute differently ({worst:e})"
                ));
            }
        }
    }
    if a[0].op != b[0].op {
        return Err(format!("input {:?} came back as {:?}", a[0].op, b[0].op));
    }
    if analysis_without_names(net) != analysis_without_names(&back.net) {
        return Err("the analysis differs".into());
    }
    let w = back.weights.ok_or("the weights did not come back")?;
    if w.by_node != weights.by_node {
        let differing: Vec<&String> =
            weights.by_node.iter().filter(|(k, v)| w.by_node.get(*k) != Some(v)).map(|(k, _)| k).collect();
        return Err(format!("weights differ for {differing:?}"));
    }
    // Without weights: the same net, and no weights.
    let bare = to_onnx(net, None, Some(2)).map_err(|e| e.to_string())?;
    let back = import_bytes(&bare, "bare.onnx", None, &ImportOptions::default()).map_err(|e| e.to_string())?;
    if back.weights.is_some_and(|w| !w.by_node.is_empty())
        || analysis_without_names(net) != analysis_without_names(&back.net)
    {
        return Err("without weights, the import differs or claims weights".into());
    }
    Ok(())
}

#[test]
fn every_zoo_model_and_every_op_round_trips_through_onnx() {
    let mut nets: Vec<Net> = zoo::registry().iter().filter_map(|m| m.build(None).ok()).collect();
    nets.extend([convs_and_activations(), pools(), everything_else(), flat_mlp()]);
    nets.extend((0..20).map(|s| random_net(900 + s)));
    let mut failures: Vec<String> = nets
        .iter()
        .enumerate()
        .filter_map(|(i, net)| round_trip(net, i as u64).err().map(|e| format!("{}: {e}", net.name)))
        .collect();
    // The one known exception: an LRN of even size, which the export writes out as
    // elementwise ops (ONNX's LRN centres an even window differently) and the import
    // does not reassemble; its error names the written-out node.
    let before = failures.len();
    failures.retain(|f| !(f.starts_with("everything_else:") && f.contains("node `lrn2.")));
    assert_eq!(before - failures.len(), 1, "the even-size LRN net should fail to import, naming lrn2");
    assert!(
        failures.is_empty(),
        "{} of {} nets do not round-trip:\n{}",
        failures.len(),
        nets.len(),
        failures.join("\n")
    );
}

/// The `onnx` package's light model zoo, randomised and run by onnxruntime
/// (tests/python/light_models.py), then imported and run by synprof.
#[test]
fn the_onnx_light_model_zoo_imports_and_computes_what_onnxruntime_computes() {
    let dir = Scratch::new("light");
    let python = python_with(&["onnx", "onnxruntime", "numpy"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/light_models.py");
    let out = Command::new(&python).arg(&script).arg(&dir.0).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // name, original file: published trainable parameter counts (Caffe2 models; BN
    // scale+shift counted, as the zoo does).
    let published: &[(&str, Option<u64>)] = &[
        ("bvlc_alexnet", Some(60_965_224)),
        ("densenet121", Some(7_978_856)),
        ("inception_v1", None),
        ("inception_v2", None),
        ("resnet50", Some(25_557_032)),
        ("shufflenet", None),
        ("squeezenet", Some(1_235_496)),
        ("vgg19", Some(143_667_240)),
        ("zfnet512", None),
    ];
    let mut report = Vec::new();
    for (name, params) in published {
        let original = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("original {name} ")))
            .unwrap_or_else(|| panic!("{name}: not listed by the script\n{stdout}"));
        let orig = import_file(Path::new(original.trim()), &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let random = import_file(&dir.0.join(format!("{name}.onnx")), &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{name} (random weights): {e}"));
        // The constant fills were folded: the original carries weights too, and both
        // imports are the same net.
        assert!(orig.weights.is_some(), "{name}: the constant-filled weights were not read");
        let a = analyze(&orig.net, 1, Dtype::F32);
        assert_eq!(a.totals, analyze(&random.net, 1, Dtype::F32).totals, "{name}");
        if let Some(p) = params {
            assert_eq!(a.totals.params, *p, "{name}: parameter count");
        }
        // synprof's forward on the imported weights against onnxruntime's.
        let (shape, input) = read_npy(&dir.0.join(format!("{name}.input.npy")));
        let weights = random.weights.as_ref().unwrap();
        let lowered =
            Lowered::new(&random.net, weights, &Device::Cpu, DType::F32, Phase::Inference { fold_batch_norm: true })
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let x = Tensor::from_vec(input, shape, &Device::Cpu).unwrap();
        let outs = lowered.infer(&x).unwrap();
        assert_eq!(outs.len(), random.net.outputs.len());
        for (k, out) in outs.iter().enumerate() {
            let ours = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let (_, theirs) = read_npy(&dir.0.join(format!("{name}.output{k}.npy")));
            assert_eq!(ours.len(), theirs.len(), "{name} output {k}");
            let scale = theirs.iter().fold(1e-12f64, |m, v| m.max(v.abs() as f64));
            let worst =
                ours.iter().zip(&theirs).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0f64, f64::max) / scale;
            let spread = theirs.iter().fold(0f64, |m, v| m.max((*v as f64 - theirs[0] as f64).abs())) / scale;
            report.push(format!("{name:<13} output {k}: relative error {worst:.2e} (spread {spread:.2})"));
            assert!(worst <= 1e-4, "{name} output {k}: relative error {worst}");
            assert!(spread > 1e-3, "{name} output {k}: the reference output is constant; the check would be weak");
        }
    }
    println!("{}", report.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Errors.

fn tensor_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto::tensor(name, DataType::Float, dims.iter().map(|&d| Dimension::value(d)).collect())
}

fn float_init(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: (0..n).map(|i| i as f32 * 0.01).collect(),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

/// data [1, 3, 8, 8] -> Conv 4x3x3x3 -> `second` -> output.
fn model(second: NodeProto, input_dims: Vec<Dimension>) -> Vec<u8> {
    let conv = node("Conv", "c1", &["data", "w"], "c1_out", vec![AttributeProto::ints("pads", vec![1, 1, 1, 1])]);
    let out = second.output[0].clone();
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(GraphProto {
            name: "tiny".into(),
            node: vec![conv, second],
            initializer: vec![float_init("w", &[4, 3, 3, 3])],
            input: vec![ValueInfoProto::tensor("data", DataType::Float, input_dims)],
            output: vec![tensor_info(&out, &[])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn fixed(dims: &[i64]) -> Vec<Dimension> {
    dims.iter().map(|&d| Dimension::value(d)).collect()
}

fn import_err(bytes: &[u8]) -> String {
    import_bytes(bytes, "m.onnx", None, &ImportOptions::default()).unwrap_err().to_string()
}

#[test]
fn errors_name_the_file_the_node_and_the_op() {
    // Not ONNX at all.
    let e = import_err(b"this is not a protobuf \xff\xff\xff");
    assert!(e.starts_with("m.onnx: not an ONNX model"), "{e}");
    // An op synprof does not have.
    let leaky = node("LeakyRelu", "act7", &["c1_out"], "y", vec![AttributeProto::float("alpha", 0.1)]);
    let e = import_err(&model(leaky, fixed(&[1, 3, 8, 8])));
    assert!(e.contains("node `act7` (LeakyRelu, nodes[1])") && e.contains("unsupported op `LeakyRelu`"), "{e}");
    assert!(e.contains("synprof imports Conv, BatchNormalization"), "{e}");
    // LRN of even size: ONNX centres it differently.
    let lrn = node("LRN", "", &["c1_out"], "norm", vec![AttributeProto::int("size", 4)]);
    let e = import_err(&model(lrn, fixed(&[1, 3, 8, 8])));
    assert!(e.contains("node `norm` (LRN, nodes[1])") && e.contains("even size 4"), "{e}");
    // A Clip that is neither ReLU nor ReLU6.
    let clip = node("Clip", "clip", &["c1_out", "", ""], "y", vec![]);
    let e = import_err(&model(clip, fixed(&[1, 3, 8, 8])));
    assert!(e.contains("Clip to [-inf, inf]"), "{e}");
    // A softmax over channels of a feature map.
    let sm = node("Softmax", "sm", &["c1_out"], "y", vec![AttributeProto::int("axis", 1)]);
    let e = import_err(&model(sm, fixed(&[1, 3, 8, 8])));
    assert!(e.contains("Softmax over axis 1 of [N, 4, 8, 8]"), "{e}");
    // A declared shape that disagrees with what synprof infers.
    let relu = node("Relu", "r", &["c1_out"], "y", vec![]);
    let mut bytes = model(relu.clone(), fixed(&[1, 3, 8, 8]));
    let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
    m.graph.as_mut().unwrap().output[0] = tensor_info("y", &[1, 4, 7, 8]);
    bytes = m.encode_to_vec();
    let e = import_err(&bytes);
    assert!(e.contains("value `y`: the model declares") && e.contains("synprof infers [N, 4, 8, 8]"), "{e}");
}

#[test]
fn symbolic_spatial_sizes_need_an_input_shape() {
    let relu = node("Relu", "r", &["c1_out"], "y", vec![]);
    let dims = vec![Dimension::param("N"), Dimension::value(3), Dimension::param("H"), Dimension::param("W")];
    let bytes = model(relu, dims);
    let e = import_err(&bytes);
    assert!(e.contains("the input `data` has symbolic or unknown sizes") && e.contains("--input"), "{e}");
    let options = ImportOptions { input: Some(Shape::chw(3, 20, 12)), name: Some("tiny".into()) };
    let net = import_bytes(&bytes, "m.onnx", None, &options).unwrap().net;
    assert_eq!(net.nodes.last().unwrap().shape, Shape::chw(4, 20, 12));
    assert!(matches!(net.nodes[1].op, Op::Conv2d(_)));
}

/// The CLI: `synprof import` writes a model file that loads like any other, and `.onnx`
/// files work where a model is expected.
#[test]
fn the_cli_imports_and_onnx_files_work_as_models() {
    let dir = Scratch::new("cli");
    let bin = env!("CARGO_BIN_EXE_synprof");
    let onnx = dir.0.join("r18.onnx");
    let net = zoo::build("resnet18", None).unwrap();
    std::fs::write(&onnx, to_onnx(&net, Some(&Weights::init(&net, 3)), None).unwrap()).unwrap();
    let json = dir.0.join("r18.json");
    let st = dir.0.join("r18.safetensors");
    let out =
        Command::new(bin).arg("import").arg(&onnx).arg("-o").arg(&json).arg("--weights-out").arg(&st).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("11,689,512 params") && text.contains("weights: read from the model"), "{text}");
    let loaded = synprof::graph::format::load(&json).unwrap();
    assert_eq!(analysis_without_names(&loaded), analysis_without_names(&net));
    assert!(std::fs::metadata(&st).unwrap().len() > 4 * 11_689_512);
    // inspect straight from the .onnx file.
    let out = Command::new(bin).arg("inspect").arg(&onnx).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("11,689,512 trainable"), "{text}");
    // A broken file: a clear error, exit code 1 or 2, no panic.
    let bad = dir.0.join("bad.onnx");
    std::fs::write(&bad, b"\x08\x96\x01garbage").unwrap();
    let out = Command::new(bin).arg("inspect").arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bad.onnx") && !err.contains("panicked"), "{err}");
}

/// torchvision models exported by PyTorch (both exporters), imported and run by synprof
/// against PyTorch's own forward. Needs PyTorch with torchvision:
/// `SYNPROF_TORCH_PYTHON=/path/to/python cargo test --release --test onnx_import -- --ignored`.
#[test]
#[ignore]
fn torchvision_exports_import_and_agree_with_pytorch() {
    let python = std::env::var("SYNPROF_TORCH_PYTHON").expect("set SYNPROF_TORCH_PYTHON to a python with torch");
    let dir = Scratch::new("torchvision");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/torchvision_export.py");
    let out = Command::new(&python).arg(&script).arg(&dir.0).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for line in stdout.lines().filter_map(|l| l.strip_prefix("exported ")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (name, params, bn_channels): (&str, u64, u64) =
            (fields[0], fields[1].parse().unwrap(), fields[2].parse().unwrap());
        let imported = match import_file(&dir.0.join(format!("{name}.onnx")), &ImportOptions::default()) {
            Ok(i) => i,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let (shape, input) = read_npy(&dir.0.join(format!("{name}.input.npy")));
        let lowered = Lowered::new(
            &imported.net,
            imported.weights.as_ref().unwrap(),
            &Device::Cpu,
            DType::F32,
            Phase::Inference { fold_batch_norm: true },
        )
        .unwrap();
        let ours = lowered.infer(&Tensor::from_vec(input, shape, &Device::Cpu).unwrap()).unwrap()[0]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let (_, theirs) = read_npy(&dir.0.join(format!("{name}.output.npy")));
        let scale = theirs.iter().fold(1e-12f64, |m, v| m.max(v.abs() as f64));
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0f64, f64::max) / scale;
        // The TorchScript exporter folds batch-norm into the conv before it (a conv bias
        // per channel in place of BN's scale and shift): one trainable parameter less per
        // folded BN channel, two where the conv had a bias already (VGG); a BN after no
        // conv (DenseNet's pre-activations) stays. The dynamo exporter's optimiser folds
        // more, so only its outputs are checked.
        let ours_params = analyze(&imported.net, 1, Dtype::F32).totals.params;
        report.push(format!(
            "{name:<28} relative error {worst:.2e}, params {ours_params} (PyTorch {params}, {bn_channels} BN channels)"
        ));
        if worst > 1e-4 || ours.len() != theirs.len() {
            failures.push(format!("{name}: relative error {worst}"));
        }
        if !name.ends_with("_dynamo") && (ours_params > params || ours_params < params - 2 * bn_channels) {
            failures.push(format!("{name}: {ours_params} params, PyTorch {params} with {bn_channels} BN channels"));
        }
    }
    println!("{}", report.join("\n"));
    assert!(report.len() >= 10, "fewer than 10 models checked:\n{stdout}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
