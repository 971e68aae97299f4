//! candle's CPU storage seen as the f32 slices the packed ops work on.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result};

/// The contiguous f32 data of `storage` under `layout`, or an error naming `what` (the op
/// and which of its tensors, e.g. "conv (training): the weight").
pub(crate) fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = storage else { bail!("{what} is {:?}, not f32", storage.dtype()) };
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("{what} is not contiguous") };
    Ok(&v[start..end])
}
