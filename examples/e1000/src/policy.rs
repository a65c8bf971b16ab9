//! The register policy: what the user half may do to the device (issue 6, item 3).
//!
//! The user half has no device access of its own; every register read and write it makes is
//! a downcall that the kernel half checks here before touching BAR0. The rules:
//!
//! * **Offsets**: aligned, inside BAR0 and naming a register of the map in [`crate::regs`];
//!   anything else is refused, never forwarded.
//! * **Kernel-owned registers**: the hot path owns ICR (reading it clears the causes the
//!   interrupt handler needs), IMS/IMC (the poll loop re-enables interrupts with the mask the
//!   kernel half holds; the user half sets it with a separate call) and the ring heads and
//!   tails RDH/RDT/TDH/TDT (written only by the kernel half's ring code). The user half may
//!   read the heads (the watchdog's hang check does) but not write them, nor read ICR.
//! * **DMA base registers** RDBAL/RDBAH/TDBAL/TDBAH: the high half must be the high half of
//!   a ring region the kernel half allocated for this device; the low half must complete the
//!   exact base of such a region. Write the high half first.
//! * **Ring lengths** RDLEN/TDLEN: no longer than the region at the programmed base.
//! * **Enabling DMA**: RCTL.EN and TCTL.EN (which start the device's bus mastering on the
//!   rings) are refused unless the ring's base is an allowed region and its length fits.
//!   A device reset (CTRL.RST) returns the shadow copies to their reset values (zero).
//!
//! The policy keeps a shadow of the ring registers as the accepted writes left them; it is a
//! pure state machine with no device access, so it is tested on its own.

use crate::regs::*;

/// Why the policy refused an access.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The offset is not a multiple of 4.
    #[error("offset {0:#x} is not 32-bit aligned")]
    Unaligned(u32),
    /// The offset names no register of the 8254x map.
    #[error("offset {0:#x} is not a register of the 8254x map")]
    Unmapped(u32),
    /// The register belongs to the kernel half's hot path.
    #[error(
        "{name} ({off:#x}) is owned by the kernel half's hot path; use the kernel call for it"
    )]
    KernelOwned {
        /// Register name.
        name: &'static str,
        /// Offset.
        off: u32,
    },
    /// A DMA base write that is not the base of a region the kernel half allocated.
    #[error("{name} = {value:#x} is not (part of) the bus address of a ring the kernel half allocated; allocate rings with the kernel's ring call")]
    ForgedDmaBase {
        /// Register name.
        name: &'static str,
        /// The 64-bit base the write would produce.
        value: u64,
    },
    /// A ring length longer than the region behind the base.
    #[error(
        "{name} = {len} bytes exceeds the {region_len}-byte ring region at the programmed base"
    )]
    RingTooLong {
        /// Register name.
        name: &'static str,
        /// Requested length in bytes.
        len: u32,
        /// Length of the region.
        region_len: u64,
    },
    /// Enabling a DMA engine whose ring is not an allowed region.
    #[error("{name}.EN refused: the {ring} ring base {base:#x} / length {len} is not a ring the kernel half allocated")]
    DmaEnableRefused {
        /// Register name.
        name: &'static str,
        /// "receive" or "transmit".
        ring: &'static str,
        /// The programmed base.
        base: u64,
        /// The programmed length.
        len: u32,
    },
}

