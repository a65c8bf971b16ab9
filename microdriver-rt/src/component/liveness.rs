//! The user half's **death word**: an early, kernel-delivered notice that the user half's
//! main thread is exiting, before the process is torn down.
//!
//! A pidfd becomes readable only once the whole process has exited, which on the machines
//! we measured is 250-700 µs after a SIGKILL (the kernel frees its address space first);
//! recovery waited that long before it could switch to the warm standby. Linux's robust
//! futex lists close the gap: a thread registers a list of lock words it owns, and when it
//! exits (for any reason, SIGKILL included) the kernel, early in `do_exit` and before the
//! address space goes, sets `FUTEX_OWNER_DIED` in every word it still owns and wakes a
//! waiter.
//!
//! The user half's main thread registers a one-entry list naming [`Word::Alive`]
//! (`set_robust_list(2)`; it replaces that thread's glibc registration, which only
//! process-shared robust pthread mutexes use, and the user half has none) and, once it is
//! the active user half, stores its thread id (= its pid) there. The kernel half's
//! [`watch`] thread sleeps on the word and reports the death the moment the flag appears.
//!
//! The word is in the shared area, so the user half can write anything there: a forged
//! `FUTEX_OWNER_DIED` only makes the kernel half restart it (what crashing would do
//! anyway), a word that never names the user half's pid only means no early notice (the
//! pidfd still reports the death). The kernel half SIGKILLs the user half on an early
//! notice before it hands the area to a successor: `kill(2)` marks every thread of the
//! group for death before it returns, so none runs user code again.
//!
//! [`Word::Alive`]: crate::transport::Word::Alive

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::Arc;
use std::time::Duration;

use crate::transport::{wait_on, wake_all};

/// The kernel sets this bit in a robust futex word whose owner died.
pub(crate) const OWNER_DIED: u32 = 0x4000_0000;
/// A waiter sets this bit before it sleeps, so that the dying owner's kernel wakes it.
const WAITERS: u32 = 0x8000_0000;
/// The owner's thread id.
pub(crate) const TID_MASK: u32 = 0x3fff_ffff;

/// The robust list head the kernel reads at the thread's exit (`struct robust_list_head`).
#[repr(C)]
struct RobustListHead {
    /// The first entry (ours), which points back here.
    list: *mut RobustList,
    /// From an entry's address to its lock word's, in bytes.
    futex_offset: libc::c_long,
    /// An entry being added or removed (none, ever).
    list_op_pending: *mut RobustList,
}

/// `struct robust_list`: one entry of the circular list.
#[repr(C)]
struct RobustList {
    next: *mut RobustList,
}

