//! The user half's management commands (`#[upcall]`), named after nvme-cli's: what
//! `nvmectl` asks for. Each sends admin commands through the kernel half.
//!
//! The features the driver manages have their own functions, which encode and decode
//! their dwords (NVMe 1.4, 5.21.1): interrupt coalescing, the volatile write cache, the
//! temperature thresholds and the asynchronous event configuration. `get_feature` and
//! `set_feature` pass any dword the kernel half allows.

use microdriver_rt::{upcall, Marshal};
use nvme_regs::{cns, feat, log, PAGE};

use crate::command::{self, AdminCmd};
use crate::error::NvmeError;
use crate::identify::{ErrorEntry, IdCtrl, IdNs, SmartLog};
use crate::kernel::{self, DevId};

fn admin(dev: DevId, cmd: AdminCmd) -> Result<kernel::AdminReply, NvmeError> {
    command::send(dev, &cmd)
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
        offset: 0,
        rae: false,
    };
    Ok(SmartLog::parse(&admin(dev, cmd)?.data))
}

/// `error-log`: up to `entries` entries, at most what the controller keeps (ELPE + 1),
/// newest first. More than a log page's worth (64) are read a page at a time at
/// increasing offsets when the controller supports offsets (LPA bit 2); otherwise the
/// first page only.
#[upcall]
pub fn error_log(dev: DevId, entries: u32) -> Result<Vec<ErrorEntry>, NvmeError> {
    let id = id_ctrl(dev)?;
    let per_page = (PAGE / log::ERROR_ENTRY_LEN) as u32;
    let kept = u32::from(id.elpe) + 1;
    let most = if id.lpa & LPA_OFFSETS != 0 {
        kept
    } else {
        kept.min(per_page)
    };
    let n = entries.clamp(1, most);
    let mut out = Vec::with_capacity(n as usize);
    while (out.len() as u32) < n {
        let take = (n - out.len() as u32).min(per_page);
        let cmd = AdminCmd::GetLogPage {
            lid: log::ERROR,
            nsid: u32::MAX,
            len: take * log::ERROR_ENTRY_LEN as u32,
            offset: out.len() as u64 * log::ERROR_ENTRY_LEN as u64,
            rae: false,
        };
        let data = admin(dev, cmd)?.data;
        out.extend(
            data.chunks_exact(log::ERROR_ENTRY_LEN)
                .map(ErrorEntry::parse),
        );
    }
    Ok(out)
}

/// Identify Controller LPA bit 2: Get Log Page takes an offset (extended data).
const LPA_OFFSETS: u8 = 1 << 2;

/// `get-feature`: the feature's dword 0.
#[upcall]
pub fn get_feature(dev: DevId, fid: u8, sel: u8) -> Result<u32, NvmeError> {
    let cdw11 = 0;
    Ok(admin(dev, AdminCmd::GetFeatures { fid, sel, cdw11 })?.result)
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

fn get(dev: DevId, fid: u8, cdw11: u32) -> Result<u32, NvmeError> {
    Ok(admin(dev, AdminCmd::GetFeatures { fid, sel: 0, cdw11 })?.result)
}

fn set(dev: DevId, fid: u8, value: u32) -> Result<u32, NvmeError> {
    Ok(admin(dev, AdminCmd::SetFeatures { fid, value })?.result)
}

/// Interrupt coalescing (feature 0x08): the controller may wait up to `time_100us` x 100
/// microseconds or until `threshold` + 1 completions before interrupting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct IrqCoalescing {
    /// Aggregation time, in 100 microsecond units (0: none).
    pub time_100us: u8,
    /// Aggregation threshold, completions (0-based).
    pub threshold: u8,
}

impl IrqCoalescing {
    /// Decodes the feature's dword.
    pub fn decode(v: u32) -> Self {
        IrqCoalescing {
            time_100us: (v >> 8) as u8,
            threshold: v as u8,
        }
    }

    /// Encodes it.
    pub fn encode(self) -> u32 {
        u32::from(self.time_100us) << 8 | u32::from(self.threshold)
    }
}

