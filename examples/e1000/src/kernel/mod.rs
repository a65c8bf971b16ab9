//! The kernel half's checked services: what the user half calls (downcalls). The device
//! object they act on is in [`device`] (re-exported here).
//!
//! A [`Kernel`] owns one device's handles ([`Hw`](crate::hw::Hw)), the register policy, the rings and the
//! hot-path counters. It is registered under a [`DevId`]; the user half holds only that id,
//! so every entry point here takes a `DevId` and looks the device up. Each `pub fn` taking a
//! `DevId` is `#[critical]`: user-half callers get a downcall stub, so the user half reaches
//! registers, DMA and rings only through these functions, and each checks what it is asked
//! ([`crate::policy`] for registers). [`attach`] takes the device's handles and is called
//! by the kernel half's host only.

pub(crate) mod device;

use microdriver_rt::critical;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use microdriver_rt::Marshal;

use crate::error::DriverError;
use crate::frame::RxFrame;
use crate::hot::rx::RxRing;
use crate::hot::tx::TxRing;
use crate::regs::{self, ctrl, pci, rctl, tctl};
use crate::shared::SharedState;

use device::REGISTRY;
pub use device::{attach, lookup, work, DevId, Kernel, RxSink, WorkQueue};

// ------------------------------------------------------------------------------------------
// Downcalls: the user half's only way to the device. Every argument is checked.
// ------------------------------------------------------------------------------------------

/// Detaches a device: stops its DMA, masks its interrupts, frees its rings and forgets it.
#[critical]
pub fn detach(dev: DevId) -> Result<(), DriverError> {
    irq_set_mask(dev, 0)?;
    rings_free(dev)?;
    let reg: &mut Vec<Option<Arc<Kernel>>> = &mut REGISTRY.write();
    if let Some(slot) = usize::try_from(dev.0).ok().and_then(|i| reg.get_mut(i)) {
        *slot = None;
    }
    Ok(())
}

/// Reads a register on behalf of the user half (checked by the register policy).
#[critical]
pub fn reg_read(dev: DevId, off: u32) -> Result<u32, DriverError> {
    let k = lookup(dev)?;
    k.policy.lock().check(off, None)?;
    Ok(k.rd(off))
}

/// Most registers one [`reg_read_many`] reads.
pub const MAX_REG_BATCH: usize = 256;

/// Reads registers `offs` in order on behalf of the user half, in one crossing instead of
/// one each (a statistics update reads some fifty). Every offset is checked by the register
/// policy as [`reg_read`] checks it before any is read: one refused, or more than
/// [`MAX_REG_BATCH`], fails the call with nothing read (statistics registers clear on
/// read, so a half-done batch would lose counts).
#[critical]
pub fn reg_read_many(dev: DevId, offs: Vec<u32>) -> Result<Vec<u32>, DriverError> {
    if offs.len() > MAX_REG_BATCH {
        return Err(DriverError::invalid(
            "register batch",
            format!("{} registers: at most {MAX_REG_BATCH}", offs.len()),
        ));
    }
    let k = lookup(dev)?;
    let mut policy = k.policy.lock();
    for &off in &offs {
        policy.check(off, None)?;
    }
    Ok(offs.into_iter().map(|off| k.rd(off)).collect())
}

/// Writes a register on behalf of the user half (checked by the register policy).
#[critical]
pub fn reg_write(dev: DevId, off: u32, value: u32) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    let mut p = k.policy.lock();
    p.check(off, Some(value))?;
    k.wr(off, value);
    Ok(())
}

/// Reads a 16-bit field of PCI configuration space (the standard header only, read-only
/// for the user half: the kernel half alone sets COMMAND).
#[critical]
pub fn pci_read16(dev: DevId, off: u16) -> Result<u16, DriverError> {
    if off >= 0x40 || !off.is_multiple_of(2) {
        let why = format!("{off:#x}: the user half may read the aligned header (0..0x40) only");
        return Err(DriverError::invalid("PCI config offset", why));
    }
    Ok(lookup(dev)?.hw.pci.config_read16(off))
}

