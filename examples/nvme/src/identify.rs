//! The data structures the user half reads from the controller, parsed (NVMe 1.4: 5.15.2
//! Identify controller and namespace, 5.14.1 the SMART / health and error information
//! logs). Parsing takes any bytes: short input reads as zeros.

use microdriver_rt::Marshal;

fn le(d: &[u8], off: usize, n: usize) -> u64 {
    (0..n).fold(0u64, |v, i| {
        v | u64::from(d.get(off + i).copied().unwrap_or(0)) << (8 * i)
    })
}

fn text(d: &[u8], off: usize, n: usize) -> String {
    let b: Vec<u8> = (off..off + n)
        .map(|i| d.get(i).copied().unwrap_or(b' '))
        .collect();
    String::from_utf8_lossy(&b)
        .trim_end_matches([' ', '\0'])
        .to_string()
}

/// Identify Controller, the fields the driver and nvmectl use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct IdCtrl {
    /// PCI vendor id.
    pub vid: u16,
    /// PCI subsystem vendor id.
    pub ssvid: u16,
    /// Serial number.
    pub sn: String,
    /// Model number.
    pub mn: String,
    /// Firmware revision.
    pub fr: String,
    /// Maximum data transfer size (2^mdts pages; 0: no limit).
    pub mdts: u8,
    /// Controller id.
    pub cntlid: u16,
    /// Version.
    pub ver: u32,
    /// Optional admin command support.
    pub oacs: u16,
    /// Abort command limit (0-based).
    pub acl: u8,
    /// Asynchronous event request limit (0-based).
    pub aerl: u8,
    /// Log page attributes.
    pub lpa: u8,
    /// Error log page entries (0-based).
    pub elpe: u8,
    /// Submission queue entry sizes (required, maximum; log2 nibbles).
    pub sqes: u8,
    /// Completion queue entry sizes.
    pub cqes: u8,
    /// Number of namespaces.
    pub nn: u32,
    /// Optional NVM command support.
    pub oncs: u16,
    /// Volatile write cache present.
    pub vwc: u8,
}

impl IdCtrl {
    /// Parses the 4 KiB structure.
    pub fn parse(d: &[u8]) -> Self {
        IdCtrl {
            vid: le(d, 0, 2) as u16,
            ssvid: le(d, 2, 2) as u16,
            sn: text(d, 4, 20),
            mn: text(d, 24, 40),
            fr: text(d, 64, 8),
            mdts: le(d, 77, 1) as u8,
            cntlid: le(d, 78, 2) as u16,
            ver: le(d, 80, 4) as u32,
            oacs: le(d, 256, 2) as u16,
            acl: le(d, 258, 1) as u8,
            aerl: le(d, 259, 1) as u8,
            lpa: le(d, 261, 1) as u8,
            elpe: le(d, 262, 1) as u8,
            sqes: le(d, 512, 1) as u8,
            cqes: le(d, 513, 1) as u8,
            nn: le(d, 516, 4) as u32,
            oncs: le(d, 520, 2) as u16,
            vwc: le(d, 525, 1) as u8,
        }
    }
}

/// One LBA format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct LbaFormat {
    /// Metadata bytes per block.
    pub ms: u16,
    /// log2 of the block size.
    pub lbads: u8,
    /// Relative performance.
    pub rp: u8,
}

/// Identify Namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct IdNs {
    /// Namespace size (blocks).
    pub nsze: u64,
    /// Namespace capacity.
    pub ncap: u64,
    /// Namespace utilization.
    pub nuse: u64,
    /// Namespace features.
    pub nsfeat: u8,
    /// Number of LBA formats (0-based).
    pub nlbaf: u8,
    /// Formatted LBA size (bits 3:0: the format in use).
    pub flbas: u8,
    /// The LBA formats.
    pub lbaf: Vec<LbaFormat>,
}

