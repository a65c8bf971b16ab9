//! [`ComboLock<T>`]: shared state that the critical path mutates and the user half may
//! lock too.
//!
//! # In the kernel half
//! A plain fast lock: one atomic word, uncontended lock and unlock are one compare-exchange
//! each (the same as `parking_lot::Mutex`); contended lockers spin briefly, then sleep on a
//! futex. The value lives in the lock (`UnsafeCell`), the guard dereferences to it.
//!
//! # From the user half
//! A `ComboLock` crosses the split as an identity only: [`Marshal`] sends its registry id,
//! and the user half decodes a *handle* (no value). An upcall therefore never writes back
//! into a combolock-protected object. The handle's [`ComboLock::lock`] is a downcall
//! (`HOLD_ENTRY`) whose kernel-half handler takes the lock **on the user half's behalf**:
//! the lock word stays held, marked held-by-user, a fresh hold token is recorded with the
//! time it was taken, and the contents are encoded into the reply. The user-side guard
//! dereferences to that copy; dropping it makes a second downcall (`RELEASE_ENTRY`) that
//! carries the contents back: the kernel decodes them completely first, and only then, with
//! a matching token, writes them into the kernel copy and releases the lock. The kernel copy
//! is written **only** on such a successful unlock, so a user half that dies while holding
//! a lock loses its changes and the kernel copy is exactly as it was before the lock was
//! taken: [`ComboLock::reclaim_user_holds`] (the supervisor calls it once the user half is
//! dead) releases every user hold without writing anything.
//!
//! # Snapshots, and locks the user half may not hold
//! [`ComboLock::snapshot`] gives the user half a consistent copy without a hold: one
//! downcall ([`SNAPSHOT_ENTRY`]) whose handler takes the lock, encodes the contents and
//! releases, so the critical path waits at most one encode. A lock made with
//! [`ComboLock::snapshot_only`] ([`UserAccess::Snapshot`]) refuses user holds altogether
//! ([`ComboLockError::SnapshotOnly`]): the user half can read state whose invariants the
//! kernel half relies on, such as ring indexes, but never write it or stall the critical
//! path on it.
//!
//! # Hung holders
//! [`ComboLock::set_user_hold_limit`] bounds how long the user half may hold a lock; a
//! `Supervisor` sets it to its `SupervisorConfig::user_hold_limit`, **5 ms by default**, so
//! a split driver is safe without asking (outside a supervisor there is no limit until one
//! is set). A
//! kernel-half locker that finds the lock user-held past the limit takes the hold away,
//! releases the lock, calls the hook set with [`ComboLock::set_stuck_holder_hook`] (the
//! supervisor kills the user half there), and carries on; so does
//! [`ComboLock::expire_stuck_holds`], a sweep the supervisor may run periodically. Sleeping
//! lockers wake by themselves when a hold expires.
//!
//! Kernel-half lockers go first: while one waits (past its short spin: a user hold sends
//! it there at once), the user half is granted no new hold nor snapshot, so a user half
//! that locks again and again cannot starve the critical path. A kernel locker waits at
//! most for the hold in progress, and never longer than the hold limit.
//!
//! # The user half is hostile
//! Its requests name locks by id and holds by token; an id that is not registered (or was
//! dropped: ids are never reused), a release of a lock it does not hold, a token of another
//! (or an expired) hold, and contents that do not decode are all rejected with a
//! [`ComboLockError`], never a panic, and leave the lock and its value untouched. A hold
//! request waits at most [`USER_LOCK_WAIT`] for the lock (it is served on a kernel thread,
//! which may even be the thread holding the lock while it waits for an upcall).
//!
//! # Registry
//! Every lock registers itself by id in a process-wide table of weak references, which the
//! downcall handlers and the reclaim functions go through; a lock unregisters when dropped.
//!
//! # Coming back from an upcall
//! Decoding into an existing lock ([`Marshal::decode_into`]) accepts only the lock's own
//! id and writes nothing. Decoding a fresh value in the kernel half looks the id up and
//! yields a handle to that live lock of the same type; an unknown id or another type is
//! refused. A value that *contains* a lock and comes back in place (a `&mut` argument)
//! goes through [`Marshal::check_update`], which refuses a lock field re-pointed at another
//! live lock, whatever the struct around it looks like.
//!
//! # What the user half never saw stays the kernel half's
//! A user release updates the kernel copy in place, as [`Marshal::decode_into`] does:
//! fields marked `#[marshal(skip)]` (ring memory, buffers), at any depth, keep the kernel
//! half's values; the user half's copy had only their defaults.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::sync::{Arc as StdArc, Mutex as StdMutex, RwLock as StdRwLock, Weak};
use std::time::{Duration, Instant};

use super::atomic::{AtomicU32, Ordering};
use super::{Mutex, MutexGuard};
use crate::lrpc::__private::{downcall, Entry, Served};
use crate::lrpc::{current_half, Half, UpcallError};
use crate::marshal::{Decoder, Encoder, Marshal, MarshalError};

/// The downcall that takes a lock on the user half's behalf: `id: u64` → code, token, `T`.
pub const HOLD_ENTRY: &str = "microdriver_rt::sync::combolock::hold";
/// The downcall that copies the contents out without holding: `id: u64` → code, `T`.
pub const SNAPSHOT_ENTRY: &str = "microdriver_rt::sync::combolock::snapshot";
/// The downcall that carries the contents back and releases: `id: u64, token: u64,
/// has_value: bool, [T]` → code.
pub const RELEASE_ENTRY: &str = "microdriver_rt::sync::combolock::release";

/// How long a user half's hold request waits for the lock before it is refused
/// ([`ComboLockError::Busy`]).
pub const USER_LOCK_WAIT: Duration = Duration::from_secs(1);

/// The lock word: held.
const LOCKED: u32 = 1;
/// The lock word: held on the user half's behalf.
const USER: u32 = 2;
/// The lock word: someone sleeps on it (the unlocker must wake).
const PARKED: u32 = 4;
/// Longest single sleep of a waiter (it re-checks hold expiry and deadlines after).
const MAX_PARK: Duration = Duration::from_millis(50);
/// Rounds of waiting before sleeping on a kernel-held lock: the first few busy-wait
/// (2, 4, 8, 16 CPU hints), the rest yield the CPU (none under loom: every round is a
/// schedule point there).
#[cfg(not(loom))]
const SPINS: u32 = 10;
#[cfg(loom)]
const SPINS: u32 = 0;
/// Of [`SPINS`], the rounds that busy-wait.
const BUSY_SPINS: u32 = 4;

