//! The register policy: what the user half may do to the device (issue 6, item 3).
//!
//! The user half has no device access of its own; every register read and write it makes is
//! a downcall that the kernel half checks here before touching BAR0. The policy is data (the
//! tables below) and one check:
//!
//! * **Offsets**: aligned, inside BAR0 and naming a register of the map ([`MAP`]); anything
//!   else is refused, never forwarded.
//! * **Kernel-owned registers** ([`KERNEL_WRITES`], [`KERNEL_READS`]): the hot path owns ICR
//!   (reading it clears the causes the interrupt handler needs), IMS/IMC (the poll loop
//!   re-enables interrupts with the mask the kernel half holds; the user half sets it with a
//!   separate call) and the ring heads and tails. The **DMA registers** RDBAL/RDBAH/RDLEN and
//!   TDBAL/TDBAH/TDLEN are kernel-owned too: the kernel half programs them itself with the
//!   rings it allocated, so the only DMA bases the device ever holds are those rings. The
//!   user half may read all of these (register dump, hang check) except ICR.
//! * **Enabling DMA**: RCTL.EN and TCTL.EN (which start the device's bus mastering on the
//!   rings) are refused unless the kernel half has programmed live rings since the last
//!   reset; RCTL.EN also needs the buffer size (BSIZE/BSEX) the receive ring's buffers have,
//!   so the device never writes past a buffer. A device reset (CTRL.RST) clears the ring
//!   registers, so it makes the rings not live until the kernel half programs them again.
//!
//! The policy is a pure state machine with no device access, so it is tested on its own.

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
    /// The register belongs to the kernel half (hot path or DMA).
    #[error("{name} ({off:#x}) is owned by the kernel half; use the kernel call for it")]
    KernelOwned {
        /// Register name.
        name: &'static str,
        /// Offset.
        off: u32,
    },
    /// Enabling a DMA engine without live rings (or, for RCTL, with another buffer size).
    #[error("{name}.EN refused: the kernel half has no live rings for it (or RCTL's buffer size is not the receive ring's)")]
    DmaEnableRefused {
        /// Register name.
        name: &'static str,
    },
}

/// Registers and register arrays of the map: `(first offset, one past the last, name)`.
pub const MAP: &[(u32, u32, &str)] = &[
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
    (RDFPC, RDFPC + 4, "RDFPC"),
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

/// Registers the user half may not write (the hot path's, and the DMA ring registers).
pub const KERNEL_WRITES: [u32; 13] = [
    ICR, IMS, IMC, RDH, RDT, TDH, TDT, RDBAL, RDBAH, RDLEN, TDBAL, TDBAH, TDLEN,
];
/// Registers the user half may not read (reading ICR clears the interrupt causes).
pub const KERNEL_READS: [u32; 1] = [ICR];
/// The RCTL bits that choose the receive buffer size.
pub const RCTL_BUF_BITS: u32 = rctl::BSIZE_MASK | rctl::BSEX;

/// The name of the register at `off`, if the map has one.
pub fn register_name(off: u32) -> Option<&'static str> {
    let (_, _, name) = MAP.iter().find(|(lo, hi, _)| (*lo..*hi).contains(&off))?;
    off.is_multiple_of(4).then_some(*name)
}

/// The register policy of one device: whether the kernel half has programmed live rings
/// (and with which receive buffer size).
#[derive(Debug, Clone, Default)]
pub struct RegisterPolicy {
    /// `Some(RCTL buffer-size bits)` while the ring registers hold rings the kernel half
    /// allocated; `None` before, after a reset and after the rings are freed.
    pub live: Option<u32>,
}

