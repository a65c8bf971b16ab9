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
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use microdriver_rt::Marshal;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::DriverError;
use crate::frame::RxFrame;
use crate::hot::rx::RxRing;
use crate::hot::tx::TxRing;
use crate::hw::Hw;
use crate::policy::RegisterPolicy;
use crate::regs::{self, ctrl, pci, rctl, tctl};
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

    /// Wakes waiters without posting work (used at shutdown).
    pub fn kick(&self) {
        self.cv.notify_all();
    }
}

/// Hot-path counters (atomics: the hot path bumps them without taking a lock).
#[derive(Debug, Default)]
pub(crate) struct HotCounters {
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_busy: AtomicU64,
    pub tx_restart_queue: AtomicU64,
    pub tx_dropped: AtomicU64,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub rx_errors: AtomicU64,
    pub rx_dropped: AtomicU64,
    pub rx_csum_good: AtomicU64,
    pub rx_csum_bad: AtomicU64,
    pub rx_copybreak: AtomicU64,
    pub interrupts: AtomicU64,
    pub polls: AtomicU64,
}

/// A snapshot of the hot-path counters (what the user half's statistics report).
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
    /// Frames copied into a right-sized buffer (at most the copybreak length).
    pub rx_copybreak: u64,
    /// Interrupts taken.
    pub interrupts: u64,
    /// Poll rounds run.
    pub polls: u64,
}

/// Parameters of the hot path the user half sets.
#[derive(Debug)]
pub(crate) struct HotConfig {
    /// Frames up to this length are copied into exactly-sized buffers.
    pub copybreak: AtomicU32,
    /// Longest frame accepted (without FCS, with a VLAN tag).
    pub max_frame: AtomicU32,
    /// Set IDE on transmit descriptors (use TIDV/TADV).
    pub tx_ide: AtomicBool,
    /// Report receive checksum status.
    pub rx_csum: AtomicBool,
}

impl Default for HotConfig {
    fn default() -> Self {
        Self {
            copybreak: AtomicU32::new(256),
            max_frame: AtomicU32::new(1518),
            tx_ide: AtomicBool::new(false),
            rx_csum: AtomicBool::new(true),
        }
    }
}

/// Where received frames go.
pub type RxSink = Arc<dyn Fn(RxFrame) + Send + Sync>;

