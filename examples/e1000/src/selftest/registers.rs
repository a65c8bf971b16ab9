//! The register test: every read/write register the SDM documents for the part (that the
//! register policy lets the user half write) holds what is written to its writable bits,
//! the register arrays (RA, MTA, VFTA) hold a distinct value per entry, and STATUS ignores
//! writes. Every register is put back as it was.
//!
//! Not tested: the DMA ring registers (RDBAL/H, RDLEN, RDH, RDT and their transmit twins)
//! and the interrupt mask registers, which the register policy reserves for the kernel
//! half ([`crate::policy::KERNEL_WRITES`]); RCTL.EN/TCTL.EN, which the policy refuses
//! without live rings; CTRL, whose bits reset the part or drop the link; PBA, which only
//! takes effect through a reset.

use crate::adapter::{Adapter, MacType};
use crate::error::DriverError;
use crate::regs::*;
use crate::selftest::failure;

/// Which parts have a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// 82540EM, 82545EM and 82544GC.
    All,
    /// The 82540EM and 82545EM only (ITR, RADV, TADV and RSRPD arrived with the 82540).
    From82540,
}

impl Parts {
    /// Whether `mac` has the register.
    pub fn includes(self, mac: MacType) -> bool {
        self == Parts::All || mac != MacType::I82544GC
    }
}

/// How a register is exercised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Pattern test: 0x5A5A5A5A, 0xA5A5A5A5, all ones and all zeroes, then a walking one
    /// and a walking zero, each limited to the writable bits, read back through the mask.
    Pattern,
    /// Set-and-check, for control registers whose bits switch functions: every writable
    /// bit set, then every one clear, read back through the mask.
    SetAndCheck,
}

/// One register (or register array) of the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegTest {
    /// The register's name (arrays print as `NAME[i]`).
    pub name: &'static str,
    /// Offset of the first (or only) register.
    pub off: u32,
    /// Entries (1 for a plain register).
    pub count: u32,
    /// Bytes between entries.
    pub stride: u32,
    /// The bits that hold what is written (SDM 13.4); the rest are reserved, read-only or
    /// self-clearing.
    pub mask: u32,
    /// How it is exercised.
    pub check: Check,
    /// Which parts have it.
    pub parts: Parts,
}

const fn reg(name: &'static str, off: u32, mask: u32, check: Check, parts: Parts) -> RegTest {
    RegTest {
        name,
        off,
        count: 1,
        stride: 4,
        mask,
        check,
        parts,
    }
}

const fn array(name: &'static str, off: u32, count: u32, stride: u32, mask: u32) -> RegTest {
    RegTest {
        name,
        off,
        count,
        stride,
        mask,
        check: Check::Pattern,
        parts: Parts::All,
    }
}

/// RCTL bits that hold what is written (SDM 13.4.22): SBP, UPE, MPE, LPE, LBM, RDMTS, MO,
/// BAM, BSIZE, VFE, CFIEN, CFI, DPF, PMCF, BSEX, SECRC; without EN (the policy enables the
/// receiver only on live rings).
pub const RCTL_TEST_MASK: u32 = 0x06DF_B3FC;
/// TCTL bits that hold what is written (SDM 13.4): PSP, CT, COLD and RTLC; without EN
/// (policy) and SWXOFF (self-clearing: it sends an XOFF frame).
pub const TCTL_TEST_MASK: u32 = 0x013F_FFF8;
/// The STATUS bits that are read-only on every part: FD, LU, function ID, TXOFF, TBIMODE,
/// SPEED, PCI66 and BUS64 (SDM 13.4).
pub const STATUS_RO_MASK: u32 = status::FD
    | status::LU
    | status::FUNC_MASK
    | status::TXOFF
    | status::TBIMODE
    | status::SPEED_MASK
    | status::PCI66
    | status::BUS64;

use Check::{Pattern, SetAndCheck};
use Parts::{All, From82540};

/// The registers of the test, in test order, with their writable bits (SDM 13.4).
pub const REGISTERS: &[RegTest] = &[
    reg("FCAL", FCAL, 0xFFFF_FFFF, Pattern, All),
    reg("FCAH", FCAH, 0x0000_FFFF, Pattern, All),
    reg("FCT", FCT, 0x0000_FFFF, Pattern, All),
    reg("VET", VET, 0x0000_FFFF, Pattern, All),
    reg("FCTTV", FCTTV, 0x0000_FFFF, Pattern, All),
    reg("TXCW", TXCW, 0xC000_FFFF, Pattern, All),
    reg("LEDCTL", LEDCTL, 0xCFCF_CFCF, Pattern, All),
    reg("ITR", ITR, 0x0000_FFFF, Pattern, From82540),
    reg("RCTL", RCTL, RCTL_TEST_MASK, SetAndCheck, All),
    reg("TCTL", TCTL, TCTL_TEST_MASK, SetAndCheck, All),
    reg("TIPG", TIPG, 0x3FFF_FFFF, Pattern, All),
    reg("AIT", AIFS, 0x0000_FFFF, Pattern, All),
    reg("FCRTL", FCRTL, 0x8000_FFF8, Pattern, All),
    reg("FCRTH", FCRTH, 0x0000_FFF8, Pattern, All),
    // RDTR and TIDV bit 31 (FPD) is a write-only flush command.
    reg("RDTR", RDTR, 0x0000_FFFF, Pattern, All),
    reg("RXDCTL", RXDCTL, 0x013F_3F3F, Pattern, All),
    reg("RADV", RADV, 0x0000_FFFF, Pattern, From82540),
    reg("RSRPD", RSRPD, 0x0000_0FFF, Pattern, From82540),
    reg("TIDV", TIDV, 0x0000_FFFF, Pattern, All),
    reg("TXDCTL", TXDCTL, 0x013F_3F3F, Pattern, All),
    reg("TADV", TADV, 0x0000_FFFF, Pattern, From82540),
    reg("RXCSUM", RXCSUM, 0x0000_03FF, Pattern, All),
    array("MTA", MTA, MTA_LEN, 4, 0xFFFF_FFFF),
    array("RAL", RAL, RA_LEN, 8, 0xFFFF_FFFF),
    // RAH: the address's high 16 bits, AS (17:16) and AV (31).
    array("RAH", RAH, RA_LEN, 8, 0x8003_FFFF),
    array("VFTA", VFTA, VFTA_LEN, 4, 0xFFFF_FFFF),
];

