//! PCI configuration space of the modelled function (PCI Local Bus Specification 3.0,
//! chapter 6; 8254x SDM ch. 4 "PCI Local Bus Interface").
//!
//! What the model does with it: COMMAND.MEMORY gates BAR0 (MMIO to a disabled BAR
//! master-aborts: reads return all ones), COMMAND.BUS_MASTER gates all DMA, and
//! COMMAND.INTX_DISABLE keeps the interrupt line deasserted while STATUS.INTERRUPT still
//! shows the pending interrupt. BARs answer the usual sizing protocol.

use crate::device::Variant;
use crate::regs::pci::*;

/// Size of conventional PCI configuration space.
pub const CONFIG_LEN: usize = 256;
/// BAR0 (memory) size: the 128 KiB register window.
pub const BAR0_SIZE: u32 = 128 * 1024;
/// BAR1 (I/O) size: the IOADDR/IODATA window.
pub const BAR1_SIZE: u32 = 64;

/// A function's configuration space.
#[derive(Debug, Clone)]
pub struct PciConfigSpace {
    bytes: [u8; CONFIG_LEN],
    wmask: [u8; CONFIG_LEN],
}

impl PciConfigSpace {
    /// Power-on configuration space of `variant`. With `enabled`, memory space and bus
    /// mastering start enabled (as after an OS enabled the device); otherwise both are off.
    pub fn new(variant: Variant, subsys_vendor: u16, subsys_id: u16, enabled: bool) -> Self {
        let mut c = Self {
            bytes: [0; CONFIG_LEN],
            wmask: [0; CONFIG_LEN],
        };
        c.put16(VENDOR_ID, variant.vendor_id());
        c.put16(DEVICE_ID, variant.device_id());
        let cmd = if enabled {
            command::MEMORY | command::BUS_MASTER
        } else {
            0
        };
        c.put16(COMMAND, cmd);
        c.put16(STATUS, status::DEVSEL_MEDIUM | status::FAST_B2B);
        // Class: network controller, Ethernet.
        c.bytes[CLASS_CODE as usize + 2] = 0x02;
        c.put32(BAR0, 0xFEBC_0000);
        c.put32(BAR1, 0x0000_C001);
        c.put16(SUBSYSTEM_VENDOR_ID, subsys_vendor);
        c.put16(SUBSYSTEM_ID, subsys_id);
        c.bytes[INTERRUPT_PIN as usize] = 1; // INTA#
        c.bytes[INTERRUPT_LINE as usize] = 11;
        // Writable bits.
        let cmd_mask = command::IO
            | command::MEMORY
            | command::BUS_MASTER
            | command::PARITY
            | command::SERR
            | command::INTX_DISABLE;
        c.mask16(COMMAND, cmd_mask);
        c.mask32(BAR0, !(BAR0_SIZE - 1));
        c.mask32(BAR1, !(BAR1_SIZE - 1));
        c.wmask[CACHE_LINE_SIZE as usize] = 0xFF;
        c.wmask[LATENCY_TIMER as usize] = 0xFF;
        c.wmask[INTERRUPT_LINE as usize] = 0xFF;
        c
    }

    fn put16(&mut self, off: u16, v: u16) {
        let o = usize::from(off);
        self.bytes[o..o + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn put32(&mut self, off: u16, v: u32) {
        let o = usize::from(off);
        self.bytes[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn mask16(&mut self, off: u16, m: u16) {
        let o = usize::from(off);
        self.wmask[o..o + 2].copy_from_slice(&m.to_le_bytes());
    }

    fn mask32(&mut self, off: u16, m: u32) {
        let o = usize::from(off);
        self.wmask[o..o + 4].copy_from_slice(&m.to_le_bytes());
    }

    /// Reads the dword containing `off` (offsets beyond 255 read as zero).
    pub fn read32(&self, off: u16, interrupt_pending: bool) -> u32 {
        let o = usize::from(off & !3);
        if o + 4 > CONFIG_LEN {
            return 0;
        }
        let mut v = u32::from_le_bytes([
            self.bytes[o],
            self.bytes[o + 1],
            self.bytes[o + 2],
            self.bytes[o + 3],
        ]);
        if o == usize::from(COMMAND) && interrupt_pending {
            v |= u32::from(status::INTERRUPT) << 16;
        }
        v
    }

    /// Writes the dword containing `off`; only writable bits change.
    pub fn write32(&mut self, off: u16, v: u32) {
        let o = usize::from(off & !3);
        if o + 4 > CONFIG_LEN {
            return;
        }
        for (i, b) in v.to_le_bytes().into_iter().enumerate() {
            let m = self.wmask[o + i];
            self.bytes[o + i] = (self.bytes[o + i] & !m) | (b & m);
        }
    }

    /// The COMMAND register.
    pub fn command(&self) -> u16 {
        u16::from_le_bytes([self.bytes[4], self.bytes[5]])
    }

    /// Whether BAR0 decodes (COMMAND.MEMORY).
    pub fn memory_enabled(&self) -> bool {
        self.command() & command::MEMORY != 0
    }

    /// Whether the function may master the bus (COMMAND.BUS_MASTER).
    pub fn bus_master(&self) -> bool {
        self.command() & command::BUS_MASTER != 0
    }

    /// Whether INTx is disabled (COMMAND.INTX_DISABLE).
    pub fn intx_disabled(&self) -> bool {
        self.command() & command::INTX_DISABLE != 0
    }
}
