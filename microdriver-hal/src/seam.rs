//! The hardware seam: what a driver's kernel half sees of a device, whichever backend
//! provides it (a device model, UIO, VFIO).
//!
//! * [`Mmio`]: 32-bit register access to a BAR;
//! * [`PciConfig`]: PCI configuration space;
//! * [`DmaAllocator`] / [`DmaRegion`]: device-visible memory with bus addresses;
//! * [`InterruptLine`]: the device's interrupt.
//!
//! # What every backend promises a driver
//! * **Bus addresses are stable for a region's life.** [`DmaRegion::bus_addr`] never
//!   changes while the region exists, and the memory behind it is neither moved nor swapped
//!   (UIO: locked hugetlb or locked pages, see `uio::dma`; VFIO: pinned by the IOMMU map).
//!   After the region is dropped the device can no longer reach it through that address
//!   (VFIO: unmapped from the IOMMU; UIO has no IOMMU, so the driver must have stopped the
//!   device's use of it first, as it must on any machine without one).
//! * **Regions are zeroed** when handed out, and are one contiguous run of bus addresses.
//! * **Accesses are checked**: every offset and length into a region or a BAR is checked;
//!   an access outside fails (regions) or is ignored with a log line (registers), it never
//!   touches other memory.
//! * **Interrupts**: INTx lines (the model, UIO, VFIO INTx) are level-triggered:
//!   [`InterruptLine::wait`] returns at once while a cause is pending. MSI/MSI-X vectors
//!   (VFIO) are edge-triggered: `wait` returns once per message;
//!   [`InterruptLine::level_triggered`] says which the driver has.

use std::time::Duration;

/// 32-bit memory-mapped register access to a BAR.
///
/// Offsets are byte offsets; accesses are aligned 32-bit accesses. An access at an unmapped
/// or unaligned offset must not panic: reads return an unspecified value (the backends
/// return 0) and writes are ignored.
pub trait Mmio: Send + Sync {
    /// Reads the register at `off`. Reading some registers has side effects (ICR and the
    /// statistics registers clear on read).
    fn read32(&self, off: u32) -> u32;
    /// Writes `v` to the register at `off`.
    fn write32(&self, off: u32, v: u32);
}

/// PCI configuration space access (sysfs `config` under UIO, the config region under VFIO,
/// which virtualizes some fields).
///
/// Offsets are byte offsets into the 256-byte conventional configuration space; accesses
/// are dword-wide and aligned down to a multiple of 4.
pub trait PciConfig: Send + Sync {
    /// Reads the dword containing `off`.
    fn config_read32(&self, off: u16) -> u32;
    /// Writes the dword containing `off`.
    fn config_write32(&self, off: u16, v: u32);

    /// Reads the 16-bit field at `off` (which must not cross a dword).
    fn config_read16(&self, off: u16) -> u16 {
        (self.config_read32(off) >> (8 * u32::from(off & 2))) as u16
    }
    /// Read-modify-writes the 16-bit field at `off` (which must not cross a dword).
    fn config_write16(&self, off: u16, v: u16) {
        let shift = 8 * u32::from(off & 2);
        let old = self.config_read32(off) & !(0xFFFF << shift);
        self.config_write32(off, old | (u32::from(v) << shift));
    }
}

/// Errors of DMA memory allocation and access.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DmaError {
    /// The requested length was zero or too large.
    #[error("invalid DMA allocation length {0}")]
    InvalidLength(usize),
    /// The allocator has no more bus address space or memory.
    #[error("DMA memory exhausted")]
    Exhausted,
    /// An access fell outside the region.
    #[error("DMA access at offset {off} length {len} outside region of {region_len} bytes")]
    OutOfBounds {
        /// Offset of the access.
        off: usize,
        /// Length of the access.
        len: usize,
        /// Length of the region.
        region_len: usize,
    },
}

/// A region of device-visible (DMA) memory.
///
/// The device addresses it by [`bus_addr`](DmaRegion::bus_addr); the driver reads and writes
/// it through bounds-checked accessors, without a lock. Every call reads or writes the shared
/// memory (nothing is cached on the CPU side), with the rules of real DMA memory:
///
/// * **an aligned 8-byte word is one access**: the device never sees half of a word the
///   driver writes, nor the driver half of one the device writes;
/// * **a longer access is not atomic**: it is a series of word (and byte) accesses in
///   ascending address order, stores with release and loads with acquire ordering. The
///   device may write between two of them. So a driver reads the word that holds a
///   record's completion flag (a descriptor's DD bit, a completion entry's phase tag) on
///   its own and first, and the rest of the record only after the flag says it is there;
///   and it publishes records it writes with a register write (a tail or doorbell) after
///   writing them, never by a flag the device might read early.
///
/// The UIO and VFIO regions are the memory itself (volatile word copies); the model's
/// (`sim::SimDma`, feature `sim`) follows the same rules, so a driver that breaks them can fail on
/// the model too.
pub trait DmaRegion: Send + Sync {
    /// The address the device uses for this region's first byte.
    fn bus_addr(&self) -> u64;
    /// Length in bytes.
    fn len(&self) -> usize;
    /// True if the region has no bytes (never, for regions from an allocator).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `buf.len()` bytes at `off` into `buf`.
    fn read(&self, off: usize, buf: &mut [u8]) -> Result<(), DmaError>;
    /// Copies `data` to `off`.
    fn write(&self, off: usize, data: &[u8]) -> Result<(), DmaError>;