/// Sleeps while `word == expected` (a private futex: the lock lives in this process).
#[cfg(not(loom))]
fn park(word: &AtomicU32, expected: u32, timeout: Duration) {
    use rustix::thread::futex;
    let timeout = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // EAGAIN, EINTR and ETIMEDOUT all mean "re-check".
    let _ = futex::wait(word, futex::Flags::PRIVATE, expected, Some(&timeout));
}

/// Wakes every sleeper on `word`.
#[cfg(not(loom))]
fn unpark_all(word: &AtomicU32) {
    use rustix::thread::futex;
    let _ = futex::wake(word, futex::Flags::PRIVATE, i32::MAX as u32);
}

/// Under loom a sleep is a yield, after which the caller re-checks.
#[cfg(loom)]
fn park(_word: &AtomicU32, _expected: u32, _timeout: Duration) {
    loom::thread::yield_now();
}

/// Under loom waiters poll.
#[cfg(loom)]
fn unpark_all(_word: &AtomicU32) {}

/// Why a combolock operation requested by (or on behalf of) the user half failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComboLockError {
    /// No live lock has this id.
    #[error("no combolock with id {id}")]
    UnknownLock {
        /// The id.
        id: u64,
    },
    /// The lock is not held by the user half.
    #[error("combolock {id} is not held by the user half")]
    NotHeld {
        /// The id.
        id: u64,
    },
    /// The lock is held by the user half, but under another hold token.
    #[error("combolock {id} is held under another token")]
    WrongToken {
        /// The id.
        id: u64,
    },
    /// The lock stayed busy for [`USER_LOCK_WAIT`].
    #[error("combolock {id} stayed busy for {USER_LOCK_WAIT:?}")]
    Busy {
        /// The id.
        id: u64,
    },
    /// The contents sent back did not decode (the hold is kept).
    #[error("combolock {id}: the contents sent back did not decode")]
    Malformed {
        /// The id.
        id: u64,
    },
    /// The kernel half could not encode the contents (the lock was released again).
    #[error("combolock {id}: the contents did not encode: {reason}")]
    Encode {
        /// The id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// The lock admits user-half snapshots only ([`UserAccess::Snapshot`]): the kernel half
    /// relies on its contents, so the user half may read them but never hold the lock.
    #[error("combolock {id} admits snapshots only: read it with `snapshot()`, not `lock()`")]
    SnapshotOnly {
        /// The id.
        id: u64,
    },
    /// The downcall itself failed.
    #[error("combolock {id}: {error}")]
    Call {
        /// The id.
        id: u64,
        /// Why.
        error: UpcallError,
    },
}

impl ComboLockError {
    fn code(&self) -> u8 {
        match self {
            ComboLockError::UnknownLock { .. } => 1,
            ComboLockError::NotHeld { .. } => 2,
            ComboLockError::WrongToken { .. } => 3,
            ComboLockError::Busy { .. } => 4,
            ComboLockError::Malformed { .. } => 5,
            ComboLockError::Call { .. } => 6,
            ComboLockError::Encode { .. } => 7,
            ComboLockError::SnapshotOnly { .. } => 8,
        }
    }

    fn from_code(code: u8, id: u64, offset: usize) -> Result<Self, MarshalError> {
        Ok(match code {
            1 => ComboLockError::UnknownLock { id },
            2 => ComboLockError::NotHeld { id },
            3 => ComboLockError::WrongToken { id },
            4 => ComboLockError::Busy { id },
            5 => ComboLockError::Malformed { id },
            8 => ComboLockError::SnapshotOnly { id },
            tag => {
                return Err(MarshalError::BadTag {
                    what: "combolock reply code",
                    tag: u64::from(tag),
                    offset,
                })
            }
        })
    }
}

/// Identifies one user-half hold of one lock (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HoldToken(pub u64);

// ---------------------------------------------------------------------------------------
// Process-wide configuration and registry. Plain std types even under loom: no critical
// section below makes a loom operation, so they never block a modelled thread.

type Hook = StdArc<dyn Fn() + Send + Sync>;

static HOLD_LIMIT_NANOS: StdAtomicU64 = StdAtomicU64::new(0);
static HOOK: StdRwLock<Option<Hook>> = StdRwLock::new(None);
static NEXT_ID: StdAtomicU64 = StdAtomicU64::new(1);
static NEXT_TOKEN: StdAtomicU64 = StdAtomicU64::new(1);
static REGISTRY: StdMutex<BTreeMap<u64, Weak<dyn ErasedLock>>> = StdMutex::new(BTreeMap::new());

fn registry() -> std::sync::MutexGuard<'static, BTreeMap<u64, Weak<dyn ErasedLock>>> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn hold_limit() -> Option<Duration> {
    match HOLD_LIMIT_NANOS.load(StdOrdering::Relaxed) {
        0 => None,
        nanos => Some(Duration::from_nanos(nanos)),
    }
}

fn call_stuck_hook() {
    let hook = HOOK
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    if let Some(hook) = hook {
        hook();
    }
}

fn lookup(id: u64) -> Option<StdArc<dyn ErasedLock>> {
    registry().get(&id).and_then(Weak::upgrade)
}

fn live_locks() -> Vec<StdArc<dyn ErasedLock>> {
    let mut registry = registry();
    registry.retain(|_, weak| weak.strong_count() > 0);
    registry.values().filter_map(Weak::upgrade).collect()
}

// ---------------------------------------------------------------------------------------
// The value cell: std's UnsafeCell, or loom's (which checks every access for races).

#[cfg(not(loom))]
mod cell {
    pub(super) struct ValueCell<T>(std::cell::UnsafeCell<T>);

    impl<T> ValueCell<T> {
        pub(super) fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        /// A pointer for the lock holder's accesses.
        #[inline]
        pub(super) fn access(&self) -> Access<T> {
            Access(self.0.get())
        }
    }

    /// The holder's access to the value (ends when dropped).
    pub(super) struct Access<T>(*mut T);

    impl<T> Access<T> {
        /// # Safety
        /// The caller holds the lock for as long as the reference lives.
        #[inline]
        pub(super) unsafe fn get(&self) -> &T {
            // SAFETY: the caller holds the lock, so nothing writes the value meanwhile.
            unsafe { &*self.0 }
        }

        /// # Safety
        /// The caller holds the lock for as long as the reference lives.
        #[inline]
        pub(super) unsafe fn get_mut(&mut self) -> &mut T {
            // SAFETY: the caller holds the lock, so this is the only access.
            unsafe { &mut *self.0 }
        }
    }
}

