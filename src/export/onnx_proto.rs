//! The part of `onnx.proto` that CNN models use, written out by hand for prost (so the
//! build needs no protoc), for writing models and for reading them back.
//!
//! Field numbers, types and packing follow the official `onnx/onnx.proto` (proto2 syntax,
//! IR version 8 and 9); each field's comment gives its number there. Fields and messages
//! left out (training info, functions, sparse tensors, quantization annotations, segments,
//! device configurations) are skipped as unknown fields by [`prost::Message::decode`], so
//! any ONNX file decodes; a reader that needs them sees them missing, not garbled.
//!
//! proto2 details kept where they change the bytes or the meaning:
//! - `repeated` numeric fields are unpacked unless `onnx.proto` says `[packed = true]`
//!   (only `TensorProto`'s `*_data` fields do); prost reads both forms either way.
//! - `AttributeProto`'s value fields are `Option`s: the checker counts which fields are
//!   *present*, so an `INT` attribute whose value is 0 must still be written.

/// `message ModelProto`: the file's top-level message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// `ir_version = 1`
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// `opset_import = 8`
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// `producer_name = 2`
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// `producer_version = 3`
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// `domain = 4`
    #[prost(string, tag = "4")]
    pub domain: String,
    /// `model_version = 5`
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    /// `doc_string = 6`
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// `graph = 7`
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// `metadata_props = 14`
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `message StringStringEntryProto`: a key-value pair (ONNX's stand-in for `map`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// `key = 1`
    #[prost(string, tag = "1")]
    pub key: String,
    /// `value = 2`
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `message OperatorSetIdProto`: an imported operator set; domain "" is the default
/// `ai.onnx` domain.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// `domain = 1`
    #[prost(string, tag = "1")]
    pub domain: String,
    /// `version = 2`
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// `message GraphProto`: nodes in topological order, with the graph's inputs, outputs,
/// initializers (constant tensors) and optional shape information.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// `node = 1`
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// `name = 2`
    #[prost(string, tag = "2")]
    pub name: String,
    /// `initializer = 5`
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// `doc_string = 10`
    #[prost(string, tag = "10")]
    pub doc_string: String,
    /// `input = 11`
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// `output = 12`
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    /// `value_info = 13`: types and shapes of intermediate values.
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
    /// `metadata_props = 16` (IR version 10)
    #[prost(message, repeated, tag = "16")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `message NodeProto`: one operator application.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// `input = 1`; an empty name skips an optional input.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// `output = 2`
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// `name = 3`
    #[prost(string, tag = "3")]
    pub name: String,
    /// `op_type = 4`
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// `domain = 7`; "" is the default `ai.onnx` domain.
    #[prost(string, tag = "7")]
    pub domain: String,
    /// `overload = 8` (IR version 10)
    #[prost(string, tag = "8")]
    pub overload: String,
    /// `attribute = 5`
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// `doc_string = 6`
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// `metadata_props = 9` (IR version 10)
    #[prost(message, repeated, tag = "9")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `message AttributeProto`: a named attribute holding exactly one value field, which
/// `type` names.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// `name = 1`
    #[prost(string, tag = "1")]
    pub name: String,
    /// `ref_attr_name = 21` (inside functions only)
    #[prost(string, tag = "21")]
    pub ref_attr_name: String,
    /// `doc_string = 13`
    #[prost(string, tag = "13")]
    pub doc_string: String,
    /// `type = 20`: which value field is in use.
    #[prost(enumeration = "attribute_proto::AttributeType", tag = "20")]
    pub r#type: i32,
    /// `f = 2`
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    /// `i = 3`
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    /// `s = 4`: UTF-8 bytes.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub s: Option<Vec<u8>>,
    /// `t = 5`
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// `g = 6`
    #[prost(message, optional, boxed, tag = "6")]
    pub g: Option<Box<GraphProto>>,
    /// `tp = 14`
    #[prost(message, optional, tag = "14")]
    pub tp: Option<TypeProto>,
    /// `floats = 7`
    #[prost(float, repeated, packed = "false", tag = "7")]
    pub floats: Vec<f32>,
    /// `ints = 8`
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    /// `strings = 9`
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    /// `tensors = 10`
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
    /// `graphs = 11`
    #[prost(message, repeated, tag = "11")]
    pub graphs: Vec<GraphProto>,
    /// `type_protos = 15`
    #[prost(message, repeated, tag = "15")]
    pub type_protos: Vec<TypeProto>,
}

pub mod attribute_proto {
    /// `enum AttributeProto.AttributeType`
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum AttributeType {
        Undefined = 0,
        Float = 1,
        Int = 2,
        String = 3,
        Tensor = 4,
        Graph = 5,
        SparseTensor = 11,
        TypeProto = 13,
        Floats = 6,
        Ints = 7,
        Strings = 8,
        Tensors = 9,
        Graphs = 10,
        SparseTensors = 12,
        TypeProtos = 14,
    }
}

