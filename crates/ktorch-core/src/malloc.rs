//! glibc's allocator settings for training loops.
//!
//! glibc returns freed memory above its trim threshold to the system and serves
//! large blocks with fresh `mmap`s; a training loop frees and allocates the same
//! activation buffers every batch, so with glibc's defaults it can take a page
//! fault on every page of them, every batch (measured: 50k-185k minor faults per
//! epoch on a small CNN, up to a third of its time). Fixed thresholds keep those
//! buffers in the heap: faults drop to none after the first epoch, for a few tens
//! of MB more resident memory.

#![allow(unsafe_code)] // one call: glibc's mallopt

/// Large blocks below this size come from the heap, not from `mmap`.
pub const MMAP_THRESHOLD: i32 = 256 << 20;
/// Free memory at the top of the heap is returned to the system above this size.
pub const TRIM_THRESHOLD: i32 = 512 << 20;

/// Sets glibc's mmap and trim thresholds to [`MMAP_THRESHOLD`] and
/// [`TRIM_THRESHOLD`] for the whole process; true when glibc took them (false
/// on other C libraries, where nothing changes).
pub fn tune() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters; any values are valid input.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
