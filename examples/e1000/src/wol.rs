//! Wake-on-LAN (SDM 6.4 "Wakeup", 13.6 wake-up registers): which wake modes each part
//! supports, arming the wake-up filters at shutdown, powering the PHY down when nothing
//! needs it, and the wake-up status found at probe.
//!
//! The modes are ethtool's `WAKE_*` bits (their values in `linux/ethtool.h`); each maps to
//! a pre-defined filter of WUFC:
//!
//! | ethtool        | WUFC   | wakes on                                              |
//! |----------------|--------|-------------------------------------------------------|
//! | [`WAKE_PHY`]   | `LNKC` | a link status change                                  |
//! | [`WAKE_UCAST`] | `EX`   | a frame to one of the valid receive addresses (RA)    |
//! | [`WAKE_MCAST`] | `MC`   | a multicast frame the multicast table accepts         |
//! | [`WAKE_BCAST`] | `BC`   | a broadcast frame                                     |
//! | [`WAKE_MAGIC`] | `MAG`  | a magic packet naming `RA[0]`                          |
//!
//! Every packet filter applies after the standard address filter (SDM 6.4.2), so arming
//! also programs the receive filters the chosen modes need.

use crate::adapter::{Adapter, MacType};
use crate::config;
use crate::eeprom::EepromConfig;
use crate::error::DriverError;
use crate::phy;
use crate::regs::phy::{bmcr, BMCR};
use crate::regs::{ctrl, manc, rctl, wuc, wufc, CTRL, MANC, RCTL, WUC, WUFC, WUS};

/// Wake on a PHY link change (`WAKE_PHY` in `linux/ethtool.h`).
pub const WAKE_PHY: u32 = 1 << 0;
/// Wake on a frame to our unicast address (`WAKE_UCAST`).
pub const WAKE_UCAST: u32 = 1 << 1;
/// Wake on multicast (`WAKE_MCAST`).
pub const WAKE_MCAST: u32 = 1 << 2;
/// Wake on broadcast (`WAKE_BCAST`).
pub const WAKE_BCAST: u32 = 1 << 3;
/// Wake on an ARP request (`WAKE_ARP`); not offered.
pub const WAKE_ARP: u32 = 1 << 4;
/// Wake on a magic packet (`WAKE_MAGIC`).
pub const WAKE_MAGIC: u32 = 1 << 5;
/// Wake on a magic packet with a password (`WAKE_MAGICSECURE`); the 8254x has none.
pub const WAKE_MAGICSECURE: u32 = 1 << 6;
/// Wake on a user-defined filter (`WAKE_FILTER`); not offered.
pub const WAKE_FILTER: u32 = 1 << 7;

/// ethtool mode, WUFC filter, the letter `ethtool` shows for it.
const MODES: [(u32, u32, &str); 5] = [
    (WAKE_PHY, wufc::LNKC, "p (phy)"),
    (WAKE_UCAST, wufc::EX, "u (unicast)"),
    (WAKE_MCAST, wufc::MC, "m (multicast)"),
    (WAKE_BCAST, wufc::BC, "b (broadcast)"),
    (WAKE_MAGIC, wufc::MAG, "g (magic)"),
];

/// The wake modes `mac` supports. The 82540EM and 82544GC wake on everything the table
/// above lists. The 82545EM copper adapters are built without wake-up support (no
/// auxiliary power to the part; Linux's e1000 lists 8086:100F among the devices that do
/// not support WoL at all), so none.
pub fn supported(mac: MacType) -> u32 {
    match mac {
        MacType::I82540EM | MacType::I82544GC => {
            WAKE_PHY | WAKE_UCAST | WAKE_MCAST | WAKE_BCAST | WAKE_MAGIC
        }
        MacType::I82545EM => 0,
    }
}

