//! DMA memory that stays put: mlock'd anonymous memory (hugetlb pages where available),
//! with bus addresses read from `/proc/self/pagemap`.
//!
//! The device addresses a region as one run of bus addresses, so each region must be
//! physically contiguous. Without an IOMMU (uio_pci_generic does not use one) the bus
//! address is the physical address.
//!
//! * Regions of up to a page are single pages: contiguous by construction.
//! * Larger regions (the driver's buffer areas: 256 descriptors x 2048 B = 512 KiB by
//!   default, up to 4096 x 4096 B = 16 MiB) come from hugetlb pages: one hugepage holds any
//!   region up to 2 MiB; bigger regions need several hugepages that happen to be
//!   physically adjacent, which is checked.
//! * Without hugepages (and unless [`OpenOptions::hugepages`](crate::OpenOptions) demands
//!   them) a larger region is carved out of a locked pool of ordinary pages where the
//!   pagemap shows a physically contiguous run (transparent hugepages make such runs
//!   likely). Such pages are locked but, unlike hugetlb pages, may be migrated by memory
//!   compaction; the fallback logs that once. Hugepages are the supported setup.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::seam::{DmaAllocator, DmaError, DmaRegion};

use crate::error::HalError;
use crate::mem::{page_size, Mapping};
use crate::sysfs::meminfo_value;

/// The largest region handed out (the driver's largest is 16 MiB).
pub const MAX_REGION: usize = 64 << 20;

/// One decoded `/proc/self/pagemap` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEntry {
    /// Not present in memory.
    NotPresent,
    /// Swapped out.
    Swapped,
    /// Present, in this page frame. A frame of 0 means the kernel hid it (no
    /// CAP_SYS_ADMIN).
    Frame(u64),
}

/// Decodes a pagemap entry (Documentation/admin-guide/mm/pagemap.rst: bit 63 present,
/// bit 62 swapped, bits 0-54 the page frame number).
pub fn decode_pagemap(entry: u64) -> PageEntry {
    if entry & (1 << 63) != 0 {
        PageEntry::Frame(entry & ((1 << 55) - 1))
    } else if entry & (1 << 62) != 0 {
        PageEntry::Swapped
    } else {
        PageEntry::NotPresent
    }
}

/// The first index of a run of `n` consecutive frame numbers in `frames`, if any.
pub fn find_contiguous_run(frames: &[u64], n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let mut start = 0;
    for i in 0..frames.len() {
        if i > start && frames[i] != frames[i - 1].wrapping_add(1) {
            start = i;
        }
        if i + 1 - start >= n {
            return Some(start);
        }
    }
    None
}

/// The process's page map.
#[derive(Debug)]
struct Pagemap {
    file: File,
    path: PathBuf,
}

impl Pagemap {
    fn open(path: &Path) -> Result<Self, HalError> {
        let file = File::open(path).map_err(HalError::io("opening the page map", path))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The frames of the `count` pages from `vaddr`.
    fn frames(&self, vaddr: usize, count: usize) -> Result<Vec<PageEntry>, std::io::Error> {
        let page = page_size();
        let mut raw = vec![0u8; count * 8];
        self.file
            .read_exact_at(&mut raw, (vaddr / page) as u64 * 8)?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| decode_pagemap(u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect())
    }

    /// The physical frames of a locked mapping, or why they cannot be had.
    fn locked_frames(&self, m: &Mapping) -> Result<Vec<u64>, String> {
        let page = page_size();
        let entries = self
            .frames(m.addr(), m.len() / page)
            .map_err(|e| format!("reading {}: {e}", self.path.display()))?;
        entries
            .into_iter()
            .map(|e| match e {
                PageEntry::Frame(0) => Err(HalError::PagemapZeroFrames.to_string()),
                PageEntry::Frame(f) => Ok(f),
                other => Err(format!("a locked page is {other:?}")),
            })
            .collect()
    }
}

/// Hugepage availability, from `/proc/meminfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HugepageInfo {
    /// The default hugepage size in bytes (0: no hugetlb support).
    pub size: usize,
    /// Free hugepages.
    pub free: u64,
}

impl HugepageInfo {
    /// Parses `/proc/meminfo`.
    pub fn parse(meminfo: &str) -> Self {
        Self {
            size: meminfo_value(meminfo, "Hugepagesize").unwrap_or(0) as usize,
            free: meminfo_value(meminfo, "HugePages_Free").unwrap_or(0),
        }
    }
}

