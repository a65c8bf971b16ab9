//! Marshaling: the [`Marshal`] trait, the wire format, and impls for std types.
//!
//! # Wire format
//! Integers are fixed-width little-endian; `usize`/`isize` travel as 64 bits. Lengths,
//! enum variants and object indices are unsigned LEB128. `bool` and `Option` are one tag
//! byte. Sequences (`Vec`, slices, `String`) are a length then their elements. Objects
//! reached through a [`TrackedPtr`] keep their identity: the first time a frame carries an
//! object it is sent whole, with the sender's address; later pointers to it in the same
//! frame are back-references, so shared objects stay shared and cycles end. A whole message
//! is a frame: a header with magic, format version and payload length, then the payload.
//!
//! # Decoding is hostile-input safe
//! Every length is checked against the bytes left before anything is allocated, every tag
//! against the values an encoder writes, nesting is bounded by [`MAX_DEPTH`], and pointers
//! are translated by the [`ObjectTracker`](crate::tracker::ObjectTracker), which rejects
//! anything it did not hand out. Malformed input yields a [`MarshalError`], never a panic.

mod decoder;
mod encoder;
mod error;
pub(crate) mod frame;
mod impls;
mod layout;
mod opaque;
mod raw_array;
mod tracked;

#[doc(hidden)]
pub mod __private;

pub use decoder::Decoder;
pub use encoder::Encoder;
pub use error::MarshalError;
pub use layout::WireLayout;
/// The derive, beside the trait of the same name, so `use microdriver_rt::marshal::Marshal`
/// brings both.
pub use microdriver_macros::Marshal;
pub use opaque::Opaque;
pub use raw_array::{alloc_array, free_array};
pub use tracked::TrackedPtr;

/// How deeply values may nest (boxes in boxes, objects in objects) before a decoder gives up.
pub const MAX_DEPTH: u32 = 128;

/// A value that can cross the split between the kernel half and the user half.
///
/// Derive it with `#[derive(Marshal)]`; the field attributes `#[marshal(len = ...)]`,
/// `#[marshal(skip)]` and `#[marshal(opaque)]` say how fields without a self-evident
/// extent cross.
///
/// # Examples
///
/// A value crosses and comes back equal:
///
/// ```
/// use microdriver_rt::marshal::{from_bytes, to_bytes};
/// use microdriver_rt::Marshal;
///
/// #[derive(Debug, PartialEq, Marshal)]
/// struct Link {
///     speed_mbps: u32,
///     full_duplex: bool,
///     name: String,
/// }
///
/// let link = Link { speed_mbps: 1000, full_duplex: true, name: "eth0".into() };
/// let bytes = to_bytes(&link)?;
/// assert_eq!(from_bytes::<Link>(&bytes)?, link);
/// # Ok::<(), microdriver_rt::MarshalError>(())
/// ```
///
/// `#[marshal(len = ...)]` states how many elements an array field carries; the receiver
/// refuses a value whose array does not match:
///
/// ```
/// use microdriver_rt::marshal::{from_bytes, to_bytes};
/// use microdriver_rt::Marshal;
///
/// #[derive(Debug, PartialEq, Marshal)]
/// struct Table {
///     count: u32,
///     #[marshal(len = count)]
///     entries: Vec<u16>,
/// }
///
/// let table = Table { count: 3, entries: vec![1, 2, 3] };
/// assert_eq!(from_bytes::<Table>(&to_bytes(&table)?)?, table);
/// // An array that disagrees with its stated length does not cross.
/// assert!(to_bytes(&Table { count: 4, entries: vec![1, 2, 3] }).is_err());
/// # Ok::<(), microdriver_rt::MarshalError>(())
/// ```
///
/// `#[marshal(skip)]` keeps a field on its side: the peer sees a default, and when the
/// peer's copy comes back in place ([`Marshal::decode_into`], as for `&mut` arguments) the
/// receiver keeps its own value:
///
/// ```
/// use microdriver_rt::marshal::{to_bytes, Decoder};
/// use microdriver_rt::Marshal;
///
/// #[derive(Debug, Default, PartialEq, Marshal)]
/// struct Ring {
///     tail: u32,
///     #[marshal(skip)]
///     buffers: Vec<Vec<u8>>,
/// }
///
/// let mut kernel_copy = Ring { tail: 1, buffers: vec![vec![0; 2048]; 64] };
/// // The peer changed `tail`; it never saw `buffers`.
/// let from_peer = to_bytes(&Ring { tail: 2, buffers: Vec::new() })?;
/// kernel_copy.decode_into(&mut Decoder::new(&from_peer))?;
/// assert_eq!(kernel_copy.tail, 2);
/// assert_eq!(kernel_copy.buffers.len(), 64, "the kernel half's buffers are kept");
/// # Ok::<(), microdriver_rt::MarshalError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross the split: it does not implement `Marshal`",
    label = "this type does not implement `Marshal`",
    note = "derive it with `#[derive(Marshal)]`, or mark the field `#[marshal(skip)]` (never crosses) or `#[marshal(opaque)]` (crosses as an identity only)"
)]
pub trait Marshal: Sized {
    /// The fewest bytes any value of this type takes on the wire. Decoders use it to refuse
    /// length prefixes that the rest of a frame could not possibly hold.
    const MIN_WIRE_SIZE: usize;

