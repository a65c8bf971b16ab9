//! The user half's side of what the kernel half notices off the I/O path (`#[upcall]`):
//! commands past their timeout, and asynchronous events.
//!
//! * **Timeouts.** The kernel half's health check reports each command newly past the
//!   I/O timeout ([`crate::kernel::health_check`]); the user half decides. It sends an
//!   Abort for each (the kernel half checks the command is in flight, and resubmits it
//!   when the controller completes it with Command Abort Requested); if the controller
//!   does not abort one, the abort fails, or more than [`MAX_ABORTS`] are overdue at once
//!   (the controller is stuck, not one command), it schedules a reset. A command still in
//!   flight a timeout after it was reported makes the kernel half reset on its own, so a
//!   dead or wrong user half cannot leave I/O stuck.
//! * **Asynchronous events.** Bring-up leaves [`AERS`] Asynchronous Event Request
//!   outstanding. When one completes the kernel half keeps the event and posts work; the
//!   user half takes the events ([`crate::kernel::take_events`]), decodes and logs each,
//!   reads the log page it names with RAE clear (which is what clears the event: the
//!   controller reports no event of that type until then) and arms the request again. A
//!   request that completes with an error is not re-armed (a controller refusing them
//!   would otherwise keep the driver busy); the next bring-up arms it again.

use microdriver_rt::{upcall, Marshal};
use nvme_regs::{aer, log};

use crate::command::{self, AdminCmd};
use crate::error::NvmeError;
use crate::hot::io::Overdue;
use crate::identify::{ErrorEntry, SmartLog};
use crate::kernel::{self, DevId};

/// Most overdue commands aborted one by one; more at once and the user half resets.
pub const MAX_ABORTS: usize = 4;
/// Asynchronous event requests the driver keeps outstanding.
pub const AERS: u32 = 1;

/// What the user half decided about overdue commands.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub enum TimeoutAction {
    /// Each was aborted (the kernel half resubmits it) or had completed meanwhile.
    Aborted {
        /// Commands the controller aborted.
        commands: u32,
    },
    /// A controller reset was scheduled.
    Reset {
        /// Why the aborts were not enough.
        why: String,
    },
}

/// Handles commands past the I/O timeout: Abort each, or reset the controller.
#[upcall]
pub fn command_timeout(dev: DevId, overdue: Vec<Overdue>) -> Result<TimeoutAction, NvmeError> {
    if overdue.len() > MAX_ABORTS {
        let why = format!(
            "{} commands overdue at once (more than {MAX_ABORTS}): the controller is stuck",
            overdue.len()
        );
        kernel::schedule_reset(dev)?;
        return Ok(TimeoutAction::Reset { why });
    }
    let mut commands = 0;
    for o in &overdue {
        tracing::warn!(cid = o.cid, op = ?o.op, lba = o.lba, age_ms = o.age_ms, "command timed out: aborting it");
        let abort = AdminCmd::Abort {
            sqid: o.sqid,
            cid: o.cid,
        };
        let why = match command::send(dev, &abort) {
            Ok(r) if r.result & 1 == 0 => {
                commands += 1;
                continue;
            }
            // It completed between the report and the abort: nothing left to do.
            Err(NvmeError::Invalid { .. }) => continue,
            Ok(_) => format!("the controller did not abort command {:#06x}", o.cid),
            Err(e) => format!("aborting command {:#06x}: {e}", o.cid),
        };
        tracing::warn!(reason = %why, "resetting the controller");
        kernel::schedule_reset(dev)?;
        return Ok(TimeoutAction::Reset { why });
    }
    Ok(TimeoutAction::Aborted { commands })
}

/// One asynchronous event as the user half handled it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct EventReport {
    /// The request's completion dword 0.
    pub result: u32,
    /// Its status (non-zero: the request failed; no event).
    pub status: u16,
    /// What happened, decoded (and what the log page said).
    pub text: String,
}

