//! The `delay` transport: any transport plus a fixed latency on every crossing, to measure
//! how a driver behaves when the user half is slow to reach (the paper's Figure 4).

use std::time::{Duration, Instant};

use super::area::{Area, Word};
use super::Transport;
use crate::sync::atomic::AtomicU32;

/// Wraps `inner`, spending `latency` before each crossing.
pub struct DelayTransport<T> {
    inner: T,
    latency: Duration,
}

impl<T> DelayTransport<T> {
    /// Adds `latency` to every crossing over `inner`.
    pub fn new(inner: T, latency: Duration) -> Self {
        Self { inner, latency }
    }

    /// The injected latency.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

impl<T: Area> Area for DelayTransport<T> {
    fn slot_count(&self) -> usize {
        self.inner.slot_count()
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
    fn header(&self, word: Word) -> &AtomicU32 {
        self.inner.header(word)
    }
    fn slot_word(&self, slot: usize, index: usize) -> Option<&AtomicU32> {
        self.inner.slot_word(slot, index)
    }
    fn slot_words(&self, slot: usize) -> Option<&[AtomicU32]> {
        self.inner.slot_words(slot)
    }
    fn write_data(&self, slot: usize, bytes: &[u8]) -> bool {
        self.inner.write_data(slot, bytes)
    }
    fn read_data(&self, slot: usize, len: usize, out: &mut Vec<u8>) -> bool {
        self.inner.read_data(slot, len, out)
    }
}

impl<T: Transport> Transport for DelayTransport<T> {
    fn before_crossing(&self) {
        self.inner.before_crossing();
        if self.latency.is_zero() {
            return;
        }
        // Short delays spin (a sleep's own granularity is ~50 us); long ones sleep.
        if self.latency < Duration::from_micros(200) {
            let until = Instant::now() + self.latency;
            while Instant::now() < until {
                crate::sync::spin_hint();
            }
        } else {
            std::thread::sleep(self.latency);
        }
    }
}
