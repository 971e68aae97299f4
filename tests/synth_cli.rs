//! `synprof generate` as users run it: files that `inspect` and `run` accept, sweeps into a
//! directory, spec files, and bad flags that fail with a clear error instead of a panic.

use std::path::PathBuf;
use std::process::{Command, Output};

fn synprof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synprof")).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr_of_failure(args: &[&str]) -> String {
    let out = synprof(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(err.starts_with("error:") && !err.contains("panicked"), "{args:?}: {err}");
    err
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("synprof_synth_cli_{name}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_generated_file_is_inspected_like_any_model() {
    let dir = temp_dir("file");
    let file = dir.join("net.json");
    let f = file.to_str().unwrap();
    let text = stdout(&synprof(&[
        "generate",
        "--style",
        "synnet",
        "--seed",
        "7",
        "--mix",
        "plain:0.7,bottleneck:0.3",
        "--max-gmacs",
        "3",
        "-o",
        f,
    ]));
    assert!(text.contains("synnet_s7_g6_i224") && text.contains(f) && text.contains("1 net(s) written"), "{text}");
    let model: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(model["generator"]["generator"], "synnet");
    assert_eq!(model["generator"]["seed"], 7);
    let inspected: serde_json::Value = serde_json::from_str(&stdout(&synprof(&["inspect", f, "--json"]))).unwrap();
    let macs = inspected["totals"]["macs"].as_u64().unwrap();
    assert!(macs <= 3_000_000_000 && macs == model["generator"]["macs"].as_u64().unwrap(), "{macs}");
    // The spec string stands for the same net: the same counts as the file.
    let spec = model["generator"]["spec"].as_str().unwrap();
    let again: serde_json::Value = serde_json::from_str(&stdout(&synprof(&["inspect", spec, "--json"]))).unwrap();
    assert_eq!(again["totals"], inspected["totals"]);
    // Writing twice gives the same bytes.
    let first = std::fs::read(&file).unwrap();
    stdout(&synprof(&["generate", "--spec", spec, "-o", f]));
    assert_eq!(std::fs::read(&file).unwrap(), first);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn without_output_a_summary_is_printed() {
    let text = stdout(&synprof(&["generate", "--family", "paradnn", "--filters", "64", "--blocks", "2"]));
    // ParaDnn at 64 filters and 2 residual blocks is ResNet-18.
    assert!(text.contains("paradnn_residual_f64_b2_i224") && text.contains("11,689,512"), "{text}");
    assert!(text.contains("1.814") && text.contains("not written"), "{text}");
}

#[test]
fn a_sweep_writes_a_grid_of_files() {
    let dir = temp_dir("sweep");
    let d = dir.join("grid");
    let text = stdout(&synprof(&[
        "generate",
        "--family",
        "paradnn",
        "--input",
        "64",
        "--block",
        "bottleneck",
        "--sweep",
        "filters=8,16,32",
        "blocks=1,2",
        "-o",
        d.to_str().unwrap(),
    ]));
    assert!(text.contains("6 net(s) written"), "{text}");
    let mut names: Vec<String> =
        std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names.len(), 6);
    assert_eq!(names[0], "paradnn_filters16_blocks1.json");
    let one = d.join("paradnn_filters32_blocks2.json");
    let inspected: serde_json::Value =
        serde_json::from_str(&stdout(&synprof(&["inspect", one.to_str().unwrap(), "--json"]))).unwrap();
    assert_eq!(inspected["input_shape"], serde_json::json!([3, 64, 64]));
    let direct: serde_json::Value = serde_json::from_str(&stdout(&synprof(&[
        "inspect",
        "paradnn:block=bottleneck,filters=32,blocks=2,input=64",
        "--json",
    ])))
    .unwrap();
    assert_eq!(inspected["totals"], direct["totals"]);
    // Seeds sweep as a range.
    let text = stdout(&synprof(&["generate", "--style", "synnet", "--input", "64", "--sweep", "seed=1..5"]));
    assert!(text.contains("synnet_s5_g6_i64") && text.contains("5 net(s)"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_spec_file_gives_the_same_net_as_the_flags() {
    let dir = temp_dir("specfile");
    let toml = dir.join("gen.toml");
    std::fs::write(
        &toml,
        "family = \"synnet\"\nseed = 3\ninput = 96\nse = 0.5\nmax_gmacs = 0.5\n[mix]\nplain = 0.5\ninception = 0.5\n",
    )
    .unwrap();
    let json = dir.join("gen.json");
    std::fs::write(&json, r#"{"style": "synnet", "seed": 3, "input": 96, "se": 0.5, "max_gmacs": 0.5, "mix": {"plain": 0.5, "inception": 0.5}}"#).unwrap();
    let out = |name: &str| dir.join(name).to_str().unwrap().to_string();
    stdout(&synprof(&["generate", "--spec", toml.to_str().unwrap(), "-o", &out("a.json")]));
    stdout(&synprof(&["generate", "--spec", json.to_str().unwrap(), "-o", &out("b.json")]));
    stdout(&synprof(&[
        "generate",
        "--style",
        "synnet",
        "--seed",
        "3",
        "--input",
        "96",
        "--se",
        "0.5",
        "--max-gmacs",
        "0.5",
        "--mix",
        "plain:0.5,inception:0.5",
        "-o",
        &out("c.json"),
    ]));
    let read = |name: &str| std::fs::read_to_string(out(name)).unwrap();
    let a = read("a.json");
    assert!(a == read("b.json") && a == read("c.json"), "the TOML, JSON and flag specs differ");
    // Flags override the file.
    stdout(&synprof(&["generate", "--spec", toml.to_str().unwrap(), "--seed", "4", "-o", &out("d.json")]));
    assert!(a != read("d.json"), "--seed 4 did not override the file's seed");
    let e = stderr_of_failure(&["generate", "--spec", toml.to_str().unwrap(), "--family", "paradnn"]);
    assert!(e.contains("--family paradnn but the spec names synnet"), "{e}");
    std::fs::write(&toml, "family = \"synnet\"\nseed = [1, 2]\n").unwrap();
    let e = stderr_of_failure(&["generate", "--spec", toml.to_str().unwrap()]);
    assert!(e.contains("gen.toml: `seed`: give a number, a string or a table"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_small_generated_net_runs() {
    let spec = "synnet:seed=2,input=32,groups=3,classes=10,max_gmacs=0.01";
    let text = stdout(&synprof(&[
        "run",
        spec,
        "--iters",
        "1",
        "--min-secs",
        "0",
        "--warmup-iters",
        "0",
        "--warmup-secs",
        "0",
        "--no-telemetry",
        "--json",
    ]));
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(cases[0].to_string().contains("images_per_s"), "{text}");
}

#[test]
fn bad_flags_fail_with_a_clear_error() {
    let e = stderr_of_failure(&["generate"]);
    assert!(e.contains("say which generator: --family paradnn|synnet"), "{e}");
    let e = stderr_of_failure(&["generate", "--style", "resnet"]);
    assert!(e.contains("unknown generator family `resnet`; families: paradnn, synnet"), "{e}");
    let e = stderr_of_failure(&["generate", "--style", "synnet", "--filters", "8"]);
    assert!(e.contains("--filters does not apply to synnet; synnet takes --seed"), "{e}");
    let e = stderr_of_failure(&["generate", "--style", "synnet", "--groups", "9"]);
    assert!(e.contains("groups=9 at input=224") && e.contains("give groups from 1 to 7"), "{e}");
    let e = stderr_of_failure(&["generate", "--style", "synnet", "--mix", "plain:0.5,wide:0.5"]);
    assert!(e.contains("unknown block `wide`"), "{e}");
    let e = stderr_of_failure(&["generate", "--style", "synnet", "--max-gmacs", "lots"]);
    assert!(e.contains("max_gmacs=lots: give a number from"), "{e}");
    let e = stderr_of_failure(&["generate", "--family", "paradnn", "--sweep", "filters"]);
    assert!(e.contains("--sweep `filters`: expected key=v1,v2,... or key=a..b"), "{e}");
    let e = stderr_of_failure(&["generate", "--family", "paradnn", "--sweep", "depth=1,2"]);
    assert!(e.contains("--sweep depth: paradnn takes block, filters"), "{e}");
    let e = stderr_of_failure(&["generate", "--style", "synnet", "--set", "channels_sigma"]);
    assert!(e.contains("--set `channels_sigma`: expected key=value"), "{e}");
    let e = stderr_of_failure(&["generate", "--spec", "/nonexistent/gen.toml"]);
    assert!(e.contains("cannot read spec file /nonexistent/gen.toml"), "{e}");
    let e = stderr_of_failure(&["generate", "--style", "synnet", "-o", "/nonexistent/dir/net.json"]);
    assert!(e.contains("cannot write /nonexistent/dir/net.json"), "{e}");
}

#[test]
fn generate_like_writes_a_proxy_and_prints_its_distances() {
    let dir = temp_dir("like");
    let file = dir.join("proxy.json");
    let out = stdout(&synprof(&[
        "generate",
        "--like",
        "resnet50,googlenet",
        "--mix-weights",
        "resnet50:0.5,googlenet:0.5",
        "--seed",
        "2",
        "-o",
        file.to_str().unwrap(),
    ]));
    assert!(out.contains("mimic of resnet50 + googlenet"), "{out}");
    assert!(out.contains("15 of 15 characteristics within 5%"), "{out}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"generator\":\"mimic\""), "{}", &text[..300.min(text.len())]);
    let inspected = stdout(&synprof(&["inspect", file.to_str().unwrap()]));
    assert!(inspected.contains("mimic_resnet50_googlenet"), "{inspected}");
    let e = stderr_of_failure(&["generate", "--like", "resnet50", "--filters", "3"]);
    assert!(e.contains("--filters does not apply to mimic"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
