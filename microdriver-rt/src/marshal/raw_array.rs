//! Arrays behind raw pointers (`#[marshal(len = ...)]` on `*mut T`, `*const T` or
//! `Option<NonNull<T>>`), the C-style "pointer plus count" a driver's rings are made of.
//!
//! The contract an author accepts by writing `#[marshal(len = EXPR)]` on a raw pointer: the
//! pointer is null (only when EXPR is 0) or points to EXPR initialised elements allocated
//! with [`alloc_array`], owned by the struct, and not mutated while the struct is encoded.
//! Decoded arrays are allocated the same way; the struct's owner frees them with
//! [`free_array`] (typically in `Drop`).

use std::ptr::NonNull;

use super::{Marshal, MarshalError};

/// Moves `items` to the heap as an array and returns its pointer (null when empty). Free it
/// with [`free_array`] and the same length.
pub fn alloc_array<T>(items: Vec<T>) -> *mut T {
    if items.is_empty() {
        return std::ptr::null_mut();
    }
    Box::into_raw(items.into_boxed_slice()).cast::<T>()
}

/// Frees an array made by [`alloc_array`] (or by decoding), dropping its elements.
///
/// # Safety
/// `ptr` must be null or come from [`alloc_array`] / a decoded raw array with exactly
/// `len` elements, and must not be used again.
pub unsafe fn free_array<T>(ptr: *mut T, len: usize) {
    if ptr.is_null() {
        return;
    }
    let slice = std::ptr::slice_from_raw_parts_mut(ptr, len);
    // SAFETY: the caller guarantees `ptr`/`len` describe a live boxed slice made by
    // `alloc_array` (`Box<[T]>::into_raw`) that nobody uses afterwards.
    drop(unsafe { Box::from_raw(slice) });
}

/// The pointer types a `len`-annotated field may have.
pub trait RawArrayPtr<T>: Copy {
    /// The address (null allowed).
    fn as_const_ptr(self) -> *const T;
    /// Wraps an address made by [`alloc_array`] (null for an empty array).
    fn from_array_ptr(ptr: *mut T) -> Self;
    /// The null pointer.
    fn null() -> Self {
        Self::from_array_ptr(std::ptr::null_mut())
    }
}

impl<T> RawArrayPtr<T> for *mut T {
    fn as_const_ptr(self) -> *const T {
        self
    }
    fn from_array_ptr(ptr: *mut T) -> Self {
        ptr
    }
}

impl<T> RawArrayPtr<T> for *const T {
    fn as_const_ptr(self) -> *const T {
        self
    }
    fn from_array_ptr(ptr: *mut T) -> Self {
        ptr
    }
}

impl<T> RawArrayPtr<T> for Option<NonNull<T>> {
    fn as_const_ptr(self) -> *const T {
        self.map_or(std::ptr::null(), |p| p.as_ptr())
    }
    fn from_array_ptr(ptr: *mut T) -> Self {
        NonNull::new(ptr)
    }
}

/// A decoded array not yet handed to its struct; frees itself if dropped.
pub struct RawArray<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> RawArray<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty (null) array.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hands the array to its owner.
    pub fn into_ptr<P: RawArrayPtr<T>>(self) -> P {
        let ptr = self.ptr;
        std::mem::forget(self);
        P::from_array_ptr(ptr)
    }
}

impl<T> Drop for RawArray<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from `alloc_array` in `decode_raw_array` and ownership
        // was never handed out (`into_ptr` forgets `self`).
        unsafe { free_array(self.ptr, self.len) }
    }
}

/// Encodes `len` elements at `ptr`: a presence tag, then a counted sequence.
///
/// # Safety
/// `ptr` must be null or valid for reads of `len` initialised elements for the duration
/// of the call (the `len` annotation's contract).
pub unsafe fn encode_raw_array<T: Marshal, P: RawArrayPtr<T>>(
    ptr: P,
    len: usize,
    ty: &'static str,
    field: &'static str,
    enc: &mut super::Encoder<'_>,
) -> Result<(), MarshalError> {
    let ptr = ptr.as_const_ptr();
    if ptr.is_null() {
        if len != 0 {
            return Err(MarshalError::LengthMismatch {
                ty,
                field,
                expected: len,
                found: 0,
            });
        }
        enc.put_u8(0);
        return Ok(());
    }
    // SAFETY: non-null, and the caller guarantees `len` readable initialised elements.
    let items = unsafe { std::slice::from_raw_parts(ptr, len) };
    enc.put_u8(1);
    enc.put_len(len);
    super::layout::encode_elements(items, enc)
}

/// Decodes an array written by [`encode_raw_array`].
pub fn decode_raw_array<T: Marshal>(
    dec: &mut super::Decoder<'_>,
) -> Result<RawArray<T>, MarshalError> {
    let offset = dec.position();
    match dec.take_u8()? {
        0 => Ok(RawArray {
            ptr: std::ptr::null_mut(),
            len: 0,
        }),
        1 => {
            dec.enter()?;
            let len = dec.take_len_of::<T>()?;
            let items = super::layout::decode_elements::<T>(dec, len)?;
            dec.leave();
            let len = items.len();
            Ok(RawArray {
                ptr: alloc_array(items),
                len,
            })
        }
        tag => Err(MarshalError::BadTag {
            what: "raw array",
            tag: u64::from(tag),
            offset,
        }),
    }
}