/// Registers and register arrays of the map: `(first offset, one past the last, name)`.
const MAP: &[(u32, u32, &str)] = &[
    (CTRL, CTRL + 4, "CTRL"),
    (STATUS, STATUS + 4, "STATUS"),
    (EECD, EECD + 4, "EECD"),
    (EERD, EERD + 4, "EERD"),
    (CTRL_EXT, CTRL_EXT + 4, "CTRL_EXT"),
    (FLA, FLA + 4, "FLA"),
    (MDIC, MDIC + 4, "MDIC"),
    (FCAL, FCAL + 4, "FCAL"),
    (FCAH, FCAH + 4, "FCAH"),
    (FCT, FCT + 4, "FCT"),
    (VET, VET + 4, "VET"),
    (ICR, ICR + 4, "ICR"),
    (ITR, ITR + 4, "ITR"),
    (ICS, ICS + 4, "ICS"),
    (IMS, IMS + 4, "IMS"),
    (IMC, IMC + 4, "IMC"),
    (RCTL, RCTL + 4, "RCTL"),
    (FCTTV, FCTTV + 4, "FCTTV"),
    (TXCW, TXCW + 4, "TXCW"),
    (RXCW, RXCW + 4, "RXCW"),
    (TCTL, TCTL + 4, "TCTL"),
    (TIPG, TIPG + 4, "TIPG"),
    (AIFS, AIFS + 4, "AIFS"),
    (LEDCTL, LEDCTL + 4, "LEDCTL"),
    (PBA, PBA + 4, "PBA"),
    (FCRTL, FCRTL + 4, "FCRTL"),
    (FCRTH, FCRTH + 4, "FCRTH"),
    (RDFH, RDFH + 4, "RDFH"),
    (RDFT, RDFT + 4, "RDFT"),
    (RDBAL, RDBAL + 4, "RDBAL"),
    (RDBAH, RDBAH + 4, "RDBAH"),
    (RDLEN, RDLEN + 4, "RDLEN"),
    (RDH, RDH + 4, "RDH"),
    (RDT, RDT + 4, "RDT"),
    (RDTR, RDTR + 4, "RDTR"),
    (RXDCTL, RXDCTL + 4, "RXDCTL"),
    (RADV, RADV + 4, "RADV"),
    (RSRPD, RSRPD + 4, "RSRPD"),
    (TXDMAC, TXDMAC + 4, "TXDMAC"),
    (TDFH, TDFH + 4, "TDFH"),
    (TDFT, TDFT + 4, "TDFT"),
    (TDBAL, TDBAL + 4, "TDBAL"),
    (TDBAH, TDBAH + 4, "TDBAH"),
    (TDLEN, TDLEN + 4, "TDLEN"),
    (TDH, TDH + 4, "TDH"),
    (TDT, TDT + 4, "TDT"),
    (TIDV, TIDV + 4, "TIDV"),
    (TXDCTL, TXDCTL + 4, "TXDCTL"),
    (TADV, TADV + 4, "TADV"),
    (TSPMT, TSPMT + 4, "TSPMT"),
    (STATS_BASE, STATS_END, "statistics"),
    (RXCSUM, RXCSUM + 4, "RXCSUM"),
    (MTA, MTA + 4 * MTA_LEN, "MTA"),
    (RAL, RAL + 8 * RA_LEN, "RA"),
    (VFTA, VFTA + 4 * VFTA_LEN, "VFTA"),
    (WUC, WUC + 4, "WUC"),
    (WUFC, WUFC + 4, "WUFC"),
    (WUS, WUS + 4, "WUS"),
    (MANC, MANC + 4, "MANC"),
    (IPAV, IPAV + 4, "IPAV"),
    (IP4AT, IP4AT + 0x20, "IP4AT"),
    (IP6AT, IP6AT + 0x10, "IP6AT"),
    (WUPL, WUPL + 4, "WUPL"),
    (WUPM, WUPM + 0x80, "WUPM"),
    (FFLT, FFLT + 0x20, "FFLT"),
    (FFMT, FFMT + 0x400, "FFMT"),
    (FFVT, FFVT + 0x400, "FFVT"),
];

/// The name of the register at `off`, if the map has one.
pub fn register_name(off: u32) -> Option<&'static str> {
    if off % 4 != 0 {
        return None;
    }
    MAP.iter()
        .find(|(lo, hi, _)| (*lo..*hi).contains(&off))
        .map(|(_, _, n)| *n)
}

/// A ring's DMA registers as the accepted writes left them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RingShadow {
    lo: u32,
    hi: u32,
    len: u32,
}

impl RingShadow {
    fn base(&self) -> u64 {
        u64::from(self.hi) << 32 | u64::from(self.lo)
    }
}

/// The register policy of one device: the ring regions the kernel half allocated and the
/// shadow of the ring registers.
#[derive(Debug, Clone, Default)]
pub struct RegisterPolicy {
    /// Allowed ring regions: (bus address, length in bytes).
    rings: Vec<(u64, u64)>,
    rx: RingShadow,
    tx: RingShadow,
}

