//! Constant tensors read from ONNX: initializers, `Constant` nodes and tensor attributes,
//! decoded from whichever of protobuf's fields holds them (typed fields, little-endian
//! `raw_data`, or external data beside the model file).

use crate::export::onnx_proto::{tensor_proto::DataType, AttributeProto, TensorProto};
use std::path::Path;

/// A constant's elements: floats (any float type, widened or narrowed to f32), integers
/// (any integer type, widened to i64), or unknown (a parameter given as a graph input).
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
    Unknown,
}

/// A constant tensor: row-major data with its full shape (batch included where it has one).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub dims: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub fn elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// The values as f32 (integers converted), or `None` where unknown.
    pub fn f32s(&self) -> Option<Vec<f32>> {
        match &self.data {
            Data::F32(v) => Some(v.clone()),
            Data::I64(v) => Some(v.iter().map(|&x| x as f32).collect()),
            Data::Unknown => None,
        }
    }

    /// The values as i64 (floats must be whole), or `None` where unknown or fractional.
    pub fn i64s(&self) -> Option<Vec<i64>> {
        match &self.data {
            Data::I64(v) => Some(v.clone()),
            Data::F32(v) => v.iter().map(|&x| (x.fract() == 0.0).then_some(x as i64)).collect(),
            Data::Unknown => None,
        }
    }

    /// The one value of a scalar or one-element tensor.
    pub fn scalar_f32(&self) -> Option<f32> {
        (self.elements() == 1).then(|| self.f32s().map(|v| v[0])).flatten()
    }
}

/// Decode a `TensorProto`; `model_dir` is where external data files are looked up.
pub fn decode(t: &TensorProto, model_dir: Option<&Path>) -> Result<Tensor, String> {
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<Vec<_>, _>>()?;
    let n: usize = dims.iter().product();
    let dtype = DataType::try_from(t.data_type).map_err(|_| format!("unknown data type {}", t.data_type))?;
    let external;
    let raw: &[u8] = if t.data_location == 1 {
        external = read_external(t, model_dir)?;
        &external
    } else {
        &t.raw_data
    };
    let from_raw = !raw.is_empty();
    let check = |len: usize| {
        if len == n {
            Ok(())
        } else {
            Err(format!("{len} elements stored for shape {dims:?} ({n} elements)"))
        }
    };
    let chunks = |width: usize| -> Result<std::slice::ChunksExact<'_, u8>, String> {
        if raw.len() != n * width {
            return Err(format!("raw data is {} bytes; shape {dims:?} of {dtype:?} needs {}", raw.len(), n * width));
        }
        Ok(raw.chunks_exact(width))
    };
    let data = match dtype {
        DataType::Float => {
            let v: Vec<f32> = if from_raw {
                chunks(4)?.map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
            } else {
                t.float_data.clone()
            };
            check(v.len())?;
            Data::F32(v)
        }
        DataType::Double => {
            let v: Vec<f32> = if from_raw {
                chunks(8)?.map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
            } else {
                t.double_data.iter().map(|&x| x as f32).collect()
            };
            check(v.len())?;
            Data::F32(v)
        }
        DataType::Float16 | DataType::Bfloat16 => {
            let bits: Vec<u16> = if from_raw {
                chunks(2)?.map(|c| u16::from_le_bytes(c.try_into().unwrap())).collect()
            } else {
                t.int32_data.iter().map(|&x| x as u16).collect()
            };
            check(bits.len())?;
            let widen: fn(u16) -> f32 = if dtype == DataType::Float16 {
                |b| half::f16::from_bits(b).to_f32()
            } else {
                |b| half::bf16::from_bits(b).to_f32()
            };
            Data::F32(bits.into_iter().map(widen).collect())
        }
        DataType::Int64 => {
            let v: Vec<i64> = if from_raw {
                chunks(8)?.map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
            } else {
                t.int64_data.clone()
            };
            check(v.len())?;
            Data::I64(v)
        }
        DataType::Int32 => {
            let v: Vec<i64> = if from_raw {
                chunks(4)?.map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect()
            } else {
                t.int32_data.iter().map(|&x| x as i64).collect()
            };
            check(v.len())?;
            Data::I64(v)
        }
        DataType::Int8 | DataType::Uint8 | DataType::Bool => {
            let v: Vec<i64> = if from_raw {
                raw.iter().map(|&b| if dtype == DataType::Int8 { b as i8 as i64 } else { b as i64 }).collect()
            } else {
                t.int32_data.iter().map(|&x| x as i64).collect()
            };
            check(v.len())?;
            Data::I64(v)
        }
        other => return Err(format!("tensors of type {other:?} are not supported")),
    };
    Ok(Tensor { dims, data })
}

