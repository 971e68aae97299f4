//! ParaDnn's parametric CNN (Wang, Wei and Brooks, "Benchmarking TPU, GPU, and CPU
//! Platforms for Deep Learning", 2019): a ResNet template swept over its hyperparameters
//! so that heat maps show how a platform's throughput follows the workload.
//!
//! | stage  | output   | layers                                                |
//! |--------|----------|-------------------------------------------------------|
//! | conv1  | input/2  | 7x7, f, /2                                            |
//! | pool   | input/4  | 3x3 max, /2                                           |
//! | group1 | input/4  | `blocks` x residual [3x3 f, 3x3 f] or bottleneck [1x1 f, 3x3 f, 1x1 4f] |
//! | group2 | input/8  | the same with 2f                                      |
//! | group3 | input/16 | the same with 4f                                      |
//! | group4 | input/32 | the same with 8f                                      |
//! | head   | 1        | average pool, `classes`-way fc                        |
//!
//! Keys: `block` (residual | bottleneck), `filters` f (1-512, default 64), `blocks` per
//! group (1-64, default 2), `input` (32-1024, default 224), `classes` (1-100000, default
//! 1000). With f = 64 the template is torchvision's ResNet: `blocks=2` is resnet18's
//! shape at uniform depth; `tests/synth.rs` checks this against the zoo.

use super::{Spec, SpecError};
use crate::graph::{Net, Shape};

pub const KEYS: &[&str] = &["block", "filters", "blocks", "input", "classes"];

pub fn build(spec: &Spec) -> Result<Net, SpecError> {
    spec.only(KEYS)?;
    let bottleneck = spec.choice("block", &["residual", "bottleneck"])? == "bottleneck";
    let filters = spec.int("filters", 64, 1..=512)?;
    let blocks = spec.int("blocks", 2, 1..=64)?;
    let input = spec.int("input", 224, 32..=1024)?;
    let classes = spec.int("classes", 1000, 1..=100_000)?;
    let name = format!("paradnn_{}_f{filters}_b{blocks}_i{input}", if bottleneck { "bottleneck" } else { "residual" });
    crate::zoo::resnet::parametric(&name, &Shape(vec![3, input, input]), bottleneck, blocks, filters, classes)
        .map_err(|e| spec.error(e.to_string()))
}