/// The Wake-on-LAN modes a freshly probed adapter starts with: a magic packet when the
/// EEPROM enables APM wake-up ([`EepromConfig::apm_enable`], whose word depends on the
/// part) and the part supports wake-up at all, as Linux's e1000 does; none otherwise.
pub fn default_from_eeprom(mac: MacType, ee: &EepromConfig) -> u32 {
    if ee.apm_enable {
        supported(mac) & WAKE_MAGIC
    } else {
        0
    }
}

/// The names of the `WAKE_*` bits in `bits` (unknown bits in hex), for messages.
pub fn names(bits: u32) -> String {
    let known = [
        (WAKE_PHY, "phy"),
        (WAKE_UCAST, "unicast"),
        (WAKE_MCAST, "multicast"),
        (WAKE_BCAST, "broadcast"),
        (WAKE_ARP, "arp"),
        (WAKE_MAGIC, "magic"),
        (WAKE_MAGICSECURE, "magicsecure"),
        (WAKE_FILTER, "filter"),
    ];
    let mut out: Vec<String> = known
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| (*n).to_string())
        .collect();
    let rest = bits & !known.iter().fold(0, |acc, (b, _)| acc | b);
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}

/// Checks `wolopts` against what `mac` supports.
pub fn check(mac: MacType, wolopts: u32) -> Result<(), DriverError> {
    let sup = supported(mac);
    let bad = wolopts & !sup;
    if bad == 0 {
        return Ok(());
    }
    let offered: Vec<&str> = MODES
        .iter()
        .filter(|(m, _, _)| sup & m != 0)
        .map(|(_, _, l)| *l)
        .collect();
    let offered = if offered.is_empty() {
        "none: this part has no wake-up support".to_string()
    } else {
        offered.join(", ")
    };
    Err(DriverError::invalid(
        "Wake-on-LAN modes",
        format!(
            "{} ({bad:#x}) not supported by the {}; supported: {offered}",
            names(bad),
            mac.name()
        ),
    ))
}

/// The WUFC filters for the `WAKE_*` modes in `wolopts`.
pub fn wufc_for(wolopts: u32) -> u32 {
    MODES
        .iter()
        .filter(|(m, _, _)| wolopts & m != 0)
        .fold(0, |acc, (_, f, _)| acc | f)
}

/// The `WAKE_*` modes whose filters are set in a WUFC or WUS value.
pub fn modes_of(filters: u32) -> u32 {
    MODES
        .iter()
        .filter(|(_, f, _)| filters & f != 0)
        .fold(0, |acc, (m, _, _)| acc | m)
}

/// The WUC value that arms `wufc_bits` on `mac`: PME_EN (the ACPI wake-up, SDM 6.4.2) for
/// any filter; for a magic packet also APME (the APM wake-up, SDM 6.4.1, which needs no
/// PMCSR.PME_En from the OS), and on the 82540 and later APMPME so that an APM wake-up
/// asserts PME# (the 82544 signals it on its APM_WAKEUP pin instead).
pub fn wuc_for(mac: MacType, wufc_bits: u32) -> u32 {
    if wufc_bits == 0 {
        return 0;
    }
    let mut v = wuc::PME_EN;
    if wufc_bits & wufc::MAG != 0 {
        v |= wuc::APME;
        if mac != MacType::I82544GC {
            v |= wuc::APMPME;
        }
    }
    v
}

/// The RCTL bits the standard address filter needs for `wufc_bits` on `mac` (SDM 6.4.3):
/// BAM for broadcast wake-up; MPE for multicast wake-up (the multicast groups are in the
/// MTA, and all-multicast lets every group through the address filter, as Linux does);
/// BAM for a magic packet on the 82544, which (unlike the 82540 and later) accepts a
/// broadcast magic packet only with BAM.
pub fn rctl_for(mac: MacType, wufc_bits: u32) -> u32 {
    let mut v = 0;
    if wufc_bits & wufc::BC != 0 || (wufc_bits & wufc::MAG != 0 && mac == MacType::I82544GC) {
        v |= rctl::BAM;
    }
    if wufc_bits & wufc::MC != 0 {
        v |= rctl::MPE;
    }
    v
}

