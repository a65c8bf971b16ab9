//! Ring sizes, interrupt coalescing and PAUSE: `-g`/`-G`, `-c`/`-C`, `-a`/`-A`.

use super::*;

pub(super) fn rings(inner: &Inner) -> Result<Reply, String> {
    let nd = &inner.nd;
    let r = nd
        .with_adapter(|a| ethtool::get_ringparam(a))
        .map_err(drv)?;
    Ok(Reply::Rings(Rings {
        rx: r.rx,
        tx: r.tx,
        rx_max: r.rx_max,
        tx_max: r.tx_max,
    }))
}

pub(super) fn set_rings(inner: &Inner, rx: Option<u32>, tx: Option<u32>) -> Result<Reply, String> {
    configure_or_repair(inner, "-G", Some(e1000::config::Repair::Rings), |a| {
        let mut p = e1000::config::get_ringparam(a);
        p.rx = rx.unwrap_or(p.rx);
        p.tx = tx.unwrap_or(p.tx);
        ethtool::set_ringparam(a, &p)
    })
    .map_err(drv)?;
    Ok(Reply::Done)
}

pub(super) fn pause(inner: &Inner) -> Result<Reply, String> {
    let nd = &inner.nd;
    let p = nd
        .with_adapter(|a| ethtool::get_pauseparam(a))
        .map_err(drv)?;
    Ok(Reply::Pause(protocol::Pause {
        autoneg: p.autoneg,
        rx: p.rx_pause,
        tx: p.tx_pause,
    }))
}

pub(super) fn set_pause(
    inner: &Inner,
    autoneg: Option<bool>,
    rx: Option<bool>,
    tx: Option<bool>,
) -> Result<Reply, String> {
    configure(inner, "-A", |a| {
        let cur = a.conf.pause;
        let p = PauseParam {
            autoneg: autoneg.unwrap_or(cur.autoneg),
            rx_pause: rx.unwrap_or(cur.rx_pause),
            tx_pause: tx.unwrap_or(cur.tx_pause),
        };
        ethtool::set_pauseparam(a, &p)
    })
    .map_err(drv)?;
    Ok(Reply::Done)
}

pub(super) fn coalesce(inner: &Inner) -> Result<Reply, String> {
    let nd = &inner.nd;
    let c = nd.with_adapter(|a| ethtool::get_coalesce(a)).map_err(drv)?;
    Ok(Reply::Coalesce(protocol::Coalesce {
        rx_usecs: c.rx_usecs,
        rx_usecs_abs: c.rx_abs_usecs,
        tx_usecs: c.tx_usecs,
        tx_usecs_abs: c.tx_abs_usecs,
        max_irq_rate: c.max_irq_rate,
        adaptive: c.adaptive,
    }))
}

pub(super) fn set_coalesce(
    inner: &Inner,
    rx_usecs: Option<u32>,
    tx_usecs: Option<u32>,
    rx_usecs_abs: Option<u32>,
    tx_usecs_abs: Option<u32>,
    adaptive_rx: Option<bool>,
) -> Result<Reply, String> {
    configure_or_repair(inner, "-C", Some(e1000::config::Repair::Coalesce), |a| {
        let cur = a.conf.coalesce;
        let c = Coalesce {
            rx_usecs: rx_usecs.unwrap_or(cur.rx_usecs),
            rx_abs_usecs: rx_usecs_abs.unwrap_or(cur.rx_abs_usecs),
            tx_usecs: tx_usecs.unwrap_or(cur.tx_usecs),
            tx_abs_usecs: tx_usecs_abs.unwrap_or(cur.tx_abs_usecs),
            max_irq_rate: cur.max_irq_rate,
            adaptive: adaptive_rx.unwrap_or(cur.adaptive),
        };
        ethtool::set_coalesce(a, &c)
    })
    .map_err(drv)?;
    Ok(Reply::Done)
}
