//! The hardware seam: what the kernel half sees of an 8254x, whichever backend provides it.
//!
//! The traits ([`Mmio`], [`DmaAllocator`], [`DmaRegion`], [`InterruptLine`], [`PciConfig`])
//! are defined in the device model's crate (`e1000_sim::hw`) and re-exported here. They live
//! there because the model must implement them and the driver must consume them, and the
//! model is the lower of the two crates (the driver depends on it for its tests and its
//! `sim` backend; the model must not depend on a driver). A third, seam-only crate would
//! let a UIO-only build drop the model; until then the model crate is the single owner.
//!
//! [`Dma`] is the object-safe form of [`DmaAllocator`] the driver stores, and [`Hw`] bundles
//! one device's handles.

use std::sync::Arc;

pub use e1000_sim::hw::*;

/// An object-safe DMA allocator (the driver stores allocators of different backends behind
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

/// One device's handles, as a backend hands them to the kernel half.
#[derive(Clone)]
pub struct Hw {
    /// BAR0.
    pub mmio: Arc<dyn Mmio>,
    /// PCI configuration space.
    pub pci: Arc<dyn PciConfig>,
    /// DMA memory.
    pub dma: Arc<dyn Dma>,
    /// The interrupt line.
    pub irq: Arc<dyn InterruptLine>,
}

impl std::fmt::Debug for Hw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hw").finish_non_exhaustive()
    }
}

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
