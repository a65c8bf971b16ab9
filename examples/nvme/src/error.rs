//! The driver's error type. It crosses the split (`Marshal`), so it carries plain data.

use microdriver_rt::{CallError, Marshal};

use crate::hw::DmaError;
use crate::policy::PolicyError;

/// Why a driver operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Marshal)]
#[non_exhaustive]
pub enum NvmeError {
    /// The PCI function is not an NVMe controller.
    #[error("PCI class {class:#08x} is not an NVMe controller (01 08 02)")]
    NotNvme {
        /// Class code (class, subclass, programming interface).
        class: u32,
    },
    /// The controller does not do what the driver needs.
    #[error("unsupported controller: {0}")]
    Unsupported(String),
    /// The controller did not get somewhere in the time it promised.
    #[error("timed out after {ms} ms waiting for {what}: the controller may be wedged; reset it (nvmectl reset)")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        ms: u64,
    },
    /// The controller reported a fatal error (CSTS.CFS).
    #[error("controller fatal status (CSTS.CFS): it needs a reset")]
    Fatal,
    /// A command completed with an error status.
    #[error("{what} failed: status {status:#05x} (SCT {sct}, SC {sc:#04x})", sct = status >> 8, sc = status & 0xFF)]
    Status {
        /// The command.
        what: String,
        /// SCT << 8 | SC.
        status: u16,
    },
    /// An argument is out of range.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// Which argument.
        what: String,
        /// The rule broken.
        why: String,
    },
    /// The queue is full, or recovery holds I/O; retry later.
    #[error("busy: {0}")]
    Busy(String),
    /// The driver is not in the state the operation needs.
    #[error("{op} needs {needed}")]
    WrongState {
        /// The operation.
        op: String,
        /// What it needs.
        needed: String,
    },
    /// A register access from the user half was refused.
    #[error("register policy: {0}")]
    Policy(String),
    /// DMA memory could not be allocated or reached.
    #[error("DMA: {0}")]
    Dma(String),
    /// No device with this id is attached.
    #[error("no device {0}: it was removed or never attached")]
    NoDevice(u64),
    /// A call to the other half failed (it died, timed out or sent garbage).
    #[error("call to the other half failed: {0}")]
    Call(String),
}

impl NvmeError {
    /// An [`NvmeError::Invalid`].
    pub fn invalid(what: impl Into<String>, why: impl Into<String>) -> Self {
        NvmeError::Invalid {
            what: what.into(),
            why: why.into(),
        }
    }
}

impl From<CallError> for NvmeError {
    fn from(e: CallError) -> Self {
        NvmeError::Call(e.to_string())
    }
}

impl From<DmaError> for NvmeError {
    fn from(e: DmaError) -> Self {
        NvmeError::Dma(e.to_string())
    }
}

impl From<PolicyError> for NvmeError {
    fn from(e: PolicyError) -> Self {
        NvmeError::Policy(e.to_string())
    }
}
