//! I/O: the queue pair, the in-flight table and the requests held for it.
//!
//! Every request gets a slot (its command id is the slot index with the slot's generation
//! above it, so a completion naming a command of an earlier use of the slot is refused)
//! and the slot's data pages. A request waits in `IoState::waiting` while no slot is
//! free or while the queues are down (not created yet, or being re-created by recovery);
//! **recovery moves every in-flight request back to the front of the queue in submission
//! order** (`IoState::requeue_inflight`), and they are submitted again once the user
//! half has the queues back. A request completes to its caller exactly once: the slot is
//! emptied when its completion is taken, and after a reset the old queue memory is gone,
//! so no late completion can name it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use microdriver_rt::{critical, Marshal};
use nvme_regs::{io as op, Sqe, PAGE};

use crate::error::NvmeError;
use crate::hw::PageBuf;
use crate::kernel::device::{lookup, DevId, Kernel};
use crate::queue::{CompQueue, SubQueue};

/// Slots (commands in flight at once).
pub const QUEUE_DEPTH: usize = 32;
/// Entries of the I/O submission and completion queues.
pub const IO_ENTRIES: u16 = 64;
/// Most data pages of one request the driver supports (256 KiB).
pub const MAX_PAGES: u32 = 64;
/// Most requests held while the queues are down or full.
pub const MAX_WAITING: usize = 4096;

/// An I/O operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Marshal)]
pub enum IoOp {
    /// Read `blocks` blocks at `lba`.
    Read,
    /// Write `data` at `lba`.
    Write,
    /// Flush the volatile write cache.
    Flush,
    /// Write zeroes to `blocks` blocks at `lba`.
    WriteZeroes,
    /// Deallocate (discard) `blocks` blocks at `lba`.
    Discard,
}

/// An I/O request.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct IoRequest {
    /// The caller's tag, returned in the completion.
    pub tag: u64,
    /// The operation.
    pub op: IoOp,
    /// First logical block.
    pub lba: u64,
    /// Logical blocks.
    pub blocks: u32,
    /// The data to write (Write only).
    pub data: Vec<u8>,
}

/// A completed request.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct IoDone {
    /// The request's tag.
    pub tag: u64,
    /// The data read (Read), empty otherwise; or why it failed.
    pub result: Result<Vec<u8>, NvmeError>,
}

/// The namespace the hot path serves, as the user half found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub struct Geometry {
    /// Namespace id.
    pub nsid: u32,
    /// log2 of the logical block size.
    pub lba_shift: u8,
    /// Size in logical blocks.
    pub blocks: u64,
    /// Most data pages per command (from MDTS, at most [`MAX_PAGES`]).
    pub max_pages: u32,
}

impl Geometry {
    /// Checks the geometry the user half hands over.
    pub fn check(&self) -> Result<(), NvmeError> {
        if self.nsid == 0 || self.nsid == u32::MAX {
            return Err(NvmeError::invalid("namespace id", "1..0xFFFFFFFF"));
        }
        if !(9..=12).contains(&self.lba_shift) {
            return Err(NvmeError::invalid(
                "block size",
                format!("2^{}: the driver handles 512..=4096 bytes", self.lba_shift),
            ));
        }
        if !(1..=MAX_PAGES).contains(&self.max_pages) || self.blocks == 0 {
            return Err(NvmeError::invalid(
                "transfer size or namespace size",
                format!(
                    "{} pages (1..={MAX_PAGES}), {} blocks",
                    self.max_pages, self.blocks
                ),
            ));
        }
        Ok(())
    }

    /// Checks a request against the namespace.
    pub fn check_request(&self, r: &IoRequest) -> Result<(), NvmeError> {
        let bytes = u64::from(r.blocks) << self.lba_shift;
        let in_range = r
            .lba
            .checked_add(u64::from(r.blocks))
            .is_some_and(|e| e <= self.blocks);
        let ok = match r.op {
            IoOp::Flush => r.data.is_empty(),
            IoOp::Read | IoOp::Write => {
                r.blocks >= 1
                    && in_range
                    && bytes <= u64::from(self.max_pages) * PAGE as u64
                    && (r.op == IoOp::Read && r.data.is_empty() || r.data.len() as u64 == bytes)
            }
            IoOp::WriteZeroes => (1..=0x1_0000).contains(&r.blocks) && in_range,
            IoOp::Discard => r.blocks >= 1 && in_range,
        };
        if ok {
            return Ok(());
        }
        Err(NvmeError::invalid(
            "I/O request",
            format!(
                "{:?} of {} blocks at {} with {} data bytes on a namespace of {} blocks of {} bytes (at most {} pages per command)",
                r.op, r.blocks, r.lba, r.data.len(), self.blocks, 1u32 << self.lba_shift, self.max_pages
            ),
        ))
    }
}

