//! Sweeps end to end: records appended per case, a failing case recorded while the
//! sweep goes on, Ctrl-C keeping what ran, `--resume` finishing the rest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use synprof::sweep::record::Status;
use synprof::sweep::store::RunDir;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("synprof-sweep-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_profile(dir: &Path, batches: &str, seconds: f64) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"tiny\"\n[run]\nwarmup = {{ iterations = 1, seconds = 0.0 }}\nmeasure = {{ iterations = 3, seconds = {seconds} }}\n\
             [variables]\nmodel = [\"keras_cifar10_cnn\"]\ndevice = [\"cpu\"]\nthreads = [1]\nbatch = [{batches}]\n"
        ),
    )
    .unwrap();
    path
}

fn synprof() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synprof"))
}

fn run_dir(reports: &Path) -> RunDir {
    RunDir::open(&reports.join("latest")).unwrap()
}

#[test]
fn a_sweep_records_every_case_and_keeps_going_after_a_failure() {
    let dir = scratch("full");
    let profile = write_profile(&dir, "1, 2, 1000000", 0.2);
    let out =
        synprof().args(["profile", profile.to_str().unwrap(), "--reports"]).arg(dir.join("reports")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records = run_dir(&dir.join("reports")).records().unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].status, Status::Ok);
    assert_eq!(records[1].case.batch, 2);
    let failed = &records[2];
    assert_eq!(failed.status, Status::Failed);
    assert!(failed.error.as_deref().unwrap().contains("out of memory"), "{:?}", failed.error);
    let ok = records[1].result.as_ref().unwrap();
    assert_eq!(ok.cpu_threads, Some(1));
    assert!(ok.latency.iterations >= 3);
    let context = run_dir(&dir.join("reports")).context().unwrap();
    assert_eq!(context.profile_name, "tiny");
    assert!(context.profile_text.contains("keras_cifar10_cnn"));
    // Every record carries its telemetry; the context the CPU's measured ceilings.
    let t = records[1].telemetry.as_ref().expect("telemetry in the record");
    assert!(t["samples"].as_array().is_some_and(|s| !s.is_empty()) && t["windows"].as_array().is_some());
    let cpu = &context.devices[0];
    assert_eq!(cpu["id"], "cpu");
    let flops = cpu["peak_flops_per_s"]["f32"].as_f64().unwrap();
    let bandwidth = cpu["memory_bandwidth_bytes_per_s"].as_f64().unwrap();
    assert!(flops > 1e9 && bandwidth > 1e8, "{cpu}");
    assert!(cpu["peak_source"].as_str().unwrap().contains("measured: matmul f32"), "{cpu}");
    // ...which the report's roofline draws.
    let page = std::fs::read_to_string(dir.join("reports/latest/index.html")).unwrap();
    assert!(!page.contains("No ceilings for cpu"), "the roofline has the measured ceilings");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ctrl_c_keeps_what_ran_and_resume_finishes() {
    let dir = scratch("interrupt");
    let reports = dir.join("reports");
    let profile = write_profile(&dir, "1, 2, 3, 4, 5, 6", 1.0);
    let mut child = synprof().args(["profile", profile.to_str().unwrap(), "--reports"]).arg(&reports).spawn().unwrap();
    // wait for the first record, then interrupt
    let start = Instant::now();
    loop {
        let n = RunDir::open(&reports.join("latest")).ok().and_then(|d| d.records().ok()).map_or(0, |r| r.len());
        if n >= 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no record after 2 minutes");
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "an interrupted sweep ends cleanly");
    let kept = run_dir(&reports).records().unwrap();
    assert!(!kept.is_empty() && kept.len() < 6, "{} records", kept.len());
    assert!(kept.iter().all(|r| r.status == Status::Ok));
    // The partial run has its report, written on the way out, and renders again on demand.
    let page = std::fs::read_to_string(reports.join("latest/index.html")).expect("an interrupted run has its report");
    assert!(page.contains("keras_cifar10_cnn"));
    let rendered = synprof().args(["report"]).arg(reports.join("latest")).output().unwrap();
    let summary = String::from_utf8_lossy(&rendered.stdout);
    assert!(rendered.status.success(), "{}", String::from_utf8_lossy(&rendered.stderr));
    assert!(summary.contains(&format!("({} cases, 0 failed", kept.len())), "{summary}");

    let resumed = synprof()
        .args(["profile", profile.to_str().unwrap(), "--resume"])
        .arg(reports.join("latest"))
        .output()
        .unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let all = run_dir(&reports).records().unwrap();
    assert_eq!(all.len(), 6);
    let mut batches: Vec<usize> = all.iter().map(|r| r.case.batch).collect();
    batches.sort();
    assert_eq!(batches, [1, 2, 3, 4, 5, 6], "each case once");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_torn_last_line_is_skipped() {
    let dir = scratch("torn");
    let profile = write_profile(&dir, "1", 0.1);
    let out =
        synprof().args(["profile", profile.to_str().unwrap(), "--reports"]).arg(dir.join("reports")).output().unwrap();
    assert!(out.status.success());
    let results = dir.join("reports/latest/results.jsonl");
    let mut text = std::fs::read_to_string(&results).unwrap();
    text.push_str("{\"case\":{\"id\":\"half a rec");
    std::fs::write(&results, text).unwrap();
    assert_eq!(run_dir(&dir.join("reports")).records().unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}