/// Registers `word` as a robust futex of the calling thread, so that the kernel marks it
/// `FUTEX_OWNER_DIED` (and wakes its waiter) when this thread exits while the word holds
/// its thread id. Call it on the thread whose exit is the process's (the main thread),
/// before entering the sandbox. The list lives as long as the process (it is leaked).
pub(crate) fn register(word: &AtomicU32) -> Result<(), String> {
    let entry: &'static mut RobustList = Box::leak(Box::new(RobustList {
        next: std::ptr::null_mut(),
    }));
    let entry_ptr: *mut RobustList = entry;
    let head: &'static mut RobustListHead = Box::leak(Box::new(RobustListHead {
        list: entry_ptr,
        futex_offset: (word as *const AtomicU32 as isize - entry_ptr as isize) as libc::c_long,
        list_op_pending: std::ptr::null_mut(),
    }));
    let head_ptr: *mut RobustListHead = head;
    // The list is circular: the last entry points back at the head.
    entry.next = head_ptr.cast::<RobustList>();
    // SAFETY: set_robust_list(2) only records the address for this thread; the head and
    // its entry are leaked (they outlive the thread), laid out as the kernel's
    // `struct robust_list_head` / `struct robust_list`, and the entry's lock word is
    // `word`, which stays mapped until the process exits.
    let result = unsafe {
        libc::syscall(
            libc::SYS_set_robust_list,
            head_ptr,
            std::mem::size_of::<RobustListHead>(),
        )
    };
    if result != 0 {
        return Err(format!(
            "set_robust_list: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The calling thread's id, when it is the process's main thread (its thread id is its
/// pid): the only thread whose death word the kernel half can check against the pid it
/// spawned.
pub(crate) fn main_thread_id() -> Option<u32> {
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    (tid == std::process::id()).then_some(tid)
}

/// Sleeps on the death word while it names `pid` (the user half's main thread) and calls
/// `died` once the kernel marks it `FUTEX_OWNER_DIED`. Start it only on a word that names
/// `pid`. Returns without calling it when the
/// word does not name `pid` (no early notice: the pidfd reports the death) or `stop` is
/// set (the user half was reaped). Wakes every `recheck` to notice a word that changed
/// under it.
pub(crate) fn watch(
    word: &AtomicU32,
    pid: u32,
    stop: &AtomicBool,
    recheck: Duration,
    died: impl FnOnce(),
) {
    loop {
        if stop.load(SeqCst) {
            return;
        }
        let value = word.load(SeqCst);
        // The kernel clears the owner's id as it sets the flag. (A word left marked by an
        // earlier user half never gets here: the watch starts only on a word naming this
        // one.)
        if value & OWNER_DIED != 0 {
            died();
            return;
        }
        if value & TID_MASK != pid & TID_MASK {
            return;
        }
        if value & WAITERS == 0 {
            // The dying thread's kernel wakes a waiter only if this bit is set.
            let _ = word.compare_exchange(value, value | WAITERS, SeqCst, SeqCst);
            continue;
        }
        wait_on(word, value, recheck);
    }
}

/// Ends a [`watch`] of `word` at once (after `stop` was set).
pub(crate) fn stop_watch(word: &AtomicU32, stop: &Arc<AtomicBool>) {
    stop.store(true, SeqCst);
    wake_all(word);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn a_word_naming_another_thread_gives_no_notice() {
        let word = AtomicU32::new(12345);
        let stop = AtomicBool::new(false);
        let mut called = false;
        watch(&word, 999, &stop, Duration::from_millis(1), || called = true);
        assert!(!called);
    }

    #[test]
    fn a_word_marked_owner_died_is_a_death() {
        let word = AtomicU32::new(999 | OWNER_DIED);
        let stop = AtomicBool::new(false);
        let mut called = false;
        watch(&word, 999, &stop, Duration::from_millis(1), || called = true);
        assert!(called);
    }

    #[test]
    #[cfg_attr(miri, ignore = "futex system calls")]
    fn a_stopped_watch_returns_without_a_notice() {
        let word = Arc::new(AtomicU32::new(999));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (word, stop) = (Arc::clone(&word), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut called = false;
                watch(&word, 999, &stop, Duration::from_secs(10), || called = true);
                called
            })
        };
        // The watcher announces itself (the WAITERS bit) before it sleeps.
        while word.load(SeqCst) & WAITERS == 0 {
            std::thread::yield_now();
        }
        stop_watch(&word, &stop);
        assert!(!watcher.join().unwrap());
    }

    #[test]
    #[cfg_attr(miri, ignore = "set_robust_list and futex system calls")]
    fn the_kernel_marks_the_word_when_its_owner_thread_exits() {
        // A real robust list on a thread that then exits holding the word: the kernel,
        // not this code, sets FUTEX_OWNER_DIED and wakes the watcher.
        let word: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(0)));
        let stop = AtomicBool::new(false);
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let owner = std::thread::spawn(move || {
            register(word).unwrap();
            let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
            word.store(tid, SeqCst);
            tid_tx.send(tid).unwrap();
            // Exits (holding the word) once the watcher sleeps on it.
            let _ = go_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        let watcher = std::thread::spawn(move || {
            let mut called = false;
            watch(word, tid, &stop, Duration::from_secs(10), || called = true);
            called
        });
        while word.load(SeqCst) & WAITERS == 0 {
            std::thread::yield_now();
        }
        drop(go_tx);
        owner.join().unwrap();
        let notified = watcher.join().unwrap();
        assert!(notified, "no death notice: word {:#x}, tid {tid}", word.load(SeqCst));
        assert_ne!(word.load(SeqCst) & OWNER_DIED, 0);
    }
}
