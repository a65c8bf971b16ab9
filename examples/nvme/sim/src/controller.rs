//! The controller's registers, queues and fault knobs.

use std::collections::BTreeMap;
use std::sync::Arc;

use microdriver_hal::seam::{Mmio, PciConfig};
use nvme_regs::{cap, cc, csts, Cqe, Sqe, CQE_LEN, SQE_LEN};
use parking_lot::Mutex;

use crate::SimConfig;
use crate::SimDma;
use crate::SimIrq;

/// A submission queue.
#[derive(Debug, Clone)]
pub(crate) struct SubQ {
    pub base: u64,
    pub size: u16,
    pub head: u16,
    pub tail: u16,
    pub cqid: u16,
}

/// A completion queue.
#[derive(Debug, Clone)]
pub(crate) struct CompQ {
    pub base: u64,
    pub size: u16,
    pub head: u16,
    pub tail: u16,
    pub phase: bool,
    pub ien: bool,
}

/// What the controller counted (the tests' view).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCounters {
    /// Commands completed on I/O queues.
    pub io_commands: u64,
    /// Admin commands completed.
    pub admin_commands: u64,
    /// Controller enables (CC.EN 0 -> 1 that became ready).
    pub enables: u64,
    /// Doorbell writes that named no queue or a value out of range.
    pub bad_doorbells: u64,
    /// Read commands, write commands, flushes.
    pub reads: u64,
    /// Write commands.
    pub writes: u64,
    /// Flush commands.
    pub flushes: u64,
    /// I/O commands aborted by an Abort command.
    pub aborted: u64,
    /// Asynchronous event requests completed (events delivered).
    pub events: u64,
}

/// A command the controller fetched and swallowed (the [`NvmeSim::lose_io`] fault): it
/// completes only if it is aborted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lost {
    pub sqid: u16,
    pub cid: u16,
}

pub(crate) struct State {
    pub cfg: SimConfig,
    pub cc: u32,
    pub csts: u32,
    pub aqa: u32,
    pub asq: u64,
    pub acq: u64,
    pub intms: u32,
    pub sqs: BTreeMap<u16, SubQ>,
    pub cqs: BTreeMap<u16, CompQ>,
    pub storage: Vec<u8>,
    pub lba_shift: u8,
    pub features: BTreeMap<u8, u32>,
    pub granted_queues: Option<u16>,
    pub aers: Vec<u16>,
    /// Asynchronous events raised and not yet delivered (completion dword 0 of each).
    pub events: std::collections::VecDeque<u32>,
    /// Event types (bit per type) delivered and not yet cleared by reading their log.
    pub event_mask: u8,
    /// Composite temperature, Kelvin.
    pub temperature: u16,
    /// Over and under temperature thresholds, Kelvin.
    pub temp_over: u16,
    pub temp_under: u16,
    pub lost: Vec<Lost>,
    pub errors: Vec<[u8; 64]>,
    pub error_count: u64,
    pub counters: SimCounters,
    pub units_read: u64,
    pub units_written: u64,
    pub pci_command: u16,
    // Faults.
    pub never_ready: bool,
    pub hold_io: bool,
    pub reset_clears_hold: bool,
    pub lose_io: u32,
    pub abort_works: bool,
    pub abort_lies: bool,
}

/// The NVMe controller model.
pub struct NvmeSim {
    pub(crate) st: Mutex<State>,
    pub(crate) dma: SimDma,
    irq: Arc<SimIrq>,
}

impl std::fmt::Debug for NvmeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmeSim").finish_non_exhaustive()
    }
}

impl NvmeSim {
    pub(crate) fn new(cfg: SimConfig) -> Self {
        let bytes = usize::try_from(cfg.blocks << cfg.lba_shift).unwrap_or(0);
        let st = State {
            lba_shift: cfg.lba_shift,
            storage: vec![0u8; bytes],
            cfg,
            cc: 0,
            csts: 0,
            aqa: 0,
            asq: 0,
            acq: 0,
            intms: 0,
            sqs: BTreeMap::new(),
            cqs: BTreeMap::new(),
            features: BTreeMap::new(),
            granted_queues: None,
            aers: Vec::new(),
            events: std::collections::VecDeque::new(),
            event_mask: 0,
            temperature: 310,
            temp_over: 343,
            temp_under: 0,
            lost: Vec::new(),
            errors: Vec::new(),
            error_count: 0,
            counters: SimCounters::default(),
            units_read: 0,
            units_written: 0,
            pci_command: 0,
            never_ready: false,
            hold_io: false,
            reset_clears_hold: false,
            lose_io: 0,
            abort_works: true,
            abort_lies: false,
        };
        NvmeSim {
            st: Mutex::new(st),
            dma: SimDma::default(),
            irq: Arc::new(SimIrq::default()),
        }
    }

