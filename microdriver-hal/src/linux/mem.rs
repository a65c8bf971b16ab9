//! Owned memory mappings (BARs through `resource0` or a VFIO region, and anonymous or
//! hugetlb memory for DMA) and volatile access to them: one of the HAL's two `unsafe`
//! modules (the other is `vfio::sys`, the ioctls).
//!
//! A [`Mapping`] owns `len` bytes at `ptr` from `mmap` until it is dropped (`munmap`).
//! Every access method checks its bounds and returns `None`/`false` instead of touching
//! memory outside the mapping, so the rest of the crate is safe code.

use std::ffi::c_void;
use std::io;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};

use rustix::mm::{self, MapFlags, ProtFlags};

/// An owned, page-aligned memory mapping.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory (or device registers) owned by this value; all access
// goes through volatile reads and writes with bounds checks, which are sound from any thread
// (concurrent writers race on the contents, as device DMA does, but never on validity).
unsafe impl Send for Mapping {}
// SAFETY: as for Send; `&Mapping` only allows volatile, bounds-checked access.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` (a PCI `resource0` file) shared, read and write.
    pub fn map_shared(fd: impl AsFd, len: usize) -> io::Result<Self> {
        Self::map_shared_at(fd, len, 0)
    }

    /// Maps `len` bytes of `fd` from `offset` (page-aligned: a VFIO region's offset in the
    /// device file) shared, read and write.
    pub fn map_shared_at(fd: impl AsFd, len: usize, offset: u64) -> io::Result<Self> {
        if len == 0 || !offset.is_multiple_of(page_size() as u64) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: a fresh mapping chosen by the kernel (null hint): it aliases no Rust
        // object; we own it until Drop unmaps it.
        let ptr = unsafe {
            mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                offset,
            )
        }?;
        Self::from_raw(ptr, len)
    }

    /// Maps `len` zeroed anonymous bytes, from hugetlb pages if `huge` (then `len` must be
    /// a multiple of the hugepage size). The memory is not yet locked.
    pub fn anonymous(len: usize, huge: bool) -> io::Result<Self> {
        let mut flags = MapFlags::PRIVATE;
        if huge {
            flags |= MapFlags::HUGETLB;
        }
        // SAFETY: a fresh anonymous mapping chosen by the kernel: it aliases nothing.
        let ptr = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                flags,
            )
        }?;
        Self::from_raw(ptr, len)
    }

    fn from_raw(ptr: *mut c_void, len: usize) -> io::Result<Self> {
        NonNull::new(ptr.cast::<u8>())
            .map(|ptr| Self { ptr, len })
            .ok_or_else(|| io::Error::other("mmap returned null"))
    }

    /// Asks for transparent hugepages (best effort: physically contiguous 2 MiB runs).
    pub fn advise_hugepage(&self) {
        // SAFETY: madvise on our own mapping; MADV_HUGEPAGE changes no contents.
        let _ = unsafe {
            mm::madvise(
                self.ptr.as_ptr().cast(),
                self.len,
                mm::Advice::LinuxHugepage,
            )
        };
    }

    /// Locks the mapping in memory (faulting every page in, writable), so its frames stay
    /// allocated while we hold it.
    pub fn lock(&self) -> io::Result<()> {
        // SAFETY: mlock on our own mapping; it changes no contents.
        unsafe { mm::mlock(self.ptr.as_ptr().cast(), self.len) }?;
        Ok(())
    }

    /// Keeps `[off, off + len)` (page-aligned) and unmaps the rest.
    pub fn keep(self, off: usize, len: usize) -> io::Result<Self> {
        let page = page_size();
        let end = off
            .checked_add(len)
            .filter(|e| {
                *e <= self.len && off.is_multiple_of(page) && len.is_multiple_of(page) && len > 0
            })
            .ok_or_else(|| io::Error::other("Mapping::keep: range not page-aligned or outside"))?;
        let base = self.ptr.as_ptr();
        let total = self.len;
        std::mem::forget(self);
        // SAFETY: both ranges are page-aligned parts of the mapping we owned (and no longer
        // hand out); no references into them exist.
        unsafe {
            if off > 0 {
                mm::munmap(base.cast(), off)?;
            }
            if end < total {
                mm::munmap(base.add(end).cast(), total - end)?;
            }
        }
        // SAFETY: `off < total`, so the pointer stays inside the original mapping.
        Self::from_raw(unsafe { base.add(off) }.cast(), len)
    }

    /// The mapping's virtual address (for the kernel: pagemap lookups, VFIO DMA maps).
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    fn in_bounds(&self, off: usize, n: usize) -> bool {
        off.checked_add(n).is_some_and(|e| e <= self.len)
    }

    /// Volatile 32-bit read at `off` (must be 4-aligned and inside), for registers.
    pub fn read32(&self, off: usize) -> Option<u32> {
        if !off.is_multiple_of(4) || !self.in_bounds(off, 4) {
            return None;
        }
        // SAFETY: in bounds and aligned (the mapping is page-aligned); volatile because it is
        // a device register or DMA memory the device writes.
        let v = unsafe { self.ptr.as_ptr().add(off).cast::<u32>().read_volatile() };
        fence(Ordering::SeqCst);
        Some(v)
    }

    /// Volatile 32-bit write at `off` (must be 4-aligned and inside). Earlier memory
    /// writes (descriptors) are ordered before it.
    pub fn write32(&self, off: usize, v: u32) -> bool {
        if !off.is_multiple_of(4) || !self.in_bounds(off, 4) {
            return false;
        }
        fence(Ordering::SeqCst);
        // SAFETY: in bounds and aligned, as in read32.
        unsafe { self.ptr.as_ptr().add(off).cast::<u32>().write_volatile(v) };
        true
    }

    /// Volatile copy of `buf.len()` bytes at `off` into `buf` (8-byte words where aligned).
    pub fn read_bytes(&self, off: usize, buf: &mut [u8]) -> bool {
        if !self.in_bounds(off, buf.len()) {
            return false;
        }
        fence(Ordering::SeqCst);
        let mut i = 0;
        while i < buf.len() {
            let at = off + i;
            if at.is_multiple_of(8) && buf.len() - i >= 8 {
                // SAFETY: `at + 8 <= len` (checked above) and 8-aligned.
                let w = unsafe { self.ptr.as_ptr().add(at).cast::<u64>().read_volatile() };
                buf[i..i + 8].copy_from_slice(&w.to_ne_bytes());
                i += 8;
            } else {
                // SAFETY: `at < len`.
                buf[i] = unsafe { self.ptr.as_ptr().add(at).read_volatile() };
                i += 1;
            }
        }
        true
    }

    /// Volatile copy of `data` to `off` (8-byte words where aligned).
    pub fn write_bytes(&self, off: usize, data: &[u8]) -> bool {
        if !self.in_bounds(off, data.len()) {
            return false;
        }
        let mut i = 0;
        while i < data.len() {
            let at = off + i;
            if at.is_multiple_of(8) && data.len() - i >= 8 {
                let mut w = [0u8; 8];
                w.copy_from_slice(&data[i..i + 8]);
                // SAFETY: `at + 8 <= len` (checked above) and 8-aligned.
                unsafe {
                    self.ptr
                        .as_ptr()
                        .add(at)
                        .cast::<u64>()
                        .write_volatile(u64::from_ne_bytes(w))
                };
                i += 8;
            } else {
                // SAFETY: `at < len`.
                unsafe { self.ptr.as_ptr().add(at).write_volatile(data[i]) };
                i += 1;
            }
        }
        fence(Ordering::SeqCst);
        true
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own the mapping and nothing borrows it any more (accessors hand out
        // copies only).
        if let Err(e) = unsafe { mm::munmap(self.ptr.as_ptr().cast(), self.len) } {
            tracing::error!(error = %e, "munmap failed");
        }
    }
}

/// The base page size.
pub fn page_size() -> usize {
    rustix::param::page_size()
}