impl RegisterPolicy {
    /// A policy that allows no DMA base yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows a descriptor ring region (the kernel half calls this when it allocates one).
    pub fn allow_ring(&mut self, bus: u64, len: u64) {
        if !self.rings.contains(&(bus, len)) {
            self.rings.push((bus, len));
        }
    }

    /// Revokes a ring region (when the kernel half frees it).
    pub fn revoke_ring(&mut self, bus: u64) {
        self.rings.retain(|(b, _)| *b != bus);
    }

    /// The allowed ring regions.
    pub fn allowed_rings(&self) -> &[(u64, u64)] {
        &self.rings
    }

    fn region_at(&self, base: u64) -> Option<u64> {
        self.rings
            .iter()
            .find(|(b, _)| *b == base)
            .map(|(_, len)| *len)
    }

    fn check_offset(off: u32) -> Result<&'static str, PolicyError> {
        if off % 4 != 0 {
            return Err(PolicyError::Unaligned(off));
        }
        register_name(off).ok_or(PolicyError::Unmapped(off))
    }

    /// Checks a user-half read of `off`.
    pub fn check_read(&self, off: u32) -> Result<(), PolicyError> {
        let name = Self::check_offset(off)?;
        if off == ICR {
            return Err(PolicyError::KernelOwned { name, off });
        }
        Ok(())
    }

    /// Checks a user-half write of `value` to `off`; on success the shadow is updated and
    /// the caller performs the write.
    pub fn check_write(&mut self, off: u32, value: u32) -> Result<(), PolicyError> {
        let name = Self::check_offset(off)?;
        match off {
            ICR | IMS | IMC | RDH | RDT | TDH | TDT => Err(PolicyError::KernelOwned { name, off }),
            RDBAH | TDBAH => {
                let ok = self.rings.iter().any(|(b, _)| (b >> 32) as u32 == value);
                let ring = if off == RDBAH {
                    &mut self.rx
                } else {
                    &mut self.tx
                };
                if !ok {
                    return Err(PolicyError::ForgedDmaBase {
                        name,
                        value: u64::from(value) << 32 | u64::from(ring.lo),
                    });
                }
                ring.hi = value;
                Ok(())
            }
            RDBAL | TDBAL => {
                let hi = if off == RDBAL { self.rx.hi } else { self.tx.hi };
                let base = u64::from(hi) << 32 | u64::from(value);
                if self.region_at(base).is_none() {
                    return Err(PolicyError::ForgedDmaBase { name, value: base });
                }
                let ring = if off == RDBAL {
                    &mut self.rx
                } else {
                    &mut self.tx
                };
                ring.lo = value;
                Ok(())
            }
            RDLEN | TDLEN => {
                let ring = if off == RDLEN { self.rx } else { self.tx };
                let region_len = self.region_at(ring.base()).unwrap_or(0);
                if u64::from(value) > region_len {
                    return Err(PolicyError::RingTooLong {
                        name,
                        len: value,
                        region_len,
                    });
                }
                let ring = if off == RDLEN {
                    &mut self.rx
                } else {
                    &mut self.tx
                };
                ring.len = value;
                Ok(())
            }
            RCTL | TCTL => {
                let enable = if off == RCTL { rctl::EN } else { tctl::EN };
                if value & enable != 0 {
                    let (ring, which) = if off == RCTL {
                        (self.rx, "receive")
                    } else {
                        (self.tx, "transmit")
                    };
                    let fits = self
                        .region_at(ring.base())
                        .is_some_and(|l| ring.len > 0 && u64::from(ring.len) <= l);
                    if !fits {
                        return Err(PolicyError::DmaEnableRefused {
                            name,
                            ring: which,
                            base: ring.base(),
                            len: ring.len,
                        });
                    }
                }
                Ok(())
            }
            CTRL => {
                if value & ctrl::RST != 0 {
                    self.rx = RingShadow::default();
                    self.tx = RingShadow::default();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Records a write the kernel half itself made to a ring register (so the shadow stays
    /// true when the kernel half programs rings or resets the device).
    pub fn note_kernel_write(&mut self, off: u32, value: u32) {
        match off {
            RDBAL => self.rx.lo = value,
            RDBAH => self.rx.hi = value,
            RDLEN => self.rx.len = value,
            TDBAL => self.tx.lo = value,
            TDBAH => self.tx.hi = value,
            TDLEN => self.tx.len = value,
            CTRL if value & ctrl::RST != 0 => {
                self.rx = RingShadow::default();
                self.tx = RingShadow::default();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RING: u64 = 0x1_0000_2000;

    fn with_ring() -> RegisterPolicy {
        let mut p = RegisterPolicy::new();
        p.allow_ring(RING, 4096);
        p
    }

    #[test]
    fn offsets_must_be_aligned_and_mapped() {
        let mut p = with_ring();
        assert_eq!(p.check_read(CTRL + 2), Err(PolicyError::Unaligned(2)));
        assert_eq!(p.check_read(0x0004), Err(PolicyError::Unmapped(4)));
        assert_eq!(p.check_read(BAR0_LEN), Err(PolicyError::Unmapped(BAR0_LEN)));
        assert_eq!(
            p.check_write(0x1_0000, 1),
            Err(PolicyError::Unmapped(0x1_0000))
        );
        assert!(p.check_read(STATUS).is_ok());
        assert!(p.check_read(MTA + 4 * 127).is_ok());
        assert!(p.check_read(RAL + 8 * RA_LEN).is_err(), "one past RA[15]");
        assert!(p.check_write(RAH + 8 * 15, 0).is_ok());
        assert!(p.check_read(GORCH).is_ok());
    }

    #[test]
    fn kernel_owned_registers_are_refused() {
        let mut p = with_ring();
        for off in [ICR, IMS, IMC, RDH, RDT, TDH, TDT] {
            assert!(matches!(
                p.check_write(off, 0),
                Err(PolicyError::KernelOwned { .. })
            ));
        }
        assert!(matches!(
            p.check_read(ICR),
            Err(PolicyError::KernelOwned { .. })
        ));
        assert!(p.check_read(TDH).is_ok());
    }

    #[test]
    fn dma_bases_must_be_allocated_rings() {
        let mut p = with_ring();
        // Forged high half.
        assert!(matches!(
            p.check_write(RDBAH, 7),
            Err(PolicyError::ForgedDmaBase { .. })
        ));
        assert!(p.check_write(RDBAH, 1).is_ok());
        // Right high half, forged low half (inside the region but not its base).
        assert!(matches!(
            p.check_write(RDBAL, 0x2040),
            Err(PolicyError::ForgedDmaBase {
                value: 0x1_0000_2040,
                ..
            })
        ));
        assert!(p.check_write(RDBAL, 0x2000).is_ok());
        assert!(matches!(
            p.check_write(RDLEN, 8192),
            Err(PolicyError::RingTooLong { .. })
        ));
        assert!(p.check_write(RDLEN, 4096).is_ok());
        assert!(p.check_write(RCTL, rctl::EN).is_ok());
        // The transmit ring was never programmed: enabling it is refused.
        assert!(matches!(
            p.check_write(TCTL, tctl::EN),
            Err(PolicyError::DmaEnableRefused { .. })
        ));
        assert!(p.check_write(TCTL, 0).is_ok(), "disabling is always fine");
        // A reset returns the shadows to zero: RCTL.EN is refused again.
        assert!(p.check_write(CTRL, ctrl::RST).is_ok());
        assert!(p.check_write(RCTL, rctl::EN).is_err());
        // Revoked rings are no longer bases.
        p.revoke_ring(RING);
        assert!(p.check_write(TDBAH, 1).is_err());
    }

    proptest! {
        #[test]
        fn no_forged_base_is_ever_enabled(ops in proptest::collection::vec((0u8..8, any::<u32>()), 0..64)) {
            let mut p = with_ring();
            for (which, v) in ops {
                let off = [RDBAL, RDBAH, RDLEN, RCTL, TDBAL, TDBAH, TDLEN, TCTL][usize::from(which)];
                if p.check_write(off, v).is_ok() && (off == RCTL && v & rctl::EN != 0 || off == TCTL && v & tctl::EN != 0) {
                    let ring = if off == RCTL { p.rx } else { p.tx };
                    prop_assert_eq!(ring.base(), RING);
                    prop_assert!(ring.len > 0 && ring.len <= 4096);
                }
            }
        }
    }
}