/// The DMA allocator of a UIO device.
#[derive(Debug)]
pub struct UioDma {
    pagemap: Pagemap,
    hugepage: usize,
    /// Hugepages work (cleared after the first failed hugetlb map, unless required).
    huge_ok: AtomicBool,
    require_huge: bool,
    warned_fallback: AtomicBool,
}

impl UioDma {
    /// An allocator. `require_huge` turns a lack of hugepages into an error here (and
    /// failed hugetlb allocations into errors later) instead of the 4 KiB fallback.
    /// Checks up front that the page map shows real frames.
    pub fn new(proc_root: &Path, require_huge: bool) -> Result<Self, HalError> {
        let meminfo_path = proc_root.join("meminfo");
        let meminfo = std::fs::read_to_string(&meminfo_path)
            .map_err(HalError::io("reading meminfo", &meminfo_path))?;
        let info = HugepageInfo::parse(&meminfo);
        let huge_ok = info.size > 0 && info.free > 0;
        if !huge_ok {
            let detail = format!(
                "{}: HugePages_Free {}, Hugepagesize {} kB",
                meminfo_path.display(),
                info.free,
                info.size / 1024
            );
            if require_huge {
                return Err(HalError::NoHugepages { detail });
            }
            tracing::warn!(
                "no free hugepages ({detail}): DMA regions over 4 KiB will come from \
                 physically contiguous runs of locked 4 KiB pages if any can be found; \
                 reserve hugepages (echo 64 > /proc/sys/vm/nr_hugepages) for a reliable setup"
            );
        }
        let dma = Self {
            pagemap: Pagemap::open(&proc_root.join("self/pagemap"))?,
            hugepage: info.size,
            huge_ok: AtomicBool::new(huge_ok),
            require_huge,
            warned_fallback: AtomicBool::new(!huge_ok),
        };
        // Probe: a locked page must show a real frame.
        let probe = Mapping::anonymous(page_size(), false)
            .and_then(|m| m.lock().map(|()| m))
            .map_err(HalError::io("locking a probe page", "mlock"))?;
        match dma.pagemap.frames(probe.addr(), 1) {
            Ok(e) if e.first() == Some(&PageEntry::Frame(0)) => {
                return Err(HalError::PagemapZeroFrames)
            }
            Ok(e) if matches!(e.first(), Some(PageEntry::Frame(_))) => {}
            Ok(e) => {
                return Err(HalError::Parse {
                    path: dma.pagemap.path.clone(),
                    contents: format!("locked probe page is {:?}", e.first()),
                })
            }
            Err(e) => {
                return Err(HalError::io(
                    "reading the page map",
                    dma.pagemap.path.clone(),
                )(e))
            }
        }
        Ok(dma)
    }

    /// The hugepage size in use, if hugepages are being used.
    pub fn hugepage_size(&self) -> Option<usize> {
        self.huge_ok
            .load(Ordering::Relaxed)
            .then_some(self.hugepage)
    }

    fn fail(&self, len: usize, why: &str) -> DmaError {
        tracing::error!(len, "DMA allocation failed: {why}");
        DmaError::Exhausted
    }

    fn region(&self, map: Mapping, frames: &[u64], len: usize) -> UioRegion {
        let page = page_size();
        let bus = frames[0] * page as u64;
        tracing::debug!(len, bus = format_args!("{bus:#x}"), "DMA region");
        UioRegion { map, bus, len }
    }

    /// Locks `map` in memory and reads the physical frame of each of its pages (for a
    /// region of `len` bytes, named in errors).
    fn lock_and_translate(&self, map: &Mapping, len: usize) -> Result<Vec<u64>, DmaError> {
        map.lock()
            .map_err(|e| self.fail(len, &format!("mlock: {e} (raise RLIMIT_MEMLOCK?)")))?;
        self.pagemap
            .locked_frames(map)
            .map_err(|e| self.fail(len, &e))
    }

    fn alloc_small(&self, len: usize) -> Result<UioRegion, DmaError> {
        let map = Mapping::anonymous(page_size(), false)
            .map_err(|e| self.fail(len, &format!("mmap: {e}")))?;
        let frames = self.lock_and_translate(&map, len)?;
        Ok(self.region(map, &frames, len))
    }