#[cfg(loom)]
mod cell {
    pub(super) struct ValueCell<T>(loom::cell::UnsafeCell<T>);

    impl<T> ValueCell<T> {
        pub(super) fn new(value: T) -> Self {
            Self(loom::cell::UnsafeCell::new(value))
        }

        pub(super) fn access(&self) -> Access<T> {
            Access(self.0.get_mut())
        }
    }

    pub(super) struct Access<T>(loom::cell::MutPtr<T>);

    impl<T> Access<T> {
        /// # Safety
        /// The caller holds the lock for as long as the reference lives.
        pub(super) unsafe fn get(&self) -> &T {
            // SAFETY: as the caller promises; loom checks it.
            unsafe { &*self.0.deref() }
        }

        /// # Safety
        /// The caller holds the lock for as long as the reference lives.
        pub(super) unsafe fn get_mut(&mut self) -> &mut T {
            // SAFETY: as the caller promises; loom checks it.
            unsafe { self.0.deref() }
        }
    }
}

use cell::{Access, ValueCell};

// ---------------------------------------------------------------------------------------
// The lock itself.

#[derive(Debug, Clone, Copy)]
struct Hold {
    token: u64,
    since: Instant,
}

struct Shared<T> {
    /// LOCKED | USER | PARKED.
    state: AtomicU32,
    /// Kernel-half lockers waiting for the lock: while any does, the user half is granted
    /// no new hold.
    kernel_waiters: AtomicU32,
    id: u64,
    /// The user half's hold, while state has USER. Changed only with this mutex held and
    /// the lock word held; whoever takes a hold out of it is the one who releases the lock.
    hold: Mutex<Option<Hold>>,
    /// What the user half may do with it.
    access: UserAccess,
    value: ValueCell<T>,
}

/// What the user half may do with a kernel-half lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAccess {
    /// Hold it (a [`ComboLock::lock`] from the user half; the contents come back on unlock)
    /// or take [`ComboLock::snapshot`]s. For state the user half owns a part of.
    Hold,
    /// Take [`ComboLock::snapshot`]s only: a consistent copy, read with the lock held just
    /// long enough to encode it; a hold is refused with [`ComboLockError::SnapshotOnly`].
    /// For state whose invariants the kernel half relies on (ring indexes, buffers): the
    /// user half can neither write it nor stall the critical path by holding it.
    Snapshot,
}

