//! A submission queue and a completion queue as the kernel half keeps them: one page of
//! DMA memory each, the indexes, and the phase tag. Pure ring arithmetic over the memory;
//! the doorbells are written by the owner (the admin queue or the I/O queue pair).
//!
//! * Submission: the driver writes entries at `tail` and rings the tail doorbell; the
//!   controller reports how far it has fetched in each completion (`sqhd`), which is the
//!   only head the driver believes, after checking it is inside the queue.
//! * Completion: an entry is new when its phase tag equals the queue's current phase;
//!   the phase flips each time the head wraps (NVMe 1.4, 4.6.2).

use nvme_regs::{Cqe, Sqe, CQE_LEN, PAGE, SQE_LEN};

use crate::hw::{Dma, DmaError, PageBuf};

/// Entries of a submission queue in one page.
pub const SQ_ENTRIES: u16 = (PAGE / SQE_LEN) as u16;
/// Entries of a completion queue in one page.
pub const CQ_ENTRIES: u16 = (PAGE / CQE_LEN) as u16;

/// A submission queue.
#[derive(Debug)]
pub struct SubQueue {
    /// Queue id.
    pub qid: u16,
    mem: PageBuf,
    size: u16,
    tail: u16,
    head: u16,
}

impl SubQueue {
    /// A queue of `size` (2..=[`SQ_ENTRIES`]) entries in one fresh page.
    pub fn new(dma: &dyn Dma, qid: u16, size: u16) -> Result<Self, DmaError> {
        Ok(SubQueue {
            qid,
            mem: PageBuf::new(dma, 1)?,
            size: size.clamp(2, SQ_ENTRIES),
            tail: 0,
            head: 0,
        })
    }

    /// The queue's bus address (programmed by the kernel half only).
    pub fn bus(&self) -> u64 {
        self.mem.bus(0)
    }

    /// Entries.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// The tail (what the doorbell gets).
    pub fn tail(&self) -> u16 {
        self.tail
    }

    /// Entries submitted and not yet fetched as far as the controller told us.
    pub fn in_use(&self) -> u16 {
        (self.tail + self.size - self.head) % self.size
    }

    /// Whether another entry fits (one slot stays empty: full and empty differ).
    pub fn has_room(&self) -> bool {
        self.in_use() + 1 < self.size
    }

    /// Writes `sqe` at the tail and advances it; returns the new tail.
    pub fn push(&mut self, sqe: &Sqe) -> Result<u16, DmaError> {
        if !self.has_room() {
            return Err(DmaError::Exhausted);
        }
        self.mem
            .write(usize::from(self.tail) * SQE_LEN, &sqe.encode())?;
        self.tail = (self.tail + 1) % self.size;
        Ok(self.tail)
    }

    /// Takes the controller's head from a completion; false (ignored) if it is outside
    /// the queue or beyond the tail.
    pub fn set_head(&mut self, sqhd: u16) -> bool {
        let ahead = (sqhd + self.size.saturating_sub(self.head)) % self.size.max(1);
        if sqhd >= self.size || ahead > self.in_use() {
            return false;
        }
        self.head = sqhd;
        true
    }
}

/// A completion queue.
#[derive(Debug)]
pub struct CompQueue {
    /// Queue id.
    pub qid: u16,
    mem: PageBuf,
    size: u16,
    head: u16,
    phase: bool,
}

impl CompQueue {
    /// A queue of `size` (2..=[`CQ_ENTRIES`]) entries in one fresh (zeroed) page: every
    /// entry has phase 0, and the first pass looks for phase 1.
    pub fn new(dma: &dyn Dma, qid: u16, size: u16) -> Result<Self, DmaError> {
        Ok(CompQueue {
            qid,
            mem: PageBuf::new(dma, 1)?,
            size: size.clamp(2, CQ_ENTRIES),
            head: 0,
            phase: true,
        })
    }

    /// The queue's bus address.
    pub fn bus(&self) -> u64 {
        self.mem.bus(0)
    }

