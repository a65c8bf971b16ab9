//! The marshaling error type.

use crate::tracker::TrackerError;

/// Why a value could not be encoded or decoded.
///
/// Decoding never panics: every malformed input becomes one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MarshalError {
    /// The input ended before the value did.
    #[error("frame truncated: needed {needed} more bytes at offset {offset}, {remaining} left")]
    Truncated {
        /// Offset in the payload where the read started.
        offset: usize,
        /// Bytes the read needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A length prefix promises more elements than the rest of the frame could hold.
    #[error(
        "length {len} at offset {offset} cannot fit in the {remaining} bytes left in the frame"
    )]
    LengthTooLarge {
        /// The length read from the wire.
        len: u64,
        /// Offset of the length prefix.
        offset: usize,
        /// Bytes left after the prefix.
        remaining: usize,
    },
    /// A variable-length integer ran past 10 bytes or overflowed 64 bits.
    #[error("malformed variable-length integer at offset {offset}")]
    BadVarint {
        /// Offset of the integer.
        offset: usize,
    },
    /// A tag byte (bool, Option, enum variant, pointer kind) had a value no encoder writes.
    #[error("invalid {what} tag {tag} at offset {offset}")]
    BadTag {
        /// What was being decoded (`bool`, `Option`, an enum's name ...).
        what: &'static str,
        /// The tag found.
        tag: u64,
        /// Offset of the tag.
        offset: usize,
    },
    /// A `char` outside the Unicode scalar range, or a `String` that is not UTF-8.
    #[error("invalid text at offset {offset}: {reason}")]
    BadText {
        /// Offset of the value.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// An array of fixed size arrived with another length.
    #[error("array length mismatch: expected {expected}, found {found}")]
    ArrayLength {
        /// The length the type requires.
        expected: usize,
        /// The length on the wire.
        found: u64,
    },
    /// A field annotated `#[marshal(len = ...)]` disagrees with its length expression.
    #[error(
        "field `{field}` of `{ty}` has {found} elements but its `len` expression says {expected}"
    )]
    LengthMismatch {
        /// The type holding the field.
        ty: &'static str,
        /// The field.
        field: &'static str,
        /// What the `len` expression evaluated to.
        expected: usize,
        /// What the field holds (or what arrived).
        found: usize,
    },
    /// Values nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH) (a hostile frame trying to
    /// overflow the stack).
    #[error("values nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: u32,
    },
    /// The frame does not start with the microdriver magic, or its version is unknown.
    #[error("bad frame header: {reason}")]
    BadHeader {
        /// What was wrong.
        reason: String,
    },
    /// Bytes were left over after the value was decoded.
    #[error("{extra} trailing bytes after the value")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A value too large to encode (more than `u32::MAX` bytes in one frame).
    #[error("value too large to encode: {len} bytes")]
    TooLarge {
        /// The size.
        len: usize,
    },
    /// A back-reference named an object this frame has not carried.
    #[error("back-reference to object #{index}, but the frame has carried only {count}")]
    BadBackReference {
        /// The index on the wire.
        index: u64,
        /// Objects carried so far.
        count: usize,
    },
    /// A back-reference or tracked pointer named an object of another type.
    #[error("object #{index} has type `{found}`, but a `{expected}` was expected")]
    TypeMismatch {
        /// The frame-local object index.
        index: u64,
        /// The type wanted.
        expected: &'static str,
        /// The type the object has.
        found: &'static str,
    },
    /// A tracked pointer needs an object tracker, but the codec was made without one.
    #[error("a tracked pointer crossed, but this encoder/decoder has no object tracker")]
    NoTracker,
    /// The object tracker refused a pointer.
    #[error("pointer rejected: {0}")]
    Tracker(#[from] TrackerError),
    /// An opaque identity could not be turned back into a value (e.g. a null `NonNull`).
    #[error("invalid opaque identity {id:#x} for `{ty}`")]
    BadOpaque {
        /// The identity on the wire.
        id: u64,
        /// The type wanted.
        ty: &'static str,
    },
}
