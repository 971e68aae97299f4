//! The report pages in a real browser (Debian's chromium, headless): they load from disk
//! with no console errors, every plot image decodes, every linked file exists, and a
//! screenshot is taken. Fails, saying how to install it, where chromium is missing (CI
//! installs it in .ci/run). The check itself: tests/browser/check_report.py.

mod report_support;

use report_support::{cpu_run, gpu_run, scratch};
use std::path::{Path, PathBuf};
use std::process::Command;
use synprof::report::{self, compare, Options};

fn chromium() -> PathBuf {
    let candidates =
        std::env::var("SYNPROF_CHROMIUM").into_iter().chain(["chromium".into(), "chromium-browser".into()]);
    for candidate in candidates {
        let found = Command::new("sh").args(["-c", &format!("command -v {candidate}")]).output();
        if let Some(out) = found.ok().filter(|o| o.status.success()) {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!(
        "chromium is not installed, so the report pages cannot be checked in a browser: \
         install it with `apt-get install -y chromium` (CI does in .ci/run), or point \
         SYNPROF_CHROMIUM at a Chromium or Chrome binary"
    );
}

/// Run the checker on `page`; returns its JSON summary, panicking with its output on failure.
fn check(page: &Path, screenshot: Option<&Path>) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/check_report.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(page).arg("--chromium").arg(chromium());
    if let Some(shot) = screenshot {
        cmd.arg("--screenshot").arg(shot);
    }
    let out = cmd.output().expect("python3 runs the browser check (it needs only the standard library)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser check of {} failed:\n{stdout}\n{}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).expect("the checker prints JSON")
}

#[test]
fn report_and_compare_pages_load_cleanly_in_chromium() {
    let dir = scratch("report_browser");
    let gpu = gpu_run(&dir.join("gpu"));
    let cpu = cpu_run(&dir.join("cpu"));
    report::report(&gpu, &Options::default()).unwrap();
    report::report(&cpu, &Options::default()).unwrap();
    compare::compare(&[cpu.clone(), gpu.clone()], &dir.join("cmp"), &Options::default()).unwrap();

    let shot = dir.join("screenshot.png");
    let summary = check(&gpu.join("index.html"), Some(&shot));
    // Throughput 2, latency 2, efficiency 2, timeline, roofline, per-layer roofline.
    assert_eq!(summary["images"], 9, "{summary}");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 50_000, "the screenshot is a real picture");

    let summary = check(&cpu.join("index.html"), None);
    assert_eq!(summary["images"], 3, "throughput, latency and roofline: {summary}");
    let summary = check(&dir.join("cmp/compare.html"), None);
    assert_eq!(summary["images"], 2, "{summary}");
}

#[test]
fn the_browser_check_catches_a_missing_plot() {
    let dir = scratch("report_browser_broken");
    let cpu = cpu_run(&dir.join("cpu"));
    report::report(&cpu, &Options::default()).unwrap();
    let plot = std::fs::read_dir(cpu.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .unwrap();
    std::fs::remove_file(&plot).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/check_report.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(cpu.join("index.html"))
        .arg("--chromium")
        .arg(chromium())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a page with a missing plot passed the check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let name = plot.file_name().unwrap().to_string_lossy();
    assert!(stdout.contains(&format!("image did not load: plots/{name}")), "{stdout}");
    assert!(stdout.contains("failed to load a resource") || stdout.contains("console error"), "{stdout}");
}
