//! The admin queue as the kernel half keeps it, and the admin commands the user half may
//! have it send ([`AdminCmd`]).
//!
//! The user half drives the controller's bring-up and management with admin commands,
//! but never builds a submission entry: it names a command and its plain arguments, and
//! the kernel half builds the entry, filling every DMA address itself (the Identify and
//! log page buffer, the memory of a queue it creates). A command that would need a
//! pointer the kernel half cannot vouch for has no variant here.

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

/// An admin command, as the user half asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub enum AdminCmd {
    /// Identify (CNS 0: namespace, 1: controller, 2: active namespace list); returns the
    /// 4 KiB data structure.
    Identify {
        /// Controller or namespace structure.
        cns: u8,
        /// Namespace id.
        nsid: u32,
    },
    /// Get Log Page; returns `len` bytes (a multiple of 4, at most 4096) from byte
    /// `offset` of the log (a multiple of 4; non-zero needs LPA bit 2).
    GetLogPage {
        /// Log page id.
        lid: u8,
        /// Namespace id (0xFFFFFFFF: the controller).
        nsid: u32,
        /// Bytes.
        len: u32,
        /// Byte offset in the log.
        offset: u64,
        /// Retain asynchronous event: false clears the event this log reports.
        rae: bool,
    },
    /// Set Features (the features that carry no data buffer).
    SetFeatures {
        /// Feature id.
        fid: u8,
        /// Dword 11.
        value: u32,
    },
    /// Get Features.
    GetFeatures {
        /// Feature id.
        fid: u8,
        /// Select: 0 current, 1 default, 2 saved, 3 supported capabilities.
        sel: u8,
        /// Dword 11 (which threshold, for the temperature threshold).
        cdw11: u32,
    },
    /// Create I/O Completion Queue: the kernel half allocates it (interrupts enabled,
    /// vector 0).
    CreateIoCq {
        /// Queue id.
        qid: u16,
        /// Entries.
        size: u16,
    },
    /// Create I/O Submission Queue on completion queue `qid`.
    CreateIoSq {
        /// Queue id.
        qid: u16,
        /// Entries.
        size: u16,
    },
    /// Delete I/O Submission Queue (its in-flight commands are held and resubmitted on
    /// the next queues).
    DeleteIoSq {
        /// Queue id.
        qid: u16,
    },
    /// Delete I/O Completion Queue.
    DeleteIoCq {
        /// Queue id.
        qid: u16,
    },
    /// Abort a command.
    Abort {
        /// Its submission queue.
        sqid: u16,
        /// Its command id.
        cid: u16,
    },
    /// Asynchronous Event Request: left outstanding on the controller until an event
    /// completes it; the kernel half keeps the event for the user half
    /// ([`crate::kernel::take_events`]).
    AsyncEventRequest,
    /// Format NVM.
    FormatNvm {
        /// Namespace id.
        nsid: u32,
        /// LBA format index.
        lbaf: u8,
        /// Secure erase setting (0 none, 1 user data, 2 cryptographic).
        ses: u8,
    },
}

