//! Every count in `tests/reference/published_counts.csv` (a copy of
//! `shared/reference/published_counts.csv`) for a model we define: equal where our
//! definition is the published one, and equal to the explained value where the source
//! counts differently. The explanations are in each model's doc comment.

use synprof::analysis::{analyze, Totals};
use synprof::graph::{Net, Op};
use synprof::{zoo, Dtype};

mod common;
use common::csv_rows;

/// How a source's parameter figure relates to our trainable count.
#[derive(Debug, Clone, Copy)]
enum Params {
    /// Our definition is the published one.
    Exact,
    /// Keras totals also count batch-norm moving mean and variance (non-trainable).
    KerasWithRunningStats,
    /// Keras totals for nets whose batch-norms have no gamma (`scale=False`) but count
    /// moving mean and variance: ours - C + 2C.
    KerasNoGamma,
    /// Keras' ResNets: convolutions with biases (one per batch-norm channel) plus the
    /// running statistics: ours + C + 2C.
    KerasConvBias,
    /// Keras' EfficientNet: running stats plus its input Normalization layer (mean 3,
    /// variance 3, count 1).
    KerasWithNormalizationLayer,
    /// DLBS counts every blob of its Caffe prototxt: each batch-norm adds mean, variance
    /// (2C) and a moving-average factor (1); `extra` is an architecture difference.
    DlbsCaffe { extra: u64 },
    /// torchvision's Inception-v3 figure includes the training-only aux head.
    TorchvisionWithAux,
    /// timm's table rounds to 0.01 M.
    RoundedMillions,
}

/// How a source's MAC figure relates to ours.
#[derive(Debug, Clone, Copy)]
enum Macs {
    /// conv + linear MACs, within 0.5% (or the rounding of a 3-decimal figure).
    Ours,
    /// timm's benchmark table counts with fvcore, whose batch-norm handler adds
    /// `elements x 2` (scale and shift, affine) at inference to the conv and linear MACs;
    /// the figure is rounded to 0.01 G. VGG, with no batch-norm, matches ours exactly.
    FvcoreWithBatchNorm,
}

