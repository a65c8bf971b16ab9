//! The kernel half's checked services: what the user half calls (downcalls). The device
//! object is in `device`, the admin queue in [`admin`].
//!
//! Every `pub fn` taking a [`DevId`] is `#[critical]`: called from the user half it is a
//! downcall, so the user half reaches registers, the admin queue and the I/O queues only
//! through these functions, and each checks what it is asked ([`crate::policy`] for
//! registers, [`AdminSqe`]'s checks and the I/O state for admin commands).

pub mod admin;
pub(crate) mod device;

use std::time::{Duration, Instant};

use microdriver_rt::{critical, Marshal};
use nvme_regs::{csts, ACQ, AQA, ASQ, CC, CSTS};

use crate::error::NvmeError;
use crate::hot::io::{Geometry, Overdue, IO_ENTRIES};
use crate::policy::Effect;
use crate::queue::{CompQueue, SubQueue};

use admin::Kind;
pub use admin::{AdminReply, AdminSqe, AsyncEvent, Events};
use device::REGISTRY;
pub use device::{attach, lookup, work, DevId, IoSink, Kernel, WorkQueue};

/// Reads a controller register for the user half (checked by the register policy).
#[critical]
pub fn reg_read(dev: DevId, off: u32) -> Result<u32, NvmeError> {
    let k = lookup(dev)?;
    k.policy.lock().check(off, None)?;
    Ok(k.rd(off))
}

/// Writes a controller register for the user half (checked by the register policy). A
/// write that disables the controller stops I/O submission first: nothing reaches the
/// controller until the user half has the queues back.
#[critical]
pub fn reg_write(dev: DevId, off: u32, value: u32) -> Result<(), NvmeError> {
    let k = lookup(dev)?;
    let mut policy = k.policy.lock();
    if policy.check(off, Some(value))? == Effect::Disable {
        k.io.lock().freeze();
    }
    k.wr(off, value);
    Ok(())
}

/// Reads a dword of PCI configuration space's standard header (read-only for the user
/// half).
#[critical]
pub fn pci_read32(dev: DevId, off: u16) -> Result<u32, NvmeError> {
    if off >= 0x40 || !off.is_multiple_of(4) {
        return Err(NvmeError::invalid(
            "PCI config offset",
            "aligned, in the header (0..0x40)",
        ));
    }
    Ok(lookup(dev)?.hw.pci.config_read32(off))
}

/// Whether the controller is disabled and idle (CC.EN and CSTS.RDY both clear): the only
/// state in which the kernel half frees or reprograms queue memory.
fn disabled(k: &Kernel) -> Result<(), NvmeError> {
    let (cc, st) = (k.rd(CC), k.rd(CSTS));
    if cc & nvme_regs::cc::EN != 0 || st & csts::RDY != 0 || st == u32::MAX {
        return Err(NvmeError::WrongState {
            op: "re-programming the queues".into(),
            needed: format!("a disabled controller (CC {cc:#x}, CSTS {st:#x}): clear CC.EN and wait for CSTS.RDY to clear"),
        });
    }
    Ok(())
}

/// Forgets every queue of a disabled controller: the in-flight requests go back to the
/// front of the waiting queue (they are submitted again once the queues are back), the
/// admin queue is freed. Returns how many requests were in flight.
#[critical]
pub fn queues_reset(dev: DevId) -> Result<u32, NvmeError> {
    let k = lookup(dev)?;
    disabled(&k)?;
    let mut admin = k.admin.lock();
    let n = k.io.lock().requeue_inflight();
    *admin = None;
    k.policy.lock().admin_live = false;
    Ok(n as u32)
}

/// Allocates and programs a fresh admin queue (AQA, ASQ, ACQ) on a disabled controller;
/// afterwards the user half may enable it.
#[critical]
pub fn admin_queue_setup(dev: DevId) -> Result<(), NvmeError> {
    let k = lookup(dev)?;
    disabled(&k)?;
    let mut admin = k.admin.lock();
    let a = admin::AdminQueue::new(&*k.hw.dma)?;
    let n = u32::from(a.sq.size() - 1);
    k.wr(AQA, n << 16 | n);
    k.wr64(ASQ, a.sq.bus());
    k.wr64(ACQ, a.cq.bus());
    *admin = Some(a);
    k.policy.lock().admin_live = true;
    Ok(())
}

