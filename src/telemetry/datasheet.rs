//! Datasheet peaks of common accelerators (profiles/devices/*.toml, built in; more can be
//! loaded from a folder), matched to the names NVML reports.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// One accelerator's datasheet figures. Tensor-core figures are dense (no 2:4 sparsity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Datasheet {
    pub name: String,
    /// Matched against NVML names, case-insensitive, as whole words ("NVIDIA L4" does not
    /// match "NVIDIA L40S"); the longest match wins.
    #[serde(rename = "match")]
    pub match_names: Vec<String>,
    pub fp64_tflops: Option<f64>,
    pub fp32_tflops: f64,
    pub tf32_tflops: Option<f64>,
    pub fp16_tflops: Option<f64>,
    pub bf16_tflops: Option<f64>,
    pub memory_gb: f64,
    pub memory_bandwidth_gb_s: f64,
    pub tdp_w: f64,
    /// The datasheet's title, and where to find it.
    pub source: String,
    pub source_url: String,
    pub notes: Option<String>,
}

const BUILT_IN: &[(&str, &str)] = &[
    ("h100_sxm.toml", include_str!("../../profiles/devices/h100_sxm.toml")),
    ("h100_pcie.toml", include_str!("../../profiles/devices/h100_pcie.toml")),
    ("h200_sxm.toml", include_str!("../../profiles/devices/h200_sxm.toml")),
    ("a100_sxm4_40gb.toml", include_str!("../../profiles/devices/a100_sxm4_40gb.toml")),
    ("a100_sxm4_80gb.toml", include_str!("../../profiles/devices/a100_sxm4_80gb.toml")),
    ("v100_sxm2.toml", include_str!("../../profiles/devices/v100_sxm2.toml")),
    ("v100_pcie.toml", include_str!("../../profiles/devices/v100_pcie.toml")),
    ("p100_sxm2.toml", include_str!("../../profiles/devices/p100_sxm2.toml")),
    ("p100_pcie.toml", include_str!("../../profiles/devices/p100_pcie.toml")),
    ("p4.toml", include_str!("../../profiles/devices/p4.toml")),
    ("t4.toml", include_str!("../../profiles/devices/t4.toml")),
    ("l4.toml", include_str!("../../profiles/devices/l4.toml")),
];

/// Parse one datasheet; the error names the file and what is wrong (with its line).
pub fn parse(text: &str, origin: &str) -> Result<Datasheet, String> {
    let sheet: Datasheet = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
    if sheet.match_names.is_empty() {
        return Err(format!("{origin}: `match` is empty: give at least one NVML name, such as \"H100 PCIe\""));
    }
    if sheet.source_url.is_empty() || sheet.source.is_empty() {
        return Err(format!("{origin}: `source` and `source_url` must say where the figures come from"));
    }
    Ok(sheet)
}

/// The datasheets shipped with synprof.
pub fn built_in() -> Vec<Datasheet> {
    BUILT_IN.iter().map(|(file, text)| parse(text, file).expect("built-in datasheets parse (tested)")).collect()
}

/// Every `*.toml` in `dir`.
pub fn load_dir(dir: &Path) -> Result<Vec<Datasheet>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            parse(&text, &p.display().to_string())
        })
        .collect()
}

/// `needle` in `haystack` (both lower-case) with no letter or digit on either side.
fn contains_word(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(i, _)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + needle.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// The datasheet for a device name as NVML reports it.
pub fn find<'a>(sheets: &'a [Datasheet], device_name: &str) -> Option<&'a Datasheet> {
    let name = device_name.to_lowercase();
    sheets
        .iter()
        .flat_map(|s| s.match_names.iter().map(move |m| (s, m.to_lowercase())))
        .filter(|(_, m)| contains_word(&name, m))
        .max_by_key(|(_, m)| m.len())
        .map(|(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_files_parse_and_match_their_nvml_names() {
        let sheets = built_in();
        assert_eq!(sheets.len(), BUILT_IN.len());
        let dir = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/devices")).unwrap();
        assert_eq!(dir.len(), sheets.len(), "every file in profiles/devices is built in");
        let cases = [
            ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 80GB"),
            ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe 80GB"),
            ("NVIDIA H200", "NVIDIA H200 SXM 141GB"),
            ("NVIDIA A100-SXM4-40GB", "NVIDIA A100 SXM4 40GB"),
            ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 SXM4 80GB"),
            ("Tesla V100-SXM2-32GB", "NVIDIA Tesla V100 SXM2"),
            ("Tesla V100-PCIE-16GB", "NVIDIA Tesla V100 PCIe"),
            ("Tesla P100-SXM2-16GB", "NVIDIA Tesla P100 SXM2 16GB"),
            ("Tesla P100-PCIE-16GB", "NVIDIA Tesla P100 PCIe 16GB"),
            ("Tesla P4", "NVIDIA Tesla P4"),
            ("Tesla T4", "NVIDIA T4"),
            ("NVIDIA L4", "NVIDIA L4"),
        ];
        for (nvml, sheet) in cases {
            assert_eq!(find(&sheets, nvml).map(|s| s.name.as_str()), Some(sheet), "{nvml}");
        }
        for other in ["NVIDIA L40S", "Tesla P40", "NVIDIA GeForce RTX 4090", "Tesla P100-PCIE-12GB"] {
            assert!(find(&sheets, other).is_none(), "{other} has no datasheet here");
        }
        let h100 = find(&sheets, "NVIDIA H100 80GB HBM3").unwrap();
        assert_eq!((h100.bf16_tflops, h100.memory_bandwidth_gb_s, h100.tdp_w), (Some(989.4), 3350.0, 700.0));
        assert!(sheets.iter().all(|s| s.source_url.starts_with("https://")));
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse("name = \"X\"\nmatch = [\"X\"]\nfp32_tflop = 1\n", "x.toml").unwrap_err();
        assert!(e.starts_with("x.toml") && e.contains("fp32_tflop"), "{e}");
        let e = parse(
            "name='X'\nmatch=[]\nfp32_tflops=1\nmemory_gb=1\nmemory_bandwidth_gb_s=1\ntdp_w=1\nsource='s'\nsource_url='u'",
            "y.toml",
        )
        .unwrap_err();
        assert!(e.contains("`match` is empty"), "{e}");
    }
}
