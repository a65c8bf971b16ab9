//! The net-device statistics (Linux's `rtnl_link_stats64`, what `ip -s link` shows),
//! derived as Linux's `e1000_update_stats` derives them: packets and bytes from the
//! driver's own counters (the kernel half's hot path), errors from the accumulated
//! hardware counters (SDM 13.7).

use microdriver_rt::Marshal;

use crate::adapter::Adapter;
use crate::error::DriverError;
use crate::regs::{
    ALGNERRC, CEXTERR, COLC, CRCERRS, ECOL, LATECOL, MPC, MPRC, ROC, RUC, RXERRC, STAT_REGS, TNCRS,
};
use crate::shared::HotStats;
use crate::stats::{self, HwStats};

/// The standard net-device counters the e1000 fills in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct NetStats {
    /// Frames delivered to the stack.
    pub rx_packets: u64,
    /// Frames the hardware sent (TSO segments counted).
    pub tx_packets: u64,
    /// Bytes delivered to the stack.
    pub rx_bytes: u64,
    /// Bytes the hardware sent.
    pub tx_bytes: u64,
    /// Receive errors: RX data (RXERRC), CRC, alignment, undersize, oversize and carrier
    /// extension errors.
    pub rx_errors: u64,
    /// Transmit errors: excessive and late collisions.
    pub tx_errors: u64,
    /// Frames received that nobody took.
    pub rx_dropped: u64,
    /// Packets refused at transmit because the part could not send them as described.
    pub tx_dropped: u64,
    /// Multicast frames received (MPRC).
    pub multicast: u64,
    /// Collisions (COLC).
    pub collisions: u64,
    /// Frames of illegal length: undersize (RUC) plus oversize (ROC).
    pub rx_length_errors: u64,
    /// Frames with a bad CRC (CRCERRS).
    pub rx_crc_errors: u64,
    /// Frames with alignment errors (ALGNERRC; 10/100 Mb/s only).
    pub rx_frame_errors: u64,
    /// Frames missed because the receive FIFO was full (MPC).
    pub rx_missed_errors: u64,
    /// Packets abandoned after 16 collisions (ECOL).
    pub tx_aborted_errors: u64,
    /// Transmissions without carrier sense (TNCRS).
    pub tx_carrier_errors: u64,
    /// Late collisions (LATECOL).
    pub tx_window_errors: u64,
}

/// The accumulated total of the counter at `off` (0 for a register that is not in
/// [`STAT_REGS`]; every register used below is, as a test checks).
fn hw(h: &HwStats, off: u32) -> u64 {
    STAT_REGS
        .iter()
        .position(|r| r.off == off)
        .and_then(|i| h.counters.get(i).copied())
        .unwrap_or(0)
}

impl NetStats {
    /// Derives the net-device counters from the accumulated hardware counters and the hot
    /// path's.
    ///
    /// `tx_carrier_errors` is TNCRS in either duplex: Linux zeroes it in full duplex only
    /// on the 82543, whose count there is wrong, and the SDM (13.7.12) calls the counter
    /// valid in full duplex on these parts.
    pub fn derive(h: &HwStats, hot: &HotStats) -> Self {
        let length = hw(h, RUC) + hw(h, ROC);
        let (ecol, latecol) = (hw(h, ECOL), hw(h, LATECOL));
        Self {
            rx_packets: hot.rx_packets,
            tx_packets: hot.tx_packets,
            rx_bytes: hot.rx_bytes,
            tx_bytes: hot.tx_bytes,
            rx_errors: hw(h, RXERRC) + hw(h, CRCERRS) + hw(h, ALGNERRC) + length + hw(h, CEXTERR),
            tx_errors: ecol + latecol,
            rx_dropped: hot.rx_dropped,
            tx_dropped: hot.tx_dropped,
            multicast: hw(h, MPRC),
            collisions: hw(h, COLC),
            rx_length_errors: length,
            rx_crc_errors: hw(h, CRCERRS),
            rx_frame_errors: hw(h, ALGNERRC),
            rx_missed_errors: hw(h, MPC),
            tx_aborted_errors: ecol,
            tx_carrier_errors: hw(h, TNCRS),
            tx_window_errors: latecol,
        }
    }
}

/// The net-device statistics now: the hardware counters are brought up to date
/// ([`stats::update`]) and the hot path's counters snapshotted.
pub fn get(a: &mut Adapter) -> Result<NetStats, DriverError> {
    stats::update(a)?;
    let hot = a.shared()?.hot_stats()?;
    Ok(NetStats::derive(&a.stats, &hot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_used_is_accumulated() {
        for off in [
            ALGNERRC, CEXTERR, COLC, CRCERRS, ECOL, LATECOL, MPC, MPRC, ROC, RUC, RXERRC, TNCRS,
        ] {
            assert!(STAT_REGS.iter().any(|r| r.off == off), "{off:#x}");
        }
    }

    #[test]
    fn derivations_follow_linux() {
        let mut h = HwStats::default();
        let set = |h: &mut HwStats, off: u32, v: u64| {
            let i = STAT_REGS
                .iter()
                .position(|r| r.off == off)
                .expect("counter");
            h.counters[i] = v;
        };
        for (off, v) in [
            (RXERRC, 1),
            (CRCERRS, 2),
            (ALGNERRC, 4),
            (RUC, 8),
            (ROC, 16),
            (CEXTERR, 32),
            (ECOL, 64),
            (LATECOL, 128),
            (TNCRS, 256),
        ] {
            set(&mut h, off, v);
        }
        let hot = HotStats {
            rx_packets: 7,
            rx_bytes: 700,
            tx_dropped: 3,
            ..HotStats::default()
        };
        let n = NetStats::derive(&h, &hot);
        assert_eq!(n.rx_errors, 1 + 2 + 4 + 8 + 16 + 32);
        assert_eq!(n.rx_length_errors, 24);
        assert_eq!(n.tx_errors, 64 + 128);
        assert_eq!((n.tx_aborted_errors, n.tx_window_errors), (64, 128));
        assert_eq!(n.tx_carrier_errors, 256);
        assert_eq!((n.rx_packets, n.rx_bytes, n.tx_dropped), (7, 700, 3));
    }
}
