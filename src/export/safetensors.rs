//! Writing host tensors as a safetensors file (8-byte little-endian header length, a JSON
//! header of dtype/shape/offsets, then the raw little-endian data), readable by PyTorch's
//! `safetensors`, numpy, and candle.

use crate::weights::{HostTensor, NodeParams, Weights};
use std::io::Write;
use std::path::Path;

/// Every parameter under PyTorch-like names: `<node>.weight`, `.bias`, and for batch-norm
/// `.weight` (gamma), `.bias` (beta), `.running_mean`, `.running_var`. Linear weights are
/// `[out, in]`, conv weights `[out, in / groups, kh, kw]`, as in PyTorch.
pub fn named_tensors(weights: &Weights) -> Vec<(String, &HostTensor)> {
    let mut out = Vec::new();
    for (node, p) in &weights.by_node {
        match p {
            NodeParams::Conv { weight, bias } | NodeParams::Linear { weight, bias } => {
                out.push((format!("{node}.weight"), weight));
                if let Some(b) = bias {
                    out.push((format!("{node}.bias"), b));
                }
            }
            NodeParams::BatchNorm { gamma, beta, mean, var, .. } => {
                out.push((format!("{node}.weight"), gamma));
                out.push((format!("{node}.bias"), beta));
                out.push((format!("{node}.running_mean"), mean));
                out.push((format!("{node}.running_var"), var));
            }
        }
    }
    out
}

/// Serialise f32 tensors in safetensors format.
pub fn to_bytes(tensors: &[(String, &HostTensor)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, t) in tensors {
        let end = offset + 4 * t.data.len();
        header
            .insert(name.clone(), serde_json::json!({"dtype": "F32", "shape": t.shape, "data_offsets": [offset, end]}));
        offset = end;
    }
    let mut header = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap_or_default();
    // The data must start 8-byte aligned.
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for (_, t) in tensors {
        for v in &t.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

pub fn save(path: &Path, tensors: &[(String, &HostTensor)]) -> std::io::Result<()> {
    std::fs::File::create(path)?.write_all(&to_bytes(tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_safetensors() {
        let a = HostTensor { shape: vec![2], data: vec![1.0, -2.0] };
        let bytes = to_bytes(&[("a".into(), &a)]);
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        assert_eq!(header["a"]["data_offsets"], serde_json::json!([0, 8]));
        assert_eq!(&bytes[8 + n..], &[0, 0, 128, 63, 0, 0, 0, 192]);
    }
}
