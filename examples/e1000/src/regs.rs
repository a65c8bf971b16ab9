//! The 8254x register map.
//!
//! Offsets, bitfields and descriptor layouts are the `e1000-regs` crate's, which the device
//! model uses too (docs/ARCHITECTURE.md says why one map rather than two). This module adds
//! what only a driver needs: the interrupt causes it enables, the
//! receive buffer-size encodings it programs, the statistics it accumulates (with their
//! names), and the register set of the ethtool register dump.

pub use e1000_regs::*;

/// The interrupt causes the driver enables while the interface is up (SDM 13.4, ICR):
/// transmit write-back, link status change, receive sequence error, receive minimum
/// threshold, receiver overrun and the receive timer.
pub const IMS_ENABLE_MASK: u32 =
    icr::TXDW | icr::LSC | icr::RXSEQ | icr::RXDMT0 | icr::RXO | icr::RXT0;

/// The receive buffer sizes the part has and the RCTL bits (BSIZE, BSEX) that select them
/// (SDM 13.4.22).
pub const RX_BUFFER_SIZES: [(usize, u32); 7] = [
    (2048, 0),
    (1024, 1 << rctl::BSIZE_SHIFT),
    (512, 2 << rctl::BSIZE_SHIFT),
    (256, 3 << rctl::BSIZE_SHIFT),
    (16384, rctl::BSEX | (1 << rctl::BSIZE_SHIFT)),
    (8192, rctl::BSEX | (2 << rctl::BSIZE_SHIFT)),
    (4096, rctl::BSEX | (3 << rctl::BSIZE_SHIFT)),
];

/// The RCTL bits that select a receive buffer of `len` bytes, or `None` if the part has no
/// such size.
pub fn rctl_buffer_bits(len: usize) -> Option<u32> {
    let (_, bits) = RX_BUFFER_SIZES.iter().find(|(l, _)| *l == len)?;
    Some(*bits)
}

/// One statistics register the driver accumulates (SDM 13.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatReg {
    /// The name reported to ethtool.
    pub name: &'static str,
    /// The register (for 64-bit counters, the low half; the high half is at `+4`).
    pub off: u32,
    /// Whether the counter is a 64-bit low/high pair.
    pub wide: bool,
}

const fn s(name: &'static str, off: u32) -> StatReg {
    StatReg {
        name,
        off,
        wide: false,
    }
}

const fn w(name: &'static str, off: u32) -> StatReg {
    StatReg {
        name,
        off,
        wide: true,
    }
}

/// Every statistics register of the 8254x, in register order (SDM 13.7).
pub const STAT_REGS: &[StatReg] = &[
    s("crc_errors", CRCERRS),
    s("align_errors", ALGNERRC),
    s("symbol_errors", SYMERRS),
    s("rx_errors", RXERRC),
    s("missed_packets", MPC),
    s("single_collisions", SCC),
    s("excessive_collisions", ECOL),
    s("multiple_collisions", MCC),
    s("late_collisions", LATECOL),
    s("collisions", COLC),
    s("defers", DC),
    s("tx_no_crs", TNCRS),
    s("sequence_errors", SEC),
    s("carrier_ext_errors", CEXTERR),
    s("rx_length_errors", RLEC),
    s("xon_rx", XONRXC),
    s("xon_tx", XONTXC),
    s("xoff_rx", XOFFRXC),
    s("xoff_tx", XOFFTXC),
    s("fc_rx_unsupported", FCRUC),
    s("rx_64", PRC64),
    s("rx_65_127", PRC127),
    s("rx_128_255", PRC255),
    s("rx_256_511", PRC511),
    s("rx_512_1023", PRC1023),
    s("rx_1024_max", PRC1522),
    s("good_rx_packets", GPRC),
    s("broadcast_rx", BPRC),
    s("multicast_rx", MPRC),
    s("good_tx_packets", GPTC),
    w("good_rx_octets", GORCL),
    w("good_tx_octets", GOTCL),
    s("rx_no_buffer", RNBC),
    s("rx_undersize", RUC),
    s("rx_fragments", RFC),
    s("rx_oversize", ROC),
    s("rx_jabber", RJC),
    s("mgmt_rx", MGTPRC),
    s("mgmt_dropped", MGTPDC),
    s("mgmt_tx", MGTPTC),
    w("total_rx_octets", TORL),
    w("total_tx_octets", TOTL),
    s("total_rx_packets", TPR),
    s("total_tx_packets", TPT),
    s("tx_64", PTC64),
    s("tx_65_127", PTC127),
    s("tx_128_255", PTC255),
    s("tx_256_511", PTC511),
    s("tx_512_1023", PTC1023),
    s("tx_1024_max", PTC1522),
    s("multicast_tx", MPTC),
    s("broadcast_tx", BPTC),
    s("tso_contexts", TSCTC),
    s("tso_context_failures", TSCTFC),
];

