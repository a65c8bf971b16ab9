//! Sending frames from the daemon: `ping` (the simulated peer's streams are in
//! `sim_peer`).

use super::*;

pub(super) fn ping(inner: &Inner, count: u32) -> Result<Reply, String> {
    let nd = &inner.nd;
    if inner.tap.is_some() {
        return Err("the NIC is bridged to a TAP interface: ping through the host's stack (ping -I TAP 10.0.2.2)".into());
    }
    if count == 0 || count > MAX_PINGS {
        return Err(format!("ping count {count}: give 1 to {MAX_PINGS}"));
    }
    ensure_running(nd, "ping")?;
    Ok(Reply::Ping(inner.stack.ping(nd, count)?))
}
