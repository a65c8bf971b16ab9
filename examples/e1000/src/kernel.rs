//! The kernel half's device object and the services the user half calls (downcalls).
//!
//! A [`Kernel`] owns one device's handles ([`Hw`]), the register policy, the rings and the
//! hot-path counters. It is registered under a [`DevId`]; the user half holds only that id,
//! so every entry point here takes a `DevId` and looks the device up. Each `pub fn` taking a
//! `DevId` is `#[critical]`: user-half callers get a downcall stub, so the user half reaches
//! registers, DMA and rings only through these functions, and each checks what it is asked
//! ([`crate::policy`] for registers). [`attach`] takes the device's handles and is called
//! by the kernel half's host only.

use microdriver_rt::critical;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use microdriver_rt::Marshal;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::DriverError;
use crate::frame::{tx_offload, RxFrame};
use crate::hot::rx::RxRing;
use crate::hot::tx::TxRing;
use crate::hw::Hw;
use crate::policy::RegisterPolicy;
use crate::regs::{self, ctrl, pci, rctl, tctl};
use crate::shared::{HotStats, PollState, RxQueue, SharedState, TxQueue};
use crate::Shared;

/// The identity of an attached device: what the user half holds instead of a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Marshal)]
pub struct DevId(pub u64);

/// Work the kernel half posts for the user half (deferred; the hot path never waits).
pub mod work {
    /// Link status changed: run the link check now.
    pub const LINK: u32 = 1 << 0;
    /// The transmitter hung (or a fatal error): reset the device.
    pub const RESET: u32 = 1 << 1;
}

/// Pending deferred work and the condition variable the service thread waits on.
#[derive(Debug, Default)]
pub struct WorkQueue {
    bits: Mutex<u32>,
    cv: Condvar,
}

impl WorkQueue {
    /// Posts work bits and wakes the service thread.
    pub fn post(&self, bits: u32) {
        *self.bits.lock() |= bits;
        self.cv.notify_all();
    }

    /// Waits up to `timeout` for work; takes and returns the pending bits (0 on timeout).
    pub fn wait(&self, timeout: Duration) -> u32 {
        let mut g = self.bits.lock();
        if *g == 0 {
            self.cv.wait_for(&mut g, timeout);
        }
        std::mem::take(&mut *g)
    }

    /// The bits posted and not taken yet.
    pub fn pending(&self) -> u32 {
        *self.bits.lock()
    }

    /// Wakes waiters without posting work (used at shutdown).
    pub fn kick(&self) {
        self.cv.notify_all();
    }
}

/// Parameters of the hot path the user half sets.
#[derive(Debug)]
pub(crate) struct HotConfig {
    /// Longest frame accepted (without FCS, with a VLAN tag).
    pub max_frame: AtomicU32,
    /// Set IDE on transmit descriptors (use TIDV/TADV).
    pub tx_ide: AtomicBool,
    /// Report receive checksum status.
    pub rx_csum: AtomicBool,
    /// The transmit offloads packets may ask for ([`tx_offload`] bits).
    pub tx_offloads: AtomicU32,
}

impl Default for HotConfig {
    fn default() -> Self {
        Self {
            max_frame: AtomicU32::new(1518),
            tx_ide: AtomicBool::new(false),
            rx_csum: AtomicBool::new(true),
            tx_offloads: AtomicU32::new(tx_offload::ALL),
        }
    }
}

/// Where received frames go.
pub type RxSink = Arc<dyn Fn(RxFrame) + Send + Sync>;

