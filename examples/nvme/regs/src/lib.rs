//! The NVMe register map and the layouts of submission and completion queue entries
//! (NVM Express Base Specification 1.4: section 3.1 registers, 4.2 SQE, 4.6 CQE, 5 admin
//! commands, 6 NVM commands), shared by the driver and the controller model so both speak
//! the same encoding. Plain constants and small pure encoders: no device access.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Controller capabilities (64-bit).
pub const CAP: u32 = 0x00;
/// Version.
pub const VS: u32 = 0x08;
/// Interrupt mask set (pin-based and MSI single-vector interrupts).
pub const INTMS: u32 = 0x0C;
/// Interrupt mask clear.
pub const INTMC: u32 = 0x10;
/// Controller configuration.
pub const CC: u32 = 0x14;
/// Controller status.
pub const CSTS: u32 = 0x1C;
/// NVM subsystem reset.
pub const NSSR: u32 = 0x20;
/// Admin queue attributes (sizes of the admin SQ and CQ, 0-based).
pub const AQA: u32 = 0x24;
/// Admin submission queue base address (64-bit).
pub const ASQ: u32 = 0x28;
/// Admin completion queue base address (64-bit).
pub const ACQ: u32 = 0x30;
/// First doorbell register.
pub const DOORBELL_BASE: u32 = 0x1000;
/// The memory page size the driver uses (CC.MPS = 0).
pub const PAGE: usize = 4096;

/// Fields of CAP.
pub mod cap {
    /// Maximum queue entries supported, 0-based.
    pub fn mqes(cap: u64) -> u32 {
        (cap & 0xFFFF) as u32
    }
    /// Contiguous queues required.
    pub fn cqr(cap: u64) -> bool {
        cap & (1 << 16) != 0
    }
    /// Worst-case time to become ready after CC.EN changes, in 500 ms units.
    pub fn to(cap: u64) -> u32 {
        ((cap >> 24) & 0xFF) as u32
    }
    /// Doorbell stride: doorbells are `4 << DSTRD` bytes apart.
    pub fn dstrd(cap: u64) -> u32 {
        ((cap >> 32) & 0xF) as u32
    }
    /// Command sets supported (bit 0: the NVM command set).
    pub fn css(cap: u64) -> u32 {
        ((cap >> 37) & 0xFF) as u32
    }
    /// Smallest memory page size, as a power of two minus 12.
    pub fn mpsmin(cap: u64) -> u32 {
        ((cap >> 48) & 0xF) as u32
    }
    /// Largest memory page size, as a power of two minus 12.
    pub fn mpsmax(cap: u64) -> u32 {
        ((cap >> 52) & 0xF) as u32
    }
    /// Builds a CAP value (the model's).
    pub fn build(mqes: u16, to: u8, dstrd: u8, mpsmax: u8) -> u64 {
        u64::from(mqes)
            | 1 << 16
            | u64::from(to) << 24
            | u64::from(dstrd & 0xF) << 32
            | 1 << 37
            | u64::from(mpsmax & 0xF) << 52
    }
}

/// Fields of CC.
pub mod cc {
    /// Enable.
    pub const EN: u32 = 1 << 0;
    /// I/O command set selected (bits 6:4; 0 = NVM).
    pub const CSS_MASK: u32 = 0x7 << 4;
    /// Memory page size (bits 10:7; 0 = 4 KiB).
    pub const MPS_MASK: u32 = 0xF << 7;
    /// Arbitration mechanism (bits 13:11).
    pub const AMS_MASK: u32 = 0x7 << 11;
    /// Shutdown notification (bits 15:14).
    pub const SHN_MASK: u32 = 0x3 << 14;
    /// Normal shutdown.
    pub const SHN_NORMAL: u32 = 0x1 << 14;
    /// I/O submission queue entry size (bits 19:16, log2).
    pub const IOSQES_SHIFT: u32 = 16;
    /// I/O completion queue entry size (bits 23:20, log2).
    pub const IOCQES_SHIFT: u32 = 20;
    /// Every field the driver may set.
    pub const KNOWN: u32 = EN | CSS_MASK | MPS_MASK | AMS_MASK | SHN_MASK | 0xFF << 16;
    /// The value the driver enables the controller with: NVM command set, 4 KiB pages,
    /// round robin, 64-byte SQEs and 16-byte CQEs.
    pub const ENABLE: u32 = EN | 6 << IOSQES_SHIFT | 4 << IOCQES_SHIFT;
}

