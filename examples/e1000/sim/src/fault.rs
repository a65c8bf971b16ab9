//! What the model records when a driver misbehaves. Hardware would ignore the access, stop
//! the ring or signal a PCI master abort; the model does the same and logs a [`Fault`] so
//! that tests can assert on it. Nothing a driver does makes the model panic.

/// Which DMA access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaSource {
    /// Fetching a transmit descriptor.
    TxDescriptor,
    /// Reading a transmit buffer.
    TxBuffer,
    /// Writing back a transmit descriptor's status.
    TxWriteBack,
    /// Fetching a receive descriptor.
    RxDescriptor,
    /// Writing a receive buffer.
    RxBuffer,
    /// Writing back a receive descriptor.
    RxWriteBack,
}

/// Which descriptor ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    /// The transmit ring.
    Tx,
    /// The receive ring.
    Rx,
}

/// A driver error the model observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A DMA access hit no DMA region (a master abort on real hardware). The ring involved
    /// stops until its registers are rewritten.
    BusError {
        /// What was being accessed.
        source: DmaSource,
        /// Bus address.
        addr: u64,
        /// Length of the access.
        len: usize,
    },
    /// A read of an offset where no register is implemented (returns 0).
    UnmappedRead {
        /// BAR0 offset.
        off: u32,
    },
    /// A write to an offset where no register is implemented (ignored).
    UnmappedWrite {
        /// BAR0 offset.
        off: u32,
        /// Value written.
        value: u32,
    },
    /// A write to a read-only register (ignored).
    ReadOnlyWrite {
        /// BAR0 offset.
        off: u32,
        /// Value written.
        value: u32,
    },
    /// MMIO while PCI COMMAND.MEMORY is clear: BAR0 does not decode (reads return all
    /// ones, writes are lost).
    MemorySpaceDisabled {
        /// BAR0 offset.
        off: u32,
    },
    /// An access whose offset is not a multiple of 4.
    Unaligned {
        /// BAR0 offset.
        off: u32,
    },
    /// RDLEN/TDLEN written with bits 6:0 set; the hardware ignores them.
    RingLengthNotMultipleOf128 {
        /// Which ring.
        ring: Ring,
        /// Value written.
        len: u32,
    },
    /// A ring was used with length zero.
    RingLengthZero {
        /// Which ring.
        ring: Ring,
    },
    /// Head or tail beyond the ring's end; the ring stops until fixed.
    HeadTailOutOfRange {
        /// Which ring.
        ring: Ring,
        /// Head register.
        head: u32,
        /// Tail register.
        tail: u32,
        /// Descriptors in the ring.
        count: u32,
    },
    /// A transmit descriptor with a reserved DTYP.
    InvalidDescriptorType {
        /// Ring index.
        index: u32,
        /// The DTYP field.
        dtyp: u32,
    },
    /// A transmit packet grew beyond what the model accepts (it is dropped).
    TxPacketTooLong {
        /// Bytes gathered so far.
        len: usize,
    },
    /// A checksum offload with offsets outside the packet (not inserted).
    ChecksumOffsetOutOfRange {
        /// Start offset.
        start: usize,
        /// Insertion offset.
        offset: usize,
        /// Packet length.
        len: usize,
    },
    /// A TSO context that cannot be applied (the packet is dropped, TSCTFC counts it).
    TsoInvalid {
        /// Why.
        reason: &'static str,
    },
    /// RCTL selects the reserved buffer size (BSEX=1, BSIZE=00); the receive ring stops.
    ReservedBufferSize,
    /// EECD pins driven without EE_GNT (ignored).
    EepromWithoutGrant,
    /// An EERD read of an address beyond the 64-word EEPROM (wraps).
    EepromAddressOutOfRange {
        /// Address requested.
        addr: u32,
    },
    /// MDIC access to a PHY address other than 1 (MDIC.E is set).
    PhyAddressInvalid {
        /// Address requested.
        phy: u32,
    },
}

/// A bounded log of faults.
#[derive(Debug, Default)]
pub(crate) struct FaultLog {
    pub(crate) faults: Vec<Fault>,
    pub(crate) dropped: u64,
    pub(crate) bus_errors: u64,
}

/// At most this many faults are kept.
pub const FAULT_LOG_LIMIT: usize = 4096;

impl FaultLog {
    pub(crate) fn push(&mut self, f: Fault) {
        if matches!(f, Fault::BusError { .. }) {
            self.bus_errors += 1;
        }
        if self.faults.len() < FAULT_LOG_LIMIT {
            self.faults.push(f);
        } else {
            self.dropped += 1;
        }
    }
}

/// Hardware defects a test injects to check that a driver's self-test catches them (a
/// failing register cell, an interrupt cause whose logic is dead, a data path that
/// corrupts frames). None is set by anything the driver does.
#[derive(Debug, Default, Clone)]
pub(crate) struct Defects {
    /// `(offset, bits)`: these bits of the register at `offset` read 0 whatever is
    /// written (stuck at zero).
    pub(crate) stuck_low: Vec<(u32, u32)>,
    /// Interrupt causes the device never latches into ICR (from ICS or from an event).
    pub(crate) dead_causes: u32,
    /// Frames still to corrupt on the loopback path (one payload byte inverted each).
    pub(crate) corrupt_loopback: u64,
}

impl Defects {
    /// The stuck-at-zero bits of the register at `off`.
    pub(crate) fn stuck(&self, off: u32) -> u32 {
        self.stuck_low
            .iter()
            .filter(|(o, _)| *o == off)
            .fold(0, |m, (_, bits)| m | bits)
    }

    /// Corrupts `data` (a looped-back frame) if a corruption is pending: inverts the byte
    /// in the middle of the payload (past the 14-byte header), so only a byte-for-byte
    /// check finds it.
    pub(crate) fn corrupt(&mut self, data: &mut [u8]) {
        if self.corrupt_loopback == 0 || data.len() <= 14 {
            return;
        }
        self.corrupt_loopback -= 1;
        let at = 14 + (data.len() - 14) / 2;
        data[at] ^= 0xFF;
    }
}
