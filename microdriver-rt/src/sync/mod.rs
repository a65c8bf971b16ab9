//! The synchronisation facade: the one module that switches between std/parking_lot types
//! and loom's model-checked types under `cfg(loom)`.
//!
//! Everything in the runtime that shares state between threads takes its primitives from
//! here, so `RUSTFLAGS="--cfg loom"` turns the whole runtime into a loom model. This is the
//! only module that names `cfg(loom)`: the futexes, the lock's value cell, and the parts
//! that only exist outside a model (`outside_loom!`: processes, real shared memory) are
//! switched here.

#[cfg(not(loom))]
mod imp {
    pub use std::sync::atomic;
    pub use std::thread;

    /// A mutex without poisoning (parking_lot outside loom).
    #[derive(Debug, Default)]
    pub struct Mutex<T>(parking_lot::Mutex<T>);

    /// The guard of [`Mutex`].
    pub type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// Creates an unlocked mutex.
        pub fn new(value: T) -> Self {
            Self(parking_lot::Mutex::new(value))
        }

        /// Locks, blocking until the lock is free.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// A reader-writer lock without poisoning (parking_lot outside loom).
    #[derive(Debug, Default)]
    pub struct RwLock<T>(parking_lot::RwLock<T>);

    /// Shared guard of [`RwLock`].
    pub type RwLockReadGuard<'a, T> = parking_lot::RwLockReadGuard<'a, T>;
    /// Exclusive guard of [`RwLock`].
    pub type RwLockWriteGuard<'a, T> = parking_lot::RwLockWriteGuard<'a, T>;

    impl<T> RwLock<T> {
        /// Creates an unlocked lock.
        pub fn new(value: T) -> Self {
            Self(parking_lot::RwLock::new(value))
        }

        /// Takes the lock shared.
        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read()
        }

        /// Takes the lock exclusively.
        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write()
        }
    }

    /// Called in every spin loop: a CPU hint outside loom, a yield to the scheduler in it.
    #[inline]
    pub fn spin_hint() {
        std::hint::spin_loop();
    }

    /// Between a SeqCst write and a SeqCst read of another word whose writer does the
    /// mirror image (a Dekker pair: "I published, do you sleep?" against "I sleep, is
    /// anything published?"). SeqCst operations are totally ordered, so one of the two
    /// reads sees the other's write and nothing more is needed here; loom models SeqCst
    /// accesses as acquire/release only, so in a model this is a SeqCst fence.
    #[inline]
    pub fn dekker_fence() {}

    /// Whether this build is a loom model (`RUSTFLAGS="--cfg loom"`).
    pub(crate) const MODEL_CHECKED: bool = false;

    /// Sleeps while `word == expected` (a private futex: for words of this process).
    pub(crate) fn park(word: &atomic::AtomicU32, expected: u32, timeout: std::time::Duration) {
        use rustix::thread::futex;
        let timeout = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        // EAGAIN, EINTR and ETIMEDOUT all mean "re-check".
        let _ = futex::wait(word, futex::Flags::PRIVATE, expected, Some(&timeout));
    }

    /// Wakes every sleeper on `word`.
    pub(crate) fn unpark_all(word: &atomic::AtomicU32) {
        use rustix::thread::futex;
        let _ = futex::wake(word, futex::Flags::PRIVATE, i32::MAX as u32);
    }

    /// Sleeps while `word == expected`, for at most `timeout`, on a **shared** futex: the
    /// word may live in memory another process maps. May return early: re-check.
    pub(crate) fn wait_shared(
        word: &atomic::AtomicU32,
        expected: u32,
        timeout: std::time::Duration,
    ) {
        use rustix::thread::futex;
        let timeout = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        // EAGAIN (the word already changed), EINTR and ETIMEDOUT all mean "re-check".
        let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&timeout));
    }

    /// Wakes up to `count` sleepers on a shared futex `word`.
    pub(crate) fn wake_shared(word: &atomic::AtomicU32, count: u32) {
        let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), count);
    }

    /// Items that exist only outside loom models (processes, real shared memory).
    macro_rules! outside_loom {
        ($($item:item)*) => { $( $item )* };
    }
    pub(crate) use outside_loom;

    /// A value only a lock holder reaches: std's `UnsafeCell`.
    pub(crate) struct ValueCell<T>(std::cell::UnsafeCell<T>);

    impl<T> ValueCell<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        /// A pointer for the lock holder's accesses.
        #[inline]
        pub(crate) fn access(&self) -> Access<T> {
            Access(self.0.get())
        }
    }

    /// The holder's access to the value (ends when dropped).
    pub(crate) struct Access<T>(*mut T);

    impl<T> Access<T> {
        /// # Safety
        /// The caller holds the lock for as long as the reference lives.
        #[inline]
        pub(crate) unsafe fn get(&self) -> &T {
            // SAFETY: the caller holds the lock, so nothing writes the value meanwhile.
            unsafe { &*self.0 }
        }

        /// # Safety
        /// The caller holds the lock for as long as the reference lives.
        #[inline]
        pub(crate) unsafe fn get_mut(&mut self) -> &mut T {
            // SAFETY: the caller holds the lock, so this is the only access.
            unsafe { &mut *self.0 }
        }
    }
}

