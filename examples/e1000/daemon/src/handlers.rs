//! One function per control request: each runs the driver's ethtool operation (an upcall
//! into the user half in split mode) and turns the answer into a [`Reply`]. Operations
//! that change the device go through `Netdev::configure`, so a user half that dies or
//! hangs under one gets the device reset to the adapter's configuration afterwards;
//! read-only ones use `with_adapter`.
//!
//! While the device is suspended (`e1000ctl suspend`: the interface closed, the device
//! readied for power-off) only reads, `status`, `resume` and `shutdown` are served:
//! requests that change the device or send frames get an error naming `resume`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use e1000::adapter::{Adapter, Coalesce, LinkRequest, PauseParam};
use e1000::ethtool::IdState;
use e1000::features::{self, FeatureRequest, FeatureState};
use e1000::netdev::Netdev;
use e1000::{ethtool, phy, pm, selftest, wol, DriverError};
use microdriver_rt::lrpc::{EntryTable, Served};

use crate::daemon::Inner;
use crate::protocol::{
    self, DrvInfo, EntryStatus, Fault, FeatureFlag, LinkInfo, Mdix, Register, Reply, Request,
    ResumeReport, Rings, SplitStatus, Status, SuspendReport, TestResult,
};

/// Longest `-p` blink.
pub const MAX_IDENTIFY_SECONDS: u32 = 600;
/// Most pings per request.
pub const MAX_PINGS: u32 = 1000;
/// Most frames per traffic stream.
pub const MAX_TRAFFIC_FRAMES: u64 = 100_000_000;

/// Answers one request.
pub(crate) fn handle(inner: &Arc<Inner>, req: Request) -> Reply {
    match dispatch(inner, req) {
        Ok(r) => r,
        Err(message) => Reply::Error { message },
    }
}

fn drv(e: DriverError) -> String {
    e.to_string()
}

/// Refuses `op` on a suspended device: it would reprogram a device readied for
/// power-off (and the watchdog, which would notice, does not run while suspended).
fn running(a: &Adapter, op: &str) -> Result<(), DriverError> {
    if a.pm.suspended {
        return Err(DriverError::WrongState {
            op: op.into(),
            state: "suspended".into(),
            needed: "running: run `e1000ctl resume` first".into(),
        });
    }
    Ok(())
}

/// [`Netdev::configure`] for a request that needs the device running: the check and the
/// change are made under the same adapter lock, so a concurrent `suspend` cannot slip
/// between them.
///
/// The request is a reconfiguration window for the hot-path gap measurement.
fn configure<R>(
    inner: &Inner,
    op: &str,
    f: impl FnOnce(&mut Adapter) -> Result<R, DriverError>,
) -> Result<R, DriverError> {
    configure_or_repair(inner, op, None, f)
}

/// [`configure`] for an operation with a lighter repair than the full reset (see
/// [`e1000::config::Repair`]).
fn configure_or_repair<R>(
    inner: &Inner,
    op: &str,
    repair: Option<e1000::config::Repair>,
    f: impl FnOnce(&mut Adapter) -> Result<R, DriverError>,
) -> Result<R, DriverError> {
    let _window = inner.stack.reconfig.begin();
    inner.nd.configure_or_repair(repair, |a| {
        running(a, op)?;
        f(a)
    })
}

/// Refuses `op` (which sends frames or only reads) while the device is suspended.
pub(crate) fn ensure_running(nd: &Netdev, op: &str) -> Result<(), String> {
    nd.with_adapter(|a| running(a, op)).map_err(drv)
}

/// ethtool's `eth_tp_mdix_ctrl` code for an `mdix` setting.
fn mdix_code(m: Mdix) -> u8 {
    match m {
        Mdix::Auto => phy::ETH_TP_MDI_AUTO,
        Mdix::On => phy::ETH_TP_MDI_X,
        Mdix::Off => phy::ETH_TP_MDI,
    }
}