// SAFETY: the value is only reached through the lock (one holder at a time), so sharing
// the lock between threads is sharing a `T` by moving access: `T: Send` suffices, as for
// `std::sync::Mutex`.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: as above; the cell owns a `T`.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Shared<T> {
    #[inline]
    fn try_acquire(&self) -> bool {
        self.state
            .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[inline]
    fn release(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.release_slow();
        }
    }

    #[cold]
    fn release_slow(&self) {
        let previous = self.state.swap(0, Ordering::Release);
        if previous & PARKED != 0 {
            unpark_all(&self.state);
        }
    }

    /// Takes the lock word for a kernel-half locker, waiting as long as it takes. While it
    /// waits it is counted in `kernel_waiters`, so the user half gets no new hold: the
    /// wait is bounded by the hold in progress (and the hold limit), not by a series of
    /// holds. A user hold past the hold limit is taken away on the way.
    #[cold]
    fn acquire_slow(&self) {
        let mut registered = false;
        self.acquire_until(None, Some(&mut registered));
        if registered {
            self.kernel_waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Takes the lock word for the user half (a hold or a snapshot), waiting until
    /// `deadline`. Kernel-half lockers go first: while any waits, the lock is left to them.
    #[cold]
    fn acquire_for_user(&self, deadline: Instant) -> bool {
        loop {
            if self.kernel_waiters.load(Ordering::SeqCst) == 0 {
                if self.try_acquire() {
                    // A kernel locker that started waiting meanwhile goes first.
                    if self.kernel_waiters.load(Ordering::SeqCst) == 0 {
                        return true;
                    }
                    self.release();
                } else if !self.acquire_until(Some(deadline), None) {
                    return false;
                } else if self.kernel_waiters.load(Ordering::SeqCst) == 0 {
                    return true;
                } else {
                    self.release();
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            // Let the waiting kernel locker take it: sleep until the word changes (no
            // wake-up is asked for, so at most a millisecond).
            let seen = self.state.load(Ordering::Relaxed);
            if seen & LOCKED != 0 {
                park(&self.state, seen, Duration::from_millis(1));
            } else {
                super::thread::yield_now();
            }
        }
    }

    /// Takes the lock word, waiting until `deadline` (forever without one). A user hold
    /// past the hold limit is taken away on the way. A kernel-half locker passes
    /// `registered`: before it first sleeps it is counted in `kernel_waiters` (and the flag
    /// set, for the caller to uncount it), so lockers that get the lock while spinning, as
    /// contended kernel-half lockers usually do, pay no shared counter.
    fn acquire_until(&self, deadline: Option<Instant>, registered: Option<&mut bool>) -> bool {
        let mut registered = registered;
        let mut spins = 0;
        loop {
            let seen = self.state.load(Ordering::Relaxed);
            if seen & LOCKED == 0 {
                if self
                    .state
                    .compare_exchange_weak(
                        seen,
                        seen | LOCKED,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            if seen & USER != 0 {
                if self.expire_if_stuck() {
                    continue;
                }
            } else if spins < SPINS {
                if spins < BUSY_SPINS {
                    for _ in 0..(2u32 << spins) {
                        super::spin_hint();
                    }
                } else {
                    super::thread::yield_now();
                }
                spins += 1;
                continue;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            if let Some(flag) = registered.as_deref_mut() {
                if !*flag {
                    // From now on the user half is granted nothing before this locker;
                    // look at the word again before sleeping.
                    self.kernel_waiters.fetch_add(1, Ordering::SeqCst);
                    *flag = true;
                    continue;
                }
            }
            if seen & PARKED == 0
                && self
                    .state
                    .compare_exchange_weak(
                        seen,
                        seen | PARKED,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_err()
            {
                continue;
            }
            let mut timeout = MAX_PARK;
            if let Some(d) = deadline {
                timeout = timeout.min(d - now);
            }
            if seen & USER != 0 {
                if let Some(left) = self.hold_time_left(now) {
                    timeout = timeout.min(left);
                }
            }
            park(&self.state, seen | PARKED, timeout);
        }
    }

    /// How long the current user hold may still last (None: no hold or no limit).
    fn hold_time_left(&self, now: Instant) -> Option<Duration> {
        let limit = hold_limit()?;
        let hold = (*self.hold.lock())?;
        Some(limit.saturating_sub(now.saturating_duration_since(hold.since)))
    }

    /// Takes away a user hold older than the hold limit: releases the lock (the kernel
    /// copy untouched) and calls the stuck-holder hook. True if it did.
    fn expire_if_stuck(&self) -> bool {
        let Some(limit) = hold_limit() else {
            return false;
        };
        let token = {
            let hold = self.hold.lock();
            match *hold {
                Some(h) if h.since.elapsed() >= limit => h.token,
                _ => return false,
            }
        };
        if self.end_user_hold(token).is_ok() {
            tracing::warn!(
                "combolock {}: the user half held it longer than {limit:?}; reclaimed",
                self.id
            );
            call_stuck_hook();
            true
        } else {
            false
        }
    }

    /// Ends the user hold `token` without writing anything and releases the lock. Only the
    /// caller that takes the hold out releases.
    fn end_user_hold(&self, token: u64) -> Result<(), ComboLockError> {
        let hold = self.hold.lock();
        self.check_hold(&hold, token)?;
        self.finish_hold(hold);
        Ok(())
    }

    /// Refuses a release for a hold that is not the current one.
    fn check_hold(&self, hold: &Option<Hold>, token: u64) -> Result<(), ComboLockError> {
        match *hold {
            None => Err(ComboLockError::NotHeld { id: self.id }),
            Some(h) if h.token != token => Err(ComboLockError::WrongToken { id: self.id }),
            Some(_) => Ok(()),
        }
    }

    /// Takes the hold out (its mutex held, its token checked) and releases the lock word.
    fn finish_hold(&self, mut hold: MutexGuard<'_, Option<Hold>>) {
        *hold = None;
        drop(hold);
        self.release();
    }

    /// Ends whatever user hold there is, writing nothing. True if there was one.
    fn reclaim(&self) -> bool {
        let token = match *self.hold.lock() {
            Some(h) => h.token,
            None => return false,
        };
        self.end_user_hold(token).is_ok()
    }

    fn user_held(&self) -> bool {
        self.state.load(Ordering::Relaxed) & USER != 0
    }
}

impl<T: Marshal> Shared<T> {
    /// Takes the lock for the user half (waiting until `deadline`), and encodes code 0,
    /// the token and the contents into `enc`.
    fn hold_for_user(
        &self,
        deadline: Instant,
        enc: &mut Encoder<'_>,
    ) -> Result<HoldToken, ComboLockError> {
        if self.access == UserAccess::Snapshot {
            return Err(ComboLockError::SnapshotOnly { id: self.id });
        }
        if !self.acquire_for_user(deadline) {
            return Err(ComboLockError::Busy { id: self.id });
        }
        let token = NEXT_TOKEN.fetch_add(1, StdOrdering::Relaxed);
        let encoded = {
            let access = self.value.access();
            enc.put_u8(0);
            enc.put_u64(token);
            // SAFETY: we hold the lock word.
            unsafe { access.get() }.encode(enc)
        };
        if let Err(e) = encoded {
            self.release();
            return Err(ComboLockError::Encode {
                id: self.id,
                reason: e.to_string(),
            });
        }
        let mut hold = self.hold.lock();
        self.state.fetch_or(USER, Ordering::AcqRel);
        *hold = Some(Hold {
            token,
            since: Instant::now(),
        });
        Ok(HoldToken(token))
    }

    /// Copies the contents out for the user half: takes the lock (waiting until
    /// `deadline`), encodes code 0 and the contents into `enc`, releases. A lock the user
    /// half holds is waited for like any other holder.
    fn snapshot_for_user(
        &self,
        deadline: Instant,
        enc: &mut Encoder<'_>,
    ) -> Result<(), ComboLockError> {
        if !self.acquire_for_user(deadline) {
            return Err(ComboLockError::Busy { id: self.id });
        }
        let encoded = {
            let access = self.value.access();
            enc.put_u8(0);
            // SAFETY: we hold the lock word.
            unsafe { access.get() }.encode(enc)
        };
        self.release();
        encoded.map_err(|e| ComboLockError::Encode {
            id: self.id,
            reason: e.to_string(),
        })
    }

    /// Decodes the contents the user half sent back (if any) into the kernel copy, then
    /// ends hold `token`. The kernel copy is updated as [`Marshal::decode_into`] updates a
    /// value: all or nothing, and what never crossed (`#[marshal(skip)]` fields at any
    /// depth, which lock a lock field names) stays the kernel half's.
    fn release_from_user(
        &self,
        token: u64,
        value: Option<Decoder<'_>>,
    ) -> Result<(), ComboLockError> {
        // Cheap checks first: do not decode for a hold that does not exist.
        self.check_hold(&self.hold.lock(), token)?;
        let Some(mut dec) = value else {
            return self.end_user_hold(token);
        };
        let malformed = |_| ComboLockError::Malformed { id: self.id };
        let mut new = T::decode(&mut dec).map_err(malformed)?;
        // The hold mutex stays held until the lock word is released: the hold cannot
        // expire (and the lock pass to a kernel locker) while the kernel copy is written.
        let hold = self.hold.lock();
        self.check_hold(&hold, token)?;
        {
            let mut access = self.value.access();
            // SAFETY: the lock word is held for the user half (LOCKED | USER) under this
            // hold, which cannot end meanwhile (we hold its mutex), so no one else reaches
            // the value until `release` below.
            let kernel = unsafe { access.get_mut() };
            kernel.check_update(&new).map_err(malformed)?;
            dec.finish().map_err(malformed)?;
            new.keep_local(kernel);
            *kernel = new;
        }
        self.finish_hold(hold);
        Ok(())
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        registry().remove(&self.id);
    }
}

/// What the registry knows of a lock, without its type.
trait ErasedLock: Send + Sync + 'static {
    fn hold_for_user(
        &self,
        deadline: Instant,
        enc: &mut Encoder<'_>,
    ) -> Result<HoldToken, ComboLockError>;
    fn release_from_user(
        &self,
        token: u64,
        value: Option<Decoder<'_>>,
    ) -> Result<(), ComboLockError>;
    fn snapshot_for_user(
        &self,
        deadline: Instant,
        enc: &mut Encoder<'_>,
    ) -> Result<(), ComboLockError>;
    fn reclaim(&self) -> bool;
    fn expire(&self) -> bool;
    fn user_held(&self) -> bool;
    fn into_any(self: StdArc<Self>) -> StdArc<dyn Any + Send + Sync>;
}

impl<T: Marshal + Send + 'static> ErasedLock for Shared<T> {
    fn hold_for_user(
        &self,
        deadline: Instant,
        enc: &mut Encoder<'_>,
    ) -> Result<HoldToken, ComboLockError> {
        Shared::hold_for_user(self, deadline, enc)
    }
    fn release_from_user(
        &self,
        token: u64,
        value: Option<Decoder<'_>>,
    ) -> Result<(), ComboLockError> {
        Shared::release_from_user(self, token, value)
    }
    fn snapshot_for_user(
        &self,
        deadline: Instant,
        enc: &mut Encoder<'_>,
    ) -> Result<(), ComboLockError> {
        Shared::snapshot_for_user(self, deadline, enc)
    }
    fn reclaim(&self) -> bool {
        Shared::reclaim(self)
    }
    fn expire(&self) -> bool {
        self.user_held() && self.expire_if_stuck()
    }
    fn user_held(&self) -> bool {
        Shared::user_held(self)
    }
    fn into_any(self: StdArc<Self>) -> StdArc<dyn Any + Send + Sync> {
        self
    }
}

// ---------------------------------------------------------------------------------------
// The public lock.

/// Shared state the critical path mutates; the user half reaches it only by locking it
/// (see the [module docs](self)).
///
/// # Example
///
/// The same code locks it in the kernel half (a fast local lock) and in the user half (a
/// downcall that holds the kernel half's lock on its behalf and writes the changes back
/// when the guard drops):
///
/// ```
/// use microdriver_rt::{ComboLock, Marshal};
///
/// #[derive(Debug, Clone, PartialEq, Marshal)]
/// struct Config {
///     mtu: u32,
/// }
///
/// let config = ComboLock::new(Config { mtu: 1500 });
/// config.lock()?.mtu = 9000;
/// assert_eq!(config.lock()?.mtu, 9000);
/// # Ok::<(), microdriver_rt::ComboLockError>(())
/// ```
pub struct ComboLock<T> {
    repr: Repr<T>,
}

enum Repr<T> {
    /// The lock itself (kernel half, or a lock a process made for itself).
    Local(StdArc<Shared<T>>),
    /// A user-half handle to a kernel-half lock.
    Remote { id: u64 },
}

impl<T: Marshal + Send + 'static> ComboLock<T> {
    /// A new, unlocked lock around `value`, registered under a fresh id; the user half
    /// may hold it ([`UserAccess::Hold`]).
    pub fn new(value: T) -> Self {
        Self::with_user_access(value, UserAccess::Hold)
    }

    /// A new lock the user half may only take snapshots of ([`UserAccess::Snapshot`]).
    ///
    /// ```
    /// use microdriver_rt::ComboLock;
    ///
    /// // Ring indexes are the hot path's invariants: the user half may read, never hold
    /// // (its `lock()` fails with `ComboLockError::SnapshotOnly`).
    /// let ring = ComboLock::snapshot_only((0u32, 0u32));
    /// ring.lock()?.1 = 7; // the kernel half locks it as usual
    /// assert_eq!(ring.snapshot()?, (0, 7));
    /// # Ok::<(), microdriver_rt::ComboLockError>(())
    /// ```
    pub fn snapshot_only(value: T) -> Self {
        Self::with_user_access(value, UserAccess::Snapshot)
    }

    /// A new, unlocked lock around `value` with the given user-half access.
    pub fn with_user_access(value: T, access: UserAccess) -> Self {
        let id = NEXT_ID.fetch_add(1, StdOrdering::Relaxed);
        let shared = StdArc::new(Shared {
            state: AtomicU32::new(0),
            kernel_waiters: AtomicU32::new(0),
            id,
            hold: Mutex::new(None),
            access,
            value: ValueCell::new(value),
        });
        let weak: Weak<dyn ErasedLock> = StdArc::downgrade(&shared) as Weak<dyn ErasedLock>;
        registry().insert(id, weak);
        ComboLock {
            repr: Repr::Local(shared),
        }
    }

    /// Locks. In the kernel half (or on a lock of this process) this waits for the lock
    /// and cannot fail; on a user-half handle it is a downcall that takes the kernel-half
    /// lock and carries the contents over, and fails if the call does.
    #[inline]
    pub fn lock(&self) -> Result<ComboGuard<'_, T>, ComboLockError> {
        if let Repr::Local(shared) = &self.repr {
            if !shared.try_acquire() {
                shared.acquire_slow();
            }
            return Ok(ComboGuard {
                inner: GuardInner::Local {
                    shared,
                    access: ManuallyDrop::new(shared.value.access()),
                },
            });
        }
        Self::lock_remote(self.id())
    }

    /// A consistent copy of the contents, as the user half sees them: fields marked
    /// `#[marshal(skip)]` come back as their defaults.
    ///
    /// ```
    /// use microdriver_rt::{ComboLock, Marshal};
    ///
    /// #[derive(Debug, Default, PartialEq, Marshal)]
    /// struct Ring {
    ///     tail: u32,
    ///     #[marshal(skip)]
    ///     buffers: Vec<Vec<u8>>,
    /// }
    ///
    /// let ring = ComboLock::new(Ring { tail: 3, buffers: vec![vec![0; 64]; 8] });
    /// let copy = ring.snapshot()?;
    /// assert_eq!(copy.tail, 3);
    /// assert!(copy.buffers.is_empty(), "skipped fields are not copied");
    /// # Ok::<(), microdriver_rt::ComboLockError>(())
    /// ```
    /// In the kernel half (or on a lock of
    /// this process) it locks, encodes, unlocks and decodes, so monolithic and split builds
    /// see the same copy; on a user-half handle it is one downcall ([`SNAPSHOT_ENTRY`]) that
    /// holds the kernel-half lock only while encoding. Works on every lock, whatever its
    /// [`UserAccess`].
    pub fn snapshot(&self) -> Result<T, ComboLockError> {
        let id = self.id();
        let Repr::Local(shared) = &self.repr else {
            return Self::snapshot_remote(id);
        };
        let mut bytes = Vec::new();
        if !shared.try_acquire() {
            shared.acquire_slow();
        }
        let encoded = {
            let access = shared.value.access();
            // SAFETY: we hold the lock word.
            unsafe { access.get() }.encode(&mut Encoder::new(&mut bytes))
        };
        shared.release();
        let encode_error = |e: MarshalError| ComboLockError::Encode {
            id,
            reason: e.to_string(),
        };
        encoded.map_err(encode_error)?;
        let mut dec = Decoder::new(&bytes);
        T::decode(&mut dec)
            .and_then(|v| dec.finish().map(|()| v))
            .map_err(encode_error)
    }

    #[cold]
    #[inline(never)]
    fn snapshot_remote(id: u64) -> Result<T, ComboLockError> {
        downcall(
            SNAPSHOT_ENTRY,
            &mut (),
            |_, enc| id.encode(enc),
            |_, dec| {
                let offset = dec.position();
                match dec.take_u8()? {
                    0 => Ok(Ok(T::decode(dec)?)),
                    code => Ok(Err(ComboLockError::from_code(code, id, offset)?)),
                }
            },
        )
        .map_err(|error| ComboLockError::Call { id, error })?
    }

    #[cold]
    #[inline(never)]
    fn lock_remote(id: u64) -> Result<ComboGuard<'static, T>, ComboLockError> {
        let reply = downcall(
            HOLD_ENTRY,
            &mut (),
            |_, enc| id.encode(enc),
            |_, dec| {
                let offset = dec.position();
                match dec.take_u8()? {
                    0 => {
                        let token = u64::decode(dec)?;
                        Ok(Ok((token, T::decode(dec)?)))
                    }
                    code => Ok(Err(ComboLockError::from_code(code, id, offset)?)),
                }
            },
        )
        .map_err(|error| ComboLockError::Call { id, error })?;
        let (token, value) = reply?;
        Ok(ComboGuard {
            inner: GuardInner::Remote {
                id,
                token,
                value: ManuallyDrop::new(value),
            },
        })
    }
}

impl<T> ComboLock<T> {
    /// The registry id (what crosses the split).
    pub fn id(&self) -> u64 {
        match &self.repr {
            Repr::Local(shared) => shared.id,
            Repr::Remote { id } => *id,
        }
    }

    /// True for the lock itself, false for a user-half handle to a kernel-half lock.
    pub fn is_local(&self) -> bool {
        matches!(self.repr, Repr::Local(_))
    }

    /// True while the user half holds this (local) lock.
    pub fn is_user_held(&self) -> bool {
        match &self.repr {
            Repr::Local(shared) => shared.user_held(),
            Repr::Remote { .. } => false,
        }
    }
}

/// The registry-wide operations (the supervisor's). Defined on `ComboLock<()>` so they
/// can be called as `ComboLock::reclaim_user_holds()`.
impl ComboLock<()> {
    /// Releases every user hold of every lock without writing anything back: each kernel
    /// copy stays exactly as it was before the user half took it. Call it once the user
    /// half is dead. Returns the number of holds released.
    pub fn reclaim_user_holds() -> usize {
        reclaim_user_holds()
    }

    /// Sets how long the user half may hold a lock (`Duration::ZERO`: no limit). A
    /// `Supervisor` sets its `SupervisorConfig::user_hold_limit` (5 ms by default) when it
    /// starts; without one there is no limit until this is called.
    pub fn set_user_hold_limit(limit: Duration) {
        set_user_hold_limit(limit);
    }

    /// Sets what runs when a hold is taken away for exceeding the limit (the supervisor
    /// kills the user half). Called on the thread that found the stuck hold, after the
    /// lock was released.
    pub fn set_stuck_holder_hook(hook: StdArc<dyn Fn() + Send + Sync>) {
        set_stuck_holder_hook(hook);
    }

    /// Takes away every user hold older than the limit (calling the hook once per hold).
    /// Returns the number taken.
    pub fn expire_stuck_holds() -> usize {
        expire_stuck_holds()
    }

    /// The number of locks the user half holds now.
    pub fn user_holds() -> usize {
        live_locks().iter().filter(|l| l.user_held()).count()
    }
}

/// See [`ComboLock::reclaim_user_holds`].
pub fn reclaim_user_holds() -> usize {
    live_locks().iter().filter(|l| l.reclaim()).count()
}

/// See [`ComboLock::set_user_hold_limit`].
pub fn set_user_hold_limit(limit: Duration) {
    let nanos = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
    HOLD_LIMIT_NANOS.store(nanos, StdOrdering::Relaxed);
}

/// The hold limit (None: unlimited).
pub fn user_hold_limit() -> Option<Duration> {
    hold_limit()
}

/// See [`ComboLock::set_stuck_holder_hook`].
pub fn set_stuck_holder_hook(hook: StdArc<dyn Fn() + Send + Sync>) {
    *HOOK
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(hook);
}

/// Removes the stuck-holder hook.
pub fn clear_stuck_holder_hook() {
    *HOOK
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
}

/// See [`ComboLock::expire_stuck_holds`].
pub fn expire_stuck_holds() -> usize {
    live_locks().iter().filter(|l| l.expire()).count()
}

/// The kernel half's handling of a user-half hold request for lock `id` (what the
/// [`HOLD_ENTRY`] downcall runs): waits up to `wait` for the lock, then marks it held by
/// the user half and writes code 0, the token and the contents into `enc`.
pub fn hold_for_user(
    id: u64,
    wait: Duration,
    enc: &mut Encoder<'_>,
) -> Result<HoldToken, ComboLockError> {
    let lock = lookup(id).ok_or(ComboLockError::UnknownLock { id })?;
    lock.hold_for_user(Instant::now() + wait, enc)
}

/// The kernel half's handling of a user-half snapshot request for lock `id` (what the
/// [`SNAPSHOT_ENTRY`] downcall runs): waits up to `wait` for the lock, writes code 0 and
/// the contents into `enc`, and releases.
pub fn snapshot_for_user(
    id: u64,
    wait: Duration,
    enc: &mut Encoder<'_>,
) -> Result<(), ComboLockError> {
    let lock = lookup(id).ok_or(ComboLockError::UnknownLock { id })?;
    lock.snapshot_for_user(Instant::now() + wait, enc)
}

/// The kernel half's handling of a user-half release (what the [`RELEASE_ENTRY`] downcall
/// runs): with `Some(decoder)` over the contents, decodes them completely and writes them
/// into the kernel copy; with `None`, writes nothing; then releases. Rejects unknown ids,
/// locks not held by the user half and foreign tokens, leaving everything untouched.
pub fn release_from_user(
    id: u64,
    token: HoldToken,
    value: Option<Decoder<'_>>,
) -> Result<(), ComboLockError> {
    let lock = lookup(id).ok_or(ComboLockError::UnknownLock { id })?;
    lock.release_from_user(token.0, value)
}

fn hold_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let id = u64::decode(&mut dec)?;
    dec.finish()?;
    match hold_for_user(id, USER_LOCK_WAIT, enc) {
        Ok(_) => Ok(()),
        // Part of the contents is in the reply: fail the call (the reply is rebuilt).
        Err(ComboLockError::Encode { reason, .. }) => Err(MarshalError::BadHeader { reason }),
        Err(e) => {
            enc.put_u8(e.code());
            Ok(())
        }
    }
}

fn snapshot_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let id = u64::decode(&mut dec)?;
    dec.finish()?;
    match snapshot_for_user(id, USER_LOCK_WAIT, enc) {
        Ok(()) => Ok(()),
        Err(ComboLockError::Encode { reason, .. }) => Err(MarshalError::BadHeader { reason }),
        Err(e) => {
            enc.put_u8(e.code());
            Ok(())
        }
    }
}