/// Number of accumulated hardware statistics.
pub const N_STAT_REGS: usize = 54;

/// The registers of the ethtool register dump, in dump order, with their names: general,
/// interrupt mask, receive, transmit and flow control (not ICR, whose read would clear
/// pending causes, and not the statistics, which clear on read).
pub const DUMP_REGS: &[(u32, &str)] = &[
    (CTRL, "CTRL"),
    (STATUS, "STATUS"),
    (EECD, "EECD"),
    (CTRL_EXT, "CTRL_EXT"),
    (MDIC, "MDIC"),
    (FCAL, "FCAL"),
    (FCAH, "FCAH"),
    (FCT, "FCT"),
    (VET, "VET"),
    (FCTTV, "FCTTV"),
    (LEDCTL, "LEDCTL"),
    (PBA, "PBA"),
    (ITR, "ITR"),
    (IMS, "IMS"),
    (RCTL, "RCTL"),
    (FCRTL, "FCRTL"),
    (FCRTH, "FCRTH"),
    (RDBAL, "RDBAL"),
    (RDBAH, "RDBAH"),
    (RDLEN, "RDLEN"),
    (RDH, "RDH"),
    (RDT, "RDT"),
    (RDTR, "RDTR"),
    (RXDCTL, "RXDCTL"),
    (RADV, "RADV"),
    (RXCSUM, "RXCSUM"),
    (TCTL, "TCTL"),
    (TIPG, "TIPG"),
    (TDBAL, "TDBAL"),
    (TDBAH, "TDBAH"),
    (TDLEN, "TDLEN"),
    (TDH, "TDH"),
    (TDT, "TDT"),
    (TIDV, "TIDV"),
    (TXDCTL, "TXDCTL"),
    (TADV, "TADV"),
    (WUC, "WUC"),
    (WUFC, "WUFC"),
    (MANC, "MANC"),
];

/// The 802.3x flow-control constants (SDM 13.4 FCAL/FCAH/FCT): the reserved multicast
/// address 01:80:C2:00:00:01 and the MAC-control ethertype.
pub mod flow {
    /// FCAL value.
    pub const FCAL_VALUE: u32 = 0x00C2_8001;
    /// FCAH value.
    pub const FCAH_VALUE: u32 = 0x0000_0100;
    /// FCT value.
    pub const FCT_VALUE: u32 = 0x0000_8808;
    /// Pause time sent in XOFF frames, in 512-bit-time quanta.
    pub const PAUSE_TIME: u32 = 0xFFFF;
    /// XON enable in FCRTL.
    pub const FCRTL_XONE: u32 = 1 << 31;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_table_is_complete_and_ordered() {
        assert_eq!(STAT_REGS.len(), N_STAT_REGS);
        assert!(STAT_REGS.windows(2).all(|p| p[0].off < p[1].off));
        assert!(STAT_REGS
            .iter()
            .all(|r| (STATS_BASE..STATS_END).contains(&r.off)));
        for lo in STATS_64BIT_LOW {
            assert!(STAT_REGS.iter().any(|r| r.off == lo && r.wide));
        }
    }

    #[test]
    fn buffer_bits_round_trip() {
        for len in [256, 512, 1024, 2048, 4096, 8192, 16384] {
            let bits = rctl_buffer_bits(len).expect("a valid size");
            assert_eq!(rctl::buffer_size(bits), Some(len));
        }
        assert_eq!(rctl_buffer_bits(3000), None);
    }
}