    /// The DMA bus.
    pub fn dma(&self) -> &SimDma {
        &self.dma
    }

    /// The interrupt line.
    pub fn irq(&self) -> Arc<SimIrq> {
        Arc::clone(&self.irq)
    }

    /// What the controller counted.
    pub fn counters(&self) -> SimCounters {
        self.st.lock().counters
    }

    /// `len` bytes of the namespace at byte offset `off` (the "disk" as the host sees it).
    pub fn media(&self, off: usize, len: usize) -> Vec<u8> {
        let st = self.st.lock();
        st.storage
            .get(off..off + len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }

    /// Fault: the controller never sets CSTS.RDY after CC.EN is set.
    pub fn set_never_ready(&self, on: bool) {
        self.st.lock().never_ready = on;
    }

    /// Fault: I/O queue commands are left in their queues (fetched only when released),
    /// like a controller that stopped making progress. Releasing processes them.
    pub fn hold_io(&self, on: bool) {
        let mut st = self.st.lock();
        st.hold_io = on;
        if !on {
            let qids: Vec<u16> = st.sqs.keys().copied().collect();
            for q in qids {
                self.process(&mut st, q);
            }
        }
    }

    /// Fault: a controller that stops making progress on I/O until it is reset (what a
    /// driver's command timeout is for): like [`hold_io`](Self::hold_io), cleared by the
    /// next controller reset.
    pub fn hold_io_until_reset(&self) {
        let mut st = self.st.lock();
        st.hold_io = true;
        st.reset_clears_hold = true;
    }

    /// Fault: the next `n` I/O commands are fetched and never completed, like commands a
    /// controller lost; an Abort naming one completes it (status Command Abort Requested).
    /// A controller reset forgets them.
    pub fn lose_io(&self, n: u32) {
        self.st.lock().lose_io = n;
    }

    /// Whether Abort aborts a lost command (true, the default) or, like QEMU's controller,
    /// never aborts anything (completion dword 0 bit 0 set).
    pub fn set_abort_works(&self, on: bool) {
        self.st.lock().abort_works = on;
    }

    /// Fault: Abort reports a lost command aborted (dword 0 bit 0 clear) but never
    /// completes it: a controller that lies.
    pub fn set_abort_lies(&self, on: bool) {
        self.st.lock().abort_lies = on;
    }

    /// Commands fetched and swallowed, not aborted yet.
    pub fn lost_io(&self) -> usize {
        self.st.lock().lost.len()
    }

    /// Sets the composite temperature (Kelvin); crossing a threshold raises a SMART /
    /// health asynchronous event if the asynchronous event configuration enables it.
    pub fn set_temperature(&self, kelvin: u16) {
        let mut st = self.st.lock();
        st.temperature = kelvin;
        self.check_temperature(&mut st);
        self.update_irq(&st);
    }

    /// Posts a raw completion for an outstanding asynchronous event request (any dword 0
    /// and status): a device's bad input. Returns false if no request is outstanding.
    pub fn complete_aer_raw(&self, result: u32, status: u16) -> bool {
        let mut st = self.st.lock();
        let ok = self.complete_oldest_aer(&mut st, result, status);
        self.update_irq(&st);
        ok
    }

    /// Completes the oldest outstanding asynchronous event request with `result` and
    /// `status` on the admin completion queue. False if none is outstanding (or the
    /// completion could not be posted).
    fn complete_oldest_aer(&self, st: &mut State, result: u32, status: u16) -> bool {
        if st.aers.is_empty() {
            return false;
        }
        let cid = st.aers.remove(0);
        let sqhd = st.sqs.get(&0).map_or(0, |s| s.head);
        let cqe = Cqe {
            result,
            sqhd,
            sqid: 0,
            cid,
            phase: false,
            status,
            dnr: status != 0,
        };
        self.post(st, 0, cqe)
    }

    /// Asynchronous event requests the controller holds.
    pub fn outstanding_aers(&self) -> usize {
        self.st.lock().aers.len()
    }

    /// Raises the temperature event if the temperature is past a threshold and the
    /// asynchronous event configuration enables temperature warnings (bit 1).
    pub(crate) fn check_temperature(&self, st: &mut State) {
        let enabled = st
            .features
            .get(&nvme_regs::feat::ASYNC_EVENT)
            .copied()
            .unwrap_or(0)
            & u32::from(nvme_regs::aer::SMART_TEMPERATURE)
            != 0;
        if enabled && (st.temperature >= st.temp_over || st.temperature <= st.temp_under) {
            self.raise_event(st, nvme_regs::aer::smart_temperature_event());
        }
    }

    /// Queues an asynchronous event and delivers what can be delivered.
    pub(crate) fn raise_event(&self, st: &mut State, result: u32) {
        if !st.events.contains(&result) {
            st.events.push_back(result);
        }
        self.deliver_events(st);
    }

    /// Completes outstanding asynchronous event requests with queued events whose type is
    /// not masked (a delivered type stays masked until its log page is read with RAE 0).
    pub(crate) fn deliver_events(&self, st: &mut State) {
        while !st.aers.is_empty() {
            let Some(i) = st
                .events
                .iter()
                .position(|e| st.event_mask & 1 << (e & 7) == 0)
            else {
                return;
            };
            let Some(result) = st.events.remove(i) else {
                return;
            };
            st.event_mask |= 1 << (result & 7);
            self.complete_oldest_aer(st, result, 0);
            st.counters.events += 1;
        }
    }

    /// Changes MDTS (as a firmware update would; a driver sees it at its next Identify).
    pub fn set_mdts(&self, mdts: u8) {
        self.st.lock().cfg.mdts = mdts;
    }

    /// Fault: a fatal controller error (CSTS.CFS); the controller stops processing until
    /// it is reset (CC.EN cleared).
    pub fn set_fatal(&self) {
        let mut st = self.st.lock();
        st.csts |= csts::CFS;
    }

    /// Commands waiting in I/O submission queues (fetched or not).
    pub fn queued_io(&self) -> usize {
        let st = self.st.lock();
        st.sqs
            .iter()
            .filter(|(q, _)| **q != 0)
            .map(|(_, s)| usize::from((s.tail + s.size - s.head) % s.size))
            .sum()
    }

    /// Fault: posts `cqe` to completion queue `cqid` as it is (any command id and queue
    /// id). With `stale_phase` the entry carries the phase of the previous pass, so a
    /// correct driver does not see it as new. Returns false if the queue does not exist.
    pub fn inject_cqe(&self, cqid: u16, mut cqe: Cqe, stale_phase: bool) -> bool {
        let mut st = self.st.lock();
        let Some(cq) = st.cqs.get(&cqid) else {
            return false;
        };
        cqe.phase = cq.phase ^ stale_phase;
        if stale_phase {
            let addr = cq.base + u64::from(cq.tail) * CQE_LEN as u64;
            let ok = self.dma.bus_write(addr, &cqe.encode()).is_ok();
            drop(st);
            return ok;
        }
        let ok = self.post(&mut st, cqid, cqe);
        self.update_irq(&st);
        ok
    }

    /// Writes a completion to `cqid` and advances its tail; false if full or missing.
    pub(crate) fn post(&self, st: &mut State, cqid: u16, mut cqe: Cqe) -> bool {
        let Some(cq) = st.cqs.get_mut(&cqid) else {
            return false;
        };
        if (cq.tail + 1) % cq.size == cq.head {
            return false;
        }
        cqe.phase = cq.phase;
        let addr = cq.base + u64::from(cq.tail) * CQE_LEN as u64;
        if self.dma.bus_write(addr, &cqe.encode()).is_err() {
            return false;
        }
        cq.tail = (cq.tail + 1) % cq.size;
        if cq.tail == 0 {
            cq.phase = !cq.phase;
        }
        true
    }

    pub(crate) fn update_irq(&self, st: &State) {
        let pending = st.intms & 1 == 0 && st.cqs.values().any(|c| c.ien && c.head != c.tail);
        self.irq.set_level(pending);
    }

    fn cq_full(st: &State, cqid: u16) -> bool {
        st.cqs
            .get(&cqid)
            .is_none_or(|c| (c.tail + 1) % c.size == c.head)
    }

    /// Fetches and executes what submission queue `qid` holds, while its completion queue
    /// has room.
    pub(crate) fn process(&self, st: &mut State, qid: u16) {
        loop {
            if st.csts & (csts::RDY | csts::CFS) != csts::RDY || (qid != 0 && st.hold_io) {
                break;
            }
            let Some(sq) = st.sqs.get(&qid).cloned() else {
                break;
            };
            if sq.head == sq.tail || Self::cq_full(st, sq.cqid) {
                break;
            }
            let mut raw = [0u8; SQE_LEN];
            let addr = sq.base + u64::from(sq.head) * SQE_LEN as u64;
            let head = (sq.head + 1) % sq.size;
            if let Some(s) = st.sqs.get_mut(&qid) {
                s.head = head;
            }
            if self.dma.bus_read(addr, &mut raw).is_err() {
                // The queue's memory is gone: a real controller would go fatal.
                st.csts |= csts::CFS;
                break;
            }
            let sqe = Sqe::decode(&raw);
            if qid != 0 && st.lose_io > 0 {
                st.lose_io -= 1;
                st.lost.push(crate::controller::Lost {
                    sqid: qid,
                    cid: sqe.cid,
                });
                continue;
            }
            let outcome = if qid == 0 {
                st.counters.admin_commands += 1;
                self.admin(st, &sqe)
            } else {
                st.counters.io_commands += 1;
                Some(self.io(st, &sqe))
            };
            if let Some((result, status)) = outcome {
                if status != 0 {
                    self.log_error(st, qid, &sqe, status);
                }
                let cqe = Cqe {
                    result,
                    sqhd: head,
                    sqid: qid,
                    cid: sqe.cid,
                    phase: false,
                    status,
                    dnr: status != 0,
                };
                self.post(st, sq.cqid, cqe);
            }
        }
        self.update_irq(st);
    }

    fn log_error(&self, st: &mut State, sqid: u16, sqe: &Sqe, status: u16) {
        st.error_count += 1;
        let mut e = [0u8; 64];
        e[0..8].copy_from_slice(&st.error_count.to_le_bytes());
        e[8..10].copy_from_slice(&sqid.to_le_bytes());
        e[10..12].copy_from_slice(&sqe.cid.to_le_bytes());
        e[12..14].copy_from_slice(&(status << 1).to_le_bytes());
        e[24..28].copy_from_slice(&sqe.nsid.to_le_bytes());
        st.errors.insert(0, e);
        st.errors.truncate(crate::commands::ERROR_ENTRIES);
    }

    fn write_cc(&self, st: &mut State, v: u32) {
        let was = st.cc & cc::EN != 0;
        let now = v & cc::EN != 0;
        st.cc = v;
        if was && !now {
            // Controller reset: every queue is gone, status clears.
            st.sqs.clear();
            st.cqs.clear();
            st.csts = 0;
            st.granted_queues = None;
            st.aers.clear();
            st.events.clear();
            st.event_mask = 0;
            st.lost.clear();
            if st.reset_clears_hold {
                (st.hold_io, st.reset_clears_hold) = (false, false);
            }
            self.irq.set_level(false);
        } else if !was && now && !st.never_ready {
            let asqs = (st.aqa & 0xFFF) as u16 + 1;
            let acqs = ((st.aqa >> 16) & 0xFFF) as u16 + 1;
            let ok = st.asq != 0 && st.acq != 0 && asqs >= 2 && acqs >= 2;
            let ok = ok && (v >> cc::IOSQES_SHIFT) & 0xF == 6 && (v >> cc::IOCQES_SHIFT) & 0xF == 4;
            if ok && (v & cc::MPS_MASK) == 0 {
                st.cqs.insert(
                    0,
                    CompQ {
                        base: st.acq,
                        size: acqs,
                        head: 0,
                        tail: 0,
                        phase: true,
                        ien: true,
                    },
                );
                st.sqs.insert(
                    0,
                    SubQ {
                        base: st.asq,
                        size: asqs,
                        head: 0,
                        tail: 0,
                        cqid: 0,
                    },
                );
                st.csts |= csts::RDY;
                st.counters.enables += 1;
            } else {
                st.csts |= csts::CFS;
            }
        }
        if v & cc::SHN_MASK != 0 {
            st.csts = (st.csts & !csts::SHST_MASK) | csts::SHST_COMPLETE;
        }
    }

    fn doorbell(&self, st: &mut State, off: u32, v: u32) {
        let stride = 4u32 << st.cfg.dstrd;
        let rel = off - nvme_regs::DOORBELL_BASE;
        if !rel.is_multiple_of(stride) {
            st.counters.bad_doorbells += 1;
            return;
        }
        let idx = rel / stride;
        let Ok(qid) = u16::try_from(idx / 2) else {
            st.counters.bad_doorbells += 1;
            return;
        };
        if idx.is_multiple_of(2) {
            match st.sqs.get_mut(&qid) {
                Some(sq) if v < u32::from(sq.size) => sq.tail = v as u16,
                _ => {
                    st.counters.bad_doorbells += 1;
                    return;
                }
            }
            self.process(st, qid);
        } else {
            match st.cqs.get_mut(&qid) {
                Some(cq) if v < u32::from(cq.size) => cq.head = v as u16,
                _ => {
                    st.counters.bad_doorbells += 1;
                    return;
                }
            }
            // Room in the CQ may let a queue that was blocked on it continue.
            let blocked: Vec<u16> = st
                .sqs
                .iter()
                .filter(|(_, s)| s.cqid == qid)
                .map(|(q, _)| *q)
                .collect();
            for q in blocked {
                self.process(st, q);
            }
            self.update_irq(st);
        }
    }
}

impl Mmio for NvmeSim {
    fn read32(&self, off: u32) -> u32 {
        let st = self.st.lock();
        let c = &st.cfg;
        let capv = cap::build(c.mqes, c.timeout_units, c.dstrd, 0);
        match off {
            nvme_regs::CAP => capv as u32,
            0x04 => (capv >> 32) as u32,
            nvme_regs::VS => 0x0001_0400,
            nvme_regs::INTMS | nvme_regs::INTMC => st.intms,
            nvme_regs::CC => st.cc,
            nvme_regs::CSTS => st.csts,
            nvme_regs::AQA => st.aqa,
            nvme_regs::ASQ => st.asq as u32,
            0x2C => (st.asq >> 32) as u32,
            nvme_regs::ACQ => st.acq as u32,
            0x34 => (st.acq >> 32) as u32,
            _ => 0,
        }
    }

