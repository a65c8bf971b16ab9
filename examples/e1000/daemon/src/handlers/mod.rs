//! One function per control request: each runs the driver's ethtool operation (an upcall
//! into the user half in split mode) and turns the answer into a [`Reply`]. Operations
//! that change the device go through `Netdev::configure`, so a user half that dies or
//! hangs under one gets the device reset to the adapter's configuration afterwards;
//! read-only ones use `with_adapter`.
//!
//! While the device is suspended (`e1000ctl suspend`: the interface closed, the device
//! readied for power-off) only reads, `status`, `resume` and `shutdown` are served:
//! requests that change the device or send frames get an error naming `resume`.

mod diag;
mod info;
mod inject;
mod link;
mod offload;
mod params;
mod power;
mod status;
mod traffic;

pub(crate) use status::status;

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

fn dispatch(inner: &Arc<Inner>, req: Request) -> Result<Reply, String> {
    let nd = &inner.nd;
    match req {
        Request::DrvInfo => info::drvinfo(inner),
        Request::LinkSettings => link::link_settings(inner),
        Request::SetLink {
            speed,
            full_duplex,
            autoneg,
            mdix,
            wol: wolopts,
        } => link::set_link(inner, speed, full_duplex, autoneg, mdix, wolopts),
        Request::Stats => info::stats(inner),
        Request::Rings => params::rings(inner),
        Request::SetRings { rx, tx } => params::set_rings(inner, rx, tx),
        Request::Pause => params::pause(inner),
        Request::SetPause { autoneg, rx, tx } => params::set_pause(inner, autoneg, rx, tx),
        Request::Coalesce => params::coalesce(inner),
        Request::SetCoalesce {
            rx_usecs,
            tx_usecs,
            rx_usecs_abs,
            tx_usecs_abs,
            adaptive_rx,
        } => params::set_coalesce(
            inner,
            rx_usecs,
            tx_usecs,
            rx_usecs_abs,
            tx_usecs_abs,
            adaptive_rx,
        ),
        Request::Eeprom { offset, length } => info::eeprom(inner, offset, length),
        Request::Regs => info::regs(inner),
        Request::SelfTest { offline } => diag::self_test(inner, offline),
        Request::NwayReset => link::nway_reset(inner),
        Request::Identify { seconds } => diag::identify(inner, seconds),
        Request::Features => offload::features(inner),
        Request::SetFeatures { changes } => offload::set_features(inner, changes),
        Request::Stats64 => info::stats64(inner),
        Request::Status => Ok(Reply::Status(Box::new(status::status(inner)))),
        Request::Suspend => power::suspend(inner),
        Request::Resume => power::resume(inner),
        Request::Inject { fault } => inject::inject(inner, fault),
        Request::Revive => inject::revive(inner),
        Request::Ping { count } => traffic::ping(inner, count),
        Request::TrafficStart { frames, sizes } => {
            crate::sim_peer::traffic_start(inner, nd, frames, sizes)
        }
        Request::TrafficStatus => crate::sim_peer::traffic_status(inner),
        Request::Wake => crate::sim_peer::wake(inner, nd),
        Request::Cable { plugged } => crate::sim_peer::cable(inner, plugged),
        Request::Shutdown => Ok(Reply::Done),
    }
}
