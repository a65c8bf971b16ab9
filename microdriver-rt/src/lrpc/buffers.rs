//! Per-thread frame buffers, so a call allocates nothing once its thread has made one of
//! its size before.
//!
//! A buffer is taken for the duration of a call and given back after; a thread nested in
//! its own call (a downcall served while it waits for an upcall, which makes an upcall)
//! simply takes another. Buffers that grew past [`KEEP_BYTES`] are dropped rather than
//! kept, so a thread that once carried a huge frame does not pin that memory forever.

use std::cell::RefCell;

/// Buffers kept per thread.
const KEEP: usize = 4;
/// Largest buffer kept.
const KEEP_BYTES: usize = 1 << 20;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A cleared buffer: one this thread used before, or a new one.
pub(crate) fn take() -> Vec<u8> {
    POOL.try_with(|p| p.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Hands `buf` back for this thread's next call.
pub(crate) fn give(mut buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > KEEP_BYTES {
        return;
    }
    buf.clear();
    let _ = POOL.try_with(|p| {
        let mut pool = p.borrow_mut();
        if pool.len() < KEEP {
            // Reserved on first use (while the pool holds at most KEEP - 1), so pushing
            // never reallocates the pool itself on the call path afterwards.
            let room = KEEP - pool.len();
            pool.reserve_exact(room);
            pool.push(buf);
        }
    });
}

/// A buffer that goes back to the pool when dropped.
pub(crate) struct Buffer(Vec<u8>);

impl Buffer {
    pub(crate) fn take() -> Self {
        Buffer(take())
    }
}

impl std::ops::Deref for Buffer {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_reused_by_its_thread() {
        let mut first = Buffer::take();
        first.extend_from_slice(&[1; 100]);
        let ptr = first.as_ptr();
        drop(first);
        let again = Buffer::take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr, "the same allocation came back");
        let nested = Buffer::take();
        assert_ne!(nested.as_ptr(), ptr, "a nested call gets its own");
    }
}
