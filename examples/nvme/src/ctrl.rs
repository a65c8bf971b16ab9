//! The user half's controller management (`#[upcall]`): bring-up (probe), recovery
//! (reset and re-create the queues while the kernel half holds the I/O), shutdown.
//!
//! Bring-up, NVMe 1.4 section 7.6.1: disable the controller and wait for CSTS.RDY to
//! clear (at most CAP.TO x 500 ms); have the kernel half program a fresh admin queue;
//! enable with the entry sizes the kernel half's queues use and wait for RDY (CAP.TO
//! again); Identify the controller, the active namespaces and the namespace; Set Features
//! (Number of Queues: one pair); Create I/O CQ 1 then SQ 1; start I/O on them. Recovery is
//! the same sequence: the disable makes the kernel half stop submitting, and
//! `queues_reset` moves what was in flight back to the front of its queue.
//!
//! Nothing here is kept between calls: every upcall starts from the controller's
//! registers and the kernel half, so a restarted user half needs no re-attach work.

use std::time::{Duration, Instant};

use microdriver_rt::{upcall, Marshal};
use nvme_regs::{cap, cc, cns, csts, feat, CAP, CC, CSTS};

use crate::command::{self, AdminCmd};
use crate::error::NvmeError;
use crate::hot::io::{Geometry, IO_ENTRIES, MAX_PAGES};
use crate::identify::{IdCtrl, IdNs};
use crate::kernel::{self, DevId};

/// What bring-up found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct Controller {
    /// CAP.
    pub cap: u64,
    /// Identify Controller.
    pub id: IdCtrl,
    /// The namespace served.
    pub nsid: u32,
    /// Its Identify Namespace.
    pub ns: IdNs,
    /// What the hot path was started with.
    pub geometry: Geometry,
    /// I/O requests that were in flight when the queues were reset (resubmitted).
    pub requeued: u32,
}

/// Reads CAP (two dwords).
pub fn read_cap(dev: DevId) -> Result<u64, NvmeError> {
    Ok(u64::from(kernel::reg_read(dev, CAP)?) | u64::from(kernel::reg_read(dev, CAP + 4)?) << 32)
}

