//! The NAPI-style poll loop.

use microdriver_rt::critical;
use std::sync::atomic::Ordering;

use microdriver_rt::Marshal;

use crate::error::DriverError;
use crate::hot::{itr, rx, tx};
use crate::kernel::device::{self, DevId, Kernel};
use crate::regs::IMS;

/// What one poll round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub struct PollOutcome {
    /// Frames delivered.
    pub rx: u32,
    /// Packets reclaimed from the transmit ring.
    pub tx_cleaned: u32,
    /// Less than the budget was used: interrupts are enabled again and polling stops.
    pub complete: bool,
}

/// Polls `dev` with a budget of `budget` received frames (critical).
#[critical]
pub fn poll(dev: DevId, budget: u32) -> Result<PollOutcome, DriverError> {
    Ok(run(&*device::lookup(dev)?, budget))
}

/// One poll round: reclaim transmitted packets (waking a stopped queue), receive up to
/// `budget` frames and refill; steer adaptive interrupt throttling by what moved since the
/// last round (a transmit that reclaimed a full ring counts too); when under budget,
/// re-enable the interrupts the user half configured.
pub fn run(k: &Kernel, budget: u32) -> PollOutcome {
    let tx_cleaned = tx::clean(k);
    let rx = rx::clean(k, budget);
    let now = moved(k);
    if let Ok(mut p) = k.poll.lock() {
        p.polls += 1;
        let (packets, bytes) = (
            now.0.saturating_sub(p.moved.0),
            now.1.saturating_sub(p.moved.1),
        );
        p.moved = now;
        itr::update(k, &mut p.itr, packets, bytes);
    }
    let complete = rx < budget;
    if complete {
        let mask = k.irq_mask.load(Ordering::SeqCst);
        if mask != 0 {
            k.wr(IMS, mask);
        }
    }
    PollOutcome {
        rx,
        tx_cleaned,
        complete,
    }
}

/// Packets and bytes moved so far, both directions (the counters only grow).
fn moved(k: &Kernel) -> (u64, u64) {
    let tx = k.tx.lock().map(|q| q.stats).unwrap_or_default();
    let rx = k.rx.lock().map(|q| q.stats).unwrap_or_default();
    (tx.packets + rx.packets, tx.bytes + rx.bytes)
}