#[cfg(loom)]
mod imp {
    pub use loom::sync::atomic;
    pub use loom::thread;

    /// A mutex without poisoning, over loom's model-checked mutex.
    #[derive(Debug, Default)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);

    /// The guard of [`Mutex`].
    pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// Creates an unlocked mutex.
        pub fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        /// Locks, blocking until the lock is free.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }

    /// A reader-writer lock without poisoning, over loom's model-checked lock.
    #[derive(Debug, Default)]
    pub struct RwLock<T>(loom::sync::RwLock<T>);

    /// Shared guard of [`RwLock`].
    pub type RwLockReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
    /// Exclusive guard of [`RwLock`].
    pub type RwLockWriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

    impl<T> RwLock<T> {
        /// Creates an unlocked lock.
        pub fn new(value: T) -> Self {
            Self(loom::sync::RwLock::new(value))
        }

        /// Takes the lock shared.
        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        /// Takes the lock exclusively.
        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }

    /// Called in every spin loop: under loom, lets the model schedule another thread.
    #[inline]
    pub fn spin_hint() {
        loom::thread::yield_now();
    }

    /// A SeqCst fence: what loom needs to honour the total order of SeqCst accesses
    /// (see the std version).
    #[inline]
    pub fn dekker_fence() {
        loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
    }

    /// Whether this build is a loom model (`RUSTFLAGS="--cfg loom"`).
    pub(crate) const MODEL_CHECKED: bool = true;

    /// Under loom a sleep is a yield, after which the caller re-checks.
    pub(crate) fn park(_word: &atomic::AtomicU32, _expected: u32, _timeout: std::time::Duration) {
        loom::thread::yield_now();
    }

    /// Under loom waiters poll.
    pub(crate) fn unpark_all(_word: &atomic::AtomicU32) {}

    /// Under loom there are no futexes: a wait is a yield, after which the caller re-checks.
    pub(crate) fn wait_shared(
        _word: &atomic::AtomicU32,
        _expected: u32,
        _timeout: std::time::Duration,
    ) {
        loom::thread::yield_now();
    }

    /// Under loom a wake is implicit (waiters poll).
    pub(crate) fn wake_shared(_word: &atomic::AtomicU32, _count: u32) {}

    /// Items that exist only outside loom models (processes, real shared memory): left
    /// out of the model.
    macro_rules! outside_loom {
        ($($item:item)*) => {};
    }
    pub(crate) use outside_loom;

    /// A value only a lock holder reaches: loom's `UnsafeCell`, which checks every access
    /// for races.
    pub(crate) struct ValueCell<T>(loom::cell::UnsafeCell<T>);

    impl<T> ValueCell<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::cell::UnsafeCell::new(value))
        }

        pub(crate) fn access(&self) -> Access<T> {
            Access(self.0.get_mut())
        }
    }

    /// The holder's access to the value (ends when dropped).
    pub(crate) struct Access<T>(loom::cell::MutPtr<T>);

    impl<T> Access<T> {
        /// # Safety
        /// The caller holds the lock for as long as the reference lives.
        pub(crate) unsafe fn get(&self) -> &T {
            // SAFETY: as the caller promises; loom checks it.
            unsafe { &*self.0.deref() }
        }

        /// # Safety
        /// The caller holds the lock for as long as the reference lives.
        pub(crate) unsafe fn get_mut(&mut self) -> &mut T {
            // SAFETY: as the caller promises; loom checks it.
            unsafe { self.0.deref() }
        }
    }
}

pub(crate) use imp::*;
pub(crate) use imp::{
    outside_loom, park, unpark_all, wait_shared, wake_shared, Access, ValueCell, MODEL_CHECKED,
};

pub mod combolock;
pub use combolock::{ComboGuard, ComboLock, ComboLockError, HoldToken, UserAccess};
