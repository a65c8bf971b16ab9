//! Backends: where a device's [`Hw`](crate::hw::Hw) handles come from.
//!
//! * [`sim`]: the software model of the 8254x (`e1000-sim`), for tests, the demo and
//!   benchmarks.
//! * `uio` (later): a real or QEMU-emulated PCI function bound to `uio_pci_generic`.

pub mod sim;
