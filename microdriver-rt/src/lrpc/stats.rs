//! Per-entry call counters and latency percentiles (what `e1000ctl status` shows).

use std::collections::HashMap;
use std::time::Duration;

use crate::sync::Mutex;

/// Latency buckets: bucket `i` holds calls that took less than `2^i` microseconds.
const BUCKETS: usize = 32;

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
    fn record(&mut self, took: Duration, ok: bool) {
        self.calls += 1;
        if !ok {
            self.errors += 1;
        }
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
        }
        let micros = took.as_micros().max(1) as u64;
        let bucket = (64 - micros.leading_zeros() as usize).min(BUCKETS - 1);
        self.buckets[bucket] += 1;
    }

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

/// Counters of a whole endpoint.
#[derive(Debug, Default)]
pub struct CallStats {
    entries: Mutex<HashMap<u32, EntryCounters>>,
    rejected: Mutex<Vec<String>>,
    rejected_count: crate::sync::atomic::AtomicU64,
}

impl CallStats {
    pub(crate) fn record(&self, entry: u32, took: Duration, ok: bool) {
        self.entries
            .lock()
            .entry(entry)
            .or_default()
            .record(took, ok);
    }

    /// Counts a rejected frame (keeps the last 32 reasons).
    pub(crate) fn reject(&self, reason: String) {
        self.rejected_count
            .fetch_add(1, crate::sync::atomic::Ordering::Relaxed);
        let mut reasons = self.rejected.lock();
        if reasons.len() >= 32 {
            reasons.remove(0);
        }
        reasons.push(reason);
    }

    /// Frames rejected so far.
    pub fn rejected(&self) -> u64 {
        self.rejected_count
            .load(crate::sync::atomic::Ordering::Relaxed)
    }

    /// The most recent rejection reasons.
    pub fn recent_rejections(&self) -> Vec<String> {
        self.rejected.lock().clone()
    }

    /// Counters per entry id.
    pub fn entries(&self) -> HashMap<u32, EntryCounters> {
        self.entries.lock().clone()
    }
}
