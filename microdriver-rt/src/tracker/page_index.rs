//! The page index: the fast path of a translation, a few hash probes whatever the number
//! of objects. Its answers are only ever candidates, confirmed against the address by the
//! caller; an address it cannot answer falls back to the B-trees, which stay the source of
//! truth.
//!
//! Objects are indexed at several granularities, each a chunk size, so that the usual
//! layouts are answered without the B-tree:
//! - **pages** (4 KiB): every object spanning at most [`MAX_CHUNKS`] pages. A page holding
//!   one object answers at once.
//! - **lines** (64 bytes): objects of at most 4 KiB on pages shared by several objects
//!   (slab-allocated records, descriptors packed in a page); the first object on a page
//!   is indexed by line when a second one arrives.
//! - **large chunks** (64 KiB, 1 MiB, 16 MiB, 256 MiB): an object too large for the page
//!   level, at the smallest of these sizes where it spans at most [`MAX_CHUNKS`] chunks.
//!
//! A chunk that holds one object answers with it; a chunk shared by several says so, and
//! the lookup goes on to a finer level or to the B-tree.

use rustc_hash::FxHashMap;

/// Most chunks an object is indexed under at one level (bounds the work of registering).
const MAX_CHUNKS: usize = 64;
/// The page level's chunk size (log2).
const PAGE_SHIFT: u32 = 12;
/// The line level's chunk size (log2): for objects of at most a page.
const LINE_SHIFT: u32 = 6;
/// The large levels' chunk sizes (log2), finest first.
const LARGE_SHIFTS: [u32; 4] = [16, 20, 24, 28];

/// A level's key space: the level's tag in the top bits, the chunk number below. Chunk
/// numbers of different levels could only collide for addresses beyond 2^58, and a
/// collision yields a wrong candidate, which the caller's check refuses.
#[inline]
fn key(level: u32, addr: usize) -> usize {
    ((level as usize) << 58) ^ (addr >> level)
}

/// What the index knows of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk<V> {
    /// Exactly one object has been indexed on this chunk.
    One(V),
    /// Several objects share the chunk: ask a finer level, or the B-tree.
    Shared,
}

/// A page-index value: names its slab slot and the object's extent.
pub(crate) trait Indexed: Copy {
    fn slot(&self) -> usize;
    /// The object's start and size (to index it by line once its page is shared).
    fn extent(&self) -> (usize, usize);
}

/// The index of one address space (this side's or the peer's).
#[derive(Debug)]
pub(crate) struct PageIndex<V> {
    chunks: FxHashMap<usize, Chunk<V>>,
}

impl<V> Default for PageIndex<V> {
    fn default() -> Self {
        Self {
            chunks: FxHashMap::default(),
        }
    }
}

/// The chunk numbers an object occupies at the level of `shift`, if at most
/// [`MAX_CHUNKS`].
fn chunks_of(shift: u32, start: usize, size: usize) -> Option<std::ops::RangeInclusive<usize>> {
    let first = start >> shift;
    let last = start.checked_add(size.max(1) - 1)? >> shift;
    (last - first < MAX_CHUNKS).then_some(first..=last)
}

/// Whether an object of `size` bytes at `start` is small enough for the line level.
fn fits_lines(start: usize, size: usize) -> bool {
    size <= 1 << PAGE_SHIFT && chunks_of(LINE_SHIFT, start, size).is_some()
}

/// The large level of an object too large for the page level, if one fits it.
fn large_level(start: usize, size: usize) -> Option<u32> {
    LARGE_SHIFTS
        .into_iter()
        .find(|&shift| chunks_of(shift, start, size).is_some())
}

/// The levels an object of `size` bytes at `start` may be indexed at (the line level only
/// once one of its pages is shared).
fn levels_of(start: usize, size: usize) -> impl Iterator<Item = u32> {
    let on_pages = chunks_of(PAGE_SHIFT, start, size).is_some();
    on_pages
        .then_some(PAGE_SHIFT)
        .into_iter()
        .chain(fits_lines(start, size).then_some(LINE_SHIFT))
        .chain(if on_pages {
            None
        } else {
            large_level(start, size)
        })
}

