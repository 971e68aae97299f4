//! Generator specs (`family:key=value,...`): ParaDnn's parametric CNN against a closed-form
//! parameter count and against the zoo's ResNet-18, errors that name the key, determinism.

use synprof::analysis::analyze;
use synprof::source;
use synprof::Dtype;

/// Trainable parameters of ParaDnn's residual template, counted by hand: convs without
/// bias, two per batch-norm channel, a 1x1 projection where the shape changes, the fc.
fn residual_params(f: u64, blocks: u64, classes: u64) -> u64 {
    let mut total = 3 * 49 * f + 2 * f;
    let mut c_in = f;
    for group in 0..4 {
        let p = f << group;
        for b in 0..blocks {
            let c = if b == 0 { c_in } else { p };
            total += 9 * c * p + 2 * p + 9 * p * p + 2 * p;
            if b == 0 && (group > 0 || c_in != p) {
                total += c * p + 2 * p;
            }
        }
        c_in = p;
    }
    total + 8 * f * classes + classes
}

fn bottleneck_params(f: u64, blocks: u64, classes: u64) -> u64 {
    let mut total = 3 * 49 * f + 2 * f;
    let mut c_in = f;
    for group in 0..4 {
        let p = f << group;
        for b in 0..blocks {
            let c = if b == 0 { c_in } else { 4 * p };
            total += c * p + 2 * p + 9 * p * p + 2 * p + p * 4 * p + 8 * p;
            if b == 0 {
                total += c * 4 * p + 8 * p; // every group's first block changes the width
            }
        }
        c_in = 4 * p;
    }
    total + 32 * f * classes + classes
}

#[test]
fn paradnn_counts_follow_the_template() {
    for (f, b, classes) in [(16, 1, 1000), (32, 4, 10), (64, 2, 1000), (48, 3, 100)] {
        let spec = format!("paradnn:block=residual,filters={f},blocks={b},classes={classes},input=200");
        let a = analyze(&source::load(&spec, None).unwrap(), 1, Dtype::F32);
        assert_eq!(a.totals.params, residual_params(f, b, classes), "{spec}");
        let spec = format!("paradnn:block=bottleneck,filters={f},blocks={b},classes={classes},input=200");
        let a = analyze(&source::load(&spec, None).unwrap(), 1, Dtype::F32);
        assert_eq!(a.totals.params, bottleneck_params(f, b, classes), "{spec}");
    }
}

#[test]
fn paradnn_at_64_filters_and_2_residual_blocks_is_resnet18() {
    let ours = analyze(&source::load("paradnn:filters=64,blocks=2,input=224", None).unwrap(), 1, Dtype::F32);
    let zoo = analyze(&source::load("resnet18", None).unwrap(), 1, Dtype::F32);
    assert_eq!(ours.totals.params, 11_689_512);
    assert_eq!(ours.totals.params, zoo.totals.params);
    assert_eq!(ours.totals.macs, zoo.totals.macs);
    assert_eq!(ours.totals.flops, zoo.totals.flops);
}

#[test]
fn the_input_size_sets_the_resolution_and_macs_grow_with_it() {
    let at = |input: usize| {
        let net = source::load(&format!("paradnn:filters=32,blocks=2,input={input}"), None).unwrap();
        assert_eq!(net.input_shape().0, vec![3, input, input]);
        analyze(&net, 1, Dtype::F32).totals.macs
    };
    let (small, large) = (at(200), at(300));
    // Spatial sizes 100->150 after the stem: MACs scale by about (300/200)^2, not exactly
    // (odd sizes round up at each stride-2 stage).
    let ratio = large as f64 / small as f64;
    assert!((2.0..2.6).contains(&ratio), "{ratio}");
}

#[test]
fn bad_specs_name_the_key_and_what_is_valid() {
    let err = |s: &str| source::load(s, None).unwrap_err().to_string();
    let e = err("paradnn:filters=0");
    assert!(e.contains("filters=0: give an integer from 1 to 512") && e.contains("paradnn:filters=0"), "{e}");
    let e = err("paradnn:block=dense");
    assert!(e.contains("block=dense: give one of residual, bottleneck"), "{e}");
    let e = err("paradnn:depth=3");
    assert!(e.contains("unknown key `depth`; paradnn takes block, filters, blocks, input, classes"), "{e}");
    let e = err("paradnn:filters=8,filters=16");
    assert!(e.contains("`filters` is given twice"), "{e}");
    let e = err("paradnn:filters");
    assert!(e.contains("`filters`: expected key=value"), "{e}");
    let e = err("paradnn:input=2000");
    assert!(e.contains("input=2000: give an integer from 32 to 1024"), "{e}");
}

#[test]
fn a_spec_builds_the_same_file_every_time_and_records_how() {
    let spec = "paradnn:block=bottleneck,filters=24,blocks=3,input=160";
    let a = synprof::graph::format::to_string(&source::load(spec, None).unwrap());
    let b = synprof::graph::format::to_string(&source::load(spec, None).unwrap());
    assert_eq!(a, b);
    assert!(a.contains("\"spec\":\"paradnn:block=bottleneck,filters=24,blocks=3,input=160\""), "{}", &a[..400]);
    // The file loads back to the same net.
    let dir = std::env::temp_dir().join(format!("synprof_synth_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("net.json");
    std::fs::write(&file, &a).unwrap();
    let back = source::load(file.to_str().unwrap(), None).unwrap();
    assert_eq!(synprof::graph::format::to_string(&back), a);
    std::fs::remove_dir_all(&dir).ok();
}