/// The kernel half of one device.
pub struct Kernel {
    pub(crate) id: DevId,
    pub(crate) hw: Hw,
    pub(crate) policy: Mutex<RegisterPolicy>,
    /// The transmit ring and counters (shared with the user half by snapshot).
    pub(crate) tx: Shared<TxQueue>,
    /// The receive ring and counters (shared with the user half by snapshot).
    pub(crate) rx: Shared<RxQueue>,
    /// Interrupt and poll counters, adaptive throttling (shared with the user half by
    /// snapshot).
    pub(crate) poll: Shared<PollState>,
    pub(crate) irq_mask: AtomicU32,
    pub(crate) carrier: AtomicBool,
    /// Set while the user half drains the transmit ring (resize, down): xmit refuses.
    pub(crate) tx_frozen: AtomicBool,
    pub(crate) cfg: HotConfig,
    pub(crate) sink: RwLock<Option<RxSink>>,
    pub(crate) capture: Mutex<Option<Vec<RxFrame>>>,
    /// Taken before the receive ring's lock is released and held while delivering, so two
    /// cleaners (the poll loop and a drain) hand frames up in ring order.
    pub(crate) rx_order: Mutex<()>,
    /// Deferred work for the user half.
    pub work: WorkQueue,
    /// Notified when TX clean frees descriptors (a stopped queue may be woken).
    pub(crate) tx_wake: (Mutex<u64>, Condvar),
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

static REGISTRY: RwLock<Vec<Option<Arc<Kernel>>>> = RwLock::new(Vec::new());

/// Attaches a device to the kernel half: enables memory space and bus mastering, masks its
/// interrupts and registers it. Returns its id (what the user half's probe gets).
pub fn attach(hw: Hw) -> DevId {
    let cmd = hw.pci.config_read16(pci::COMMAND);
    hw.pci.config_write16(
        pci::COMMAND,
        cmd | pci::command::MEMORY | pci::command::BUS_MASTER,
    );
    hw.mmio.write32(regs::IMC, !0);
    let mut reg = REGISTRY.write();
    let slot = reg.iter().position(Option::is_none).unwrap_or(reg.len());
    let id = DevId(slot as u64);
    let shared = SharedState::new();
    let k = Arc::new(Kernel {
        id,
        hw,
        policy: Mutex::new(RegisterPolicy::new()),
        tx: shared.tx,
        rx: shared.rx,
        poll: shared.poll,
        irq_mask: AtomicU32::new(0),
        carrier: AtomicBool::new(false),
        tx_frozen: AtomicBool::new(false),
        cfg: HotConfig::default(),
        sink: RwLock::new(None),
        capture: Mutex::new(None),
        rx_order: Mutex::new(()),
        work: WorkQueue::default(),
        tx_wake: (Mutex::new(0), Condvar::new()),
    });
    if slot == reg.len() {
        reg.push(Some(k));
    } else {
        reg[slot] = Some(k);
    }
    id
}

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

/// The kernel half of `dev`.
pub fn lookup(dev: DevId) -> Result<Arc<Kernel>, DriverError> {
    let reg: &Vec<Option<Arc<Kernel>>> = &REGISTRY.read();
    let k = usize::try_from(dev.0).ok().and_then(|i| reg.get(i));
    k.and_then(Option::clone)
        .ok_or(DriverError::NoDevice(dev.0))
}

impl Kernel {
    /// The device's id.
    pub fn id(&self) -> DevId {
        self.id
    }

    /// The device's handles (kernel half only).
    pub fn hw(&self) -> &Hw {
        &self.hw
    }

    /// Direct register read (kernel half only: no policy).
    pub(crate) fn rd(&self, off: u32) -> u32 {
        self.hw.mmio.read32(off)
    }

    /// Direct register write (kernel half only: no policy).
    pub(crate) fn wr(&self, off: u32, v: u32) {
        self.hw.mmio.write32(off, v)
    }

    /// Sends a received frame up (or into the self-test capture); false if nobody was
    /// listening (the frame is dropped).
    pub(crate) fn deliver(&self, f: RxFrame) -> bool {
        if let Some(c) = self.capture.lock().as_mut() {
            c.push(f);
            return true;
        }
        self.sink.read().clone().map(|s| s(f)).is_some()
    }

    /// Installs where received frames go (the network stack's entry point).
    pub fn set_sink(&self, sink: Option<RxSink>) {
        *self.sink.write() = sink;
    }

    /// Wakes transmitters waiting for a stopped queue.
    pub(crate) fn wake_tx(&self) {
        *self.tx_wake.0.lock() += 1;
        self.tx_wake.1.notify_all();
    }

    /// Waits up to `timeout` for the next TX wake-up.
    pub fn wait_tx_wake(&self, timeout: Duration) {
        let (m, cv) = &self.tx_wake;
        let mut g = m.lock();
        cv.wait_for(&mut g, timeout);
    }

    /// The hot-path counters, named: read under the kernel half's own locks (no copy
    /// through the wire format, as a user-half snapshot needs).
    pub fn hot_stats(&self) -> HotStats {
        let tx = self.tx.lock().map(|q| q.stats).unwrap_or_default();
        let rx = self.rx.lock().map(|q| q.stats).unwrap_or_default();
        let poll = self.poll.lock().map(|p| *p).unwrap_or_default();
        HotStats::new(tx, rx, &poll)
    }

    /// Handles to the shared hot state.
    pub(crate) fn shared(&self) -> SharedState {
        SharedState {
            tx: self.tx.clone(),
            rx: self.rx.clone(),
            poll: self.poll.clone(),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Downcalls: the user half's only way to the device. Every argument is checked.
// ------------------------------------------------------------------------------------------

/// Reads a register on behalf of the user half (checked by the register policy).
#[critical]
pub fn reg_read(dev: DevId, off: u32) -> Result<u32, DriverError> {
    let k = lookup(dev)?;
    k.policy.lock().check(off, None)?;
    Ok(k.rd(off))
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
