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
//! Drivers depend on this crate alone: it re-exports the macros (`#[derive(Marshal)]`,
//! `#[critical]`, `#[upcall]`), and what an author uses sits at the crate root: [`start`]
//! and its [`SplitDriver`] guard, [`run_user_half_if_requested`], [`ComboLock`],
//! [`Marshal`], [`CallError`], [`current_half`]. The guide (`docs/guide/` in the
//! repository) builds a complete driver, `examples/hello-split`, with them.
//!
//! # Example
//!
//! A driver in miniature: a hot path that stays in the kernel half, a configuration call
//! that runs in the user half, and state both change behind a [`ComboLock`]. The same code
//! runs monolithic and split:
//!
//! ```
//! use microdriver_rt::{critical, upcall, ComboLock, ComboLockError, Marshal, CallError};
//!
//! #[derive(Debug, Marshal)]
//! struct Nic {
//!     mtu: ComboLock<u32>,
//! }
//!
//! #[derive(Debug, PartialEq, Marshal)]
//! struct Error(String);
//! impl From<CallError> for Error {
//!     fn from(e: CallError) -> Self { Error(e.to_string()) }
//! }
//! impl From<ComboLockError> for Error {
//!     fn from(e: ComboLockError) -> Self { Error(e.to_string()) }
//! }
//!
//! /// The hot path: never waits for the user half.
//! #[critical]
//! fn transmit(nic: &Nic, frame: &[u8]) -> Result<(), Error> {
//!     let mtu = *nic.mtu.lock()?;
//!     if frame.len() > mtu as usize {
//!         return Err(Error(format!("{} bytes exceed the MTU {mtu}", frame.len())));
//!     }
//!     Ok(())
//! }
//!
//! /// Configuration: runs in the user half, which holds the lock on the kernel's copy.
//! #[upcall]
//! fn set_mtu(nic: &Nic, mtu: u32) -> Result<(), Error> {
//!     if !(68..=9000).contains(&mtu) {
//!         return Err(Error(format!("MTU {mtu} is out of range")));
//!     }
//!     *nic.mtu.lock()? = mtu;
//!     Ok(())
//! }
//!
//! fn main() {
//!     microdriver_rt::run_user_half_if_requested();
//!     let nic = Nic { mtu: ComboLock::new(1500) };
//!     for split in [false, true] {
//!         let driver = split.then(|| microdriver_rt::start(Default::default()).expect("start"));
//!         assert_eq!(transmit(&nic, &[0; 2000]).is_err(), true);
//!         set_mtu(&nic, 9000).expect("set_mtu");
//!         assert_eq!(transmit(&nic, &[0; 2000]), Ok(()));
//!         assert!(set_mtu(&nic, 10).is_err());
//!         set_mtu(&nic, 1500).expect("set_mtu");
//!         drop(driver);
//!     }
//! }
//! ```

#![warn(missing_docs)]

// Lets the derive's `::microdriver_rt::...` paths resolve inside this crate too.
extern crate self as microdriver_rt;

pub mod sync;

pub mod component;
mod fuzzing;
pub mod lrpc;
pub mod marshal;
pub mod tracker;
mod transport;

/// **Not API.** The one door to the runtime's internals, for its own tests, benches, loom
/// models (`loom-tests/`) and fuzz targets (`fuzz/`): the call-slot protocol, the frame
/// codecs, the transports and the fuzzing hooks. Nothing here is covered by semver; driver
/// code uses the crate root and the documented modules.
#[doc(hidden)]
pub mod __internal {
    /// The call-slot protocol.
    pub mod slot {
        pub use crate::lrpc::slot::*;
    }
    /// The LRPC frame: piggybacked frees, status, values.
    pub mod lrpc_frame {
        pub use crate::lrpc::frame::*;
    }
    /// The marshal frame header.
    pub mod marshal_frame {
        pub use crate::marshal::frame::*;
    }
    /// The transports the slot protocol runs on.
    pub mod transport {
        pub use crate::transport::*;
        /// A heap area (and loom's, under `cfg(loom)`).
        pub mod local {
            pub use crate::transport::local::*;
        }
        /// A transport that adds latency per crossing.
        pub mod delay {
            pub use crate::transport::delay::*;
        }
        crate::sync::outside_loom! {
            /// A memfd area two processes map.
            pub mod shm {
                pub use crate::transport::shm::*;
            }
        }
    }
    /// The kernel half's decode path, for the fuzzer.
    pub mod fuzzing {
        pub use crate::fuzzing::*;
    }
    /// The hidden entry points the macros' generated code calls.
    pub use crate::lrpc::__private;
}

sync::outside_loom! {
    mod split;
    pub use component::{run_user_half_if_requested, ComponentError, Supervisor, SupervisorConfig};
    pub use split::{start, SplitDriver};
}
pub use lrpc::{current_half, CallError, Half};
pub use marshal::{Decoder, Encoder, Marshal, MarshalError};
pub use microdriver_macros::{critical, upcall};
pub use sync::{ComboGuard, ComboLock, ComboLockError};
pub use tracker::{ObjectTracker, TrackerError};
