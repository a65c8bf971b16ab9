//! The tracker's error type.

/// Why the object tracker refused an address or an operation.
///
/// Every address that arrives from the other half goes through the tracker; each of these
/// is a rejection, never a panic and never a dereference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerError {
    /// Within 4096 bytes of null: a null pointer plus a field offset, never an object.
    #[error("address {addr:#x} is within {} bytes of null", super::NULL_GUARD)]
    NearNull {
        /// The address.
        addr: usize,
    },
    /// A slab-poison or use-after-free pattern, never an object.
    #[error("address {addr:#x} is a poison value")]
    Poisoned {
        /// The address.
        addr: usize,
    },
    /// No object is registered at or around this address.
    #[error("address {addr:#x} is not inside any registered object")]
    Unregistered {
        /// The address.
        addr: usize,
    },
    /// One past the end of an object (or further inside the gap after it).
    #[error("address {addr:#x} is past the end of the {size}-byte object at {start:#x}")]
    PastEnd {
        /// The address.
        addr: usize,
        /// Start of the nearest object below it.
        start: usize,
        /// That object's size.
        size: usize,
    },
    /// The address belongs to an object that has been freed.
    #[error("address {addr:#x} points into a freed object")]
    Freed {
        /// The address.
        addr: usize,
    },
    /// An object handle whose generation is stale (the slot was freed and reused).
    #[error("object handle #{index} generation {generation} is stale (now {current})")]
    StaleHandle {
        /// Slot index.
        index: u32,
        /// Generation in the handle.
        generation: u32,
        /// Generation of the slot now.
        current: u32,
    },
    /// The object exists but has another type.
    #[error("address {addr:#x} is a `{found}`, not a `{expected}`")]
    WrongType {
        /// The address.
        addr: usize,
        /// The type asked for.
        expected: &'static str,
        /// The object's type.
        found: &'static str,
    },
    /// The address is inside the object but not at an element boundary.
    #[error("address {addr:#x} is {offset} bytes into an object of {elem_size}-byte elements: not an element boundary")]
    Misaligned {
        /// The address.
        addr: usize,
        /// Offset from the object's start.
        offset: usize,
        /// The element size.
        elem_size: usize,
    },
    /// Registering would overlap an object already registered.
    #[error("range {addr:#x}+{size} overlaps the registered object at {existing:#x}")]
    Overlap {
        /// The new range's start.
        addr: usize,
        /// The new range's size.
        size: usize,
        /// The start of the object it overlaps.
        existing: usize,
    },
    /// An object of size zero, or one whose end overflows the address space.
    #[error("object at {addr:#x} has an invalid size ({elem_size} x {count})")]
    BadSize {
        /// The address.
        addr: usize,
        /// Element size.
        elem_size: usize,
        /// Element count.
        count: usize,
    },
    /// A local object has no counterpart on the other side yet.
    #[error("object at {addr:#x} is not paired with the other half")]
    NotPaired {
        /// The local address.
        addr: usize,
    },
    /// The other half named a local object as its counterpart, but that object is already
    /// paired with a different address (a forged or confused pairing).
    #[error(
        "local object {local:#x} is paired with {paired:#x}, but the peer claims {claimed:#x}"
    )]
    PairingMismatch {
        /// The local object.
        local: usize,
        /// Its current counterpart.
        paired: usize,
        /// The address the peer sent.
        claimed: usize,
    },
}
