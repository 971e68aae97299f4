//! The report and compare pages rendered from fabricated runs: every plot written as a
//! valid PNG and SVG, the tables holding the numbers the records hold, partial runs and
//! runs without telemetry rendering, user templates taking over. (The page in a real
//! browser: tests/report_browser.rs.)

mod common;
mod report_support;

use report_support::{cpu_run, gpu_run, images_per_s, scratch, MODELS};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use synprof::report::{self, compare, Options};

fn render(run: &Path) -> report::Written {
    report::report(run, &Options::default()).unwrap_or_else(|e| panic!("report of {}: {e}", run.display()))
}

fn csv(dir: &Path, name: &str) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    common::csv_rows(&text)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

fn plots(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("plots")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn every_plot_is_written_as_png_and_svg_with_the_font_inside() {
    let run = gpu_run(&scratch("report_plots"));
    let written = render(&run);
    let files = plots(&run);
    let stems: Vec<String> = files
        .iter()
        .filter(|p| p.extension().unwrap() == "png")
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "throughput_infer_f32_cuda-0_candle",
        "throughput_infer_f16_cuda-0_candle",
        "latency_infer_f16_cuda-0_candle",
        "efficiency_infer_f32_cuda-0_candle",
        "efficiency_infer_f16_cuda-0_candle",
        "timeline",
        "roofline_cuda-0",
        "roofline_layers_2",
    ] {
        assert!(stems.contains(&expected.to_string()), "no plot {expected}; got {stems:?}");
    }
    // Training ran at one batch size only: no line to draw, the page says so instead.
    assert!(!stems.iter().any(|s| s.starts_with("throughput_train")), "{stems:?}");
    for stem in &stems {
        let (w, h) = png_size(&run.join("plots").join(format!("{stem}.png")));
        assert!(w == 1760 && h >= 600, "{stem}.png is {w}x{h}: PNGs are drawn at twice the 880 px page width");
        let svg = std::fs::read_to_string(run.join("plots").join(format!("{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{stem}.svg is not one svg element");
        assert!(svg.contains("@font-face{font-family:'DejaVu Sans';src:url(data:font/woff2;base64,"), "{stem}.svg");
        assert!(svg.matches("<text").count() >= 5, "{stem}.svg has too little text");
    }
    let throughput = std::fs::read_to_string(run.join("plots/throughput_infer_f32_cuda-0_candle.svg")).unwrap();
    assert!(throughput.contains("throughput (images/s)") && throughput.contains("batch size (images)"));
    let timeline = std::fs::read_to_string(run.join("plots/timeline.svg")).unwrap();
    assert!(
        timeline.contains("power (W)") && timeline.contains("temperature (°C)") && timeline.contains("measured window")
    );
    let roofline = std::fs::read_to_string(run.join("plots/roofline_cuda-0.svg")).unwrap();
    assert!(roofline.contains("f16 peak 989.0 TFLOP/s"), "the f16 ceiling is labelled");
    assert!(roofline.contains("arithmetic intensity (FLOP/byte)"));
    assert_eq!(written.failed, 1);
    assert!(written.files.iter().all(|f| f.is_file()), "every file it lists exists");
}

#[test]
fn tables_hold_the_recorded_numbers() {
    let run = gpu_run(&scratch("report_tables"));
    render(&run);
    let matrix = csv(&run, "images_per_s_by_batch.csv");
    let row = |model: &str, dtype: &str| {
        matrix.iter().find(|r| r["model"] == model && r["dtype"] == dtype && r["mode"] == "infer").unwrap().clone()
    };
    for m in &MODELS {
        for dtype in ["f32", "f16"] {
            for b in [1, 8, 32] {
                let cell = &row(m.name, dtype)[&format!("b{b}_images_per_s")];
                if m.name == "resnet50" && dtype == "f32" && b == 32 {
                    assert_eq!(cell, "", "a failed case has no throughput");
                    continue;
                }
                let value: f64 = cell.parse().unwrap_or_else(|_| panic!("{} {dtype} b{b}: `{cell}`", m.name));
                assert!(close(value, images_per_s(m, b, dtype, "infer")), "{} {dtype} b{b}: {value}", m.name);
            }
        }
    }
    assert_eq!(row("squeezenet1_1", "f16")["device"], "cuda:0");

    let models = csv(&run, "models.csv");
    let r50 = models.iter().find(|r| r["model"] == "resnet50" && r["mode"] == "infer").unwrap();
    assert_eq!(r50["params"], "25557032");
    assert_eq!(r50["macs_per_image"], "4089184256");
    // f32 b32 failed, so the best f32 batch is 8; f16 reaches batch 32.
    assert_eq!(r50["f32_best_batch"], "8");
    assert_eq!(r50["f16_best_batch"], "32");
    assert!(close(r50["f16_best_images_per_s"].parse().unwrap(), images_per_s(&MODELS[0], 32, "f16", "infer")));
    let b1_ms: f64 = r50["f32_b1_p50_latency_ms"].parse().unwrap();
    assert!(close(b1_ms, 1e3 / images_per_s(&MODELS[0], 1, "f32", "infer")));

    let cases = csv(&run, "cases.csv");
    assert_eq!(cases.len(), 19);
    let failed: Vec<_> = cases.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["error"].starts_with("out of memory: CUDA_ERROR_OUT_OF_MEMORY"));
    assert_eq!(failed[0]["case_id"], "resnet50/cuda:0/candle/f32/infer/b32");

    let energy = csv(&run, "energy.csv");
    let e = energy
        .iter()
        .find(|r| r["model"] == "mobilenet_v2" && r["batch"] == "8" && r["configuration"].contains("f16"))
        .unwrap();
    let ips = images_per_s(&MODELS[1], 8, "f16", "infer");
    let power = 120.0 + 40.0 * 8f64.ln() + 30.0;
    assert!(close(e["images_per_j"].parse().unwrap(), ips / power), "images/J = images/s ÷ W here");
    assert!(close(e["avg_power_w"].parse().unwrap(), power));

    let layers = csv(&run, "layers.csv");
    assert_eq!(layers.len(), 10);
    assert_eq!(layers[0]["layer"], "layer0_conv2d", "slowest first");
}

#[test]
fn the_page_states_context_failures_conventions_and_links_its_files() {
    let run = gpu_run(&scratch("report_page"));
    render(&run);
    let html = std::fs::read_to_string(run.join("index.html")).unwrap();
    for needle in [
        "out of memory: CUDA_ERROR_OUT_OF_MEMORY",
        "Fixture Xeon",
        "0123456789ab",
        "Fabricated cases for the report tests",
        "Ceilings for cuda:0 (NVIDIA H100 80GB HBM3 (fabricated))",
        "Multiply-accumulates of convolution and linear layers only",
        "Trainable parameters",
        "href=\"images_per_s_by_batch.csv\"",
        "href=\"energy.csv\"",
        "src=\"plots/timeline.png\"",
        "href=\"plots/timeline.svg\"",
        "training · f16 · cuda:0 · candle: batch 32 only",
    ] {
        assert!(html.contains(needle), "index.html lacks `{needle}`");
    }
    assert!(!html.contains("http://") && !html.contains("https://"), "the page refers to the network");
    assert!(!html.contains("<script"), "the page needs no script");
}

#[test]
fn a_cpu_run_without_telemetry_says_there_is_no_power_data() {
    let run = cpu_run(&scratch("report_cpu"));
    render(&run);
    let html = std::fs::read_to_string(run.join("index.html")).unwrap();
    assert!(html.contains("No power telemetry for this run (CPU without RAPL)"));
    assert!(html.contains("No ceilings for cpu"));
    assert!(!run.join("energy.csv").exists());
    let names: Vec<String> =
        plots(&run).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.starts_with("efficiency") || n.starts_with("timeline")), "{names:?}");
}

