//! The process's allocator: the system's, except that every block of at least
//! [`LARGE_BYTES`] starts on a cache line.
//!
//! glibc serves large blocks from `mmap` with a 16-byte header, so a big `Vec<f32>`
//! (a candle tensor's storage, a conv's output) starts 16 bytes past a 64-byte line. The
//! GEMM micro-kernel then reads every 32-float B row across three lines instead of two,
//! and every one of its 16-float loads and stores splits across a line boundary. The
//! same 12 x 32 loop over a 256 -> 60 1x1 conv at 56x56 on one core
//! (`benches/host/tile_prefetch.c`, `SHIFT=4`): 166 GFLOP/s with B and C on lines, 150-155
//! with both 16 bytes off (benches/peers/RESULTS.md section 12).
//!
//! The rule depends only on a block's layout, so `dealloc` and `realloc` hand the system
//! the layout the block was made with.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks at least this large are aligned to [`LINE_BYTES`].
pub const LARGE_BYTES: usize = 64 * 1024;
/// A cache line.
pub const LINE_BYTES: usize = 64;

/// The system allocator with large blocks on cache lines.
pub struct LineAligned;

/// The layout the system allocator sees for `layout`.
fn system_layout(layout: Layout) -> Layout {
    if layout.size() >= LARGE_BYTES && layout.align() < LINE_BYTES {
        // A power of two at most the size: a valid layout whenever `layout` is.
        Layout::from_size_align(layout.size(), LINE_BYTES).unwrap_or(layout)
    } else {
        layout
    }
}

// SAFETY: every call forwards to `System` with `system_layout` of the caller's layout,
// which has the same size and an alignment at least the caller's; a block is always freed
// or resized with the layout it was allocated with (the rule is a function of the layout).
unsafe impl GlobalAlloc for LineAligned {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(system_layout(layout))
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        System.alloc_zeroed(system_layout(layout))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, system_layout(layout))
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = system_layout(layout);
        let Ok(new) = Layout::from_size_align(new_size, layout.align()).map(system_layout) else {
            return std::ptr::null_mut();
        };
        if old.align() == new.align() {
            return System.realloc(ptr, old, new_size);
        }
        // Crossing `LARGE_BYTES`: a block of the other alignment, the bytes copied over.
        let fresh = System.alloc(new);
        if !fresh.is_null() {
            std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
            System.dealloc(ptr, old);
        }
        fresh
    }
}

#[global_allocator]
static GLOBAL: LineAligned = LineAligned;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_start_on_a_line_small_ones_as_asked() {
        for floats in [LARGE_BYTES / 4, 800_000, 3 << 20] {
            let v = vec![1.0f32; floats];
            assert_eq!(v.as_ptr() as usize % LINE_BYTES, 0, "{floats} floats at {:p}", v.as_ptr());
            let z = vec![0.0f32; floats];
            assert_eq!(z.as_ptr() as usize % LINE_BYTES, 0);
            assert!(z.iter().all(|&x| x == 0.0));
        }
        assert_eq!(system_layout(Layout::new::<[f32; 8]>()).align(), 4);
        assert_eq!(system_layout(Layout::from_size_align(LARGE_BYTES, 128).unwrap()).align(), 128);
    }

    #[test]
    fn growing_across_the_threshold_keeps_the_contents() {
        let mut v: Vec<u32> = (0..1000).collect();
        for n in [1000u32, 100_000, 5_000_000] {
            v.extend(v.len() as u32..n);
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
            if v.capacity() * 4 >= LARGE_BYTES {
                assert_eq!(v.as_ptr() as usize % LINE_BYTES, 0);
            }
        }
        v.truncate(10);
        v.shrink_to_fit();
        assert_eq!(v, (0..10).collect::<Vec<u32>>());
    }
}
