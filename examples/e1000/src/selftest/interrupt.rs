//! The interrupt test: for every interrupt cause the part has, set through ICS (SDM 13.4
//! ICR/ICS/IMS/IMC):
//!
//! 1. masked, it must not assert the interrupt line, and ICR must read it back;
//! 2. unmasked (alone), it must assert the line;
//! 3. unmasked alone, every *other* cause set must not assert the line.
//!
//! ICR is read through the kernel half's interrupt handler ([`hot::irq::intr`]: the user
//! half may not read ICR, whose read clears it). ITR is cleared for the test (throttling
//! would delay an assertion past the wait) and restored.

use std::time::{Duration, Instant};

use crate::adapter::{Adapter, MacType};
use crate::error::DriverError;
use crate::hot;
use crate::kernel;
use crate::regs::{icr, ICS, ITR};
use crate::selftest::failure;

/// The interrupt causes (SDM 13.4 ICR), in bit order, with their names.
pub const CAUSES: &[(u32, &str)] = &[
    (icr::TXDW, "TXDW (transmit descriptor written back)"),
    (icr::TXQE, "TXQE (transmit queue empty)"),
    (icr::LSC, "LSC (link status change)"),
    (icr::RXSEQ, "RXSEQ (receive sequence error)"),
    (icr::RXDMT0, "RXDMT0 (receive descriptor minimum threshold)"),
    (icr::RXO, "RXO (receiver overrun)"),
    (icr::RXT0, "RXT0 (receiver timer)"),
    (icr::MDAC, "MDAC (MDI/O access complete)"),
    (icr::RXCFG, "RXCFG (receiving /C/ ordered sets)"),
    (icr::PHYINT, "PHYINT (PHY interrupt)"),
    (icr::GPI_SDP6, "GPI_SDP6 (general purpose interrupt, SDP6)"),
    (icr::GPI_SDP7, "GPI_SDP7 (general purpose interrupt, SDP7)"),
    (icr::TXD_LOW, "TXD_LOW (transmit descriptor low threshold)"),
    (icr::SRPD, "SRPD (small receive packet detected)"),
];

/// The causes `mac` implements: all of [`CAUSES`] on the 82540EM/82545EM; the 82544GC has
/// neither TXD_LOW nor SRPD (the low threshold and small-packet detection arrived with the
/// 82540).
pub fn part_causes(mac: MacType) -> u32 {
    let all = CAUSES.iter().fold(0, |m, (c, _)| m | c);
    match mac {
        MacType::I82544GC => all & !(icr::TXD_LOW | icr::SRPD),
        MacType::I82540EM | MacType::I82545EM => all,
    }
}

/// How long a cause that must not assert the line is given to do so.
const QUIET_MS: u64 = 5;
/// How long a cause that must assert the line is given.
const ASSERT_MS: u64 = 500;

/// Whether the line is asserted more than `above` times within `ms` milliseconds.
fn asserted_within(a: &Adapter, above: u64, ms: u64) -> Result<bool, DriverError> {
    let end = Instant::now() + Duration::from_millis(ms);
    loop {
        if kernel::irq_assertions(a.dev)? > above {
            return Ok(true);
        }
        if Instant::now() > end {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Reads (and so clears) ICR through the kernel half's interrupt handler.
fn take_icr(a: &Adapter) -> Result<u32, DriverError> {
    Ok(hot::irq::intr(a.dev)?.icr)
}

/// Runs the interrupt test (see the module documentation); the interface must be closed.
pub fn interrupt_test(a: &Adapter) -> Result<(), DriverError> {
    if a.up {
        return Err(DriverError::WrongState {
            op: "interrupt test".into(),
            state: "up".into(),
            needed: "down (the test takes over the interrupt mask)".into(),
        });
    }
    let itr = if a.info.mac_type.has_itr() {
        let v = a.rd(ITR)?;
        a.wr(ITR, 0)?;
        Some(v)
    } else {
        None
    };
    let r = each_cause(a);
    kernel::irq_set_mask(a.dev, 0)?;
    take_icr(a)?;
    if let Some(v) = itr {
        a.wr(ITR, v)?;
    }
    r
}

fn each_cause(a: &Adapter) -> Result<(), DriverError> {
    let part = part_causes(a.info.mac_type);
    let fail = |name: &str, what: &str| failure("interrupt", format!("cause {name}: {what}"));
    for &(cause, name) in CAUSES.iter().filter(|(c, _)| part & c != 0) {
        // 1. Masked: no interrupt, but ICR latches the cause.
        kernel::irq_set_mask(a.dev, 0)?;
        take_icr(a)?;
        let base = kernel::irq_assertions(a.dev)?;
        a.wr(ICS, cause)?;
        if asserted_within(a, base, QUIET_MS)? {
            return Err(fail(name, "set while masked, it asserted the interrupt"));
        }
        let got = take_icr(a)?;
        if got & cause == 0 {
            let what = format!("set through ICS, ICR read back {got:#010x} without it");
            return Err(fail(name, &what));
        }
        // 2. Unmasked: the interrupt is asserted.
        kernel::irq_set_mask(a.dev, cause)?;
        let base = kernel::irq_assertions(a.dev)?;
        a.wr(ICS, cause)?;
        let raised = asserted_within(a, base, ASSERT_MS)?;
        kernel::irq_set_mask(a.dev, 0)?;
        take_icr(a)?;
        if !raised {
            return Err(fail(
                name,
                "set while unmasked, it did not assert the interrupt",
            ));
        }
        // 3. Only this cause unmasked: every other one set asserts nothing.
        let others = part & !cause;
        kernel::irq_set_mask(a.dev, cause)?;
        let base = kernel::irq_assertions(a.dev)?;
        a.wr(ICS, others)?;
        let leaked = asserted_within(a, base, QUIET_MS)?;
        kernel::irq_set_mask(a.dev, 0)?;
        take_icr(a)?;
        if leaked {
            let what =
                format!("the only cause unmasked, causes {others:#010x} asserted the interrupt");
            return Err(fail(name, &what));
        }
    }
    Ok(())
}
