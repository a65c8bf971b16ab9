//! The admin queue as the kernel half keeps it, and the admin entries the user half may
//! have it send ([`AdminSqe`]).
//!
//! The user half names a command and encodes it ([`crate::command`]) into an entry
//! without a command id or a data pointer. The kernel half checks what that entry could
//! do to it (`AdminSqe::kind`: an opcode it sends, a log page that fits its buffer, a
//! feature without a data buffer; queue ids and sizes against its I/O state, in
//! [`crate::kernel`]) and completes it, filling every DMA address itself (the Identify
//! and log page buffer, the memory of a queue it creates) and the flags of a queue it
//! creates. An opcode that would need a pointer the kernel half cannot vouch for is
//! refused.

use std::time::{Duration, Instant};

use microdriver_rt::Marshal;
use nvme_regs::{admin, feat, Cqe, Sqe, PAGE};

use crate::error::NvmeError;
use crate::hw::{Dma, PageBuf};
use crate::queue::{CompQueue, SubQueue};

/// Admin submission and completion queue entries.
pub const ADMIN_ENTRIES: u16 = 32;
/// How long the kernel half waits for one admin command.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Most asynchronous event requests the kernel half leaves outstanding.
pub const MAX_AERS: usize = 4;
/// Most completed asynchronous events kept for the user half (older ones are dropped
/// and counted).
pub const MAX_EVENTS: usize = 64;

/// An asynchronous event request's completion, as the controller posted it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct AsyncEvent {
    /// Completion dword 0 (type, information, log page).
    pub result: u32,
    /// Status (non-zero: the request failed, no event).
    pub status: u16,
}

/// What [`crate::kernel::take_events`] hands the user half.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct Events {
    /// Events completed since the last call, oldest first.
    pub events: Vec<AsyncEvent>,
    /// Asynchronous event requests still outstanding on the controller.
    pub armed: u32,
    /// Events dropped because the user half did not take them in time.
    pub dropped: u64,
}

/// An admin submission entry as the user half encoded it: no command id, no data pointer
/// (the kernel half's to fill). `cdw` holds command dwords 10 to 15.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct AdminSqe {
    /// Opcode.
    pub opcode: u8,
    /// Namespace id.
    pub nsid: u32,
    /// Command dwords 10..=15 (six).
    pub cdw: Vec<u32>,
}

/// What an admin entry is, for the kernel half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The controller writes this many bytes to the kernel half's buffer.
    Buffer(usize),
    /// Create I/O completion / submission queue `qid` of `size` entries.
    CreateCq(u16, u16),
    CreateSq(u16, u16),
    /// Delete I/O submission / completion queue `qid`.
    DeleteSq(u16),
    DeleteCq(u16),
    /// Abort command `cid` of submission queue `sqid`.
    Abort(u16, u16),
    /// An asynchronous event request (left outstanding).
    EventRequest,
    /// No data, no queue.
    Plain,
}

impl AdminSqe {
    /// Checks the entry against what the kernel half allows and says what it is.
    pub(crate) fn kind(&self) -> Result<Kind, NvmeError> {
        if self.cdw.len() != 6 {
            return Err(NvmeError::invalid("admin entry", "six command dwords"));
        }
        let (c10, c11) = (self.cdw[0], self.cdw[1]);
        let (lo, hi) = (c10 as u16, (c10 >> 16) as u16);
        Ok(match self.opcode {
            admin::IDENTIFY => Kind::Buffer(PAGE),
            admin::GET_LOG_PAGE => {
                let bytes = ((c10 >> 16 | (c11 & 0xFFFF) << 16) as usize + 1) * 4;
                if bytes > PAGE {
                    return Err(NvmeError::invalid(
                        "log page length",
                        format!("{bytes} bytes: at most {PAGE} (the kernel half's buffer)"),
                    ));
                }
                Kind::Buffer(bytes)
            }
            admin::SET_FEATURES | admin::GET_FEATURES => {
                let fid = c10 as u8;
                if !feat::KNOWN.iter().any(|(f, _)| *f == fid) {
                    return Err(NvmeError::invalid(
                        "feature id",
                        format!("{fid:#x} is not one the driver handles without a data buffer"),
                    ));
                }
                Kind::Plain
            }
            admin::CREATE_CQ => Kind::CreateCq(lo, hi.wrapping_add(1)),
            admin::CREATE_SQ => Kind::CreateSq(lo, hi.wrapping_add(1)),
            admin::DELETE_SQ => Kind::DeleteSq(lo),
            admin::DELETE_CQ => Kind::DeleteCq(lo),
            admin::ABORT => Kind::Abort(lo, hi),
            admin::ASYNC_EVENT => Kind::EventRequest,
            admin::FORMAT_NVM => Kind::Plain,
            op => {
                return Err(NvmeError::invalid(
                    "admin opcode",
                    format!("{op:#04x} is not one the kernel half sends"),
                ))
            }
        })
    }