/// The bytes of a tensor kept in an external file (`location`, `offset`, `length`).
fn read_external(t: &TensorProto, model_dir: Option<&Path>) -> Result<Vec<u8>, String> {
    let key = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.as_str());
    let location = key("location").ok_or("external data without a `location`")?;
    let dir = model_dir.ok_or("external data, but the model was not read from a file")?;
    let path = dir.join(location);
    let bytes = std::fs::read(&path).map_err(|e| format!("external data {}: {e}", path.display()))?;
    let number = |k: &str| key(k).map(|v| v.parse::<usize>().map_err(|_| format!("external data {k} `{v}`")));
    let offset = number("offset").transpose()?.unwrap_or(0);
    let length = number("length").transpose()?.unwrap_or(bytes.len().saturating_sub(offset));
    bytes
        .get(offset..offset.saturating_add(length))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format!("external data {}: bytes {offset}..{} past its end", path.display(), offset + length))
}

/// Attribute lookup by name on a node's attribute list.
pub struct Attrs<'a>(pub &'a [AttributeProto]);

impl<'a> Attrs<'a> {
    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|a| a.i)
    }

    pub fn float(&self, name: &str) -> Option<f32> {
        self.get(name).and_then(|a| a.f)
    }

    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }

    pub fn floats(&self, name: &str) -> Option<Vec<f32>> {
        self.get(name).map(|a| a.floats.clone())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|a| a.s.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned())
    }

    pub fn tensor(&self, name: &str) -> Option<&'a TensorProto> {
        self.get(name).and_then(|a| a.t.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(dims: &[i64], dtype: DataType) -> TensorProto {
        TensorProto { dims: dims.to_vec(), data_type: dtype as i32, ..Default::default() }
    }

    #[test]
    fn decodes_typed_and_raw_fields() {
        let mut t = proto(&[2], DataType::Float);
        t.float_data = vec![1.5, -2.0];
        assert_eq!(decode(&t, None).unwrap().data, Data::F32(vec![1.5, -2.0]));
        let mut t = proto(&[2], DataType::Float);
        t.raw_data = [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat();
        assert_eq!(decode(&t, None).unwrap().data, Data::F32(vec![1.5, -2.0]));
        let mut t = proto(&[3], DataType::Int64);
        t.raw_data = [7i64, -1, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(decode(&t, None).unwrap().data, Data::I64(vec![7, -1, 0]));
        let mut t = proto(&[1], DataType::Float16);
        t.raw_data = half::f16::from_f32(0.25).to_bits().to_le_bytes().to_vec();
        assert_eq!(decode(&t, None).unwrap().data, Data::F32(vec![0.25]));
    }

    #[test]
    fn a_wrong_element_count_is_an_error_not_a_panic() {
        let mut t = proto(&[2, 2], DataType::Float);
        t.float_data = vec![1.0; 3];
        assert!(decode(&t, None).unwrap_err().contains("3 elements stored for shape [2, 2]"));
        let mut t = proto(&[2], DataType::Int64);
        t.raw_data = vec![0; 12];
        assert!(decode(&t, None).unwrap_err().contains("raw data is 12 bytes"));
    }

    #[test]
    fn reads_external_data_beside_the_model() {
        let dir = std::env::temp_dir().join(format!("synprof-ext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes: Vec<u8> = [9.0f32, 1.0, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.join("w.bin"), &bytes).unwrap();
        let mut t = proto(&[2], DataType::Float);
        t.data_location = 1;
        for (k, v) in [("location", "w.bin"), ("offset", "4"), ("length", "8")] {
            t.external_data.push(crate::export::onnx_proto::StringStringEntryProto { key: k.into(), value: v.into() });
        }
        assert_eq!(decode(&t, Some(&dir)).unwrap().data, Data::F32(vec![1.0, 2.0]));
        std::fs::remove_dir_all(&dir).ok();
    }
}
