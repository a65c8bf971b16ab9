//! The `shm` transport: the slot area in a memfd mapped shared by both processes.
//!
//! This is one of the runtime's few unsafe modules: it maps memory and hands out
//! references to the atomic control words inside it. Data bytes are only ever copied
//! through raw pointers (never borrowed as `&[u8]`), because the other process may write
//! them at any moment; what is copied out is validated before use.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

use rustix::fs::{fstat, ftruncate, memfd_create, MemfdFlags};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

use super::area::{
    init_header, Area, AreaError, Word, HEADER_WORDS, LAYOUT_VERSION, MAGIC, SLOT_WORDS,
};
use super::Transport;

/// Largest slot count and capacity accepted (also from a region the peer set up).
const MAX_SLOTS: usize = 1024;
const MAX_CAPACITY: usize = 16 << 20;

/// A slot area in shared memory.
pub struct ShmTransport {
    fd: OwnedFd,
    base: NonNull<u8>,
    len: usize,
    slots: usize,
    capacity: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value until drop; the control
// words are atomics and data is only copied through raw pointers, so using it from several
// threads at once is as safe as using atomics and `ptr::copy` from several threads.
unsafe impl Send for ShmTransport {}
// SAFETY: as above: every access through `&self` is an atomic operation or a raw copy.
unsafe impl Sync for ShmTransport {}

/// Bytes of one slot: its control words, then its data right behind them, rounded up to
/// whole cache lines. The control words take the first half of the slot's first line, so
/// a small frame (a null call's) shares that line: a round trip moves one line each way.
fn stride(capacity: usize) -> usize {
    (SLOT_WORDS * 4 + capacity).next_multiple_of(64)
}

/// Where the first slot starts (after the header words, on a line of its own).
const SLOTS_OFFSET: usize = (HEADER_WORDS * 4).next_multiple_of(64);

/// The mapping's length for `slots` slots of `capacity` bytes.
fn geometry(slots: usize, capacity: usize) -> Result<usize, AreaError> {
    if slots == 0 || slots > MAX_SLOTS || capacity == 0 || capacity > MAX_CAPACITY {
        return Err(AreaError::Geometry(format!(
            "{slots} slots of {capacity} bytes (allowed: 1..={MAX_SLOTS} slots, 1..={MAX_CAPACITY} bytes)"
        )));
    }
    Ok((SLOTS_OFFSET + slots * stride(capacity)).next_multiple_of(4096))
}

impl ShmTransport {
    /// Creates a fresh region: `slots` slots of `capacity` bytes, the first `upcall_slots`
    /// for upcalls. The memfd is close-on-exec; hand it to the user half explicitly.
    pub fn create(slots: usize, upcall_slots: usize, capacity: usize) -> Result<Self, AreaError> {
        let len = geometry(slots, capacity)?;
        let fd =
            memfd_create("microdriver-slots", MemfdFlags::CLOEXEC).map_err(std::io::Error::from)?;
        ftruncate(&fd, len as u64).map_err(std::io::Error::from)?;
        let transport = Self::map(fd, slots, capacity)?;
        init_header(&transport, upcall_slots);
        Ok(transport)
    }

    /// Maps a region the kernel half created (the user half's side), checking that it is
    /// a slot area of this layout and that its geometry fits the file.
    pub fn attach(fd: OwnedFd) -> Result<Self, AreaError> {
        let size = fstat(&fd).map_err(std::io::Error::from)?.st_size;
        let size = usize::try_from(size).map_err(|_| AreaError::Foreign(format!("size {size}")))?;
        if size < 4096 {
            return Err(AreaError::Foreign(format!("{size} bytes is too small")));
        }
        // Map the header page first to read the geometry.
        let probe = Self {
            base: map(&fd, 4096)?,
            fd,
            len: 4096,
            slots: 0,
            capacity: 0,
        };
        use std::sync::atomic::Ordering::SeqCst;
        let magic = probe.header(Word::Magic).load(SeqCst);
        let version = probe.header(Word::Version).load(SeqCst);
        let slots = probe.header(Word::SlotCount).load(SeqCst) as usize;
        let capacity = probe.header(Word::Capacity).load(SeqCst) as usize;
        if magic != MAGIC || version != LAYOUT_VERSION {
            return Err(AreaError::Foreign(format!(
                "magic {magic:#x} version {version}, expected {MAGIC:#x} version {LAYOUT_VERSION}"
            )));
        }
        let len = geometry(slots, capacity)?;
        if len > size {
            return Err(AreaError::Foreign(format!(
                "geometry needs {len} bytes, the region has {size}"
            )));
        }
        let fd = probe.fd.try_clone()?;
        drop(probe);
        Self::map(fd, slots, capacity)
    }

