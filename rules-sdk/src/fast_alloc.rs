//! The allocator rule modules run with (feature `fast-alloc`, on by default; WebAssembly
//! only). Every string the host hands a hook is one allocation in the module and one free
//! after the call; with the general-purpose allocator that bookkeeping was about half the
//! instructions of a typical hook. Small blocks (≤ 2 KiB) come from power-of-two size
//! classes with free lists: a handful of instructions per allocation. Larger ones go to the
//! system allocator, so the host's memory cap still stops a module that asks for too much.
//!
//! Rule modules are single-threaded (wasm32-wasip2 without threads), which is what makes
//! the unsynchronised state sound.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr::null_mut;

const CLASSES: usize = 9; // 8, 16, ..., 2048 bytes
const MAX_SMALL: usize = 8 << (CLASSES - 1);
const CHUNK: usize = 64 * 1024;

struct State {
    free: [*mut u8; CLASSES],
    bump: usize,
    end: usize,
}

/// The global allocator of a rule module.
pub struct FastAlloc(UnsafeCell<State>);

// SAFETY: rule modules run on one thread (wasm32 without the threads proposal); the state is
// never touched concurrently.
unsafe impl Sync for FastAlloc {}

impl FastAlloc {
    pub const fn new() -> FastAlloc {
        FastAlloc(UnsafeCell::new(State {
            free: [null_mut(); CLASSES],
            bump: 0,
            end: 0,
        }))
    }
}

impl Default for FastAlloc {
    fn default() -> Self {
        FastAlloc::new()
    }
}

/// The size class for a layout, if it is small.
fn class(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(8);
    if size > MAX_SMALL {
        return None;
    }
    let rounded = size.next_power_of_two();
    Some(rounded.trailing_zeros() as usize - 3)
}

unsafe impl GlobalAlloc for FastAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: single-threaded (see above); no reference to the state outlives this call.
        let st = unsafe { &mut *self.0.get() };
        let head = st.free[c];
        if !head.is_null() {
            // SAFETY: a free block's first word holds the next free block of its class.
            st.free[c] = unsafe { *(head as *mut *mut u8) };
            return head;
        }
        let size = 8usize << c;
        let mut start = (st.bump + size - 1) & !(size - 1);
        if st.bump == 0 || start + size > st.end {
            // SAFETY: a valid, non-zero layout.
            let chunk =
                unsafe { System.alloc(Layout::from_size_align_unchecked(CHUNK, MAX_SMALL)) };
            if chunk.is_null() {
                return null_mut();
            }
            st.bump = chunk as usize;
            st.end = st.bump + CHUNK;
            start = st.bump;
        }
        st.bump = start + size;
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            return unsafe { System.dealloc(ptr, layout) };
        };
        // SAFETY: single-threaded; `ptr` is a block of class `c` no longer in use.
        let st = unsafe { &mut *self.0.get() };
        unsafe { *(ptr as *mut *mut u8) = st.free[c] };
        st.free[c] = ptr;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `layout.align()` and `new_size` form a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new_layout)) {
            (Some(a), Some(b)) if a == b => ptr,
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_reused_and_distinct() {
        let a = FastAlloc::new();
        unsafe {
            let l8 = Layout::from_size_align(5, 1).unwrap();
            let l64 = Layout::from_size_align(40, 32).unwrap();
            let p = a.alloc(l8);
            let q = a.alloc(l64);
            let r = a.alloc(l8);
            assert!(!p.is_null() && !q.is_null() && !r.is_null());
            assert_eq!(q as usize % 32, 0);
            assert_ne!(p, r);
            p.write_bytes(1, 5);
            a.dealloc(p, l8);
            assert_eq!(a.alloc(l8), p);
            // Growing within a class keeps the block; across classes it moves and copies.
            let g = a.realloc(r, l8, 8);
            assert_eq!(g, r);
            g.write_bytes(7, 8);
            let big = a.realloc(g, Layout::from_size_align(8, 1).unwrap(), 100);
            assert_eq!(*big.add(7), 7);
            // Large blocks go to the system allocator.
            let l = Layout::from_size_align(10_000, 8).unwrap();
            let h = a.alloc(l);
            assert!(!h.is_null());
            a.dealloc(h, l);
        }
    }
}
