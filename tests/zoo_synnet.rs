//! synNet against its reference table (`tests/reference/synnet.md`, a copy of
//! `shared/reference/synnet.md`), parsed here independently of the zoo file.

use synprof::analysis::analyze;
use synprof::graph::{Op, Padding};
use synprof::{zoo, Dtype};

/// `(group input size, [(kernel, channels)])` from the markdown table.
fn reference_groups() -> Vec<(usize, Vec<(usize, usize)>)> {
    include_str!("reference/synnet.md")
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let group: usize = cells.get(1)?.parse().ok()?;
            let size: usize = cells.get(2)?.parse().ok()?;
            let convs = cells
                .get(3)?
                .split_whitespace()
                .map(|kc| {
                    let (k, c) = kc.split_once(':').unwrap();
                    (k.parse().unwrap(), c.parse().unwrap())
                })
                .collect();
            assert!((1..=6).contains(&group));
            Some((size, convs))
        })
        .collect()
}

#[test]
fn synnet_matches_its_reference_table() {
    let groups = reference_groups();
    assert_eq!(groups.len(), 6);
    let net = zoo::build("synnet", None).unwrap();
    let convs: Vec<_> = net.nodes.iter().filter(|n| matches!(n.op, Op::Conv2d(_))).collect();
    assert_eq!(convs.len(), 62);

    // Layer by layer: kernel, channels, stride 1, no bias, same-size output, and MACs
    // computed here from the table (TF SAME at stride 1 keeps the size).
    let mut expected_macs = 0u64;
    let mut in_channels = 3;
    let mut i = 0;
    for (size, layers) in &groups {
        for &(k, c) in layers {
            let node = convs[i];
            let Op::Conv2d(conv) = &node.op else { unreachable!() };
            assert_eq!(
                (conv.kernel, conv.out_channels, conv.stride, conv.bias),
                ([k, k], c, [1, 1], false),
                "{}",
                node.name
            );
            assert_eq!(node.shape.dims(), &[c, *size, *size], "{}", node.name);
            let before = (k - 1) / 2;
            assert_eq!(
                conv.padding,
                Padding { top: before, bottom: k - 1 - before, left: before, right: k - 1 - before }
            );
            expected_macs += (size * size * in_channels * k * k * c) as u64;
            in_channels = c;
            i += 1;
        }
    }
    // 43x3x3 before the 1000-way classifier.
    let fc = net.node("fc").unwrap();
    let flat = &net.nodes[fc.inputs[0]];
    assert_eq!(net.nodes[flat.inputs[0]].shape.dims(), &[43, 3, 3]);
    expected_macs += 43 * 9 * 1000;

    let a = analyze(&net, 1, Dtype::F32);
    assert_eq!(a.totals.macs, expected_macs);
    assert_eq!(a.totals.macs, 19_108_730_114);
    // "about 19.1 GMAC per image (conv only)"
    let conv_gmacs = (a.totals.macs - 387_000) as f64 / 1e9;
    assert!((conv_gmacs - 19.1).abs() < 0.05, "{conv_gmacs}");
    assert_eq!(a.totals.batch_norm_layers, 62);
}