    fn alloc_huge(&self, len: usize) -> Result<Option<UioRegion>, DmaError> {
        let hp = self.hugepage;
        let size = len.div_ceil(hp) * hp;
        let mut held = Vec::new();
        // Several hugepages must be physically adjacent; try a few times, holding the
        // failed attempts so the next one gets other pages.
        for _ in 0..4 {
            let map = match Mapping::anonymous(size, true).and_then(|m| m.lock().map(|()| m)) {
                Ok(m) => m,
                Err(e) => {
                    if held.is_empty() && !self.require_huge {
                        tracing::warn!(
                            len,
                            error = %e,
                            "no hugepage for a DMA region: falling back to 4 KiB pages"
                        );
                        return Ok(None);
                    }
                    return Err(self.fail(
                        len,
                        &format!(
                            "no {} contiguous hugepages of {} KiB ({e}); reserve more (echo \
                             N > /proc/sys/vm/nr_hugepages) or use smaller rings",
                            size / hp,
                            hp / 1024
                        ),
                    ));
                }
            };
            let frames = self
                .pagemap
                .locked_frames(&map)
                .map_err(|e| self.fail(len, &e))?;
            if find_contiguous_run(&frames, frames.len()) == Some(0) {
                return Ok(Some(self.region(map, &frames, len)));
            }
            held.push(map);
        }
        Err(self.fail(
            len,
            &format!(
                "the hugepages given for a {len}-byte region were not physically adjacent; \
                 use rings whose buffers fit in one {} KiB hugepage",
                hp / 1024
            ),
        ))
    }

    fn alloc_contiguous_4k(&self, len: usize) -> Result<UioRegion, DmaError> {
        if !self.warned_fallback.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "DMA regions over 4 KiB now come from contiguous runs of locked 4 KiB pages: \
                 locked pages can still be migrated by memory compaction (set \
                 vm.compact_unevictable_allowed=0, or reserve hugepages)"
            );
        }
        let page = page_size();
        let pages = len.div_ceil(page);
        let chunk = 2 << 20;
        let pool = ((pages * page).div_ceil(chunk) * chunk * 2 + chunk).min(MAX_REGION * 2);
        let map = Mapping::anonymous(pool, false)
            .map_err(|e| self.fail(len, &format!("mmap of a {pool}-byte pool: {e}")))?;
        map.advise_hugepage();
        let frames = self.lock_and_translate(&map, len)?;
        let start = find_contiguous_run(&frames, pages).ok_or_else(|| {
            self.fail(
                len,
                &format!(
                    "no {pages} physically contiguous 4 KiB pages in a {} MiB locked pool: \
                     reserve hugepages (echo 64 > /proc/sys/vm/nr_hugepages)",
                    pool >> 20
                ),
            )
        })?;
        let map = map
            .keep(start * page, pages * page)
            .map_err(|e| self.fail(len, &format!("trimming the pool: {e}")))?;
        Ok(self.region(map, &frames[start..start + pages], len))
    }
}

impl DmaAllocator for UioDma {
    type Region = UioRegion;

    fn alloc(&self, len: usize) -> Result<UioRegion, DmaError> {
        if len == 0 || len > MAX_REGION {
            return Err(DmaError::InvalidLength(len));
        }
        if len <= page_size() {
            return self.alloc_small(len);
        }
        if self.huge_ok.load(Ordering::Relaxed) {
            match self.alloc_huge(len)? {
                Some(r) => return Ok(r),
                None => self.huge_ok.store(false, Ordering::Relaxed),
            }
        } else if self.require_huge {
            return Err(self.fail(len, "hugepages are required and there are none"));
        }
        self.alloc_contiguous_4k(len)
    }
}

/// A DMA region: locked, physically contiguous memory.
#[derive(Debug)]
pub struct UioRegion {
    map: Mapping,
    bus: u64,
    len: usize,
}

impl UioRegion {
    fn check(&self, off: usize, len: usize) -> Result<(), DmaError> {
        if off.checked_add(len).is_some_and(|e| e <= self.len) {
            Ok(())
        } else {
            Err(DmaError::OutOfBounds {
                off,
                len,
                region_len: self.len,
            })
        }
    }
}

impl DmaRegion for UioRegion {
    fn bus_addr(&self) -> u64 {
        self.bus
    }

    fn len(&self) -> usize {
        self.len
    }