/// The kernel half of one device.
pub struct Kernel {
    pub(crate) id: DevId,
    pub(crate) hw: Hw,
    pub(crate) policy: Shared<RegisterPolicy>,
    pub(crate) tx: Shared<Option<TxRing>>,
    pub(crate) rx: Shared<Option<RxRing>>,
    pub(crate) irq_mask: AtomicU32,
    pub(crate) carrier: AtomicBool,
    /// Set while the user half drains the transmit ring (resize, down): xmit refuses.
    pub(crate) tx_frozen: AtomicBool,
    pub(crate) counters: HotCounters,
    pub(crate) cfg: HotConfig,
    pub(crate) sink: RwLock<Option<RxSink>>,
    pub(crate) capture: Mutex<Option<VecDeque<RxFrame>>>,
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
    let k = Arc::new(Kernel {
        id,
        hw,
        policy: Shared::new(RegisterPolicy::new()),
        tx: Shared::new(None),
        rx: Shared::new(None),
        irq_mask: AtomicU32::new(0),
        carrier: AtomicBool::new(false),
        tx_frozen: AtomicBool::new(false),
        counters: HotCounters::default(),
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
    let k = lookup(dev)?;
    k.stop_dma();
    k.hw.mmio.write32(regs::IMC, !0);
    k.free_rings();
    let mut reg = REGISTRY.write();
    if let Some(slot) = usize::try_from(dev.0).ok().and_then(|i| reg.get_mut(i)) {
        *slot = None;
    }
    Ok(())
}

/// The kernel half of `dev`.
pub fn lookup(dev: DevId) -> Result<Arc<Kernel>, DriverError> {
    let reg = REGISTRY.read();
    usize::try_from(dev.0)
        .ok()
        .and_then(|i| reg.get(i))
        .and_then(Option::clone)
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

    /// Direct register write (kernel half only: no policy; ring registers are noted).
    pub(crate) fn wr(&self, off: u32, v: u32) {
        if matches!(
            off,
            regs::RDBAL
                | regs::RDBAH
                | regs::RDLEN
                | regs::TDBAL
                | regs::TDBAH
                | regs::TDLEN
                | regs::CTRL
        ) {
            self.policy.lock().note_kernel_write(off, v);
        }
        self.hw.mmio.write32(off, v)
    }

    fn stop_dma(&self) {
        self.wr(regs::RCTL, self.rd(regs::RCTL) & !rctl::EN);
        self.wr(regs::TCTL, self.rd(regs::TCTL) & !tctl::EN);
    }

    fn free_rings(&self) {
        let mut p = self.policy.lock();
        if let Some(t) = self.tx.lock().take() {
            p.revoke_ring(t.desc_bus());
        }
        if let Some(r) = self.rx.lock().take() {
            p.revoke_ring(r.desc_bus());
        }
    }

    /// Sends a received frame up (or into the self-test capture).
    pub(crate) fn deliver(&self, f: RxFrame) {
        if let Some(c) = self.capture.lock().as_mut() {
            c.push_back(f);
            return;
        }
        let sink = self.sink.read().clone();
        match sink {
            Some(s) => s(f),
            None => {
                self.counters.rx_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Installs where received frames go (the network stack's entry point).
    pub fn set_sink(&self, sink: Option<RxSink>) {
        *self.sink.write() = sink;
    }

    /// Wakes transmitters waiting for a stopped queue.
    pub(crate) fn wake_tx(&self) {
        let (m, cv) = &self.tx_wake;
        *m.lock() += 1;
        cv.notify_all();
    }

    /// Waits up to `timeout` for the next TX wake-up.
    pub fn wait_tx_wake(&self, timeout: Duration) {
        let (m, cv) = &self.tx_wake;
        let mut g = m.lock();
        cv.wait_for(&mut g, timeout);
    }

    /// A snapshot of the hot-path counters.
    pub fn hot_stats(&self) -> HotStats {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HotStats {
            tx_packets: l(&c.tx_packets),
            tx_bytes: l(&c.tx_bytes),
            tx_busy: l(&c.tx_busy),
            tx_restart_queue: l(&c.tx_restart_queue),
            tx_dropped: l(&c.tx_dropped),
            rx_packets: l(&c.rx_packets),
            rx_bytes: l(&c.rx_bytes),
            rx_errors: l(&c.rx_errors),
            rx_dropped: l(&c.rx_dropped),
            rx_csum_good: l(&c.rx_csum_good),
            rx_csum_bad: l(&c.rx_csum_bad),
            rx_copybreak: l(&c.rx_copybreak),
            interrupts: l(&c.interrupts),
            polls: l(&c.polls),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Downcalls: the user half's only way to the device.
// ------------------------------------------------------------------------------------------

/// Reads a register on behalf of the user half (checked by the register policy).
#[critical]
pub fn reg_read(dev: DevId, off: u32) -> Result<u32, DriverError> {
    let k = lookup(dev)?;
    k.policy.lock().check_read(off)?;
    Ok(k.rd(off))
}

/// Writes a register on behalf of the user half (checked by the register policy).
#[critical]
pub fn reg_write(dev: DevId, off: u32, value: u32) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    let mut p = k.policy.lock();
    p.check_write(off, value)?;
    k.hw.mmio.write32(off, value);
    Ok(())
}

/// Reads a 16-bit field of PCI configuration space (the standard header only, read-only
/// for the user half: the kernel half alone sets COMMAND).
#[critical]
pub fn pci_read16(dev: DevId, off: u16) -> Result<u16, DriverError> {
    if off >= 0x40 || off % 2 != 0 {
        return Err(DriverError::invalid(
            "PCI config offset",
            format!("{off:#x}: the user half may read the aligned standard header (0..0x40) only"),
        ));
    }
    Ok(lookup(dev)?.hw.pci.config_read16(off))
}

/// Sets the interrupt causes the device may raise (0 masks everything). The poll loop
/// re-enables exactly this mask when it completes.
#[critical]
pub fn irq_set_mask(dev: DevId, mask: u32) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    k.irq_mask.store(mask, Ordering::SeqCst);
    k.hw.mmio.write32(regs::IMC, !mask);
    if mask != 0 {
        k.hw.mmio.write32(regs::IMS, mask);
    }
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
    let was = k.carrier.swap(up, Ordering::SeqCst);
    if up && !was {
        k.wake_tx();
    }
    Ok(())
}

/// The hot-path counters.
#[critical]
pub fn hot_stats(dev: DevId) -> Result<HotStats, DriverError> {
    Ok(lookup(dev)?.hot_stats())
}

/// The hot path's parameters, as the user half configures them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Marshal)]
pub struct HotParams {
    /// Frames up to this length are copied into exactly-sized buffers.
    pub copybreak: u32,
    /// Longest frame accepted, without FCS, including a VLAN tag.
    pub max_frame: u32,
    /// Delay transmit write-back interrupts (IDE, TIDV/TADV).
    pub tx_ide: bool,
    /// Report receive checksum status.
    pub rx_csum: bool,
}

/// Sets the hot path's parameters.
#[critical]
pub fn set_hot_params(dev: DevId, p: &HotParams) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    k.cfg.copybreak.store(p.copybreak, Ordering::Relaxed);
    k.cfg.max_frame.store(p.max_frame, Ordering::Relaxed);
    k.cfg.tx_ide.store(p.tx_ide, Ordering::Relaxed);
    k.cfg.rx_csum.store(p.rx_csum, Ordering::Relaxed);
    Ok(())
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

/// Where the kernel half put the rings: what the user half programs into the base
/// registers (and all the DMA it ever learns about).
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
    if n % 8 != 0 || !(MIN_RING..=MAX_RING).contains(&n) {
        return Err(DriverError::invalid(
            what,
            format!("{n} descriptors: use a multiple of 8 in {MIN_RING}..={MAX_RING}"),
        ));
    }
    Ok(())
}

/// Allocates new rings (replacing and freeing any old ones, after stopping DMA) and allows
/// their bases in the register policy.
#[critical]
pub fn rings_alloc(dev: DevId, req: &RingRequest) -> Result<RingBases, DriverError> {
    check_ring_size("transmit ring size", req.tx_count)?;
    check_ring_size("receive ring size", req.rx_count)?;
    let buf_len = usize::try_from(req.rx_buf_len).unwrap_or(0);
    if regs::rctl_buffer_bits(buf_len).is_none() {
        return Err(DriverError::invalid(
            "receive buffer length",
            format!("{buf_len}: use 256, 512, 1024, 2048, 4096, 8192 or 16384"),
        ));
    }
    let k = lookup(dev)?;
    k.stop_dma();
    k.free_rings();
    let tx = TxRing::new(&*k.hw.dma, req.tx_count)?;
    let rx = RxRing::new(&*k.hw.dma, req.rx_count, buf_len)?;
    let bases = RingBases {
        tx_bus: tx.desc_bus(),
        tx_len: req.tx_count * 16,
        rx_bus: rx.desc_bus(),
        rx_len: req.rx_count * 16,
    };
    {
        let mut p = k.policy.lock();
        p.allow_ring(bases.tx_bus, u64::from(bases.tx_len));
        p.allow_ring(bases.rx_bus, u64::from(bases.rx_len));
    }
    *k.tx.lock() = Some(tx);
    *k.rx.lock() = Some(rx);
    Ok(bases)
}

/// Stops DMA and frees the rings.
#[critical]
pub fn rings_free(dev: DevId) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    k.stop_dma();
    k.free_rings();
    Ok(())
}

/// Resets the transmit ring's indices (TDH = TDT = 0); call after programming TDBA/TDLEN.
#[critical]
pub fn tx_start(dev: DevId) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    let mut g = k.tx.lock();
    let t = g
        .as_mut()
        .ok_or_else(|| DriverError::invalid("transmit ring", "not allocated"))?;
    t.reset()?;
    k.wr(regs::TDH, 0);
    k.wr(regs::TDT, 0);
    k.tx_frozen.store(false, Ordering::SeqCst);
    drop(g);
    k.wake_tx();
    Ok(())
}

/// Resets the receive ring (RDH = 0), gives every buffer to the hardware and sets RDT.
#[critical]
pub fn rx_start(dev: DevId) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    let mut g = k.rx.lock();
    let r = g
        .as_mut()
        .ok_or_else(|| DriverError::invalid("receive ring", "not allocated"))?;
    r.reset()?;
    k.wr(regs::RDH, 0);
    let tail = r.refill()?;
    if let Some(t) = tail {
        k.wr(regs::RDT, t);
    }
    Ok(())
}

/// Stops accepting packets for transmission (xmit answers `Busy`), reclaims what the
/// hardware has finished and returns the descriptors still in flight. The user half calls
/// it until it returns 0 before taking the interface down or resizing, so nothing the
/// kernel half accepted is lost; the waiting happens in the user half, never here.
#[critical]
pub fn tx_freeze(dev: DevId) -> Result<u32, DriverError> {
    let k = lookup(dev)?;
    k.tx_frozen.store(true, Ordering::SeqCst);
    let mut g = k.tx.lock();
    Ok(match g.as_mut() {
        None => 0,
        Some(t) => {
            crate::hot::tx::clean_locked(&k, t);
            t.pending()
        }
    })
}

/// Lets transmission resume after [`tx_freeze`] without restarting the ring.
#[critical]
pub fn tx_thaw(dev: DevId) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    k.tx_frozen.store(false, Ordering::SeqCst);
    k.wake_tx();
    Ok(())
}

/// Delivers every frame the receiver has completed (after the user half disabled the
/// receiver and before it frees the ring): nothing the hardware completed is dropped.
#[critical]
pub fn rx_drain(dev: DevId) -> Result<u32, DriverError> {
    let k = lookup(dev)?;
    let mut n = 0;
    loop {
        let got = crate::hot::rx::clean(&k, 256);
        n += got;
        if got == 0 {
            return Ok(n);
        }
    }
}

/// Transmit progress, for the watchdog's hang check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub struct TxProgress {
    /// Descriptors handed to the hardware and not yet reclaimed.
    pub pending: u32,
    /// The next descriptor TX clean will look at.
    pub next_to_clean: u32,
    /// How long the oldest pending packet has waited, in milliseconds.
    pub oldest_ms: u64,
    /// Whether the queue is stopped (ring full).
    pub stopped: bool,
}

/// The transmit ring's progress.
#[critical]
pub fn tx_progress(dev: DevId) -> Result<TxProgress, DriverError> {
    let k = lookup(dev)?;
    let g = k.tx.lock();
    Ok(g.as_ref().map(TxRing::progress).unwrap_or_default())
}

/// Starts or stops capturing received frames for the user half (the loopback self-test);
/// returns what was captured when stopping.
#[critical]
pub fn rx_capture(dev: DevId, on: bool) -> Result<Vec<RxFrame>, DriverError> {
    let k = lookup(dev)?;
    let mut c = k.capture.lock();
    if on {
        *c = Some(VecDeque::new());
        Ok(Vec::new())
    } else {
        Ok(c.take().map(Vec::from).unwrap_or_default())
    }
}

/// Takes the frames captured so far, leaving the capture on.
#[critical]
pub fn rx_capture_take(dev: DevId) -> Result<Vec<RxFrame>, DriverError> {
    let k = lookup(dev)?;
    let mut c = k.capture.lock();
    Ok(c.as_mut()
        .map(|q| q.drain(..).collect())
        .unwrap_or_default())
}

/// Asks the kernel half's host to run the reset task (the watchdog found a transmit hang).
#[critical]
pub fn schedule_reset(dev: DevId) -> Result<(), DriverError> {
    lookup(dev)?.work.post(work::RESET);
    Ok(())
}

/// Starts a device reset (CTRL.RST): masks interrupts, stops DMA, enables memory space and
/// bus mastering again in PCI COMMAND (in case what the reset recovers from was a function
/// whose bus mastering had been turned off) and sets CTRL.RST. The user half waits for the
/// bit to clear ([`crate::probe::reset_hw`]).
#[critical]
pub fn reset_start(dev: DevId) -> Result<(), DriverError> {
    let k = lookup(dev)?;
    let cmd = k.hw.pci.config_read16(pci::COMMAND);
    k.hw.pci.config_write16(
        pci::COMMAND,
        cmd | pci::command::MEMORY | pci::command::BUS_MASTER,
    );
    k.irq_mask.store(0, Ordering::SeqCst);
    k.hw.mmio.write32(regs::IMC, !0);
    k.stop_dma();
    let c = k.rd(regs::CTRL);
    k.wr(regs::CTRL, c | ctrl::RST);
    Ok(())
}
