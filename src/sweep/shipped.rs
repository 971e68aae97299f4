//! The profiles shipped in `profiles/`, embedded so that `synprof profile quick` works from
//! any directory. A file of the same name in `./profiles/` takes precedence.

pub const SHIPPED: &[(&str, &str)] = &[
    ("quick", include_str!("../../profiles/quick.toml")),
    ("ai-matrix", include_str!("../../profiles/ai-matrix.toml")),
    ("dlbs", include_str!("../../profiles/dlbs.toml")),
    ("paradnn-cnn", include_str!("../../profiles/paradnn-cnn.toml")),
    ("gpu-full", include_str!("../../profiles/gpu-full.toml")),
    ("gpu-peers", include_str!("../../profiles/gpu-peers.toml")),
];

/// Profile text and where it came from, for a name (`quick`) or a path.
pub fn resolve(spec: &str) -> Result<(String, String), String> {
    let path = std::path::Path::new(spec);
    if path.is_file() {
        return std::fs::read_to_string(path)
            .map(|t| (t, spec.to_string()))
            .map_err(|e| format!("{spec}: cannot read: {e}"));
    }
    let local = std::path::Path::new("profiles").join(format!("{spec}.toml"));
    if local.is_file() {
        let file = local.display().to_string();
        return std::fs::read_to_string(&local)
            .map(|t| (t, file.clone()))
            .map_err(|e| format!("{file}: cannot read: {e}"));
    }
    match SHIPPED.iter().find(|(name, _)| *name == spec) {
        Some((name, text)) => Ok((text.to_string(), format!("<shipped profile {name}>"))),
        None => Err(format!(
            "`{spec}` is neither a profile file nor a shipped profile; shipped: {}",
            SHIPPED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        )),
    }
}