fn release_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let id = u64::decode(&mut dec)?;
    let token = u64::decode(&mut dec)?;
    let with_value = bool::decode(&mut dec)?;
    let result = if with_value {
        release_from_user(id, HoldToken(token), Some(dec))
    } else {
        dec.finish()?;
        release_from_user(id, HoldToken(token), None)
    };
    enc.put_u8(result.map_or_else(|e| e.code(), |()| 0));
    Ok(())
}

inventory::submit! {
    Entry {
        name: HOLD_ENTRY,
        signature: "fn(id: u64) -> (u8, u64, T)",
        served: Served::ByKernel,
        handler: hold_handler,
    }
}

inventory::submit! {
    Entry {
        name: SNAPSHOT_ENTRY,
        signature: "fn(id: u64) -> (u8, T)",
        served: Served::ByKernel,
        handler: snapshot_handler,
    }
}

inventory::submit! {
    Entry {
        name: RELEASE_ENTRY,
        signature: "fn(id: u64, token: u64, Option<T>) -> u8",
        served: Served::ByKernel,
        handler: release_handler,
    }
}

/// Makes the release downcall from the user half.
fn release_remote<T: Marshal>(
    id: u64,
    token: u64,
    value: Option<&T>,
) -> Result<(), ComboLockError> {
    let code = downcall(
        RELEASE_ENTRY,
        &mut (),
        |_, enc| {
            id.encode(enc)?;
            token.encode(enc)?;
            value.is_some().encode(enc)?;
            value.map_or(Ok(()), |v| v.encode(enc))
        },
        |_, dec| {
            let offset = dec.position();
            Ok((dec.take_u8()?, offset))
        },
    )
    .map_err(|error| ComboLockError::Call { id, error })?;
    match code {
        (0, _) => Ok(()),
        (code, offset) => {
            Err(ComboLockError::from_code(code, id, offset)
                .unwrap_or(ComboLockError::Malformed { id }))
        }
    }
}