/// Sets the interrupt causes the device may raise (0 masks everything). The poll loop
/// re-enables exactly this mask when it completes.
#[critical]
pub fn irq_set_mask(dev: DevId, mask: u32) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    k.irq_mask.store(mask, Ordering::SeqCst);
    k.wr(regs::IMC, !mask);
    k.wr(regs::IMS, mask);
    Ok(())
}

/// How many times the interrupt line has been asserted (the self-test's interrupt check).
#[critical]
pub fn irq_assertions(dev: DevId) -> Result<u64, DriverError> {
    Ok(lookup(dev)?.hw.irq.assertions())
}

/// Sets whether the link is up (the hot path transmits only with carrier).
#[critical]
pub fn set_carrier(dev: DevId, up: bool) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    k.carrier.store(up, Ordering::SeqCst);
    k.wake_tx();
    Ok(())
}

/// Handles to the device's shared hot state (the rings and counters behind their
/// combolocks), for the user half's adapter: it reads them by snapshot.
#[critical]
pub fn shared_state(dev: DevId) -> Result<SharedState, DriverError> {
    Ok(lookup(dev)?.shared())
}

/// The hot path's parameters, as the user half configures them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Marshal)]
pub struct HotParams {
    /// Has no effect (the driver has no copybreak: every frame is copied out of its
    /// ring's one DMA region, so there is no buffer to hand up instead); kept for the API.
    pub copybreak: u32,
    /// Longest frame accepted, without FCS, including a VLAN tag.
    pub max_frame: u32,
    /// Delay transmit write-back interrupts (IDE, TIDV/TADV).
    pub tx_ide: bool,
    /// Report receive checksum status.
    pub rx_csum: bool,
    /// The transmit offloads in force ([`tx_offload`] bits: ethtool's tx-checksumming,
    /// scatter-gather, tcp-segmentation-offload and tx-vlan-offload). Transmit refuses a
    /// packet asking for one that is off, instead of sending it other than as asked.
    pub tx_offloads: u32,
    /// Adaptive interrupt throttling: the poll path owns ITR and moves it with the traffic
    /// (within `max_irq_rate`). Off: the kernel half never writes ITR (the user half
    /// programs a fixed rate).
    pub adaptive_itr: bool,
    /// The interrupt rate limit, per second (0 = none); adaptive mode stays within it.
    pub max_irq_rate: u32,
}

/// Sets the hot path's parameters (any values are safe: the hot path bounds what it
/// gathers and checks what it sends against `max_frame`, and adaptive throttling keeps ITR
/// within its own bounds). Turning adaptive throttling on programs ITR with the starting
/// rate; once a call turning it off returns, the kernel half no longer writes ITR.
#[critical]
pub fn set_hot_params(dev: DevId, p: &HotParams) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    k.cfg.max_frame.store(p.max_frame, Ordering::Relaxed);
    k.cfg.tx_ide.store(p.tx_ide, Ordering::Relaxed);
    k.cfg.rx_csum.store(p.rx_csum, Ordering::Relaxed);
    k.cfg.tx_offloads.store(p.tx_offloads, Ordering::Relaxed);
    let Ok(mut poll) = k.poll.lock() else {
        return Err(DriverError::Busy);
    };
    let itr = &mut poll.itr;
    *itr = crate::hot::itr::ItrState {
        adaptive: p.adaptive_itr,
        max_rate: p.max_irq_rate,
        ..Default::default()
    };
    if p.adaptive_itr {
        itr.rate = itr.bounded(itr.class.rate());
        k.wr(regs::ITR, crate::hot::itr::itr_value(itr.rate));
    }
    Ok(())
}

/// The interrupt rate adaptive throttling last programmed, per second (0 when adaptive
/// mode is off: ITR then holds the user half's fixed rate).
#[critical]
pub fn adaptive_irq_rate(dev: DevId) -> Result<u32, DriverError> {
    let s = lookup(dev)?.poll.lock()?.itr;
    Ok(if s.adaptive { s.rate } else { 0 })
}

/// The rings the user half asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Marshal)]
pub struct RingRequest {
    /// Transmit descriptors (multiple of 8, 80..=4096).
    pub tx_count: u32,
    /// Receive descriptors (multiple of 8, 80..=4096).
    pub rx_count: u32,
    /// Receive buffer length (a size RCTL can encode).
    pub rx_buf_len: u32,
}

