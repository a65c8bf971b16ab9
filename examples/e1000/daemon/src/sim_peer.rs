//! The requests that drive the simulated peer: the traffic generator and `wake`. Without
//! the `sim` feature there is no peer, and they say so.

use std::sync::Arc;

use e1000::Netdev;

use crate::daemon::Inner;
use crate::handlers::MAX_TRAFFIC_FRAMES;
use crate::protocol::Reply;

#[cfg(feature = "sim")]
pub(crate) fn traffic_start(
    inner: &Inner,
    nd: &Arc<Netdev>,
    frames: u64,
    sizes: Vec<u32>,
) -> Result<Reply, String> {
    if inner.tap.is_some() {
        return Err(
            "the NIC is bridged to a TAP interface: the traffic generator needs it free".into(),
        );
    }
    let Some(sim) = &inner.sim else {
        return Err("the traffic generator needs the simulated peer (--sim)".into());
    };
    if frames == 0 || frames > MAX_TRAFFIC_FRAMES {
        return Err(format!(
            "traffic of {frames} frames: give 1 to {MAX_TRAFFIC_FRAMES}"
        ));
    }
    let sizes = if sizes.is_empty() { vec![60] } else { sizes };
    if let Some(bad) = sizes.iter().find(|s| !(60..=1514).contains(*s)) {
        return Err(format!(
            "frame size {bad}: give 60 to 1514 bytes (without FCS)"
        ));
    }
    crate::handlers::ensure_running(nd, "traffic")?;
    let sizes = sizes.into_iter().map(|s| s as usize).collect();
    let mut slot = inner.traffic_thread.lock();
    if let Some(old) = slot.take() {
        if old.is_finished() {
            let _ = old.join();
        } else {
            *slot = Some(old);
            return Err("a traffic stream is already running (see `e1000ctl traffic`)".into());
        }
    }
    let t = inner.stack.start_traffic(
        Arc::clone(nd),
        Arc::clone(sim),
        frames,
        sizes,
        Arc::clone(&inner.stop),
    )?;
    *slot = Some(t);
    Ok(Reply::Traffic(inner.stack.traffic_report(sim)))
}

#[cfg(feature = "sim")]
pub(crate) fn traffic_status(inner: &Inner) -> Result<Reply, String> {
    let Some(sim) = &inner.sim else {
        return Err("the traffic generator needs the simulated peer (--sim)".into());
    };
    Ok(Reply::Traffic(inner.stack.traffic_report(sim)))
}

#[cfg(feature = "sim")]
pub(crate) fn wake(inner: &Inner, nd: &Arc<Netdev>) -> Result<Reply, String> {
    let Some(sim) = &inner.sim else {
        return Err(
            "wake needs the simulated peer (--sim); on a real wire send the magic \
             packet from another host (etherwake)"
                .into(),
        );
    };
    // Addressed to the MAC in RA[0], which is what the magic-packet filter
    // matches (SDM 6.4.3.1.4); the peer is the frame's source.
    let mac = nd.with_adapter(|a| a.mac);
    let (peer_mac, _) = sim.peer_addr();
    sim.peer_send(e1000_sim::net::magic_packet(mac, peer_mac, mac));
    Ok(Reply::Done)
}

/// Plugs or unplugs the simulated wire's cable.
#[cfg(feature = "sim")]
pub(crate) fn cable(inner: &Inner, plugged: bool) -> Result<Reply, String> {
    let Some(sim) = &inner.sim else {
        return Err("cable needs the simulated wire (--sim); on a real one, pull the cable".into());
    };
    sim.set_link(plugged);
    tracing::info!(plugged, "simulated cable");
    Ok(Reply::Done)
}

#[cfg(not(feature = "sim"))]
pub(crate) fn cable(_: &Inner, _: bool) -> Result<Reply, String> {
    Err(NO_PEER.into())
}

#[cfg(not(feature = "sim"))]
const NO_PEER: &str = "this e1000d was built without the device model (`--features sim`): \
                       the traffic generator and wake need the simulated peer";

#[cfg(not(feature = "sim"))]
pub(crate) fn traffic_start(
    _: &Inner,
    _: &Arc<Netdev>,
    _: u64,
    _: Vec<u32>,
) -> Result<Reply, String> {
    let _ = MAX_TRAFFIC_FRAMES;
    Err(NO_PEER.into())
}

#[cfg(not(feature = "sim"))]
pub(crate) fn traffic_status(_: &Inner) -> Result<Reply, String> {
    Err(NO_PEER.into())
}

#[cfg(not(feature = "sim"))]
pub(crate) fn wake(_: &Inner, _: &Arc<Netdev>) -> Result<Reply, String> {
    Err(NO_PEER.into())
}
