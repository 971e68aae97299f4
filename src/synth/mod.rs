//! Generators of synthetic nets. A generator spec names a family and its parameters,
//! `family:key=value,key=value`, and stands wherever a model name does (the command line,
//! a profile's `model` list):
//!
//! ```text
//! paradnn:block=bottleneck,filters=32,blocks=4,input=200
//! ```
//!
//! Families: [`paradnn`] (ParaDnn's parametric CNN). A spec always builds the same net.

pub mod paradnn;
mod spec;

use crate::graph::Net;
pub use spec::{Spec, SpecError};

/// The generator families, for messages and `is_spec`.
pub const FAMILIES: &[&str] = &["paradnn"];

/// Does `text` look like a generator spec (`family:...`)?
pub fn is_spec(text: &str) -> bool {
    text.split_once(':').is_some_and(|(family, _)| FAMILIES.contains(&family))
}

/// Build the net a spec describes.
pub fn build(text: &str) -> Result<Net, SpecError> {
    let spec = Spec::parse(text)?;
    let mut net = match spec.family.as_str() {
        "paradnn" => paradnn::build(&spec)?,
        other => {
            return Err(spec.error(format!("unknown generator family `{other}`; families: {}", FAMILIES.join(", "))))
        }
    };
    net.generator = Some(serde_json::json!({
        "generator": spec.family,
        "spec": spec.text,
        "synprof_version": env!("CARGO_PKG_VERSION"),
    }));
    Ok(net)
}