/// Sets interrupt coalescing.
#[upcall]
pub fn set_irq_coalescing(dev: DevId, c: IrqCoalescing) -> Result<(), NvmeError> {
    set(dev, feat::IRQ_COALESCE, c.encode()).map(drop)
}

/// The current interrupt coalescing.
#[upcall]
pub fn irq_coalescing(dev: DevId) -> Result<IrqCoalescing, NvmeError> {
    get(dev, feat::IRQ_COALESCE, 0).map(IrqCoalescing::decode)
}

/// Turns the volatile write cache on or off (feature 0x06); refused when Identify says
/// the controller has none (VWC bit 0 clear).
#[upcall]
pub fn set_write_cache(dev: DevId, on: bool) -> Result<(), NvmeError> {
    if id_ctrl(dev)?.vwc & 1 == 0 {
        return Err(NvmeError::Unsupported(
            "the controller has no volatile write cache (Identify VWC bit 0 clear)".into(),
        ));
    }
    set(dev, feat::VOLATILE_WC, u32::from(on)).map(drop)
}

/// Whether the volatile write cache is on.
#[upcall]
pub fn write_cache(dev: DevId) -> Result<bool, NvmeError> {
    Ok(get(dev, feat::VOLATILE_WC, 0)? & 1 != 0)
}

/// Which temperature threshold (feature 0x04, the composite temperature's).
const THSEL_UNDER: u32 = 1 << 20;

/// Sets the composite temperature's over (`under` false) or under threshold, in Kelvin.
/// Crossing it raises a SMART / health asynchronous event when the asynchronous event
/// configuration enables temperature warnings.
#[upcall]
pub fn set_temp_threshold(dev: DevId, kelvin: u16, under: bool) -> Result<(), NvmeError> {
    let sel = if under { THSEL_UNDER } else { 0 };
    set(dev, feat::TEMP_THRESH, sel | u32::from(kelvin)).map(drop)
}

/// The composite temperature's over or under threshold, in Kelvin.
#[upcall]
pub fn temp_threshold(dev: DevId, under: bool) -> Result<u16, NvmeError> {
    let sel = if under { THSEL_UNDER } else { 0 };
    Ok(get(dev, feat::TEMP_THRESH, sel)? as u16)
}

/// The asynchronous event configuration (feature 0x0B): which events the controller
/// reports through the requests the driver leaves outstanding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct AsyncEventConfig {
    /// SMART / health critical warnings (bit 1: temperature).
    pub smart: u8,
    /// Notices (bits 31:8 of the dword: namespace attribute, firmware activation, ...).
    pub notices: u32,
}

impl AsyncEventConfig {
    /// Decodes the feature's dword.
    pub fn decode(v: u32) -> Self {
        AsyncEventConfig {
            smart: v as u8,
            notices: v >> 8,
        }
    }

    /// Encodes it (notices above bit 23 cannot be expressed and are refused).
    pub fn encode(self) -> Result<u32, NvmeError> {
        if self.notices >> 24 != 0 {
            return Err(NvmeError::invalid(
                "notices",
                "bits 0..=23 (dword bits 31:8)",
            ));
        }
        Ok(self.notices << 8 | u32::from(self.smart))
    }
}

/// Sets the asynchronous event configuration.
#[upcall]
pub fn set_async_event_config(dev: DevId, c: AsyncEventConfig) -> Result<(), NvmeError> {
    set(dev, feat::ASYNC_EVENT, c.encode()?).map(drop)
}

/// The asynchronous event configuration.
#[upcall]
pub fn async_event_config(dev: DevId) -> Result<AsyncEventConfig, NvmeError> {
    get(dev, feat::ASYNC_EVENT, 0).map(AsyncEventConfig::decode)
}

/// `abort`: the Abort command for I/O command `cid` on submission queue `sqid`; true if
/// the controller aborted it (the kernel half then resubmits it). The kernel half refuses
/// a command id that is not in flight.
#[upcall]
pub fn abort(dev: DevId, sqid: u16, cid: u16) -> Result<bool, NvmeError> {
    Ok(admin(dev, AdminCmd::Abort { sqid, cid })?.result & 1 == 0)
}
