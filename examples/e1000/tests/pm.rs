//! Suspend and resume on the model: suspend arms wake-up as shutdown does, a wake-up event
//! is reported at resume, and resume brings back the configuration (addresses, filters,
//! VLANs, rings) with traffic flowing again.

mod common;

use std::time::Duration;

use common::*;
use e1000::adapter::RxMode;
use e1000::config::RingParam;
use e1000::netdev::Netdev;
use e1000::regs::phy::{bmcr, BMCR};
use e1000::regs::{self, ctrl, rctl, status, wuc, wufc};
use e1000::wol::{WAKE_BCAST, WAKE_MAGIC};
use e1000::{config, ethtool, pm, DriverError, TxPacket};
use e1000_sim::{net, Variant};

const NEW_MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
const EXTRA_UCAST: [u8; 6] = [0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01];
const GROUP: [u8; 6] = [0x01, 0x00, 0x5E, 0x00, 0x00, 0xFB];
const VID: u16 = 42;

/// The configuration the tests expect resume to restore.
fn configure(nd: &Netdev) {
    nd.with_adapter(|a| config::set_mac(a, NEW_MAC))
        .expect("MAC");
    let mode = RxMode {
        multicast: vec![GROUP],
        unicast: vec![EXTRA_UCAST],
        ..RxMode::default()
    };
    nd.with_adapter(|a| config::set_rx_mode_to(a, &mode))
        .expect("rx mode");
    nd.with_adapter(|a| config::vlan_add(a, VID)).expect("VLAN");
    let rings = RingParam {
        rx: 512,
        tx: 1024,
        rx_max: 4096,
        tx_max: 4096,
    };
    nd.with_adapter(|a| config::set_ringparam(a, &rings))
        .expect("rings");
}

/// An ARP request from our (new) address and a ping: both answered by the model's peer.
fn traffic_works(nd: &Netdev) {
    let arp = net::arp(1, NEW_MAC, OUR_IP, [0; 6], PEER_IP);
    nd.send(&TxPacket::new(arp), Duration::from_secs(2))
        .expect("send ARP");
    let reply = nd.recv(Duration::from_secs(5)).expect("ARP reply");
    assert_eq!(net::ethertype(&reply.data), net::ETHERTYPE_ARP);
    assert_eq!(&reply.data[..6], &NEW_MAC, "the reply is to RA[0]");
    let payload: Vec<u8> = (0..56u8).collect();
    let ping = net::icmp_echo(8, NEW_MAC, PEER_MAC, OUR_IP, PEER_IP, 0x77, 1, &payload);
    nd.send(&TxPacket::new(ping.clone()), Duration::from_secs(2))
        .expect("send ping");
    let pong = nd.recv(Duration::from_secs(5)).expect("echo reply");
    assert_eq!(pong.data.len(), ping.len());
    assert_eq!(pong.data[34], 0, "ICMP echo reply");
    assert_eq!(&pong.data[42..], &payload[..]);
}