/// Hot-path counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct IoStats {
    /// Commands submitted (resubmissions included).
    pub submitted: u64,
    /// Requests completed to their callers.
    pub completed: u64,
    /// Of those, with an error.
    pub errors: u64,
    /// Completions refused: unknown or stale command id, wrong queue, or a head outside
    /// the submission queue.
    pub bogus: u64,
    /// Requests resubmitted after a reset.
    pub resubmitted: u64,
    /// Queue resets the kernel half went through.
    pub resets: u64,
    /// Requests in flight.
    pub inflight: u32,
    /// Requests held (waiting for a slot or for the queues).
    pub waiting: u32,
    /// Microseconds from ringing the doorbell to taking the completion, summed over the
    /// completed commands (the controller's part of a request's latency, interrupt or
    /// poll delivery included).
    pub device_us: u64,
    /// Requests in flight when submission last stopped for a reset: each is either
    /// completed by the controller before its queues go (QEMU finishes its I/O on a reset)
    /// or moved back and resubmitted (`resubmitted`).
    pub reset_inflight: u32,
    /// Requests that waited for the queues when they last came back (those resubmitted
    /// and those that arrived during the reset), submitted on the new queues.
    pub reset_held: u32,
    /// Commands reported overdue to the user half.
    pub timeouts: u64,
    /// Commands the controller aborted at the user half's request, resubmitted.
    pub aborted: u64,
}

#[derive(Debug)]
struct Inflight {
    seq: u64,
    cid: u16,
    req: IoRequest,
    since: Instant,
    /// Times the request was aborted (by the user half's Abort) and resubmitted.
    aborts: u8,
    /// When the kernel half reported it overdue to the user half.
    reported: Option<Instant>,
    /// The user half sent an Abort naming it: a Command Abort Requested completion
    /// resubmits it instead of failing it.
    abort_requested: bool,
}

/// A request waiting for a slot or for the queues: its submission order, the request,
/// and how many times it was aborted.
type Held = (u64, IoRequest, u8);

/// Most times one request is aborted and resubmitted before its abort completes it with
/// the error.
pub const MAX_ABORT_RETRIES: u8 = 3;

/// A command in flight longer than the I/O timeout, as the kernel half reports it to the
/// user half (which decides: Abort, then a reset).
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct Overdue {
    /// Its submission queue.
    pub sqid: u16,
    /// Its command id.
    pub cid: u16,
    /// The operation.
    pub op: IoOp,
    /// First logical block.
    pub lba: u64,
    /// How long it has been in flight, in milliseconds.
    pub age_ms: u64,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u8,
    inflight: Option<Inflight>,
    data: Option<PageBuf>,
    list: Option<PageBuf>,
}

/// The kernel half's I/O state.
#[derive(Debug)]
pub struct IoState {
    pub(crate) sq: Option<SubQueue>,
    pub(crate) cq: Option<CompQueue>,
    /// A completion queue created and not yet paired with its submission queue.
    pub(crate) pending_cq: Option<CompQueue>,
    /// The queues are up and the user half has started I/O on them.
    pub(crate) live: bool,
    /// Nothing reaches the controller (a reset is under way).
    pub(crate) frozen: bool,
    pub(crate) geometry: Option<Geometry>,
    slots: Vec<Slot>,
    waiting: VecDeque<Held>,
    seq: u64,
    pub(crate) stats: IoStats,
}

impl IoState {
    pub(crate) fn new() -> Self {
        IoState {
            sq: None,
            cq: None,
            pending_cq: None,
            live: false,
            frozen: false,
            geometry: None,
            slots: (0..QUEUE_DEPTH).map(|_| Slot::default()).collect(),
            waiting: VecDeque::new(),
            seq: 0,
            stats: IoStats::default(),
        }
    }