/// Whether the driver may power the PHY down on `mac` when nothing needs it: the 82540 and
/// later with copper (the 82544 keeps its PHY up, as in Linux's e1000), and not while the
/// manageability firmware talks over SMBus (MANC.SMBUS_EN), which needs the link.
fn phy_power_down_allowed(a: &Adapter) -> Result<bool, DriverError> {
    if a.info.mac_type == MacType::I82544GC {
        return Ok(false);
    }
    Ok(a.rd(MANC)? & manc::SMBUS_EN == 0)
}

/// Arms wake-up for the modes in `a.conf.wol` (the interface is down):
///
/// 1. the receive filters: `RA[0]` already holds the address (magic packet, directed
///    exact), [`config::set_rx_mode`] programs `RA[1..]` and the MTA from the configured
///    lists, and RCTL gets [`rctl_for`]. The receiver's DMA stays off (RCTL.EN clear, no
///    rings): the wake-up logic filters frames as the PHY delivers them (SDM 6.4.2);
/// 2. on the 82540 and later CTRL.ADVD3WUC and CTRL.EN_PHY_PWR_MGMT (advertise wake-up
///    from D3cold; let the PHY save power while keeping the link). On the 82544 those bits
///    are software-definable pins and are left alone;
/// 3. WUFC with the filters, then WUC ([`wuc_for`]);
/// 4. the PHY powered (BMCR.POWER_DOWN clear): the filters need the link.
pub fn arm(a: &Adapter) -> Result<(), DriverError> {
    let mac = a.info.mac_type;
    check(mac, a.conf.wol)?;
    let filters = wufc_for(a.conf.wol);
    config::set_rx_mode(a)?;
    a.rmw(RCTL, 0, rctl_for(mac, filters))?;
    if mac != MacType::I82544GC {
        a.rmw(CTRL, 0, ctrl::ADVD3WUC | ctrl::EN_PHY_PWR_MGMT)?;
    }
    let b = phy::read(a, BMCR)?;
    if b & bmcr::POWER_DOWN != 0 {
        phy::write(a, BMCR, b & !bmcr::POWER_DOWN)?;
    }
    a.wr(WUFC, filters)?;
    a.wr(WUC, wuc_for(mac, filters))?;
    Ok(())
}

/// Turns wake-up off: no filters, no PME, no APM wake-up.
pub fn disarm(a: &Adapter) -> Result<(), DriverError> {
    a.wr(WUFC, 0)?;
    a.wr(WUC, 0)
}

/// Powers the PHY down (BMCR.POWER_DOWN, IEEE 802.3 22.2.4.1.5) where that is allowed (see
/// [`phy_power_down_allowed`]); the link drops. Returns whether it did. Probe's link setup
/// powers it up again (BMCR is rewritten without POWER_DOWN).
pub fn power_down_phy(a: &Adapter) -> Result<bool, DriverError> {
    if !phy_power_down_allowed(a)? {
        return Ok(false);
    }
    let b = phy::read(a, BMCR)?;
    phy::write(a, BMCR, b | bmcr::POWER_DOWN)?;
    std::thread::sleep(std::time::Duration::from_millis(1));
    Ok(true)
}