/// Queue memory allocated for a create command.
enum NewQueue {
    Cq(CompQueue),
    Sq(SubQueue),
}

/// Checks a queue creation or deletion against the I/O state; allocates the memory a
/// creation needs.
fn prepare(k: &Kernel, kind: Kind) -> Result<Option<NewQueue>, NvmeError> {
    let mut io = k.io.lock();
    let check_size = |size: u16| {
        if (2..=IO_ENTRIES).contains(&size) {
            Ok(())
        } else {
            Err(NvmeError::invalid(
                "queue size",
                format!("{size}: 2..={IO_ENTRIES}"),
            ))
        }
    };
    let one = |qid: u16| {
        if qid == 1 {
            Ok(())
        } else {
            Err(NvmeError::invalid(
                "queue id",
                format!("{qid}: the driver runs one I/O queue pair, id 1"),
            ))
        }
    };
    Ok(match kind {
        Kind::CreateCq(qid, size) => {
            one(qid)?;
            check_size(size)?;
            if io.cq.is_some() || io.pending_cq.is_some() {
                return Err(NvmeError::invalid("create-cq", "completion queue 1 exists"));
            }
            Some(NewQueue::Cq(CompQueue::new(&*k.hw.dma, qid, size)?))
        }
        Kind::CreateSq(qid, size) => {
            one(qid)?;
            check_size(size)?;
            if io.sq.is_some() || io.pending_cq.is_none() {
                return Err(NvmeError::invalid(
                    "create-sq",
                    "needs completion queue 1 created and no submission queue 1",
                ));
            }
            Some(NewQueue::Sq(SubQueue::new(&*k.hw.dma, qid, size)?))
        }
        Kind::DeleteSq(qid) => {
            one(qid)?;
            if io.inflight() > 0 {
                return Err(NvmeError::Busy(
                    "requests are in flight on submission queue 1".into(),
                ));
            }
            io.live = false;
            None
        }
        Kind::DeleteCq(qid) => {
            one(qid)?;
            if io.sq.is_some() {
                return Err(NvmeError::invalid(
                    "delete-cq",
                    "delete submission queue 1 first",
                ));
            }
            None
        }
        Kind::Abort(sqid, cid) => {
            // Only an I/O command in flight: the kernel half times out admin commands
            // itself, and an abort naming nothing would only cost an abort slot.
            if sqid != 1 || !io.mark_abort(cid) {
                return Err(NvmeError::invalid(
                    "abort",
                    format!("no command {cid:#06x} in flight on submission queue {sqid} (the driver aborts I/O commands on queue 1 only)"),
                ));
            }
            None
        }
        _ => None,
    })
}