    /// Requests in flight now.
    pub(crate) fn inflight(&self) -> u32 {
        self.slots.iter().filter(|s| s.inflight.is_some()).count() as u32
    }

    /// Requests waiting (for a slot or for the queues).
    pub(crate) fn waiting_len(&self) -> u32 {
        self.waiting.len() as u32
    }

    /// Stops submission for a reset (nothing reaches the controller until the queues are
    /// back), noting what was in flight when it stopped.
    pub(crate) fn freeze(&mut self) {
        if !self.frozen {
            self.frozen = true;
            self.stats.reset_inflight = self.inflight();
        }
    }

    /// Counters, with the current depths.
    pub fn stats(&self) -> IoStats {
        IoStats {
            inflight: self.inflight(),
            waiting: self.waiting.len() as u32,
            ..self.stats
        }
    }

    /// The age of the oldest request in flight.
    pub fn oldest(&self) -> Option<Duration> {
        self.slots
            .iter()
            .filter_map(|s| s.inflight.as_ref())
            .map(|i| i.since.elapsed())
            .max()
    }

    /// The commands in flight longer than `timeout` not reported yet (now marked
    /// reported), and the oldest command reported at least `timeout` ago and still in
    /// flight: the user half's abort did not help, so the kernel half resets.
    pub(crate) fn overdue(&mut self, timeout: Duration) -> (Vec<Overdue>, Option<Overdue>) {
        let (mut new, mut stuck) = (Vec::new(), None::<Overdue>);
        for i in self.slots.iter_mut().filter_map(|s| s.inflight.as_mut()) {
            let age = i.since.elapsed();
            let o = Overdue {
                sqid: 1,
                cid: i.cid,
                op: i.req.op,
                lba: i.req.lba,
                age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
            };
            match i.reported {
                None if age > timeout => {
                    i.reported = Some(Instant::now());
                    new.push(o);
                }
                Some(at)
                    if at.elapsed() > timeout
                        && stuck.as_ref().is_none_or(|s| s.age_ms < o.age_ms) =>
                {
                    stuck = Some(o);
                }
                _ => {}
            }
        }
        self.stats.timeouts += new.len() as u64;
        (new, stuck)
    }

    /// Marks the command `cid` in flight as being aborted by the user half; false if no
    /// such command is in flight.
    pub(crate) fn mark_abort(&mut self, cid: u16) -> bool {
        let slot = self.slots.get_mut(usize::from(cid & 0xFF));
        match slot.and_then(|s| s.inflight.as_mut()) {
            Some(i) if i.cid == cid => {
                i.abort_requested = true;
                true
            }
            _ => false,
        }
    }

    /// Moves every in-flight request back to the front of the waiting queue, oldest
    /// first, and forgets the queues (their memory goes: the controller is disabled).
    pub(crate) fn requeue_inflight(&mut self) -> usize {
        let mut back: Vec<Held> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.inflight.take())
            .map(|i| (i.seq, i.req, i.aborts))
            .collect();
        back.sort_by_key(|h| h.0);
        let n = back.len();
        for r in back.into_iter().rev() {
            self.waiting.push_front(r);
        }
        self.stats.resubmitted += n as u64;
        self.stats.resets += 1;
        (self.sq, self.cq, self.pending_cq, self.live) = (None, None, None, false);
        n
    }

    /// Fails every request in flight or waiting (the controller is going away).
    pub(crate) fn abandon(&mut self) -> Vec<IoDone> {
        self.requeue_inflight();
        let gone = |(_, r, _): Held| IoDone {
            tag: r.tag,
            result: Err(NvmeError::WrongState {
                op: "I/O".into(),
                needed: "an attached controller (it was detached)".into(),
            }),
        };
        let done: Vec<IoDone> = self.waiting.drain(..).map(gone).collect();
        self.stats.completed += done.len() as u64;
        self.stats.errors += done.len() as u64;
        done
    }

    fn can_submit(&self) -> bool {
        self.live && !self.frozen && self.sq.is_some()
    }
}

