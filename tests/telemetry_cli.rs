//! `synprof devices` works on any machine: the CPU always, the GPUs or why not.

use std::process::Command;

fn synprof(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synprof")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn devices_lists_the_cpu_and_the_gpus_or_why_not() {
    let (ok, text, err) = synprof(&["devices"]);
    assert!(ok, "{err}");
    assert!(text.starts_with("CPU\n") && text.contains("RAPL package energy"), "{text}");
    assert!(text.contains("NVIDIA GPUs: not available: NVML") || text.contains("(cuda:0)"), "{text}");

    let (ok, json, err) = synprof(&["devices", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["cpu"]["threads"].as_u64().unwrap() >= 1);
    assert!(v["gpus"].is_array() || v["gpus"]["not_available"].as_str().unwrap().contains("NVML"), "{json}");
}

#[test]
fn devices_peak_measures_the_cpu() {
    let (ok, text, err) = synprof(&["devices", "--peak", "--threads", "1"]);
    assert!(ok, "{err}");
    let table = &text[text.find("Measured ceilings").expect("a ceilings table")..];
    assert!(table.contains("matmul") && table.contains("GFLOP/s"), "{table}");
    assert!(table.contains("memory bandwidth") && table.contains("GB/s"), "{table}");
}
