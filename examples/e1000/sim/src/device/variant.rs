//! The 8254x parts the model impersonates and the host bus it sampled at reset.

use super::*;

/// The 8254x parts the model can impersonate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// 82540EM, PCI 8086:100E (QEMU's default e1000).
    #[default]
    I82540EM,
    /// 82545EM copper, PCI 8086:100F.
    I82545EM,
    /// 82544GC copper, PCI 8086:100C.
    I82544GC,
}

impl Variant {
    /// PCI vendor ID.
    pub fn vendor_id(self) -> u16 {
        0x8086
    }
    /// PCI device ID.
    pub fn device_id(self) -> u16 {
        match self {
            Variant::I82540EM => 0x100E,
            Variant::I82545EM => 0x100F,
            Variant::I82544GC => 0x100C,
        }
    }
    /// The internal PHY's identifier (PHYID1 << 16 | PHYID2): Marvell 88E1011 on the
    /// 82540EM/82545EM, 88E1000 on the 82544GC.
    pub fn phy_id(self) -> u32 {
        match self {
            Variant::I82540EM | Variant::I82545EM => 0x0141_0C20,
            Variant::I82544GC => 0x0141_0C30,
        }
    }
    /// Whether the EERD register exists (82540 and later; not on 82544).
    pub fn has_eerd(self) -> bool {
        !matches!(self, Variant::I82544GC)
    }
    /// Whether software must request EEPROM access (EECD.EE_REQ/EE_GNT) before
    /// bit-banging (82540 and later; not on 82544).
    pub fn eeprom_needs_grant(self) -> bool {
        !matches!(self, Variant::I82544GC)
    }
    /// Whether the part has a PCI-X interface (and a 64-bit one): the 82544GC and 82545EM
    /// do; the 82540EM is a 32-bit conventional PCI part.
    pub fn has_pcix(self) -> bool {
        !matches!(self, Variant::I82540EM)
    }
    /// The bus the model reports when the configuration names none: the 82540EM in a
    /// 33 MHz 32-bit PCI slot (as QEMU's e1000), the PCI-X parts in a 133 MHz 64-bit
    /// PCI-X slot.
    pub fn default_bus(self) -> SimBus {
        if self.has_pcix() {
            SimBus::PciX {
                mhz: 133,
                width: 64,
            }
        } else {
            SimBus::Pci { mhz: 33, width: 32 }
        }
    }
    /// Whether the part can run on `bus` (see [`SimBus::check`]).
    pub fn check_bus(self, bus: SimBus) -> Result<(), String> {
        bus.check()?;
        match bus {
            SimBus::PciX { .. } if !self.has_pcix() => {
                Err(format!("{self:?} has no PCI-X interface"))
            }
            SimBus::Pci { width: 64, .. } | SimBus::PciX { width: 64, .. } if !self.has_pcix() => {
                Err(format!("{self:?} has a 32-bit bus interface"))
            }
            _ => Ok(()),
        }
    }
    /// The interrupt causes the part implements (SDM 13.4 ICR): every cause of
    /// [`icr::ALL`] on the 82540EM/82545EM; the 82544GC has no small-receive-packet
    /// detection (RSRPD, ICR.SRPD) and no transmit descriptor low threshold
    /// (TXDCTL.LWTHRESH, ICR.TXD_LOW), which arrived with the 82540.
    pub fn icr_causes(self) -> u32 {
        match self {
            Variant::I82540EM | Variant::I82545EM => icr::ALL,
            Variant::I82544GC => icr::ALL & !(icr::SRPD | icr::TXD_LOW),
        }
    }
}

/// The host bus as the part sampled it at reset (STATUS bits 15:11, SDM 13.4.2): the mode
/// (PCI or PCI-X, from the PCI-X initialization pattern), the width (REQ64#) and the speed
/// (M66EN for PCI; the PCI-X pattern's frequency range for PCI-X).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimBus {
    /// Conventional PCI at `mhz` (33 or 66), `width` (32 or 64) bits wide.
    Pci {
        /// Bus clock, MHz.
        mhz: u32,
        /// Data path width, bits.
        width: u32,
    },
    /// PCI-X at up to `mhz` (66, 100 or 133), `width` (32 or 64) bits wide.
    PciX {
        /// Top of the bus clock's range, MHz.
        mhz: u32,
        /// Data path width, bits.
        width: u32,
    },
}

impl SimBus {
    /// Whether the values are ones a bus can have.
    pub fn check(self) -> Result<(), String> {
        let (ok_mhz, mhz, width) = match self {
            SimBus::Pci { mhz, width } => (matches!(mhz, 33 | 66), mhz, width),
            SimBus::PciX { mhz, width } => (matches!(mhz, 66 | 100 | 133), mhz, width),
        };
        if !ok_mhz {
            return Err(format!("{self:?}: {mhz} MHz is not a clock of that bus"));
        }
        if !matches!(width, 32 | 64) {
            return Err(format!("{self:?}: the bus is 32 or 64 bits wide"));
        }
        Ok(())
    }

    /// The STATUS bits that report this bus.
    pub fn status_bits(self) -> u32 {
        let (bits, width) = match self {
            SimBus::Pci { mhz, width } => (if mhz == 66 { status::PCI66 } else { 0 }, width),
            SimBus::PciX { mhz, width } => {
                let speed = match mhz {
                    66 => status::PCIX_SPEED_66,
                    100 => status::PCIX_SPEED_100,
                    _ => status::PCIX_SPEED_133,
                };
                (status::PCIX_MODE | speed, width)
            }
        };
        bits | if width == 64 { status::BUS64 } else { 0 }
    }
}