    fn map(fd: OwnedFd, slots: usize, capacity: usize) -> Result<Self, AreaError> {
        let len = geometry(slots, capacity)?;
        Ok(Self {
            base: map(&fd, len)?,
            fd,
            len,
            slots,
            capacity,
        })
    }

    /// The memfd, to hand to the user half.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The control word at byte `offset` (4-aligned), if inside the mapping.
    fn word_at(&self, offset: usize) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) || offset.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: `offset + 4 <= len`, the mapping is page aligned and `offset` a multiple
        // of 4 so `base + offset` is 4-aligned, it lives as long as `self`, and `AtomicU32`
        // has the layout of a `u32` and permits shared mutation (by this and the other
        // process).
        Some(unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU32>() })
    }

    /// Byte offset of slot `slot`'s first control word.
    fn slot_offset(&self, slot: usize) -> usize {
        SLOTS_OFFSET + slot * stride(self.capacity)
    }

    fn data_ptr(&self, slot: usize, len: usize) -> Option<*mut u8> {
        if slot >= self.slots || len > self.capacity {
            return None;
        }
        let offset = self.slot_offset(slot) + SLOT_WORDS * 4;
        if offset + len > self.len {
            return None;
        }
        // SAFETY: `offset + len <= self.len`, inside the mapping.
        Some(unsafe { self.base.as_ptr().add(offset) })
    }
}

fn map(fd: &OwnedFd, len: usize) -> Result<NonNull<u8>, AreaError> {
    // SAFETY: a fresh shared mapping of our own fd at an address the kernel chooses; it
    // aliases no Rust object, and `Drop` unmaps it exactly once.
    let ptr = unsafe {
        mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )
    }
    .map_err(std::io::Error::from)?;
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| AreaError::Geometry("mmap returned null".into()))
}

impl Drop for ShmTransport {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping made in `map`, and no reference
        // into it outlives `self` (all accessors borrow `self`).
        let _ = unsafe { munmap(self.base.as_ptr().cast(), self.len) };
    }
}

impl Area for ShmTransport {
    fn slot_count(&self) -> usize {
        self.slots
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn header(&self, word: Word) -> &AtomicU32 {
        self.word_at(word as usize * 4)
            .expect("header words lie inside the first page of every mapping")
    }

    fn slot_word(&self, slot: usize, index: usize) -> Option<&AtomicU32> {
        if slot >= self.slots || index >= SLOT_WORDS {
            return None;
        }
        self.word_at(self.slot_offset(slot) + index * 4)
    }

    fn slot_words(&self, slot: usize) -> Option<&[AtomicU32]> {
        if slot >= self.slots {
            return None;
        }
        let offset = self.slot_offset(slot);
        // The last word is in the mapping (checked by `word_at`), so all before it are.
        let first = self.word_at(offset)?;
        self.word_at(offset + (SLOT_WORDS - 1) * 4)?;
        // SAFETY: the `SLOT_WORDS` words from `first` lie inside the mapping (first and
        // last checked just above), are 4-aligned and contiguous; `AtomicU32` has the
        // layout of a `u32` and permits shared mutation; the slice lives no longer than
        // `self`, which keeps the mapping.
        Some(unsafe { std::slice::from_raw_parts(std::ptr::from_ref(first), SLOT_WORDS) })
    }

    fn write_data(&self, slot: usize, bytes: &[u8]) -> bool {
        let Some(dst) = self.data_ptr(slot, bytes.len()) else {
            return false;
        };
        // SAFETY: `dst..dst+len` is inside the mapping (checked by `data_ptr`) and does not
        // overlap `bytes` (private memory). The other process may touch the same bytes; we
        // never form a reference to them, so that is a value race the protocol resolves,
        // not aliasing UB in this process.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        true
    }

    fn read_data(&self, slot: usize, len: usize, out: &mut Vec<u8>) -> bool {
        let Some(src) = self.data_ptr(slot, len) else {
            return false;
        };
        out.clear();
        out.reserve(len);
        // SAFETY: `src..src+len` is inside the mapping; `out` has capacity for `len` bytes
        // and is private. Bytes are copied, never borrowed, and validated by the caller.
        unsafe {
            std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), len);
            out.set_len(len);
        }
        true
    }
}

impl Transport for ShmTransport {}
