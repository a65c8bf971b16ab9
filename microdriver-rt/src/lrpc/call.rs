//! The caller's half of a call: building the request and reading the reply.

use super::frame::{self, status};
use super::{CallError, Half};
use crate::marshal::{Decoder, Encoder, Marshal, MarshalError};
use crate::tracker::ObjectTracker;

/// Builds a request frame for `entry` into `buf`. True if the frame carries nothing (no
/// free notices, no argument bytes): the call can then travel without it
/// ([`super::slot::SMALL`]).
pub(crate) fn request(
    buf: &mut Vec<u8>,
    entry: u32,
    tracker: &ObjectTracker,
    args: impl FnOnce(&mut Encoder<'_>) -> Result<(), MarshalError>,
) -> Result<bool, MarshalError> {
    let frees = frame::drain_frees(tracker);
    frame::begin(buf, entry, &frees);
    let bare = buf.len();
    {
        let mut enc = Encoder::with_tracker(buf, tracker);
        args(&mut enc)?;
    }
    frame::end(buf)?;
    Ok(frees.is_empty() && buf.len() == bare)
}

/// Reads a reply that came without a frame ([`super::slot::SMALL`]): the handler returned
/// nothing, successfully. `values` must then expect nothing: a call whose reply has values
/// gets the decoding error (the peer claimed a unit reply to it).
pub(crate) fn unit_reply<R>(
    tracker: &ObjectTracker,
    values: impl FnOnce(&mut Decoder<'_>) -> Result<R, MarshalError>,
) -> Result<R, CallError> {
    let mut dec = Decoder::with_tracker(&[], tracker);
    let value = values(&mut dec)?;
    dec.finish()?;
    Ok(value)
}

/// Reads a reply frame for `entry`: applies its frees, checks its status, and decodes the
/// values with `values` (all or nothing). `capacity` is the call slot's size as this side
/// fixed it: a callee's "too large" claim is checked against it.
pub(crate) fn reply<R>(
    frame_bytes: &[u8],
    entry: u32,
    entry_name: &str,
    tracker: &ObjectTracker,
    peer: Half,
    capacity: usize,
    values: impl FnOnce(&mut Decoder<'_>) -> Result<R, MarshalError>,
) -> Result<R, CallError> {
    let (reply_entry, mut dec) =
        frame::open(frame_bytes, tracker).map_err(|e| CallError::Rejected {
            peer,
            reason: format!("malformed reply: {e}"),
        })?;
    if reply_entry != entry && reply_entry != 0 {
        return Err(CallError::Rejected {
            peer,
            reason: format!("reply for entry {reply_entry:#010x} to a call of {entry:#010x}"),
        });
    }
    let offset = dec.position();
    match dec.take_u8()? {
        status::OK => {
            let value = values(&mut dec)?;
            dec.finish()?;
            Ok(value)
        }
        status::UNKNOWN_ENTRY => Err(CallError::UnknownEntry { id: entry }),
        status::TOO_LARGE => {
            let len = dec.take_u64()?;
            dec.finish()?;
            match usize::try_from(len) {
                Ok(len) if len > capacity => Err(CallError::TooLarge { len, capacity }),
                // A reply that would have fitted is no reason to refuse it.
                _ => Err(CallError::Rejected {
                    peer,
                    reason: format!(
                        "a {len}-byte reply claimed not to fit the {capacity}-byte slot"
                    ),
                }),
            }
        }
        code @ (status::FAILED | status::PANICKED) => {
            let message = String::decode(&mut dec)?;
            let message = if code == status::PANICKED {
                format!("panicked: {message}")
            } else {
                message
            };
            Err(CallError::Handler {
                entry: entry_name.to_string(),
                message,
            })
        }
        tag => Err(CallError::Marshal(MarshalError::BadTag {
            what: "reply status",
            tag: u64::from(tag),
            offset,
        })),
    }
}
