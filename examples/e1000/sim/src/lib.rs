//! A software model of the Intel 82540EM Gigabit Ethernet controller (and its 82545EM and
//! 82544GC siblings), on a simulated wire with a link partner.
//!
//! The model follows the *PCI/PCI-X Family of Gigabit Ethernet Controllers Software
//! Developer's Manual* (8254x SDM): a driver that works on it should work on QEMU's e1000
//! and on real cards, and vice versa. See `README.md` for what is modelled and what is not.
//!
//! * [`hw`]: the hardware seam it implements, `microdriver_hal::seam` ([`Mmio`],
//!   [`DmaAllocator`], [`DmaRegion`], [`InterruptLine`], [`PciConfig`]); [`handles`] and
//!   [`start`] give a driver a running model as a `microdriver_hal::Hw`.
//! * [`regs`]: register offsets, bitfields and descriptor layouts (the `e1000-regs` crate).
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
pub mod eeprom;
mod error;
mod fault;
mod model;
pub mod pci;
pub mod peer;
pub mod phy;

/// The 8254x register map, shared with the driver (`e1000-regs`).
pub use e1000_regs as regs;
/// Frame helpers, shared with the daemon's stack (`e1000-wire`).
pub use e1000_wire as net;
/// The hardware seam this model implements (`microdriver_hal::seam`).
pub use microdriver_hal::seam as hw;

pub use device::{SimBus, Variant};
pub use error::SimError;
pub use fault::{DmaSource, Fault, Ring, FAULT_LOG_LIMIT};
pub use hw::{DmaAllocator, DmaError, DmaRegion, InterruptLine, Mmio, PciConfig};
pub use microdriver_hal::sim::{BusFault, SimDma, SimDmaRegion, SimIrq};
pub use model::{E1000Sim, SimConfig};
pub use peer::{Direction, PeerConfig, PeerStats, StreamConfig, WireFrame, WireStats};

/// A running model's handles, as a driver's kernel half takes them.
pub fn handles(sim: &std::sync::Arc<E1000Sim>) -> hw::Hw {
    hw::Hw {
        mmio: sim.clone(),
        pci: sim.clone(),
        dma: std::sync::Arc::new(sim.dma().clone()),
        irq: sim.irq(),
    }
}

/// Starts a model with `cfg` and returns it with its handles.
pub fn start(cfg: SimConfig) -> Result<(std::sync::Arc<E1000Sim>, hw::Hw), SimError> {
    let sim = std::sync::Arc::new(E1000Sim::new(cfg)?);
    let hw = handles(&sim);
    Ok((sim, hw))
}
