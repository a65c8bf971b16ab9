//! Link settings and wake-on-LAN: `ethtool` (no option), `-s`, `-r`.

use super::*;

/// ethtool with no option: the link settings and the wake modes.
pub(super) fn link_settings(inner: &Inner) -> Result<Reply, String> {
    let nd = &inner.nd;
    let (s, w, mac) = nd
        .with_adapter(|a| {
            let s = ethtool::get_link_ksettings(a)?;
            Ok((s, ethtool::get_wol(a)?, a.mac))
        })
        .map_err(drv)?;
    Ok(Reply::Link(LinkInfo {
        supported: mode_names(s.supported),
        advertised: mode_names(s.request.advertise),
        autoneg: s.request.autoneg,
        link_up: s.link_up,
        speed: s.speed,
        full_duplex: s.full_duplex,
        mac,
        lp_advertised: lp_mode_names(s.lp_advertising),
        lp_pause: s.lp_advertising & ethtool::LP_PAUSE != 0,
        lp_asym_pause: s.lp_advertising & ethtool::LP_ASYM_PAUSE != 0,
        lp_autoneg: s.lp_advertising & ethtool::LP_AUTONEG != 0,
        mdix_ctrl: s.request.mdix,
        mdix: s.mdix,
        wol_supported: w.supported,
        wol: w.wolopts,
    }))
}

/// ethtool `-s`.
pub(super) fn set_link(
    inner: &Inner,
    speed: Option<u32>,
    full_duplex: Option<bool>,
    autoneg: Option<bool>,
    mdix: Option<Mdix>,
    wolopts: Option<u32>,
) -> Result<Reply, String> {
    // The current settings are the adapter's (the kernel half's authoritative
    // copy): reading them crosses nothing, so only the change itself can fail
    // crossing the split and make `configure` reset the device. The wake modes
    // are checked before the link is touched, so a bad `wol` changes nothing.
    configure(inner, "-s", |a| {
        if let Some(w) = wolopts {
            wol::check(a.info.mac_type, w)?;
        }
        let link_given = speed.is_some() || full_duplex.is_some() || autoneg.is_some();
        if link_given || mdix.is_some() {
            let req = link_request(
                a.conf.link,
                speed,
                full_duplex,
                autoneg,
                mdix.map(mdix_code),
            )?;
            ethtool::set_link_ksettings(a, &req)?;
        }
        match wolopts {
            Some(w) => ethtool::set_wol(a, w),
            None => Ok(()),
        }
    })
    .map_err(drv)?;
    Ok(Reply::Done)
}

/// ethtool `-r`.
pub(super) fn nway_reset(inner: &Inner) -> Result<Reply, String> {
    configure(inner, "-r", |a| ethtool::nway_reset(a)).map_err(drv)?;
    Ok(Reply::Done)
}

/// ethtool's `eth_tp_mdix_ctrl` code for an `mdix` setting.
fn mdix_code(m: Mdix) -> u8 {
    match m {
        Mdix::Auto => phy::ETH_TP_MDI_AUTO,
        Mdix::On => phy::ETH_TP_MDI_X,
        Mdix::Off => phy::ETH_TP_MDI,
    }
}

/// Builds a link request the way `ethtool -s` reads its arguments: a speed or duplex with
/// `autoneg on` narrows the advertisement to that mode; without autoneg it forces it.
///
/// `mdix` (ethtool's `eth_tp_mdix_ctrl` code) replaces the crossover setting; without it
/// the current one is kept, except that forcing speed/duplex returns it to automatic (a
/// fixed MDI or MDI-X needs auto-negotiation, [`phy::check_request`]). With only `mdix`
/// given, the rest of the settings stay as they are.
fn link_request(
    cur: LinkRequest,
    speed: Option<u32>,
    full_duplex: Option<bool>,
    autoneg: Option<bool>,
    mdix: Option<u8>,
) -> Result<LinkRequest, DriverError> {
    if speed.is_none() && full_duplex.is_none() && autoneg.is_none() {
        return Ok(LinkRequest {
            mdix: mdix.unwrap_or(cur.mdix),
            ..cur
        });
    }
    if let Some(s) = speed {
        if ![10, 100, 1000].contains(&s) {
            return Err(DriverError::invalid(
                "speed",
                format!("{s}: the 8254x copper PHY runs at 10, 100 or 1000 Mb/s"),
            ));
        }
    }
    let autoneg = autoneg.unwrap_or(if speed.is_some() || full_duplex.is_some() {
        false
    } else {
        cur.autoneg
    });
    let speed_v = speed.unwrap_or(cur.speed);
    let fd = full_duplex.unwrap_or(cur.full_duplex);
    if autoneg {
        let advertise = match (speed, full_duplex) {
            (None, None) => phy::ADV_ALL,
            _ => mode_bits(speed, full_duplex),
        };
        if advertise == 0 {
            return Err(DriverError::invalid(
                "advertised modes",
                "1000 Mb/s half duplex is not supported: use duplex full".to_string(),
            ));
        }
        Ok(LinkRequest {
            autoneg: true,
            advertise,
            speed: speed_v,
            full_duplex: fd,
            mdix: mdix.unwrap_or(cur.mdix),
        })
    } else {
        if speed_v == 1000 {
            return Err(DriverError::invalid(
                "speed",
                "1000 Mb/s cannot be forced on copper (IEEE 802.3 needs auto-negotiation for 1000BASE-T): use autoneg on"
                    .to_string(),
            ));
        }
        Ok(LinkRequest {
            autoneg: false,
            advertise: cur.advertise,
            speed: speed_v,
            full_duplex: fd,
            mdix: mdix.unwrap_or(phy::ETH_TP_MDI_AUTO),
        })
    }
}

