//! The kernel half's device object: a [`Kernel`] per attached controller, the registry
//! that maps a [`DevId`] to it, and the work queue the kernel half posts deferred work on
//! (a reset, for the user half). The hot path ([`crate::hot`]) works on this object; the
//! checked services the user half calls are in the parent module.

use std::sync::Arc;
use std::time::Duration;

use microdriver_rt::Marshal;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::NvmeError;
use crate::hot::io::{IoDone, IoState};
use crate::hw::Hw;
use crate::kernel::admin::{AdminQueue, AsyncEvent, MAX_EVENTS};
use crate::policy::RegisterPolicy;
use crate::regs;

/// The identity of an attached controller: what the user half holds instead of a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Marshal)]
pub struct DevId(pub u64);

/// Work the kernel half posts for the user half (the hot path never waits for it).
pub mod work {
    /// The controller needs a reset: fatal status, or a command timed out.
    pub const RESET: u32 = 1 << 0;
    /// An asynchronous event request completed: the user half reads the event's log
    /// page and re-arms.
    pub const EVENT: u32 = 1 << 1;
}

/// Pending deferred work and its condition variable.
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

    /// Waits up to `timeout` for work; takes and returns the bits (0 on timeout).
    pub fn wait(&self, timeout: Duration) -> u32 {
        let mut g = self.bits.lock();
        if *g == 0 {
            self.cv.wait_for(&mut g, timeout);
        }
        std::mem::take(&mut *g)
    }

    /// Wakes waiters without posting work.
    pub fn kick(&self) {
        self.cv.notify_all();
    }
}

/// Where completed I/O goes (the block layer's completion callback).
pub type IoSink = Arc<dyn Fn(IoDone) + Send + Sync>;

/// The kernel half of one controller.
pub struct Kernel {
    pub(crate) id: DevId,
    pub(crate) hw: Hw,
    /// CAP.DSTRD, read once at attach: doorbells are `4 << dstrd` bytes apart.
    pub(crate) dstrd: u32,
    pub(crate) policy: Mutex<RegisterPolicy>,
    /// The admin queue (None until the kernel half programs one for the user half).
    pub(crate) admin: Mutex<Option<AdminQueue>>,
    /// The I/O queue pair, the in-flight table and the held requests.
    pub(crate) io: Mutex<IoState>,
    pub(crate) sink: RwLock<Option<IoSink>>,
    /// Asynchronous events completed and not yet taken by the user half, and how many
    /// were dropped because it did not take them (it survives controller resets).
    pub(crate) events: Mutex<(Vec<AsyncEvent>, u64)>,
    /// Deferred work for the user half.
    pub work: WorkQueue,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

pub(super) static REGISTRY: RwLock<Vec<Option<Arc<Kernel>>>> = RwLock::new(Vec::new());

/// PCI COMMAND and its memory-space and bus-master bits.
const PCI_COMMAND: u16 = 0x04;
const PCI_MEMORY_BUS_MASTER: u16 = 0x2 | 0x4;

/// Attaches a controller to the kernel half: checks it is NVMe, enables memory space and
/// bus mastering, masks its interrupts and registers it. Returns its id.
pub fn attach(hw: Hw) -> Result<DevId, NvmeError> {
    let class = hw.pci.config_read32(0x08) >> 8;
    if class != 0x01_08_02 {
        return Err(NvmeError::NotNvme { class });
    }
    let cmd = hw.pci.config_read16(PCI_COMMAND);
    hw.pci
        .config_write16(PCI_COMMAND, cmd | PCI_MEMORY_BUS_MASTER);
    let cap = u64::from(hw.mmio.read32(regs::CAP)) | u64::from(hw.mmio.read32(regs::CAP + 4)) << 32;
    let mut reg = REGISTRY.write();
    let slot = reg.iter().position(Option::is_none).unwrap_or(reg.len());
    let id = DevId(slot as u64);
    let k = Arc::new(Kernel {
        id,
        hw,
        dstrd: regs::cap::dstrd(cap),
        policy: Mutex::new(RegisterPolicy::default()),
        admin: Mutex::new(None),
        io: Mutex::new(IoState::new()),
        sink: RwLock::new(None),
        events: Mutex::new((Vec::new(), 0)),
        work: WorkQueue::default(),
    });
    if slot == reg.len() {
        reg.push(Some(k));
    } else {
        reg[slot] = Some(k);
    }
    Ok(id)
}

/// The kernel half of `dev`.
pub fn lookup(dev: DevId) -> Result<Arc<Kernel>, NvmeError> {
    let reg = REGISTRY.read();
    usize::try_from(dev.0)
        .ok()
        .and_then(|i| reg.get(i))
        .and_then(Option::clone)
        .ok_or(NvmeError::NoDevice(dev.0))
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

    pub(crate) fn rd(&self, off: u32) -> u32 {
        self.hw.mmio.read32(off)
    }

    pub(crate) fn wr(&self, off: u32, v: u32) {
        self.hw.mmio.write32(off, v)
    }

    /// Writes a 64-bit register as two dwords, low first (NVMe 1.4, 3.1: 64-bit registers
    /// may be written as two 32-bit accesses).
    pub(crate) fn wr64(&self, off: u32, v: u64) {
        self.wr(off, v as u32);
        self.wr(off + 4, (v >> 32) as u32);
    }

    /// Rings submission queue `qid`'s tail doorbell.
    pub(crate) fn ring_sq(&self, qid: u16, tail: u16) {
        self.wr(regs::doorbell(qid, false, self.dstrd), u32::from(tail));
    }

    /// Rings completion queue `qid`'s head doorbell.
    pub(crate) fn ring_cq(&self, qid: u16, head: u16) {
        self.wr(regs::doorbell(qid, true, self.dstrd), u32::from(head));
    }

    /// Reaps the admin completion queue (the caller holds the admin queue): rings its head
    /// doorbell, keeps the events that arrived for the user half and posts
    /// [`work::EVENT`] for them.
    pub(crate) fn reap_admin(&self, a: &mut AdminQueue) {
        let (any, events) = a.reap();
        if any {
            self.ring_cq(0, a.cq.head());
        }
        if events.is_empty() {
            return;
        }
        let mut q = self.events.lock();
        for e in events {
            if q.0.len() >= MAX_EVENTS {
                q.0.remove(0);
                q.1 += 1;
            }
            q.0.push(e);
        }
        drop(q);
        self.work.post(work::EVENT);
    }

    /// Installs where completed I/O goes.
    pub fn set_sink(&self, sink: Option<IoSink>) {
        *self.sink.write() = sink;
    }

    pub(crate) fn deliver(&self, done: Vec<IoDone>) {
        if done.is_empty() {
            return;
        }
        let sink = self.sink.read().clone();
        if let Some(s) = sink {
            done.into_iter().for_each(|d| s(d));
        }
    }
}