#[test]
fn suspend_with_magic_armed_wakes_on_a_magic_packet_and_resume_restores_everything() {
    for v in [Variant::I82540EM, Variant::I82544GC] {
        let (sim, nd) = up(v);
        configure(&nd);
        nd.with_adapter(|a| ethtool::set_wol(a, WAKE_MAGIC | WAKE_BCAST))
            .expect("wol");
        nd.with_adapter(pm::suspend).expect("suspend");
        nd.with_adapter(|a| {
            assert!(a.pm.suspended && a.pm.was_up);
            assert!(!a.up, "closed while suspended");
            assert!(!a.link.up, "no stale link while suspended");
        });

        // Armed as shutdown arms (SDM 13.6): the filters, PME_EN and APME (APMPME on the
        // 82540 and later), the address filter accepting broadcast, no receive DMA.
        assert_eq!(reg(&sim, regs::WUFC), wufc::MAG | wufc::BC, "{v:?}");
        assert_eq!(reg(&sim, regs::WUC), wuc_armed_for_magic(v), "{v:?}");
        let r = reg(&sim, regs::RCTL);
        assert_ne!(r & rctl::BAM, 0);
        assert_eq!(r & rctl::EN, 0, "no receive DMA while suspended");
        if v != Variant::I82544GC {
            let adv = ctrl::ADVD3WUC | ctrl::EN_PHY_PWR_MGMT;
            assert_eq!(reg(&sim, regs::CTRL) & adv, adv);
        }
        assert_eq!(phy_reg(&nd, BMCR) & bmcr::POWER_DOWN, 0, "PHY kept up");
        assert!(ra_is(&sim, 0, NEW_MAC), "magic packets name RA[0]");

        // Opening while suspended is refused; so is a second suspend.
        let e = nd.open().expect_err("open while suspended");
        assert!(matches!(e, DriverError::WrongState { .. }), "{e}");
        assert!(e.to_string().contains("resume"), "{e}");
        let e = nd
            .with_adapter(pm::suspend)
            .expect_err("suspend while suspended");
        assert!(matches!(e, DriverError::WrongState { .. }), "{e}");
        assert!(e.to_string().contains("resume it first"), "{e}");
        // The watchdog leaves a suspended device alone.
        let wd = nd
            .with_adapter(e1000::link::watchdog)
            .expect("watchdog while suspended");
        assert!(!wd.link_changed && !wd.tx_hang);

        // A magic packet for our address wakes the device (WUS.MAG, PME_Status).
        sim.peer_send(net::magic_packet(NEW_MAC, PEER_MAC, NEW_MAC));
        wait_for("WUS.MAG", || reg(&sim, regs::WUS) & wufc::MAG != 0);
        assert_ne!(reg(&sim, regs::WUC) & wuc::PME_STATUS, 0);

        let rep = nd.with_adapter(pm::resume).expect("resume");
        assert!(rep.woke_by_wake_up(), "{v:?}");
        assert_eq!(rep.wake_status, wufc::MAG, "{v:?}");
        assert_eq!(rep.woken_by, WAKE_MAGIC);
        assert!(rep.reopened);
        let info = nd.with_adapter(|a| ethtool::get_wol(a)).expect("get_wol");
        assert_eq!((info.wake_status, info.woken_by), (wufc::MAG, WAKE_MAGIC));
        assert_eq!(info.wolopts, WAKE_MAGIC | WAKE_BCAST, "WoL choice kept");
        // WUS cleared, wake-up off while running.
        assert_eq!(reg(&sim, regs::WUS), 0);
        assert_eq!(reg(&sim, regs::WUC), 0);
        assert_eq!(reg(&sim, regs::WUFC), 0);

        // The configuration is back in the hardware.
        assert!(ra_is(&sim, 0, NEW_MAC), "{v:?}: RA[0]");
        assert!(ra_is(&sim, 1, EXTRA_UCAST), "{v:?}: RA[1]");
        assert!(ra_is(&sim, 2, GROUP), "{v:?}: RA[2] (the group)");
        assert!(vfta_bit(&sim, VID), "{v:?}: VFTA");
        let r = reg(&sim, regs::RCTL);
        assert_ne!(r & rctl::EN, 0);
        assert_ne!(r & rctl::VFE, 0);
        assert_eq!(reg(&sim, regs::RDLEN), 512 * 16);
        assert_eq!(reg(&sim, regs::TDLEN), 1024 * 16);
        nd.with_adapter(|a| assert!(a.up && !a.pm.suspended));

        assert!(nd.wait_link(Duration::from_secs(5)), "{v:?}: link back");
        assert_ne!(reg(&sim, regs::STATUS) & status::LU, 0);
        traffic_works(&nd);
        nd.shutdown().expect("remove");
        assert!(sim.faults().is_empty(), "{v:?}: {:?}", sim.faults());
    }
}

#[test]
fn suspend_without_wol_powers_the_phy_down_and_resume_brings_the_link_back() {
    let (sim, nd) = up(Variant::I82540EM);
    configure(&nd);
    nd.with_adapter(pm::suspend).expect("suspend");
    // As shutdown with WoL off: wake-up off, the PHY powered down, the link gone.
    assert_eq!(reg(&sim, regs::WUC), 0);
    assert_eq!(reg(&sim, regs::WUFC), 0);
    assert_ne!(phy_reg(&nd, BMCR) & bmcr::POWER_DOWN, 0);
    wait_for("the link to drop", || {
        reg(&sim, regs::STATUS) & status::LU == 0
    });
    let rep = nd.with_adapter(pm::resume).expect("resume");
    assert!(!rep.woke_by_wake_up());
    assert_eq!((rep.wake_status, rep.woken_by), (0, 0));
    assert!(rep.reopened);
    assert_eq!(phy_reg(&nd, BMCR) & bmcr::POWER_DOWN, 0, "PHY powered up");
    assert!(nd.wait_link(Duration::from_secs(5)), "link back");
    assert!(ra_is(&sim, 0, NEW_MAC));
    assert!(ra_is(&sim, 1, EXTRA_UCAST));
    assert!(ra_is(&sim, 2, GROUP));
    assert!(vfta_bit(&sim, VID));
    assert_eq!(reg(&sim, regs::RDLEN), 512 * 16);
    assert_eq!(reg(&sim, regs::TDLEN), 1024 * 16);
    traffic_works(&nd);
    nd.shutdown().expect("remove");
}

