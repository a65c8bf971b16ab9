//! nvme-cli's output layouts, for nvmectl (field names and order as nvme-cli prints
//! them, for the fields the driver reads).

use std::fmt::Write;

use nvme::identify::{ErrorEntry, IdCtrl, IdNs, SmartLog};
use nvme::regs::feat;

/// `nvme id-ctrl`.
pub fn id_ctrl(c: &IdCtrl) -> String {
    let mut s = String::from("NVME Identify Controller:\n");
    let rows: [(&str, String); 18] = [
        ("vid", format!("{:#x}", c.vid)),
        ("ssvid", format!("{:#x}", c.ssvid)),
        ("sn", format!("{:<20}", c.sn)),
        ("mn", format!("{:<40}", c.mn)),
        ("fr", format!("{:<8}", c.fr)),
        ("mdts", c.mdts.to_string()),
        ("cntlid", format!("{:#x}", c.cntlid)),
        ("ver", format!("{:#x}", c.ver)),
        ("oacs", format!("{:#x}", c.oacs)),
        ("acl", c.acl.to_string()),
        ("aerl", c.aerl.to_string()),
        ("lpa", format!("{:#x}", c.lpa)),
        ("elpe", c.elpe.to_string()),
        ("sqes", format!("{:#x}", c.sqes)),
        ("cqes", format!("{:#x}", c.cqes)),
        ("nn", c.nn.to_string()),
        ("oncs", format!("{:#x}", c.oncs)),
        ("vwc", format!("{:#x}", c.vwc)),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "{k:<10}: {v}");
    }
    s
}

/// `nvme id-ns`.
pub fn id_ns(nsid: u32, n: &IdNs) -> String {
    let mut s = format!("NVME Identify Namespace {nsid}:\n");
    for (k, v) in [
        ("nsze", format!("{:#x}", n.nsze)),
        ("ncap", format!("{:#x}", n.ncap)),
        ("nuse", format!("{:#x}", n.nuse)),
        ("nsfeat", format!("{:#x}", n.nsfeat)),
        ("nlbaf", n.nlbaf.to_string()),
        ("flbas", format!("{:#x}", n.flbas)),
    ] {
        let _ = writeln!(s, "{k:<8}: {v}");
    }
    for (i, f) in n.lbaf.iter().enumerate() {
        let used = if i == usize::from(n.flbas & 0xF) {
            " (in use)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "lbaf {i:>2} : ms:{:<3} lbads:{:<2} rp:{:#x}{used}",
            f.ms, f.lbads, f.rp
        );
    }
    s
}

/// `nvme smart-log`.
pub fn smart_log(dev: &str, l: &SmartLog) -> String {
    let mut s = format!("Smart Log for NVME device:{dev} namespace-id:ffffffff\n");
    let c = i32::from(l.temperature) - 273;
    for (k, v) in [
        ("critical_warning", l.critical_warning.to_string()),
        ("temperature", format!("{c} C ({} Kelvin)", l.temperature)),
        ("available_spare", format!("{}%", l.avail_spare)),
        ("available_spare_threshold", format!("{}%", l.spare_thresh)),
        ("percentage_used", format!("{}%", l.percent_used)),
        ("data_units_read", l.data_units_read.to_string()),
        ("data_units_written", l.data_units_written.to_string()),
        ("host_read_commands", l.host_reads.to_string()),
        ("host_write_commands", l.host_writes.to_string()),
        ("controller_busy_time", l.ctrl_busy_time.to_string()),
        ("power_cycles", l.power_cycles.to_string()),
        ("power_on_hours", l.power_on_hours.to_string()),
        ("unsafe_shutdowns", l.unsafe_shutdowns.to_string()),
        ("media_errors", l.media_errors.to_string()),
        ("num_err_log_entries", l.num_err_log_entries.to_string()),
    ] {
        let _ = writeln!(s, "{k:<40}: {v}");
    }
    s
}

/// `nvme error-log`.
pub fn error_log(dev: &str, entries: &[ErrorEntry]) -> String {
    let mut s = format!(
        "Error Log Entries for device:{dev} entries:{}\n.................\n",
        entries.len()
    );
    for (i, e) in entries.iter().enumerate() {
        let _ = write!(
            s,
            " Entry[{i:>2}]\n.................\nerror_count\t: {}\nsqid\t\t: {}\ncmdid\t\t: {:#x}\nstatus_field\t: {:#x}\nparm_err_loc\t: {:#x}\nlba\t\t: {:#x}\nnsid\t\t: {:#x}\n.................\n",
            e.error_count, e.sqid, e.cmdid, e.status_field >> 1, e.parm_error_location, e.lba, e.nsid
        );
    }
    s
}

/// A feature's name as nvme-cli prints it.
pub fn feature_name(fid: u8) -> &'static str {
    feat::KNOWN
        .iter()
        .find(|(f, _)| *f == fid)
        .map_or("Unknown", |(_, n)| n)
}

/// `nvme list`, for the one device nvmed serves.
pub fn list(node: &str, c: &IdCtrl, nsid: u32, n: &IdNs) -> String {
    let f = n.format();
    let size = |blocks: u64| (blocks << f.lbads) as f64 / 1e9;
    let usage = format!("{:.2}  GB / {:.2}  GB", size(n.nuse), size(n.nsze));
    let fmt = format!("{:<3} B + {:>2} B", 1u64 << f.lbads, f.ms);
    format!(
        "{:<21} {:<20} {:<40} {:<9} {:<26} {:<16} {:<8}\n{} {} {} {} {} {} {}\n{:<21} {:<20} {:<40} {:<9} {:<26} {:<16} {:<8}\n",
        "Node", "SN", "Model", "Namespace", "Usage", "Format", "FW Rev",
        "-".repeat(21), "-".repeat(20), "-".repeat(40), "-".repeat(9), "-".repeat(26), "-".repeat(16), "-".repeat(8),
        node, c.sn, c.mn, nsid, usage, fmt, c.fr
    )
}
