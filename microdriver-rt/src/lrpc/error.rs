//! The call error type.

use std::time::Duration;

use super::Half;
use crate::marshal::MarshalError;

/// Why a call between the halves (an upcall or a downcall) did not complete.
///
/// Drivers convert it into their own error type (an annotated function that returns a
/// value returns `Result<T, E>` with `E: From<CallError>`), and tell a user half that
/// is gone from one that refused:
///
/// ```
/// use std::time::Duration;
/// use microdriver_rt::CallError;
///
/// fn retry_later(e: &CallError) -> bool {
///     matches!(
///         e,
///         CallError::PeerDied { .. } | CallError::Restarting(_) | CallError::TimedOut(_)
///     )
/// }
/// assert!(retry_later(&CallError::Restarting(Duration::from_secs(1))));
/// assert!(!retry_later(&CallError::UnknownEntry { id: 7 }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The other half is dead (or was killed); the call was failed without waiting.
    #[error("the {peer} half died before answering")]
    PeerDied {
        /// The half that was called.
        peer: Half,
    },
    /// No answer within the call's timeout.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// Arguments or results could not be (de)serialised.
    #[error("marshaling failed: {0}")]
    Marshal(#[from] MarshalError),
    /// The other half sent something the protocol does not allow; it was dropped.
    #[error("rejected frame from the {peer} half: {reason}")]
    Rejected {
        /// The half that was called.
        peer: Half,
        /// What was wrong.
        reason: String,
    },
    /// The entry id is not in the callee's table.
    #[error("unknown entry {id:#010x}")]
    UnknownEntry {
        /// The id.
        id: u32,
    },
    /// The handler ran but failed (its message).
    #[error("the handler for `{entry}` failed: {message}")]
    Handler {
        /// The entry's name.
        entry: String,
        /// Why.
        message: String,
    },
    /// Split mode, but no channel to the other half is set up in this process.
    #[error("no channel to the {peer} half: start one with microdriver_rt::component")]
    NotConnected {
        /// The half that was called.
        peer: Half,
    },
    /// Every call slot is busy (or quarantined after timeouts).
    #[error("all {0} call slots are busy")]
    NoSlot(usize),
    /// The request or reply is larger than a call slot: a caller's error (the arguments or
    /// results of this call are too big for the channel as configured), never a hostile
    /// frame.
    #[error("{len}-byte frame exceeds the {capacity}-byte call slot; raise `ComponentConfig::capacity` (bytes per slot) above {len} to carry it")]
    TooLarge {
        /// The frame size.
        len: usize,
        /// The slot capacity.
        capacity: usize,
    },
    /// The driver is degraded: the user half crashed too often and is not restarted until
    /// the supervisor's next attempt (or an operator's revival).
    #[error("the user half is not running (degraded after repeated crashes; it is tried again after a backoff)")]
    Degraded,
    /// The user half is being restarted and was not re-attached (its re-attach hooks had
    /// not all returned) within the call's timeout; the call was not sent.
    #[error("the user half is restarting and was not re-attached within {0:?}; the call was not sent, retry it")]
    Restarting(Duration),
}
