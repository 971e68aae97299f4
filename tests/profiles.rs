//! Profiles: invalid ones get their clear errors before anything runs; variables expand as
//! a product with extensions applied; the shipped profiles are valid.

use std::path::Path;
use synprof::sweep::plan::{expand, Machine};
use synprof::sweep::{profile, shipped};

fn plan_of(text: &str) -> Result<synprof::sweep::plan::Plan, String> {
    let p = profile::parse(text, "test.toml").map_err(|e| e.to_string())?;
    expand(&p, "test.toml", &Machine { cuda_devices: 0 }).map_err(|e| e.to_string())
}

#[test]
fn invalid_profiles_get_clear_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_profiles");
    let expected = std::fs::read_to_string(dir.join("expected_errors.tsv")).unwrap();
    let mut checked = 0;
    for line in expected.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let mut parts = line.split('\t');
        let file = parts.next().unwrap();
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let shown = path.display().to_string();
        let err = match profile::parse(&text, &shown) {
            Err(e) => e.to_string(),
            Ok(p) => match expand(&p, &shown, &Machine { cuda_devices: 0 }) {
                Err(e) => e.to_string(),
                Ok(plan) => panic!("{file} is accepted ({} cases) but must fail", plan.cases.len()),
            },
        };
        assert!(err.contains(file), "{file}: the error does not name the file: {err}");
        for fragment in parts {
            assert!(err.contains(fragment), "{file}: expected `{fragment}` in:\n{err}");
        }
        checked += 1;
    }
    assert!(checked >= 10, "{checked}");
}

#[test]
fn all_problems_are_reported_together() {
    let err =
        plan_of("name = \"t\"\n[variables]\nmodel = [\"resnet5\"]\nbatch = [0]\ndtype = [\"fp8\"]\n").unwrap_err();
    assert!(err.starts_with("3 problem(s)"), "{err}");
}

#[test]
fn variables_expand_as_a_product_with_extensions() {
    let plan = plan_of(
        r#"name = "t"
[variables]
model = ["resnet18", "squeezenet1_1"]
mode = ["infer", "train"]
batch = [1, 8]

[[extensions]]
when = { mode = "train", batch = 1 }
skip = true

[[extensions]]
when = { model = "squeezenet1_1", mode = "train" }
set = { batch = 4 }
"#,
    )
    .unwrap();
    let ids: Vec<&str> = plan.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "resnet18/cpu/candle/f32/infer/b1",
            "resnet18/cpu/candle/f32/infer/b8",
            "resnet18/cpu/candle/f32/train/b8",
            "squeezenet1_1/cpu/candle/f32/infer/b1",
            "squeezenet1_1/cpu/candle/f32/infer/b8",
            "squeezenet1_1/cpu/candle/f32/train/b4",
        ]
    );
    assert!(plan.estimated_seconds > 0.0);
}

#[test]
fn best_device_falls_back_to_cpu_and_picks_cuda_when_there() {
    let text = "name = \"t\"\n[variables]\nmodel = [\"resnet18\"]\n";
    let p = profile::parse(text, "t").unwrap();
    assert_eq!(expand(&p, "t", &Machine { cuda_devices: 0 }).unwrap().cases[0].device.to_string(), "cpu");
    assert_eq!(expand(&p, "t", &Machine { cuda_devices: 1 }).unwrap().cases[0].device.to_string(), "cuda:0");
}

#[test]
fn shipped_profiles_are_valid_and_quick_is_small() {
    for (name, _) in shipped::SHIPPED {
        let (text, file) = shipped::resolve(name).unwrap();
        let p = profile::parse(&text, &file).unwrap_or_else(|e| panic!("{e}"));
        let gpu_only = name.starts_with("gpu-");
        let machine = Machine { cuda_devices: usize::from(gpu_only) };
        let plan = expand(&p, &file, &machine).unwrap_or_else(|e| panic!("{e}"));
        assert!(!plan.cases.is_empty());
        if gpu_only {
            assert!(plan.cases.iter().all(|c| c.device.to_string() == "cuda:0"));
            let e = expand(&p, &file, &Machine { cuda_devices: 0 }).unwrap_err().to_string();
            assert!(e.contains("variables.device[0]") && e.contains("cuda:0 is not available here"), "{e}");
        }
        match *name {
            // at most 3 minutes on 2 cores: the estimate must say so too
            "quick" => assert!(plan.estimated_seconds < 180.0, "{}", plan.estimated_seconds),
            "ai-matrix" => assert_eq!(plan.cases.len(), 5 * 2 * 2 * 3),
            // issue #3's GPU comparison: both models, both runtimes, every precision
            "gpu-peers" => {
                assert_eq!(plan.cases.len(), 2 * 2 * 3 * (4 + 2));
                for backend in ["candle", "pytorch"] {
                    assert!(
                        plan.cases.iter().any(|c| c.id.contains(&format!("/{backend}/bf16/train/b128"))),
                        "{backend}"
                    );
                }
                assert!(!plan.cases.iter().any(|c| c.id.ends_with("/train/b256") || c.id.ends_with("/train/b1")));
            }
            "paradnn-cnn" => {
                assert_eq!(plan.cases.len(), 18 * 2 * 2);
                assert!(plan.cases.iter().all(|c| c.model.starts_with("paradnn:")));
            }
            _ => {}
        }
    }
}

#[test]
fn repeats_run_the_case_list_in_rounds() {
    let text =
        "name = \"t\"\n[run]\nrepeats = 3\n[variables]\nmodel = [\"resnet18\", \"squeezenet1_1\"]\nbatch = [1, 8]\n";
    let plan = plan_of(text).unwrap();
    assert_eq!(plan.cases.len(), 12);
    let once = plan_of(&text.replace("repeats = 3", "repeats = 1")).unwrap();
    assert_eq!(once.cases.len(), 4);
    assert!(once.cases.iter().all(|c| c.round == 0 && !c.id.contains('#')));
    for (i, c) in plan.cases.iter().enumerate() {
        let (round, base) = (i / 4 + 1, &once.cases[i % 4]);
        assert_eq!(c.round, round);
        assert_eq!(c.id, format!("{}#r{round}", base.id));
        assert_eq!((&c.model, c.batch), (&base.model, base.batch));
    }
    // Three times the measuring.
    assert!((plan.estimated_seconds / once.estimated_seconds - 3.0).abs() < 1e-9);
}