/// The fixed patterns of the pattern test.
pub const PATTERNS: [u32; 4] = [0x5A5A_5A5A, 0xA5A5_A5A5, 0xFFFF_FFFF, 0x0000_0000];

/// A register that did not hold what was written (`name` with its index for arrays).
fn mismatch(name: String, off: u32, wrote: u32, read: u32, mask: u32) -> DriverError {
    failure(
        "register",
        format!(
            "{name} ({off:#07x}): wrote {wrote:#010x}, read {read:#010x} \
             (writable bits {mask:#010x})"
        ),
    )
}

/// Runs the register test on a closed interface (see the module documentation).
pub fn register_test(a: &Adapter) -> Result<(), DriverError> {
    if a.up {
        return Err(DriverError::WrongState {
            op: "register test".into(),
            state: "up".into(),
            needed: "down (the test rewrites live configuration)".into(),
        });
    }
    status_read_only(a)?;
    for t in REGISTERS
        .iter()
        .filter(|t| t.parts.includes(a.info.mac_type))
    {
        let offs: Vec<u32> = (0..t.count).map(|i| t.off + i * t.stride).collect();
        let saved = offs
            .iter()
            .map(|&o| a.rd(o))
            .collect::<Result<Vec<_>, _>>()?;
        let r = test_one(a, t, &offs);
        for (&o, &v) in offs.iter().zip(&saved) {
            a.wr(o, v)?;
        }
        r?;
    }
    Ok(())
}

/// The name of entry `i` of `t`.
fn entry_name(t: &RegTest, i: usize) -> String {
    if t.count == 1 {
        t.name.to_string()
    } else {
        format!("{}[{i}]", t.name)
    }
}

/// Exercises the registers at `offs` (one register, or every entry of an array).
fn test_one(a: &Adapter, t: &RegTest, offs: &[u32]) -> Result<(), DriverError> {
    let values: Vec<u32> = match t.check {
        SetAndCheck => vec![t.mask, 0],
        Pattern if t.count > 1 => PATTERNS.to_vec(),
        Pattern => {
            let bits = (0..32).map(|b| 1u32 << b).filter(|b| t.mask & b != 0);
            let walking_one = bits.clone();
            let walking_zero = bits.map(|b| !b);
            PATTERNS
                .into_iter()
                .chain(walking_one)
                .chain(walking_zero)
                .collect()
        }
    };
    for (i, &off) in offs.iter().enumerate() {
        for &v in &values {
            let wrote = v & t.mask;
            a.wr(off, wrote)?;
            let read = a.rd(off)?;
            if read & t.mask != wrote {
                return Err(mismatch(entry_name(t, i), off, wrote, read, t.mask));
            }
        }
    }
    if offs.len() > 1 {
        // Address test: a distinct value in every entry, then all read back (catches
        // entries that decode to the same cell, which a per-entry pattern cannot).
        let distinct = |i: usize| (0x9E37_79B9u32.wrapping_mul(i as u32 + 1)) & t.mask;
        for (i, &off) in offs.iter().enumerate() {
            a.wr(off, distinct(i))?;
        }
        for (i, &off) in offs.iter().enumerate() {
            let read = a.rd(off)?;
            if read & t.mask != distinct(i) {
                return Err(mismatch(entry_name(t, i), off, distinct(i), read, t.mask));
            }
        }
    }
    Ok(())
}

/// Writing STATUS changes none of its read-only bits. A link change between the reads
/// could look like a change; the value written back (the original) tells them apart: a
/// write that took effect is undone by it, a link change is not. One retry.
fn status_read_only(a: &Adapter) -> Result<(), DriverError> {
    let mut attempt = 0;
    loop {
        let before = a.rd(STATUS)?;
        let wrote = !before & STATUS_RO_MASK;
        a.wr(STATUS, wrote)?;
        let after = a.rd(STATUS)?;
        a.wr(STATUS, before)?;
        if after & STATUS_RO_MASK == before & STATUS_RO_MASK {
            return Ok(());
        }
        let restored = a.rd(STATUS)?;
        let link_moved = restored & STATUS_RO_MASK == after & STATUS_RO_MASK;
        if !link_moved || attempt == 1 {
            return Err(failure(
                "register",
                format!(
                    "STATUS ({STATUS:#07x}) is read-only: read {before:#010x}, wrote \
                     {wrote:#010x}, read {after:#010x} (read-only bits {STATUS_RO_MASK:#010x})"
                ),
            ));
        }
        attempt += 1;
    }
}
