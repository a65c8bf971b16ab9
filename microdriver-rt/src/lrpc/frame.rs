//! What travels in a call slot: a marshal frame whose payload starts with the sender's
//! piggybacked free notices, then (for replies) a status, then the values.

use crate::marshal::frame::{FrameHeader, FORMAT_VERSION, HEADER_LEN, MAGIC};
use crate::marshal::{Decoder, Encoder, Marshal, MarshalError};
use crate::tracker::{FreeNotice, ObjectTracker};

/// Free notices carried per message at most (the rest wait for the next one).
pub const FREES_PER_MESSAGE: usize = 64;

/// Reply statuses.
pub mod status {
    /// The handler ran; values follow.
    pub const OK: u8 = 0;
    /// The entry id is unknown to the callee.
    pub const UNKNOWN_ENTRY: u8 = 1;
    /// The handler failed (a message follows).
    pub const FAILED: u8 = 2;
    /// The handler panicked (a message follows).
    pub const PANICKED: u8 = 3;
    /// The handler ran, but its reply frame would not fit the call slot: the frame's size
    /// follows (a `u64`), larger than the slot by the sender's claim (the receiver checks).
    pub const TOO_LARGE: u8 = 4;
}

/// Drains up to [`FREES_PER_MESSAGE`] free notices to piggyback on the next frame.
pub fn drain_frees(tracker: &ObjectTracker) -> Vec<(u64, u64)> {
    tracker
        .drain_frees(FREES_PER_MESSAGE)
        .into_iter()
        .map(|n| (n.addr, n.type_id))
        .collect()
}

/// Starts a frame for `entry` in `buf`: header, then the free notices.
pub fn begin(buf: &mut Vec<u8>, entry: u32, frees: &[(u64, u64)]) {
    buf.clear();
    // The header (its payload length filled in by `end`) and, most often, an empty list
    // of notices, in one copy.
    let [m0, m1] = MAGIC.to_le_bytes();
    let [e0, e1, e2, e3] = entry.to_le_bytes();
    let start: [u8; HEADER_LEN + 1] = [m0, m1, FORMAT_VERSION, 0, 0, 0, 0, 0, e0, e1, e2, e3, 0];
    if frees.is_empty() {
        buf.extend_from_slice(&start);
        return;
    }
    buf.extend_from_slice(&start[..HEADER_LEN]);
    let mut enc = Encoder::new(buf);
    enc.put_len(frees.len());
    for &(addr, type_id) in frees {
        enc.put_u64(addr);
        enc.put_u64(type_id);
    }
}

/// Finishes a frame: writes the payload length.
pub fn end(buf: &mut [u8]) -> Result<(), MarshalError> {
    let payload = buf.len() - HEADER_LEN;
    let payload = u32::try_from(payload).map_err(|_| MarshalError::TooLarge { len: payload })?;
    buf[4..8].copy_from_slice(&payload.to_le_bytes());
    Ok(())
}

/// Parses a received frame: checks the header, applies the piggybacked frees to
/// `tracker` (freeing mirrored copies), and returns the entry id and a decoder positioned
/// after the notices.
#[inline]
pub fn open<'a>(
    frame: &'a [u8],
    tracker: &'a ObjectTracker,
) -> Result<(u32, Decoder<'a>), MarshalError> {
    let (header, payload): (FrameHeader, &[u8]) = FrameHeader::parse(frame)?;
    let mut dec = Decoder::with_tracker(payload, tracker);
    let frees = Vec::<(u64, u64)>::decode(&mut dec)?;
    if !frees.is_empty() {
        let notices: Vec<FreeNotice> = frees
            .into_iter()
            .map(|(addr, type_id)| FreeNotice { addr, type_id })
            .collect();
        for unpaired in tracker.apply_peer_frees(&notices).into_iter().flatten() {
            if let Some(release) = unpaired.release {
                // SAFETY: `release` was registered with this copy by the decoder that
                // allocated it; the tracker returned the entry once (it is now removed),
                // so the copy is freed exactly once.
                unsafe { release(unpaired.local) };
            }
        }
    }
    Ok((header.entry, dec))
}
