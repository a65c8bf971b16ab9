//! The microdriver runtime.
//!
//! A microdriver is a device driver split into a small **kernel half** (the hot path:
//! interrupts, transmit, receive) and a larger **user half** (everything else) that runs in
//! its own process. This crate carries what both halves share:
//!
//! - [`tracker`]: the object tracker, which pairs each object's kernel-half and user-half
//!   addresses, translates pointers between the two address spaces (including pointers into
//!   the middle of arrays) and mirrors allocations and frees;
//! - [`marshal`]: the [`Marshal`] trait, the wire format, and the impls for std types;
//! - [`sync`]: the one place that switches std and loom types, so the tracker can be
//!   model-checked.
//!
//! Drivers depend on this crate alone: it re-exports the macros (`#[derive(Marshal)]`).

#![warn(missing_docs)]

// Lets the derive's `::microdriver_rt::...` paths resolve inside this crate too.
extern crate self as microdriver_rt;

pub mod component;
pub mod fuzzing;
pub mod lrpc;
pub mod marshal;
#[cfg(not(loom))]
mod split;
pub mod sync;
pub mod tracker;
pub mod transport;

#[cfg(not(loom))]
pub use component::{run_user_half_if_requested, ComponentError, Supervisor, SupervisorConfig};
pub use lrpc::{current_half, Half, UpcallError};
pub use marshal::{Decoder, Encoder, Marshal, MarshalError};
pub use microdriver_macros::{critical, upcall};
#[cfg(not(loom))]
pub use split::{start, SplitDriver};
pub use sync::{ComboGuard, ComboLock, ComboLockError};
pub use tracker::{ObjectTracker, TrackerError};