/// (our zoo name, parameter rule, MAC rule) for a row, or None if we do not define it.
fn rule(model: &str, source: &str) -> Option<(&'static str, Params, Macs)> {
    use Params::*;
    let timm = source.starts_with("timm");
    let keras = source.starts_with("Keras");
    let dlbs = source.starts_with("DLBS");
    let tv = source.starts_with("torchvision");
    let macs = if timm { Macs::FvcoreWithBatchNorm } else { Macs::Ours };
    let params = |exact_or: Params| if timm { RoundedMillions } else { exact_or };
    let r = match model {
        "acoustic_model" => ("acoustic_model", Exact, macs),
        "deep_mnist" => ("deep_mnist", Exact, macs),
        "keras_cifar10_cnn" => ("keras_cifar10_cnn", Exact, macs),
        "overfeat" => ("overfeat", Exact, macs),
        // DLBS's alexnet is BVLC without groups; torchvision's alexnet is DLBS's alexnet_owt.
        "alexnet" if tv => ("alexnet_owt", Exact, macs),
        "alexnet" => ("alexnet", Exact, macs),
        "alexnet_owt" => ("alexnet_owt", Exact, macs),
        // DLBS's googlenet is BVLC's (no batch-norm, 5x5 branches, LRN).
        "googlenet" if dlbs => ("googlenet_bvlc", Exact, macs),
        "googlenet" => ("googlenet", Exact, macs),
        "vgg11" | "vgg13" | "vgg16" | "vgg19" => (leak(model), params(Exact), macs),
        "densenet121" | "densenet169" | "densenet201" | "mobilenet_v2" | "mobilenet_v1" | "xception" if keras => {
            (leak(model), KerasWithRunningStats, macs)
        }
        "efficientnet_b0" if keras => ("efficientnet_b0", KerasWithNormalizationLayer, macs),
        "inception_v3" | "inception_resnet_v2" if keras => (leak(model), KerasNoGamma, macs),
        "resnet50" | "resnet101" | "resnet152" if keras => (leak(model), KerasConvBias, macs),
        "inception_v3" if tv => ("inception_v3", TorchvisionWithAux, macs),
        "inception_v3" | "inception_v4" if dlbs => (leak(model), DlbsCaffe { extra: 0 }, macs),
        // DLBS's resnet18/34 add a 1x1 64->64 projection with batch-norm in the first block.
        "resnet18" | "resnet34" if dlbs => (leak(model), DlbsCaffe { extra: 64 * 64 + 4 * 64 + 1 }, macs),
        // DLBS's resnet50 prototxt gives conv1 a bias.
        "resnet50" if dlbs => ("resnet50", DlbsCaffe { extra: 64 }, macs),
        "resnet101" | "resnet152" | "resnet200" | "resnet269" if dlbs => (leak(model), DlbsCaffe { extra: 0 }, macs),
        "densenet121"
        | "densenet169"
        | "densenet201"
        | "efficientnet_b0"
        | "inception_v3"
        | "inception_v4"
        | "inception_resnet_v2"
        | "mobilenet_v1"
        | "mobilenet_v2"
        | "mobilenet_v3_large"
        | "mobilenet_v3_small"
        | "resnet18"
        | "resnet34"
        | "resnet50"
        | "resnet101"
        | "resnet152"
        | "resnet200"
        | "resnext50_32x4d"
        | "resnext101_32x8d"
        | "resnext101_64x4d"
        | "shufflenet_v2_x1_0"
        | "squeezenet1_0"
        | "squeezenet1_1" => (leak(model), params(Exact), macs),
        _ => return None,
    };
    Some(r)
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// Rows we do not define, named so that a new row cannot be skipped silently.
const NOT_IN_THE_ZOO: &[&str] =
    &["nasnet_large", "nasnet_mobile", "resnet50v2", "resnet101v2", "resnet152v2", "resnext101_32x4d"];

fn batch_norm_elements(net: &Net) -> u64 {
    net.nodes.iter().filter(|n| matches!(n.op, Op::BatchNorm { .. })).map(|n| n.shape.elements()).sum()
}

fn expected_params(rule: Params, t: &Totals) -> u64 {
    let channels = t.buffers / 2;
    match rule {
        Params::Exact | Params::RoundedMillions => t.params,
        Params::KerasWithRunningStats => t.params + t.buffers,
        Params::KerasNoGamma => t.params + channels,
        Params::KerasConvBias => t.params + 3 * channels,
        Params::KerasWithNormalizationLayer => t.params + t.buffers + 7,
        Params::DlbsCaffe { extra } => t.params + t.buffers + t.batch_norm_layers as u64 + extra,
        // InceptionAux: conv 768->128 + BN, conv 5x5 128->768 + BN, fc 768->1000.
        Params::TorchvisionWithAux => t.params + (768 * 128 + 256) + (128 * 768 * 25 + 1536) + (768 * 1000 + 1000),
    }
}

/// Parse "34678784" or "7.98M".
fn parse_params(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    match t.strip_suffix('M') {
        Some(m) => m.parse::<f64>().ok().map(|v| v * 1e6),
        None => t.parse().ok(),
    }
}

/// Parse "4.11 GMACs", "0.034660 GMACs" or "4.089 GFLOPS(torchvision; ...)" into GMACs;
/// DLBS's prose "~0.7 GFLOP grouped / ~1.14 GFLOP ungrouped" gives the ungrouped one.
fn parse_gmacs(text: &str) -> Option<(f64, usize)> {
    let t = text.trim();
    let number = if let Some(i) = t.find("~1.14") { &t[i + 1..i + 5] } else { t.split([' ', 'G']).next()? };
    let decimals = number.split('.').nth(1).map_or(0, str::len);
    number.parse::<f64>().ok().map(|v| (v, decimals))
}

#[test]
fn published_counts_hold_as_explained() {
    let rows = csv_rows(include_str!("reference/published_counts.csv"));
    let mut failures = Vec::new();
    let (mut params_checked, mut macs_checked) = (0, 0);
    for row in &rows {
        let (model, source) = (row["model"].as_str(), row["source"].as_str());
        let Some((name, params_rule, macs_rule)) = rule(model, source) else {
            assert!(NOT_IN_THE_ZOO.contains(&model), "row for `{model}` ({source}) has no rule");
            continue;
        };
        let net = zoo::build(name, None).unwrap_or_else(|e| panic!("{e}"));
        let t = analyze(&net, 1, Dtype::F32).totals;
        let label = format!("{model} [{source}] as {name} ({params_rule:?})");
        if let Some(published) = parse_params(&row["params"]) {
            let expected = expected_params(params_rule, &t) as f64;
            let ok = match params_rule {
                Params::RoundedMillions => (expected - published).abs() <= 0.005e6 + 1.0,
                _ => expected == published,
            };
            if !ok {
                failures.push(format!("{label}: params published {published}, explained {expected}"));
            }
            params_checked += 1;
        }
        if let Some((gmacs, decimals)) = parse_gmacs(&row["gmacs_or_gflops(unit stated)"]) {
            let ours = match macs_rule {
                Macs::Ours => t.macs,
                Macs::FvcoreWithBatchNorm => t.macs + 2 * batch_norm_elements(&net),
            } as f64
                / 1e9;
            let rounding = 0.5 * 10f64.powi(-(decimals as i32)) + 1e-12;
            let tolerance = match macs_rule {
                Macs::Ours => (0.005 * gmacs).max(rounding),
                Macs::FvcoreWithBatchNorm => rounding,
            };
            if (ours - gmacs).abs() > tolerance {
                failures.push(format!("{label}: {gmacs} GMACs published, ours {ours:.4} ({macs_rule:?})"));
            }
            macs_checked += 1;
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    assert!(params_checked >= 70 && macs_checked >= 40, "{params_checked} params, {macs_checked} MACs checked");
}

#[test]
fn zoo_entries_reproduce_their_published_figure() {
    for model in zoo::registry().iter().filter(|m| m.build.is_some()) {
        let Some(published) = model.published else { continue };
        let t = analyze(&model.build(None).unwrap(), 1, Dtype::F32).totals;
        assert!(
            published.matches(t.params, t.macs),
            "{}: {published:?} vs params {} MACs {}",
            model.name,
            t.params,
            t.macs
        );
    }
}

#[test]
fn the_zoo_is_big_enough_and_names_resolve() {
    let available = zoo::registry().iter().filter(|m| m.build.is_some()).count();
    assert!(available >= 40, "{available} models");
    for alias in ["inception3", "inception4", "resnet_v1_50", "resnet_v1_50_D", "synNet", "shufflenet_v2_2.0"] {
        assert!(zoo::find(alias).is_ok(), "{alias}");
    }
    let err = zoo::find("resnet5").unwrap_err().to_string();
    assert!(err.contains("did you mean") && err.contains("resnet50"), "{err}");
    let err = zoo::build("deep_speech2", None).unwrap_err().to_string();
    assert!(err.contains("recurrent"), "{err}");
    // Names and aliases are unique across the registry.
    let mut seen = std::collections::HashSet::new();
    for m in zoo::registry() {
        for n in std::iter::once(m.name).chain(m.aliases.iter().copied()) {
            assert!(seen.insert(n.to_ascii_lowercase()), "`{n}` is used twice");
        }
    }
}