/// Another handle to the same lock (the registry entry lives while any handle does).
impl<T> Clone for ComboLock<T> {
    fn clone(&self) -> Self {
        let repr = match &self.repr {
            Repr::Local(shared) => Repr::Local(StdArc::clone(shared)),
            Repr::Remote { id } => Repr::Remote { id: *id },
        };
        ComboLock { repr }
    }
}

/// Two handles are equal when they name the same lock (the contents are not compared:
/// that would need the lock).
impl<T> PartialEq for ComboLock<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl<T> Eq for ComboLock<T> {}

impl<T> fmt::Debug for ComboLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComboLock")
            .field("id", &self.id())
            .field("local", &self.is_local())
            .field("user_held", &self.is_user_held())
            .finish_non_exhaustive()
    }
}

impl<T: Marshal + Send + Default + 'static> Default for ComboLock<T> {
    fn default() -> Self {
        ComboLock::new(T::default())
    }
}

/// A combolock crosses as its registry id. The user half decodes a handle whose `lock()`
/// downcalls; elsewhere the id must name a live lock of the same type (a handle to the
/// same lock). Decoding into an existing lock accepts only its own id: nothing is written.
impl<T: Marshal + Send + 'static> Marshal for ComboLock<T> {
    const MIN_WIRE_SIZE: usize = 8;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        self.id().encode(enc)
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        let id = u64::decode(dec)?;
        if current_half() == Half::User {
            return Ok(ComboLock {
                repr: Repr::Remote { id },
            });
        }
        let bad = || MarshalError::BadOpaque {
            id,
            ty: std::any::type_name::<Self>(),
        };
        let shared = lookup(id)
            .ok_or_else(bad)?
            .into_any()
            .downcast::<Shared<T>>()
            .map_err(|_| bad())?;
        Ok(ComboLock {
            repr: Repr::Local(shared),
        })
    }

    fn decode_into(&mut self, dec: &mut Decoder<'_>) -> Result<(), MarshalError> {
        let id = u64::decode(dec)?;
        match self.repr {
            Repr::Remote { .. } => {
                self.repr = Repr::Remote { id };
                Ok(())
            }
            Repr::Local(ref shared) if shared.id == id => Ok(()),
            Repr::Local(_) => Err(MarshalError::BadOpaque {
                id,
                ty: std::any::type_name::<Self>(),
            }),
        }
    }

    /// A lock field of a value coming back (a `&mut` argument, a struct inside a lock)
    /// keeps naming the same lock: another live lock of the same type is refused.
    fn check_update(&self, new: &Self) -> Result<(), MarshalError> {
        match self.repr {
            Repr::Local(ref shared) if shared.id != new.id() => Err(MarshalError::BadOpaque {
                id: new.id(),
                ty: std::any::type_name::<Self>(),
            }),
            _ => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The guard.

/// Access to a locked [`ComboLock`]'s contents; dropping it unlocks (from the user half:
/// carries the contents back).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ComboGuard<'a, T: Marshal> {
    inner: GuardInner<'a, T>,
}

enum GuardInner<'a, T> {
    Local {
        shared: &'a Shared<T>,
        access: ManuallyDrop<Access<T>>,
    },
    Remote {
        id: u64,
        token: u64,
        value: ManuallyDrop<T>,
    },
}

