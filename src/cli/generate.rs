//! `synprof generate`: sample or instantiate synthetic nets and write model files.
//!
//! Every way of giving parameters ends as one generator spec string
//! (`family:key=value,...`), so the file's `generator` record reproduces it and the same
//! checks and messages apply everywhere. Precedence: spec file, then flags, then the
//! sweep's values.

use super::text::{thousands, Table};
use crate::synth::{self, Spec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the command line asked for.
#[derive(Debug, Default)]
pub struct Request {
    pub family: Option<String>,
    /// A spec file (JSON or TOML) or a spec string.
    pub spec: Option<String>,
    /// (key, value) from dedicated flags and `--set`, in order.
    pub values: Vec<(String, String)>,
    /// `key=v1,v2,...` or `key=a..b`: one net per combination.
    pub sweep: Vec<String>,
    pub output: Option<PathBuf>,
}

/// One net to build: where it goes (file stem) and its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub stem: String,
    pub spec: String,
}

/// A spec file's family (if it names one) and values. Tables of weights
/// (`[mix] plain = 0.5`) become `name:weight,...` lists.
pub fn read_spec_file(path: &Path) -> Result<(Option<String>, BTreeMap<String, String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read spec file {}: {e}", path.display()))?;
    let file = path.display();
    let value: serde_json::Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| format!("{file}: not valid JSON: {e}"))?
    } else {
        let table: toml::Table = toml::from_str(&text).map_err(|e| format!("{file}: not valid TOML: {e}"))?;
        serde_json::to_value(table).map_err(|e| format!("{file}: {e}"))?
    };
    let serde_json::Value::Object(map) = value else {
        return Err(format!("{file}: expected a table of generator parameters (key = value)"));
    };
    let scalar = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut family = None;
    let mut values = BTreeMap::new();
    for (key, v) in &map {
        let text = match v {
            serde_json::Value::Object(weights) => {
                let items: Option<Vec<String>> =
                    weights.iter().map(|(name, w)| scalar(w).map(|w| format!("{name}:{w}"))).collect();
                items.map(|items| items.join(","))
            }
            other => scalar(other),
        }
        .ok_or_else(|| format!("{file}: `{key}`: give a number, a string or a table of name = weight"))?;
        if key == "family" || key == "style" {
            family = Some(text);
        } else {
            values.insert(key.clone(), text);
        }
    }
    Ok((family, values))
}

fn sweep_values(arg: &str) -> Result<(String, Vec<String>), String> {
    let (key, list) =
        arg.split_once('=').ok_or_else(|| format!("--sweep `{arg}`: expected key=v1,v2,... or key=a..b"))?;
    let key = key.trim().to_string();
    if key == "mix" || key == "kernels" {
        return Err(format!("--sweep `{arg}`: `{key}` is itself a list and cannot be swept"));
    }
    let values: Vec<String> = match list.split_once("..") {
        Some((a, b)) => {
            let (a, b) = match (a.trim().parse::<u64>(), b.trim().parse::<u64>()) {
                (Ok(a), Ok(b)) if a <= b && b - a < 10_000 => (a, b),
                _ => return Err(format!("--sweep `{arg}`: a range is a..b of integers, a <= b, at most 10000 values")),
            };
            (a..=b).map(|v| v.to_string()).collect()
        }
        None => list.split(',').map(str::trim).filter(|v| !v.is_empty()).map(String::from).collect(),
    };
    if values.is_empty() {
        return Err(format!("--sweep `{arg}`: no values"));
    }
    Ok((key, values))
}

