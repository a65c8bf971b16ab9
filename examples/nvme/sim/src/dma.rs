//! Simulated DMA memory: regions with bus addresses and bounds-checked access, and the bus
//! the controller reaches them through. A bus access that is not wholly inside one live
//! region is a [`BusFault`] (a master abort), never a panic.

use std::collections::BTreeMap;
use std::sync::Arc;

use microdriver_hal::seam::{DmaAllocator, DmaError, DmaRegion};
use parking_lot::{Mutex, RwLock};

/// First bus address handed out: above 4 GiB, so the driver must program high halves.
pub const BUS_BASE: u64 = 0x2_0000_0000;
/// Alignment of regions, with one unmapped guard page between them.
pub const PAGE: u64 = 4096;
/// Largest region.
pub const MAX_REGION: usize = 16 << 20;

/// A bus access that hit no DMA memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusFault {
    /// The address.
    pub addr: u64,
    /// The length.
    pub len: usize,
}

struct Mem {
    bus: u64,
    data: Mutex<Box<[u8]>>,
}

#[derive(Default)]
struct Space {
    regions: RwLock<BTreeMap<u64, Arc<Mem>>>,
    next: Mutex<u64>,
}

impl Space {
    fn find(&self, addr: u64, len: usize) -> Result<(Arc<Mem>, usize), BusFault> {
        let fault = BusFault { addr, len };
        let map = self.regions.read();
        let (_, m) = map.range(..=addr).next_back().ok_or(fault)?;
        let off = usize::try_from(addr - m.bus).map_err(|_| fault)?;
        match off.checked_add(len) {
            Some(end) if end <= m.data.lock().len() => Ok((Arc::clone(m), off)),
            _ => Err(fault),
        }
    }
}

/// The allocator and the bus. Clones share the memory.
#[derive(Clone, Default)]
pub struct SimDma {
    space: Arc<Space>,
}

impl std::fmt::Debug for SimDma {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimDma({} regions)", self.region_count())
    }
}

impl SimDma {
    /// Device-side read.
    pub fn bus_read(&self, addr: u64, buf: &mut [u8]) -> Result<(), BusFault> {
        let (m, off) = self.space.find(addr, buf.len())?;
        buf.copy_from_slice(&m.data.lock()[off..off + buf.len()]);
        Ok(())
    }

    /// Device-side write.
    pub fn bus_write(&self, addr: u64, data: &[u8]) -> Result<(), BusFault> {
        let (m, off) = self.space.find(addr, data.len())?;
        m.data.lock()[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Live regions (a leak check for tests).
    pub fn region_count(&self) -> usize {
        self.space.regions.read().len()
    }
}

/// A region from [`SimDma`]; dropping it unmaps it from the bus.
pub struct SimRegion {
    mem: Arc<Mem>,
    len: usize,
    space: Arc<Space>,
}

impl Drop for SimRegion {
    fn drop(&mut self) {
        self.space.regions.write().remove(&self.mem.bus);
    }
}

impl SimRegion {
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

impl DmaRegion for SimRegion {
    fn bus_addr(&self) -> u64 {
        self.mem.bus
    }
    fn len(&self) -> usize {
        self.len
    }
    fn read(&self, off: usize, buf: &mut [u8]) -> Result<(), DmaError> {
        self.check(off, buf.len())?;
        buf.copy_from_slice(&self.mem.data.lock()[off..off + buf.len()]);
        Ok(())
    }
    fn write(&self, off: usize, src: &[u8]) -> Result<(), DmaError> {
        self.check(off, src.len())?;
        self.mem.data.lock()[off..off + src.len()].copy_from_slice(src);
        Ok(())
    }
}

impl DmaAllocator for SimDma {
    type Region = SimRegion;

    fn alloc(&self, len: usize) -> Result<SimRegion, DmaError> {
        if len == 0 || len > MAX_REGION {
            return Err(DmaError::InvalidLength(len));
        }
        let bus = {
            let mut next = self.space.next.lock();
            let bus = (*next).max(BUS_BASE);
            *next = bus
                .checked_add(((len as u64).div_ceil(PAGE) + 1) * PAGE)
                .ok_or(DmaError::Exhausted)?;
            bus
        };
        let mem = Arc::new(Mem {
            bus,
            data: Mutex::new(vec![0u8; len].into_boxed_slice()),
        });
        self.space.regions.write().insert(bus, Arc::clone(&mem));
        Ok(SimRegion {
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
    fn bus_accesses_outside_regions_fault() {
        let dma = SimDma::default();
        let a = dma.alloc(100).unwrap();
        a.write(96, &[1, 2, 3, 4]).unwrap();
        assert!(a.write(97, &[0; 4]).is_err());
        let mut b = [0u8; 4];
        dma.bus_read(a.bus_addr() + 96, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
        assert!(dma.bus_read(a.bus_addr() + 97, &mut b).is_err());
        assert!(dma.bus_read(0, &mut b).is_err());
        assert!(dma.bus_write(u64::MAX, &b).is_err());
        let bus = a.bus_addr();
        drop(a);
        assert!(dma.bus_read(bus, &mut b).is_err());
        assert_eq!(dma.region_count(), 0);
    }
}
