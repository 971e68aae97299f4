//! Writing nets for other frameworks: ONNX (protobuf types written out by hand, so the
//! build needs no protoc).

pub mod onnx;
pub mod onnx_proto;
pub mod safetensors;