impl Kernel {
    /// Submits what waits, while slots are free and the queues are up; rings the
    /// doorbell once. Requests that fail to build complete with their error.
    fn pump(&self, io: &mut IoState, done: &mut Vec<IoDone>) {
        if !io.can_submit() {
            return;
        }
        let Some(geo) = io.geometry else { return };
        let mut rang = None;
        while let Some(slot) = io.slots.iter().position(|s| s.inflight.is_none()) {
            let Some((seq, req, aborts)) = io.waiting.pop_front() else {
                break;
            };
            match self.build(io, slot, &geo, &req) {
                Ok(sqe) => {
                    let Some(sq) = io.sq.as_mut() else { break };
                    match sq.push(&sqe) {
                        Ok(tail) => rang = Some(tail),
                        Err(_) => {
                            io.waiting.push_front((seq, req, aborts));
                            break;
                        }
                    }
                    io.stats.submitted += 1;
                    io.slots[slot].inflight = Some(Inflight {
                        seq,
                        cid: sqe.cid,
                        req,
                        since: Instant::now(),
                        aborts,
                        reported: None,
                        abort_requested: false,
                    });
                }
                Err(e) => {
                    io.stats.completed += 1;
                    io.stats.errors += 1;
                    done.push(IoDone {
                        tag: req.tag,
                        result: Err(e),
                    });
                }
            }
        }
        if let Some(tail) = rang {
            self.ring_sq(1, tail);
        }
    }

    /// The submission entry of `req` in `slot`, with its data in the slot's pages.
    fn build(
        &self,
        io: &mut IoState,
        slot: usize,
        geo: &Geometry,
        req: &IoRequest,
    ) -> Result<Sqe, NvmeError> {
        geo.check_request(req)?;
        let s = &mut io.slots[slot];
        // The slot is free here (nothing of the controller's points into its pages), so
        // a buffer smaller than the current transfer size is replaced.
        if s.data
            .as_ref()
            .is_none_or(|d| d.pages() < geo.max_pages as usize)
        {
            s.data = Some(PageBuf::new(&*self.hw.dma, geo.max_pages as usize)?);
        }
        if s.list.is_none() {
            s.list = Some(PageBuf::new(&*self.hw.dma, 1)?);
        }
        let (Some(data), Some(list)) = (&s.data, &s.list) else {
            return Err(NvmeError::Dma("slot buffer".into()));
        };
        s.generation = s.generation.wrapping_add(1);
        let cid = u16::from(s.generation) << 8 | slot as u16;
        let mut sqe = Sqe {
            cid,
            nsid: geo.nsid,
            ..Sqe::default()
        };
        let nlb0 = req.blocks.saturating_sub(1);
        match req.op {
            IoOp::Flush => sqe.opcode = op::FLUSH,
            IoOp::Read | IoOp::Write => {
                let len = (req.blocks as usize) << geo.lba_shift;
                if req.op == IoOp::Write {
                    data.write(0, &req.data)?;
                }
                (sqe.prp1, sqe.prp2) = super::prp::build(data, list, len)?;
                sqe.opcode = if req.op == IoOp::Read {
                    op::READ
                } else {
                    op::WRITE
                };
                (sqe.cdw[0], sqe.cdw[1], sqe.cdw[2]) =
                    (req.lba as u32, (req.lba >> 32) as u32, nlb0);
            }
            IoOp::WriteZeroes => {
                sqe.opcode = op::WRITE_ZEROES;
                (sqe.cdw[0], sqe.cdw[1], sqe.cdw[2]) =
                    (req.lba as u32, (req.lba >> 32) as u32, nlb0);
            }
            IoOp::Discard => {
                data.write(0, &nvme_regs::dsm_range(req.lba, req.blocks))?;
                sqe.opcode = op::DSM;
                sqe.prp1 = data.bus(0);
                (sqe.cdw[0], sqe.cdw[1]) = (0, 1 << 2); // one range, deallocate
            }
        }
        Ok(sqe)
    }

