//! `synprof fidelity`: a target beside its mimic proxy, on two thread counts and two batch
//! sizes; the tables are recomputed here from the run's own results.jsonl (throughput
//! error, relative-speed error, op-type share differences) and must agree with
//! fidelity.json. Cases run in three interleaved rounds and each figure is the median
//! round's. `--from` recomputes the same from the run directory.

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
    let mut rounds: BTreeMap<Key, Vec<(f64, BTreeMap<String, f64>)>> = BTreeMap::new();
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
    let rows = pair["throughput"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "2 thread counts x 2 batches");
    let mut worst: f64 = 0.0;
    for row in rows {
        let threads = if row["config"].as_str().unwrap().contains("1 thread") { 1 } else { 2 };
        let batch = row["batch"].as_u64().unwrap() as usize;
        let want = ips[&(p.clone(), threads, batch)] / ips[&(t.clone(), threads, batch)] - 1.0;
        let got = row["error"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "threads {threads} batch {batch}: {got} vs {want}");
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
        assert!((r["error"].as_f64().unwrap() - (pr / tr - 1.0)).abs() < 1e-9, "{r}");
    }

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
    let (ok, _, stderr) = synprof(&["fidelity", "--from", "/nonexistent/run"]);
    assert!(!ok && stderr.contains("/nonexistent/run"), "{stderr}");
    // An unknown target fails at planning, naming it.
    let (ok, _, stderr) = synprof(&["fidelity", "--like", "no_such_model_xyz", "--dry-run"]);
    assert!(!ok && stderr.contains("no_such_model_xyz"), "{stderr}");
}
