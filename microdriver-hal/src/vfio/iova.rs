//! The device's address space under the IOMMU: which I/O virtual addresses (IOVAs) are
//! free. Regions get page-aligned IOVA ranges first-fit; a freed range merges with its
//! neighbours.

use std::collections::BTreeMap;

/// The lowest IOVA handed out: the first MiB stays unmapped, so a zero or small bogus
/// address a buggy driver hands the device faults in the IOMMU instead of hitting a region.
pub const IOVA_BASE: u64 = 1 << 20;
/// One past the highest IOVA handed out: below the x86 interrupt window at 0xfee00000
/// (which VFIO reserves) and within any IOMMU's 32-bit reach.
pub const IOVA_END: u64 = 0xfee0_0000;

/// Free IOVA ranges (start -> length), non-overlapping and non-adjacent.
#[derive(Debug)]
pub struct IovaSpace {
    free: BTreeMap<u64, u64>,
    page: u64,
}

impl IovaSpace {
    /// The whole space `[start, end)` free, in `page`-sized units.
    pub fn new(start: u64, end: u64, page: u64) -> Self {
        let mut free = BTreeMap::new();
        if end > start {
            free.insert(start, end - start);
        }
        Self { free, page }
    }

    /// Takes `len` bytes (rounded up to a page), first fit; `None` if no range is big
    /// enough.
    pub fn alloc(&mut self, len: u64) -> Option<u64> {
        let len = len.checked_next_multiple_of(self.page)?.max(self.page);
        let (&start, &have) = self.free.iter().find(|(_, &l)| l >= len)?;
        self.free.remove(&start);
        if have > len {
            self.free.insert(start + len, have - len);
        }
        Some(start)
    }

    /// Gives `[start, start + len)` (as returned by [`alloc`](Self::alloc) with this
    /// `len`) back. A range overlapping free space is refused (returns false) and changes
    /// nothing: freeing twice must not hand one IOVA to two regions.
    pub fn free(&mut self, start: u64, len: u64) -> bool {
        let Some(len) = len
            .checked_next_multiple_of(self.page)
            .map(|l| l.max(self.page))
        else {
            return false;
        };
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        let before = self.free.range(..end).next_back().map(|(&s, &l)| (s, l));
        if let Some((s, l)) = before {
            if s + l > start {
                return false;
            }
        }
        let mut new_start = start;
        let mut new_len = len;
        if let Some((s, l)) = before {
            if s + l == start {
                self.free.remove(&s);
                new_start = s;
                new_len += l;
            }
        }
        if let Some(l) = self.free.remove(&end) {
            new_len += l;
        }
        self.free.insert(new_start, new_len);
        true
    }

    /// Bytes free.
    pub fn free_bytes(&self) -> u64 {
        self.free.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 4096;

    #[test]
    fn ranges_are_page_aligned_disjoint_and_reused() {
        let mut s = IovaSpace::new(IOVA_BASE, IOVA_BASE + 16 * P, P);
        let a = s.alloc(1).unwrap();
        let b = s.alloc(P + 1).unwrap();
        let c = s.alloc(P).unwrap();
        assert_eq!(a, IOVA_BASE);
        assert_eq!(b, IOVA_BASE + P);
        assert_eq!(c, IOVA_BASE + 3 * P);
        assert!(s.free(b, P + 1));
        // First fit: the hole left by b.
        assert_eq!(s.alloc(2 * P), Some(b));
        assert_eq!(s.free_bytes(), 12 * P);
    }

    #[test]
    fn exhaustion_and_bad_frees_are_refused() {
        let mut s = IovaSpace::new(0, 4 * P, P);
        assert_eq!(s.alloc(5 * P), None);
        assert_eq!(s.alloc(u64::MAX), None);
        let a = s.alloc(4 * P).unwrap();
        assert_eq!(s.alloc(1), None);
        assert!(s.free(a, 4 * P));
        // Double free: overlaps free space.
        assert!(!s.free(a, P));
        assert!(!s.free(u64::MAX - 10, P));
        assert_eq!(s.free_bytes(), 4 * P);
    }

    #[test]
    fn frees_merge_with_both_neighbours() {
        let mut s = IovaSpace::new(0, 3 * P, P);
        let a = s.alloc(P).unwrap();
        let b = s.alloc(P).unwrap();
        let c = s.alloc(P).unwrap();
        assert!(s.free(a, P));
        assert!(s.free(c, P));
        assert!(s.free(b, P));
        assert_eq!(s.alloc(3 * P), Some(0));
    }
}