impl AdminCmd {
    /// nvme-cli's name for the command (for messages).
    pub fn name(&self) -> &'static str {
        match self {
            AdminCmd::Identify { .. } => "identify",
            AdminCmd::GetLogPage { .. } => "get-log",
            AdminCmd::SetFeatures { .. } => "set-feature",
            AdminCmd::GetFeatures { .. } => "get-feature",
            AdminCmd::CreateIoCq { .. } => "create-cq",
            AdminCmd::CreateIoSq { .. } => "create-sq",
            AdminCmd::DeleteIoSq { .. } => "delete-sq",
            AdminCmd::DeleteIoCq { .. } => "delete-cq",
            AdminCmd::Abort { .. } => "abort",
            AdminCmd::FormatNvm { .. } => "format",
            AdminCmd::AsyncEventRequest => "async-event-request",
        }
    }

    /// Checks the plain arguments (queue ids and memory are the I/O state's to check).
    pub fn check(&self) -> Result<(), NvmeError> {
        match *self {
            AdminCmd::Identify { cns, .. } if cns > 2 => {
                Err(NvmeError::invalid("identify CNS", "0, 1 or 2"))
            }
            AdminCmd::GetLogPage { len, offset, .. }
                if len == 0 || len % 4 != 0 || len as usize > PAGE || offset % 4 != 0 =>
            {
                Err(NvmeError::invalid(
                    "log page length or offset",
                    format!("{len} bytes at {offset}: a multiple of 4 in 4..={PAGE}, at a multiple of 4"),
                ))
            }
            AdminCmd::SetFeatures { fid, .. } | AdminCmd::GetFeatures { fid, .. }
                if !feat::KNOWN.iter().any(|(f, _)| *f == fid) =>
            {
                Err(NvmeError::invalid(
                    "feature id",
                    format!("{fid:#x} is not one the driver handles without a data buffer"),
                ))
            }
            AdminCmd::GetFeatures { sel, .. } if sel > 3 => {
                Err(NvmeError::invalid("get-feature select", "0..=3"))
            }
            AdminCmd::FormatNvm { lbaf, ses, .. } if lbaf > 15 || ses > 2 => {
                Err(NvmeError::invalid("format", "lbaf 0..=15, ses 0..=2"))
            }
            _ => Ok(()),
        }
    }

    /// The submission entry, with the kernel half's buffer or queue memory at `prp1`.
    pub(crate) fn sqe(&self, cid: u16, prp1: u64) -> Sqe {
        let mut s = Sqe {
            cid,
            ..Sqe::default()
        };
        match *self {
            AdminCmd::Identify { cns, nsid } => {
                (s.opcode, s.nsid, s.prp1) = (admin::IDENTIFY, nsid, prp1);
                s.cdw[0] = u32::from(cns);
            }
            AdminCmd::GetLogPage {
                lid,
                nsid,
                len,
                offset,
                rae,
            } => {
                (s.opcode, s.nsid, s.prp1) = (admin::GET_LOG_PAGE, nsid, prp1);
                let numd = len / 4 - 1;
                s.cdw[0] = u32::from(lid) | u32::from(rae) << 15 | (numd & 0xFFFF) << 16;
                (s.cdw[1], s.cdw[2], s.cdw[3]) = (numd >> 16, offset as u32, (offset >> 32) as u32);
            }
            AdminCmd::SetFeatures { fid, value } => {
                s.opcode = admin::SET_FEATURES;
                (s.cdw[0], s.cdw[1]) = (u32::from(fid), value);
            }
            AdminCmd::GetFeatures { fid, sel, cdw11 } => {
                s.opcode = admin::GET_FEATURES;
                (s.cdw[0], s.cdw[1]) = (u32::from(fid) | u32::from(sel) << 8, cdw11);
            }
            AdminCmd::AsyncEventRequest => s.opcode = admin::ASYNC_EVENT,
            AdminCmd::CreateIoCq { qid, size } => {
                (s.opcode, s.prp1) = (admin::CREATE_CQ, prp1);
                s.cdw[0] = u32::from(qid) | u32::from(size - 1) << 16;
                s.cdw[1] = 0b11; // interrupts enabled (vector 0), physically contiguous
            }
            AdminCmd::CreateIoSq { qid, size } => {
                (s.opcode, s.prp1) = (admin::CREATE_SQ, prp1);
                s.cdw[0] = u32::from(qid) | u32::from(size - 1) << 16;
                s.cdw[1] = u32::from(qid) << 16 | 1; // on CQ `qid`, physically contiguous
            }
            AdminCmd::DeleteIoSq { qid } => {
                s.opcode = admin::DELETE_SQ;
                s.cdw[0] = u32::from(qid);
            }
            AdminCmd::DeleteIoCq { qid } => {
                s.opcode = admin::DELETE_CQ;
                s.cdw[0] = u32::from(qid);
            }
            AdminCmd::Abort { sqid, cid } => {
                s.opcode = admin::ABORT;
                s.cdw[0] = u32::from(sqid) | u32::from(cid) << 16;
            }
            AdminCmd::FormatNvm { nsid, lbaf, ses } => {
                (s.opcode, s.nsid) = (admin::FORMAT_NVM, nsid);
                s.cdw[0] = u32::from(lbaf) | u32::from(ses) << 9;
            }
        }
        s
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
