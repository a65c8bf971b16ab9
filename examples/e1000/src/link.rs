//! Link management and the 2-second watchdog: link up/down with speed and duplex (and the
//! carrier the hot path transmits under), flow control resolution, statistics
//! accumulation and transmit hang detection (which schedules a reset). Adaptive interrupt
//! throttling is the kernel half's poll path's ([`crate::hot::itr`]): at the watchdog's pace
//! (and an upcall's latency) ITR would follow the traffic seconds late.

use microdriver_rt::upcall;
use std::time::Duration;

use microdriver_rt::Marshal;

use crate::adapter::Adapter;
use crate::error::DriverError;
use crate::kernel;
use crate::phy;
use crate::regs::phy::{anar, bmsr, ANAR, ANLPAR, BMSR};
use crate::regs::{ctrl, status, tctl, CTRL, STATUS, TCTL};
use crate::stats;

/// How often the watchdog runs.
pub const WATCHDOG_PERIOD: Duration = Duration::from_secs(2);
/// A packet pending this long without the ring moving is a hang (the default of
/// `Config::tx_timeout_ms`).
pub const TX_HANG_MS: u64 = 4000;

/// What one watchdog run saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct WatchdogReport {
    /// The link changed state.
    pub link_changed: bool,
    /// A transmit hang was detected and a reset scheduled.
    pub tx_hang: bool,
    /// The interrupt rate adaptive throttling (the kernel half's poll path) has programmed,
    /// per second (0 with adaptive mode off: ITR holds the configured fixed rate).
    pub irq_rate: u32,
}

/// What a STATUS value says of the link: up, speed in Mb/s and full duplex (SDM 13.4
/// STATUS.LU, SPEED, FD), speed and duplex as the MAC reports them even while down.
pub fn decode_status(s: u32) -> (bool, u32, bool) {
    let speed = match s & status::SPEED_MASK {
        status::SPEED_10 => 10,
        status::SPEED_100 => 100,
        _ => 1000,
    };
    (s & status::LU != 0, speed, s & status::FD != 0)
}

/// Reads STATUS and brings the link state, carrier, collision distance and flow control
/// in line with it. Returns whether the link changed.
#[upcall]
pub fn check_link(a: &mut Adapter) -> Result<bool, DriverError> {
    let (up, speed, fd) = decode_status(a.rd(STATUS)?);
    let was = a.link;
    if up == was.up && (!up || (speed == was.speed && fd == was.full_duplex)) {
        return Ok(false);
    }
    a.link = crate::adapter::LinkState {
        up,
        speed: if up { speed } else { 0 },
        full_duplex: up && fd,
        changes: was.changes + 1,
        flow: FlowControl::default(),
    };
    if up {
        // Collision distance: 64 byte times in full duplex, 512 in half (SDM 13.4 TCTL).
        let cold = if fd { 0x40 } else { 0x200 };
        a.rmw(TCTL, 0x3FF << tctl::COLD_SHIFT, cold << tctl::COLD_SHIFT)?;
        apply_flow_control(a)?;
        tracing::info!(dev = a.dev.0, speed, full_duplex = fd, "link up");
    } else {
        tracing::info!(dev = a.dev.0, "link down");
    }
    kernel::set_carrier(a.dev, up && a.up)?;
    Ok(true)
}

/// The flow control in force on a link: which PAUSE directions the MAC honours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct FlowControl {
    /// Received PAUSE frames stop the transmitter (CTRL.RFCE).
    pub rx: bool,
    /// The MAC sends PAUSE frames when its receive FIFO fills (CTRL.TFCE).
    pub tx: bool,
}

/// Pause resolution from our advertisement and the partner's (IEEE 802.3 Annex 28B.3,
/// Table 28B-3), from our side: both PAUSE bits set is symmetric; we ASM_DIR without
/// PAUSE against PAUSE and ASM_DIR is transmit only; we PAUSE and ASM_DIR against ASM_DIR
/// without PAUSE is receive only; everything else is none.
pub fn resolve_pause(ours: u16, partner: u16) -> FlowControl {
    let bits = |v: u16| (v & anar::PAUSE != 0, v & anar::ASM_DIR != 0);
    match (bits(ours), bits(partner)) {
        ((true, _), (true, _)) => FlowControl { rx: true, tx: true },
        ((false, true), (true, true)) => FlowControl {
            rx: false,
            tx: true,
        },
        ((true, true), (false, true)) => FlowControl {
            rx: true,
            tx: false,
        },
        _ => FlowControl::default(),
    }
}

/// The flow control for the current link: none in half duplex; with pause and the link
/// both auto-negotiated, the Annex 28B resolution of ANAR and ANLPAR (none if
/// auto-negotiation has not completed) limited to the configured directions (a
/// receive-only configuration advertises PAUSE too, so a symmetric result must not turn
/// transmit on); otherwise (forced link or forced pause, or no link yet) the
/// configuration.
pub fn resolve_flow_control(a: &Adapter) -> Result<FlowControl, DriverError> {
    let p = a.conf.pause;
    let configured = FlowControl {
        rx: p.rx_pause,
        tx: p.tx_pause,
    };
    if !a.link.up {
        return Ok(configured);
    }
    if !a.link.full_duplex {
        return Ok(FlowControl::default());
    }
    if !(p.autoneg && a.conf.link.autoneg) {
        return Ok(configured);
    }
    if phy::read(a, BMSR)? & bmsr::AN_COMPLETE == 0 {
        return Ok(FlowControl::default());
    }
    let r = resolve_pause(phy::read(a, ANAR)?, phy::read(a, ANLPAR)?);
    Ok(FlowControl {
        rx: r.rx && configured.rx,
        tx: r.tx && configured.tx,
    })
}