/// Where the kernel half put the rings (it programs the base registers itself; this is
/// what the user half learns about them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub struct RingBases {
    /// Transmit descriptor ring bus address.
    pub tx_bus: u64,
    /// Its length in bytes (TDLEN).
    pub tx_len: u32,
    /// Receive descriptor ring bus address.
    pub rx_bus: u64,
    /// Its length in bytes (RDLEN).
    pub rx_len: u32,
}

/// Smallest ring the driver uses (the 8254x needs a multiple of 8 descriptors: RDLEN/TDLEN
/// are multiples of 128 bytes).
pub const MIN_RING: u32 = 80;
/// Largest ring.
pub const MAX_RING: u32 = 4096;

/// Validates a ring size.
pub fn check_ring_size(what: &str, n: u32) -> Result<(), DriverError> {
    if !n.is_multiple_of(8) || !(MIN_RING..=MAX_RING).contains(&n) {
        let why = format!("{n} descriptors: use a multiple of 8 in {MIN_RING}..={MAX_RING}");
        return Err(DriverError::invalid(what, why));
    }
    Ok(())
}

/// Allocates rings and programs them into the device, replacing (and freeing) the old
/// ones, which must be quiescent (see [`ring_quiesce`]; else [`DriverError::Busy`]):
///
/// * transmit: nothing pending. The transmitter is held off while TDBA/TDLEN/TDH/TDT are
///   written (SDM 13.4.38-41: TDH is written only with the transmitter disabled) and
///   TCTL is put back as it was.
/// * receive, receiver disabled: RDBA/RDLEN, RDH = 0, buffers, RDT.
/// * receive, receiver **running**: the old ring must be parked at its end with everything
///   delivered (the hardware's head and tail both 0, so it owns no descriptor and holds
///   arriving frames in its packet buffer). RDBA/RDLEN are pointed at the new ring without
///   writing RDH (SDM 13.4.28 forbids that while the receiver runs; it is 0 and stays
///   valid), the new ring's buffers are given from index 0, and a frame the hardware was
///   in the middle of continues into them (the gathered part is carried over). Nothing in
///   the packet buffer is dropped.
#[critical]
pub fn rings_alloc(dev: DevId, req: &RingRequest) -> Result<RingBases, DriverError> {
    check_ring_size("transmit ring size", req.tx_count)?;
    check_ring_size("receive ring size", req.rx_count)?;
    let buf_len = req.rx_buf_len as usize;
    let buf_bits = regs::rctl_buffer_bits(buf_len).ok_or_else(|| {
        DriverError::invalid("receive buffer length", "use 256, 512, 1024 ... 16384")
    })?;
    let k = lookup(dev)?;
    let (Ok(mut tg), Ok(mut rg)) = (k.tx.lock(), k.rx.lock()) else {
        return Err(DriverError::Busy);
    };
    let rx_on = k.rd(regs::RCTL) & rctl::EN != 0;
    let partial = match rg.ring.as_mut() {
        _ if tg.ring.as_ref().is_some_and(|t| t.pending() > 0) => return Err(DriverError::Busy),
        Some(r) if rx_on => r.take_parked()?,
        _ => Default::default(),
    };
    let tx = TxRing::new(&*k.hw.dma, req.tx_count)?;
    let mut rx = RxRing::new(&*k.hw.dma, req.rx_count, buf_len, partial)?;
    let tctl = k.rd(regs::TCTL);
    k.wr(regs::TCTL, tctl & !tctl::EN);
    k.program(regs::TDBAL, tx.desc_bus(), req.tx_count);
    k.wr(regs::TDH, 0);
    k.wr(regs::TDT, 0);
    k.wr(regs::TCTL, tctl);
    k.program(regs::RDBAL, rx.desc_bus(), req.rx_count);
    if !rx_on {
        k.wr(regs::RDH, 0);
    }
    k.wr(regs::RDT, rx.refill());
    k.policy.lock().live = Some(buf_bits);
    let bases = RingBases {
        tx_bus: tx.desc_bus(),
        tx_len: req.tx_count * 16,
        rx_bus: rx.desc_bus(),
        rx_len: req.rx_count * 16,
    };
    (tg.ring, rg.ring) = (Some(tx), Some(rx));
    k.tx_frozen.store(false, Ordering::SeqCst);
    k.wake_tx();
    Ok(bases)
}

