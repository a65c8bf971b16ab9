//! The kernel half's hot path: everything a packet touches.
//!
//! * [`irq`]: the interrupt handler (read ICR, defer link changes, mask, schedule poll);
//! * [`poll`]: the NAPI-style poll loop with a budget (TX clean, RX clean, refill,
//!   adaptive interrupt throttling, re-enable interrupts);
//! * [`itr`]: adaptive interrupt throttling, from each poll round's packets and bytes;
//! * [`tx`]: transmit (scatter-gather, checksum offload and TSO through context
//!   descriptors, VLAN insertion, queue stop/wake) and TX clean;
//! * [`rx`]: RX clean (frames spanning descriptors, copybreak, VLAN strip, checksum status)
//!   and buffer refill.
//!
//! The entry points taking a [`DevId`](crate::DevId) are `#[critical]`: their bodies stay in
//! the kernel half and a user-half caller (the loopback self-test) gets a downcall stub. The
//! `&Kernel` functions beside them are what they call, for kernel-half callers that already
//! hold the device (the interrupt thread, the stack's transmit path).

pub mod irq;
pub mod itr;
pub mod poll;
pub mod rx;
pub mod tx;

/// The ring index after `i` in a ring of `count` descriptors: a compare, not a division
/// (`%` is a 20-40 cycle `div` on the per-frame path). Any index past the end gives 0.
pub(crate) fn ring_next(i: u32, count: u32) -> u32 {
    if i.saturating_add(1) < count {
        i + 1
    } else {
        0
    }
}