impl<T: Marshal> ComboGuard<'_, T> {
    /// Unlocks, reporting whether the contents reached the kernel half (always for a local
    /// lock).
    pub fn unlock(self) -> Result<(), ComboLockError> {
        let mut this = ManuallyDrop::new(self);
        this.finish()
    }

    /// The user hold's token (None for a local lock).
    pub fn token(&self) -> Option<HoldToken> {
        match &self.inner {
            GuardInner::Local { .. } => None,
            GuardInner::Remote { token, .. } => Some(HoldToken(*token)),
        }
    }

    /// Releases. Must be called exactly once (by `drop` or `unlock`).
    #[inline]
    fn finish(&mut self) -> Result<(), ComboLockError> {
        if let GuardInner::Local { shared, access } = &mut self.inner {
            // SAFETY: called once; the access ends before the lock word is released.
            unsafe { ManuallyDrop::drop(access) };
            shared.release();
            return Ok(());
        }
        self.finish_remote()
    }

    /// [`ComboGuard::finish`] for a user-half hold: the release downcall.
    #[cold]
    #[inline(never)]
    fn finish_remote(&mut self) -> Result<(), ComboLockError> {
        match &mut self.inner {
            GuardInner::Local { .. } => Ok(()),
            GuardInner::Remote { id, token, value } => {
                // SAFETY: called once; the value is not used again.
                let value = unsafe { ManuallyDrop::take(value) };
                let result = release_remote(*id, *token, Some(&value));
                if let Err(ComboLockError::Call { .. } | ComboLockError::Malformed { .. }) = result
                {
                    // The contents could not be carried (too large, channel trouble): at
                    // least release the lock, leaving the kernel copy as it was.
                    let _ = release_remote::<T>(*id, *token, None);
                }
                if let Err(e) = &result {
                    tracing::warn!("unlocking {e}");
                }
                result
            }
        }
    }
}

