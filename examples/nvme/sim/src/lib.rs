//! A small NVMe controller model behind `microdriver-hal`'s seam traits, for the `nvme`
//! driver's tests: one namespace in memory, the admin queue, I/O queues created and
//! deleted by admin commands, PRP lists, INTx, and the faults the tests inject (a
//! controller that never becomes ready, a fatal status, held commands, completions with a
//! bogus command id, queue id or phase).
//!
//! Like the e1000 model it is a passive state machine: everything happens inside a
//! register write (a submission doorbell processes the queue at once, unless commands are
//! held) and the controller reaches memory only through [`SimDma`]'s bus, which faults
//! on anything outside a live region. It implements as much NVMe as the tests need:
//! Identify (controller, namespace, active namespace list), Set/Get Features (the
//! temperature thresholds against a composite temperature the tests set), Get Log Page
//! (SMART, error information with offsets, RAE), Create/Delete I/O SQ/CQ, Format NVM,
//! Abort (of a command the controller lost; a knob makes it never abort, like QEMU's, or
//! lie), Asynchronous Event Request (held until an event: a temperature threshold crossed
//! with the event enabled; a type stays masked until its log page is read with RAE clear,
//! and a reset drops them, as in QEMU), and Read/Write/Flush/Write Zeroes/Dataset
//! Management. Faults also include lost I/O commands and raw event completions.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod commands;
mod controller;
mod prp;

use std::sync::Arc;

use microdriver_hal::seam::Hw;

pub use controller::{NvmeSim, SimCounters};
pub use microdriver_hal::sim::{BusFault, SimDma, SimDmaRegion, SimIrq};

/// The controller's identity and geometry.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Serial number (Identify SN, up to 20 characters).
    pub serial: String,
    /// Model number (up to 40 characters).
    pub model: String,
    /// Firmware revision (up to 8 characters).
    pub firmware: String,
    /// Namespace 1's size in logical blocks.
    pub blocks: u64,
    /// log2 of the logical block size (9: 512 bytes).
    pub lba_shift: u8,
    /// CAP.MQES (0-based).
    pub mqes: u16,
    /// CAP.TO, in 500 ms units.
    pub timeout_units: u8,
    /// CAP.DSTRD (doorbell stride `4 << dstrd`).
    pub dstrd: u8,
    /// MDTS (maximum transfer, `2^mdts` pages; 0 = no limit).
    pub mdts: u8,
    /// I/O queues the controller grants at most (Set Features, Number of Queues).
    pub max_io_queues: u16,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            serial: "SIMNVME0001".into(),
            model: "microdriver NVMe model".into(),
            firmware: "1.0".into(),
            blocks: 8192,
            lba_shift: 9,
            mqes: 1023,
            timeout_units: 2,
            dstrd: 0,
            mdts: 5,
            max_io_queues: 4,
        }
    }
}

/// Starts a controller; returns it (for the test's knobs) and the driver's handles.
pub fn start(cfg: SimConfig) -> (Arc<NvmeSim>, Hw) {
    let sim = Arc::new(NvmeSim::new(cfg));
    let hw = Hw {
        mmio: sim.clone(),
        pci: sim.clone(),
        dma: Arc::new(sim.dma().clone()),
        irq: sim.irq(),
    };
    (sim, hw)
}
