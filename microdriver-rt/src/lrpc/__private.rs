//! Support for the code `#[upcall]` and `#[critical]` generate. Not a public API.

pub use super::entry::{Entry, Handler, Served};
pub use inventory;

use super::route::{with_kernel_endpoint, with_user_endpoint};
use super::{current_half, CallError, Half};
use crate::marshal::{Decoder, Encoder, MarshalError};

/// How a stub should run its function.
pub enum Route {
    /// Call the body directly.
    Direct,
    /// Cross to the other half.
    Cross,
}

/// Where an `#[upcall]` function runs from the calling thread.
#[inline]
pub fn upcall_route() -> Route {
    match current_half() {
        Half::Kernel => Route::Cross,
        Half::User | Half::Monolithic => Route::Direct,
    }
}

/// Where a `#[critical]` function runs from the calling thread.
#[inline]
pub fn critical_route() -> Route {
    match current_half() {
        Half::User => Route::Cross,
        Half::Kernel | Half::Monolithic => Route::Direct,
    }
}

/// Makes an upcall through the installed kernel endpoint.
pub fn upcall<S, R>(
    name: &'static str,
    state: &mut S,
    args: impl FnOnce(&S, &mut Encoder<'_>) -> Result<(), MarshalError>,
    values: impl FnOnce(&mut S, &mut Decoder<'_>) -> Result<R, MarshalError>,
) -> Result<R, CallError> {
    with_kernel_endpoint(|endpoint| {
        let endpoint = endpoint.ok_or(CallError::NotConnected { peer: Half::User })?;
        endpoint.call(Entry::id_of(name), name, state, args, values)
    })
}

/// Makes a downcall through this thread's user endpoint.
pub fn downcall<S, R>(
    name: &'static str,
    state: &mut S,
    args: impl FnOnce(&S, &mut Encoder<'_>) -> Result<(), MarshalError>,
    values: impl FnOnce(&mut S, &mut Decoder<'_>) -> Result<R, MarshalError>,
) -> Result<R, CallError> {
    with_user_endpoint(|endpoint| {
        let endpoint = endpoint.ok_or(CallError::NotConnected { peer: Half::Kernel })?;
        endpoint.call(Entry::id_of(name), name, state, args, values)
    })
}

/// A downcall whose function cannot report errors (a `#[critical]` function without a
/// `Result`): if the kernel half cannot be reached, the user half cannot go on, so it
/// exits (the kernel half restarts it).
///
/// Arguments or results too large for a call slot are the author's error, not a broken
/// channel: that panics with a message naming the entry, the sizes and the setting. Inside
/// an upcall the panic fails that upcall (its caller sees the message); the user half
/// keeps running and the kernel half counts nothing as hostile.
pub fn downcall_or_exit<S, R>(
    name: &'static str,
    state: &mut S,
    args: impl FnOnce(&S, &mut Encoder<'_>) -> Result<(), MarshalError>,
    values: impl FnOnce(&mut S, &mut Decoder<'_>) -> Result<R, MarshalError>,
) -> R {
    match downcall(name, state, args, values) {
        Ok(value) => value,
        Err(e @ CallError::TooLarge { .. }) => {
            tracing::error!("downcall `{name}` cannot cross: {e}");
            panic!("downcall `{name}` cannot cross: {e}");
        }
        Err(e) => {
            tracing::error!("downcall `{name}` failed ({e}); the user half exits");
            std::process::exit(70);
        }
    }
}

/// An upcall whose function cannot report errors: logs and returns `None` on failure.
pub fn upcall_or_log<S, R>(
    name: &'static str,
    state: &mut S,
    args: impl FnOnce(&S, &mut Encoder<'_>) -> Result<(), MarshalError>,
    values: impl FnOnce(&mut S, &mut Decoder<'_>) -> Result<R, MarshalError>,
) -> Option<R> {
    match upcall(name, state, args, values) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!("upcall `{name}` failed: {e}");
            None
        }
    }
}

/// The kernel half's "give up on this call" step, exposed for the loom models.
pub fn abandon_for_model(slot: &super::slot::Slot<'_>) -> bool {
    super::kernel::abandon(slot)
}
