//! Backends: where a device's [`Hw`](crate::hw::Hw) handles come from.
//!
//! * [`sim`]: the software model of the 8254x (`e1000-sim`), for tests, the demo and
//!   benchmarks.
//!
//! The UIO backend (a real or QEMU-emulated PCI function bound to `uio_pci_generic`) is the
//! `e1000-uio` crate: it needs `unsafe` (mmap, volatile MMIO) and this crate forbids it.
//! `e1000d` assembles a [`Hw`](crate::hw::Hw) from it the same way [`sim::hw`] does.

pub mod sim;
