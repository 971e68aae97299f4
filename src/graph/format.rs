//! The versioned JSON model format.
//!
//! ```json
//! {
//!   "format": "synprof-model",
//!   "format_version": 1,
//!   "name": "tiny",
//!   "outputs": ["fc1"],
//!   "nodes": [
//!     {"name":"input","op":{"type":"input","shape":[3,32,32]}},
//!     {"name":"conv1","inputs":["input"],"op":{"type":"conv2d","out_channels":16,"kernel":[3,3],...}},
//!     ...
//!   ]
//! }
//! ```
//! One node per line, so files diff well. `generator` (optional) records how a synthetic
//! net was made: generator, parameters and seed.

use super::net::{GraphError, Net, RawNode};
use super::op::Op;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

pub const FORMAT_NAME: &str = "synprof-model";
pub const FORMAT_VERSION: u64 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    format: String,
    format_version: u64,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generator: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outputs: Option<Vec<String>>,
    nodes: Vec<NodeFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    inputs: Vec<String>,
    op: Op,
}

/// Why a model file could not be read: the file, where in it, and what was wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFileError {
    pub file: String,
    /// `line:column` for syntax and type errors.
    pub line_col: Option<(usize, usize)>,
    /// JSON path of the offending field, e.g. `nodes[3].op.kernel`.
    pub path: String,
    pub node: Option<String>,
    pub message: String,
}

impl fmt::Display for ModelFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, col)) = self.line_col {
            write!(f, ":{line}:{col}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": at {}", self.path)?;
        }
        if let Some(node) = &self.node {
            write!(f, " (node `{node}`)")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ModelFileError {}

/// Read and validate a model file.
pub fn load(path: &Path) -> Result<Net, ModelFileError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ModelFileError {
        file: file.clone(),
        line_col: None,
        path: String::new(),
        node: None,
        message: format!("cannot read the model file: {e}"),
    })?;
    parse(&text, &file)
}

/// Parse and validate model-file text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Net, ModelFileError> {
    let err = |line_col, path: String, node: Option<String>, message: String| ModelFileError {
        file: file.to_string(),
        line_col,
        path,
        node,
        message,
    };
    // First the envelope, so a file of another version says so instead of failing on fields.
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        err(
            Some((e.line(), e.column())),
            String::new(),
            None,
            format!("not valid JSON: {}", strip_position(&e.to_string())),
        )
    })?;
    let Some(top) = value.as_object() else {
        return Err(err(
            None,
            String::new(),
            None,
            "expected a JSON object with `format`, `format_version`, `name` and `nodes`".into(),
        ));
    };
    match top.get("format") {
        Some(serde_json::Value::String(s)) if s == FORMAT_NAME => {}
        Some(other) => {
            return Err(err(None, "format".into(), None, format!("is {other}, expected \"{FORMAT_NAME}\"")));
        }
        None => {
            return Err(err(
                None,
                "format".into(),
                None,
                format!("missing; a model file starts with \"format\": \"{FORMAT_NAME}\""),
            ))
        }
    }
    match top.get("format_version") {
        Some(v) if v.as_u64() == Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(err(
                None,
                "format_version".into(),
                None,
                format!("version {v} is not supported; this synprof reads format_version {FORMAT_VERSION}"),
            ))
        }
        None => return Err(err(None, "format_version".into(), None, format!("missing; expected {FORMAT_VERSION}"))),
    }

    let mut de = serde_json::Deserializer::from_str(text);
    let model: ModelFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut path = e.path().to_string();
        let inner = e.into_inner();
        let message = strip_position(&inner.to_string());
        let node = node_name_at(&value, &path);
        // serde cannot follow paths into an op (an internally tagged enum): find the field.
        if path.ends_with(".op") {
            if let Some(field) = pointer(&value, &path).and_then(|op| offending_field(op, &message)) {
                path = format!("{path}.{field}");
            }
        }
        err(Some((inner.line(), inner.column())), path, node, explain_serde(&message))
    })?;

    let raw = model.nodes.into_iter().map(|n| RawNode { name: n.name, op: n.op, inputs: n.inputs }).collect();
    Net::from_raw(&model.name, raw, model.outputs, model.generator)
        .map_err(|g: GraphError| err(None, g.path, g.node, g.message))
}