fn dispatch(inner: &Arc<Inner>, req: Request) -> Result<Reply, String> {
    let nd = &inner.nd;
    match req {
        Request::DrvInfo => {
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
        Request::LinkSettings => {
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
        Request::SetLink {
            speed,
            full_duplex,
            autoneg,
            mdix,
            wol: wolopts,
        } => {
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
        Request::Stats => {
            let names = ethtool::get_strings().map_err(drv)?;
            let values = nd.with_adapter(ethtool::get_stats).map_err(drv)?;
            Ok(Reply::Stats {
                stats: names.into_iter().zip(values).collect(),
            })
        }
        Request::Rings => {
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
        Request::SetRings { rx, tx } => {
            configure_or_repair(inner, "-G", Some(e1000::config::Repair::Rings), |a| {
                let mut p = e1000::config::get_ringparam(a);
                p.rx = rx.unwrap_or(p.rx);
                p.tx = tx.unwrap_or(p.tx);
                ethtool::set_ringparam(a, &p)
            })
            .map_err(drv)?;
            Ok(Reply::Done)
        }
        Request::Pause => {
            let p = nd
                .with_adapter(|a| ethtool::get_pauseparam(a))
                .map_err(drv)?;
            Ok(Reply::Pause(protocol::Pause {
                autoneg: p.autoneg,
                rx: p.rx_pause,
                tx: p.tx_pause,
            }))
        }
        Request::SetPause { autoneg, rx, tx } => {
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
        Request::Coalesce => {
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
        Request::SetCoalesce {
            rx_usecs,
            tx_usecs,
            rx_usecs_abs,
            tx_usecs_abs,
            adaptive_rx,
        } => {
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
        Request::Eeprom { offset, length } => {
            let data = nd
                .with_adapter(|a| {
                    let size = ethtool::get_drvinfo(a)?.eedump_len;
                    let len = length.unwrap_or(size.saturating_sub(offset));
                    ethtool::get_eeprom(a, offset, len)
                })
                .map_err(drv)?;
            Ok(Reply::Eeprom { offset, data })
        }
        Request::Regs => {
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
        Request::SelfTest { offline } => {
            // The offline tests close, reset and reopen the device: a crossing failure
            // there must be repaired (configure). The online test only reads.
            let results = if offline {
                configure(inner, "-t offline", |a| ethtool::self_test(a, true))
            } else {
                nd.with_adapter(|a| {
                    running(a, "-t online")?;
                    ethtool::self_test(a, false)
                })
            }
            .map_err(drv)?;
            Ok(Reply::SelfTest {
                results: selftest::NAMES
                    .iter()
                    .zip(results)
                    .map(|(n, r)| TestResult {
                        name: (*n).to_string(),
                        result: r,
                    })
                    .collect(),
            })
        }
        Request::NwayReset => {
            configure(inner, "-r", |a| ethtool::nway_reset(a)).map_err(drv)?;
            Ok(Reply::Done)
        }
        Request::Identify { seconds } => {
            if seconds == 0 || seconds > MAX_IDENTIFY_SECONDS {
                return Err(format!(
                    "identify for {seconds} s: give 1 to {MAX_IDENTIFY_SECONDS} seconds"
                ));
            }
            // As ethtool's core does: set up, then alternate on and off at the rate the
            // driver asks for, then restore.
            let hz =
                configure(inner, "-p", |a| ethtool::identify(a, IdState::Active)).map_err(drv)?;
            let half = Duration::from_millis(500 / u64::from(hz.max(1)));
            let end = std::time::Instant::now() + Duration::from_secs(u64::from(seconds));
            let blink = (|| {
                let (mut on, mut toggle) = (false, std::time::Instant::now());
                while std::time::Instant::now() < end
                    && !inner.stop.load(std::sync::atomic::Ordering::Relaxed)
                {
                    if std::time::Instant::now() >= toggle {
                        on = !on;
                        let phase = if on { IdState::On } else { IdState::Off };
                        nd.configure(|a| ethtool::identify(a, phase))?;
                        toggle += half;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(())
            })();
            let restore = nd.configure(|a| ethtool::identify(a, IdState::Inactive));
            blink.and(restore).map_err(drv)?;
            Ok(Reply::Done)
        }
        Request::Features => {
            let f = nd.with_adapter(|a| ethtool::get_features(a)).map_err(drv)?;
            Ok(Reply::Features {
                features: f.into_iter().map(feature_flag).collect(),
            })
        }
        Request::SetFeatures { changes } => {
            let req: Vec<FeatureRequest> = changes
                .iter()
                .map(|c| FeatureRequest::new(&c.name, c.on))
                .collect();
            // The flags before are the adapter's (no device access, nothing crosses).
            let (before, after) = configure(inner, "-K", |a| {
                let before = features::list(a);
                ethtool::set_features(a, &req).map(|after| (before, after))
            })
            .map_err(drv)?;
            Ok(Reply::FeatureChanges {
                requested: changes,
                before: before.into_iter().map(feature_flag).collect(),
                after: after.into_iter().map(feature_flag).collect(),
            })
        }
        Request::Stats64 => {
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
        Request::Status => Ok(Reply::Status(Box::new(status(inner)))),
        Request::Suspend => {
            // A stream would stall on the closed interface, each frame refused only
            // after its timeout: let it finish first.
            if inner
                .traffic_thread
                .lock()
                .as_ref()
                .is_some_and(|t| !t.is_finished())
            {
                return Err(
                    "a traffic stream is running: wait for it (`e1000ctl traffic wait`) before suspending"
                        .into(),
                );
            }
            let report = nd
                .configure(|a| {
                    pm::suspend(a)?;
                    Ok(SuspendReport {
                        was_up: a.pm.was_up,
                        wake_on: a.conf.wol,
                    })
                })
                .map_err(drv)?;
            Ok(Reply::Suspended(report))
        }
        Request::Resume => {
            let r = nd.configure(pm::resume).map_err(drv)?;
            Ok(Reply::Resumed(ResumeReport {
                wake_status: r.wake_status,
                woken_by: r.woken_by,
                reopened: r.reopened,
            }))
        }
        Request::Inject { fault } => inject(inner, fault),
        Request::Revive => revive(inner),
        Request::Ping { count } => {
            if inner.tap.is_some() {
                return Err("the NIC is bridged to a TAP interface: ping through the host's stack (ping -I TAP 10.0.2.2)".into());
            }
            if count == 0 || count > MAX_PINGS {
                return Err(format!("ping count {count}: give 1 to {MAX_PINGS}"));
            }
            ensure_running(nd, "ping")?;
            Ok(Reply::Ping(inner.stack.ping(nd, count)?))
        }
        Request::TrafficStart { frames, sizes } => {
            crate::sim_peer::traffic_start(inner, nd, frames, sizes)
        }
        Request::TrafficStatus => crate::sim_peer::traffic_status(inner),
        Request::Wake => crate::sim_peer::wake(inner, nd),
        Request::Shutdown => Ok(Reply::Done),
    }
}

fn feature_flag(f: FeatureState) -> FeatureFlag {
    FeatureFlag {
        name: f.name,
        on: f.on,
        requested: f.requested,
        fixed: f.fixed,
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

pub(crate) fn status(inner: &Inner) -> Status {
    // The adapter's link state is the watchdog's, which does not run while suspended
    // (and the interface, so the carrier, is closed then): report the link down.
    let (link_up, suspended, wake_on) = inner
        .nd
        .with_adapter(|a| (a.link.up && !a.pm.suspended, a.pm.suspended, a.conf.wol));
    let split = inner.supervisor.as_ref().map(|sup| {
        let s = sup.status();
        let endpoint = sup.endpoint();
        let tracker = endpoint.tracker().stats();
        let table = EntryTable::get();
        let mut entries: Vec<EntryStatus> = endpoint
            .stats()
            .entries()
            .into_iter()
            .map(|(id, c)| {
                let (direction, name) = match table.lookup(Served::ByUser, id) {
                    Some(e) => ("upcall", e.name.to_string()),
                    None => match table.lookup(Served::ByKernel, id) {
                        Some(e) => ("downcall", e.name.to_string()),
                        None => ("unknown", format!("{id:#010x}")),
                    },
                };
                EntryStatus {
                    direction: direction.into(),
                    name,
                    calls: c.calls,
                    errors: c.errors,
                    p50: c.percentile(0.5),
                    p99: c.percentile(0.99),
                }
            })
            .collect();
        entries.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.name.cmp(&b.name)));
        SplitStatus {
            pid: s.pid,
            uptime: s.uptime,
            restarts: s.restarts,
            hangs: s.hangs,
            degraded: s.degraded,
            next_attempt: s.next_attempt,
            degradations: s.degradations,
            revivals: s.revivals,
            last_recovery: s.last_recovery,
            tracker_objects: tracker.objects,
            tracker_bytes: tracker.bytes,
            tracker_translations: tracker.translations,
            tracker_rejections: tracker.rejections,
            rejected_frames: endpoint.stats().rejected(),
            recent_rejections: endpoint.stats().recent_rejections(),
            entries,
            crossing_delay: inner.cfg.crossing_delay,
            workers: inner.cfg.workers,
        }
    });
    Status {
        mode: if inner.supervisor.is_some() {
            "split"
        } else {
            "monolithic"
        }
        .into(),
        backend: match &inner.cfg.backend {
            crate::daemon::Backend::Sim => "sim".into(),
            crate::daemon::Backend::Uio(a) => format!("uio {a}"),
            crate::daemon::Backend::Vfio(a) => format!("vfio {a}"),
        },
        tap: inner.tap.as_ref().map(|t| t.name().to_string()),
        daemon_pid: std::process::id(),
        uptime: inner.started.elapsed(),
        link_up,
        reset_pending: inner.nd.reset_pending(),
        suspended,
        device_fault: inner.nd.device_fault(),
        wake_on,
        rx_frames: inner
            .stack
            .rx_frames
            .load(std::sync::atomic::Ordering::Relaxed),
        tx_frames: inner
            .stack
            .tx_frames
            .load(std::sync::atomic::Ordering::Relaxed),
        split,
    }
}

/// `revive`: a degraded driver tries a user half at once; answers with the status once it
/// is re-attached, or an error saying why not.
fn revive(inner: &Inner) -> Result<Reply, String> {
    let Some(sup) = &inner.supervisor else {
        return Err("revive needs the split mode (this e1000d runs --monolithic)".into());
    };
    tracing::warn!("revive: an operator asks for a user half now");
    if !sup.revive() {
        return Err("the driver is not degraded: its user half runs or is being restarted".into());
    }
    let limit = inner.cfg.crossing_delay * 8 + Duration::from_secs(20);
    if !sup.wait_restarted(None, limit) {
        let s = sup.status();
        return Err(match s.next_attempt {
            Some(next) if s.degraded => format!(
                "the revived user half crashed again: degraded, next attempt in {} s",
                next.as_secs_f64().ceil() as u64
            ),
            _ => format!("no user half answered within {limit:?} of the revival"),
        });
    }
    Ok(Reply::Status(Box::new(status(inner))))
}

fn inject(inner: &Inner, fault: Fault) -> Result<Reply, String> {
    let Some(sup) = &inner.supervisor else {
        return Err("fault injection needs the split mode (this e1000d runs --monolithic)".into());
    };
    let before = sup.status();
    let Some(old_pid) = before.pid else {
        return Err("the user half is not running right now (restarting or degraded)".into());
    };
    let rejected_before = sup.endpoint().stats().rejected();
    tracing::warn!(
        ?fault,
        pid = old_pid,
        "injecting a fault into the user half"
    );
    let shared = || {
        let dev = inner.nd.with_adapter(|a| a.dev);
        e1000::kernel::shared_state(dev).map_err(drv)
    };
    // Faults the user half survives: it must answer again, nobody restarts it.
    let mut survives = false;
    match fault {
        Fault::Crash => {
            // The call fails (the peer died under it); the supervisor restarts it.
            let _ = crate::faults::crash_user_half();
        }
        Fault::Kill => sup.kill_user_half(),
        Fault::CrashDuringReattach => {
            // The re-attach hook finds the flag and crashes the successor inside it.
            inner.crash_on_reattach.store(true, Ordering::SeqCst);
            sup.kill_user_half();
        }
        Fault::Panic => {
            survives = true;
            match crate::faults::panic_in_user_half() {
                Err(DriverError::Upcall(_)) => {}
                other => return Err(format!("the panic came back as {other:?}")),
            }
        }
        Fault::Slow(ms) => {
            survives = true;
            crate::faults::slow_user_half(ms).map_err(drv)?;
        }
        Fault::HoldLock => {
            survives = true;
            let granted = crate::faults::hold_hot_locks(&shared()?, 100).map_err(drv)?;
            if granted != 0 {
                return Err(format!(
                    "the user half was granted {granted} holds of the hot path's snapshot-only locks"
                ));
            }
        }
        Fault::HoldRepeatedly => {
            survives = true;
            let taken = crate::faults::snapshot_storm(&shared()?, 100).map_err(drv)?;
            tracing::info!(taken, "snapshots taken back to back");
        }
        Fault::Forged => {
            survives = true;
            let refused = crate::faults::forged_replies(sup.endpoint(), &shared()?)?;
            tracing::info!(refused, "forged replies refused");
        }
        Fault::Hang => {
            let pid = rustix::process::Pid::from_raw(old_pid as i32)
                .ok_or_else(|| format!("bad user-half pid {old_pid}"))?;
            rustix::process::kill_process(pid, rustix::process::Signal::STOP)
                .map_err(|e| format!("stopping the user half (pid {old_pid}): {e}"))?;
        }
        Fault::Garbage => {
            let seed = u64::from(old_pid) ^ inner.started.elapsed().as_nanos() as u64;
            let garbage = crate::faults::garbage_reply(sup.endpoint());
            tracing::info!(result = ?garbage, "the garbage reply");
            let _ = crate::faults::scribble_channel(seed);
            // Make the kernel half read the channel: a ping crosses it.
            let _ = microdriver_rt::lrpc::ping(sup.endpoint(), Duration::from_secs(2));
        }
    }
    let limit = inner.cfg.crossing_delay * 8 + Duration::from_secs(20);
    let restarted = match fault {
        _ if survives => {
            // The same user half answers again (a ping crosses the channel).
            let end = std::time::Instant::now() + limit;
            loop {
                if microdriver_rt::lrpc::ping(sup.endpoint(), Duration::from_secs(2)).is_ok() {
                    break sup.status().pid == Some(old_pid);
                }
                if std::time::Instant::now() > end {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Fault::Garbage => {
            // Garbage may be caught as rejected frames without a restart; either way
            // the channel must work again.
            let end = std::time::Instant::now() + limit;
            loop {
                if microdriver_rt::lrpc::ping(sup.endpoint(), Duration::from_secs(2)).is_ok() {
                    break true;
                }
                if std::time::Instant::now() > end {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        _ => sup.wait_restarted(Some(old_pid), limit),
    };
    if !restarted {
        return Err(format!(
            "the user half did not come back within {limit:?} after the {fault:?} fault"
        ));
    }
    if fault == Fault::CrashDuringReattach && inner.crash_on_reattach.swap(false, Ordering::SeqCst)
    {
        return Err("the successor was re-attached without the re-attach hook crashing it".into());
    }
    let after = status(inner);
    tracing::info!(
        ?fault,
        restarts = after.split.as_ref().map_or(0, |s| s.restarts),
        rejected = sup.endpoint().stats().rejected() - rejected_before,
        "user half answers again"
    );
    Ok(Reply::Status(Box::new(after)))
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