/// `message ValueInfoProto`: a value's name, type and shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// `name = 1`
    #[prost(string, tag = "1")]
    pub name: String,
    /// `type = 2`
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    /// `doc_string = 3`
    #[prost(string, tag = "3")]
    pub doc_string: String,
    /// `metadata_props = 4` (IR version 10)
    #[prost(message, repeated, tag = "4")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `message TensorProto`: a constant tensor (initializers, tensor attributes). Exactly one
/// of the `*_data` fields or `raw_data` holds the elements, row-major.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `dims = 1`; none for a scalar.
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    /// `data_type = 2`: a [`tensor_proto::DataType`].
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// `float_data = 4 [packed = true]`: FLOAT and COMPLEX64.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// `int32_data = 5 [packed = true]`: INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16
    /// (and the other 16- and 8-bit floats) as bit patterns.
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// `string_data = 6`
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_data: Vec<Vec<u8>>,
    /// `int64_data = 7 [packed = true]`
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// `name = 8`
    #[prost(string, tag = "8")]
    pub name: String,
    /// `doc_string = 12`
    #[prost(string, tag = "12")]
    pub doc_string: String,
    /// `raw_data = 9`: fixed-width little-endian elements.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// `external_data = 13`: `location`, `offset`, `length` of data kept in another file.
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    /// `data_location = 14`: a [`tensor_proto::DataLocation`].
    #[prost(enumeration = "tensor_proto::DataLocation", tag = "14")]
    pub data_location: i32,
    /// `double_data = 10 [packed = true]`: DOUBLE and COMPLEX128.
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    /// `uint64_data = 11 [packed = true]`: UINT32 and UINT64.
    #[prost(uint64, repeated, tag = "11")]
    pub uint64_data: Vec<u64>,
    /// `metadata_props = 16` (IR version 10)
    #[prost(message, repeated, tag = "16")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

pub mod tensor_proto {
    /// `enum TensorProto.DataType`
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum DataType {
        Undefined = 0,
        Float = 1,
        Uint8 = 2,
        Int8 = 3,
        Uint16 = 4,
        Int16 = 5,
        Int32 = 6,
        Int64 = 7,
        String = 8,
        Bool = 9,
        Float16 = 10,
        Double = 11,
        Uint32 = 12,
        Uint64 = 13,
        Complex64 = 14,
        Complex128 = 15,
        Bfloat16 = 16,
        Float8e4m3fn = 17,
        Float8e4m3fnuz = 18,
        Float8e5m2 = 19,
        Float8e5m2fnuz = 20,
        Uint4 = 21,
        Int4 = 22,
        Float4e2m1 = 23,
    }

    /// `enum TensorProto.DataLocation`
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum DataLocation {
        Default = 0,
        External = 1,
    }
}

/// `message TypeProto`: the type of a value; CNNs use only `tensor_type`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// `denotation = 6`
    #[prost(string, tag = "6")]
    pub denotation: String,
    /// `oneof value`
    #[prost(oneof = "type_proto::Value", tags = "1, 4, 5, 9, 8, 7")]
    pub value: Option<type_proto::Value>,
}

pub mod type_proto {
    use super::{TensorShapeProto, TypeProto};

    /// `message TypeProto.Tensor`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tensor {
        /// `elem_type = 1`: a `TensorProto.DataType`.
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        /// `shape = 2`; absent means the rank is unknown, present and empty a scalar.
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    /// `message TypeProto.SparseTensor`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SparseTensor {
        /// `elem_type = 1`
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        /// `shape = 2`
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    /// `message TypeProto.Sequence`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sequence {
        /// `elem_type = 1`
        #[prost(message, optional, boxed, tag = "1")]
        pub elem_type: Option<Box<TypeProto>>,
    }

    /// `message TypeProto.Map`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Map {
        /// `key_type = 1`: a `TensorProto.DataType`.
        #[prost(int32, tag = "1")]
        pub key_type: i32,
        /// `value_type = 2`
        #[prost(message, optional, boxed, tag = "2")]
        pub value_type: Option<Box<TypeProto>>,
    }

    /// `message TypeProto.Optional`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Optional {
        /// `elem_type = 1`
        #[prost(message, optional, boxed, tag = "1")]
        pub elem_type: Option<Box<TypeProto>>,
    }

    /// `message TypeProto.Opaque`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Opaque {
        /// `domain = 1`
        #[prost(string, tag = "1")]
        pub domain: String,
        /// `name = 2`
        #[prost(string, tag = "2")]
        pub name: String,
    }

    /// `oneof TypeProto.value`
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// `tensor_type = 1`
        #[prost(message, tag = "1")]
        TensorType(Tensor),
        /// `sequence_type = 4`
        #[prost(message, tag = "4")]
        SequenceType(Sequence),
        /// `map_type = 5`
        #[prost(message, tag = "5")]
        MapType(Map),
        /// `optional_type = 9`
        #[prost(message, tag = "9")]
        OptionalType(Optional),
        /// `sparse_tensor_type = 8`
        #[prost(message, tag = "8")]
        SparseTensorType(SparseTensor),
        /// `opaque_type = 7`
        #[prost(message, tag = "7")]
        OpaqueType(Opaque),
    }
}

