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
use crate::lrpc::{current_half, CallError, Half};
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

mod error;
mod guard;
mod registry;
mod shared;
mod user;

#[cfg(test)]
crate::sync::outside_loom! {
    mod tests;
}

pub use error::{ComboLockError, HoldToken};
pub use guard::ComboGuard;
pub use shared::UserAccess;
pub use user::{hold_for_user, release_from_user, snapshot_for_user};

use crate::sync::{Access, ValueCell};
use guard::GuardInner;
use registry::*;
use shared::*;
use user::release_remote;

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
