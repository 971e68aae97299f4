//! Writing nets for other frameworks: ONNX (protobuf types written out by hand, so the
//! build needs no protoc), PyTorch source from a template, safetensors weights.

pub mod onnx;
pub mod onnx_proto;
pub mod pytorch;
pub mod safetensors;
