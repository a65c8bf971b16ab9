//! Serving one call: decode a request frame, run the entry's handler, build the reply.
//! Shared by both halves (the kernel half serves downcalls, the user half upcalls).

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::entry::{EntryTable, Served};
use super::frame::{self, status};
use crate::marshal::{Decoder, Encoder, Marshal, MarshalError};
use crate::tracker::ObjectTracker;

/// What [`serve`] left in the reply buffer: always a whole frame, which may be
/// [`Reply::Unit`], a success with nothing in it (no values, no free notices) that can
/// travel without the frame ([`super::slot::SMALL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Values, notices or an error status: only the frame says it.
    Frame,
    /// The handler succeeded and returned nothing.
    Unit,
}

/// Serves `request`, writing the reply frame into `reply`. Never panics: a failing or
/// panicking handler becomes an error reply; a malformed request an error reply (and
/// `Err` with the reason, for the rejection counters). A reply larger than `capacity` (the
/// call slot) is replaced by a [`status::TOO_LARGE`] reply naming its size, so the caller
/// gets `CallError::TooLarge` instead of a frame that cannot cross.
pub(crate) fn serve(
    served: Served,
    tracker: &ObjectTracker,
    request: &[u8],
    reply: &mut Vec<u8>,
    capacity: usize,
) -> Result<Reply, String> {
    let frees = frame::drain_frees(tracker);
    let result = match frame::open(request, tracker) {
        Ok((entry_id, dec)) => serve_decoded(served, tracker, entry_id, dec, reply, &frees),
        Err(e) => {
            error_reply(
                reply,
                0,
                &frees,
                status::FAILED,
                &format!("malformed request: {e}"),
            );
            Err(format!("malformed request: {e}"))
        }
    };
    if reply.len() > capacity {
        let len = reply.len();
        let entry = crate::marshal::frame::FrameHeader::parse(request).map_or(0, |(h, _)| h.entry);
        too_large(reply, entry, &frees, len);
    }
    result
}

/// Serves a call of `entry` that came without a frame ([`super::slot::SMALL`]): no
/// arguments, no free notices. The same replies as [`serve`] for the frame that says so.
pub(crate) fn serve_small(
    served: Served,
    tracker: &ObjectTracker,
    entry: u32,
    reply: &mut Vec<u8>,
    capacity: usize,
) -> Result<Reply, String> {
    let frees = frame::drain_frees(tracker);
    let dec = Decoder::with_tracker(&[], tracker);
    let result = serve_decoded(served, tracker, entry, dec, reply, &frees);
    if reply.len() > capacity {
        let len = reply.len();
        too_large(reply, entry, &frees, len);
    }
    result
}

/// Replaces `reply` by a [`status::TOO_LARGE`] one naming its size `len`.
fn too_large(reply: &mut Vec<u8>, entry: u32, frees: &[(u64, u64)], len: usize) {
    frame::begin(reply, entry, frees);
    reply.push(status::TOO_LARGE);
    Encoder::new(reply).put_u64(len as u64);
    let _: Result<(), MarshalError> = frame::end(reply);
}

/// Runs `entry_id`'s handler on the arguments in `dec`.
fn serve_decoded(
    served: Served,
    tracker: &ObjectTracker,
    entry_id: u32,
    dec: Decoder<'_>,
    reply: &mut Vec<u8>,
    frees: &[(u64, u64)],
) -> Result<Reply, String> {
    let Some(entry) = EntryTable::get().lookup(served, entry_id) else {
        error_reply(reply, entry_id, frees, status::UNKNOWN_ENTRY, "");
        return Err(format!("unknown entry {entry_id:#010x}"));
    };
    frame::begin(reply, entry_id, frees);
    reply.push(status::OK);
    let bare = reply.len();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut enc = Encoder::with_tracker(reply, tracker);
        (entry.handler)(dec, &mut enc)
    }));
    match outcome {
        Ok(Ok(())) => match frame::end(reply) {
            Ok(()) if frees.is_empty() && reply.len() == bare => Ok(Reply::Unit),
            Ok(()) => Ok(Reply::Frame),
            Err(e) => {
                error_reply(reply, entry_id, frees, status::FAILED, &e.to_string());
                Ok(Reply::Frame)
            }
        },
        // The arguments did not decode: the request was malformed.
        Ok(Err(e)) => {
            let reason = format!("`{}`: {e}", entry.name);
            error_reply(reply, entry_id, frees, status::FAILED, &reason);
            Err(reason)
        }
        Err(panic) => {
            let message = panic_message(&panic);
            error_reply(reply, entry_id, frees, status::PANICKED, &message);
            Ok(Reply::Frame)
        }
    }
}

fn error_reply(reply: &mut Vec<u8>, entry: u32, frees: &[(u64, u64)], code: u8, message: &str) {
    frame::begin(reply, entry, frees);
    reply.push(code);
    let mut enc = Encoder::new(reply);
    let _ = message.to_string().encode(&mut enc);
    let _: Result<(), MarshalError> = frame::end(reply);
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
