//! Checking parameters against the probed part and turning them into the adapter's
//! configuration.

use super::*;

/// The ring sizes a part takes (Linux: 80..=256 before the 82544, 80..=4096 from it on; all
/// supported parts are 82544 or later).
pub fn descriptor_range(mac: MacType) -> (u32, u32) {
    match mac {
        MacType::I82540EM | MacType::I82545EM | MacType::I82544GC => (MIN_RING, MAX_RING),
    }
}

/// Whether the PHY with id `phy_id` is an Intel IGP PHY (the only kind with Smart Power
/// Down: 82541/82547 parts). The supported parts have Marvell M88 PHYs.
pub fn phy_has_smart_power_down(phy_id: u32) -> bool {
    // Intel's IGP01E1000 (0x02A80380) is the PHY family Linux enables Smart Power Down on.
    const IGP01E1000_ID: u32 = 0x02A8_0380;
    phy_id & !0xF == IGP01E1000_ID
}

/// Checks the parameters for the part `info` describes: every value against its range and
/// the part's limits (the 82544GC has no TADV, RADV or ITR; Smart Power Down needs an IGP
/// PHY), and the link parameters against each other. Returns notes on parameters that were
/// accepted but do nothing on this part (an "off" value for a feature it does not have).
pub fn check(p: &Params, info: &DeviceInfo) -> Result<Vec<String>, DriverError> {
    check_ranges(p)?;
    let mut notes = Vec::new();
    let part = info.mac_type.name();
    let (min, max) = descriptor_range(info.mac_type);
    for param in [Param::TxDescriptors, Param::RxDescriptors] {
        if let Some(v) = param.get(p) {
            if !(min..=max).contains(&v) {
                return Err(bad(
                    param,
                    v,
                    format!("the {part} takes a multiple of 8 in {min}..={max}"),
                ));
            }
        }
    }
    if !info.mac_type.has_itr() {
        for (param, reg) in [
            (Param::TxAbsIntDelay, "TADV"),
            (Param::RxAbsIntDelay, "RADV"),
            (Param::InterruptThrottleRate, "ITR"),
        ] {
            match param.get(p) {
                Some(0) => notes.push(format!(
                    "{}=0: the {part} has no {reg} (82540 and later only); nothing to turn off",
                    param.name()
                )),
                Some(v) => {
                    return Err(bad(
                        param,
                        v,
                        format!(
                            "the {part} has no {reg} register (82540 and later only): remove \
                             {} or set it to 0",
                            param.name()
                        ),
                    ))
                }
                None => {}
            }
        }
    }
    match p.smart_power_down {
        Some(1) if !phy_has_smart_power_down(info.phy_id) => {
            return Err(bad(
                Param::SmartPowerDownEnable,
                1,
                format!(
                    "Smart Power Down needs an Intel IGP PHY (82541/82547); this {part} has a \
                     Marvell M88 PHY ({:#010x}): remove SmartPowerDownEnable or set it to 0",
                    info.phy_id
                ),
            ))
        }
        Some(0) => notes.push(format!(
            "SmartPowerDownEnable=0: not applicable to the {part}'s M88 PHY (it has no Smart \
             Power Down); nothing to turn off"
        )),
        _ => {}
    }
    if let Some(v) = p.copybreak {
        notes.push(format!(
            "copybreak={v}: recorded; this driver copies every received frame out of its ring, \
             so no frame is handed up in its DMA buffer whatever the length"
        ));
    }
    Ok(notes)
}

/// The part-independent checks: each value's range, and the link parameters together
/// (Linux ignores `AutoNeg` given with `Speed` or `Duplex`, and falls back to 1000/full
/// for 1000/half; both are errors here).
pub(super) fn check_ranges(p: &Params) -> Result<(), DriverError> {
    for param in Param::ALL {
        if let Some(v) = param.get(p) {
            param.check_value(v)?;
        }
    }
    let (speed, duplex) = (p.speed.unwrap_or(0), p.duplex.unwrap_or(0));
    if let Some(an) = p.autoneg {
        if speed != 0 || duplex != 0 {
            return Err(bad(
                Param::AutoNeg,
                an,
                format!(
                    "AutoNeg chooses the advertised modes only while Speed and Duplex are 0 or \
                     not given (here Speed={speed}, Duplex={duplex}): drop AutoNeg, or Speed \
                     and Duplex"
                ),
            ));
        }
    }
    if speed == 1000 && duplex == DUPLEX_HALF {
        return Err(bad(
            Param::Duplex,
            duplex,
            "1000 Mb/s half duplex is not supported: use Duplex=2 or 0 with Speed=1000",
        ));
    }
    Ok(())
}

/// Microseconds for a delay of `units` of 1.024 us, rounded up so that the driver's
/// conversion back to units (rounding down) gives `units` again.
pub fn delay_units_to_usecs(units: u32) -> u32 {
    (u64::from(units) * 1024).div_ceil(1000) as u32
}