#[test]
fn a_partial_run_renders_what_it_has() {
    let run = cpu_run(&scratch("report_partial"));
    // A crash in the middle of writing the next record leaves half a line.
    let mut text = std::fs::read_to_string(run.join("results.jsonl")).unwrap();
    text.push_str("{\"case\":{\"id\":\"resnet50/cpu/candle/f32/in");
    std::fs::write(run.join("results.jsonl"), text).unwrap();
    let written = render(&run);
    assert_eq!(written.cases, 9);

    // A run interrupted before its first case finished: context only.
    let empty = scratch("report_empty");
    report_support::write_run(&empty, &report_support::context("empty", serde_json::Value::Null, "cpu"), &[]);
    render(&empty);
    let html = std::fs::read_to_string(empty.join("index.html")).unwrap();
    assert!(html.contains("No case finished"));
}

#[test]
fn compare_gives_speedups_per_model_batch_and_dtype() {
    let dir = scratch("report_compare");
    let cpu = cpu_run(&dir.join("cpu"));
    let gpu = gpu_run(&dir.join("gpu"));
    let out = dir.join("cmp");
    compare::compare(&[cpu, gpu], &out, &Options::default()).unwrap();
    let rows = csv(&out, "compare.csv");
    let f32_rows: Vec<_> = rows.iter().filter(|r| r["dtype"] == "f32" && r["mode"] == "infer").collect();
    for r in &f32_rows {
        match (r["model"].as_str(), r["batch"].as_str()) {
            ("geometric mean", _) => assert!(close(r["cuda_0_speedup_over_cpu"].parse().unwrap(), 20.0)),
            ("resnet50", "32") => assert_eq!(r["cuda_0_speedup_over_cpu"], "", "the GPU side failed: no speedup"),
            (model, batch) => {
                let speedup: f64 = r["cuda_0_speedup_over_cpu"].parse().unwrap_or_else(|_| panic!("{model} b{batch}"));
                assert!(close(speedup, 20.0), "{model} b{batch}: {speedup}");
            }
        }
    }
    assert_eq!(f32_rows.len(), 10, "9 cases and the geometric mean");
    // f16 only ran on the GPU: listed, without a speedup.
    assert!(rows.iter().filter(|r| r["dtype"] == "f16").all(|r| r["cuda_0_speedup_over_cpu"].is_empty()));
    let html = std::fs::read_to_string(out.join("compare.html")).unwrap();
    assert!(html.contains("20.0×"), "the geometric mean is on the page");
    assert!(out.join("plots/speedup_1.png").is_file() && out.join("plots/speedup_by_model.svg").is_file());

    let alone = compare::compare(&[dir.join("cpu")], &dir.join("cmp1"), &Options::default());
    assert!(alone.unwrap_err().0.contains("nothing to compare"));
}