    /// The entry the controller gets: the kernel half's command id and data pointer, and
    /// for a queue it creates, its flags (contiguous, interrupts on vector 0, on CQ `qid`).
    pub(crate) fn sqe(&self, kind: Kind, cid: u16, prp1: u64) -> Sqe {
        let mut cdw = [0u32; 6];
        cdw.iter_mut().zip(&self.cdw).for_each(|(d, s)| *d = *s);
        match kind {
            Kind::CreateCq(..) => cdw[1..].copy_from_slice(&[0b11, 0, 0, 0, 0]),
            Kind::CreateSq(qid, _) => {
                cdw[1..].copy_from_slice(&[u32::from(qid) << 16 | 1, 0, 0, 0, 0])
            }
            _ => {}
        }
        Sqe {
            opcode: self.opcode,
            cid,
            nsid: self.nsid,
            prp1,
            prp2: 0,
            cdw,
        }
    }

    /// How the kernel half names it in errors.
    pub(crate) fn name(&self) -> String {
        format!("admin opcode {:#04x}", self.opcode)
    }
}

/// What an admin command returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct AdminReply {
    /// Completion dword 0.
    pub result: u32,
    /// The data the controller wrote (Identify, Get Log Page), else empty.
    pub data: Vec<u8>,
}

/// The admin queue pair and its data buffer.
#[derive(Debug)]
pub struct AdminQueue {
    pub(crate) sq: SubQueue,
    pub(crate) cq: CompQueue,
    pub(crate) buf: PageBuf,
    next_cid: u16,
    /// The command waited for, and its completion once reaped.
    pub(crate) outstanding: Option<u16>,
    pub(crate) done: Option<Cqe>,
    /// Completions that named no outstanding command (or another queue).
    pub(crate) bogus: u64,
    /// Command ids of the asynchronous event requests outstanding.
    pub(crate) aers: Vec<u16>,
    /// Queue memory of create commands that timed out: the controller may still use it,
    /// so it lives until the admin queue goes (the controller is disabled by then).
    pub(crate) orphans: Vec<Box<dyn std::any::Any + Send>>,
}

impl AdminQueue {
    /// Allocates the admin queues and the buffer.
    pub fn new(dma: &dyn Dma) -> Result<Self, NvmeError> {
        Ok(AdminQueue {
            sq: SubQueue::new(dma, 0, ADMIN_ENTRIES)?,
            cq: CompQueue::new(dma, 0, ADMIN_ENTRIES)?,
            buf: PageBuf::new(dma, 1)?,
            next_cid: 0,
            outstanding: None,
            done: None,
            bogus: 0,
            aers: Vec::new(),
            orphans: Vec::new(),
        })
    }

    /// A fresh command id (not one an outstanding event request holds).
    pub(crate) fn cid(&mut self) -> u16 {
        loop {
            self.next_cid = self.next_cid.wrapping_add(1);
            if !self.aers.contains(&self.next_cid) {
                return self.next_cid;
            }
        }
    }

