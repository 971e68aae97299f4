//! `synprof export --format pytorch`: the rendered module is valid Python for every zoo
//! model (CI: python3's own parser); with PyTorch (on demand, `SYNPROF_TORCH_PYTHON`), its
//! trainable parameter count equals ours and, with synprof's weights loaded, its forward
//! equals candle's to 1e-4 on 12 zoo models and 20 random nets.

mod common;
use candle_core::{DType, Device, Tensor};
use common::random_net::random_net;
use std::path::{Path, PathBuf};
use std::process::Command;
use synprof::exec::lower::{Lowered, Phase};
use synprof::export::{pytorch, safetensors};
use synprof::graph::Net;
use synprof::weights::{synthetic_input, Weights};

fn workdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("synprof-export-pytorch-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_zoo_model_renders_to_python_that_parses() {
    let dir = workdir("parse");
    let mut files = Vec::new();
    for model in synprof::zoo::registry().iter().filter(|m| m.build.is_some()) {
        let net = model.build(None).unwrap();
        let source = pytorch::to_pytorch(&net, model.name, None).unwrap();
        // Every synprof parameter name maps to a module attribute.
        for (name, _) in safetensors::named_tensors(&Weights::init(&net, 0)) {
            assert!(source.contains(&format!("\"{name}\": ")), "{}: {name} is not in SYNPROF_NAMES", net.name);
        }
        let path = dir.join(format!("{}.py", net.name.replace('.', "_")));
        std::fs::write(&path, source).unwrap();
        files.push(path);
    }
    let script = "import ast, sys\nfor f in sys.argv[1:]:\n    ast.parse(open(f).read(), f)\nprint(len(sys.argv) - 1)";
    let out = Command::new("python3").arg("-c").arg(script).args(&files).output().expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), files.len().to_string());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_broken_template_is_an_error_that_says_so() {
    let net = synprof::zoo::build("keras_cifar10_cnn", None).unwrap();
    let e = pytorch::to_pytorch(&net, "keras_cifar10_cnn", Some("{% for m in %}")).unwrap_err();
    assert!(e.to_string().contains("the PyTorch template does not parse"), "{e}");
    let custom = pytorch::to_pytorch(&net, "k", Some("{{ class_name }}: {{ modules | length }} modules")).unwrap();
    assert_eq!(custom, "KerasCifar10Cnn: 9 modules");
}

/// A script that loads the module and synprof's weights, prints the trainable parameter
/// count and writes the output for the input of `shape`.
fn check_script(shape: &[usize]) -> String {
    let shape: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!(
        r#"
import importlib.util, sys, numpy as np, torch
spec = importlib.util.spec_from_file_location("m", sys.argv[1]); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
cls = [v for k, v in vars(m).items() if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == "m"][0]
model = m.load_synprof_weights(cls().eval(), sys.argv[2])
print(sum(p.numel() for p in model.parameters() if p.requires_grad))
x = torch.tensor(np.fromfile(sys.argv[3], dtype="<f4")).reshape({})
with torch.no_grad():
    model(x).numpy().astype("<f4").tofile(sys.argv[4])
"#,
        shape.join(", ")
    )
}

fn torch_check(net: &Net, python: &Path) -> (u64, f64) {
    let dir = workdir(&net.name);
    let weights = Weights::init(net, 3);
    let batch = 2;
    let input = synthetic_input(net, batch, 3);
    std::fs::write(dir.join("m.py"), pytorch::to_pytorch(net, &net.name, None).unwrap()).unwrap();
    safetensors::save(&dir.join("w.safetensors"), &safetensors::named_tensors(&weights)).unwrap();
    std::fs::write(dir.join("x.bin"), input.data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let script = check_script(&input.shape);
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(["m.py", "w.safetensors", "x.bin", "y.bin"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", net.name, String::from_utf8_lossy(&out.stderr));
    let params: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let theirs: Vec<f32> = std::fs::read(dir.join("y.bin"))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let lowered =
        Lowered::new(net, &weights, &Device::Cpu, DType::F32, Phase::Inference { fold_batch_norm: true }).unwrap();
    let x = Tensor::from_vec(input.data, input.shape, &Device::Cpu).unwrap();
    let ours: Vec<f32> = lowered.infer(&x).unwrap()[0].flatten_all().unwrap().to_vec1().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(ours.len(), theirs.len(), "{}", net.name);
    let scale = theirs.iter().fold(1e-12f64, |m, v| m.max(v.abs() as f64));
    let err = ours.iter().zip(&theirs).map(|(a, b)| (*a as f64 - *b as f64).abs() / scale).fold(0.0, f64::max);
    (params, err)
}

/// `SYNPROF_TORCH_PYTHON=/work/venv-torch/bin/python cargo test --release --test export_pytorch -- --ignored`
#[test]
#[ignore = "needs PyTorch (5.6 GB): set SYNPROF_TORCH_PYTHON"]
fn the_module_has_our_parameters_and_our_forward() {
    let python = PathBuf::from(std::env::var_os("SYNPROF_TORCH_PYTHON").expect("set SYNPROF_TORCH_PYTHON"));
    let zoo = [
        "keras_cifar10_cnn",
        "resnet18",
        "mobilenet_v2",
        "mobilenet_v3_large",
        "shufflenet_v2_x1_0",
        "squeezenet1_1",
        "googlenet",
        "inception_v3",
        "densenet121",
        "efficientnet_b0",
        "alexnet",
        "synnet",
    ];
    let nets = zoo.iter().map(|m| synprof::zoo::build(m, None).unwrap()).chain((0..20).map(random_net));
    for net in nets {
        let (params, err) = torch_check(&net, &python);
        let ours = synprof::analysis::analyze(&net, 1, synprof::Dtype::F32).totals.params;
        assert_eq!(params, ours, "{}: trainable parameters", net.name);
        assert!(err <= 1e-4, "{}: relative error {err:e}", net.name);
        eprintln!("{}: {params} parameters, max relative error {err:.2e}", net.name);
    }
}