impl IdNs {
    /// Parses the 4 KiB structure.
    pub fn parse(d: &[u8]) -> Self {
        let nlbaf = (le(d, 25, 1) as u8).min(15);
        IdNs {
            nsze: le(d, 0, 8),
            ncap: le(d, 8, 8),
            nuse: le(d, 16, 8),
            nsfeat: le(d, 24, 1) as u8,
            nlbaf,
            flbas: le(d, 26, 1) as u8,
            lbaf: (0..=usize::from(nlbaf))
                .map(|i| {
                    let f = le(d, 128 + 4 * i, 4);
                    LbaFormat {
                        ms: f as u16,
                        lbads: (f >> 16) as u8,
                        rp: (f >> 24) as u8 & 3,
                    }
                })
                .collect(),
        }
    }

    /// The LBA format in use.
    pub fn format(&self) -> LbaFormat {
        self.lbaf
            .get(usize::from(self.flbas & 0xF))
            .copied()
            .unwrap_or_default()
    }
}

/// The SMART / health information log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct SmartLog {
    /// Critical warning bits.
    pub critical_warning: u8,
    /// Composite temperature, Kelvin.
    pub temperature: u16,
    /// Available spare, percent.
    pub avail_spare: u8,
    /// Available spare threshold, percent.
    pub spare_thresh: u8,
    /// Percentage used.
    pub percent_used: u8,
    /// Data units read (thousands of 512-byte units; low 64 bits).
    pub data_units_read: u64,
    /// Data units written.
    pub data_units_written: u64,
    /// Host read commands.
    pub host_reads: u64,
    /// Host write commands.
    pub host_writes: u64,
    /// Controller busy time, minutes.
    pub ctrl_busy_time: u64,
    /// Power cycles.
    pub power_cycles: u64,
    /// Power-on hours.
    pub power_on_hours: u64,
    /// Unsafe shutdowns.
    pub unsafe_shutdowns: u64,
    /// Media and data integrity errors.
    pub media_errors: u64,
    /// Error information log entries.
    pub num_err_log_entries: u64,
}

impl SmartLog {
    /// Parses the 512-byte log.
    pub fn parse(d: &[u8]) -> Self {
        SmartLog {
            critical_warning: le(d, 0, 1) as u8,
            temperature: le(d, 1, 2) as u16,
            avail_spare: le(d, 3, 1) as u8,
            spare_thresh: le(d, 4, 1) as u8,
            percent_used: le(d, 5, 1) as u8,
            data_units_read: le(d, 32, 8),
            data_units_written: le(d, 48, 8),
            host_reads: le(d, 64, 8),
            host_writes: le(d, 80, 8),
            ctrl_busy_time: le(d, 96, 8),
            power_cycles: le(d, 112, 8),
            power_on_hours: le(d, 128, 8),
            unsafe_shutdowns: le(d, 144, 8),
            media_errors: le(d, 160, 8),
            num_err_log_entries: le(d, 176, 8),
        }
    }
}

/// One error information log entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct ErrorEntry {
    /// Error count (0: an empty entry).
    pub error_count: u64,
    /// Submission queue id.
    pub sqid: u16,
    /// Command id.
    pub cmdid: u16,
    /// Status field (as in the completion, phase bit included).
    pub status_field: u16,
    /// Parameter error location.
    pub parm_error_location: u16,
    /// LBA.
    pub lba: u64,
    /// Namespace.
    pub nsid: u32,
}

impl ErrorEntry {
    /// Parses a 64-byte entry.
    pub fn parse(d: &[u8]) -> Self {
        ErrorEntry {
            error_count: le(d, 0, 8),
            sqid: le(d, 8, 2) as u16,
            cmdid: le(d, 10, 2) as u16,
            status_field: le(d, 12, 2) as u16,
            parm_error_location: le(d, 14, 2) as u16,
            lba: le(d, 16, 8),
            nsid: le(d, 24, 4) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_empty_input_parses_as_zeros() {
        assert_eq!(IdCtrl::parse(&[]), IdCtrl::default());
        let ns = IdNs::parse(&[0xFF; 30]);
        assert_eq!(
            ns.nlbaf, 15,
            "clamped to the 16 formats the structure holds"
        );
        assert_eq!(ns.lbaf.len(), 16);
        assert_eq!(ns.format(), LbaFormat::default());
        assert_eq!(SmartLog::parse(&[1]).critical_warning, 1);
    }
}
