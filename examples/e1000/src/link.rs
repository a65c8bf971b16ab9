//! Link management and the 2-second watchdog: link up/down with speed and duplex (and the
//! carrier the hot path transmits under), flow control resolution, statistics
//! accumulation, transmit hang detection (which schedules a reset) and dynamic interrupt
//! throttling.

use microdriver_rt::upcall;
use std::time::Duration;

use microdriver_rt::Marshal;

use crate::adapter::Adapter;
use crate::error::DriverError;
use crate::kernel;
use crate::regs::{ctrl, status, tctl, CTRL, ITR, STATUS, TCTL, TDH, TDT};
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
    /// The interrupt rate programmed (0 if unchanged).
    pub irq_rate: u32,
}

/// Reads STATUS and brings the link state, carrier, collision distance and flow control
/// in line with it. Returns whether the link changed.
#[upcall]
pub fn check_link(a: &mut Adapter) -> Result<bool, DriverError> {
    let s = a.rd(STATUS)?;
    let up = s & status::LU != 0;
    let speed = match s & status::SPEED_MASK {
        status::SPEED_10 => 10,
        status::SPEED_100 => 100,
        _ => 1000,
    };
    let fd = s & status::FD != 0;
    let was = a.link;
    if up == was.up && (!up || (speed == was.speed && fd == was.full_duplex)) {
        return Ok(false);
    }
    a.link = crate::adapter::LinkState {
        up,
        speed: if up { speed } else { 0 },
        full_duplex: up && fd,
        changes: was.changes + 1,
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

/// Sets CTRL.RFCE/TFCE from the pause configuration (in half duplex, no pause).
pub fn apply_flow_control(a: &Adapter) -> Result<(), DriverError> {
    let p = a.conf.pause;
    let fd = !a.link.up || a.link.full_duplex;
    let mut set = 0;
    if p.rx_pause && fd {
        set |= ctrl::RFCE;
    }
    if p.tx_pause && fd {
        set |= ctrl::TFCE;
    }
    a.rmw(CTRL, ctrl::RFCE | ctrl::TFCE, set)?;
    Ok(())
}

/// The periodic watchdog (and the deferred link check the interrupt handler posts).
#[upcall]
pub fn watchdog(a: &mut Adapter) -> Result<WatchdogReport, DriverError> {
    a.wd.runs += 1;
    let link_changed = check_link(a)?;
    stats::update(a)?;
    let mut report = WatchdogReport {
        link_changed,
        ..WatchdogReport::default()
    };
    if !a.up {
        return Ok(report);
    }
    report.tx_hang = tx_hang_check(a)?;
    if a.conf.coalesce.adaptive && a.info.mac_type.has_itr() {
        report.irq_rate = update_itr(a)?;
    }
    Ok(report)
}

/// A hang: packets pending (TDH != TDT), the head not moving for longer than
/// `Config::tx_timeout_ms`, the link up and the transmitter not paused by flow control.
/// Schedules a reset.
fn tx_hang_check(a: &mut Adapter) -> Result<bool, DriverError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let head = a.rd(TDH)?;
    let pending = head != a.rd(TDT)?;
    if !pending || !a.wd.last_tx_pending || head != a.wd.last_tx_clean {
        a.wd.last_tx_move_ms = now;
    }
    a.wd.last_tx_clean = head;
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

/// Dynamic interrupt throttling: few, small packets get a high interrupt rate (low
/// latency), bulk traffic a lower one. Returns the rate programmed.
fn update_itr(a: &mut Adapter) -> Result<u32, DriverError> {
    let h = kernel::HotStats::from(kernel::hot_counters(a.dev)?);
    let packets = (h.rx_packets + h.tx_packets).saturating_sub(a.wd.last_packets);
    let bytes = (h.rx_bytes + h.tx_bytes).saturating_sub(a.wd.last_bytes);
    a.wd.last_packets = h.rx_packets + h.tx_packets;
    a.wd.last_bytes = h.rx_bytes + h.tx_bytes;
    let avg = bytes.checked_div(packets).unwrap_or(0);
    let target = if packets < 1000 {
        70_000 // lowest latency
    } else if avg > 1200 {
        4_000 // bulk
    } else {
        20_000
    };
    let rate = match a.conf.coalesce.max_irq_rate {
        0 => target,
        cap => target.min(cap.max(4_000)),
    };
    if rate != a.wd.irq_rate {
        a.wr(ITR, itr_value(rate))?;
        a.wd.irq_rate = rate;
    }
    Ok(rate)
}

/// The ITR register value for `rate` interrupts per second (ITR counts 256 ns units
/// between interrupts; 0 = no limit).
pub fn itr_value(rate: u32) -> u32 {
    if rate == 0 {
        0
    } else {
        (1_000_000_000 / (256 * u64::from(rate))).min(0xFFFF) as u32
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn itr_units() {
        assert_eq!(super::itr_value(0), 0);
        assert_eq!(super::itr_value(20_000), 195);
        assert_eq!(super::itr_value(1), 0xFFFF);
    }
}