/// Fields of CSTS.
pub mod csts {
    /// Ready.
    pub const RDY: u32 = 1 << 0;
    /// Controller fatal status.
    pub const CFS: u32 = 1 << 1;
    /// Shutdown status (bits 3:2).
    pub const SHST_MASK: u32 = 0x3 << 2;
    /// Shutdown processing complete.
    pub const SHST_COMPLETE: u32 = 0x2 << 2;
}

/// The doorbell of submission queue `qid`'s tail (`is_cq` false) or completion queue
/// `qid`'s head (`is_cq` true), for doorbell stride `dstrd` (CAP.DSTRD).
pub fn doorbell(qid: u16, is_cq: bool, dstrd: u32) -> u32 {
    DOORBELL_BASE + (2 * u32::from(qid) + u32::from(is_cq)) * (4 << dstrd.min(15))
}

/// Admin command opcodes.
pub mod admin {
    /// Delete I/O submission queue.
    pub const DELETE_SQ: u8 = 0x00;
    /// Create I/O submission queue.
    pub const CREATE_SQ: u8 = 0x01;
    /// Get log page.
    pub const GET_LOG_PAGE: u8 = 0x02;
    /// Delete I/O completion queue.
    pub const DELETE_CQ: u8 = 0x04;
    /// Create I/O completion queue.
    pub const CREATE_CQ: u8 = 0x05;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// Abort.
    pub const ABORT: u8 = 0x08;
    /// Set features.
    pub const SET_FEATURES: u8 = 0x09;
    /// Get features.
    pub const GET_FEATURES: u8 = 0x0A;
    /// Asynchronous event request.
    pub const ASYNC_EVENT: u8 = 0x0C;
    /// Format NVM.
    pub const FORMAT_NVM: u8 = 0x80;
}

/// NVM command set opcodes.
pub mod io {
    /// Flush the volatile write cache.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
    /// Write zeroes.
    pub const WRITE_ZEROES: u8 = 0x08;
    /// Dataset management (deallocate: discard).
    pub const DSM: u8 = 0x09;
}

/// Identify CNS values.
pub mod cns {
    /// The namespace data structure of NSID.
    pub const NAMESPACE: u8 = 0x00;
    /// The controller data structure.
    pub const CONTROLLER: u8 = 0x01;
    /// The active namespace ID list (IDs above NSID).
    pub const ACTIVE_NS_LIST: u8 = 0x02;
}

/// Feature identifiers.
pub mod feat {
    /// Arbitration.
    pub const ARBITRATION: u8 = 0x01;
    /// Power management.
    pub const POWER_MGMT: u8 = 0x02;
    /// Temperature threshold.
    pub const TEMP_THRESH: u8 = 0x04;
    /// Error recovery.
    pub const ERROR_RECOVERY: u8 = 0x05;
    /// Volatile write cache.
    pub const VOLATILE_WC: u8 = 0x06;
    /// Number of queues.
    pub const NUM_QUEUES: u8 = 0x07;
    /// Interrupt coalescing.
    pub const IRQ_COALESCE: u8 = 0x08;
    /// Interrupt vector configuration.
    pub const IRQ_CONFIG: u8 = 0x09;
    /// Write atomicity normal.
    pub const WRITE_ATOMIC: u8 = 0x0A;
    /// Asynchronous event configuration.
    pub const ASYNC_EVENT: u8 = 0x0B;
    /// The features a driver may get and set with no data buffer, with their names as
    /// nvme-cli prints them.
    pub const KNOWN: [(u8, &str); 10] = [
        (ARBITRATION, "Arbitration"),
        (POWER_MGMT, "Power Management"),
        (TEMP_THRESH, "Temperature Threshold"),
        (ERROR_RECOVERY, "Error Recovery"),
        (VOLATILE_WC, "Volatile Write Cache"),
        (NUM_QUEUES, "Number of Queues"),
        (IRQ_COALESCE, "Interrupt Coalescing"),
        (IRQ_CONFIG, "Interrupt Vector Configuration"),
        (WRITE_ATOMIC, "Write Atomicity Normal"),
        (ASYNC_EVENT, "Async Event Configuration"),
    ];
}

/// Log page identifiers.
pub mod log {
    /// Error information.
    pub const ERROR: u8 = 0x01;
    /// SMART / health information.
    pub const SMART: u8 = 0x02;
    /// Length of the SMART / health log.
    pub const SMART_LEN: usize = 512;
    /// Length of one error information entry.
    pub const ERROR_ENTRY_LEN: usize = 64;
}