    /// Reads a little-endian `u32` at `off`.
    fn read_u32(&self, off: usize) -> Result<u32, DmaError> {
        let mut b = [0u8; 4];
        self.read(off, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    /// Writes a little-endian `u32` at `off`.
    fn write_u32(&self, off: usize, v: u32) -> Result<(), DmaError> {
        self.write(off, &v.to_le_bytes())
    }
    /// Reads a little-endian `u64` at `off`.
    fn read_u64(&self, off: usize) -> Result<u64, DmaError> {
        let mut b = [0u8; 8];
        self.read(off, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Writes a little-endian `u64` at `off`.
    fn write_u64(&self, off: usize, v: u64) -> Result<(), DmaError> {
        self.write(off, &v.to_le_bytes())
    }
}

/// Allocates DMA memory (on the k-half side).
pub trait DmaAllocator: Send + Sync {
    /// The region type handed out.
    type Region: DmaRegion;
    /// Allocates `len` zeroed bytes, aligned to at least a 4 KiB page in bus address space.
    /// Dropping the region frees it; afterwards the device can no longer reach it.
    fn alloc(&self, len: usize) -> Result<Self::Region, DmaError>;
}

/// The device's interrupt line, as the k-half sees it.
///
/// An INTx line has level semantics: it is asserted while the device has an unmasked cause
/// pending (for the 8254x: `ICR & IMS != 0`, subject to interrupt throttling) and stays
/// asserted until the driver clears the cause (reading ICR). An MSI/MSI-X vector is an edge:
/// "asserted" means a message arrived that no `wait` consumed yet. Independently of the
/// device's own mask, the line can be masked at the interrupt controller (as with UIO's
/// `irqcontrol`); a masked line never wakes [`wait`](InterruptLine::wait).
pub trait InterruptLine: Send + Sync {
    /// Waits until the line is asserted and unmasked, or `timeout` passes. Returns whether
    /// the line is asserted and unmasked on return. Returns immediately if it already is.
    fn wait(&self, timeout: Duration) -> bool;
    /// Whether the device currently asserts the line (regardless of the mask).
    fn is_asserted(&self) -> bool;
    /// Masks the line: [`wait`](InterruptLine::wait) no longer returns early.
    fn mask(&self);
    /// Unmasks the line.
    fn unmask(&self);
    /// Whether the line is masked.
    fn is_masked(&self) -> bool;
    /// Number of times the line went from deasserted to asserted (like an eventfd count).
    fn assertions(&self) -> u64;
    /// Whether the line is level-triggered (INTx) rather than edge-triggered (MSI/MSI-X).
    fn level_triggered(&self) -> bool {
        true
    }
}

impl<T: Mmio + ?Sized> Mmio for std::sync::Arc<T> {
    fn read32(&self, off: u32) -> u32 {
        (**self).read32(off)
    }
    fn write32(&self, off: u32, v: u32) {
        (**self).write32(off, v)
    }
}

impl<T: InterruptLine + ?Sized> InterruptLine for std::sync::Arc<T> {
    fn wait(&self, timeout: Duration) -> bool {
        (**self).wait(timeout)
    }
    fn is_asserted(&self) -> bool {
        (**self).is_asserted()
    }
    fn mask(&self) {
        (**self).mask()
    }
    fn unmask(&self) {
        (**self).unmask()
    }
    fn is_masked(&self) -> bool {
        (**self).is_masked()
    }
    fn assertions(&self) -> u64 {
        (**self).assertions()
    }
    fn level_triggered(&self) -> bool {
        (**self).level_triggered()
    }
}

/// An object-safe DMA allocator (a driver stores allocators of different backends behind
/// one type).
pub trait Dma: Send + Sync {
    /// Allocates `len` zeroed bytes of device-visible memory.
    fn alloc_region(&self, len: usize) -> Result<Box<dyn DmaRegion>, DmaError>;
}

impl<A> Dma for A
where
    A: DmaAllocator,
    A::Region: 'static,
{
    fn alloc_region(&self, len: usize) -> Result<Box<dyn DmaRegion>, DmaError> {
        Ok(Box::new(self.alloc(len)?))
    }
}

/// One device's handles, as a backend hands them to a driver's kernel half.
#[derive(Clone)]
pub struct Hw {
    /// The register BAR (BAR0).
    pub mmio: std::sync::Arc<dyn Mmio>,
    /// PCI configuration space.
    pub pci: std::sync::Arc<dyn PciConfig>,
    /// DMA memory.
    pub dma: std::sync::Arc<dyn Dma>,
    /// The interrupt line.
    pub irq: std::sync::Arc<dyn InterruptLine>,
}

impl std::fmt::Debug for Hw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hw").finish_non_exhaustive()
    }
}
