//! Generators of synthetic nets. A generator spec names a family and its parameters,
//! `family:key=value,key=value`, and stands wherever a model name does (the command line,
//! a profile's `model` list):
//!
//! ```text
//! paradnn:block=bottleneck,filters=32,blocks=4,input=200
//! synnet:seed=7,groups=6,input=224,mix=plain:0.6,bottleneck:0.4,se=0.25,max_gmacs=10
//! ```
//!
//! Families: [`paradnn`] (ParaDnn's parametric CNN), [`synnet`] (AI Matrix's synNet,
//! sampled from fitted distributions) and [`mimic`] (a net fitted to a zoo model's workload
//! characteristics: `mimic:like=resnet50,seed=1`). A spec always builds the same net, byte
//! for byte.

pub mod mimic;
pub mod paradnn;
mod spec;
pub mod synnet;

use crate::graph::Net;
pub use spec::{Spec, SpecError};

/// The generator families, for messages and `is_spec`.
pub const FAMILIES: &[&str] = &["paradnn", "synnet", "mimic"];

/// The keys a family's spec takes.
pub fn keys(family: &str) -> Option<&'static [&'static str]> {
    match family {
        "paradnn" => Some(paradnn::KEYS),
        "synnet" => Some(synnet::KEYS),
        "mimic" => Some(mimic::KEYS),
        _ => None,
    }
}

/// Does `text` look like a generator spec (`family:...`)?
pub fn is_spec(text: &str) -> bool {
    text.split_once(':').is_some_and(|(family, _)| FAMILIES.contains(&family))
}

/// Build the net a spec describes.
pub fn build(text: &str) -> Result<Net, SpecError> {
    build_spec(&Spec::parse(text)?)
}

/// Build the net of an already parsed spec (from a string, a spec file or flags).
pub fn build_spec(spec: &Spec) -> Result<Net, SpecError> {
    let net = match spec.family.as_str() {
        // synnet records its own resolved parameters, draw and scale.
        "synnet" => return synnet::build(spec),
        "paradnn" => paradnn::build(spec)?,
        "mimic" => mimic::build(spec)?,
        other => {
            return Err(spec.error(format!("unknown generator family `{other}`; families: {}", FAMILIES.join(", "))))
        }
    };
    Ok(recorded(spec, net))
}

/// `net` with the record of how `spec` made it: generator, spec, version, then the
/// generator's own record (mimic's seed and distances).
pub fn recorded(spec: &Spec, mut net: Net) -> Net {
    let mut record = serde_json::json!({
        "generator": &spec.family,
        "spec": &spec.text,
        "synprof_version": env!("CARGO_PKG_VERSION"),
    });
    if let (Some(serde_json::Value::Object(own)), Some(all)) = (net.generator.take(), record.as_object_mut()) {
        for (k, v) in own {
            all.entry(k).or_insert(v);
        }
    }
    net.generator = Some(record);
    net
}