/// Powers the PHY up (clears BMCR.POWER_DOWN if [`power_down_phy`] set it) and gives it
/// time to come out of power-down before it is configured.
pub fn power_up_phy(a: &Adapter) -> Result<(), DriverError> {
    let b = phy::read(a, BMCR)?;
    if b & bmcr::POWER_DOWN != 0 {
        phy::write(a, BMCR, b & !bmcr::POWER_DOWN)?;
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(())
}

/// Readies the device to power off: wake-up armed for `a.conf.wol` with the PHY kept up,
/// or, with no wake modes, wake-up off and the PHY powered down.
pub fn prepare_power_off(a: &Adapter) -> Result<(), DriverError> {
    if a.conf.wol != 0 {
        arm(a)
    } else {
        disarm(a)?;
        power_down_phy(a).map(|_| ())
    }
}

/// Reads the wake-up status left from before this probe (what woke the system, SDM
/// 13.6.3), clears it (write 1 to clear, so later wake-ups are recorded again) and turns
/// wake-up off until it is armed again. Returns the WUS value found.
pub fn take_wake_status(a: &Adapter) -> Result<u32, DriverError> {
    let wus = a.rd(WUS)?;
    if wus != 0 {
        a.wr(WUS, wus)?;
        tracing::info!(
            dev = a.dev.0,
            wus = format_args!("{wus:#x}"),
            woken_by = %names(modes_of(wus)),
            "woken by a wake-up event"
        );
    }
    disarm(a)?;
    Ok(wus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_to_filters_and_back() {
        let all = WAKE_PHY | WAKE_UCAST | WAKE_MCAST | WAKE_BCAST | WAKE_MAGIC;
        assert_eq!(
            wufc_for(all),
            wufc::LNKC | wufc::EX | wufc::MC | wufc::BC | wufc::MAG
        );
        assert_eq!(modes_of(wufc_for(all)), all);
        assert_eq!(wufc_for(WAKE_MAGIC | WAKE_BCAST), wufc::MAG | wufc::BC);
        // Filters without an ethtool mode (ARP, IPv4, flexible) map to nothing.
        assert_eq!(modes_of(wufc::ARP | wufc::IPV4 | wufc::FLX_MASK), 0);
    }

    #[test]
    fn support_per_part() {
        for m in [MacType::I82540EM, MacType::I82544GC] {
            for mode in [WAKE_PHY, WAKE_UCAST, WAKE_MCAST, WAKE_BCAST, WAKE_MAGIC] {
                assert!(check(m, mode).is_ok());
            }
            for bad in [WAKE_ARP, WAKE_MAGICSECURE, WAKE_FILTER, 1 << 12] {
                let e = check(m, WAKE_MAGIC | bad).expect_err("unsupported");
                assert!(e.to_string().contains(&names(bad)), "{e}");
            }
        }
        assert_eq!(supported(MacType::I82545EM), 0);
        let e = check(MacType::I82545EM, WAKE_MAGIC).expect_err("no WoL");
        assert!(e.to_string().contains("magic"), "{e}");
        assert!(e.to_string().contains("no wake-up support"), "{e}");
        assert!(check(MacType::I82545EM, 0).is_ok());
    }

    #[test]
    fn wuc_and_rctl_per_part() {
        assert_eq!(wuc_for(MacType::I82540EM, 0), 0);
        assert_eq!(wuc_for(MacType::I82540EM, wufc::BC), wuc::PME_EN);
        assert_eq!(
            wuc_for(MacType::I82540EM, wufc::MAG),
            wuc::PME_EN | wuc::APME | wuc::APMPME
        );
        assert_eq!(
            wuc_for(MacType::I82544GC, wufc::MAG),
            wuc::PME_EN | wuc::APME
        );
        assert_eq!(rctl_for(MacType::I82540EM, wufc::MAG), 0);
        assert_eq!(rctl_for(MacType::I82544GC, wufc::MAG), rctl::BAM);
        assert_eq!(rctl_for(MacType::I82540EM, wufc::BC), rctl::BAM);
        assert_eq!(rctl_for(MacType::I82540EM, wufc::MC), rctl::MPE);
        assert_eq!(rctl_for(MacType::I82540EM, wufc::EX | wufc::LNKC), 0);
    }

    #[test]
    fn names_name_unknown_bits() {
        assert_eq!(names(0), "none");
        assert_eq!(names(WAKE_MAGIC | WAKE_BCAST), "broadcast, magic");
        assert_eq!(names(1 << 9), "0x200");
    }
}