impl<T: Marshal> Drop for ComboGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

impl<T: Marshal> Deref for ComboGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match &self.inner {
            // SAFETY: the guard holds the lock.
            GuardInner::Local { access, .. } => unsafe { access.get() },
            GuardInner::Remote { value, .. } => value,
        }
    }
}

impl<T: Marshal> DerefMut for ComboGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.inner {
            // SAFETY: the guard holds the lock.
            GuardInner::Local { access, .. } => unsafe { access.get_mut() },
            GuardInner::Remote { value, .. } => value,
        }
    }
}

impl<T: Marshal + fmt::Debug> fmt::Debug for ComboGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The unsafe paths in-process (what `scripts/miri` checks): the value cell reached
    //! through guards, snapshots, holds and releases on the kernel side.
    use super::*;
    use crate::marshal::{from_bytes, to_bytes};

    #[derive(Debug, Default, PartialEq, crate::Marshal)]
    struct Ring {
        head: u32,
        #[marshal(skip)]
        memory: Vec<u8>,
    }

    #[test]
    fn snapshot_copies_without_holding_and_skips_memory() {
        let lock = ComboLock::snapshot_only(Ring {
            head: 3,
            memory: vec![1; 64],
        });
        lock.lock().expect("local").head += 1;
        let copy = lock.snapshot().expect("snapshot");
        assert_eq!(
            copy,
            Ring {
                head: 4,
                memory: Vec::new()
            }
        );
        assert!(!lock.is_user_held());
        let mut enc = Vec::new();
        let refused = hold_for_user(lock.id(), Duration::ZERO, &mut Encoder::new(&mut enc));
        assert_eq!(refused, Err(ComboLockError::SnapshotOnly { id: lock.id() }));
        snapshot_for_user(lock.id(), Duration::ZERO, &mut Encoder::new(&mut enc))
            .expect("snapshot for the user half");
        assert_eq!(enc[0], 0);
        assert_eq!(from_bytes::<Ring>(&enc[1..]).expect("decodes").head, 4);
        assert_eq!(lock.lock().expect("local").memory.len(), 64);
    }

    /// A user release decodes into the kernel copy: what the user half never saw (the
    /// skipped field) stays the kernel half's.
    #[test]
    fn user_release_keeps_skipped_fields() {
        let lock = ComboLock::new(Ring {
            head: 1,
            memory: vec![9; 64],
        });
        let mut reply = Vec::new();
        let token =
            hold_for_user(lock.id(), Duration::ZERO, &mut Encoder::new(&mut reply)).expect("hold");
        // code (1 byte), token (8 bytes), then the contents.
        let mut copy: Ring = from_bytes(&reply[9..]).expect("contents");
        assert!(
            copy.memory.is_empty(),
            "the user half never sees the memory"
        );
        copy.head += 1;
        let back = to_bytes(&copy).expect("encode");
        release_from_user(lock.id(), token, Some(Decoder::new(&back))).expect("release");
        let guard = lock.lock().expect("local");
        assert_eq!((guard.head, guard.memory.len()), (2, 64));
    }

    #[derive(Debug, crate::Marshal)]
    struct Holder {
        mtu: u32,
        stats: ComboLock<u64>,
    }

    /// A `&mut` value coming back (an upcall's reply) cannot make a lock field name
    /// another live lock of the same type, even in a struct without skipped fields.
    #[test]
    fn reply_cannot_repoint_a_lock_field() {
        let mine = ComboLock::new(1u64);
        let other = ComboLock::new(2u64);
        let mut holder = Holder {
            mtu: 1500,
            stats: mine.clone(),
        };
        let forged = to_bytes(&Holder {
            mtu: 9000,
            stats: other.clone(),
        })
        .expect("encode");
        let refused = holder.decode_into(&mut Decoder::new(&forged));
        assert!(refused.is_err(), "re-pointed to {:?}", holder.stats);
        assert_eq!((holder.mtu, holder.stats.id()), (1500, mine.id()));
        // The honest reply (the same lock) is taken, with the new MTU.
        let honest = to_bytes(&Holder {
            mtu: 9000,
            stats: mine.clone(),
        })
        .expect("encode");
        holder
            .decode_into(&mut Decoder::new(&honest))
            .expect("same lock");
        assert_eq!((holder.mtu, holder.stats.id()), (9000, mine.id()));
    }

    #[test]
    fn hold_and_release_write_back_through_the_cell() {
        let lock = ComboLock::new(7u64);
        let mut reply = Vec::new();
        let token =
            hold_for_user(lock.id(), Duration::ZERO, &mut Encoder::new(&mut reply)).expect("hold");
        assert!(lock.is_user_held());
        let busy = snapshot_for_user(lock.id(), Duration::ZERO, &mut Encoder::new(&mut reply));
        assert_eq!(busy, Err(ComboLockError::Busy { id: lock.id() }));
        let back = to_bytes(&9u64).expect("encode");
        release_from_user(lock.id(), token, Some(Decoder::new(&back))).expect("release");
        assert_eq!(*lock.lock().expect("local"), 9);
        let handle = lock.clone();
        assert_eq!(handle, lock);
        assert_eq!(handle.snapshot().expect("snapshot"), 9);
    }
}