/// Applies the parameters to `conf` (after checking their ranges and combination; on an
/// error `conf` is untouched):
///
/// * `TxDescriptors`/`RxDescriptors`: the ring sizes;
/// * `Speed`/`Duplex`/`AutoNeg` as Linux's e1000 reads them: both 0 (or not given)
///   auto-negotiates, advertising `AutoNeg` (default all); a duplex alone auto-negotiates
///   that duplex's modes (half: 10 and 100; full: 10, 100 and 1000); 10 or 100 alone
///   auto-negotiates both duplexes at that speed; 10 or 100 with a duplex forces them;
///   1000 (alone or with full duplex) auto-negotiates 1000/full only, as 1000BASE-T needs
///   auto-negotiation (IEEE 802.3 clause 40);
/// * `FlowControl`: the pause directions (advertised when auto-negotiating);
/// * `XsumRX`: receive checksum offload;
/// * the delays, in microseconds, and `InterruptThrottleRate`: 0 fixes ITR at 0 (no
///   throttling), 1 turns adaptive throttling on with every traffic class's rate (up to
///   the lowest-latency rate), 3 adaptive with the lowest-latency class held at the
///   low-latency rate, 100..=100000 a fixed rate;
/// * `copybreak`.
///
/// `SmartPowerDownEnable` changes nothing (see [`check`]).
pub fn apply(p: &Params, conf: &mut Config) -> Result<(), DriverError> {
    check_ranges(p)?;
    let mut c = conf.clone();
    if let Some(n) = p.tx_descriptors {
        c.tx_ring = n;
    }
    if let Some(n) = p.rx_descriptors {
        c.rx_ring = n;
    }
    if p.speed.is_some() || p.duplex.is_some() || p.autoneg.is_some() {
        let link = &mut c.link;
        let (speed, duplex) = (p.speed.unwrap_or(0), p.duplex.unwrap_or(0));
        let autoneg = |link: &mut crate::adapter::LinkRequest, adv: u32| {
            link.autoneg = true;
            link.advertise = adv;
        };
        match (speed, duplex) {
            (0, 0) => autoneg(link, p.autoneg.unwrap_or(ADV_ALL)),
            (0, DUPLEX_HALF) => autoneg(link, ADV_10_HALF | ADV_100_HALF),
            (0, _) => autoneg(link, ADV_10_FULL | ADV_100_FULL | ADV_1000_FULL),
            (10, 0) => autoneg(link, ADV_10_HALF | ADV_10_FULL),
            (100, 0) => autoneg(link, ADV_100_HALF | ADV_100_FULL),
            (1000, _) => autoneg(link, ADV_1000_FULL),
            (s, d) => {
                link.autoneg = false;
                link.speed = s;
                link.full_duplex = d == DUPLEX_FULL;
            }
        }
    }
    if let Some(fc) = p.flow_control {
        c.pause.rx_pause = fc == FC_RX_PAUSE || fc == FC_FULL;
        c.pause.tx_pause = fc == FC_TX_PAUSE || fc == FC_FULL;
    }
    if let Some(v) = p.xsum_rx {
        c.rx_csum = v != 0;
    }
    let co = &mut c.coalesce;
    for (v, field) in [
        (p.tx_int_delay, &mut co.tx_usecs),
        (p.tx_abs_int_delay, &mut co.tx_abs_usecs),
        (p.rx_int_delay, &mut co.rx_usecs),
        (p.rx_abs_int_delay, &mut co.rx_abs_usecs),
    ] {
        if let Some(units) = v {
            *field = delay_units_to_usecs(units);
        }
    }
    match p.interrupt_throttle_rate {
        Some(ITR_OFF) => (co.adaptive, co.max_irq_rate) = (false, 0),
        Some(ITR_DYNAMIC) => (co.adaptive, co.max_irq_rate) = (true, LOWEST_LATENCY_RATE),
        Some(ITR_DYNAMIC_CONSERVATIVE) => (co.adaptive, co.max_irq_rate) = (true, LOW_LATENCY_RATE),
        Some(rate) => (co.adaptive, co.max_irq_rate) = (false, rate),
        None => {}
    }
    if let Some(n) = p.copybreak {
        c.copybreak = n;
    }
    *conf = c;
    Ok(())
}

/// Applies load-time parameters to a probed device before it is opened: checks them
/// against the part ([`check`]), puts them into the adapter's configuration ([`apply`])
/// and programs the link (the PHY's advertisement or forced speed and duplex, and flow
/// control) the new configuration asks for; ring sizes, checksum offload, the delays and
/// ITR take effect when the device opens. Nothing changes if a parameter is refused.
/// Returns notes on parameters that do nothing on this part.
#[upcall]
pub fn apply_at_probe(a: &mut Adapter, p: &Params) -> Result<Vec<String>, DriverError> {
    if a.up {
        return Err(DriverError::WrongState {
            op: "applying load-time parameters".into(),
            state: "up".into(),
            needed: "down (they apply between probe and the first open)".into(),
        });
    }
    let notes = check(p, &a.info)?;
    let mut conf = a.conf.clone();
    apply(p, &mut conf)?;
    crate::phy::check_request(&conf.link)?;
    let link_changed = conf.link != a.conf.link || conf.pause != a.conf.pause;
    let old = std::mem::replace(&mut a.conf, conf);
    if link_changed {
        let r = crate::phy::setup_link(a).and_then(|()| crate::link::apply_flow_control(a));
        if let Err(e) = r {
            a.conf = old;
            if let Err(e2) =
                crate::phy::setup_link(a).and_then(|()| crate::link::apply_flow_control(a))
            {
                tracing::warn!(dev = a.dev.0, error = %e2, "restoring the link settings failed");
            }
            return Err(e);
        }
    }
    for arg in p.to_args() {
        tracing::info!(dev = a.dev.0, param = %arg, "load-time parameter");
    }
    for n in &notes {
        tracing::info!(dev = a.dev.0, "{n}");
    }
    Ok(notes)
}
