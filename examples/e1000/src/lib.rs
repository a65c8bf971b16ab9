//! The e1000 microdriver: a driver for the Intel 8254x family (82540EM, 82545EM, 82544GC),
//! written to be split into a small kernel half and a large user half.
//!
//! # Layout
//! * the hardware seam: [`hw`] (`microdriver-hal`'s traits; the model, `e1000-sim`, and the
//!   HAL's UIO and VFIO backends implement them; this crate depends on none of them);
//! * the register map: [`regs`] (the shared `e1000-regs` map plus driver-side tables);
//! * the **kernel half** (`#[critical]`): [`kernel`] (the k-half's device object, its registry
//!   and the checked register/DMA services the user half calls) and [`hot`] (interrupt
//!   handler, NAPI-style poll, transmit, TX clean, RX clean and refill);
//! * the register policy every user-half register access passes: [`policy`];
//! * the **user half** (`#[upcall]`), one concern per module: [`probe`], [`eeprom`], [`phy`],
//!   [`link`] (the watchdog), [`stats`], [`config`] (open/close and configuration),
//!   [`ethtool`], [`selftest`];
//! * [`netdev`]: the monolithic host that runs both halves in one process (interrupt thread,
//!   service thread, a packet queue standing in for the network stack).
//!
//! The split is written with the runtime's attributes: the kernel-half entry points are
//! `#[critical]` and the user-half entry points (probe, open/close, configuration, the
//! watchdog, ethtool) are `#[upcall]`. With no channel installed (monolithic mode, the
//! tests) every stub is a direct call.
//!
//! The user half never holds a device handle: its [`Adapter`] carries only
//! plain data and a [`DevId`], and every register access, DMA allocation and
//! ring operation is a call into [`kernel`], which checks it. That is what makes the adapter
//! `Marshal`-able without annotations and the split a matter of attributes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adapter;
pub mod bus;
pub mod config;
pub mod eeprom;
pub mod error;
pub mod ethtool;
pub mod features;
pub mod fifo;
pub mod frame;
pub mod hot;
pub mod hw;
pub mod ifs;
pub mod kernel;
pub mod led;
pub mod link;
pub mod netdev;
pub mod netstats;
pub mod params;
pub mod phy;
pub mod pm;
pub mod policy;
pub mod probe;
pub mod programmed;
pub mod regs;
pub mod selftest;
pub mod shared;
pub mod stats;
pub mod wol;

/// The lock around the hot state the critical path mutates and the user half reads: each
/// queue's ring and counters, and the poll state ([`shared`]). A combolock: in the kernel
/// half a fast lock; the user half gets handles whose `snapshot()` is a downcall (the locks
/// are snapshot-only, so it never holds them; see [`shared`] for why).
pub type Shared<T> = microdriver_rt::sync::ComboLock<T>;

pub use adapter::Adapter;
pub use error::DriverError;
pub use frame::{RxFrame, TxPacket};
pub use kernel::DevId;
pub use netdev::Netdev;