#[test]
fn templates_in_a_directory_replace_the_built_in_ones() {
    let dir = scratch("report_templates");
    let run = cpu_run(&dir.join("run"));
    let templates = dir.join("my_templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("report.html"), "<p>{{ run.run_id }} has {{ run.cases }} cases</p>").unwrap();
    let options = Options { out_dir: None, templates: Some(templates.clone()) };
    report::report(&run, &options).unwrap();
    let html = std::fs::read_to_string(run.join("index.html")).unwrap();
    assert_eq!(html, "<p>2026-11-23T14-00-00Z_fixture-cpu has 9 cases</p>");

    std::fs::write(templates.join("report.html"), "{% for x in %}").unwrap();
    let err = report::report(&run, &options).unwrap_err();
    assert!(err.0.contains("report.html"), "the error names the template: {err}");

    let missing = Options { out_dir: None, templates: Some(dir.join("nowhere")) };
    assert!(report::report(&run, &missing).unwrap_err().0.contains("no such templates directory"));
}

#[test]
fn the_committed_example_renders() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/examples");
    let runs: Vec<PathBuf> = std::fs::read_dir(&examples)
        .map(|d| d.map(|e| e.unwrap().path()).filter(|p| p.join("context.json").is_file()).collect())
        .unwrap_or_default();
    assert!(!runs.is_empty(), "no example run under {}", examples.display());
    for run in runs {
        assert!(run.join("index.html").is_file(), "{}: the committed report is missing", run.display());
        let out = scratch(&format!("report_example_{}", run.file_name().unwrap().to_string_lossy()));
        let written = report::report(&run, &Options { out_dir: Some(out.clone()), templates: None }).unwrap();
        assert!(written.cases > 0);
        // The same files as committed, so the committed report is this synprof's report.
        for f in plots(&out) {
            let committed = run.join("plots").join(f.file_name().unwrap());
            assert!(committed.is_file(), "{} is not committed; re-render the example", committed.display());
        }
    }
}

#[test]
fn the_report_and_compare_commands_write_pages_and_explain_errors() {
    let dir = scratch("report_cli");
    let cpu = cpu_run(&dir.join("cpu"));
    let gpu = gpu_run(&dir.join("gpu"));
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_synprof")).args(args).output().unwrap()
    };
    let out = run(&["report".as_ref(), cpu.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("index.html (9 cases, 0 failed"));
    assert!(cpu.join("index.html").is_file());

    let cmp = dir.join("cmp");
    let out = run(&["compare".as_ref(), cpu.as_os_str(), gpu.as_os_str(), "--out".as_ref(), cmp.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(cmp.join("compare.html").is_file() && cmp.join("compare.csv").is_file());

    let out = run(&["report".as_ref(), dir.join("nowhere").as_os_str()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a run directory: it has no context.json"), "{stderr}");
}
