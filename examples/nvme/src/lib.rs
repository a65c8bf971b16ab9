//! The nvme microdriver: an NVMe controller driver split into a small kernel half and a
//! restartable user half.
//!
//! # Layout
//! * the hardware seam: [`hw`] (`microdriver-hal`'s traits; the controller model
//!   `nvme-sim` and the HAL's UIO and VFIO backends implement them) and [`PageBuf`],
//!   DMA memory a page at a time, as PRPs address it;
//! * the register map and entry layouts: [`regs`] (the shared `nvme-regs` crate);
//! * the **kernel half** (`#[critical]`): [`kernel`] (the device object, the admin queue
//!   it owns, and the checked services the user half calls), [`hot`] (I/O submission
//!   and completion, PRPs), [`queue`] (ring arithmetic, the phase tag);
//! * the register policy every user-half access passes: [`policy`];
//! * the **user half** (`#[upcall]`): [`ctrl`] (bring-up, recovery, shutdown),
//!   [`events`] (command timeouts: Abort, then reset; asynchronous events) and
//!   [`manage`] (identify, logs, features, format), with [`identify`]'s parsers;
//! * [`host`]: the kernel half's host (interrupt thread, service thread, block I/O API).
//!
//! The user half never writes a doorbell or a queue base: it names admin commands
//! ([`command::AdminCmd`], encoded by the user half) and the kernel half checks them and
//! completes them with memory it allocated.
//!
//! [`PageBuf`]: hw::PageBuf

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod command;
pub mod ctrl;
pub mod error;
pub mod events;
pub mod host;
pub mod hot;
pub mod hw;
pub mod identify;
pub mod kernel;
pub mod manage;
pub mod policy;
pub mod queue;

/// The register map and entry layouts (the `nvme-regs` crate).
pub use nvme_regs as regs;

pub use error::NvmeError;
pub use host::BlockDev;
pub use hot::io::{IoOp, IoStats};
pub use kernel::DevId;
