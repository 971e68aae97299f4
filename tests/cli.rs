//! The command line as users run it: `zoo`, `inspect`, `export`, errors and help.

use std::process::{Command, Output};

fn synprof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synprof")).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&stdout(&synprof(args))).unwrap()
}

#[test]
fn zoo_lists_the_models_with_counts() {
    let text = stdout(&synprof(&["zoo"]));
    assert!(text.lines().filter(|l| l.contains("3x224x224")).count() >= 30);
    let resnet50 = text.lines().find(|l| l.starts_with("resnet50 ")).unwrap();
    assert!(
        resnet50.contains("25,557,032") && resnet50.contains("4.089") && resnet50.contains("torchvision"),
        "{resnet50}"
    );
    let rows = json(&["zoo", "--json"]);
    let rows = rows.as_array().unwrap();
    assert!(rows.iter().filter(|r| r["available"] == true).count() >= 40);
    let ds2 = rows.iter().find(|r| r["name"] == "deep_speech2").unwrap();
    assert_eq!(ds2["available"], false);
}

#[test]
fn inspect_counts_follow_input_batch_and_dtype() {
    let base = json(&["inspect", "resnet50", "--json"]);
    let variant = json(&["inspect", "resnet50", "--input", "3x320x320", "--batch", "8", "--dtype", "f16", "--json"]);
    let macs = |v: &serde_json::Value| v["totals"]["macs"].as_u64().unwrap();
    assert_eq!(macs(&base), 4_089_184_256);
    // torchvision's resnet50 at 320x320 (tests/reference/torch_counts.csv), times 8 images
    assert_eq!(macs(&variant), 8 * 8_343_142_400);
    assert_eq!(variant["totals"]["params"], base["totals"]["params"]);
    assert_eq!(
        variant["totals"]["weight_bytes"].as_u64().unwrap() * 2,
        base["totals"]["weight_bytes"].as_u64().unwrap()
    );
    assert_eq!(variant["input_shape"], serde_json::json!([3, 320, 320]));
    assert_eq!(variant["dtype"], "f16");
    let layers = variant["layers"].as_array().unwrap();
    let conv1 = layers.iter().find(|l| l["name"] == "conv1").unwrap();
    assert_eq!(conv1["output_shape"], serde_json::json!([64, 160, 160]));
    assert!(variant["characteristics"]["mac_share_by_kernel"]["3x3"].as_f64().unwrap() > 0.4);
}

#[test]
fn inspect_prints_a_summary_table() {
    let text = stdout(&synprof(&["inspect", "keras_cifar10_cnn"]));
    // Keras' model.summary() of this model (seed 002): the same per-layer params.
    for (layer, params) in [
        ("conv1", "896"),
        ("conv2", "9,248"),
        ("conv3", "18,496"),
        ("conv4", "36,928"),
        ("fc1", "1,180,160"),
        ("fc ", "5,130"),
    ] {
        let line = text.lines().find(|l| l.starts_with(layer)).unwrap_or_else(|| panic!("{layer} in\n{text}"));
        assert!(line.contains(params), "{line}");
    }
    assert!(text.contains("1,250,858 trainable"), "{text}");
}