/// `message TensorShapeProto`: dimensions, each a number or a symbol (or unknown).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// `dim = 1`
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<tensor_shape_proto::Dimension>,
}

pub mod tensor_shape_proto {
    /// `message TensorShapeProto.Dimension`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        /// `denotation = 3`
        #[prost(string, tag = "3")]
        pub denotation: String,
        /// `oneof value`; `None` is an unknown dimension.
        #[prost(oneof = "dimension::Value", tags = "1, 2")]
        pub value: Option<dimension::Value>,
    }

    pub mod dimension {
        /// `oneof TensorShapeProto.Dimension.value`
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// `dim_value = 1`
            #[prost(int64, tag = "1")]
            DimValue(i64),
            /// `dim_param = 2`: a symbol such as `N`.
            #[prost(string, tag = "2")]
            DimParam(String),
        }
    }
}

impl tensor_shape_proto::Dimension {
    pub fn value(v: i64) -> Self {
        Self { denotation: String::new(), value: Some(tensor_shape_proto::dimension::Value::DimValue(v)) }
    }

    pub fn param(name: &str) -> Self {
        Self {
            denotation: String::new(),
            value: Some(tensor_shape_proto::dimension::Value::DimParam(name.to_string())),
        }
    }
}

impl ValueInfoProto {
    /// A tensor value of element type `elem_type` (a [`tensor_proto::DataType`]) and shape.
    pub fn tensor(name: &str, elem_type: tensor_proto::DataType, dims: Vec<tensor_shape_proto::Dimension>) -> Self {
        ValueInfoProto {
            name: name.to_string(),
            r#type: Some(TypeProto {
                denotation: String::new(),
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: elem_type as i32,
                    shape: Some(TensorShapeProto { dim: dims }),
                })),
            }),
            ..Default::default()
        }
    }
}

impl AttributeProto {
    pub fn int(name: &str, v: i64) -> Self {
        Self {
            name: name.to_string(),
            r#type: attribute_proto::AttributeType::Int as i32,
            i: Some(v),
            ..Default::default()
        }
    }

    pub fn float(name: &str, v: f32) -> Self {
        Self {
            name: name.to_string(),
            r#type: attribute_proto::AttributeType::Float as i32,
            f: Some(v),
            ..Default::default()
        }
    }

    pub fn ints(name: &str, v: Vec<i64>) -> Self {
        Self {
            name: name.to_string(),
            r#type: attribute_proto::AttributeType::Ints as i32,
            ints: v,
            ..Default::default()
        }
    }

    pub fn string(name: &str, v: &str) -> Self {
        Self {
            name: name.to_string(),
            r#type: attribute_proto::AttributeType::String as i32,
            s: Some(v.as_bytes().to_vec()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn known_bytes() {
        // ir_version = 8 is field 1 varint: 0x08 0x08.
        let m = ModelProto { ir_version: 8, ..Default::default() };
        assert_eq!(m.encode_to_vec(), vec![0x08, 0x08]);
        // An INT attribute of value 0 keeps its `i` (field 3): the checker needs it present.
        let a = AttributeProto::int("group", 0);
        let bytes = a.encode_to_vec();
        assert_eq!(bytes, vec![0x0a, 5, b'g', b'r', b'o', b'u', b'p', 0x18, 0x00, 0xa0, 0x01, 0x02]);
        // ints are unpacked (proto2): one tag per element.
        let a = AttributeProto { ints: vec![1, 2], ..Default::default() };
        assert_eq!(a.encode_to_vec(), vec![0x40, 1, 0x40, 2]);
        // float_data is packed: one length-delimited field.
        let t = TensorProto { float_data: vec![1.0], ..Default::default() };
        assert_eq!(t.encode_to_vec(), vec![0x22, 4, 0, 0, 0x80, 0x3f]);
    }

    #[test]
    fn round_trips_and_reads_packed_and_unpacked() {
        let v = ValueInfoProto::tensor(
            "input",
            tensor_proto::DataType::Float,
            vec![tensor_shape_proto::Dimension::param("N"), tensor_shape_proto::Dimension::value(3)],
        );
        let back = ValueInfoProto::decode(v.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, v);
        // ints written packed (as proto3 writers do) still read.
        let packed = [0x42, 2, 1, 2];
        assert_eq!(AttributeProto::decode(&packed[..]).unwrap().ints, vec![1, 2]);
    }
}
