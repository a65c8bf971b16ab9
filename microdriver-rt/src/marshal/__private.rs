//! Support for the code `#[derive(Marshal)]` generates. Not a public API.

pub use super::raw_array::{decode_raw_array, encode_raw_array, RawArray, RawArrayPtr};
use super::{Decoder, Encoder, Marshal, MarshalError, Opaque, WireLayout};

/// Encodes an opaque field's identity.
pub fn encode_opaque<T: Opaque>(value: &T, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    enc.put_u64(value.to_identity());
    Ok(())
}

/// Decodes an opaque field from its identity.
pub fn decode_opaque<T: Opaque>(dec: &mut Decoder<'_>) -> Result<T, MarshalError> {
    T::from_identity(dec.take_u64()?)
}

/// Encodes the first `len` elements of a `len`-annotated `Vec` or boxed slice.
pub fn encode_prefix<T: Marshal>(
    items: &[T],
    len: usize,
    ty: &'static str,
    field: &'static str,
    enc: &mut Encoder<'_>,
) -> Result<(), MarshalError> {
    let Some(prefix) = items.get(..len) else {
        return Err(MarshalError::LengthMismatch {
            ty,
            field,
            expected: len,
            found: items.len(),
        });
    };
    enc.put_len(len);
    super::layout::encode_elements(prefix, enc)
}

/// Checks a decoded `len`-annotated field against its length expression.
pub fn check_len(
    found: usize,
    expected: usize,
    ty: &'static str,
    field: &'static str,
) -> Result<(), MarshalError> {
    if found != expected {
        return Err(MarshalError::LengthMismatch {
            ty,
            field,
            expected,
            found,
        });
    }
    Ok(())
}

/// True when a struct whose fields are described by `(layout, size, offset)` in
/// declaration order may cross as its memory bytes: every field may, the fields are laid
/// out back to back in declaration order, there is no trailing padding, and the host is
/// little-endian.
pub const fn struct_is_memcpy(fields: &[(WireLayout, usize, usize)], size_of_self: usize) -> bool {
    if !cfg!(target_endian = "little") {
        return false;
    }
    let mut offset = 0;
    let mut i = 0;
    while i < fields.len() {
        let (layout, size, field_offset) = fields[i];
        if !layout.is_memcpy() || field_offset != offset {
            return false;
        }
        offset += size;
        i += 1;
    }
    offset == size_of_self
}

/// A const-evaluable saturating sum.
pub const fn sum_min(sizes: &[usize]) -> usize {
    let mut total: usize = 0;
    let mut i = 0;
    while i < sizes.len() {
        total = total.saturating_add(sizes[i]);
        i += 1;
    }
    total
}

/// The error the placeholder impl returns when `#[derive(Marshal)]` reported a compile
/// error (that impl exists only so the rest of the crate type-checks).
pub fn derive_failed() -> MarshalError {
    MarshalError::BadHeader {
        reason: "this type's #[derive(Marshal)] failed to compile".to_string(),
    }
}
