//! [`WireLayout`]: the proof that a type's wire encoding is its memory image.

/// Whether a type crosses the wire as its raw memory bytes.
///
/// The default, [`WireLayout::ENCODED`], means "field by field". [`WireLayout::memcpy`]
/// lets sequences of the type cross as a single copy; it can only be made in `unsafe`
/// code, because claiming it for the wrong type would let a decoder make invalid values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLayout {
    memcpy: bool,
}

impl WireLayout {
    /// Encoded field by field: always correct.
    pub const ENCODED: WireLayout = WireLayout { memcpy: false };

    /// Encoded as the value's memory bytes.
    ///
    /// # Safety
    /// The type must have no padding bytes, every bit pattern of its size must be a valid
    /// value, and its [`Marshal`](super::Marshal) encoding must be exactly its memory bytes
    /// on this host (little-endian integers, in field order).
    pub const unsafe fn memcpy() -> WireLayout {
        WireLayout { memcpy: true }
    }

    /// True when values cross as their memory bytes.
    pub const fn is_memcpy(self) -> bool {
        self.memcpy
    }
}

use super::{Decoder, Encoder, Marshal, MarshalError};

/// Encodes the elements of `items` (no length prefix): one copy when `T`'s layout allows.
pub(crate) fn encode_elements<T: Marshal>(
    items: &[T],
    enc: &mut Encoder<'_>,
) -> Result<(), MarshalError> {
    if T::LAYOUT.is_memcpy() {
        let byte_len = std::mem::size_of_val(items);
        // SAFETY: `T::LAYOUT` is memcpy only where an unsafe constructor promised that `T`
        // has no padding, so all `byte_len` bytes of the slice are initialised `u8`s, and
        // the slice is valid for reads of its own size.
        let bytes = unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), byte_len) };
        enc.put_bytes(bytes);
        return Ok(());
    }
    for item in items {
        item.encode(enc)?;
    }
    Ok(())
}

/// Decodes `len` elements into a new vector: one copy when `T`'s layout allows. The
/// caller has checked `len` against the bytes left (`Decoder::take_len`).
pub(crate) fn decode_elements<T: Marshal>(
    dec: &mut Decoder<'_>,
    len: usize,
) -> Result<Vec<T>, MarshalError> {
    if T::LAYOUT.is_memcpy() && std::mem::size_of::<T>() > 0 {
        let byte_len = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or(MarshalError::TooLarge { len: usize::MAX })?;
        let bytes = dec.take_bytes(byte_len)?;
        let mut out: Vec<T> = Vec::with_capacity(len);
        // SAFETY: `out` has capacity for `len` elements, i.e. `byte_len` bytes, and does not
        // overlap the input. `T`'s memcpy layout promises every bit pattern is a valid `T`
        // and that the wire bytes are its memory image, so after the copy all `len`
        // elements are initialised and `set_len` is sound.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), byte_len);
            out.set_len(len);
        }
        return Ok(out);
    }
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        out.push(T::decode(dec)?);
    }
    Ok(out)
}