impl Kernel {
    /// Writes a ring's base (high half first) and length registers; `bal` is RDBAL or TDBAL
    /// (BAH and LEN follow it in the map, SDM 13.4).
    fn program(&self, bal: u32, bus: u64, count: u32) {
        self.wr(bal + 4, (bus >> 32) as u32);
        self.wr(bal, bus as u32);
        self.wr(bal + 8, count * 16);
    }
}

/// Stops DMA, clears the ring registers and frees the rings.
#[critical]
pub fn rings_free(dev: DevId) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    // The ring locks first: the service thread's check of the programmed registers
    // (`programmed::check`) must never see rings that exist with their registers cleared.
    let (Ok(mut tg), Ok(mut rg)) = (k.tx.lock(), k.rx.lock()) else {
        return Err(DriverError::Busy);
    };
    k.policy.lock().live = None;
    for reg in [regs::RCTL, regs::TCTL] {
        k.wr(reg, k.rd(reg) & !(rctl::EN | tctl::EN));
    }
    for base in [regs::RDBAL, regs::TDBAL] {
        k.program(base, 0, 0);
    }
    (tg.ring, rg.ring) = (None, None);
    Ok(())
}

/// Quiesces the rings before a resize or close (or, with both `false`, lets them run
/// again). `tx`: xmit answers `Busy` and the finished packets are reclaimed. `rx`: the
/// receive ring is no longer refilled past its end, so the hardware stops at index 0 and
/// holds further frames in its packet buffer; everything completed is delivered. Returns
/// the transmit descriptors still pending and the receive descriptors still to be filled
/// before the ring's end (both 0: quiescent). The waiting happens in the user half, never
/// here.
#[critical]
pub fn ring_quiesce(dev: DevId, tx: bool, rx: bool) -> Result<(u32, u32), DriverError> {
    let k = lookup(dev)?;
    k.tx_frozen.store(tx, Ordering::SeqCst);
    if let Some(r) = k.rx.lock()?.ring.as_mut() {
        r.parked = rx;
    }
    while crate::hot::rx::clean(&k, 256) > 0 && rx {}
    crate::hot::tx::clean(&k);
    k.wake_tx();
    let tx_pending = k.tx.lock()?.ring.as_ref().map_or(0, TxRing::pending);
    let rx_to_end = k.rx.lock()?.ring.as_ref().map_or(0, RxRing::to_end);
    Ok((tx_pending, rx_to_end))
}

/// Starts or stops capturing received frames for the user half (the loopback self-test);
/// returns (and clears) what was captured so far.
#[critical]
pub fn rx_capture(dev: DevId, on: bool) -> Result<Vec<RxFrame>, DriverError> {
    let k = lookup(dev)?;
    let mut c = k.capture.lock();
    let got = c.take().unwrap_or_default();
    *c = on.then(Vec::new);
    Ok(got)
}

/// Asks the kernel half's host to run the reset task (the watchdog found a transmit hang).
#[critical]
pub fn schedule_reset(dev: DevId) -> Result<(), DriverError> {
    lookup(dev)?.work.post(work::RESET);
    Ok(())
}

/// Starts a device reset (CTRL.RST): masks interrupts, frees the rings (stopping DMA),
/// enables memory space and bus mastering again in PCI COMMAND (in case what the reset
/// recovers from was a function whose bus mastering had been turned off) and sets CTRL.RST.
/// The user half waits for the bit to clear ([`crate::probe::reset_hw`]).
#[critical]
pub fn reset_start(dev: DevId) -> Result<(), DriverError> {
    irq_set_mask(dev, 0)?;
    rings_free(dev)?;
    let k = lookup(dev)?;
    let cmd = k.hw.pci.config_read16(pci::COMMAND);
    let on = pci::command::MEMORY | pci::command::BUS_MASTER;
    k.hw.pci.config_write16(pci::COMMAND, cmd | on);
    k.wr(regs::CTRL, k.rd(regs::CTRL) | ctrl::RST);
    Ok(())
}