/// Expand a request into the specs to build, checking flags against the family's keys.
pub fn plan(req: &Request) -> Result<Vec<Planned>, String> {
    let (file_family, mut values) = match req.spec.as_deref() {
        Some(text) if synth::is_spec(text) => {
            let spec = Spec::parse(text).map_err(|e| e.to_string())?;
            let keys = synth::keys(&spec.family).unwrap_or_default();
            let values = keys.iter().filter_map(|k| spec.get(k).map(|v| (k.to_string(), v.to_string()))).collect();
            spec.only(keys).map_err(|e| e.to_string())?;
            (Some(spec.family.clone()), values)
        }
        Some(file) => read_spec_file(Path::new(file))?,
        None => (None, BTreeMap::new()),
    };
    let family = match (req.family.clone(), file_family) {
        (Some(f), Some(g)) if f != g => return Err(format!("--family {f} but the spec names {g}")),
        (Some(f), _) | (None, Some(f)) => f,
        (None, None) => {
            return Err(format!(
                "say which generator: --family {} (or --style), or --spec FILE naming one",
                synth::FAMILIES.join("|")
            ))
        }
    };
    let keys = synth::keys(&family)
        .ok_or_else(|| format!("unknown generator family `{family}`; families: {}", synth::FAMILIES.join(", ")))?;
    let flag_list = || keys.iter().map(|k| format!("--{}", k.replace('_', "-"))).collect::<Vec<_>>().join(", ");
    for (key, value) in &req.values {
        if !keys.contains(&key.as_str()) {
            return Err(format!(
                "--{} does not apply to {family}; {family} takes {} (any of them also as --set key=value)",
                key.replace('_', "-"),
                flag_list()
            ));
        }
        values.insert(key.clone(), value.clone());
    }
    let mut grid: Vec<Vec<(String, String)>> = vec![vec![]];
    for arg in &req.sweep {
        let (key, options) = sweep_values(arg)?;
        if !keys.contains(&key.as_str()) {
            return Err(format!("--sweep {key}: {family} takes {}", keys.join(", ")));
        }
        grid = grid
            .into_iter()
            .flat_map(|done| {
                let key = &key;
                options.iter().map(move |v| {
                    let mut next = done.clone();
                    next.push((key.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    if grid.len() > 100_000 {
        return Err(format!("--sweep gives {} nets; at most 100000", grid.len()));
    }
    Ok(grid
        .into_iter()
        .map(|point| {
            let mut all = values.clone();
            let mut stem = family.clone();
            for (k, v) in &point {
                all.insert(k.clone(), v.clone());
                stem.push_str(&format!("_{k}{v}"));
            }
            let body = all.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            Planned { stem, spec: format!("{family}:{body}") }
        })
        .collect())
}

/// Build what was asked, write files when `output` is given, return the summary text.
pub fn run(req: &Request) -> Result<String, String> {
    let planned = plan(req)?;
    let sweep = !req.sweep.is_empty();
    if let (true, Some(dir)) = (sweep, &req.output) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut table = Table::new(&["model", "params", "GMACs", "convs", "nodes", "file"]);
    let mut mimic_report = None;
    for p in &planned {
        let spec = Spec::parse(&p.spec).map_err(|e| e.to_string())?;
        let net = if spec.family == "mimic" {
            // searched once: the net, and the distances printed below
            let (targets, opts) = synth::mimic::parse(&spec).map_err(|e| e.to_string())?;
            let m = synth::mimic::mimic(&targets, &opts).map_err(|e| spec.error(e.to_string()).to_string())?;
            let names: Vec<&str> = targets.iter().map(|(n, _)| n.name.as_str()).collect();
            mimic_report = Some(super::mimic::mimic_report(&names.join(" + "), &m));
            synth::recorded(&spec, m.net)
        } else {
            synth::build_spec(&spec).map_err(|e| e.to_string())?
        };
        let a = crate::analysis::analyze(&net, 1, crate::Dtype::F32);
        let file = match (&req.output, sweep) {
            (Some(dir), true) => Some(dir.join(format!("{}.json", p.stem))),
            (Some(file), false) => Some(file.clone()),
            (None, _) => None,
        };
        if let Some(file) = &file {
            crate::graph::format::save(&net, file).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        }
        table.row(vec![
            net.name.clone(),
            thousands(a.totals.params),
            format!("{:.3}", a.totals.macs as f64 / 1e9),
            a.totals.conv_layers.to_string(),
            net.nodes.len().to_string(),
            file.map(|f| f.display().to_string()).unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut out = table.render();
    // A single mimic: how close it came, characteristic by characteristic.
    if let (Some(report), 1) = (mimic_report, planned.len()) {
        out.push('\n');
        out.push_str(&report);
        out.push('\n');
    }
    out.push_str(&format!(
        "{} net(s){}. GMACs: conv and linear multiply-accumulates per image; params: trainable.\n",
        planned.len(),
        if req.output.is_some() { " written" } else { " (not written: give -o to write model files)" }
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_is_the_grid_of_its_values() {
        let req = Request {
            family: Some("paradnn".into()),
            values: vec![("input".into(), "64".into())],
            sweep: vec!["filters=16,32".into(), "blocks=1..3".into()],
            ..Request::default()
        };
        let planned = plan(&req).unwrap();
        assert_eq!(planned.len(), 6);
        assert_eq!(planned[0].stem, "paradnn_filters16_blocks1");
        assert_eq!(planned[5].spec, "paradnn:blocks=3,filters=32,input=64");
    }

    #[test]
    fn flags_of_another_family_are_named() {
        let req = Request {
            family: Some("synnet".into()),
            values: vec![("filters".into(), "8".into())],
            ..Request::default()
        };
        let e = plan(&req).unwrap_err();
        assert!(e.starts_with("--filters does not apply to synnet; synnet takes --seed, --groups"), "{e}");
    }
}
