//! The driver's error type. It crosses the split (it derives `Marshal`), so it carries
//! plain data only: numbers and messages.

use microdriver_rt::{CallError, Marshal};

use crate::hw::DmaError;
use crate::policy::PolicyError;

/// Why a driver operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Marshal)]
pub enum DriverError {
    /// The PCI function is not a part this driver supports.
    #[error("unsupported device {vendor:04x}:{device:04x}: this driver handles 8086:100E (82540EM), 8086:100F (82545EM) and 8086:100C (82544GC)")]
    UnsupportedDevice {
        /// PCI vendor ID.
        vendor: u16,
        /// PCI device ID.
        device: u16,
    },
    /// The hardware did not finish something within the time the manual allows.
    #[error("timed out waiting for {what} after {ms} ms: the device may be wedged; reset it (ethtool reset) or check the bus")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        ms: u64,
    },
    /// The EEPROM's words do not sum to 0xBABA.
    #[error("EEPROM checksum is {sum:#06x}, expected 0xbaba: the EEPROM is corrupt; rewrite it (ethtool -E) or replace the card")]
    EepromChecksum {
        /// The sum found.
        sum: u16,
    },
    /// An EEPROM word address or range outside the part's EEPROM.
    #[error("EEPROM range {offset}+{len} words exceeds the {size}-word EEPROM")]
    EepromRange {
        /// First word.
        offset: u32,
        /// Number of words.
        len: u32,
        /// EEPROM size in words.
        size: u32,
    },
    /// A PHY register access failed (MDIC.E).
    #[error("PHY register {reg} access failed (MDIC error): the PHY is not at address 1 or is powered down")]
    Phy {
        /// PHY register number.
        reg: u32,
    },
    /// The PHY is not one this driver knows.
    #[error("unknown PHY id {id:#010x}: expected a Marvell 88E1011 (0x01410c20) or 88E1000 (0x01410c30)")]
    UnknownPhy {
        /// PHYID1 << 16 | PHYID2.
        id: u32,
    },
    /// The MAC address is not a valid unicast address.
    #[error("invalid MAC address {0:02x?}: it must be unicast and not all zeros")]
    InvalidMac([u8; 6]),
    /// A parameter is out of range.
    #[error("invalid {what}: {why}")]
    InvalidArgument {
        /// Which parameter.
        what: String,
        /// The allowed range or the rule broken.
        why: String,
    },
    /// The operation needs the interface up (or down).
    #[error("interface is {state}: {op} needs it {needed}")]
    WrongState {
        /// The operation.
        op: String,
        /// The current state.
        state: String,
        /// The state needed.
        needed: String,
    },
    /// The part cannot do this.
    #[error("{0} is not supported by this part")]
    Unsupported(String),
    /// The transmit ring is full; the queue is stopped until TX clean frees descriptors.
    #[error("transmit ring full: queue stopped, retry after the next TX clean")]
    Busy,
    /// The packet cannot be sent as described.
    #[error("bad packet: {0}")]
    BadPacket(String),
    /// A register access from the user half was refused by the register policy.
    #[error("register policy: {0}")]
    Policy(String),
    /// DMA memory could not be allocated or reached.
    #[error("DMA: {0}")]
    Dma(String),
    /// The device handle names no attached device (removed, or never probed).
    #[error("no device {0}: it was removed or never probed")]
    NoDevice(u64),
    /// A self-test failed.
    #[error("self-test {test} failed: {detail}")]
    SelfTest {
        /// Which test.
        test: String,
        /// What was wrong.
        detail: String,
    },
    /// The shared hot state could not be read (a snapshot of a combolock failed).
    #[error("shared hot state: {0}")]
    SharedState(String),
    /// A call to the other half failed (it died, timed out or sent garbage).
    #[error("call to the other half failed: {0}")]
    Upcall(String),
}

impl From<CallError> for DriverError {
    fn from(e: CallError) -> Self {
        DriverError::Upcall(e.to_string())
    }
}

impl From<microdriver_rt::sync::ComboLockError> for DriverError {
    fn from(e: microdriver_rt::sync::ComboLockError) -> Self {
        match e {
            microdriver_rt::sync::ComboLockError::Call { error, .. } => error.into(),
            other => DriverError::SharedState(other.to_string()),
        }
    }
}

impl From<PolicyError> for DriverError {
    fn from(e: PolicyError) -> Self {
        DriverError::Policy(e.to_string())
    }
}

impl From<DmaError> for DriverError {
    fn from(e: DmaError) -> Self {
        DriverError::Dma(e.to_string())
    }
}

impl DriverError {
    /// Shorthand for [`DriverError::InvalidArgument`].
    pub fn invalid(what: &str, why: impl Into<String>) -> Self {
        DriverError::InvalidArgument {
            what: what.into(),
            why: why.into(),
        }
    }

    /// Shorthand for [`DriverError::Timeout`].
    pub fn timeout(what: &str, ms: u64) -> Self {
        DriverError::Timeout {
            what: what.into(),
            ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_the_split() {
        let errs = [
            DriverError::EepromChecksum { sum: 0x1234 },
            DriverError::InvalidMac([1, 2, 3, 4, 5, 6]),
            DriverError::invalid("ring size", "multiple of 8 in 80..=4096"),
            DriverError::Busy,
            DriverError::Upcall("dead".into()),
        ];
        for e in errs {
            let bytes = microdriver_rt::marshal::to_bytes(&e).expect("encode");
            let back: DriverError = microdriver_rt::marshal::from_bytes(&bytes).expect("decode");
            assert_eq!(back, e);
        }
    }
}
