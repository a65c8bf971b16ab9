//! The `local` transport: the slot area on the heap, for both halves as threads of one
//! process. Under loom its words are loom atomics and its data cells loom cells, so the
//! model checker sees every access the protocol makes.

use super::area::{Area, Word, HEADER_WORDS, SLOT_WORDS};
use super::Transport;
use crate::sync::atomic::AtomicU32;
use crate::sync::Mutex;

/// A heap-backed slot area.
pub struct LocalTransport {
    words: Box<[AtomicU32]>,
    /// Per slot data. A lock per slot keeps same-process access race-free even when a
    /// (test) user half misbehaves; the protocol never holds it across a wait.
    data: Box<[Mutex<Vec<u8>>]>,
    slots: usize,
    capacity: usize,
}

impl LocalTransport {
    /// `slots` slots of `capacity` bytes, the first `upcall_slots` for upcalls.
    pub fn new(slots: usize, upcall_slots: usize, capacity: usize) -> Self {
        let words: Box<[AtomicU32]> = (0..HEADER_WORDS + slots * SLOT_WORDS)
            .map(|_| AtomicU32::new(0))
            .collect();
        let data = (0..slots).map(|_| Mutex::new(Vec::new())).collect();
        let transport = Self {
            words,
            data,
            slots,
            capacity,
        };
        super::area::init_header(&transport, upcall_slots);
        transport
    }
}

impl Area for LocalTransport {
    fn slot_count(&self) -> usize {
        self.slots
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn header(&self, word: Word) -> &AtomicU32 {
        &self.words[word as usize]
    }

    fn slot_word(&self, slot: usize, index: usize) -> Option<&AtomicU32> {
        if slot >= self.slots || index >= SLOT_WORDS {
            return None;
        }
        self.words.get(HEADER_WORDS + slot * SLOT_WORDS + index)
    }

    fn slot_words(&self, slot: usize) -> Option<&[AtomicU32]> {
        if slot >= self.slots {
            return None;
        }
        let first = HEADER_WORDS + slot * SLOT_WORDS;
        self.words.get(first..first + SLOT_WORDS)
    }

    fn write_data(&self, slot: usize, bytes: &[u8]) -> bool {
        if bytes.len() > self.capacity {
            return false;
        }
        let Some(cell) = self.data.get(slot) else {
            return false;
        };
        let mut data = cell.lock();
        data.clear();
        data.extend_from_slice(bytes);
        true
    }

    fn read_data(&self, slot: usize, len: usize, out: &mut Vec<u8>) -> bool {
        let Some(cell) = self.data.get(slot) else {
            return false;
        };
        let data = cell.lock();
        let Some(bytes) = data.get(..len) else {
            return false;
        };
        out.clear();
        out.extend_from_slice(bytes);
        true
    }
}

impl Transport for LocalTransport {}