    fn write32(&self, off: u32, v: u32) {
        let mut st = self.st.lock();
        let lo = |r: u64| (r & !0xFFFF_FFFF) | u64::from(v);
        let hi = |r: u64| (r & 0xFFFF_FFFF) | u64::from(v) << 32;
        let enabled = st.cc & cc::EN != 0;
        match off {
            nvme_regs::INTMS => st.intms |= v,
            nvme_regs::INTMC => st.intms &= !v,
            nvme_regs::CC => self.write_cc(&mut st, v),
            // Admin queue registers are read-only while enabled.
            nvme_regs::AQA if !enabled => st.aqa = v,
            nvme_regs::ASQ if !enabled => st.asq = lo(st.asq) & !0xFFF,
            0x2C if !enabled => st.asq = hi(st.asq),
            nvme_regs::ACQ if !enabled => st.acq = lo(st.acq) & !0xFFF,
            0x34 if !enabled => st.acq = hi(st.acq),
            o if o >= nvme_regs::DOORBELL_BASE => self.doorbell(&mut st, o, v),
            _ => {}
        }
        self.update_irq(&st);
    }
}

impl PciConfig for NvmeSim {
    fn config_read32(&self, off: u16) -> u32 {
        match off & !3 {
            0x00 => 0x0010_1B36, // QEMU's NVMe controller: 1b36:0010
            0x04 => u32::from(self.st.lock().pci_command),
            0x08 => 0x0108_0202, // class 01 (storage), 08 (NVM), 02 (NVMe); revision 2
            _ => 0,
        }
    }

    fn config_write32(&self, off: u16, v: u32) {
        if off & !3 == 0x04 {
            self.st.lock().pci_command = v as u16;
        }
    }
}