const MODES: [(u32, u32, bool, &str); 5] = [
    (phy::ADV_10_HALF, 10, false, "10baseT/Half"),
    (phy::ADV_10_FULL, 10, true, "10baseT/Full"),
    (phy::ADV_100_HALF, 100, false, "100baseT/Half"),
    (phy::ADV_100_FULL, 100, true, "100baseT/Full"),
    (phy::ADV_1000_FULL, 1000, true, "1000baseT/Full"),
];

fn mode_bits(speed: Option<u32>, full_duplex: Option<bool>) -> u32 {
    MODES
        .iter()
        .filter(|(_, s, fd, _)| {
            speed.is_none_or(|v| v == *s) && full_duplex.is_none_or(|v| v == *fd)
        })
        .fold(0, |acc, (bit, ..)| acc | bit)
}

fn mode_names(bits: u32) -> Vec<String> {
    MODES
        .iter()
        .filter(|(bit, ..)| bits & bit != 0)
        .map(|(.., name)| (*name).to_string())
        .collect()
}

/// A partner's link modes, in ethtool's order (it may offer 1000baseT/Half, which the
/// parts do not).
fn lp_mode_names(bits: u32) -> Vec<String> {
    let mut names = mode_names(bits & !phy::ADV_1000_FULL);
    if bits & ethtool::LP_1000_HALF != 0 {
        names.push("1000baseT/Half".into());
    }
    if bits & phy::ADV_1000_FULL != 0 {
        names.push("1000baseT/Full".into());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_requests_follow_ethtool() {
        let cur = LinkRequest::default();
        let r = link_request(cur, Some(100), Some(false), None, None).expect("forced 100 half");
        assert!(!r.autoneg);
        assert_eq!((r.speed, r.full_duplex), (100, false));
        let r = link_request(cur, Some(100), None, Some(true), None).expect("autoneg 100");
        assert!(r.autoneg);
        assert_eq!(r.advertise, phy::ADV_100_HALF | phy::ADV_100_FULL);
        let r = link_request(cur, None, None, Some(true), None).expect("autoneg all");
        assert_eq!(r.advertise, phy::ADV_ALL);
        assert!(link_request(cur, Some(1000), None, Some(false), None).is_err());
        assert!(link_request(cur, Some(1000), Some(false), Some(true), None).is_err());
        assert!(link_request(cur, Some(42), None, None, None).is_err());
        // mdix alone changes only the crossover; forcing speed without it goes back to
        // automatic crossover; an explicit fixed mode with forced speed is kept for the
        // driver to refuse.
        let narrowed = LinkRequest {
            advertise: phy::ADV_100_FULL,
            ..cur
        };
        let r = link_request(narrowed, None, None, None, Some(phy::ETH_TP_MDI_X)).expect("mdix");
        assert_eq!(
            r,
            LinkRequest {
                mdix: phy::ETH_TP_MDI_X,
                ..narrowed
            }
        );
        let fixed = LinkRequest {
            mdix: phy::ETH_TP_MDI,
            ..cur
        };
        let r = link_request(fixed, Some(100), None, Some(false), None).expect("forced");
        assert_eq!(r.mdix, phy::ETH_TP_MDI_AUTO);
        let r = link_request(fixed, Some(100), None, Some(true), None).expect("autoneg 100");
        assert_eq!(r.mdix, phy::ETH_TP_MDI);
        let r = link_request(cur, Some(100), None, Some(false), Some(phy::ETH_TP_MDI_X))
            .expect("built");
        assert!(phy::check_request(&r).is_err(), "fixed MDI-X needs autoneg");
        assert_eq!(
            mode_names(phy::ADV_ALL),
            [
                "10baseT/Half",
                "10baseT/Full",
                "100baseT/Half",
                "100baseT/Full",
                "1000baseT/Full"
            ]
        );
    }
}
