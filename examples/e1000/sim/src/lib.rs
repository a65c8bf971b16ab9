//! A software model of the Intel 82540EM Gigabit Ethernet controller (and its 82545EM and
//! 82544GC siblings), on a simulated wire with a link partner.
//!
//! The model follows the *PCI/PCI-X Family of Gigabit Ethernet Controllers Software
//! Developer's Manual* (8254x SDM): a driver that works on it should work on QEMU's e1000
//! and on real cards, and vice versa. See `README.md` for what is modelled and what is not.
//!
//! * [`hw`]: the hardware seam shared with the UIO backend ([`Mmio`], [`DmaAllocator`],
//!   [`DmaRegion`], [`InterruptLine`], [`PciConfig`]).
//! * [`regs`]: register offsets, bitfields and descriptor layouts.
//! * [`E1000Sim`]: a running model; [`SimDma`] its DMA memory; [`SimIrq`] its interrupt line.
//! * [`peer`]: the wire and the peer; [`net`]: frame helpers.
//! * [`Fault`]: what the model records when the driver misbehaves.
//!
//! ```
//! use e1000_sim::regs::{self, ctrl, status};
//! use e1000_sim::{E1000Sim, Mmio, SimConfig};
//!
//! let nic = E1000Sim::new(SimConfig::default()).unwrap();
//! assert_eq!(nic.pci_ids(), (0x8086, 0x100E));
//! nic.write32(regs::CTRL, nic.read32(regs::CTRL) | ctrl::SLU);
//! // Auto-negotiation takes `SimConfig::autoneg_time`; then STATUS.LU is set.
//! while nic.read32(regs::STATUS) & status::LU == 0 {
//!     std::thread::sleep(std::time::Duration::from_millis(1));
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod device;
pub mod dma;
pub mod eeprom;
mod error;
mod fault;
pub mod hw;
mod irq;
mod model;
pub mod net;
pub mod pci;
pub mod peer;
pub mod phy;
pub mod regs;

pub use device::{SimBus, Variant};
pub use dma::{BusFault, SimDma, SimDmaRegion};
pub use error::SimError;
pub use fault::{DmaSource, Fault, Ring, FAULT_LOG_LIMIT};
pub use hw::{DmaAllocator, DmaError, DmaRegion, InterruptLine, Mmio, PciConfig};
pub use irq::SimIrq;
pub use model::{E1000Sim, SimConfig};
pub use peer::{Direction, PeerConfig, PeerStats, StreamConfig, WireFrame, WireStats};