impl<V: Indexed> PageIndex<V> {
    /// Indexes the object at `start` of `size` bytes as `value`: by page (or large chunk),
    /// and by line when it shares a page with another object. The first object on a page
    /// is indexed by line only when a second one arrives, so pages holding one object
    /// each (the usual layout) cost one entry per page.
    pub(crate) fn insert(&mut self, start: usize, size: usize, value: V) {
        let Some(pages) = chunks_of(PAGE_SHIFT, start, size) else {
            if let Some(shift) = large_level(start, size) {
                self.insert_at(shift, start, size, value);
            }
            return;
        };
        let mut shares_a_page = false;
        let mut neighbours = Vec::new();
        for page in pages {
            let chunk = self
                .chunks
                .entry(key(PAGE_SHIFT, page << PAGE_SHIFT))
                .or_insert(Chunk::One(value));
            match *chunk {
                Chunk::One(v) if v.slot() == value.slot() => {}
                Chunk::One(first) => {
                    *chunk = Chunk::Shared;
                    neighbours.push(first);
                    shares_a_page = true;
                }
                Chunk::Shared => shares_a_page = true,
            }
        }
        for first in neighbours {
            let (start, size) = first.extent();
            if fits_lines(start, size) {
                self.insert_at(LINE_SHIFT, start, size, first);
            }
        }
        if shares_a_page && fits_lines(start, size) {
            self.insert_at(LINE_SHIFT, start, size, value);
        }
    }

    /// Indexes the object at the level of `shift` (indexing it again changes nothing).
    fn insert_at(&mut self, shift: u32, start: usize, size: usize, value: V) {
        let Some(chunks) = chunks_of(shift, start, size) else {
            return;
        };
        for chunk in chunks {
            let entry = self
                .chunks
                .entry(key(shift, chunk << shift))
                .or_insert(Chunk::One(value));
            if matches!(*entry, Chunk::One(v) if v.slot() != value.slot()) {
                *entry = Chunk::Shared;
            }
        }
    }

    /// Forgets the object at `start` of `size` bytes in slot `slot` (chunks marked shared
    /// stay shared: the B-tree answers for them).
    pub(crate) fn remove(&mut self, start: usize, size: usize, slot: usize) {
        for shift in levels_of(start, size) {
            let Some(chunks) = chunks_of(shift, start, size) else {
                continue;
            };
            for chunk in chunks {
                let key = key(shift, chunk << shift);
                if matches!(self.chunks.get(&key), Some(Chunk::One(v)) if v.slot() == slot) {
                    self.chunks.remove(&key);
                }
            }
        }
    }

    /// The object that probably contains `addr` (the caller checks), if the index knows
    /// one: the page's object; on a shared page, the line's; on a page no object of at
    /// most [`MAX_CHUNKS`] pages covers, the large levels' from the finest.
    #[inline]
    pub(crate) fn candidate(&self, addr: usize) -> Option<V> {
        match self.chunks.get(&key(PAGE_SHIFT, addr)) {
            Some(Chunk::One(value)) => Some(*value),
            Some(Chunk::Shared) => match self.chunks.get(&key(LINE_SHIFT, addr)) {
                Some(Chunk::One(value)) => Some(*value),
                _ => None,
            },
            None => self.large_candidate(addr),
        }
    }

