//! Statistics: the hardware's clear-on-read counters accumulated into 64-bit totals, and
//! the ethtool statistics (names and values).

use microdriver_rt::upcall;
use microdriver_rt::Marshal;

use crate::adapter::Adapter;
use crate::error::DriverError;

use crate::regs::{N_STAT_REGS, STAT_REGS};

/// The hardware counters, accumulated (index `i` is [`STAT_REGS`]`[i]`).
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct HwStats {
    /// The totals.
    pub counters: Vec<u64>,
}

impl Default for HwStats {
    fn default() -> Self {
        Self {
            counters: vec![0; N_STAT_REGS],
        }
    }
}

impl HwStats {
    /// The total of the counter named `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        STAT_REGS
            .iter()
            .position(|r| r.name == name)
            .and_then(|i| self.counters.get(i).copied())
    }
}

/// Reads every statistics register (which clears it) and adds it to the totals. 64-bit
/// counters are read low half first: reading the high half clears the pair (SDM 13.7).
#[upcall]
pub fn update(a: &mut Adapter) -> Result<(), DriverError> {
    if a.stats.counters.len() != N_STAT_REGS {
        a.stats = HwStats::default();
    }
    // One crossing for every register, low halves before high ones as the hardware wants.
    let offs: Vec<u32> = STAT_REGS
        .iter()
        .flat_map(|r| std::iter::once(r.off).chain(r.wide.then_some(r.off + 4)))
        .collect();
    let mut values = a.rd_many(offs)?.into_iter();
    let short_batch = || DriverError::invalid("statistics read", "fewer values than registers");
    for (i, r) in STAT_REGS.iter().enumerate() {
        let mut v = u64::from(values.next().ok_or_else(short_batch)?);
        if r.wide {
            v |= u64::from(values.next().ok_or_else(short_batch)?) << 32;
        }
        a.stats.counters[i] = a.stats.counters[i].saturating_add(v);
    }
    Ok(())
}

/// Names of the software (hot-path and watchdog) statistics, in [`values`] order.
const SW_NAMES: &[&str] = &[
    "tx_packets",
    "tx_bytes",
    "tx_busy",
    "tx_restart_queue",
    "tx_dropped",
    "rx_packets",
    "rx_bytes",
    "rx_errors_dropped",
    "rx_no_listener",
    "rx_csum_good",
    "rx_csum_bad",
    "interrupts",
    "polls",
    "tx_timeout_count",
    "resets",
    "link_changes",
    crate::phy::IDLE_ERRORS_STAT,
];

/// The ethtool statistics names: software counters, then every hardware counter.
pub fn strings() -> Vec<String> {
    SW_NAMES
        .iter()
        .map(|s| (*s).to_string())
        .chain(STAT_REGS.iter().map(|r| format!("hw_{}", r.name)))
        .collect()
}

/// The ethtool statistics values, in [`strings`] order (the hardware counters are brought
/// up to date first).
#[upcall]
pub fn values(a: &mut Adapter) -> Result<Vec<u64>, DriverError> {
    update(a)?;
    let h = a.shared()?.hot_stats()?;
    let mut v = vec![
        h.tx_packets,
        h.tx_bytes,
        h.tx_busy,
        h.tx_restart_queue,
        h.tx_dropped,
        h.rx_packets,
        h.rx_bytes,
        h.rx_errors,
        h.rx_dropped,
        h.rx_csum_good,
        h.rx_csum_bad,
        h.interrupts,
        h.polls,
        a.wd.tx_timeouts,
        a.wd.resets,
        a.link.changes,
        a.phy.idle_errors,
    ];
    v.extend_from_slice(&a.stats.counters);
    Ok(v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_and_values_line_up() {
        assert_eq!(super::SW_NAMES.len(), 17);
        assert_eq!(super::strings().len(), 17 + crate::regs::N_STAT_REGS);
    }
}
