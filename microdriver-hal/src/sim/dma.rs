//! Simulated DMA memory for device models: regions with bus addresses and bounds-checked
//! access.
//!
//! There is no unsafe code here: every region is a lock-protected byte buffer. The device
//! side reaches memory only through [`SimDma::bus_read`] / [`SimDma::bus_write`], which
//! return a [`BusFault`] for any address range not wholly inside one live region (the
//! hardware equivalent is a master abort on the PCI bus).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::seam::{DmaAllocator, DmaError, DmaRegion};

/// First bus address handed out. Never zero, above 4 GiB so that drivers must program the
/// high halves of 64-bit descriptor base registers correctly.
pub const BUS_BASE: u64 = 0x1_0000_0000;
/// Alignment (and guard gap) of regions in bus address space.
pub const PAGE: u64 = 4096;
/// Largest single region.
pub const MAX_REGION: usize = 64 << 20;

/// A bus access that did not hit DMA memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusFault {
    /// Bus address of the access.
    pub addr: u64,
    /// Length of the access.
    pub len: usize,
}

struct RegionMem {
    bus: u64,
    len: usize,
    data: Mutex<Box<[u8]>>,
}

#[derive(Default)]
struct Space {
    regions: RwLock<BTreeMap<u64, Arc<RegionMem>>>,
    next: Mutex<u64>,
}

impl Space {
    fn find(&self, addr: u64, len: usize) -> Result<(Arc<RegionMem>, usize), BusFault> {
        let fault = BusFault { addr, len };
        let map = self.regions.read();
        let (_, r) = map.range(..=addr).next_back().ok_or(fault)?;
        let off = usize::try_from(addr - r.bus).map_err(|_| fault)?;
        let end = off.checked_add(len).ok_or(fault)?;
        if end > r.len {
            return Err(fault);
        }
        Ok((Arc::clone(r), off))
    }
}

/// The simulated DMA allocator and bus. Cloning gives another handle to the same memory.
#[derive(Clone, Default)]
pub struct SimDma {
    space: Arc<Space>,
}

impl std::fmt::Debug for SimDma {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDma")
            .field("regions", &self.space.regions.read().len())
            .finish()
    }
}

impl SimDma {
    /// A new, empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Device-side read of `buf.len()` bytes at bus address `addr`.
    pub fn bus_read(&self, addr: u64, buf: &mut [u8]) -> Result<(), BusFault> {
        let (r, off) = self.space.find(addr, buf.len())?;
        let data = r.data.lock();
        buf.copy_from_slice(&data[off..off + buf.len()]);
        Ok(())
    }

    /// Device-side read appending `len` bytes at `addr` to `out`.
    pub fn bus_read_append(
        &self,
        addr: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), BusFault> {
        let (r, off) = self.space.find(addr, len)?;
        let data = r.data.lock();
        out.extend_from_slice(&data[off..off + len]);
        Ok(())
    }

    /// Device-side write of `data` at bus address `addr`.
    pub fn bus_write(&self, addr: u64, data: &[u8]) -> Result<(), BusFault> {
        let (r, off) = self.space.find(addr, data.len())?;
        let mut mem = r.data.lock();
        mem[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Number of live regions.
    pub fn region_count(&self) -> usize {
        self.space.regions.read().len()
    }
}

/// A region allocated from [`SimDma`]. Dropping it frees the bus addresses.
pub struct SimDmaRegion {
    mem: Arc<RegionMem>,
    len: usize,
    space: Arc<Space>,
}

impl std::fmt::Debug for SimDmaRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDmaRegion")
            .field("bus_addr", &format_args!("{:#x}", self.mem.bus))
            .field("len", &self.len)
            .finish()
    }
}

impl Drop for SimDmaRegion {
    fn drop(&mut self) {
        self.space.regions.write().remove(&self.mem.bus);
    }
}

impl SimDmaRegion {
    fn check(&self, off: usize, len: usize) -> Result<(), DmaError> {
        match off.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(DmaError::OutOfBounds {
                off,
                len,
                region_len: self.len,
            }),
        }
    }
}

impl DmaRegion for SimDmaRegion {
    fn bus_addr(&self) -> u64 {
        self.mem.bus
    }

    fn len(&self) -> usize {
        self.len
    }

    fn read(&self, off: usize, buf: &mut [u8]) -> Result<(), DmaError> {
        self.check(off, buf.len())?;
        let data = self.mem.data.lock();
        buf.copy_from_slice(&data[off..off + buf.len()]);
        Ok(())
    }

    fn write(&self, off: usize, src: &[u8]) -> Result<(), DmaError> {
        self.check(off, src.len())?;
        let mut data = self.mem.data.lock();
        data[off..off + src.len()].copy_from_slice(src);
        Ok(())
    }
}

impl DmaAllocator for SimDma {
    type Region = SimDmaRegion;

    fn alloc(&self, len: usize) -> Result<SimDmaRegion, DmaError> {
        if len == 0 || len > MAX_REGION {
            return Err(DmaError::InvalidLength(len));
        }
        let pages = (len as u64).div_ceil(PAGE);
        let bus = {
            let mut next = self.space.next.lock();
            if *next == 0 {
                *next = BUS_BASE;
            }
            let bus = *next;
            // One unmapped guard page between regions, so that an overrun faults.
            *next = bus
                .checked_add((pages + 1) * PAGE)
                .ok_or(DmaError::Exhausted)?;
            bus
        };
        let mem = Arc::new(RegionMem {
            bus,
            len,
            data: Mutex::new(vec![0u8; len].into_boxed_slice()),
        });
        self.space.regions.write().insert(bus, Arc::clone(&mem));
        Ok(SimDmaRegion {
            mem,
            len,
            space: Arc::clone(&self.space),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_page_aligned_nonzero_and_bounds_checked() {
        let dma = SimDma::new();
        let a = dma.alloc(100).expect("region a");
        let b = dma.alloc(8192).expect("region b");
        assert_eq!(a.bus_addr(), BUS_BASE);
        assert_eq!(a.bus_addr() % PAGE, 0);
        assert_eq!(b.bus_addr() % PAGE, 0);
        assert!(b.bus_addr() >= a.bus_addr() + 2 * PAGE);
        a.write(96, &[1, 2, 3, 4]).expect("in bounds");
        assert!(a.write(97, &[1, 2, 3, 4]).is_err());
        assert!(a.read(usize::MAX, &mut [0u8; 2]).is_err());
        let mut buf = [0u8; 4];
        dma.bus_read(a.bus_addr() + 96, &mut buf)
            .expect("in bounds");
        assert_eq!(buf, [1, 2, 3, 4]);
        // The guard gap, address zero and u64::MAX are faults, not panics.
        assert!(dma.bus_read(a.bus_addr() + 100, &mut buf).is_err());
        assert!(dma.bus_read(0, &mut buf).is_err());
        assert!(dma.bus_write(u64::MAX - 1, &buf).is_err());
        let bus = a.bus_addr();
        drop(a);
        assert!(dma.bus_read(bus, &mut buf).is_err());
        assert_eq!(dma.region_count(), 1);
        assert!(dma.alloc(0).is_err());
    }
}
