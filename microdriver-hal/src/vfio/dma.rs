//! DMA memory under the IOMMU: the driver's own anonymous memory, mapped into the device's
//! address space with `VFIO_IOMMU_MAP_DMA` at an IOVA the HAL picks. The device reaches
//! that memory and nothing else; dropping a region unmaps it before the memory is freed.

use std::sync::Arc;

use std::sync::Mutex;

use super::iova::IovaSpace;
use super::{sys, Container};
use crate::mem::{page_size, Mapping};
use crate::seam::{DmaAllocator, DmaError, DmaRegion};

/// The largest region handed out.
pub const MAX_REGION: usize = 64 << 20;

/// The DMA allocator of a VFIO device.
#[derive(Debug)]
pub struct VfioDma {
    container: Arc<Container>,
    space: Arc<Mutex<IovaSpace>>,
}

impl VfioDma {
    pub(crate) fn new(container: Arc<Container>, space: IovaSpace) -> Self {
        Self {
            container,
            space: Arc::new(Mutex::new(space)),
        }
    }

    /// Bytes of IOVA space left.
    pub fn iova_free(&self) -> u64 {
        self.space.lock().map_or(0, |s| s.free_bytes())
    }
}

impl DmaAllocator for VfioDma {
    type Region = VfioRegion;

    fn alloc(&self, len: usize) -> Result<VfioRegion, DmaError> {
        if len == 0 || len > MAX_REGION {
            return Err(DmaError::InvalidLength(len));
        }
        let size = len.div_ceil(page_size()) * page_size();
        let map = Mapping::anonymous(size, false).map_err(|e| {
            tracing::error!(len, error = %e, "DMA allocation failed: mmap");
            DmaError::Exhausted
        })?;
        let iova = {
            let mut space = self.space.lock().map_err(|_| DmaError::Exhausted)?;
            space.alloc(size as u64).ok_or_else(|| {
                tracing::error!(len, "DMA allocation failed: IOVA space exhausted");
                DmaError::Exhausted
            })?
        };
        if let Err(e) = sys::map_dma(&self.container.fd, map.addr(), iova, size) {
            tracing::error!(
                len,
                iova = format_args!("{iova:#x}"),
                error = %e,
                "VFIO_IOMMU_MAP_DMA failed (ENOMEM: raise RLIMIT_MEMLOCK)"
            );
            if let Ok(mut s) = self.space.lock() {
                s.free(iova, size as u64);
            }
            return Err(DmaError::Exhausted);
        }
        tracing::debug!(len, iova = format_args!("{iova:#x}"), "DMA region mapped");
        Ok(VfioRegion {
            map: Some(map),
            iova,
            len,
            size,
            container: self.container.clone(),
            space: self.space.clone(),
        })
    }
}

/// A DMA region: the driver's memory, mapped for the device at [`bus_addr`](DmaRegion::bus_addr).
#[derive(Debug)]
pub struct VfioRegion {
    map: Option<Mapping>,
    iova: u64,
    len: usize,
    size: usize,
    container: Arc<Container>,
    space: Arc<Mutex<IovaSpace>>,
}

impl VfioRegion {
    /// Where the region lives in this process (for diagnostics: `/proc/self/pagemap`
    /// shows which physical page that is; the device knows it only by its IOVA).
    pub fn virt_addr(&self) -> usize {
        self.map.as_ref().map_or(0, Mapping::addr)
    }

    fn check(&self, off: usize, len: usize) -> Result<&Mapping, DmaError> {
        match &self.map {
            Some(m) if off.checked_add(len).is_some_and(|e| e <= self.len) => Ok(m),
            _ => Err(DmaError::OutOfBounds {
                off,
                len,
                region_len: self.len,
            }),
        }
    }
}

impl DmaRegion for VfioRegion {
    fn bus_addr(&self) -> u64 {
        self.iova
    }

    fn len(&self) -> usize {
        self.len
    }

    fn read(&self, off: usize, buf: &mut [u8]) -> Result<(), DmaError> {
        self.check(off, buf.len())?.read_bytes(off, buf);
        Ok(())
    }

    fn write(&self, off: usize, data: &[u8]) -> Result<(), DmaError> {
        self.check(off, data.len())?.write_bytes(off, data);
        Ok(())
    }
}

impl Drop for VfioRegion {
    fn drop(&mut self) {
        // Unmap from the IOMMU before the memory goes back to the process's allocator: the
        // device must never reach memory that is reused for something else.
        match sys::unmap_dma(&self.container.fd, self.iova, self.size) {
            Ok(n) if n == self.size as u64 => {
                if let Ok(mut s) = self.space.lock() {
                    s.free(self.iova, self.size as u64);
                }
                drop(self.map.take());
            }
            other => {
                // The device may still reach the pages: keep them (leak) rather than free
                // memory a device can write, and never reuse the IOVA.
                tracing::error!(
                    iova = format_args!("{:#x}", self.iova),
                    size = self.size,
                    result = ?other,
                    "VFIO_IOMMU_UNMAP_DMA failed: leaking the region's memory"
                );
                std::mem::forget(self.map.take());
            }
        }
    }
}
