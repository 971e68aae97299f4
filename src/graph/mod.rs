//! The model IR: a DAG of ops in NCHW with a symbolic batch, shape inference,
//! a functional builder and the versioned JSON model format.
//!
//! Nothing here knows about execution, telemetry or reports.

pub mod builder;
pub mod format;
pub mod infer;
pub mod net;
pub mod op;
pub mod shape;

pub use builder::{conv, conv_hw, pool, ConvSpec, NetBuilder, PoolSpec, T};
pub use net::{GraphError, Net, Node, NodeId, RawNode};
pub use op::{Conv2d, Op, OpClass, Padding, Pool2d};
pub use shape::Shape;
