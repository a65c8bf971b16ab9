//! What can go wrong, and the token that names a user-half hold.

use super::*;

/// Why a combolock operation requested by (or on behalf of) the user half failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
        error: CallError,
    },
}

impl ComboLockError {
    pub(super) fn code(&self) -> u8 {
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

    pub(super) fn from_code(code: u8, id: u64, offset: usize) -> Result<Self, MarshalError> {
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
