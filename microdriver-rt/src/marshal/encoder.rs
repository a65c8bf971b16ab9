//! The encoder: appends values to a byte buffer in the wire format.

use super::MarshalError;
use crate::tracker::ObjectTracker;

/// Writes values in the microdriver wire format: little-endian fixed-width integers,
/// LEB128 lengths, and objects that keep their identity within one frame.
pub struct Encoder<'a> {
    buf: &'a mut Vec<u8>,
    tracker: Option<&'a ObjectTracker>,
    /// Address of every object this frame has carried, mapped to its frame-local index, so
    /// that a second pointer to the same object becomes a back-reference (and cycles end).
    /// Keys are this process's own addresses, not input: FxHash, whose empty map costs
    /// nothing to make (every call makes an encoder; the standard hasher seeds itself
    /// from thread-local state each time).
    objects: rustc_hash::FxHashMap<usize, u64>,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `buf`, without an object tracker: tracked pointers keep
    /// their identity within the frame but are not paired across frames.
    ///
    /// Hand-written `Marshal` impls encode their fields in order with it:
    ///
    /// ```
    /// use microdriver_rt::{Decoder, Encoder, Marshal};
    ///
    /// let mut bytes = Vec::new();
    /// let mut enc = Encoder::new(&mut bytes);
    /// 0x0800u16.encode(&mut enc)?;
    /// "eth0".to_string().encode(&mut enc)?;
    ///
    /// let mut dec = Decoder::new(&bytes);
    /// assert_eq!(u16::decode(&mut dec)?, 0x0800);
    /// assert_eq!(String::decode(&mut dec)?, "eth0");
    /// dec.finish()?; // every byte consumed
    /// # Ok::<(), microdriver_rt::MarshalError>(())
    /// ```
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        Self {
            buf,
            tracker: None,
            objects: rustc_hash::FxHashMap::default(),
        }
    }

    /// An encoder that pairs tracked pointers through `tracker` (this side's tracker).
    pub fn with_tracker(buf: &'a mut Vec<u8>, tracker: &'a ObjectTracker) -> Self {
        Self {
            buf,
            tracker: Some(tracker),
            objects: rustc_hash::FxHashMap::default(),
        }
    }

    /// The tracker this encoder pairs pointers through, if any.
    pub fn tracker(&self) -> Option<&'a ObjectTracker> {
        self.tracker
    }

    /// Bytes written so far (including anything the buffer held before).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends raw bytes.
    #[inline]
    pub fn put_bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Appends one byte.
    #[inline]
    pub fn put_u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a little-endian `u16`.
    #[inline]
    pub fn put_u16(&mut self, v: u16) {
        self.put_bytes(&v.to_le_bytes());
    }

    /// Appends a little-endian `u32`.
    #[inline]
    pub fn put_u32(&mut self, v: u32) {
        self.put_bytes(&v.to_le_bytes());
    }

    /// Appends a little-endian `u64`.
    #[inline]
    pub fn put_u64(&mut self, v: u64) {
        self.put_bytes(&v.to_le_bytes());
    }

    /// Appends a little-endian `u128`.
    #[inline]
    pub fn put_u128(&mut self, v: u128) {
        self.put_bytes(&v.to_le_bytes());
    }

    /// Appends an unsigned LEB128 integer (lengths, tags, indices).
    #[inline]
    pub fn put_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// Appends a length prefix.
    #[inline]
    pub fn put_len(&mut self, len: usize) {
        self.put_varint(len as u64);
    }

    /// Looks up an object already carried by this frame.
    pub(crate) fn object_index(&self, addr: usize) -> Option<u64> {
        self.objects.get(&addr).copied()
    }

    /// Records that this frame now carries the object at `addr`; returns its index.
    pub(crate) fn add_object(&mut self, addr: usize) -> u64 {
        let index = self.objects.len() as u64;
        self.objects.insert(addr, index);
        index
    }

    /// Fails with [`MarshalError::TooLarge`] if the buffer outgrew a frame.
    pub(crate) fn check_size(&self) -> Result<(), MarshalError> {
        if self.buf.len() > u32::MAX as usize {
            return Err(MarshalError::TooLarge {
                len: self.buf.len(),
            });
        }
        Ok(())
    }
}
