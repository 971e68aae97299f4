//! The JSON model format: round trips, a corpus of bad files with the errors they must
//! produce, and random mutations of valid files that must never panic.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use synprof::analysis::analyze;
use synprof::graph::format;
use synprof::{zoo, Dtype};

#[test]
fn every_zoo_model_round_trips_byte_for_byte() {
    for model in zoo::registry().iter().filter(|m| m.build.is_some()) {
        let net = model.build(None).unwrap();
        let text = format::to_string(&net);
        let back = format::parse(&text, model.name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, net, "{}", model.name);
        assert_eq!(format::to_string(&back), text, "{}", model.name);
    }
}

#[test]
fn bad_files_get_their_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_models");
    let expected = std::fs::read_to_string(dir.join("expected_errors.tsv")).unwrap();
    let mut checked = 0;
    for line in expected.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let mut parts = line.split('\t');
        let file = parts.next().unwrap();
        let path = dir.join(file);
        let err = match format::load(&path) {
            Ok(_) => panic!("{file} loaded but must fail"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(file), "{file}: the error does not name the file: {err}");
        for fragment in parts {
            assert!(err.contains(fragment), "{file}: expected `{fragment}` in: {err}");
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} bad files");
}

/// One random edit of model-file text: the kinds of damage hand edits and broken tools do.
fn mutate(text: &str, rng: &mut ChaCha8Rng) -> String {
    let mut s: Vec<char> = text.chars().collect();
    if s.is_empty() {
        return "{".to_string();
    }
    let pos = rng.random_range(0..s.len());
    match rng.random_range(0..8) {
        0 => {
            s.remove(pos);
        }
        1 => s.insert(pos, *b"{}[]\",:0123456789-ex".map(char::from).get(rng.random_range(0..20)).unwrap()),
        2 => s.truncate(pos),
        // replace a number with an extreme or odd one
        3..=5 => {
            let text: String = s.iter().collect();
            let numbers: Vec<(usize, usize)> = number_spans(&text);
            if let Some(&(a, b)) = numbers.get(rng.random_range(0..numbers.len().max(1))) {
                let replacement = [
                    "0",
                    "-1",
                    "1",
                    "2",
                    "3",
                    "7",
                    "4294967297",
                    "18446744073709551616",
                    "1e30",
                    "0.5",
                    "65536",
                    "1048577",
                    "-0",
                ];
                let r = replacement[rng.random_range(0..replacement.len())];
                return format!("{}{}{}", &text[..a], r, &text[b..]);
            }
        }
        // swap a name for another word
        6 => {
            let text: String = s.iter().collect();
            let words = [
                "\"relu\"",
                "\"conv2d\"",
                "\"input\"",
                "\"add\"",
                "\"concat\"",
                "\"flatten\"",
                "\"linear\"",
                "\"nodes\"",
                "\"x\"",
                "null",
                "true",
                "[]",
                "{}",
            ];
            let spans = string_spans(&text);
            if let Some(&(a, b)) = spans.get(rng.random_range(0..spans.len().max(1))) {
                let w = words[rng.random_range(0..words.len())];
                return format!("{}{}{}", &text[..a], w, &text[b..]);
            }
        }
        // duplicate or drop a whole node line
        _ => {
            let mut lines: Vec<&str> = text.lines().collect();
            let i = rng.random_range(0..lines.len());
            if rng.random_bool(0.5) {
                lines.insert(i, lines[i]);
            } else {
                lines.remove(i);
            }
            return lines.join("\n");
        }
    }
    s.into_iter().collect()
}

fn number_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b'e' || bytes[i] == b'-')
            {
                i += 1;
            }
            spans.push((start, i));
        }
        i += 1;
    }
    spans
}

fn string_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c == '"' {
            match start.take() {
                None => start = Some(i),
                Some(a) => spans.push((a, i + 1)),
            }
        }
    }
    spans
}

#[test]
fn ten_thousand_mutations_never_panic() {
    let sources: Vec<String> =
        ["resnet18", "googlenet", "squeezenet1_1", "shufflenet_v2_x1_0", "synnet", "keras_cifar10_cnn"]
            .iter()
            .filter_map(|name| zoo::build(name, None).ok())
            .map(|net| format::to_string(&net))
            .collect();
    assert!(sources.len() >= 3);
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let (mut accepted, mut rejected) = (0, 0);
    for i in 0..10_000 {
        let mut text = sources[i % sources.len()].clone();
        for _ in 0..rng.random_range(1..4) {
            text = mutate(&text, &mut rng);
        }
        let outcome = std::panic::catch_unwind(|| match format::parse(&text, "mutant.json") {
            Ok(net) => {
                // whatever loads must also be countable at any batch
                let a = analyze(&net, 64, Dtype::F16);
                assert!(a.totals.flops >= 2 * a.totals.macs.min(u64::MAX / 2));
                true
            }
            Err(e) => {
                assert!(!e.message.is_empty());
                false
            }
        });
        match outcome {
            Ok(true) => accepted += 1,
            Ok(false) => rejected += 1,
            Err(_) => panic!("mutation {i} panicked; text:\n{text}"),
        }
    }
    // Both outcomes must occur, or the mutations are not exercising the validator.
    assert!(accepted > 100 && rejected > 1000, "accepted {accepted}, rejected {rejected}");
}

#[test]
fn the_cli_reports_a_bad_file_without_panicking() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_models/12_add_shape_mismatch.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_synprof")).arg("inspect").arg(&file).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("12_add_shape_mismatch.json") && stderr.contains("add1"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
