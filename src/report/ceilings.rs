//! Roofline ceilings from the run's device facts (`Context::devices`), where they exist:
//!
//! ```json
//! [{"id": "cuda:0", "name": "NVIDIA H100 80GB HBM3",
//!   "peak_flops_per_s": {"f32": 6.7e13, "f16": 9.89e14},   (or one number for every dtype)
//!   "memory_bandwidth_bytes_per_s": 3.35e12,
//!   "peak_source": "measured"}]
//! ```
//! An object keyed by device id works too, and the figures may sit under a `"peak"` object.
//! Nothing is invented: without figures the roofline has no ceilings and says so.

use super::plots::Ceiling;
use crate::cli::text::si;
use serde_json::Value;

/// Device entries with their ids.
fn entries(devices: &Value) -> Vec<(String, &Value)> {
    let id = |v: &Value| ["id", "device"].iter().find_map(|k| v.get(k)?.as_str().map(str::to_string));
    match devices {
        Value::Array(items) => items.iter().map(|v| (id(v).unwrap_or_default(), v)).collect(),
        Value::Object(map) if map.contains_key("devices") => entries(&map["devices"]),
        Value::Object(map) if id(devices).is_some() => vec![(id(devices).unwrap_or_default(), devices)],
        Value::Object(map) => {
            map.iter().filter(|(_, v)| v.is_object()).map(|(k, v)| (id(v).unwrap_or(k.clone()), v)).collect()
        }
        _ => Vec::new(),
    }
}

fn same_device(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        if s == "cuda" || s == "gpu" {
            "cuda:0".to_string()
        } else {
            s
        }
    };
    norm(a) == norm(b)
}

fn field<'a>(entry: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    let nested = entry.get("peak");
    keys.iter().find_map(|k| entry.get(*k).or_else(|| nested.and_then(|p| p.get(*k))))
}

fn positive(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64).filter(|x| x.is_finite() && *x > 0.0)
}

/// The ceilings for `device` at each of `dtypes`, and a sentence saying what they are.
pub fn ceilings_for(devices: &Value, device: &str, dtypes: &[String]) -> (Vec<Ceiling>, String) {
    let entry = entries(devices).into_iter().find(|(id, _)| same_device(id, device)).map(|(_, v)| v);
    let none = || {
        (
            Vec::new(),
            format!(
                "No ceilings for {device}: the run's context has no peak FLOP/s or memory bandwidth for it \
                 (measured peaks come from `synprof devices --peak`)."
            ),
        )
    };
    let Some(entry) = entry else { return none() };
    let bandwidth = positive(field(entry, &["memory_bandwidth_bytes_per_s", "bandwidth_bytes_per_s"]));
    let peaks = field(entry, &["peak_flops_per_s", "flops_per_s"]);
    let source = field(entry, &["peak_source", "source"]).and_then(Value::as_str).unwrap_or("source not recorded");
    let name = entry.get("name").and_then(Value::as_str).unwrap_or(device);
    let mut ceilings = Vec::new();
    for dtype in dtypes {
        let peak = match peaks {
            Some(Value::Object(by_dtype)) => positive(by_dtype.get(dtype.as_str())),
            other => positive(other),
        };
        if peak.is_none() && bandwidth.is_none() {
            continue;
        }
        let label = match peak {
            Some(p) => format!("{dtype} peak {}FLOP/s", si(p)),
            None => format!("memory {}B/s", si(bandwidth.unwrap_or(0.0))),
        };
        if ceilings.iter().any(|c: &Ceiling| c.peak_flops_per_s == peak && c.bandwidth_bytes_per_s == bandwidth) {
            continue;
        }
        ceilings.push(Ceiling { label, peak_flops_per_s: peak, bandwidth_bytes_per_s: bandwidth });
    }
    if ceilings.is_empty() {
        return none();
    }
    let parts: Vec<String> = ceilings.iter().map(|c| c.label.clone()).collect();
    let memory = bandwidth.map(|b| format!(", memory bandwidth {}B/s", si(b))).unwrap_or_default();
    (ceilings, format!("Ceilings for {device} ({name}): {}{memory} ({source}).", parts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_come_from_matching_device_facts_only() {
        let devices = serde_json::json!([
            {"id": "cpu", "name": "AMD EPYC"},
            {"id": "cuda:0", "name": "H100", "peak_flops_per_s": {"f16": 9.89e14, "f32": 6.7e13},
             "memory_bandwidth_bytes_per_s": 3.35e12, "peak_source": "datasheet"}
        ]);
        let (c, note) = ceilings_for(&devices, "cuda:0", &["f16".into()]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].peak_flops_per_s, Some(9.89e14));
        assert_eq!(c[0].bandwidth_bytes_per_s, Some(3.35e12));
        assert!(note.contains("H100") && note.contains("datasheet"), "{note}");
        let (c, note) = ceilings_for(&devices, "cpu", &["f32".into()]);
        assert!(c.is_empty() && note.starts_with("No ceilings for cpu"), "{note}");
        let (c, _) = ceilings_for(&Value::Null, "cpu", &["f32".into()]);
        assert!(c.is_empty());
        let keyed = serde_json::json!({"cuda": {"peak": {"flops_per_s": 1e12}}});
        assert_eq!(ceilings_for(&keyed, "cuda:0", &["f32".into()]).0[0].peak_flops_per_s, Some(1e12));
    }
}