#[test]
fn export_writes_a_file_that_inspect_reads() {
    let dir = std::env::temp_dir().join(format!("synprof-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mnv2_160.json");
    let file_arg = file.to_str().unwrap();
    stdout(&synprof(&["export", "mobilenet_v2", "--input", "3x160x160", "-o", file_arg]));
    let from_file = json(&["inspect", file_arg, "--json"]);
    assert_eq!(from_file["totals"]["macs"], 154_083_200); // torchvision at 160x160
    assert_eq!(from_file["totals"]["params"], 3_504_872);
    // The file can be re-inspected at another input size.
    let at_224 = json(&["inspect", file_arg, "--input", "3x224x224", "--json"]);
    assert_eq!(at_224["totals"]["macs"], 300_774_272);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn user_errors_are_one_clear_line_and_a_failure_code() {
    for (args, fragment) in [
        (vec!["inspect", "resnet5"], "did you mean"),
        (vec!["inspect", "resnet50", "--input", "3x0x2"], "3x224x224"),
        (vec!["inspect", "alexnet", "--input", "3x32x32"], "does not fit"),
        (vec!["inspect", "resnet50", "--batch", "0"], "batch"),
        (vec!["inspect", "resnet50", "--dtype", "f8"], "f32"),
        (vec!["inspect", "no/such/file.json"], "cannot read the model file"),
        (vec!["export", "resnet50", "-o", "/nonexistent-dir/x.json"], "cannot write"),
        (vec!["zoo", "--family", "transformers"], "no zoo family"),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (vec!["paired", "resnet50", "--bursts", "0"], "bursts of at least 1"),
        (vec!["paired", "resnet50", "--against", "candle"], "external runtime"),
        (vec!["paired", "resnet50", "--burst-secs", "-1"], "burst length -1 s"),
    ] {
        let out = synprof(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(fragment), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn help_states_the_counting_conventions_with_examples() {
    let help = stdout(&synprof(&["inspect", "--help"]));
    assert!(help.contains("multiply-accumulates of conv and linear layers only"), "{help}");
    assert!(help.contains("running mean"), "{help}");
    assert!(help.contains("synprof inspect resnet50 --input 3x320x320"), "{help}");
    for sub in ["zoo", "export"] {
        assert!(stdout(&synprof(&[sub, "--help"])).contains("Examples:"), "{sub}");
    }
}

const QUICK: &[&str] =
    &["--warmup-iters", "1", "--warmup-secs", "0", "--iters", "3", "--min-secs", "0", "--threads", "2"];

fn run_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend_from_slice(QUICK);
    args
}

#[test]
fn run_measures_inference_and_training() {
    let cases = json(&run_args(&["keras_cifar10_cnn", "--batch", "1,4", "--json"]));
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for (case, batch) in cases.iter().zip([1, 4]) {
        assert_eq!(case["batch"], batch);
        assert_eq!(
            case["latencies_ms"].as_array().unwrap().len(),
            case["latency"]["iterations"].as_u64().unwrap() as usize
        );
        assert!(case["latency"]["iterations"].as_u64().unwrap() >= 3);
        let l = &case["latency"];
        assert!(l["p50_ms"].as_f64().unwrap() <= l["p99_ms"].as_f64().unwrap());
        assert!(l["images_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(case["macs_per_image"], 20_741_120);
        assert!(case["peak_memory_bytes"].as_u64().unwrap() > 1 << 20);
        assert_eq!(case["cpu_threads"], 2);
    }
    let train = json(&run_args(&["keras_cifar10_cnn", "--batch", "8", "--mode", "train", "--json"]));
    let case = &train[0];
    assert_eq!(case["mode"], "train");
    assert!(case["loss_first"].as_f64().unwrap() > 0.0);
}

#[test]
fn run_layers_accounts_for_the_time() {
    let out = json(&run_args(&["squeezenet1_1", "--input", "3x64x64", "--layers", "--json"]));
    let layers = out[0]["layers"].as_array().unwrap();
    let share: f64 = layers.iter().map(|l| l["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-9);
    let convs = layers.iter().filter(|l| l["op"] == "conv2d").count();
    assert_eq!(convs, 26);
    let text = stdout(&synprof(&run_args(&["squeezenet1_1", "--input", "3x64x64", "--layers"])));
    assert!(text.contains("time by op: conv2d"), "{text}");
    assert!(text.contains("threads busy"), "{text}");
}

/// `--layers` says how busy the conv threads were in each layer: a share of the threads'
/// time, so at most 1, above one thread's share where both worked, and none for a layer
/// not on the conv threads.
#[test]
fn run_layers_measures_how_busy_the_threads_were() {
    let out = json(&run_args(&["squeezenet1_1", "--layers", "--json"]));
    let layers = out[0]["layers"].as_array().unwrap();
    let uses: Vec<f64> = layers
        .iter()
        .filter(|l| l["op"] == "conv2d" && l["fused"] == false)
        .map(|l| l["thread_use"].as_f64().unwrap_or_else(|| panic!("{}: no thread use", l["name"])))
        .collect();
    assert_eq!(uses.len(), 26);
    for u in &uses {
        assert!(*u > 0.0 && *u <= 1.0 + 1e-9, "thread use {u}");
    }
    // The largest convs ran on both threads for most of their time.
    let most = uses.iter().copied().fold(0.0, f64::max);
    assert!(most > 0.55, "no conv kept both threads busy: at most {most}");
    for l in layers.iter().filter(|l| l["op"] == "flatten" || l["op"] == "input") {
        assert!(l.get("thread_use").is_none(), "{l}");
    }
}

/// `--layers` names the packed kernel each conv, pool and concat ran on, and only for those:
/// the stem on the first-conv kernel (3 channels, 3x3, rows of 111, written blocked), the 1x1
/// squeezes in place, the rest on a GEMM form or Winograd; the max pools, the global average
/// pool and the concats by name (each fire module's written in place by its expand convs).
#[test]
fn run_layers_names_each_convs_kernel() {
    let out = json(&run_args(&["squeezenet1_1", "--layers", "--json"]));
    let layers = out[0]["layers"].as_array().unwrap();
    let kernel = |name: &str| {
        let l = layers.iter().find(|l| l["name"] == name).unwrap_or_else(|| panic!("no layer {name}"));
        l["kernel"].as_str().map(str::to_string)
    };
    let forms = ["stem", "pointwise", "direct", "im2col", "winograd/", "subsampled/", "depthwise"];
    for l in layers {
        let k = l["kernel"].as_str();
        if l["op"] == "conv2d" {
            let k = k.unwrap_or_else(|| panic!("{}: no kernel", l["name"]));
            assert!(forms.iter().any(|f| k.starts_with(f)), "{}: {k}", l["name"]);
        } else if l["op"] == "max_pool2d" {
            assert!(k.is_some_and(|k| k.starts_with("max-pool2d")), "{l}");
        } else if l["op"] == "global_avg_pool" {
            assert!(k.is_some_and(|k| k.starts_with("global-avg-pool")), "{l}");
        } else if l["op"] == "concat" {
            assert!(k.is_some_and(|k| k.starts_with("concat")), "{l}");
        } else {
            assert!(k.is_none(), "{l}");
        }
    }
    // The first-conv kernel needs vectors.
    let vectors = synprof::exec::cpu::Isa::detect() != synprof::exec::cpu::Isa::Scalar;
    if vectors {
        assert_eq!(kernel("conv1").as_deref(), Some("stem + blocked"));
    }
    assert!(kernel("fire2.conv1").is_some_and(|k| k.starts_with("pointwise")), "{:?}", kernel("fire2.conv1"));
    // Each fire module's expand convs write into their concat's buffer.
    assert_eq!(kernel("fire2.cat1").as_deref(), Some("concat-in-place"));
    assert_eq!(out[0]["concats_in_place"], 8);
    let text = stdout(&synprof(&run_args(&["squeezenet1_1", "--layers"])));
    assert!(text.contains("kernel") && (text.contains("stem") || !vectors), "{text}");
    assert!(text.contains("8 channel concats took their convs' outputs in place"), "{text}");
}

/// A fused expansion's work is done in the depthwise layer after it: `--layers` counts both
/// convs' FLOPs there (and its GFLOP/s from them), the expansion's own layer passing its
/// input through.
#[test]
fn run_layers_counts_a_fused_expansion_where_it_runs() {
    let out = json(&run_args(&["mobilenet_v2", "--input", "3x112x112", "--layers", "--json"]));
    let layers = out[0]["layers"].as_array().unwrap();
    let layer = |name: &str| layers.iter().find(|l| l["name"] == name).unwrap_or_else(|| panic!("no layer {name}"));
    let analysis = json(&["inspect", "mobilenet_v2", "--input", "3x112x112", "--json"]);
    let rows = analysis["layers"].as_array().unwrap();
    let flops = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap()["flops"].as_u64().unwrap();
    let (expand, dw) = (layer("blocks.2.conv1"), layer("blocks.2.conv2"));
    assert_eq!(dw["kernel"], "expansion + depthwise");
    assert_eq!(expand["fused"], true);
    assert_eq!(dw["flops"].as_u64().unwrap(), flops("blocks.2.conv1") + flops("blocks.2.conv2"));
    let achieved = dw["flops"].as_f64().unwrap() / (dw["mean_ms"].as_f64().unwrap() / 1e3) / 1e9;
    assert!((dw["achieved_gflops_per_s"].as_f64().unwrap() - achieved).abs() < 1e-6 * achieved);
    // An unfused depthwise conv (NCHW or blocked) counts its own.
    let depthwise = |l: &&serde_json::Value| l["kernel"].as_str().is_some_and(|k| k.starts_with("depthwise"));
    let plain = layers.iter().find(depthwise).expect("a depthwise conv runs unfused");
    assert_eq!(plain["flops"].as_u64().unwrap(), flops(plain["name"].as_str().unwrap()));
}

#[test]
fn a_failing_batch_is_reported_and_the_others_still_run() {
    let out = synprof(&run_args(&["resnet50", "--batch", "1,1000000", "--input", "3x32x32"]));
    assert!(out.status.success(), "one batch ran, so the command succeeds");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 case(s) failed") && text.contains("out of memory"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("resnet50 ") && l.contains(" 1 ")), "{text}");
    for (args, fragment) in [
        (vec!["resnet50", "--device", "cuda:0"], if cfg!(feature = "cuda") { "cuda" } else { "--features cuda" }),
        (vec!["resnet50", "--dtype", "i8"], "not supported"),
        (vec!["resnet50", "--mode", "train", "--layers"], "per-layer timing"),
    ] {
        let out = synprof(&run_args(&args));
        assert!(!out.status.success(), "{args:?}");
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(all.contains(fragment), "{args:?}: {all}");
        assert!(!all.contains("panicked"), "{args:?}: {all}");
    }
}
