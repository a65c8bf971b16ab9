//! Waiting on and waking words of an [`Area`](super::Area): Linux futexes (shared, so they
//! work across processes mapping the same memory), or under loom a yield-and-recheck.

use std::time::Duration;

use crate::sync::atomic::AtomicU32;

/// Sleeps while `word == expected`, for at most `timeout`. May return early (a wake, a
/// signal, a spurious wakeup): callers re-check their condition.
#[cfg(not(loom))]
pub fn wait_on(word: &AtomicU32, expected: u32, timeout: Duration) {
    use rustix::thread::futex;
    let timeout = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // Shared (not PRIVATE) futex: the word may live in memory another process maps.
    // EAGAIN (the word already changed), EINTR and ETIMEDOUT all mean "re-check".
    let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&timeout));
}

/// Wakes one thread sleeping on `word`.
#[cfg(not(loom))]
pub fn wake_one(word: &AtomicU32) {
    let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), 1);
}

/// Wakes every thread sleeping on `word`.
#[cfg(not(loom))]
pub fn wake_all(word: &AtomicU32) {
    let _ =
        rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), i32::MAX as u32);
}

/// Under loom there are no futexes: a wait is a yield, after which the caller re-checks.
#[cfg(loom)]
pub fn wait_on(_word: &AtomicU32, _expected: u32, _timeout: Duration) {
    loom::thread::yield_now();
}

/// Under loom a wake is implicit (waiters poll).
#[cfg(loom)]
pub fn wake_one(_word: &AtomicU32) {}

/// Under loom a wake is implicit (waiters poll).
#[cfg(loom)]
pub fn wake_all(_word: &AtomicU32) {}