    /// Consumes new completions: the awaited one is kept, an event request's is queued
    /// for the user half, any other is counted bogus. Returns whether any entry was
    /// consumed (the head doorbell must be written) and the events that arrived.
    pub(crate) fn reap(&mut self) -> (bool, Vec<AsyncEvent>) {
        let (mut any, mut events) = (false, Vec::new());
        while let Some(c) = self.cq.pop() {
            any = true;
            let aer = self.aers.iter().position(|&a| a == c.cid);
            let known = Some(c.cid) == self.outstanding || aer.is_some();
            if c.sqid != 0 || !known || !self.sq.set_head(c.sqhd) {
                self.bogus += 1;
                continue;
            }
            if let Some(i) = aer {
                self.aers.swap_remove(i);
                events.push(AsyncEvent {
                    result: c.result,
                    status: c.status,
                });
                continue;
            }
            self.outstanding = None;
            self.done = Some(c);
        }
        (any, events)
    }
}

/// Waits for `deadline` with a short, growing pause between checks.
pub(crate) fn backoff(pause: &mut Duration, deadline: Instant) -> bool {
    if Instant::now() >= deadline {
        return false;
    }
    std::thread::sleep(*pause);
    *pause = (*pause * 2).min(Duration::from_millis(1));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The user half's dwords cannot change where a created queue lives or how the
    /// controller reads it: the kernel half sets the flags.
    #[test]
    fn created_queue_flags_are_the_kernel_halfs() {
        let raw = AdminSqe {
            opcode: admin::CREATE_CQ,
            nsid: 0,
            cdw: vec![1 | 15 << 16, u32::MAX, 7, 7, 7, 7],
        };
        let kind = raw.kind().unwrap();
        assert_eq!(kind, Kind::CreateCq(1, 16));
        let e = raw.sqe(kind, 9, 0x5000);
        assert_eq!((e.cid, e.prp1, e.prp2), (9, 0x5000, 0));
        assert_eq!(e.cdw, [1 | 15 << 16, 0b11, 0, 0, 0, 0]);
        let sq = AdminSqe {
            opcode: admin::CREATE_SQ,
            ..raw
        };
        assert_eq!(sq.sqe(sq.kind().unwrap(), 1, 0).cdw[1], 1 << 16 | 1);
    }

    proptest::proptest! {
        /// Whatever entry the user half sends, the kernel half's check never panics, and an
        /// entry it accepts carries only the kernel half's data pointer, a transfer that
        /// fits its one-page buffer and, for a queue it creates, its flags.
        #[test]
        fn any_entry_is_checked_and_completed_safely(
            opcode in proptest::prop_oneof![
                proptest::sample::select(vec![
                    admin::IDENTIFY, admin::GET_LOG_PAGE, admin::SET_FEATURES,
                    admin::GET_FEATURES, admin::CREATE_CQ, admin::CREATE_SQ, admin::DELETE_SQ,
                    admin::DELETE_CQ, admin::ABORT, admin::ASYNC_EVENT, admin::FORMAT_NVM,
                ]),
                proptest::prelude::any::<u8>(),
            ],
            nsid in proptest::prelude::any::<u32>(),
            cdw in proptest::collection::vec(
                proptest::prop_oneof![0u32..0x20, proptest::prelude::any::<u32>()],
                5..8,
            ),
        ) {
            let raw = AdminSqe { opcode, nsid, cdw };
            let Ok(kind) = raw.kind() else { return Ok(()) };
            proptest::prop_assert_eq!(raw.cdw.len(), 6);
            let e = raw.sqe(kind, 7, 0x9000);
            proptest::prop_assert_eq!((e.cid, e.prp1, e.prp2), (7, 0x9000, 0));
            match kind {
                Kind::Buffer(len) => proptest::prop_assert!((4..=PAGE).contains(&len)),
                Kind::CreateCq(..) => proptest::prop_assert_eq!(&e.cdw[1..], &[0b11, 0, 0, 0, 0]),
                Kind::CreateSq(qid, _) => {
                    proptest::prop_assert_eq!(e.cdw[1], u32::from(qid) << 16 | 1)
                }
                Kind::Plain if opcode != admin::FORMAT_NVM => {
                    let fid = e.cdw[0] as u8;
                    proptest::prop_assert!(feat::KNOWN.iter().any(|(f, _)| *f == fid));
                }
                _ => {}
            }
        }
    }
}