    /// Takes new completions from the I/O completion queue, checks each and rings the
    /// head doorbell; then submits what waits. Returns what completed.
    pub(crate) fn reap(&self, io: &mut IoState) -> Vec<IoDone> {
        let mut done = Vec::new();
        let mut consumed = false;
        while let Some(cqe) = io.cq.as_mut().and_then(CompQueue::pop) {
            consumed = true;
            let slot = usize::from(cqe.cid & 0xFF);
            let known = io
                .slots
                .get(slot)
                .and_then(|s| s.inflight.as_ref())
                .is_some_and(|i| i.cid == cqe.cid);
            let head_ok = cqe.sqid == 1 && io.sq.as_mut().is_some_and(|sq| sq.set_head(cqe.sqhd));
            if !known || !head_ok {
                io.stats.bogus += 1;
                tracing::warn!(
                    cid = cqe.cid,
                    sqid = cqe.sqid,
                    sqhd = cqe.sqhd,
                    "refused a completion naming no command in flight"
                );
                continue;
            }
            let s = &mut io.slots[slot];
            let Some(inf) = s.inflight.take() else {
                continue;
            };
            if cqe.status == nvme_regs::status::ABORT_REQ
                && inf.abort_requested
                && inf.aborts < MAX_ABORT_RETRIES
            {
                // Aborted at the user half's request: submitted again, in its place.
                io.stats.aborted += 1;
                io.waiting.push_front((inf.seq, inf.req, inf.aborts + 1));
                continue;
            }
            let us = u64::try_from(inf.since.elapsed().as_micros()).unwrap_or(u64::MAX);
            io.stats.device_us = io.stats.device_us.saturating_add(us);
            let result = if cqe.status != 0 {
                io.stats.errors += 1;
                Err(NvmeError::Status {
                    what: format!("{:?} at lba {}", inf.req.op, inf.req.lba),
                    status: cqe.status,
                })
            } else if inf.req.op == IoOp::Read {
                let shift = io.geometry.map_or(9, |g| g.lba_shift);
                let mut buf = vec![0u8; (inf.req.blocks as usize) << shift];
                match s.data.as_ref().map(|d| d.read(0, &mut buf)) {
                    Some(Ok(())) => Ok(buf),
                    Some(Err(e)) => Err(e.into()),
                    None => Err(NvmeError::Dma("slot buffer gone".into())),
                }
            } else {
                Ok(Vec::new())
            };
            io.stats.completed += 1;
            done.push(IoDone {
                tag: inf.req.tag,
                result,
            });
        }
        if consumed {
            if let Some(cq) = &io.cq {
                self.ring_cq(cq.qid, cq.head());
            }
        }
        self.pump(io, &mut done);
        done
    }
}

/// Submits an I/O request (critical): it goes to the controller at once if a slot is
/// free and the queues are up, else it waits (in order) until they are. Its completion
/// reaches the sink installed with [`Kernel::set_sink`].
#[critical]
pub fn submit_io(dev: DevId, req: IoRequest) -> Result<(), NvmeError> {
    let k = lookup(dev)?;
    let done = {
        let mut io = k.io.lock();
        let Some(geo) = io.geometry else {
            return Err(NvmeError::WrongState {
                op: "I/O".into(),
                needed: "a probed controller".into(),
            });
        };
        geo.check_request(&req)?;
        if io.waiting.len() >= MAX_WAITING {
            return Err(NvmeError::Busy(format!(
                "{MAX_WAITING} requests already wait"
            )));
        }
        io.seq += 1;
        let seq = io.seq;
        io.waiting.push_back((seq, req, 0));
        let mut done = Vec::new();
        k.pump(&mut io, &mut done);
        done
    };
    k.deliver(done);
    Ok(())
}

/// Reaps completions (critical): the interrupt handler and the polling path. Returns how
/// many requests completed.
#[critical]
pub fn poll_cq(dev: DevId) -> Result<u32, NvmeError> {
    let k = lookup(dev)?;
    Ok(process_cq(&k))
}

/// [`poll_cq`] on a kernel object (the interrupt thread's loop): the I/O queue, and the admin
/// queue if no admin command holds it (so an admin completion never keeps INTx asserted).
pub fn process_cq(k: &Kernel) -> u32 {
    let done = k.reap(&mut k.io.lock());
    if let Some(mut guard) = k.admin.try_lock() {
        if let Some(a) = guard.as_mut() {
            k.reap_admin(a);
        }
    }
    let n = done.len() as u32;
    k.deliver(done);
    n
}
