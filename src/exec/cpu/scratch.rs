//! Cache-line-aligned buffers: the packed weights, and one reusable scratch area per thread
//! (im2col panels, padded depthwise planes) so that a conv call allocates nothing.

use std::cell::RefCell;
use std::sync::Mutex;

/// One 64-byte cache line of f32s; a `Vec` of these is 64-byte aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A zero-initialised f32 buffer whose start is 64-byte aligned (vector loads never split
/// a cache line at a panel's start).
#[derive(Clone, Default)]
pub(crate) struct AlignedBuf {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn zeroed(len: usize) -> AlignedBuf {
        AlignedBuf { lines: vec![Line([0.0; 16]); len.div_ceil(16)], len }
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` over `[f32; 16]`, so the lines are `16 * lines.len()`
        // initialised f32s in a row, and `len` never exceeds that.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.len) }
    }

    /// Grow to at least `len` (new space zeroed); never shrinks, so steady state allocates nothing.
    pub(crate) fn ensure(&mut self, len: usize) {
        if len > self.len {
            let lines = len.div_ceil(16);
            if lines > self.lines.len() {
                self.lines.resize(lines, Line([0.0; 16]));
            }
            self.len = self.lines.len() * 16;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

thread_local! {
    static SCRATCH: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
    static SUMS: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
}

/// Run `f` on this thread's scratch area, at least `len` floats long (contents unspecified).
/// Not re-entrant: `f` must not call `with_scratch` again.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_area(&SCRATCH, len, f)
}

/// As [`with_scratch`], on a second area of this thread's: the channel tile's running sums
/// (`CTile::sums`), beside a grid copy in the first.
pub(crate) fn with_sums<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_area(&SUMS, len, f)
}

fn with_area<R>(
    area: &'static std::thread::LocalKey<RefCell<AlignedBuf>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    area.with(|cell| {
        let mut buf = cell.borrow_mut();
        buf.ensure(len);
        f(&mut buf.as_mut_slice()[..len])
    })
}

/// Run `f` on `shared`'s buffer, at least `len` floats long (contents unspecified): a
/// buffer kept between calls and shared by every call of one kind (a model's convs run one
/// after another, so it stays in cache). A call that finds it taken (convs run from two
/// threads at once) gets a buffer of its own.
pub(crate) fn with_shared<R>(shared: &Mutex<Vec<f32>>, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut own = Vec::new();
    let mut guard = shared.try_lock().ok();
    let buf = guard.as_deref_mut().unwrap_or(&mut own);
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    f(&mut buf[..len])
}

/// An output buffer for a packed op that writes every element before anything reads it
/// (the kernels' tests poison outputs with NaN and check each is overwritten), left
/// unzeroed: zeroing first doubled the write traffic of memory-bound layers (MobileNetV2's
/// expansions and depthwise convs), as candle's own CPU ops avoid with `alloc_uninit`.
pub(crate) fn output_buffer(len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    // SAFETY: f32 has no invalid bit patterns and the buffer is only handed to kernels that
    // overwrite all `len` elements (see above) before it is read.
    #[allow(clippy::uninit_vec)]
    unsafe {
        out.set_len(len)
    };
    out
}
