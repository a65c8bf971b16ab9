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
use crate::regs::{ctrl, status, tctl, CTRL, STATUS, TCTL, TDH, TDT};
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

/// The ITR register value for a rate (interrupts per second); see
/// [`crate::hot::itr::itr_value`].
pub use crate::hot::itr::itr_value;