    #[cold]
    fn large_candidate(&self, addr: usize) -> Option<V> {
        for shift in LARGE_SHIFTS {
            match self.chunks.get(&key(shift, addr)) {
                Some(Chunk::One(value)) => return Some(*value),
                Some(Chunk::Shared) => return None,
                None => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test value: slot, start, size.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Hit(usize, usize, usize);

    impl Indexed for Hit {
        fn slot(&self) -> usize {
            self.0
        }
        fn extent(&self) -> (usize, usize) {
            (self.1, self.2)
        }
    }

    /// Indexes an object whose slot is `slot`.
    fn put(index: &mut PageIndex<Hit>, start: usize, size: usize, slot: usize) {
        index.insert(start, size, Hit(slot, start, size));
    }

    fn slot_at(index: &PageIndex<Hit>, addr: usize) -> Option<usize> {
        index.candidate(addr).map(|h| h.0)
    }

    #[test]
    fn each_layout_is_answered_by_its_level() {
        let mut index = PageIndex::<Hit>::default();
        // One object alone on its page.
        put(&mut index, 0x10_0000, 256, 1);
        // Four 64-byte objects sharing a page.
        for i in 0..4 {
            put(&mut index, 0x20_0000 + i * 64, 64, 10 + i);
        }
        // An object of 80 pages, and one of 100 MiB.
        put(&mut index, 0x4000_0000, 80 * 4096, 20);
        put(&mut index, 0x8000_0000, 100 << 20, 21);
        assert_eq!(slot_at(&index, 0x10_0080), Some(1));
        assert_eq!(slot_at(&index, 0x20_0000 + 2 * 64 + 8), Some(12));
        assert_eq!(slot_at(&index, 0x4000_0000 + 79 * 4096), Some(20));
        assert_eq!(slot_at(&index, 0x8000_0000 + (99 << 20)), Some(21));
        // Nothing there: no candidate.
        assert_eq!(slot_at(&index, 0x30_0000), None);
        // Two 32-byte objects in one line: the line is shared, the B-tree answers.
        put(&mut index, 0x50_0000, 32, 30);
        put(&mut index, 0x50_0020, 32, 31);
        assert_eq!(slot_at(&index, 0x50_0020), None);
        // Removal forgets what it indexed, and only that.
        index.remove(0x4000_0000, 80 * 4096, 20);
        assert_eq!(slot_at(&index, 0x4000_0000 + 4096), None);
        index.remove(0x10_0000, 256, 99);
        assert_eq!(
            slot_at(&index, 0x10_0000),
            Some(1),
            "another slot's removal"
        );
        index.remove(0x10_0000, 256, 1);
        assert_eq!(slot_at(&index, 0x10_0000), None);
    }

    /// Pages holding one object each cost one entry each; a page that becomes shared has
    /// its first object indexed by line too, so both stay answerable.
    #[test]
    fn lines_only_for_shared_pages() {
        let mut index = PageIndex::<Hit>::default();
        for i in 0..100 {
            put(&mut index, 0x10_0000 + i * 4096, 2048, i);
        }
        assert_eq!(index.chunks.len(), 100, "one entry per page");
        put(&mut index, 0x10_0000 + 2048, 64, 500);
        assert_eq!(
            slot_at(&index, 0x10_0000 + 64),
            Some(0),
            "the first, by line"
        );
        assert_eq!(slot_at(&index, 0x10_0000 + 2048), Some(500));
        assert_eq!(
            slot_at(&index, 0x10_0000 + 4096),
            Some(1),
            "its neighbour page"
        );
        // An object over two pages, one shared: indexed by line, once.
        put(&mut index, 0x20_0000 + 3072, 2048, 600);
        put(&mut index, 0x20_0000, 64, 601);
        assert_eq!(slot_at(&index, 0x20_0000 + 3072 + 1024), Some(600));
        assert_eq!(slot_at(&index, 0x20_0000 + 16), Some(601));
    }

    #[test]
    fn hostile_extents_do_not_overflow() {
        let mut index = PageIndex::<Hit>::default();
        put(&mut index, usize::MAX - 10, 100, 1);
        put(&mut index, usize::MAX - 4095, 4096, 2);
        assert_eq!(slot_at(&index, usize::MAX), Some(2));
        index.remove(usize::MAX - 10, 100, 1);
        index.remove(usize::MAX - 4095, 4096, 2);
        assert_eq!(slot_at(&index, usize::MAX), None);
    }
}
