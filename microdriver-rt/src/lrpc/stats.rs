//! Per-entry call counters and latency percentiles (what `e1000ctl status` shows).
//!
//! Recording is on every call's path, so it takes no lock and allocates nothing: a fixed
//! open-addressed table of per-entry atomic counters and histograms. Its size bounds the
//! memory a user half naming made-up entries could make the kernel half spend; calls to
//! entries beyond it are counted in [`CallStats::untracked`] only.

use std::collections::HashMap;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::time::Duration;

use crate::sync::Mutex;

/// Latency buckets: bucket `i` holds calls that took less than `2^i` microseconds.
const BUCKETS: usize = 32;
/// Distinct entries counted per endpoint (a power of two).
const TABLE: usize = 256;
/// Marks a used table key (entry ids are any `u32`, 0 included).
const USED: u64 = 1 << 32;

/// Counters of one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryCounters {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    buckets: Vec<u64>,
}

impl EntryCounters {
    /// The latency below which `quantile` (0..=1) of the calls finished (bucket upper
    /// bound, so within a factor of two).
    pub fn percentile(&self, quantile: f64) -> Duration {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let target = ((total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= target {
                return Duration::from_micros(1u64 << i);
            }
        }
        Duration::from_micros(1u64 << (BUCKETS - 1))
    }
}

/// One entry's live counters.
struct Counters {
    /// `USED | id`, or 0 while the row is free; set once.
    key: AtomicU64,
    // Calls are the sum of the buckets: one atomic add per call, not two.
    errors: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Counters {
    fn new() -> Self {
        Counters {
            key: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn snapshot(&self) -> EntryCounters {
        // Errors first, with acquire: a call counted there (with release, after its
        // bucket) is then in the buckets too, so a snapshot never shows more errors than
        // calls.
        let errors = self.errors.load(Acquire);
        let buckets: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        EntryCounters {
            calls: buckets.iter().sum(),
            errors,
            buckets,
        }
    }
}

/// Counters of a whole endpoint.
pub struct CallStats {
    table: Box<[Counters]>,
    untracked: AtomicU64,
    rejected: Mutex<Vec<String>>,
    rejected_count: AtomicU64,
}

impl Default for CallStats {
    fn default() -> Self {
        CallStats {
            table: (0..TABLE).map(|_| Counters::new()).collect(),
            untracked: AtomicU64::new(0),
            rejected: Mutex::new(Vec::new()),
            rejected_count: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for CallStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallStats")
            .field("entries", &self.entries())
            .field("untracked", &self.untracked())
            .field("rejected", &self.rejected())
            .finish()
    }
}

impl CallStats {
    /// The row of `entry`, claiming a free one on its first call; `None` if the table is
    /// full.
    fn row(&self, entry: u32) -> Option<&Counters> {
        let key = USED | u64::from(entry);
        let start = (entry.wrapping_mul(0x9e37_79b1) >> (32 - TABLE.trailing_zeros())) as usize;
        for probe in 0..TABLE {
            let row = &self.table[(start + probe) % TABLE];
            match row.key.load(Relaxed) {
                k if k == key => return Some(row),
                0 => match row.key.compare_exchange(0, key, Relaxed, Relaxed) {
                    Ok(_) => return Some(row),
                    Err(k) if k == key => return Some(row),
                    Err(_) => continue,
                },
                _ => continue,
            }
        }
        None
    }

    pub(crate) fn record(&self, entry: u32, took: Duration, ok: bool) {
        let Some(row) = self.row(entry) else {
            self.untracked.fetch_add(1, Relaxed);
            return;
        };
        let micros = took.as_micros().max(1) as u64;
        let bucket = (64 - micros.leading_zeros() as usize).min(BUCKETS - 1);
        row.buckets[bucket].fetch_add(1, Relaxed);
        if !ok {
            row.errors.fetch_add(1, Release);
        }
    }

    /// Counts a rejected frame (keeps the last 32 reasons).
    pub(crate) fn reject(&self, reason: String) {
        self.rejected_count.fetch_add(1, Relaxed);
        let mut reasons = self.rejected.lock();
        if reasons.len() >= 32 {
            reasons.remove(0);
        }
        reasons.push(reason);
    }

    /// Frames rejected so far.
    pub fn rejected(&self) -> u64 {
        self.rejected_count.load(Relaxed)
    }

    /// The most recent rejection reasons.
    pub fn recent_rejections(&self) -> Vec<String> {
        self.rejected.lock().clone()
    }

    /// Calls not counted per entry because the table of entries was full.
    pub fn untracked(&self) -> u64 {
        self.untracked.load(Relaxed)
    }

    /// Counters per entry id.
    pub fn entries(&self) -> HashMap<u32, EntryCounters> {
        self.table
            .iter()
            .filter_map(|row| {
                let key = row.key.load(Relaxed);
                (key & USED != 0).then(|| (key as u32, row.snapshot()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_entry_and_bounds_the_table() {
        let stats = CallStats::default();
        stats.record(0, Duration::from_micros(3), true);
        stats.record(7, Duration::from_micros(3), false);
        stats.record(7, Duration::from_micros(100), true);
        let entries = stats.entries();
        assert_eq!(entries[&0].calls, 1);
        assert_eq!((entries[&7].calls, entries[&7].errors), (2, 1));
        assert_eq!(entries[&7].percentile(0.5), Duration::from_micros(4));
        for id in 0..(TABLE as u32 + 10) {
            stats.record(id.wrapping_mul(7919), Duration::ZERO, true);
        }
        assert_eq!(stats.entries().len(), TABLE);
        assert!(stats.untracked() > 0);
    }
}
