//! The kernel half's device object: a [`Kernel`] per attached device, the registry that
//! maps a [`DevId`] to it, and the deferred-work queue. The hot path (`crate::hot`) works
//! on this object; the checked services the user half calls are in the parent module.

use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::Arc;
use std::time::Duration;

use microdriver_rt::Marshal;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::DriverError;
use crate::frame::{tx_offload, RxFrame};
use crate::hw::Hw;
use crate::policy::RegisterPolicy;
use crate::regs::{self, pci};
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

/// Where received frames go: called once per receive poll with the frames it took off the
/// ring, in ring order (one call, so a sink takes its own locks once per batch).
pub type RxSink = Arc<dyn Fn(Vec<RxFrame>) + Send + Sync>;

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

pub(super) static REGISTRY: RwLock<Vec<Option<Arc<Kernel>>>> = RwLock::new(Vec::new());

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

    /// Sends received frames up (or into the self-test capture); returns how many were
    /// dropped because nobody was listening.
    pub(crate) fn deliver(&self, frames: Vec<RxFrame>) -> u64 {
        if let Some(c) = self.capture.lock().as_mut() {
            c.extend(frames);
            return 0;
        }
        self.sink.read().clone().map_or(frames.len() as u64, |s| {
            s(frames);
            0
        })
    }

    /// Installs where received frames go (the network stack's entry point).
    pub fn set_sink(&self, sink: Option<RxSink>) {
        *self.sink.write() = sink;
    }

    /// Whether the carrier is on (the link is up and the interface open): transmit refuses
    /// while it is off.
    pub fn carrier(&self) -> bool {
        self.carrier.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The transmit offloads the user half has turned on ([`tx_offload`] bits): what a
    /// packet may ask for.
    pub fn tx_offloads(&self) -> u32 {
        self.cfg
            .tx_offloads
            .load(std::sync::atomic::Ordering::Relaxed)
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