/// The name of the node a `nodes[i]...` path points into, to help find it.
fn node_name_at(value: &serde_json::Value, path: &str) -> Option<String> {
    let rest = path.strip_prefix("nodes[")?;
    let index: usize = rest[..rest.find(']')?].parse().ok()?;
    value.get("nodes")?.get(index)?.get("name")?.as_str().map(str::to_string)
}

/// The value at a `nodes[3].op`-style path.
fn pointer<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let pointer: String = path
        .split('.')
        .flat_map(|part| {
            let (key, index) = match part.find('[') {
                Some(i) => (&part[..i], Some(part[i + 1..part.len() - 1].to_string())),
                None => (part, None),
            };
            std::iter::once(format!("/{key}")).chain(index.map(|i| format!("/{i}")))
        })
        .collect();
    value.pointer(&pointer)
}

/// Which attribute of an op object a serde message is about: named in the message
/// (unknown or missing field), or the one attribute whose value the message quotes.
fn offending_field(op: &serde_json::Value, message: &str) -> Option<String> {
    let quoted = |prefix: &str| {
        message.find(prefix).map(|i| &message[i + prefix.len()..]).and_then(|rest| rest.split('`').next())
    };
    if let Some(name) = quoted("unknown field `").or_else(|| quoted("missing field `")) {
        return Some(name.to_string());
    }
    let object = op.as_object()?;
    let matches = |want: &dyn Fn(&serde_json::Value) -> bool| {
        let keys: Vec<&String> = object.iter().filter(|(k, v)| *k != "type" && want(v)).map(|(k, _)| k).collect();
        if keys.len() == 1 {
            Some(keys[0].clone())
        } else {
            None
        }
    };
    if let Some(len) =
        message.strip_prefix("invalid length ").and_then(|r| r.split(',').next()).and_then(|n| n.parse::<usize>().ok())
    {
        return matches(&|v| v.as_array().is_some_and(|a| a.len() == len));
    }
    let token = message.split('`').nth(1).or_else(|| message.split('"').nth(1))?;
    let found = matches(&|v| value_text(v) == token);
    found.or_else(|| {
        // the value may sit inside an array or object attribute
        matches(&|v| match v {
            serde_json::Value::Array(items) => items.iter().any(|i| value_text(i) == token),
            serde_json::Value::Object(map) => map.values().any(|i| value_text(i) == token),
            _ => false,
        })
    })
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn explain_serde(message: &str) -> String {
    if message.starts_with("invalid value: integer `-") {
        return format!("{message} (sizes are non-negative integers)");
    }
    message.to_string()
}

/// Write a net as model-file text: a header, then one node per line.
pub fn to_string(net: &Net) -> String {
    let mut out = String::new();
    out.push_str("{\n");
    out.push_str(&format!("  \"format\": \"{FORMAT_NAME}\",\n"));
    out.push_str(&format!("  \"format_version\": {FORMAT_VERSION},\n"));
    out.push_str(&format!("  \"name\": {},\n", json(&net.name)));
    if let Some(generator) = &net.generator {
        out.push_str(&format!("  \"generator\": {},\n", json(generator)));
    }
    let outputs: Vec<&str> = net.outputs.iter().map(|&o| net.nodes[o].name.as_str()).collect();
    out.push_str(&format!("  \"outputs\": {},\n", json(&outputs)));
    out.push_str("  \"nodes\": [\n");
    let raw = net.to_raw();
    for (i, n) in raw.into_iter().enumerate() {
        let node = NodeFile { name: n.name, inputs: n.inputs, op: n.op };
        let sep = if i + 1 == net.nodes.len() { "" } else { "," };
        out.push_str(&format!("    {}{sep}\n", json(&node)));
    }
    out.push_str("  ]\n}\n");
    out
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    // Serialising our own plain data types cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

pub fn save(net: &Net, path: &Path) -> std::io::Result<()> {
    std::fs::write(path, to_string(net))
}
