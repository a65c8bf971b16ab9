//! Admin commands as the user half names them ([`AdminCmd`]) and encodes them
//! ([`AdminCmd::encode`]: the argument checks and the dword layouts of NVMe 1.4, section
//! 5) into the [`AdminSqe`] the kernel half checks and completes with its command id and
//! its memory; [`send`] is the user half's way to the kernel half's `admin_command`.

use microdriver_rt::Marshal;
use nvme_regs::{admin, feat, Sqe, PAGE};

use crate::error::NvmeError;
use crate::kernel::{AdminReply, AdminSqe, DevId};

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

    /// The entry the kernel half completes (user half): checked, then laid out.
    pub fn encode(&self) -> Result<AdminSqe, NvmeError> {
        self.check()?;
        let mut s = Sqe::default();
        match *self {
            AdminCmd::Identify { cns, nsid } => {
                (s.opcode, s.nsid) = (admin::IDENTIFY, nsid);
                s.cdw[0] = u32::from(cns);
            }
            AdminCmd::GetLogPage {
                lid,
                nsid,
                len,
                offset,
                rae,
            } => {
                (s.opcode, s.nsid) = (admin::GET_LOG_PAGE, nsid);
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
                // The kernel half sets the flags (contiguous, interrupts on vector 0).
                s.opcode = admin::CREATE_CQ;
                s.cdw[0] = u32::from(qid) | u32::from(size.wrapping_sub(1)) << 16;
            }
            AdminCmd::CreateIoSq { qid, size } => {
                // The kernel half sets the flags (contiguous, on completion queue `qid`).
                s.opcode = admin::CREATE_SQ;
                s.cdw[0] = u32::from(qid) | u32::from(size.wrapping_sub(1)) << 16;
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
        Ok(AdminSqe {
            opcode: s.opcode,
            nsid: s.nsid,
            cdw: s.cdw.to_vec(),
        })
    }
}

/// Sends an admin command through the kernel half (user half): encodes it, and names it
/// in a failure the kernel half reports by opcode.
pub fn send(dev: DevId, cmd: &AdminCmd) -> Result<AdminReply, NvmeError> {
    crate::kernel::admin_command(dev, &cmd.encode()?).map_err(|e| match e {
        NvmeError::Status { status, .. } => NvmeError::Status {
            what: cmd.name().into(),
            status,
        },
        NvmeError::Timeout { ms, .. } => NvmeError::Timeout {
            what: format!("admin command {}", cmd.name()),
            ms,
        },
        e => e,
    })
}
