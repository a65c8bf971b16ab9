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
