//! Reading the driver and device: `-i`, `-S`, the 64-bit counters, `-e` and `-d`.

use super::*;

/// ethtool `-i`.
pub(super) fn drvinfo(inner: &Inner) -> Result<Reply, String> {
    let nd = &inner.nd;
    let d = nd.with_adapter(|a| ethtool::get_drvinfo(a)).map_err(drv)?;
    Ok(Reply::DrvInfo(DrvInfo {
        driver: d.driver,
        version: d.version,
        part: d.part,
        bus_info: inner.bus_info.clone(),
        n_stats: d.n_stats,
        testinfo_len: d.testinfo_len,
        regdump_len: d.regdump_len,
        eedump_len: d.eedump_len,
        pba: d.pba,
    }))
}

/// ethtool `-S`.
pub(super) fn stats(inner: &Inner) -> Result<Reply, String> {
    let nd = &inner.nd;
    let names = ethtool::get_strings().map_err(drv)?;
    let values = nd.with_adapter(ethtool::get_stats).map_err(drv)?;
    Ok(Reply::Stats {
        stats: names.into_iter().zip(values).collect(),
    })
}

/// The interface counters (`ndo_get_stats64`).
pub(super) fn stats64(inner: &Inner) -> Result<Reply, String> {
    let nd = &inner.nd;
    let s = nd.with_adapter(ethtool::get_stats64).map_err(drv)?;
    Ok(Reply::Stats64(protocol::NetStats {
        rx_packets: s.rx_packets,
        tx_packets: s.tx_packets,
        rx_bytes: s.rx_bytes,
        tx_bytes: s.tx_bytes,
        rx_errors: s.rx_errors,
        tx_errors: s.tx_errors,
        rx_dropped: s.rx_dropped,
        tx_dropped: s.tx_dropped,
        multicast: s.multicast,
        collisions: s.collisions,
        rx_length_errors: s.rx_length_errors,
        rx_crc_errors: s.rx_crc_errors,
        rx_frame_errors: s.rx_frame_errors,
        rx_missed_errors: s.rx_missed_errors,
        tx_aborted_errors: s.tx_aborted_errors,
        tx_carrier_errors: s.tx_carrier_errors,
        tx_window_errors: s.tx_window_errors,
    }))
}

/// ethtool `-e`.
pub(super) fn eeprom(inner: &Inner, offset: u32, length: Option<u32>) -> Result<Reply, String> {
    let nd = &inner.nd;
    let data = nd
        .with_adapter(|a| {
            let size = ethtool::get_drvinfo(a)?.eedump_len;
            let len = length.unwrap_or(size.saturating_sub(offset));
            ethtool::get_eeprom(a, offset, len)
        })
        .map_err(drv)?;
    Ok(Reply::Eeprom { offset, data })
}

/// ethtool `-d`.
pub(super) fn regs(inner: &Inner) -> Result<Reply, String> {
    let nd = &inner.nd;
    let dump = nd.with_adapter(|a| ethtool::get_regs(a)).map_err(drv)?;
    // MAC registers carry their BAR0 offset, PHY registers their MDIO number.
    let regs = ethtool::regdump_layout()
        .into_iter()
        .zip(dump.values)
        .map(|((src, name), value)| Register {
            offset: match src {
                ethtool::DumpSource::Mac(off) | ethtool::DumpSource::Phy(off) => off,
            },
            name: name.to_string(),
            value,
        })
        .collect();
    Ok(Reply::Regs { regs })
}
