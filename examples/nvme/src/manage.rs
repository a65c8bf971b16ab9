//! The user half's management commands (`#[upcall]`), named after nvme-cli's: what
//! `nvmectl` asks for. Each sends admin commands through the kernel half.

use microdriver_rt::upcall;
use nvme_regs::{cns, log};

use crate::error::NvmeError;
use crate::identify::{ErrorEntry, IdCtrl, IdNs, SmartLog};
use crate::kernel::{self, AdminCmd, DevId};

fn admin(dev: DevId, cmd: AdminCmd) -> Result<kernel::AdminReply, NvmeError> {
    kernel::admin_command(dev, &cmd)
}

/// `id-ctrl`.
#[upcall]
pub fn id_ctrl(dev: DevId) -> Result<IdCtrl, NvmeError> {
    Ok(IdCtrl::parse(
        &admin(
            dev,
            AdminCmd::Identify {
                cns: cns::CONTROLLER,
                nsid: 0,
            },
        )?
        .data,
    ))
}

/// `id-ns`.
#[upcall]
pub fn id_ns(dev: DevId, nsid: u32) -> Result<IdNs, NvmeError> {
    Ok(IdNs::parse(
        &admin(
            dev,
            AdminCmd::Identify {
                cns: cns::NAMESPACE,
                nsid,
            },
        )?
        .data,
    ))
}

/// `list-ns`: the active namespace ids.
#[upcall]
pub fn list_ns(dev: DevId) -> Result<Vec<u32>, NvmeError> {
    let d = admin(
        dev,
        AdminCmd::Identify {
            cns: cns::ACTIVE_NS_LIST,
            nsid: 0,
        },
    )?
    .data;
    Ok(d.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .take_while(|&n| n != 0)
        .collect())
}

/// `smart-log`.
#[upcall]
pub fn smart_log(dev: DevId) -> Result<SmartLog, NvmeError> {
    let cmd = AdminCmd::GetLogPage {
        lid: log::SMART,
        nsid: u32::MAX,
        len: log::SMART_LEN as u32,
    };
    Ok(SmartLog::parse(&admin(dev, cmd)?.data))
}

/// `error-log`: up to `entries` entries (the controller keeps ELPE + 1).
#[upcall]
pub fn error_log(dev: DevId, entries: u32) -> Result<Vec<ErrorEntry>, NvmeError> {
    let n = entries.clamp(1, 64);
    let cmd = AdminCmd::GetLogPage {
        lid: log::ERROR,
        nsid: u32::MAX,
        len: n * log::ERROR_ENTRY_LEN as u32,
    };
    Ok(admin(dev, cmd)?
        .data
        .chunks_exact(log::ERROR_ENTRY_LEN)
        .map(ErrorEntry::parse)
        .collect())
}

/// `get-feature`: the feature's dword 0.
#[upcall]
pub fn get_feature(dev: DevId, fid: u8, sel: u8) -> Result<u32, NvmeError> {
    Ok(admin(dev, AdminCmd::GetFeatures { fid, sel })?.result)
}

/// `set-feature`: the completion's dword 0.
#[upcall]
pub fn set_feature(dev: DevId, fid: u8, value: u32) -> Result<u32, NvmeError> {
    if fid == nvme_regs::feat::NUM_QUEUES {
        return Err(NvmeError::invalid(
            "feature",
            "Number of Queues is set at bring-up only (the queues exist)",
        ));
    }
    Ok(admin(dev, AdminCmd::SetFeatures { fid, value })?.result)
}

/// `format`: Format NVM.
#[upcall]
pub fn format(dev: DevId, nsid: u32, lbaf: u8, ses: u8) -> Result<(), NvmeError> {
    admin(dev, AdminCmd::FormatNvm { nsid, lbaf, ses })?;
    Ok(())
}
