//! Shared helpers: a model with fast auto-negotiation and a started driver on it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use e1000::netdev::{Netdev, Options};
use e1000_sim::{E1000Sim, SimConfig, Variant};

pub const OUR_IP: [u8; 4] = [10, 0, 2, 15];
pub const PEER_MAC: [u8; 6] = [0x52, 0x55, 0x0A, 0x00, 0x02, 0x02];
pub const PEER_IP: [u8; 4] = [10, 0, 2, 2];

pub fn config(variant: Variant) -> SimConfig {
    SimConfig {
        variant,
        autoneg_time: Duration::from_millis(2),
        ..SimConfig::default()
    }
}

pub fn start_with(cfg: SimConfig, opts: Options) -> (Arc<E1000Sim>, Netdev) {
    let (sim, hw) = e1000_sim::start(cfg).expect("model starts");
    let nd = Netdev::start(hw, opts).expect("probe succeeds");
    (sim, nd)
}

pub fn start(variant: Variant) -> (Arc<E1000Sim>, Netdev) {
    start_with(config(variant), Options::default())
}

/// Started, opened and with the link up.
pub fn up(variant: Variant) -> (Arc<E1000Sim>, Netdev) {
    let (sim, nd) = start(variant);
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(5)), "link came up");
    (sim, nd)
}

pub fn reg(sim: &E1000Sim, off: u32) -> u32 {
    e1000_sim::Mmio::read32(sim, off)
}

/// The MTA bit `mac` hashes to (RCTL.MO = 0) is set.
pub fn mta_bit(sim: &E1000Sim, mac: [u8; 6]) -> bool {
    let h = u32::from(e1000::regs::mta_hash(mac, 0));
    reg(sim, e1000::regs::MTA + 4 * (h >> 5)) & (1 << (h & 31)) != 0
}

/// The VFTA bit of `vid` is set.
pub fn vfta_bit(sim: &E1000Sim, vid: u16) -> bool {
    let vid = u32::from(vid);
    reg(sim, e1000::regs::VFTA + 4 * (vid >> 5)) & (1 << (vid & 31)) != 0
}

/// `RA[n]` holds `mac` and is valid.
pub fn ra_is(sim: &E1000Sim, n: u32, mac: [u8; 6]) -> bool {
    use e1000::regs::{ra_to_mac, rah, RAH, RAL};
    let (lo, hi) = (reg(sim, RAL + 8 * n), reg(sim, RAH + 8 * n));
    hi & rah::AV != 0 && ra_to_mac(lo, hi) == mac
}

/// What the peer received, waiting (up to `wait`) until it holds `n` frames.
pub fn take_peer(sim: &E1000Sim, n: usize, wait: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let end = Instant::now() + wait;
    while got.len() < n && Instant::now() < end {
        got.extend(sim.peer_take_received());
        std::thread::sleep(Duration::from_millis(1));
    }
    got
}

/// Reads PHY register `reg` through the driver's MDIC access.
pub fn phy_reg(nd: &Netdev, reg: u32) -> u16 {
    nd.with_adapter(|a| e1000::phy::read(a, reg))
        .expect("PHY read")
}

/// Waits (up to 5 s) for `cond` (the model's device thread works asynchronously).
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// WUC as shutdown (and suspend) arm it for magic-packet wake-up (SDM 13.6): PME_EN for the
/// ACPI filters, APME for the magic packet's APM wake-up, and APMPME on the 82540 and later.
pub fn wuc_armed_for_magic(v: Variant) -> u32 {
    use e1000::regs::wuc;
    if v == Variant::I82544GC {
        wuc::PME_EN | wuc::APME
    } else {
        wuc::PME_EN | wuc::APME | wuc::APMPME
    }
}
