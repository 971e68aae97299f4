//! synprof's candle backend against onnxruntime, on the same weights and input: the net
//! is exported to ONNX (`export::onnx`), onnxruntime runs it, and the outputs must agree
//! to a relative error of 1e-4 in f32 (largest difference over the largest output value).
//! The AI Matrix models, mobilenet_v2, inception_v3, six more zoo models (13 in all) and
//! 20 random nets. Runs in CI (a venv with onnxruntime is made under the target directory;
//! see `common::python`).

mod common;
use candle_core::{DType, Device, Tensor};
use common::npy::{read_npy, write_npy};
use common::python::python_with;
use common::random_net::random_net;
use std::path::Path;
use std::process::Command;
use synprof::exec::lower::{Lowered, Phase};
use synprof::export::onnx::to_onnx;
use synprof::graph::Net;
use synprof::weights::{synthetic_input, Weights};
use synprof::zoo;

#[test]
fn candle_agrees_with_onnxruntime() {
    let dir = std::env::temp_dir().join(format!("synprof-ort-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut nets: Vec<(Net, usize)> = [
        "resnet50",
        "mobilenet_v2",
        "googlenet",
        "densenet121",
        "inception_v3",
        "synnet",
        "resnet152",
        "resnet18",
        "squeezenet1_1",
        "shufflenet_v2_x1_0",
        "mobilenet_v3_small",
        "efficientnet_b0",
        "inception_resnet_v2",
    ]
    .iter()
    .map(|name| (zoo::build(name, None).unwrap(), 2))
    .collect();
    nets.extend((0..20).map(|seed| (random_net(500 + seed), 3)));

    let mut files = Vec::new();
    let mut ours = Vec::new();
    for (i, (net, batch)) in nets.iter().enumerate() {
        let seed = 100 + i as u64;
        let weights = Weights::init(net, seed);
        let input = synthetic_input(net, *batch, seed);
        let path = dir.join(format!("{}.onnx", net.name));
        std::fs::write(&path, to_onnx(net, Some(&weights), None).unwrap()).unwrap();
        write_npy(&dir.join(format!("{}.input.npy", net.name)), &input.shape, &input.data);
        let lowered =
            Lowered::new(net, &weights, &Device::Cpu, DType::F32, Phase::Inference { fold_batch_norm: true }).unwrap();
        let x = Tensor::from_vec(input.data, input.shape, &Device::Cpu).unwrap();
        let out = lowered.infer(&x).unwrap()[0].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        ours.push(out);
        files.push(path);
    }
    let python = python_with(&["onnx", "onnxruntime", "numpy"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/onnx_check.py");
    let out = Command::new(python).arg(script).arg("--run-each").args(&files).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let mut report = Vec::new();
    for ((net, _), ours) in nets.iter().zip(&ours) {
        let (_, theirs) = read_npy(&dir.join(format!("{}.output.npy", net.name)));
        assert_eq!(theirs.len(), ours.len(), "{}", net.name);
        let scale = theirs.iter().fold(1e-12f64, |m, v| m.max(v.abs() as f64));
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0f64, f64::max) / scale;
        report.push(format!("{:<14} {worst:.2e}", net.name));
        assert!(worst <= 1e-4, "{}: relative error {worst}", net.name);
    }
    println!("max |candle - onnxruntime| / max |onnxruntime|:\n{}", report.join("\n"));
    std::fs::remove_dir_all(&dir).ok();
}
