//! The hardware seam: what the kernel half sees of an 8254x, whichever backend provides it.
//!
//! The traits ([`Mmio`], [`DmaAllocator`], [`DmaRegion`], [`InterruptLine`], [`PciConfig`]),
//! the object-safe [`Dma`] and the [`Hw`] bundle are `microdriver-hal`'s, re-exported here:
//! the seam belongs to no device, the device model implements it, and the driver consumes it
//! without depending on the model. [`DmaMem`] is the driver's own: a ring's memory as the
//! kernel half holds it.

pub use microdriver_hal::seam::*;

/// A ring's DMA memory as the kernel half holds it: a region, or none in a copy of the ring
/// the user half got (a snapshot carries no memory: the field is `#[marshal(skip)]` and
/// comes back as this type's default). A detached handle has bus address 0 and refuses every
/// access with [`DmaError::OutOfBounds`].
#[derive(Default)]
pub struct DmaMem(Option<Box<dyn DmaRegion>>);

impl From<Box<dyn DmaRegion>> for DmaMem {
    fn from(region: Box<dyn DmaRegion>) -> Self {
        Self(Some(region))
    }
}

impl DmaMem {
    /// The region's bus address (0 when detached).
    pub fn bus_addr(&self) -> u64 {
        self.0.as_ref().map_or(0, |r| r.bus_addr())
    }

    fn region(&self, off: usize, len: usize) -> Result<&dyn DmaRegion, DmaError> {
        self.0.as_deref().ok_or(DmaError::OutOfBounds {
            off,
            len,
            region_len: 0,
        })
    }

    /// Copies `buf.len()` bytes at `off` into `buf`.
    pub fn read(&self, off: usize, buf: &mut [u8]) -> Result<(), DmaError> {
        self.region(off, buf.len())?.read(off, buf)
    }

    /// Copies `data` to `off`.
    pub fn write(&self, off: usize, data: &[u8]) -> Result<(), DmaError> {
        self.region(off, data.len())?.write(off, data)
    }
}

impl std::fmt::Debug for DmaMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(r) => write!(f, "DmaMem({:#x}, {} bytes)", r.bus_addr(), r.len()),
            None => f.write_str("DmaMem(detached)"),
        }
    }
}