impl RegisterPolicy {
    /// A policy with no live rings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks a user-half access of `off`: a read (`write` = `None`) or a write of the value.
    pub fn check(&mut self, off: u32, write: Option<u32>) -> Result<(), PolicyError> {
        if !off.is_multiple_of(4) {
            return Err(PolicyError::Unaligned(off));
        }
        let name = register_name(off).ok_or(PolicyError::Unmapped(off))?;
        let owned: &[u32] = if write.is_some() {
            &KERNEL_WRITES
        } else {
            &KERNEL_READS
        };
        if owned.contains(&off) {
            return Err(PolicyError::KernelOwned { name, off });
        }
        let ok = match (off, write) {
            (RCTL, Some(v)) if v & rctl::EN != 0 => self.live == Some(v & RCTL_BUF_BITS),
            (TCTL, Some(v)) if v & tctl::EN != 0 => self.live.is_some(),
            (CTRL, Some(v)) if v & ctrl::RST != 0 => {
                self.live = None;
                true
            }
            _ => true,
        };
        ok.then_some(())
            .ok_or(PolicyError::DmaEnableRefused { name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(p: &mut RegisterPolicy, off: u32) -> Result<(), PolicyError> {
        p.check(off, None)
    }

    fn write(p: &mut RegisterPolicy, off: u32, v: u32) -> Result<(), PolicyError> {
        p.check(off, Some(v))
    }

    #[test]
    fn offsets_must_be_aligned_and_mapped() {
        let mut p = RegisterPolicy::new();
        assert_eq!(read(&mut p, CTRL + 2), Err(PolicyError::Unaligned(2)));
        assert_eq!(read(&mut p, 0x0004), Err(PolicyError::Unmapped(4)));
        assert_eq!(read(&mut p, BAR0_LEN), Err(PolicyError::Unmapped(BAR0_LEN)));
        assert_eq!(
            write(&mut p, 0x1_0000, 1),
            Err(PolicyError::Unmapped(0x1_0000))
        );
        assert!(read(&mut p, STATUS).is_ok());
        assert!(read(&mut p, MTA + 4 * 127).is_ok());
        assert!(read(&mut p, RAL + 8 * RA_LEN).is_err(), "one past RA[15]");
        assert!(write(&mut p, RAH + 8 * 15, 0).is_ok());
        assert!(read(&mut p, GORCH).is_ok());
        assert_eq!(register_name(MTA + 2), None);
    }

    #[test]
    fn kernel_owned_registers_are_refused() {
        let mut p = RegisterPolicy::new();
        for off in KERNEL_WRITES {
            assert!(matches!(
                write(&mut p, off, 0),
                Err(PolicyError::KernelOwned { .. })
            ));
        }
        assert!(matches!(
            read(&mut p, ICR),
            Err(PolicyError::KernelOwned { .. })
        ));
        for off in [TDH, RDBAL, TDLEN] {
            assert!(read(&mut p, off).is_ok());
        }
    }

    #[test]
    fn dma_is_enabled_only_on_live_rings_with_their_buffer_size() {
        let mut p = RegisterPolicy::new();
        assert!(write(&mut p, RCTL, rctl::EN).is_err(), "no rings yet");
        assert!(write(&mut p, TCTL, tctl::EN).is_err(), "no rings yet");
        assert!(write(&mut p, TCTL, 0).is_ok(), "disabling is always fine");
        p.live = regs_bits(4096);
        assert!(write(&mut p, TCTL, tctl::EN).is_ok());
        assert!(write(&mut p, RCTL, rctl::EN | rctl::BSEX | 3 << 16).is_ok());
        assert!(
            write(&mut p, RCTL, rctl::EN | rctl::BSEX | 1 << 16).is_err(),
            "16 KB buffers on a ring of 4 KB buffers"
        );
        assert!(write(&mut p, RCTL, rctl::EN).is_err(), "2 KB != 4 KB");
        // A reset clears the ring registers: enabling is refused until they are programmed.
        assert!(write(&mut p, CTRL, ctrl::RST).is_ok());
        assert!(write(&mut p, TCTL, tctl::EN).is_err());
    }

    fn regs_bits(len: usize) -> Option<u32> {
        crate::regs::rctl_buffer_bits(len)
    }

    proptest! {
        #[test]
        fn dma_never_starts_without_live_rings(ops in proptest::collection::vec((0u8..10, any::<u32>()), 0..64)) {
            let mut p = RegisterPolicy { live: regs_bits(2048) };
            let mut live = true;
            for (which, v) in ops {
                let off = [RDBAL, RDBAH, RDLEN, RCTL, TDBAL, TDBAH, TDLEN, TCTL, CTRL, RDT][usize::from(which)];
                let ok = p.check(off, Some(v)).is_ok();
                if off == CTRL && v & ctrl::RST != 0 {
                    live = false;
                }
                prop_assert!(!ok || !KERNEL_WRITES.contains(&off));
                if ok && (off == RCTL && v & rctl::EN != 0 || off == TCTL && v & tctl::EN != 0) {
                    prop_assert!(live);
                    prop_assert!(off == TCTL || v & RCTL_BUF_BITS == 0);
                }
            }
        }
    }
}