    /// Entries.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// The head (what the doorbell gets).
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The next new entry, consumed (the head advances, the phase flips on wrap), or None
    /// if the entry at the head still has the old phase.
    ///
    /// The second 8-byte word (dwords 2-3: the phase tag, status, command id and SQ head)
    /// is read first and on its own, the result dwords only once the tag says the entry is
    /// new: a 16-byte read is two loads, and the controller may write the entry between them
    /// (see `DmaRegion`'s access rules).
    pub fn pop(&mut self) -> Option<Cqe> {
        let at = usize::from(self.head) * CQE_LEN;
        let mut raw = [0u8; CQE_LEN];
        self.mem.read(at + 8, &mut raw[8..]).ok()?;
        if Cqe::decode(&raw).phase != self.phase {
            return None;
        }
        self.mem.read(at, &mut raw[..8]).ok()?;
        let cqe = Cqe::decode(&raw);
        self.head = (self.head + 1) % self.size;
        if self.head == 0 {
            self.phase = !self.phase;
        }
        Some(cqe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny DMA allocator for the ring tests: plain memory.
    struct Mem;
    struct Region(parking_lot::Mutex<Vec<u8>>, u64);
    impl DmaRegion for Region {
        fn bus_addr(&self) -> u64 {
            self.1
        }
        fn len(&self) -> usize {
            self.0.lock().len()
        }
        fn read(&self, off: usize, buf: &mut [u8]) -> Result<(), DmaError> {
            let m = self.0.lock();
            let src = m.get(off..off + buf.len()).ok_or(DmaError::Exhausted)?;
            buf.copy_from_slice(src);
            Ok(())
        }
        fn write(&self, off: usize, d: &[u8]) -> Result<(), DmaError> {
            let mut m = self.0.lock();
            m.get_mut(off..off + d.len())
                .ok_or(DmaError::Exhausted)?
                .copy_from_slice(d);
            Ok(())
        }
    }
    use crate::hw::DmaRegion;
    impl Dma for Mem {
        fn alloc_region(&self, len: usize) -> Result<Box<dyn DmaRegion>, DmaError> {
            Ok(Box::new(Region(
                parking_lot::Mutex::new(vec![0; len]),
                0x1000,
            )))
        }
    }

    #[test]
    fn completion_phase_flips_on_wrap_and_stale_entries_are_not_new() {
        let mut cq = CompQueue::new(&Mem, 1, 4).unwrap();
        let post = |cq: &CompQueue, i: u16, phase: bool| {
            let e = Cqe {
                cid: i,
                phase,
                ..Cqe::default()
            };
            cq.mem.write(usize::from(i) * CQE_LEN, &e.encode()).unwrap();
        };
        assert!(cq.pop().is_none(), "zeroed memory has phase 0");
        for round in 0..3 {
            let phase = round % 2 == 0;
            for i in 0..4 {
                post(&cq, i, phase);
                assert_eq!(cq.pop().map(|c| c.cid), Some(i));
                assert!(cq.pop().is_none(), "the next entry is from the last pass");
            }
        }
        assert_eq!(cq.head(), 0);
    }

    #[test]
    fn submission_ring_wraps_and_checks_the_controllers_head() {
        let mut sq = SubQueue::new(&Mem, 1, 4).unwrap();
        for _ in 0..3 {
            sq.push(&Sqe::default()).unwrap();
        }
        assert!(!sq.has_room() && sq.push(&Sqe::default()).is_err());
        assert!(!sq.set_head(4), "outside the queue");
        assert!(sq.set_head(2));
        assert!(!sq.set_head(1), "behind the head: beyond the tail");
        assert_eq!(sq.push(&Sqe::default()).unwrap(), 0, "tail wrapped");
        assert!(sq.set_head(0));
        assert_eq!(sq.in_use(), 0);
    }

    /// Memory whose device writes a posted completion entry between the two 8-byte loads
    /// of the driver's next access (a 16-byte read is two loads on real hardware).
    #[derive(Default)]
    struct Racing {
        mem: parking_lot::Mutex<Vec<u8>>,
        posted: parking_lot::Mutex<Option<(usize, [u8; CQE_LEN])>>,
    }
    struct RacingRegion(std::sync::Arc<Racing>);
    impl DmaRegion for RacingRegion {
        fn bus_addr(&self) -> u64 {
            0x2000
        }
        fn len(&self) -> usize {
            self.0.mem.lock().len()
        }
        fn read(&self, off: usize, buf: &mut [u8]) -> Result<(), DmaError> {
            for (i, chunk) in buf.chunks_mut(8).enumerate() {
                let at = off + 8 * i;
                chunk.copy_from_slice(&self.0.mem.lock()[at..at + chunk.len()]);
                if let Some((to, e)) = self.0.posted.lock().take() {
                    self.0.mem.lock()[to..to + CQE_LEN].copy_from_slice(&e);
                }
            }
            Ok(())
        }
        fn write(&self, off: usize, d: &[u8]) -> Result<(), DmaError> {
            self.0.mem.lock()[off..off + d.len()].copy_from_slice(d);
            Ok(())
        }
    }
    struct RacingDma(std::sync::Arc<Racing>);
    impl Dma for RacingDma {
        fn alloc_region(&self, len: usize) -> Result<Box<dyn DmaRegion>, DmaError> {
            *self.0.mem.lock() = vec![0; len];
            Ok(Box::new(RacingRegion(self.0.clone())))
        }
    }

    #[test]
    fn a_completion_posted_during_the_read_is_not_taken_half_old() {
        let dev = std::sync::Arc::new(Racing::default());
        let mut cq = CompQueue::new(&RacingDma(dev.clone()), 1, 4).unwrap();
        for i in 0..4u16 {
            let e = Cqe {
                result: 0xabcd_0000 | u32::from(i),
                cid: i,
                phase: true,
                ..Cqe::default()
            };
            *dev.posted.lock() = Some((usize::from(i) * CQE_LEN, e.encode()));
            let got = (0..3).find_map(|_| cq.pop()).expect("the entry is seen");
            assert_eq!(
                got, e,
                "entry {i}: its phase tag was new, its result still the old one"
            );
        }
    }
}