#[test]
fn suspend_while_closed_resumes_closed_with_the_filters_programmed() {
    let (sim, nd) = start(Variant::I82540EM);
    configure(&nd);
    nd.with_adapter(pm::suspend).expect("suspend");
    nd.with_adapter(|a| assert!(a.pm.suspended && !a.pm.was_up));
    let rep = nd.with_adapter(pm::resume).expect("resume");
    assert!(!rep.reopened);
    nd.with_adapter(|a| assert!(!a.up && !a.pm.suspended));
    assert_eq!(reg(&sim, regs::RCTL) & rctl::EN, 0, "still closed");
    assert!(ra_is(&sim, 0, NEW_MAC));
    assert!(ra_is(&sim, 1, EXTRA_UCAST));
    assert!(ra_is(&sim, 2, GROUP));
    assert!(vfta_bit(&sim, VID));
    // Opening afterwards works with the configured rings.
    nd.open().expect("open after resume");
    assert!(nd.wait_link(Duration::from_secs(5)));
    assert_eq!(reg(&sim, regs::RDLEN), 512 * 16);
    traffic_works(&nd);
    nd.shutdown().expect("remove");
}

/// The reset task (scheduled, say, after a resume died midway) leaves a suspended device
/// suspended: reset, wake-up armed again, receive DMA off; resume then brings it back.
#[test]
fn a_reset_while_suspended_rearms_wake_up() {
    let (sim, nd) = up(Variant::I82540EM);
    configure(&nd);
    nd.with_adapter(|a| ethtool::set_wol(a, WAKE_MAGIC))
        .expect("wol");
    nd.with_adapter(pm::suspend).expect("suspend");
    // What a resume that died after its reset leaves: wake-up off.
    nd.with_adapter(|a| {
        a.wr(regs::WUC, 0)?;
        a.wr(regs::WUFC, 0)
    })
    .expect("half resumed");
    let resets = nd.with_adapter(|a| a.wd.resets);
    nd.with_adapter(config::reset_task).expect("reset task");
    nd.with_adapter(|a| {
        assert!(a.pm.suspended && a.pm.was_up && !a.up);
        assert_eq!(a.wd.resets, resets + 1);
    });
    assert_eq!(reg(&sim, regs::WUFC), wufc::MAG);
    assert_eq!(reg(&sim, regs::WUC), wuc_armed_for_magic(Variant::I82540EM));
    assert_eq!(reg(&sim, regs::RCTL) & rctl::EN, 0, "no receive DMA");
    assert!(ra_is(&sim, 0, NEW_MAC), "magic packets name RA[0]");
    let rep = nd.with_adapter(pm::resume).expect("resume");
    assert!(rep.reopened);
    assert!(nd.wait_link(Duration::from_secs(5)), "link back");
    traffic_works(&nd);
    nd.shutdown().expect("remove");
}

#[test]
fn resume_without_suspend_is_refused_and_changes_nothing() {
    let (sim, nd) = up(Variant::I82540EM);
    let rctl_before = reg(&sim, regs::RCTL);
    let e = nd.with_adapter(pm::resume).expect_err("not suspended");
    assert!(matches!(e, DriverError::WrongState { .. }), "{e}");
    assert!(e.to_string().contains("suspend it first"), "{e}");
    assert_eq!(reg(&sim, regs::RCTL), rctl_before);
    nd.with_adapter(|a| assert!(a.up));
    // A full cycle, then resume again: refused.
    nd.with_adapter(pm::suspend).expect("suspend");
    nd.with_adapter(pm::resume).expect("resume");
    let e = nd.with_adapter(pm::resume).expect_err("resumed twice");
    assert!(matches!(e, DriverError::WrongState { .. }), "{e}");
    nd.shutdown().expect("remove");
}
