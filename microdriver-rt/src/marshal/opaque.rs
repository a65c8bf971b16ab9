//! [`Opaque`]: values that cross as an identity only (`#[marshal(opaque)]`).

use std::ptr::NonNull;

use super::MarshalError;

/// A value that crosses the split as a 64-bit identity and is never dereferenced by the
/// receiver: device memory, DMA regions, IRQ handles, user pointers (the follow-up paper's
/// `opaque` and `noderef`).
pub trait Opaque: Sized {
    /// The identity to send.
    fn to_identity(&self) -> u64;
    /// Rebuilds a value from an identity that arrived; refuse identities that cannot be.
    fn from_identity(id: u64) -> Result<Self, MarshalError>;
}

impl<T> Opaque for *mut T {
    fn to_identity(&self) -> u64 {
        *self as usize as u64
    }
    fn from_identity(id: u64) -> Result<Self, MarshalError> {
        let addr = usize::try_from(id).map_err(|_| MarshalError::BadOpaque {
            id,
            ty: std::any::type_name::<Self>(),
        })?;
        Ok(std::ptr::without_provenance_mut(addr))
    }
}

impl<T> Opaque for *const T {
    fn to_identity(&self) -> u64 {
        *self as usize as u64
    }
    fn from_identity(id: u64) -> Result<Self, MarshalError> {
        <*mut T as Opaque>::from_identity(id).map(|p| p as *const T)
    }
}

impl<T> Opaque for NonNull<T> {
    fn to_identity(&self) -> u64 {
        self.as_ptr() as usize as u64
    }
    fn from_identity(id: u64) -> Result<Self, MarshalError> {
        NonNull::new(<*mut T as Opaque>::from_identity(id)?).ok_or(MarshalError::BadOpaque {
            id,
            ty: std::any::type_name::<Self>(),
        })
    }
}

impl<T> Opaque for Option<NonNull<T>> {
    fn to_identity(&self) -> u64 {
        self.map_or(0, |p| p.as_ptr() as usize as u64)
    }
    fn from_identity(id: u64) -> Result<Self, MarshalError> {
        Ok(NonNull::new(<*mut T as Opaque>::from_identity(id)?))
    }
}

macro_rules! opaque_int {
    ($($t:ty),*) => {$(
        impl Opaque for $t {
            fn to_identity(&self) -> u64 {
                *self as u64
            }
            fn from_identity(id: u64) -> Result<Self, MarshalError> {
                <$t>::try_from(id).map_err(|_| MarshalError::BadOpaque {
                    id,
                    ty: stringify!($t),
                })
            }
        }
    )*};
}
opaque_int!(u64, usize, u32);