/// Waits until CSTS satisfies `done`, at most `limit`; a fatal status while waiting for
/// ready fails at once.
fn wait_csts(
    dev: DevId,
    what: &str,
    limit: Duration,
    done: impl Fn(u32) -> bool,
) -> Result<u32, NvmeError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(20);
    loop {
        let v = kernel::reg_read(dev, CSTS)?;
        if v != u32::MAX && done(v) {
            return Ok(v);
        }
        if start.elapsed() >= limit {
            return Err(NvmeError::Timeout {
                what: format!("{what} (CSTS {v:#x})"),
                ms: limit.as_millis() as u64,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// CAP.TO as a duration (at least 500 ms).
fn ready_timeout(cap_v: u64) -> Duration {
    Duration::from_millis(500 * u64::from(cap::to(cap_v).max(1)))
}

/// Disables the controller and waits for it to stop.
pub fn disable(dev: DevId, cap_v: u64) -> Result<(), NvmeError> {
    let v = kernel::reg_read(dev, CC)?;
    kernel::reg_write(dev, CC, v & !(cc::EN | cc::SHN_MASK))?;
    wait_csts(dev, "CSTS.RDY to clear", ready_timeout(cap_v), |s| {
        s & csts::RDY == 0
    })?;
    Ok(())
}

fn admin(dev: DevId, cmd: AdminCmd) -> Result<kernel::AdminReply, NvmeError> {
    command::send(dev, &cmd)
}

/// Brings the controller up from whatever state it is in and starts I/O.
fn bring_up(dev: DevId) -> Result<Controller, NvmeError> {
    let class = kernel::pci_read32(dev, 0x08)? >> 8;
    if class != 0x01_08_02 {
        return Err(NvmeError::NotNvme { class });
    }
    let cap_v = read_cap(dev)?;
    if cap::css(cap_v) & 1 == 0 || cap::mpsmin(cap_v) != 0 {
        return Err(NvmeError::Unsupported(format!(
            "CAP {cap_v:#x}: the driver needs the NVM command set and 4 KiB pages"
        )));
    }
    disable(dev, cap_v)?;
    let requeued = kernel::queues_reset(dev)?;
    kernel::admin_queue_setup(dev)?;
    kernel::reg_write(dev, CC, cc::ENABLE)?;
    wait_csts(dev, "CSTS.RDY after enabling", ready_timeout(cap_v), |s| {
        s & (csts::RDY | csts::CFS) != 0
    })
    .and_then(|s| {
        if s & csts::CFS != 0 {
            Err(NvmeError::Fatal)
        } else {
            Ok(s)
        }
    })?;
    let id = IdCtrl::parse(
        &admin(
            dev,
            AdminCmd::Identify {
                cns: cns::CONTROLLER,
                nsid: 0,
            },
        )?
        .data,
    );
    let list = admin(
        dev,
        AdminCmd::Identify {
            cns: cns::ACTIVE_NS_LIST,
            nsid: 0,
        },
    )?
    .data;
    let nsid = list
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .find(|&n| n != 0)
        .ok_or_else(|| NvmeError::Unsupported("the controller has no active namespace".into()))?;
    let ns = IdNs::parse(
        &admin(
            dev,
            AdminCmd::Identify {
                cns: cns::NAMESPACE,
                nsid,
            },
        )?
        .data,
    );
    let granted = admin(
        dev,
        AdminCmd::SetFeatures {
            fid: feat::NUM_QUEUES,
            value: 0,
        },
    )?
    .result;
    if granted & 0xFFFF == 0xFFFF || granted >> 16 == 0xFFFF {
        return Err(NvmeError::Unsupported(format!(
            "number of queues granted: {granted:#x}"
        )));
    }
    let size = IO_ENTRIES.min((cap::mqes(cap_v) + 1).min(u32::from(u16::MAX)) as u16);
    admin(dev, AdminCmd::CreateIoCq { qid: 1, size })?;
    admin(dev, AdminCmd::CreateIoSq { qid: 1, size })?;
    let max_pages = match id.mdts {
        0 => MAX_PAGES,
        m => MAX_PAGES.min(1u32.checked_shl(u32::from(m)).unwrap_or(u32::MAX)),
    };
    let geometry = Geometry {
        nsid,
        lba_shift: ns.format().lbads,
        blocks: ns.nsze,
        max_pages,
    };
    kernel::io_start(dev, &geometry)?;
    // Asynchronous events are a convenience: a controller that refuses the request still
    // serves I/O.
    if let Err(e) = crate::events::arm(dev, 0) {
        tracing::warn!(error = %e, "no asynchronous event request outstanding");
    }
    Ok(Controller {
        cap: cap_v,
        id,
        nsid,
        ns,
        geometry,
        requeued,
    })
}

/// Probes the controller: bring-up from whatever state it is in.
#[upcall]
pub fn probe(dev: DevId) -> Result<Controller, NvmeError> {
    bring_up(dev)
}

/// Recovers the controller (after CSTS.CFS, a command timeout or `nvmectl reset`):
/// reset, re-create the queues, and let the kernel half resubmit what was in flight.
#[upcall]
pub fn recover(dev: DevId) -> Result<Controller, NvmeError> {
    let c = bring_up(dev)?;
    tracing::info!(requeued = c.requeued, "controller reset; queues re-created");
    Ok(c)
}

/// Shuts the controller down cleanly (CC.SHN normal, wait for CSTS.SHST complete), as
/// before power-off; the kernel half detaches it afterwards.
#[upcall]
pub fn shutdown(dev: DevId) -> Result<(), NvmeError> {
    let cap_v = read_cap(dev)?;
    let v = kernel::reg_read(dev, CC)?;
    if v & cc::EN == 0 {
        return Ok(());
    }
    kernel::reg_write(dev, CC, (v & !cc::SHN_MASK) | cc::SHN_NORMAL)?;
    wait_csts(dev, "shutdown to complete", ready_timeout(cap_v), |s| {
        s & csts::SHST_MASK == csts::SHST_COMPLETE
    })?;
    Ok(())
}