fn describe(ty: u8, info: u8) -> String {
    let (kind, what) = match ty {
        aer::TYPE_ERROR => (
            "error",
            match info {
                0 => "write to an invalid doorbell register",
                1 => "invalid doorbell write value",
                2 => "diagnostic failure",
                3 => "persistent internal error",
                4 => "transient internal error",
                5 => "firmware image load error",
                _ => "",
            },
        ),
        aer::TYPE_SMART => (
            "smart",
            match info {
                0 => "NVM subsystem reliability",
                aer::INFO_SMART_TEMPERATURE => "temperature threshold",
                2 => "spare below threshold",
                _ => "",
            },
        ),
        aer::TYPE_NOTICE => (
            "notice",
            match info {
                0 => "namespace attribute changed",
                1 => "firmware activation starting",
                2 => "telemetry log changed",
                _ => "",
            },
        ),
        aer::TYPE_IO_SPECIFIC => ("io-command-set", ""),
        aer::TYPE_VENDOR => ("vendor", ""),
        _ => ("reserved-type", ""),
    };
    if what.is_empty() {
        format!("{kind} (type {ty}, info {info:#04x})")
    } else {
        format!("{kind}: {what}")
    }
}

/// Reads the log page an event names with RAE clear, which clears the event; returns
/// what it says, briefly.
fn clear(dev: DevId, lid: u8) -> Result<String, NvmeError> {
    let len = match lid {
        log::SMART => log::SMART_LEN,
        log::ERROR => log::ERROR_ENTRY_LEN,
        // Reserved: nothing to read (and nothing the controller could clear).
        0 => return Ok(String::new()),
        // Another log: reading its first dword is enough to clear the event.
        _ => 4,
    };
    let cmd = AdminCmd::GetLogPage {
        lid,
        nsid: u32::MAX,
        len: len as u32,
        offset: 0,
        rae: false,
    };
    let data = command::send(dev, &cmd)?.data;
    Ok(match lid {
        log::SMART => {
            let s = SmartLog::parse(&data);
            format!(
                "; smart-log: critical_warning {:#x}, temperature {} K",
                s.critical_warning, s.temperature
            )
        }
        log::ERROR => {
            let e = ErrorEntry::parse(&data);
            format!(
                "; error-log: error_count {}, sqid {}, cmdid {:#x}, status {:#x}",
                e.error_count,
                e.sqid,
                e.cmdid,
                e.status_field >> 1
            )
        }
        _ => format!("; log page {lid:#04x} read"),
    })
}

/// Leaves asynchronous event requests outstanding until there are [`AERS`] (`armed`
/// are already).
pub fn arm(dev: DevId, armed: u32) -> Result<(), NvmeError> {
    for _ in armed..AERS {
        command::send(dev, &AdminCmd::AsyncEventRequest)?;
    }
    Ok(())
}

/// Handles the asynchronous events the kernel half kept: decodes and logs each, reads the
/// log page it names (clearing it), and re-arms the requests.
#[upcall]
pub fn async_events(dev: DevId) -> Result<Vec<EventReport>, NvmeError> {
    let taken = kernel::take_events(dev)?;
    if taken.dropped > 0 {
        tracing::warn!(
            dropped = taken.dropped,
            "asynchronous events were dropped before the user half took them"
        );
    }
    let mut rearm = true;
    let mut reports = Vec::with_capacity(taken.events.len());
    for e in taken.events {
        let text = if e.status != 0 {
            rearm = false;
            format!(
                "asynchronous event request failed with status {:#05x}: not re-armed until the next reset",
                e.status
            )
        } else {
            let (ty, info, lid) = aer::decode(e.result);
            let what = describe(ty, info);
            let log = clear(dev, lid).unwrap_or_else(|err| format!("; log page {lid:#04x}: {err}"));
            format!("{what} (log page {lid:#04x}){log}")
        };
        tracing::warn!(
            result = e.result,
            status = e.status,
            "asynchronous event: {text}"
        );
        reports.push(EventReport {
            result: e.result,
            status: e.status,
            text,
        });
    }
    if rearm {
        arm(dev, taken.armed)?;
    }
    Ok(reports)
}
