//! Every zoo model that torchvision or timm also builds has exactly their parameter
//! count, MACs, and numbers of conv, linear and batch-norm layers, as counted by forward
//! hooks in real PyTorch (`tests/reference/torch_counts.py` wrote the CSV).

use synprof::analysis::analyze;
use synprof::graph::{Op, Shape};
use synprof::{zoo, Dtype};

mod common;
use common::csv_rows;

/// Rows of torch_counts.csv that are not a zoo model under the same name.
fn zoo_name(reference: &str) -> Option<(&str, Option<Shape>)> {
    match reference {
        // torchvision's aux head: checked in zoo_published.rs against its published count.
        "inception_v3_with_aux" => None,
        // torchvision's alexnet is the one-weird-trick variant; our `alexnet` is DLBS's BVLC one.
        "alexnet" => Some(("alexnet_owt", None)),
        "resnet50@320" => Some(("resnet50", Some(Shape::chw(3, 320, 320)))),
        "mobilenet_v2@160" => Some(("mobilenet_v2", Some(Shape::chw(3, 160, 160)))),
        other => Some((other, None)),
    }
}

#[test]
fn zoo_counts_equal_pytorch_hook_counts() {
    let rows = csv_rows(include_str!("reference/torch_counts.csv"));
    let mut checked = 0;
    let mut failures = Vec::new();
    for row in &rows {
        let Some((name, input)) = zoo_name(&row["model"]) else { continue };
        let model = match zoo::find(name) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: {e}", row["model"]));
                continue;
            }
        };
        let reference_input = Shape::parse(&row["input_chw"]).unwrap();
        if input.is_none() && model.default_input() != reference_input {
            failures
                .push(format!("{name}: default input {} but PyTorch's is {reference_input}", model.default_input()));
        }
        let net = model.build(Some(&reference_input)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let a = analyze(&net, 1, Dtype::F32);
        let count = |pred: fn(&Op) -> bool| net.nodes.iter().filter(|n| pred(&n.op)).count();
        let bn_channels: usize =
            net.nodes.iter().filter(|n| matches!(n.op, Op::BatchNorm { .. })).map(|n| n.shape.channels()).sum();
        let ours = [
            ("params_trainable", a.totals.params),
            ("macs", a.totals.macs),
            ("convs", count(|o| matches!(o, Op::Conv2d(_))) as u64),
            ("linears", count(|o| matches!(o, Op::Linear { .. })) as u64),
            ("bn_layers", count(|o| matches!(o, Op::BatchNorm { .. })) as u64),
            ("bn_channels", bn_channels as u64),
        ];
        for (column, value) in ours {
            let reference: u64 = row[column].parse().unwrap();
            if value != reference {
                failures.push(format!(
                    "{}: {column} ours {value} vs PyTorch {reference} (diff {})",
                    row["model"],
                    value as i64 - reference as i64
                ));
            }
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 38, "only {checked} models checked");
}