/// Sends an admin command for the user half and waits for it (at most
/// [`admin::ADMIN_TIMEOUT`]). The kernel half builds the entry: the data buffer of
/// Identify and Get Log Page and the memory of a created queue are its own.
#[critical]
pub fn admin_command(dev: DevId, cmd: &AdminSqe) -> Result<AdminReply, NvmeError> {
    let kind = cmd.kind()?;
    let k = lookup(dev)?;
    let mut guard = k.admin.lock();
    let a = guard.as_mut().ok_or_else(|| NvmeError::WrongState {
        op: cmd.name(),
        needed: "an admin queue (admin_queue_setup, then enable the controller)".into(),
    })?;
    if k.rd(CSTS) & (csts::RDY | csts::CFS) != csts::RDY {
        return Err(NvmeError::WrongState {
            op: cmd.name(),
            needed: "a ready controller".into(),
        });
    }
    if kind == Kind::EventRequest {
        return arm_event_request(&k, a, cmd);
    }
    let new_queue = prepare(&k, kind)?;
    let prp1 = match (&new_queue, kind) {
        (Some(NewQueue::Cq(q)), _) => q.bus(),
        (Some(NewQueue::Sq(q)), _) => q.bus(),
        (None, Kind::Buffer(_)) => a.buf.bus(0),
        (None, _) => 0,
    };
    let cid = a.cid();
    let tail = a.sq.push(&cmd.sqe(kind, cid, prp1)).map_err(|_| {
        NvmeError::Busy("the admin queue is full of timed-out commands: reset".into())
    })?;
    (a.outstanding, a.done) = (Some(cid), None);
    k.ring_sq(0, tail);
    let deadline = Instant::now() + admin::ADMIN_TIMEOUT;
    let mut pause = Duration::from_micros(5);
    let cqe = loop {
        k.reap_admin(a);
        if let Some(c) = a.done.take() {
            break c;
        }
        if k.rd(CSTS) & csts::CFS != 0 {
            return Err(NvmeError::Fatal);
        }
        if !admin::backoff(&mut pause, deadline) {
            // The controller may still use the queue memory: keep it until it is reset.
            if let Some(q) = new_queue {
                a.orphan(q);
            }
            return Err(NvmeError::Timeout {
                what: format!("admin command {}", cmd.name()),
                ms: admin::ADMIN_TIMEOUT.as_millis() as u64,
            });
        }
    };
    if cqe.status != 0 {
        return Err(NvmeError::Status {
            what: cmd.name(),
            status: cqe.status,
        });
    }
    let mut io = k.io.lock();
    match (new_queue, kind) {
        (Some(NewQueue::Cq(q)), _) => io.pending_cq = Some(q),
        (Some(NewQueue::Sq(q)), _) => {
            io.sq = Some(q);
            io.cq = io.pending_cq.take();
        }
        (None, Kind::DeleteSq(_)) => io.sq = None,
        (None, Kind::DeleteCq(_)) => io.cq = None,
        _ => {}
    }
    drop(io);
    let data = match kind {
        Kind::Buffer(len) => len,
        _ => 0,
    };
    let mut reply = AdminReply {
        result: cqe.result,
        data: vec![0u8; data],
    };
    a.buf.read(0, &mut reply.data)?;
    Ok(reply)
}

/// Leaves an asynchronous event request outstanding (at most [`admin::MAX_AERS`]):
/// its completion is an event, kept for the user half ([`take_events`]).
fn arm_event_request(
    k: &Kernel,
    a: &mut admin::AdminQueue,
    cmd: &AdminSqe,
) -> Result<AdminReply, NvmeError> {
    if a.aers.len() >= admin::MAX_AERS {
        return Err(NvmeError::Busy(format!(
            "{} asynchronous event requests are outstanding already",
            admin::MAX_AERS
        )));
    }
    let cid = a.cid();
    let tail =
        a.sq.push(&cmd.sqe(Kind::EventRequest, cid, 0))
            .map_err(|_| {
                NvmeError::Busy("the admin queue is full of timed-out commands: reset".into())
            })?;
    a.aers.push(cid);
    k.ring_sq(0, tail);
    Ok(AdminReply {
        result: a.aers.len() as u32,
        data: Vec::new(),
    })
}

/// Hands the user half the asynchronous events completed since the last call, with the
/// number of requests still outstanding (it re-arms up to what it wants).
#[critical]
pub fn take_events(dev: DevId) -> Result<Events, NvmeError> {
    let k = lookup(dev)?;
    let armed = k.admin.lock().as_ref().map_or(0, |a| a.aers.len() as u32);
    let mut q = k.events.lock();
    Ok(Events {
        events: std::mem::take(&mut q.0),
        armed,
        dropped: q.1,
    })
}

impl admin::AdminQueue {
    fn orphan(&mut self, q: NewQueue) {
        let keep: Box<dyn std::any::Any + Send> = match q {
            NewQueue::Cq(q) => Box::new(q),
            NewQueue::Sq(q) => Box::new(q),
        };
        self.orphans.push(keep);
    }
}