/// Sets CTRL.RFCE/TFCE to the flow control for the current link
/// ([`resolve_flow_control`]) and records it in the link state (while the link is up).
pub fn apply_flow_control(a: &mut Adapter) -> Result<(), DriverError> {
    let fc = resolve_flow_control(a)?;
    let mut set = 0;
    if fc.rx {
        set |= ctrl::RFCE;
    }
    if fc.tx {
        set |= ctrl::TFCE;
    }
    a.rmw(CTRL, ctrl::RFCE | ctrl::TFCE, set)?;
    a.link.flow = if a.link.up {
        fc
    } else {
        FlowControl::default()
    };
    if a.link.up {
        tracing::info!(dev = a.dev.0, rx = fc.rx, tx = fc.tx, "flow control");
    }
    Ok(())
}

/// The periodic watchdog (and the deferred link check the interrupt handler posts).
#[upcall]
pub fn watchdog(a: &mut Adapter) -> Result<WatchdogReport, DriverError> {
    if a.pm.suspended {
        // The device is readied for power-off; nothing to watch until resume.
        return Ok(WatchdogReport::default());
    }
    a.wd.runs += 1;
    let link_changed = check_link(a)?;
    stats::update(a)?;
    phy::info::update_stats(a)?;
    phy::smartspeed(a)?;
    crate::ifs::update(a)?;
    let mut report = WatchdogReport {
        link_changed,
        ..WatchdogReport::default()
    };
    if !a.up {
        return Ok(report);
    }
    report.tx_hang = tx_hang_check(a)?;
    // Report only: in adaptive mode the kernel half owns ITR, and the watchdog never writes
    // it (the two would fight, and the watchdog would lose the race to the traffic).
    if a.conf.coalesce.adaptive && a.info.mac_type.has_itr() {
        report.irq_rate = kernel::adaptive_irq_rate(a.dev)?;
    }
    Ok(report)
}

/// A hang: packets pending on the transmit ring, TX clean making no progress for longer
/// than `Config::tx_timeout_ms`, the link up and the transmitter not paused by flow
/// control. Schedules a reset. The ring's state is a snapshot of the kernel half's (its
/// combolock: [`crate::shared`]), so progress is the driver's own reclaiming, as the
/// hardware's head alone would not show a ring whose completions are never cleaned; and it
/// is the count of packets reclaimed, not the ring's clean index, which can come back to
/// the same slot between two runs.
fn tx_hang_check(a: &mut Adapter) -> Result<bool, DriverError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let tx = a.shared()?.tx.snapshot()?;
    let (pending, head) = tx
        .ring
        .as_ref()
        .map_or((false, 0), |r| (r.pending() > 0, r.next_to_clean()));
    let cleaned = tx.stats.packets;
    if !pending || !a.wd.last_tx_pending || cleaned != a.wd.last_tx_cleaned {
        a.wd.last_tx_move_ms = now;
    }
    a.wd.last_tx_cleaned = cleaned;
    a.wd.last_tx_pending = pending;
    let stuck_ms = now.saturating_sub(a.wd.last_tx_move_ms);
    if pending && stuck_ms > a.conf.tx_timeout_ms && a.link.up && a.rd(STATUS)? & status::TXOFF == 0
    {
        a.wd.tx_timeouts += 1;
        tracing::warn!(dev = a.dev.0, head, "transmit hang: scheduling a reset");
        kernel::schedule_reset(a.dev)?;
        return Ok(true);
    }
    Ok(false)
}

/// The ITR register value for a rate (interrupts per second); see
/// [`crate::hot::itr::itr_value`].
pub use crate::hot::itr::itr_value;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_resolution_table_28b_3() {
        // IEEE 802.3 Table 28B-3, every combination: (local PAUSE, ASM_DIR), (partner
        // PAUSE, ASM_DIR) -> (receive, transmit) from the local side.
        let none = (false, false);
        let rows = [
            ((0, 0), (0, 0), none),
            ((0, 0), (0, 1), none),
            ((0, 0), (1, 0), none),
            ((0, 0), (1, 1), none),
            ((0, 1), (0, 0), none),
            ((0, 1), (0, 1), none),
            ((0, 1), (1, 0), none),
            ((0, 1), (1, 1), (false, true)),
            ((1, 0), (0, 0), none),
            ((1, 0), (0, 1), none),
            ((1, 0), (1, 0), (true, true)),
            ((1, 0), (1, 1), (true, true)),
            ((1, 1), (0, 0), none),
            ((1, 1), (0, 1), (true, false)),
            ((1, 1), (1, 0), (true, true)),
            ((1, 1), (1, 1), (true, true)),
        ];
        let reg = |(p, a): (u16, u16)| (p * anar::PAUSE) | (a * anar::ASM_DIR);
        for (ours, theirs, (rx, tx)) in rows {
            let got = resolve_pause(reg(ours) | anar::FD100, reg(theirs) | anar::HD10);
            assert_eq!(got, FlowControl { rx, tx }, "{ours:?} vs {theirs:?}");
        }
    }
}
