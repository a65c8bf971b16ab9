//! Simulated DMA memory for device models: regions with bus addresses and bounds-checked
//! access.
//!
//! There is no unsafe code here: a region is an array of 8-byte atomic words, so the driver
//! and the device model share it without a lock, with the access rules of real DMA memory
//! (each aligned 8-byte word is one access, a longer access is a series of them in
//! ascending address order; see [`DmaRegion`](crate::seam::DmaRegion)). The device side
//! reaches memory only through [`SimDma::bus_read`] / [`SimDma::bus_write`], which return a
//! [`BusFault`] for any address range not wholly inside one live region (the hardware
//! equivalent is a master abort on the PCI bus).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
    data: Words,
}

/// Memory as 8-byte words, each loaded with acquire and stored with release ordering, in
/// ascending address order: what a CPU and a device see of shared memory, without a lock.
/// Callers check bounds first (an access past the end panics).
struct Words(Box<[AtomicU64]>);

impl Words {
    fn zeroed(len: usize) -> Self {
        Self((0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect())
    }

    fn read(&self, off: usize, buf: &mut [u8]) {
        let (mut w, b) = (off / 8, off % 8);
        let mut rest = buf;
        if b != 0 {
            let n = (8 - b).min(rest.len());
            let word = self.0[w].load(Ordering::Acquire).to_ne_bytes();
            rest[..n].copy_from_slice(&word[b..b + n]);
            rest = &mut rest[n..];
            w += 1;
        }
        let full = rest.len() / 8;
        let (mid, tail) = rest.split_at_mut(full * 8);
        for (chunk, word) in mid.chunks_exact_mut(8).zip(&self.0[w..w + full]) {
            chunk.copy_from_slice(&word.load(Ordering::Acquire).to_ne_bytes());
        }
        if !tail.is_empty() {
            let word = self.0[w + full].load(Ordering::Acquire).to_ne_bytes();
            tail.copy_from_slice(&word[..tail.len()]);
        }
    }

    fn write(&self, off: usize, data: &[u8]) {
        let (mut w, b) = (off / 8, off % 8);
        let mut rest = data;
        if b != 0 {
            let n = (8 - b).min(rest.len());
            self.merge(w, b, &rest[..n]);
            rest = &rest[n..];
            w += 1;
        }
        let full = rest.len() / 8;
        let (mid, tail) = rest.split_at(full * 8);
        for (chunk, word) in mid.chunks_exact(8).zip(&self.0[w..w + full]) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            word.store(u64::from_ne_bytes(bytes), Ordering::Release);
        }
        if !tail.is_empty() {
            self.merge(w + full, 0, tail);
        }
    }

    /// Writes `part` into word `w` from its byte `b`. The word's other bytes may be written
    /// concurrently by the other side (a status byte beside a length): they are merged,
    /// never overwritten.
    fn merge(&self, w: usize, b: usize, part: &[u8]) {
        let _ = self.0[w].fetch_update(Ordering::Release, Ordering::Relaxed, |old| {
            let mut word = old.to_ne_bytes();
            word[b..b + part.len()].copy_from_slice(part);
            Some(u64::from_ne_bytes(word))
        });
    }
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
        r.data.read(off, buf);
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
        let start = out.len();
        out.resize(start + len, 0);
        r.data.read(off, &mut out[start..]);
        Ok(())
    }

    /// Device-side write of `data` at bus address `addr`.
    pub fn bus_write(&self, addr: u64, data: &[u8]) -> Result<(), BusFault> {
        let (r, off) = self.space.find(addr, data.len())?;
        r.data.write(off, data);
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
        self.mem.data.read(off, buf);
        Ok(())
    }

    fn write(&self, off: usize, src: &[u8]) -> Result<(), DmaError> {
        self.check(off, src.len())?;
        self.mem.data.write(off, src);
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
            data: Words::zeroed(len),
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

    /// Any access at any offset reads back what was written, like a plain byte array.
    #[test]
    fn unaligned_accesses_behave_as_bytes() {
        proptest::proptest!(|(ops in proptest::collection::vec((0usize..200, proptest::collection::vec(proptest::num::u8::ANY, 0..40)), 1..30))| {
            let dma = SimDma::new();
            let r = dma.alloc(200).expect("region");
            let mut model = vec![0u8; 200];
            for (off, data) in ops {
                let fits = off + data.len() <= 200;
                proptest::prop_assert_eq!(r.write(off, &data).is_ok(), fits);
                if fits {
                    model[off..off + data.len()].copy_from_slice(&data);
                }
                let mut all = vec![0u8; 200];
                r.read(0, &mut all).expect("whole region");
                proptest::prop_assert_eq!(&all, &model);
                let mut part = vec![0u8; data.len().min(200 - off.min(200))];
                dma.bus_read(r.bus_addr() + off as u64, &mut part).expect("in bounds");
                proptest::prop_assert_eq!(&part[..], &model[off..off + part.len()]);
            }
        });
    }

    /// The driver and the device write different bytes of one word at the same time (a
    /// status byte beside a length): neither write is lost.
    #[test]
    fn concurrent_writes_to_one_word_keep_both() {
        let dma = SimDma::new();
        let r = dma.alloc(8).expect("region");
        let bus = r.bus_addr();
        let device = {
            let dma = dma.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    dma.bus_write(bus + 4, &i.to_le_bytes()).expect("in bounds");
                }
            })
        };
        for i in 0..20_000u32 {
            r.write(0, &i.to_le_bytes()).expect("in bounds");
            assert_eq!(
                r.read_u32(0).expect("in bounds"),
                i,
                "the device's write undid ours"
            );
        }
        device.join().expect("device thread");
        assert_eq!(r.read_u32(4).expect("in bounds"), 19_999);
    }

    /// The protocol of real DMA memory: the device writes a record's data, then the word
    /// holding its flag; a driver that reads the flag word first, then the data, never sees
    /// a flag with stale data.
    #[test]
    fn flag_word_read_first_orders_the_data() {
        let dma = SimDma::new();
        let r = dma.alloc(16).expect("region");
        let bus = r.bus_addr();
        let rounds = 50_000u64;
        let device = {
            let dma = dma.clone();
            std::thread::spawn(move || {
                for seq in 1..=rounds {
                    let mut rec = [0u8; 16];
                    rec[..8].copy_from_slice(&(seq * 3).to_le_bytes());
                    rec[8..].copy_from_slice(&seq.to_le_bytes());
                    dma.bus_write(bus, &rec).expect("in bounds");
                }
            })
        };
        let mut last = 0;
        while last < rounds {
            let seq = r.read_u64(8).expect("in bounds");
            let data = r.read_u64(0).expect("in bounds");
            assert!(
                data >= seq * 3,
                "flag {seq} seen with the data of an older record ({data})"
            );
            last = seq;
        }
        device.join().expect("device thread");
    }
}
