//! The host bus the part runs on, as STATUS reports it (SDM 13.4.2, bits 15:11): the mode
//! (conventional PCI or PCI-X, from the PCI-X initialization pattern the bridge drives at
//! reset), the width (REQ64# at reset) and the clock (M66EN for PCI; the pattern's frequency
//! range for PCI-X). The 82540EM is a 32-bit PCI part, so its PCI-X bits are reserved and
//! ignored; the 82544GC and 82545EM can run either.

use microdriver_rt::Marshal;

use crate::adapter::MacType;
use crate::regs::status;

/// Conventional PCI or PCI-X.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub enum BusType {
    /// Conventional PCI (33 or 66 MHz).
    #[default]
    Pci,
    /// PCI-X (up to 66, 100 or 133 MHz).
    PciX,
}

/// The bus clock, as STATUS reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub enum BusSpeed {
    /// PCI at 33 MHz (STATUS.PCI66 clear).
    #[default]
    Pci33,
    /// PCI at 66 MHz (STATUS.PCI66).
    Pci66,
    /// PCI-X at 50-66 MHz (PCIXSPD = 00).
    PciX66,
    /// PCI-X at 66-100 MHz (PCIXSPD = 01).
    PciX100,
    /// PCI-X at 100-133 MHz (PCIXSPD = 10).
    PciX133,
    /// PCI-X with the reserved speed encoding (PCIXSPD = 11).
    PciXReserved,
}

impl BusSpeed {
    /// The clock range in MHz, `(low, high)` (equal for conventional PCI); `None` for the
    /// reserved encoding.
    pub fn mhz_range(self) -> Option<(u32, u32)> {
        match self {
            Self::Pci33 => Some((33, 33)),
            Self::Pci66 => Some((66, 66)),
            Self::PciX66 => Some((50, 66)),
            Self::PciX100 => Some((66, 100)),
            Self::PciX133 => Some((100, 133)),
            Self::PciXReserved => None,
        }
    }
}

/// The bus a device sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub struct BusInfo {
    /// PCI or PCI-X.
    pub bus_type: BusType,
    /// The clock.
    pub speed: BusSpeed,
    /// Data path width in bits (32 or 64).
    pub width: u32,
}

impl BusInfo {
    /// Decodes STATUS for `mac`. The 82540EM has no PCI-X interface: its PCIX_MODE bit is
    /// reserved, so it is always PCI.
    pub fn decode(status_reg: u32, mac: MacType) -> Self {
        let pcix = mac != MacType::I82540EM && status_reg & status::PCIX_MODE != 0;
        let speed = if pcix {
            match status_reg & status::PCIX_SPEED_MASK {
                status::PCIX_SPEED_66 => BusSpeed::PciX66,
                status::PCIX_SPEED_100 => BusSpeed::PciX100,
                status::PCIX_SPEED_133 => BusSpeed::PciX133,
                _ => BusSpeed::PciXReserved,
            }
        } else if status_reg & status::PCI66 != 0 {
            BusSpeed::Pci66
        } else {
            BusSpeed::Pci33
        };
        Self {
            bus_type: if pcix { BusType::PciX } else { BusType::Pci },
            speed,
            width: if status_reg & status::BUS64 != 0 {
                64
            } else {
                32
            },
        }
    }

    /// How Linux's e1000 prints it at probe, with PCI-X speed ranges:
    /// `PCI:33MHz:32-bit`, `PCI-X:100-133MHz:64-bit`, `PCI-X:reserved-speed:64-bit`.
    pub fn describe(&self) -> String {
        let kind = match self.bus_type {
            BusType::Pci => "PCI",
            BusType::PciX => "PCI-X",
        };
        let clock = match self.speed.mhz_range() {
            Some((lo, hi)) if lo == hi => format!("{hi}MHz"),
            Some((lo, hi)) => format!("{lo}-{hi}MHz"),
            None => "reserved-speed".to_string(),
        };
        format!("{kind}:{clock}:{}-bit", self.width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regs::status::*;

    fn d(s: u32, m: MacType) -> (BusType, BusSpeed, u32) {
        let b = BusInfo::decode(s, m);
        (b.bus_type, b.speed, b.width)
    }

    #[test]
    fn conventional_pci_combinations() {
        for m in [MacType::I82540EM, MacType::I82544GC, MacType::I82545EM] {
            assert_eq!(d(0, m), (BusType::Pci, BusSpeed::Pci33, 32));
            assert_eq!(d(PCI66, m), (BusType::Pci, BusSpeed::Pci66, 32));
            assert_eq!(d(BUS64, m), (BusType::Pci, BusSpeed::Pci33, 64));
            assert_eq!(d(PCI66 | BUS64, m), (BusType::Pci, BusSpeed::Pci66, 64));
        }
    }

    #[test]
    fn pcix_combinations_on_the_pcix_parts() {
        for m in [MacType::I82544GC, MacType::I82545EM] {
            for (bits, speed) in [
                (PCIX_SPEED_66, BusSpeed::PciX66),
                (PCIX_SPEED_100, BusSpeed::PciX100),
                (PCIX_SPEED_133, BusSpeed::PciX133),
                (PCIX_SPEED_MASK, BusSpeed::PciXReserved),
            ] {
                for (w, width) in [(0, 32), (BUS64, 64)] {
                    // PCI66 means nothing in PCI-X mode.
                    for pci66 in [0, PCI66] {
                        assert_eq!(
                            d(PCIX_MODE | bits | w | pci66, m),
                            (BusType::PciX, speed, width)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_82540em_is_always_pci() {
        let s = PCIX_MODE | PCIX_SPEED_133 | PCI66;
        assert_eq!(d(s, MacType::I82540EM), (BusType::Pci, BusSpeed::Pci66, 32));
    }

    #[test]
    fn link_bits_do_not_disturb_the_bus() {
        let link = FD | LU | SPEED_1000 | TXOFF;
        assert_eq!(
            d(link | PCIX_MODE | PCIX_SPEED_100 | BUS64, MacType::I82545EM),
            (BusType::PciX, BusSpeed::PciX100, 64)
        );
    }

    #[test]
    fn descriptions() {
        let pci = BusInfo::decode(0, MacType::I82540EM);
        assert_eq!(pci.describe(), "PCI:33MHz:32-bit");
        let pci66 = BusInfo::decode(PCI66 | BUS64, MacType::I82544GC);
        assert_eq!(pci66.describe(), "PCI:66MHz:64-bit");
        let x = BusInfo::decode(PCIX_MODE | PCIX_SPEED_133 | BUS64, MacType::I82545EM);
        assert_eq!(x.describe(), "PCI-X:100-133MHz:64-bit");
        let r = BusInfo::decode(PCIX_MODE | PCIX_SPEED_MASK, MacType::I82545EM);
        assert_eq!(r.describe(), "PCI-X:reserved-speed:32-bit");
    }
}
