//! The call error type.

use std::time::Duration;

use crate::marshal::MarshalError;

/// Why an upcall or downcall did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcallError {
    /// The other half is dead (or was killed); the call was failed without waiting.
    #[error("the {peer} half died before answering")]
    PeerDied {
        /// "user" or "kernel".
        peer: &'static str,
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
        /// "user" or "kernel".
        peer: &'static str,
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
        /// "user" or "kernel".
        peer: &'static str,
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
