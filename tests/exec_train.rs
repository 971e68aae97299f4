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
