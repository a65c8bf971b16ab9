//! Waiting on and waking words of an [`Area`](super::Area): Linux futexes (shared, so they
//! work across processes mapping the same memory), or under loom a yield-and-recheck (the
//! switch is in the `sync` facade).

use std::time::Duration;

use crate::sync::atomic::AtomicU32;

/// Sleeps while `word == expected`, for at most `timeout`. May return early (a wake, a
/// signal, a spurious wakeup): callers re-check their condition.
pub fn wait_on(word: &AtomicU32, expected: u32, timeout: Duration) {
    crate::sync::wait_shared(word, expected, timeout);
}

/// Wakes one thread sleeping on `word`.
pub fn wake_one(word: &AtomicU32) {
    crate::sync::wake_shared(word, 1);
}

/// Wakes every thread sleeping on `word`.
pub fn wake_all(word: &AtomicU32) {
    crate::sync::wake_shared(word, i32::MAX as u32);
}