/// Status code types and the generic status codes the driver and the model use.
pub mod status {
    /// Successful completion.
    pub const SUCCESS: u16 = 0x00;
    /// Invalid command opcode.
    pub const INVALID_OPCODE: u16 = 0x01;
    /// Invalid field in command.
    pub const INVALID_FIELD: u16 = 0x02;
    /// Command ID conflict.
    pub const CID_CONFLICT: u16 = 0x03;
    /// Data transfer error.
    pub const DATA_XFER_ERROR: u16 = 0x04;
    /// Command aborted (requested).
    pub const ABORT_REQ: u16 = 0x07;
    /// Invalid namespace or format.
    pub const INVALID_NS: u16 = 0x0B;
    /// LBA out of range.
    pub const LBA_RANGE: u16 = 0x80;
    /// Command-specific type (SCT 1): invalid queue identifier.
    pub const INVALID_QID: u16 = 0x101;
    /// Command-specific: invalid queue size.
    pub const INVALID_QSIZE: u16 = 0x102;
    /// Command-specific: completion queue invalid (Create I/O SQ).
    pub const INVALID_CQ: u16 = 0x100;
    /// Command-specific: invalid queue deletion (a CQ with SQs still attached).
    pub const INVALID_QUEUE_DELETION: u16 = 0x10C;
    /// Command-specific: invalid log page.
    pub const INVALID_LOG_PAGE: u16 = 0x109;
    /// Command-specific: invalid format.
    pub const INVALID_FORMAT: u16 = 0x10A;
    /// Command-specific: feature not changeable / not supported.
    pub const FEATURE_NOT_CHANGEABLE: u16 = 0x10E;
    /// Command-specific: abort command limit exceeded.
    pub const ABORT_LIMIT: u16 = 0x103;
    /// Command-specific: asynchronous event request limit exceeded.
    pub const AER_LIMIT: u16 = 0x105;
}

/// Asynchronous events (NVMe 1.4, 5.2): the completion dword 0 of an Asynchronous Event
/// Request, and the Asynchronous Event Configuration feature's bits.
pub mod aer {
    /// Event type: error status.
    pub const TYPE_ERROR: u8 = 0;
    /// Event type: SMART / health status.
    pub const TYPE_SMART: u8 = 1;
    /// Event type: notice.
    pub const TYPE_NOTICE: u8 = 2;
    /// Event type: I/O command set specific.
    pub const TYPE_IO_SPECIFIC: u8 = 6;
    /// Event type: vendor specific.
    pub const TYPE_VENDOR: u8 = 7;
    /// SMART / health information: temperature threshold.
    pub const INFO_SMART_TEMPERATURE: u8 = 0x01;
    /// Asynchronous event configuration: SMART critical warning bits 7:0; bit 1 is the
    /// temperature warning.
    pub const SMART_TEMPERATURE: u8 = 1 << 1;

    /// Event type (bits 2:0), information (15:8) and the log page to read (23:16).
    pub fn decode(dw0: u32) -> (u8, u8, u8) {
        ((dw0 & 7) as u8, (dw0 >> 8) as u8, (dw0 >> 16) as u8)
    }

    /// The completion of a temperature threshold event.
    pub fn smart_temperature_event() -> u32 {
        u32::from(TYPE_SMART)
            | u32::from(INFO_SMART_TEMPERATURE) << 8
            | u32::from(super::log::SMART) << 16
    }
}

/// Size of a submission queue entry.
pub const SQE_LEN: usize = 64;
/// Size of a completion queue entry.
pub const CQE_LEN: usize = 16;

/// A submission queue entry (64 bytes, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sqe {
    /// Opcode.
    pub opcode: u8,
    /// Command identifier.
    pub cid: u16,
    /// Namespace.
    pub nsid: u32,
    /// PRP entry 1.
    pub prp1: u64,
    /// PRP entry 2 (a page or a PRP list).
    pub prp2: u64,
    /// Command dwords 10..=15.
    pub cdw: [u32; 6],
}

