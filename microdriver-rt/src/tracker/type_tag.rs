//! [`TypeTag`]: a type's identity, the same in both halves of one build.

/// A type's identity: a 64-bit hash of its name, stable across processes built from the
/// same source (both halves run the same executable), plus the name for messages.
#[derive(Debug, Clone, Copy)]
pub struct TypeTag {
    id: u64,
    name: &'static str,
}

impl TypeTag {
    /// The tag of `T`.
    pub fn of<T: ?Sized>() -> TypeTag {
        let name = std::any::type_name::<T>();
        TypeTag {
            id: fnv1a(name.as_bytes()),
            name,
        }
    }

    /// The 64-bit identity that crosses the wire.
    pub fn id(self) -> u64 {
        self.id
    }

    /// The type's name.
    pub fn name(self) -> &'static str {
        self.name
    }
}

impl PartialEq for TypeTag {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for TypeTag {}

/// FNV-1a, 64-bit: small, deterministic, and good enough to tell type names apart.
pub(crate) const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}
