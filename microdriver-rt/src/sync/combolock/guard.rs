//! The guard: access to a locked value, released on drop.

use super::*;

// ---------------------------------------------------------------------------------------
// The guard.

/// Access to a locked [`ComboLock`]'s contents; dropping it unlocks (from the user half:
/// carries the contents back).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ComboGuard<'a, T: Marshal> {
    pub(super) inner: GuardInner<'a, T>,
}

pub(super) enum GuardInner<'a, T> {
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
