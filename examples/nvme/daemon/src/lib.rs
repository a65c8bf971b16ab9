//! nvmed, the nvme microdriver's daemon: it takes an NVMe controller (the model, or a PCI
//! function through `microdriver-hal`'s UIO or VFIO backend), runs the driver split (the
//! user half in a sandboxed child) and serves namespace 1 to the host as `/dev/nbdN`
//! through the kernel's NBD driver, which it sets up itself over a socket pair; nvmectl
//! talks to it over a control socket with nvme-cli's command names.
//!
//! Unsafe code: only [`nbd::sys`] (the NBD ioctls).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod daemon;
pub mod faults;
pub mod format;
pub mod nbd;
pub mod protocol;