    fn read(&self, off: usize, buf: &mut [u8]) -> Result<(), DmaError> {
        self.check(off, buf.len())?;
        self.map.read_bytes(off, buf);
        Ok(())
    }

    fn write(&self, off: usize, data: &[u8]) -> Result<(), DmaError> {
        self.check(off, data.len())?;
        self.map.write_bytes(off, data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagemap_entries_decode() {
        assert_eq!(decode_pagemap(0), PageEntry::NotPresent);
        assert_eq!(decode_pagemap(1 << 62), PageEntry::Swapped);
        assert_eq!(decode_pagemap((1 << 63) | 0x1234), PageEntry::Frame(0x1234));
        // Soft-dirty (55), exclusive (56), file/shared (61) bits are not part of the frame.
        let e = (1u64 << 63) | (1 << 61) | (1 << 56) | (1 << 55) | 0x7_FFFF_FFFF;
        assert_eq!(decode_pagemap(e), PageEntry::Frame(0x7_FFFF_FFFF));
        // Present without privilege: frame 0.
        assert_eq!(decode_pagemap(1 << 63), PageEntry::Frame(0));
    }

    #[test]
    fn contiguous_runs_are_found() {
        assert_eq!(find_contiguous_run(&[5, 6, 7], 3), Some(0));
        assert_eq!(find_contiguous_run(&[9, 5, 6, 7, 1], 3), Some(1));
        assert_eq!(find_contiguous_run(&[9, 5, 6, 8, 9, 10, 11], 4), Some(3));
        assert_eq!(find_contiguous_run(&[7, 6, 5, 4], 2), None);
        assert_eq!(find_contiguous_run(&[1, 2], 3), None);
        assert_eq!(find_contiguous_run(&[1, 2], 0), None);
        assert_eq!(find_contiguous_run(&[4], 1), Some(0));
    }

    #[test]
    fn meminfo_hugepages_parse() {
        let m = "MemTotal:        8000000 kB\nHugePages_Total:      64\nHugePages_Free:       60\n\
                 HugePages_Rsvd:        0\nHugepagesize:       2048 kB\n";
        assert_eq!(
            HugepageInfo::parse(m),
            HugepageInfo {
                size: 2 << 20,
                free: 60
            }
        );
        assert_eq!(
            HugepageInfo::parse("MemTotal: 1 kB\n"),
            HugepageInfo { size: 0, free: 0 }
        );
    }

    #[test]
    fn no_hugepages_is_an_error_when_required() {
        let t = std::env::temp_dir().join(format!("microdriver-hal-proc-{}", std::process::id()));
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(
            t.join("meminfo"),
            "HugePages_Free: 0\nHugepagesize: 2048 kB\n",
        )
        .unwrap();
        let e = UioDma::new(&t, true).unwrap_err();
        assert!(matches!(e, HalError::NoHugepages { .. }), "{e}");
        assert!(e.to_string().contains("HugePages_Free 0"), "{e}");
        let _ = std::fs::remove_dir_all(&t);
    }

    /// Locked memory with real frames (needs root: skipped otherwise, but failed with
    /// `CI=true`).
    #[test]
    fn small_regions_are_locked_with_frames() {
        if rustix::process::geteuid().as_raw() != 0 {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true, but this test needs root (locked memory, /proc/self/pagemap frames)"
            );
            eprintln!("skipped: not root");
            return;
        }
        let dma = UioDma::new(Path::new("/proc"), false).unwrap();
        let r = dma.alloc(100).unwrap();
        assert_eq!(r.len(), 100);
        assert_ne!(r.bus_addr(), 0);
        assert_eq!(r.bus_addr() % 4096, 0);
        r.write(3, b"hello").unwrap();
        let mut b = [0u8; 7];
        r.read(2, &mut b).unwrap();
        assert_eq!(&b, b"\0hello\0");
        assert!(matches!(
            r.read(96, &mut b),
            Err(DmaError::OutOfBounds { .. })
        ));
        assert!(matches!(dma.alloc(0), Err(DmaError::InvalidLength(0))));
        // A larger region: from a hugepage or a contiguous run, or a clear failure.
        match dma.alloc(64 << 10) {
            Ok(big) => {
                big.write_u64(65528, 0x0102_0304_0506_0708).unwrap();
                assert_eq!(big.read_u64(65528).unwrap(), 0x0102_0304_0506_0708);
            }
            Err(e) => assert_eq!(e, DmaError::Exhausted),
        }
    }
}
