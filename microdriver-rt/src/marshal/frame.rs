//! Frames: the unit that crosses a transport. A 12-byte header, then the payload.
//!
//! ```text
//! offset 0  u16  magic  0x444D ("MD")
//! offset 2  u8   format version (FORMAT_VERSION)
//! offset 3  u8   flags (reserved, 0)
//! offset 4  u32  payload length
//! offset 8  u32  entry id / message kind (the caller's; 0 when unused)
//! offset 12      payload
//! ```

use super::{Decoder, Encoder, Marshal, MarshalError};
use crate::tracker::ObjectTracker;

/// The magic number every frame starts with.
pub const MAGIC: u16 = 0x444D;
/// The wire-format version this build speaks. Peers that disagree refuse each other.
pub const FORMAT_VERSION: u8 = 1;
/// Size of the frame header.
pub const HEADER_LEN: usize = 12;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Flags (reserved).
    pub flags: u8,
    /// Payload length in bytes.
    pub payload_len: u32,
    /// The caller's entry id or message kind.
    pub entry: u32,
}

impl FrameHeader {
    /// Parses and checks a header; the payload must be exactly as long as it says.
    pub fn parse(frame: &[u8]) -> Result<(FrameHeader, &[u8]), MarshalError> {
        let bad = |reason: String| MarshalError::BadHeader { reason };
        if frame.len() < HEADER_LEN {
            return Err(bad(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte header",
                frame.len()
            )));
        }
        let magic = u16::from_le_bytes([frame[0], frame[1]]);
        if magic != MAGIC {
            return Err(bad(format!("magic {magic:#06x}, expected {MAGIC:#06x}")));
        }
        if frame[2] != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {}, this build speaks {FORMAT_VERSION}",
                frame[2]
            )));
        }
        let payload_len = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let entry = u32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]);
        let payload = &frame[HEADER_LEN..];
        if payload.len() as u64 != u64::from(payload_len) {
            return Err(bad(format!(
                "header says {payload_len} payload bytes, frame carries {}",
                payload.len()
            )));
        }
        Ok((
            FrameHeader {
                flags: frame[3],
                payload_len,
                entry,
            },
            payload,
        ))
    }
}

/// Encodes `value` as a complete frame for `entry`, pairing tracked pointers through
/// `tracker` when one is given.
pub fn encode_frame<T: Marshal>(
    value: &T,
    entry: u32,
    tracker: Option<&ObjectTracker>,
) -> Result<Vec<u8>, MarshalError> {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(&MAGIC.to_le_bytes());
    buf.push(FORMAT_VERSION);
    buf.push(0);
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&entry.to_le_bytes());
    {
        let mut enc = match tracker {
            Some(t) => Encoder::with_tracker(&mut buf, t),
            None => Encoder::new(&mut buf),
        };
        value.encode(&mut enc)?;
        enc.check_size()?;
    }
    let payload_len = (buf.len() - HEADER_LEN) as u32;
    buf[4..8].copy_from_slice(&payload_len.to_le_bytes());
    Ok(buf)
}

/// Decodes a complete frame; returns its header and value. All or nothing: on error no
/// tracked object is changed and no pairing is made.
pub fn decode_frame<T: Marshal>(
    frame: &[u8],
    tracker: Option<&ObjectTracker>,
) -> Result<(FrameHeader, T), MarshalError> {
    let (header, payload) = FrameHeader::parse(frame)?;
    let mut dec = match tracker {
        Some(t) => Decoder::with_tracker(payload, t),
        None => Decoder::new(payload),
    };
    let value = T::decode(&mut dec)?;
    dec.finish()?;
    Ok((header, value))
}