    /// Whether a value's wire encoding is exactly its memory bytes, so slices of it cross
    /// as one copy. Only code that can prove it (an `unsafe` constructor) may say yes.
    const LAYOUT: WireLayout = WireLayout::ENCODED;

    /// Appends this value to the encoder.
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError>;

    /// Reads a value.
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError>;

    /// Reads a value into an existing one (how `&mut` arguments and combolock contents come
    /// back). Either the whole value is replaced or, on error, nothing is. What never
    /// crossed stays the receiver's, at any depth: fields marked `#[marshal(skip)]` (also
    /// inside fields, `Vec` elements, boxes and options), and the identities
    /// [`check_update`](Marshal::check_update) guards, such as which lock a
    /// [`ComboLock`](crate::sync::ComboLock) field names.
    ///
    /// The default decodes a fresh value, checks it with `check_update`, moves the kept
    /// parts over with [`keep_local`](Marshal::keep_local) and replaces `self`.
    fn decode_into(&mut self, dec: &mut Decoder<'_>) -> Result<(), MarshalError> {
        let mut new = Self::decode(dec)?;
        self.check_update(&new)?;
        new.keep_local(self);
        *self = new;
        Ok(())
    }

    /// Checks that `new`, decoded from the peer, may replace `self` in place: refuses an
    /// update that would change what the peer may not change (a lock field re-pointed at
    /// another lock). Reads only; the derive recurses into fields, the std containers into
    /// elements they share with `new`. The default accepts everything.
    fn check_update(&self, new: &Self) -> Result<(), MarshalError> {
        let _ = new;
        Ok(())
    }

    /// Moves into `self`, a value freshly decoded to replace `old`, what never crosses
    /// (skipped fields) from `old`. Called only after [`check_update`](Marshal::check_update)
    /// accepted the update; cannot fail. The derive swaps skipped fields and recurses into
    /// the others; the default keeps nothing.
    fn keep_local(&mut self, old: &mut Self) {
        let _ = old;
    }
}

/// Encodes `value` into a fresh payload (no frame header, no tracker).
pub fn to_bytes<T: Marshal>(value: &T) -> Result<Vec<u8>, MarshalError> {
    let mut buf = Vec::new();
    let mut enc = Encoder::new(&mut buf);
    value.encode(&mut enc)?;
    enc.check_size()?;
    Ok(buf)
}

/// Decodes a payload produced by [`to_bytes`]; trailing bytes are an error.
pub fn from_bytes<T: Marshal>(bytes: &[u8]) -> Result<T, MarshalError> {
    let mut dec = Decoder::new(bytes);
    let value = T::decode(&mut dec)?;
    dec.finish()?;
    Ok(value)
}

#[cfg(test)]
mod tests;