/// Starts I/O on the queues the user half created, for the namespace it identified:
/// held requests (from before a reset) are submitted first, in their order.
#[critical]
pub fn io_start(dev: DevId, geometry: &Geometry) -> Result<u32, NvmeError> {
    geometry.check()?;
    let k = lookup(dev)?;
    let done = {
        let mut io = k.io.lock();
        if io.sq.is_none() || io.cq.is_none() {
            return Err(NvmeError::WrongState {
                op: "io_start".into(),
                needed: "I/O queue pair 1 created".into(),
            });
        }
        if let Some(old) = io.geometry {
            if old.max_pages > geometry.max_pages || old.lba_shift != geometry.lba_shift {
                tracing::warn!(?old, new = ?geometry, "the namespace changed under the driver");
            }
        }
        io.geometry = Some(*geometry);
        io.stats.reset_held = io.waiting_len();
        (io.live, io.frozen) = (true, false);
        k.reap(&mut io)
    };
    let waiting = k.io.lock().inflight();
    k.deliver(done);
    Ok(waiting)
}

/// What the kernel half's health check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct Health {
    /// CSTS as read.
    pub csts: u32,
    /// The oldest request in flight, in milliseconds.
    pub oldest_ms: u64,
    /// Why a reset is needed (None: healthy).
    pub reset_reason: Option<String>,
    /// Commands newly past the I/O timeout, for the user half to decide on
    /// ([`crate::events::command_timeout`]).
    pub overdue: Vec<Overdue>,
}

/// Checks the controller (CSTS.CFS, a vanished device) and the commands in flight against
/// `io_timeout`. A command newly past it is reported in [`Health::overdue`] for the user
/// half to decide on (Abort, or a reset); a command still in flight `io_timeout` after it
/// was reported, a fatal status or a vanished device make the kernel half stop submission
/// and post [`work::RESET`] itself. The kernel half's host calls it periodically.
pub fn health_check(k: &Kernel, io_timeout: Duration) -> Health {
    let st = k.rd(CSTS);
    let mut io = k.io.lock();
    let oldest = io.oldest().unwrap_or_default();
    let (mut overdue, stuck) = if io.live && !io.frozen {
        io.overdue(io_timeout)
    } else {
        (Vec::new(), None)
    };
    let reason = if st == u32::MAX {
        Some("the controller reads as all ones (gone from the bus?)".to_string())
    } else if io.live && st & csts::CFS != 0 {
        Some("controller fatal status (CSTS.CFS)".into())
    } else {
        stuck.map(|o| {
            format!(
                "command {:#06x} ({:?} at lba {}) is still in flight after {} ms, {} ms after the user half was told",
                o.cid, o.op, o.lba, o.age_ms, io_timeout.as_millis()
            )
        })
    };
    if reason.is_some() {
        io.freeze();
        k.work.post(work::RESET);
        overdue.clear();
    }
    Health {
        csts: st,
        oldest_ms: oldest.as_millis() as u64,
        reset_reason: reason,
        overdue,
    }
}

/// Asks for a controller reset (the user half's `nvmectl reset`, or a timed-out admin
/// command): stops submission and posts [`work::RESET`].
#[critical]
pub fn schedule_reset(dev: DevId) -> Result<(), NvmeError> {
    let k = lookup(dev)?;
    k.io.lock().freeze();
    k.work.post(work::RESET);
    Ok(())
}

/// Detaches a controller: disables it (stopping its DMA), frees the queues and forgets
/// it. Requests still held complete with an error.
pub fn detach(dev: DevId) -> Result<(), NvmeError> {
    let k = lookup(dev)?;
    k.wr(CC, k.rd(CC) & !nvme_regs::cc::EN);
    let deadline = Instant::now() + Duration::from_secs(2);
    while k.rd(CSTS) & csts::RDY != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let failed = k.io.lock().abandon();
    k.deliver(failed);
    *k.admin.lock() = None;
    let mut reg = REGISTRY.write();
    if let Some(slot) = usize::try_from(dev.0).ok().and_then(|i| reg.get_mut(i)) {
        *slot = None;
    }
    Ok(())
}
