//! The interrupt handler.

use microdriver_rt::critical;
use std::sync::atomic::Ordering;

use microdriver_rt::Marshal;

use crate::error::DriverError;
use crate::kernel::device::{self, work, DevId, Kernel};
use crate::regs::{icr, ICR, IMC};

/// What the interrupt handler found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub struct IrqOutcome {
    /// The device had a cause pending (the interrupt was ours).
    pub ours: bool,
    /// Interrupts are masked and a poll must run.
    pub schedule_poll: bool,
    /// The causes read from ICR.
    pub icr: u32,
}

/// Handles an interrupt of `dev` (critical).
#[critical]
pub fn intr(dev: DevId) -> Result<IrqOutcome, DriverError> {
    Ok(handle(&*device::lookup(dev)?))
}

/// Reads (and so clears) ICR; a link change is deferred to the user half's link check; any
/// other cause masks the device's interrupts and asks for a poll (SDM 13.4 ICR/IMC).
pub fn handle(k: &Kernel) -> IrqOutcome {
    let causes = k.rd(ICR);
    if causes == 0 {
        return IrqOutcome::default();
    }
    if let Ok(mut p) = k.poll.lock() {
        p.interrupts += 1;
    }
    if causes & (icr::LSC | icr::RXSEQ) != 0 {
        k.work.post(work::LINK);
    }
    let data = causes & !(icr::LSC | icr::MDAC);
    let up = k.irq_mask.load(Ordering::SeqCst) != 0;
    let schedule_poll = up && data != 0;
    if schedule_poll {
        k.wr(IMC, !0);
    }
    IrqOutcome {
        ours: true,
        schedule_poll,
        icr: causes,
    }
}
