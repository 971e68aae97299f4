//! `synprof fidelity`: a target beside its mimic proxy, on two thread counts and two batch
//! sizes; the tables are recomputed here from the run's own results.jsonl (throughput
//! error, relative-speed error, op-type share differences) and must agree with
//! fidelity.json. Cases run in three interleaved rounds and each case's figures are its
//! median round's; the paired timings (paired.jsonl: target and proxy in alternating
//! bursts) give the headline errors, recomputed here too. `--from` recomputes the same
//! from the run directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn synprof(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synprof")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn run_dir(reports: &Path) -> PathBuf {
    std::fs::read_dir(reports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().contains("fidelity-squeezenet1_1"))
        .expect("a run directory")
}

#[test]
fn fidelity_measures_a_proxy_against_its_target() {
    let reports = std::env::temp_dir().join(format!("synprof-fidelity-{}", std::process::id()));
    let (ok, stdout, stderr) = synprof(&[
        "fidelity",
        "--like",
        "squeezenet1_1",
        "--threads",
        "1,2",
        "--batch",
        "1,2",
        "--seconds",
        "0.3",
        "--repeats",
        "3",
        "--bursts",
        "5",
        "--reports",
        reports.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("### squeezenet1_1 vs its proxy `mimic:like=squeezenet1_1,seed=1`"), "{stdout}");
    let dir = run_dir(&reports);
    assert!(dir.join("index.html").is_file() && dir.join("fidelity.md").is_file());

    // Recompute from the raw records: every case in rounds 1, 2, 3 (all of round 1 first),
    // each figure from the case's median round.
    type Key = (String, usize, usize);
    // images/s and per-op-type time shares of one round
    type Round = (f64, BTreeMap<String, f64>);
    let mut rounds: BTreeMap<Key, Vec<Round>> = BTreeMap::new();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3 * 8, "2 models x 2 thread counts x 2 batches, 3 rounds");
    for (i, r) in lines.iter().enumerate() {
        assert_eq!(r["status"], "ok", "{r}");
        let round = r["case"]["round"].as_u64().unwrap() as usize;
        assert_eq!(round, i / 8 + 1, "rounds run one after another");
        assert!(r["case"]["id"].as_str().unwrap().ends_with(&format!("#r{round}")), "{}", r["case"]["id"]);
        let key = (
            r["case"]["model"].as_str().unwrap().to_string(),
            r["case"]["threads"].as_u64().unwrap() as usize,
            r["case"]["batch"].as_u64().unwrap() as usize,
        );
        let mut by_op = BTreeMap::new();
        for l in r["result"]["layers"].as_array().expect("per-layer timing") {
            *by_op.entry(l["op"].as_str().unwrap().to_string()).or_insert(0.0) += l["share"].as_f64().unwrap();
        }
        rounds.entry(key).or_default().push((r["result"]["latency"]["images_per_s"].as_f64().unwrap(), by_op));
    }
    let mut ips: BTreeMap<Key, f64> = BTreeMap::new();
    let mut shares: BTreeMap<Key, BTreeMap<String, f64>> = BTreeMap::new();
    let mut spread: BTreeMap<Key, f64> = BTreeMap::new();
    for (key, mut v) in rounds {
        assert_eq!(v.len(), 3);
        let (min, max) = (v.iter().map(|x| x.0).fold(f64::MAX, f64::min), v.iter().map(|x| x.0).fold(0.0, f64::max));
        spread.insert(key.clone(), max / min - 1.0);
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (median, by_op) = v.swap_remove(1);
        ips.insert(key.clone(), median);
        shares.insert(key, by_op);
    }
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fidelity.json")).unwrap()).unwrap();
    let pair = &f["pairs"][0];
    let (t, p) = ("squeezenet1_1".to_string(), "mimic:like=squeezenet1_1,seed=1".to_string());
    assert_eq!(pair["target"], t.as_str());
    // The paired timings: one per thread count and batch, 5 bursts each.
    let mut paired: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("paired.jsonl")).unwrap().lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!((r["a"].as_str().unwrap(), r["b"].as_str().unwrap()), (t.as_str(), p.as_str()));
        let (a, b) = (r["a_images_per_s"].as_array().unwrap(), r["b_images_per_s"].as_array().unwrap());
        assert_eq!((a.len(), b.len()), (5, 5), "{line}");
        let mut ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| b.as_f64().unwrap() / a.as_f64().unwrap()).collect();
        ratios.sort_by(f64::total_cmp);
        let key =
            (r["options"]["threads"].as_u64().unwrap() as usize, r["options"]["batch"].as_u64().unwrap() as usize);
        paired.insert(key, ratios[2] - 1.0);
    }
    assert_eq!(paired.len(), 4, "{paired:?}");
    let rows = pair["throughput"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "2 thread counts x 2 batches");
    let mut worst: f64 = 0.0;
    for row in rows {
        let threads = if row["config"].as_str().unwrap().contains("1 thread") { 1 } else { 2 };
        let batch = row["batch"].as_u64().unwrap() as usize;
        let separate = ips[&(p.clone(), threads, batch)] / ips[&(t.clone(), threads, batch)] - 1.0;
        let got = row["separate_error"].as_f64().unwrap();
        assert!((got - separate).abs() < 1e-9, "threads {threads} batch {batch}: {got} vs {separate}");
        let want = paired[&(threads, batch)];
        let got = row["error"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "paired, threads {threads} batch {batch}: {got} vs {want}");
        assert_eq!(row["paired"]["bursts"], 5);
        assert_eq!(row["rounds"], 3);
        let target_spread = row["target_round_spread"].as_f64().unwrap();
        assert!((target_spread - spread[&(t.clone(), threads, batch)]).abs() < 1e-9, "{row}");
        worst = worst.max(want.abs());
        let (ts, ps) = (&shares[&(t.clone(), threads, batch)], &shares[&(p.clone(), threads, batch)]);
        let gap = ts
            .keys()
            .chain(ps.keys())
            .map(|op| (ts.get(op).unwrap_or(&0.0) - ps.get(op).unwrap_or(&0.0)).abs())
            .fold(0.0, f64::max);
        assert!((row["share_error_pp"].as_f64().unwrap() - 100.0 * gap).abs() < 1e-9);
    }
    assert!((pair["max_abs_throughput_error"].as_f64().unwrap() - worst).abs() < 1e-9);
    let ratios = pair["ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 2, "1 -> 2 threads at each batch");
    for r in ratios {
        let batch = r["batch"].as_u64().unwrap() as usize;
        let tr = ips[&(t.clone(), 2, batch)] / ips[&(t.clone(), 1, batch)];
        let pr = ips[&(p.clone(), 2, batch)] / ips[&(p.clone(), 1, batch)];
        assert!((r["separate_error"].as_f64().unwrap() - (pr / tr - 1.0)).abs() < 1e-9, "{r}");
        let from_pairs = (1.0 + paired[&(2, batch)]) / (1.0 + paired[&(1, batch)]) - 1.0;
        assert!((r["error"].as_f64().unwrap() - from_pairs).abs() < 1e-9, "{r}");
        assert_eq!(r["paired"], true);
    }
    let worst_ratio = ratios.iter().map(|r| r["error"].as_f64().unwrap().abs()).fold(0.0, f64::max);
    assert!((pair["max_abs_ratio_error"].as_f64().unwrap() - worst_ratio).abs() < 1e-9);
    // The HTML report was written again after the paired timing: its Fidelity table has them.
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(page.contains("paired bursts"), "the report's Fidelity table lacks the paired columns");
    let csv = std::fs::read_to_string(dir.join("fidelity.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains("separate_error_pct"), "{csv}");

    // --from gives the same tables.
    let before = std::fs::read_to_string(dir.join("fidelity.md")).unwrap();
    let (ok, stdout, stderr) = synprof(&["fidelity", "--from", dir.to_str().unwrap()]);
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(std::fs::read_to_string(dir.join("fidelity.md")).unwrap(), before);
    std::fs::remove_dir_all(&reports).ok();
}

#[test]
fn fidelity_flags_are_checked() {
    let (ok, _, stderr) = synprof(&["fidelity"]);
    assert!(!ok && stderr.contains("--like"), "{stderr}");
    let (ok, _, stderr) = synprof(&["fidelity", "--like", "resnet50", "--seconds=-1"]);
    assert!(!ok && stderr.contains("--seconds -1"), "{stderr}");
    let (ok, _, stderr) = synprof(&["fidelity", "--like", "resnet50", "--device", "cuda:0", "--threads", "1,2"]);
    assert!(!ok && stderr.contains("--threads applies to the CPU only"), "{stderr}");
    // A pair order that is not one, and one naming a model that does not exist.
    let (ok, _, stderr) = synprof(&["pair", "{}"]);
    assert!(!ok && stderr.contains("not a pair order"), "{stderr}");
    let order = r#"{"a":"no_such_model_xyz","b":"resnet18","options":{"device":"cpu","dtype":"f32","batch":1,
        "threads":null,"bursts":1,"burst_seconds":0.0,"warmup_seconds":0.0,"seed":0}}"#;
    let (ok, stdout, _) = synprof(&["pair", order]);
    assert!(ok, "the reply carries the error");
    assert!(stdout.contains("no_such_model_xyz") && stdout.contains("\"result\":null"), "{stdout}");
    let (ok, _, stderr) = synprof(&["fidelity", "--from", "/nonexistent/run"]);
    assert!(!ok && stderr.contains("/nonexistent/run"), "{stderr}");
    // An unknown target fails at planning, naming it.
    let (ok, _, stderr) = synprof(&["fidelity", "--like", "no_such_model_xyz", "--dry-run"]);
    assert!(!ok && stderr.contains("no_such_model_xyz"), "{stderr}");
}
