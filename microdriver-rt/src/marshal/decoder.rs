//! The decoder: reads values back, checking every length, tag and pointer.

use super::{Marshal, MarshalError, MAX_DEPTH};
use crate::tracker::ObjectTracker;

/// Largest element count accepted for zero-sized elements, which occupy no wire bytes and
/// so cannot be bounded by the frame's size.
const MAX_ZERO_SIZED_ELEMENTS: u64 = 1 << 20;

/// An object that a frame carried, as the decoder saw it.
pub(crate) struct FrameObject {
    /// The receiver-side address of the object.
    pub(crate) addr: usize,
    /// The object's type name (for type checks on back-references).
    pub(crate) type_name: &'static str,
}

/// Work a decode leaves pending until the whole frame has been checked: frames are applied
/// all or nothing, so a frame that fails half-way changes nothing the receiver holds.
pub(crate) trait PendingAction {
    /// The frame decoded completely: make the change visible.
    fn commit(self: Box<Self>, tracker: Option<&ObjectTracker>);
    /// The frame failed: undo (free what was allocated).
    fn rollback(self: Box<Self>);
}

/// Reads values in the microdriver wire format from a byte slice.
///
/// A `Decoder` never panics on malformed input and never allocates more than the input
/// could describe: a length prefix is checked against the bytes left before anything is
/// reserved. Objects reached through tracked pointers are applied only by
/// [`Decoder::finish`]; dropping a decoder without finishing rolls them back.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: u32,
    tracker: Option<&'a ObjectTracker>,
    pub(crate) objects: Vec<FrameObject>,
    pending: Vec<Box<dyn PendingAction + 'a>>,
    /// Sender addresses of the objects this frame carried whole. Boxed: most frames carry
    /// no object, and a decoder is moved on every call (a smaller one moves in registers).
    #[allow(clippy::box_collection)]
    pub(crate) senders: Option<Box<std::collections::HashSet<u64>>>,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf` without an object tracker.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            depth: 0,
            tracker: None,
            objects: Vec::new(),
            pending: Vec::new(),
            senders: None,
        }
    }

    /// A decoder that translates tracked pointers through `tracker` (this side's tracker).
    pub fn with_tracker(buf: &'a [u8], tracker: &'a ObjectTracker) -> Self {
        let mut dec = Self::new(buf);
        dec.tracker = Some(tracker);
        dec
    }

    /// The tracker pointers are translated through, if any.
    pub fn tracker(&self) -> Option<&'a ObjectTracker> {
        self.tracker
    }

    /// Current offset in the input.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads `n` raw bytes.
    #[inline]
    pub fn take_bytes(&mut self, n: usize) -> Result<&'a [u8], MarshalError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(MarshalError::Truncated {
                offset: self.pos,
                needed: n,
                remaining,
            });
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    #[inline]
    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], MarshalError> {
        let bytes = self.take_bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads one byte.
    #[inline]
    pub fn take_u8(&mut self) -> Result<u8, MarshalError> {
        Ok(self.take_array::<1>()?[0])
    }

    /// Reads a little-endian `u16`.
    #[inline]
    pub fn take_u16(&mut self) -> Result<u16, MarshalError> {
        Ok(u16::from_le_bytes(self.take_array()?))
    }

    /// Reads a little-endian `u32`.
    #[inline]
    pub fn take_u32(&mut self) -> Result<u32, MarshalError> {
        Ok(u32::from_le_bytes(self.take_array()?))
    }

    /// Reads a little-endian `u64`.
    #[inline]
    pub fn take_u64(&mut self) -> Result<u64, MarshalError> {
        Ok(u64::from_le_bytes(self.take_array()?))
    }

    /// Reads a little-endian `u128`.
    #[inline]
    pub fn take_u128(&mut self) -> Result<u128, MarshalError> {
        Ok(u128::from_le_bytes(self.take_array()?))
    }

    /// Reads an unsigned LEB128 integer.
    pub fn take_varint(&mut self) -> Result<u64, MarshalError> {
        let offset = self.pos;
        let mut value: u64 = 0;
        for i in 0..10u32 {
            let byte = self.take_u8()?;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && bits > 1 {
                return Err(MarshalError::BadVarint { offset });
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(MarshalError::BadVarint { offset })
    }

    /// Reads a length prefix for `elem_min_size`-byte elements and checks that the rest of
    /// the input could hold that many: the caller may then reserve `len` elements.
    pub fn take_len(&mut self, elem_min_size: usize) -> Result<usize, MarshalError> {
        let offset = self.pos;
        let len = self.take_varint()?;
        let remaining = self.remaining();
        let fits = if elem_min_size == 0 {
            len <= MAX_ZERO_SIZED_ELEMENTS
        } else {
            len.checked_mul(elem_min_size as u64)
                .is_some_and(|bytes| bytes <= remaining as u64)
        };
        if !fits {
            return Err(MarshalError::LengthTooLarge {
                len,
                offset,
                remaining,
            });
        }
        // `len * elem_min_size <= remaining` (or the zero-size cap) bounds it below usize::MAX.
        Ok(len as usize)
    }

    /// Reads a length prefix for elements of type `T`.
    #[inline]
    pub fn take_len_of<T: Marshal>(&mut self) -> Result<usize, MarshalError> {
        self.take_len(T::MIN_WIRE_SIZE)
    }

    /// Enters one level of nesting (a box, a vector, an object); fails past [`MAX_DEPTH`].
    #[inline]
    pub fn enter(&mut self) -> Result<(), MarshalError> {
        if self.depth >= MAX_DEPTH {
            return Err(MarshalError::TooDeep { max: MAX_DEPTH });
        }
        self.depth += 1;
        Ok(())
    }

    /// Leaves a level entered with [`Decoder::enter`].
    #[inline]
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Queues work to apply when the frame is finished.
    pub(crate) fn defer(&mut self, action: Box<dyn PendingAction + 'a>) {
        self.pending.push(action);
    }

    /// Checks that the whole input was consumed, then applies every pending change
    /// (object updates, new pairings) at once.
    ///
    /// Trailing bytes are an error: a peer cannot smuggle data past what the receiver read.
    ///
    /// ```
    /// use microdriver_rt::{Decoder, Marshal};
    ///
    /// let bytes = [7u8, 0xFF];
    /// let mut dec = Decoder::new(&bytes);
    /// assert_eq!(u8::decode(&mut dec)?, 7);
    /// assert!(dec.finish().is_err(), "one byte left over");
    /// # Ok::<(), microdriver_rt::MarshalError>(())
    /// ```
    pub fn finish(mut self) -> Result<(), MarshalError> {
        let extra = self.remaining();
        if extra != 0 {
            return Err(MarshalError::TrailingBytes { extra });
        }
        // Most frames carry no object: nothing pending, nothing to take apart.
        if !self.pending.is_empty() {
            let tracker = self.tracker;
            for action in std::mem::take(&mut self.pending) {
                action.commit(tracker);
            }
        }
        Ok(())
    }
}

impl Drop for Decoder<'_> {
    fn drop(&mut self) {
        // Not finished: the frame failed (or was abandoned); undo in reverse order.
        while let Some(action) = self.pending.pop() {
            action.rollback();
        }
    }
}
