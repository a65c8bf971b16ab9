//! The lock itself: the lock word, the hold on the user half's behalf, and the value.

use super::*;
use crate::sync::{park, unpark_all};

/// The lock word: held.
pub(super) const LOCKED: u32 = 1;
/// The lock word: held on the user half's behalf.
pub(super) const USER: u32 = 2;
/// The lock word: someone sleeps on it (the unlocker must wake).
pub(super) const PARKED: u32 = 4;
/// Longest single sleep of a waiter (it re-checks hold expiry and deadlines after).
pub(super) const MAX_PARK: Duration = Duration::from_millis(50);
/// Rounds of waiting before sleeping on a kernel-held lock: the first few busy-wait
/// (2, 4, 8, 16 CPU hints), the rest yield the CPU (none under loom: every round is a
/// schedule point there).
pub(super) const SPINS: u32 = if crate::sync::MODEL_CHECKED { 0 } else { 10 };
/// Of [`SPINS`], the rounds that busy-wait.
pub(super) const BUSY_SPINS: u32 = 4;

// ---------------------------------------------------------------------------------------
// The lock itself.

#[derive(Debug, Clone, Copy)]
pub(super) struct Hold {
    token: u64,
    since: Instant,
}

pub(super) struct Shared<T> {
    /// LOCKED | USER | PARKED.
    pub(super) state: AtomicU32,
    /// Kernel-half lockers waiting for the lock: while any does, the user half is granted
    /// no new hold.
    pub(super) kernel_waiters: AtomicU32,
    pub(super) id: u64,
    /// The user half's hold, while state has USER. Changed only with this mutex held and
    /// the lock word held; whoever takes a hold out of it is the one who releases the lock.
    pub(super) hold: Mutex<Option<Hold>>,
    /// What the user half may do with it.
    pub(super) access: UserAccess,
    pub(super) value: ValueCell<T>,
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
    pub(super) fn try_acquire(&self) -> bool {
        self.state
            .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[inline]
    pub(super) fn release(&self) {
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
    pub(super) fn acquire_slow(&self) {
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
                crate::sync::thread::yield_now();
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
                        crate::sync::spin_hint();
                    }
                } else {
                    crate::sync::thread::yield_now();
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

    pub(super) fn user_held(&self) -> bool {
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
pub(super) trait ErasedLock: Send + Sync + 'static {
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
