//! Training steps: the loss falls on a fixed batch, and every zoo model trains.

use candle_core::{DType, Device};
use synprof::exec::run::{run_case, RunOptions, Window};
use synprof::exec::train::{Sgd, Trainer};
use synprof::exec::Mode;
use synprof::graph::Shape;
use synprof::weights::Weights;
use synprof::zoo;

#[test]
fn loss_falls_over_fifty_steps_on_a_fixed_batch() {
    for (name, input) in [("keras_cifar10_cnn", None), ("resnet18", Some(Shape::chw(3, 32, 32)))] {
        let net = zoo::build(name, input.as_ref()).unwrap();
        let weights = Weights::init(&net, 1);
        let mut trainer = Trainer::new(&net, &weights, &Device::Cpu, DType::F32, 8, 1, Sgd::default()).unwrap();
        let losses: Vec<f32> = (0..50).map(|_| trainer.step().unwrap()).collect();
        let (first, last) = (losses[0], losses[49]);
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        // ln(10) = 2.30 for 10 classes at chance; a fixed batch is memorised
        assert!(last < 0.5 * first, "{name}: loss {first} -> {last}: {losses:?}");
    }
}

#[test]
fn every_zoo_model_takes_a_training_step() {
    let opts = RunOptions {
        batch: 2,
        mode: Mode::Train,
        warmup: Window { iterations: 0, seconds: 0.0 },
        measure: Window { iterations: 1, seconds: 0.0 },
        ..RunOptions::default()
    };
    for model in zoo::registry().iter().filter(|m| m.build.is_some()) {
        // the smallest common input the model accepts, to keep this quick
        let net = [32, 48, 64, 96, 128, 224, 299]
            .iter()
            .filter(|_| model.input.len() == 3)
            .find_map(|&s| model.build(Some(&Shape::chw(3, s, s))).ok())
            .or_else(|| model.build(None).ok())
            .unwrap();
        let r = run_case(&net, &opts).unwrap_or_else(|e| panic!("{}: {e}", model.name));
        let loss = r.loss_first.unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{}: loss {loss}", model.name);
    }
}

/// synprof's reverse pass (`exec::backward`) gives every parameter the gradient candle's
/// autograd gives through the same layers: residual adds (a gradient summed from two
/// readers), concats, depthwise and strided convs, batch-norms with fused activations,
/// max and global average pools, dropout (the same seeded masks) and linear layers, and
/// (candle's autograd on the layer alone) DenseNet's average pools and GoogLeNet's LRNs.
#[test]
fn the_reverse_pass_matches_candles_autograd() {
    let small = |name: &str, s: usize| zoo::build(name, Some(&Shape::chw(3, s, s))).unwrap();
    let nets = [
        small("resnet18", 32),
        small("mobilenet_v2", 32),
        small("densenet121", 32),
        small("vgg11", 32),
        small("googlenet_bvlc", 224),
        zoo::build("keras_cifar10_cnn", None).unwrap(),
    ];
    for net in &nets {
        let weights = Weights::init(net, 3);
        let mut trainer = Trainer::new(net, &weights, &Device::Cpu, DType::F32, 3, 5, Sgd::default()).unwrap();
        assert_eq!(trainer.autograd_because, None, "{}: {}", net.name, trainer.backward_name());
        let ours = trainer.gradients().unwrap();
        // The same trainer (its convs keep the B forms their first call timed, which two
        // trainers could pick differently on a busy machine) and the same dropout masks.
        trainer.autograd_because = Some("the test's reference".into());
        trainer.restart_dropout();
        let want = trainer.gradients().unwrap();
        assert_eq!(ours.len(), want.len(), "{}: every parameter has a gradient", net.name);
        for ((name, g), (want_name, w)) in ours.iter().zip(&want) {
            assert_eq!(name, want_name);
            let g: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
            let w: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(g.len(), w.len(), "{}: {name}", net.name);
            let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
            let worst = g.iter().zip(&w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(worst <= 1e-6 * scale, "{}: {name}: {worst} apart (largest gradient {scale})", net.name);
        }
    }
}