impl Sqe {
    /// Encodes the entry (PSDT = 0: PRPs).
    pub fn encode(&self) -> [u8; SQE_LEN] {
        let mut b = [0u8; SQE_LEN];
        let dw0 = u32::from(self.opcode) | u32::from(self.cid) << 16;
        b[0..4].copy_from_slice(&dw0.to_le_bytes());
        b[4..8].copy_from_slice(&self.nsid.to_le_bytes());
        b[24..32].copy_from_slice(&self.prp1.to_le_bytes());
        b[32..40].copy_from_slice(&self.prp2.to_le_bytes());
        for (i, d) in self.cdw.iter().enumerate() {
            b[40 + 4 * i..44 + 4 * i].copy_from_slice(&d.to_le_bytes());
        }
        b
    }

    /// Decodes an entry.
    pub fn decode(b: &[u8; SQE_LEN]) -> Self {
        let dw =
            |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        let qw = |i: usize| u64::from(dw(i)) | u64::from(dw(i + 1)) << 32;
        Sqe {
            opcode: b[0],
            cid: (dw(0) >> 16) as u16,
            nsid: dw(1),
            prp1: qw(6),
            prp2: qw(8),
            cdw: [dw(10), dw(11), dw(12), dw(13), dw(14), dw(15)],
        }
    }
}

/// A completion queue entry (16 bytes, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cqe {
    /// Command-specific result (dword 0).
    pub result: u32,
    /// Submission queue head pointer.
    pub sqhd: u16,
    /// Submission queue the command came from.
    pub sqid: u16,
    /// Command identifier.
    pub cid: u16,
    /// Phase tag.
    pub phase: bool,
    /// Status: SCT << 8 | SC (the 11 bits above the phase tag, without M and DNR).
    pub status: u16,
    /// Do not retry.
    pub dnr: bool,
}

impl Cqe {
    /// Encodes the entry.
    pub fn encode(&self) -> [u8; CQE_LEN] {
        let mut b = [0u8; CQE_LEN];
        b[0..4].copy_from_slice(&self.result.to_le_bytes());
        b[8..10].copy_from_slice(&self.sqhd.to_le_bytes());
        b[10..12].copy_from_slice(&self.sqid.to_le_bytes());
        let dw3 = u32::from(self.cid)
            | u32::from(self.phase) << 16
            | u32::from(self.status & 0x7FF) << 17
            | u32::from(self.dnr) << 31;
        b[12..16].copy_from_slice(&dw3.to_le_bytes());
        b
    }

    /// Decodes an entry.
    pub fn decode(b: &[u8; CQE_LEN]) -> Self {
        let dw3 = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
        Cqe {
            result: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            sqhd: u16::from_le_bytes([b[8], b[9]]),
            sqid: u16::from_le_bytes([b[10], b[11]]),
            cid: dw3 as u16,
            phase: dw3 & (1 << 16) != 0,
            status: ((dw3 >> 17) & 0x7FF) as u16,
            dnr: dw3 & (1 << 31) != 0,
        }
    }
}

/// One dataset management range (16 bytes).
pub fn dsm_range(slba: u64, nlb: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[4..8].copy_from_slice(&nlb.to_le_bytes());
    b[8..16].copy_from_slice(&slba.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let s = Sqe {
            opcode: 2,
            cid: 0xBEEF,
            nsid: 1,
            prp1: 0x1_2345_6000,
            prp2: 0x9_0000_0000,
            cdw: [1, 2, 3, 4, 5, 6],
        };
        assert_eq!(Sqe::decode(&s.encode()), s);
        let c = Cqe {
            result: 7,
            sqhd: 63,
            sqid: 1,
            cid: 0xBEEF,
            phase: true,
            status: status::INVALID_QID,
            dnr: true,
        };
        assert_eq!(Cqe::decode(&c.encode()), c);
        assert_eq!(
            c.encode()[14] >> 1 & 1,
            1,
            "SC bit 0 sits above the phase tag"
        );
    }

    #[test]
    fn doorbells_follow_the_stride() {
        assert_eq!(doorbell(0, false, 0), 0x1000);
        assert_eq!(doorbell(0, true, 0), 0x1004);
        assert_eq!(doorbell(1, false, 0), 0x1008);
        assert_eq!(doorbell(1, true, 2), 0x1000 + 3 * 16);
    }

    #[test]
    fn cap_fields_decode() {
        let c = cap::build(1023, 20, 2, 4);
        assert_eq!((cap::mqes(c), cap::to(c), cap::dstrd(c)), (1023, 20, 2));
        assert!(cap::cqr(c));
        assert_eq!((cap::css(c), cap::mpsmin(c), cap::mpsmax(c)), (1, 0, 4));
    }
}
