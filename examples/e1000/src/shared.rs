//! The hot state both halves see: each queue's ring and counters, and the poll loop's state,
//! each behind a combolock ([`Shared`]).
//!
//! The critical path locks them like plain mutexes (one compare-exchange each way). The user
//! half reaches them through the handles its adapter carries ([`SharedState`]) by
//! **snapshot only**: the locks are made with `ComboLock::snapshot_only`, so the user half
//! reads ring indexes and counters (the watchdog's transmit-hang check, the statistics) but
//! can neither write them nor stall the critical path by holding a lock. What it must not
//! see at all is `#[marshal(skip)]` on the ring types ([`TxRing`], [`RxRing`]): their DMA
//! memory, the per-descriptor bookkeeping and the frame being gathered.

use microdriver_rt::Marshal;

use crate::error::DriverError;
use crate::hot::itr::ItrState;
use crate::hot::rx::RxRing;
use crate::hot::tx::TxRing;
use crate::Shared;

/// Transmit counters (the critical path's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct TxStats {
    /// Packets reclaimed after the hardware sent them (TSO segments counted).
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Transmit attempts refused because the ring was full (or frozen, or no carrier).
    pub busy: u64,
    /// Times the stopped queue was woken by TX clean.
    pub restart_queue: u64,
    /// Packets refused as malformed.
    pub dropped: u64,
}

/// The transmit side: the ring (none while the interface is down) and its counters.
#[derive(Debug, Default, Marshal)]
pub struct TxQueue {
    /// The ring.
    pub ring: Option<TxRing>,
    /// The counters (they outlive rings: a resize keeps them).
    pub stats: TxStats,
}

/// Receive counters (the critical path's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct RxStats {
    /// Frames delivered.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Frames dropped for receive errors (CRC, symbol, sequence, length).
    pub errors: u64,
    /// Frames dropped because nobody was listening.
    pub dropped: u64,
    /// Frames whose checksums the hardware verified good.
    pub csum_good: u64,
    /// Frames with a bad checksum.
    pub csum_bad: u64,
}

/// The receive side: the ring and its counters.
#[derive(Debug, Default, Marshal)]
pub struct RxQueue {
    /// The ring.
    pub ring: Option<RxRing>,
    /// The counters.
    pub stats: RxStats,
}

/// The interrupt handler's and poll loop's state.
#[derive(Debug, Clone, Copy, Default, Marshal)]
pub struct PollState {
    /// Adaptive interrupt throttling (see [`crate::hot::itr`]).
    pub(crate) itr: ItrState,
    /// Interrupts taken.
    pub interrupts: u64,
    /// Poll rounds run.
    pub polls: u64,
    /// Packets and bytes moved (both directions) as of the last poll round: what adaptive
    /// throttling measures the next round against.
    pub(crate) moved: (u64, u64),
}

/// Handles to one device's shared hot state: the kernel half's locks, or (in the user half)
/// handles whose snapshots are downcalls.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct SharedState {
    /// The transmit queue.
    pub tx: Shared<TxQueue>,
    /// The receive queue.
    pub rx: Shared<RxQueue>,
    /// The poll state.
    pub poll: Shared<PollState>,
}

impl SharedState {
    /// Fresh, empty state; the user half may only snapshot it.
    pub(crate) fn new() -> Self {
        Self {
            tx: Shared::snapshot_only(TxQueue::default()),
            rx: Shared::snapshot_only(RxQueue::default()),
            poll: Shared::snapshot_only(PollState::default()),
        }
    }

    /// The hot-path counters, named (three snapshots: each consistent in itself).
    pub fn hot_stats(&self) -> Result<HotStats, DriverError> {
        let tx = self.tx.snapshot()?.stats;
        let rx = self.rx.snapshot()?.stats;
        let poll = self.poll.snapshot()?;
        Ok(HotStats::new(tx, rx, &poll))
    }
}

/// The hot-path counters of one device, named (what the statistics report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct HotStats {
    /// Packets handed to the hardware and reclaimed.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Transmit attempts refused because the ring was full.
    pub tx_busy: u64,
    /// Times the stopped queue was woken by TX clean.
    pub tx_restart_queue: u64,
    /// Packets refused as malformed.
    pub tx_dropped: u64,
    /// Frames delivered.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames dropped for receive errors (CRC, symbol, sequence, length).
    pub rx_errors: u64,
    /// Frames dropped because nobody was listening.
    pub rx_dropped: u64,
    /// Frames whose checksums the hardware verified good.
    pub rx_csum_good: u64,
    /// Frames with a bad checksum.
    pub rx_csum_bad: u64,
    /// Interrupts taken.
    pub interrupts: u64,
    /// Poll rounds run.
    pub polls: u64,
}

impl HotStats {
    /// Names the counters of the three parts of the shared state.
    pub fn new(tx: TxStats, rx: RxStats, poll: &PollState) -> Self {
        Self {
            tx_packets: tx.packets,
            tx_bytes: tx.bytes,
            tx_busy: tx.busy,
            tx_restart_queue: tx.restart_queue,
            tx_dropped: tx.dropped,
            rx_packets: rx.packets,
            rx_bytes: rx.bytes,
            rx_errors: rx.errors,
            rx_dropped: rx.dropped,
            rx_csum_good: rx.csum_good,
            rx_csum_bad: rx.csum_bad,
            interrupts: poll.interrupts,
            polls: poll.polls,
        }
    }
}
