//! Each configuration operation changes the hardware as the 8254x manual says.

mod common;

use std::time::Duration;

use common::*;
use e1000::adapter::{Coalesce, LinkRequest, PauseParam, RxMode};
use e1000::regs::{self, ctrl, rah, rctl, *};
use e1000::{config, ethtool, phy, TxPacket};
use e1000_sim::net;
use e1000_sim::Variant;

#[test]
fn rx_mode_promisc_allmulti_mta_and_extra_unicast() {
    let (sim, nd) = up(Variant::I82540EM);
    let set = |m: RxMode| {
        nd.with_adapter(|a| config::set_rx_mode_to(a, &m))
            .expect("rx mode")
    };
    set(RxMode {
        promisc: true,
        ..RxMode::default()
    });
    assert_eq!(
        reg(&sim, RCTL) & (rctl::UPE | rctl::MPE),
        rctl::UPE | rctl::MPE
    );
    set(RxMode {
        allmulti: true,
        ..RxMode::default()
    });
    assert_eq!(reg(&sim, RCTL) & (rctl::UPE | rctl::MPE), rctl::MPE);

    // Multicast list: each address sets bit (hash & 31) of MTA[hash >> 5], MO = 0.
    let groups = [
        [0x01, 0x00, 0x5E, 0x00, 0x00, 0x01],
        [0x01, 0x00, 0x5E, 0x7F, 0x12, 0x34],
        [0x33, 0x33, 0x00, 0x00, 0x00, 0xFB],
    ];
    let extra = [[0x02, 0, 0, 0, 0, 1], [0x02, 0, 0, 0, 0, 2]];
    set(RxMode {
        multicast: groups.to_vec(),
        unicast: extra.to_vec(),
        ..RxMode::default()
    });
    assert_eq!(reg(&sim, RCTL) & (rctl::UPE | rctl::MPE | rctl::MO_MASK), 0);
    let mut want = [0u32; 128];
    for g in groups {
        let h = u32::from(regs::mta_hash(g, 0));
        want[(h >> 5) as usize] |= 1 << (h & 31);
    }
    for (i, w) in want.iter().enumerate() {
        assert_eq!(reg(&sim, MTA + 4 * i as u32), *w, "MTA[{i}]");
    }
    for (n, m) in extra.iter().enumerate() {
        let (lo, hi) = regs::mac_to_ra(*m);
        let n = n as u32 + 1;
        assert_eq!(reg(&sim, RAL + 8 * n), lo);
        assert_eq!(reg(&sim, RAH + 8 * n), hi | rah::AV);
    }
    assert_eq!(
        reg(&sim, RAH + 8 * 3) & rah::AV,
        0,
        "unused entries invalid"
    );

    // The filters work: a listed group and an extra unicast address get through, an
    // unlisted group does not.
    for (dst, pass) in [
        (groups[1], true),
        (extra[1], true),
        ([0x01, 0, 0x5E, 1, 2, 3], false),
    ] {
        sim.peer_send(net::stream_frame(dst, PEER_MAC, 1, 80));
        let got = nd.recv(Duration::from_millis(if pass { 2000 } else { 100 }));
        assert_eq!(got.is_some(), pass, "{dst:02x?}");
    }

    // More unicast addresses than RA[1..16] holds: unicast promiscuous instead.
    let many: Vec<[u8; 6]> = (0..20u8).map(|i| [0x02, 0, 0, 0, 1, i]).collect();
    set(RxMode {
        unicast: many,
        ..RxMode::default()
    });
    assert_eq!(reg(&sim, RCTL) & rctl::UPE, rctl::UPE);
    // Invalid entries are refused.
    let r = nd.with_adapter(|a| {
        config::set_rx_mode_to(
            a,
            &RxMode {
                multicast: vec![[0x02, 0, 0, 0, 0, 9]],
                ..RxMode::default()
            },
        )
    });
    assert!(r.is_err());
    nd.shutdown().expect("remove");
}

/// A reset of a closed interface (the reset task) programs the receive filters again:
/// extra unicast addresses, the multicast hash and the VLAN filter survive it.
#[test]
fn reset_while_closed_keeps_the_receive_filters() {
    let (sim, nd) = up(Variant::I82540EM);
    let group = [0x01, 0x00, 0x5E, 0x00, 0x00, 0x07];
    let extra = [0x02, 0, 0, 0, 0, 9];
    let mode = RxMode {
        multicast: vec![group],
        unicast: vec![extra],
        ..RxMode::default()
    };
    nd.with_adapter(|a| config::set_rx_mode_to(a, &mode))
        .expect("rx mode");
    nd.with_adapter(|a| config::vlan_add(a, 100)).expect("vlan");
    nd.close().expect("close");
    nd.with_adapter(config::reset_task).expect("reset task");
    let (lo, hi) = regs::mac_to_ra(extra);
    assert_eq!((reg(&sim, RAL + 8), reg(&sim, RAH + 8)), (lo, hi | rah::AV));
    let h = u32::from(regs::mta_hash(group, 0));
    assert_ne!(
        reg(&sim, MTA + 4 * (h >> 5)) & (1 << (h & 31)),
        0,
        "MTA bit"
    );
    assert_ne!(
        reg(&sim, VFTA + 4 * (100 >> 5)) & (1 << (100 & 31)),
        0,
        "VFTA bit"
    );
    nd.shutdown().expect("remove");
}

#[test]
fn set_mac_programs_ra0_and_receives_on_it() {
    let (sim, nd) = up(Variant::I82545EM);
    let new = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    nd.with_adapter(|a| config::set_mac(a, new))
        .expect("set mac");
    let (lo, hi) = regs::mac_to_ra(new);
    assert_eq!((reg(&sim, RAL), reg(&sim, RAH)), (lo, hi | rah::AV));
    sim.peer_send(net::stream_frame(new, PEER_MAC, 3, 64));
    assert!(nd.recv(Duration::from_secs(2)).is_some());
    sim.peer_send(net::stream_frame(sim.mac(), PEER_MAC, 4, 64));
    assert!(
        nd.recv(Duration::from_millis(100)).is_none(),
        "old address no longer ours"
    );
    for bad in [[0x01, 0, 0, 0, 0, 1], [0; 6]] {
        assert!(nd.with_adapter(|a| config::set_mac(a, bad)).is_err());
    }
    nd.shutdown().expect("remove");
}

#[test]
fn mtu_sets_long_packets_and_buffer_size() {
    let (sim, nd) = up(Variant::I82540EM);
    assert_eq!(
        reg(&sim, RCTL) & (rctl::LPE | rctl::BSEX | rctl::BSIZE_MASK),
        0
    );
    nd.with_adapter(|a| config::change_mtu(a, 9000))
        .expect("MTU 9000");
    let r = reg(&sim, RCTL);
    assert!(r & rctl::LPE != 0 && r & rctl::EN != 0);
    assert_eq!(rctl::buffer_size(r), Some(4096));
    nd.with_adapter(|a| config::change_mtu(a, 16110))
        .expect("MTU 16110");
    for bad in [67, 16111] {
        assert!(nd.with_adapter(|a| config::change_mtu(a, bad)).is_err());
    }
    nd.with_adapter(|a| config::change_mtu(a, 1500))
        .expect("MTU 1500");
    assert_eq!(reg(&sim, RCTL) & rctl::LPE, 0);
    assert_eq!(rctl::buffer_size(reg(&sim, RCTL)), Some(2048));
    nd.shutdown().expect("remove");
}

#[test]
fn vlan_filter_add_and_kill() {
    let (sim, nd) = up(Variant::I82540EM);
    nd.with_adapter(|a| config::vlan_add(a, 100)).expect("add");
    nd.with_adapter(|a| config::vlan_add(a, 101)).expect("add");
    assert_eq!(
        reg(&sim, VFTA + 4 * (100 >> 5)),
        (1 << (100 & 31)) | (1 << (101 & 31))
    );
    assert!(reg(&sim, RCTL) & rctl::VFE != 0);
    assert!(reg(&sim, CTRL) & ctrl::VME != 0);
    nd.with_adapter(|a| config::vlan_kill(a, 100))
        .expect("kill");
    assert_eq!(reg(&sim, VFTA + 4 * 3), 1 << (101 & 31));
    nd.with_adapter(|a| config::vlan_kill(a, 101))
        .expect("kill");
    assert_eq!(reg(&sim, VFTA + 4 * 3), 0);
    assert_eq!(reg(&sim, RCTL) & rctl::VFE, 0);
    assert!(nd.with_adapter(|a| config::vlan_add(a, 4095)).is_err());
    nd.with_adapter(|a| config::set_vlan_offload(a, false))
        .expect("vme off");
    assert_eq!(reg(&sim, CTRL) & ctrl::VME, 0);
    nd.shutdown().expect("remove");
}

#[test]
fn coalesce_programs_the_delay_timers_and_itr() {
    let (sim, nd) = up(Variant::I82540EM);
    let c = Coalesce {
        rx_usecs: 100,
        rx_abs_usecs: 200,
        tx_usecs: 50,
        tx_abs_usecs: 400,
        max_irq_rate: 8000,
        adaptive: false,
    };
    nd.with_adapter(|a| ethtool::set_coalesce(a, &c))
        .expect("coalesce");
    // 1.024 us units for the timers, 256 ns units for ITR.
    assert_eq!(reg(&sim, RDTR), 97);
    assert_eq!(reg(&sim, RADV), 195);
    assert_eq!(reg(&sim, TIDV), 48);
    assert_eq!(reg(&sim, TADV), 390);
    assert_eq!(reg(&sim, ITR), 488);
    assert_eq!(
        nd.with_adapter(|a| ethtool::get_coalesce(a))
            .expect("coalesce"),
        c
    );
    let bad = Coalesce {
        max_irq_rate: 5,
        ..c
    };
    assert!(nd.with_adapter(|a| ethtool::set_coalesce(a, &bad)).is_err());
    // Traffic still flows with delayed interrupts.
    let mac = sim.mac();
    let arp = net::arp(1, mac, OUR_IP, [0; 6], PEER_IP);
    nd.send(&TxPacket::new(arp), Duration::from_secs(2))
        .expect("send");
    assert!(nd.recv(Duration::from_secs(2)).is_some());
    nd.shutdown().expect("remove");
}

#[test]
fn pause_parameters_set_ctrl_and_advertisement() {
    let (sim, nd) = up(Variant::I82540EM);
    assert_eq!(
        reg(&sim, CTRL) & (ctrl::RFCE | ctrl::TFCE),
        ctrl::RFCE | ctrl::TFCE
    );
    assert_eq!(reg(&sim, FCAL), regs::flow::FCAL_VALUE);
    assert_eq!(reg(&sim, FCT), regs::flow::FCT_VALUE);
    let p = PauseParam {
        autoneg: true,
        rx_pause: true,
        tx_pause: false,
    };
    nd.with_adapter(|a| ethtool::set_pauseparam(a, &p))
        .expect("pause");
    assert_eq!(reg(&sim, CTRL) & (ctrl::RFCE | ctrl::TFCE), ctrl::RFCE);
    let anar = nd
        .with_adapter(|a| phy::read(a, regs::phy::ANAR))
        .expect("ANAR");
    assert!(anar & regs::phy::anar::PAUSE != 0 && anar & regs::phy::anar::ASM_DIR != 0);
    let off = PauseParam {
        autoneg: false,
        rx_pause: false,
        tx_pause: false,
    };
    nd.with_adapter(|a| ethtool::set_pauseparam(a, &off))
        .expect("pause off");
    assert_eq!(reg(&sim, CTRL) & (ctrl::RFCE | ctrl::TFCE), 0);
    assert_eq!(
        nd.with_adapter(|a| ethtool::get_pauseparam(a))
            .expect("pause"),
        off
    );
    nd.shutdown().expect("remove");
}

#[test]
fn forced_speed_and_duplex_then_autoneg_again() {
    let (sim, nd) = up(Variant::I82540EM);
    let forced = LinkRequest {
        autoneg: false,
        advertise: phy::ADV_ALL,
        speed: 100,
        full_duplex: true,
        mdix: phy::ETH_TP_MDI_AUTO,
    };
    nd.with_adapter(|a| ethtool::set_link_ksettings(a, &forced))
        .expect("force");
    let c = reg(&sim, CTRL);
    assert!(c & ctrl::FRCSPD != 0 && c & ctrl::FRCDPLX != 0 && c & ctrl::FD != 0);
    assert_eq!(c & ctrl::SPEED_MASK, 1 << 8);
    let bmcr = nd
        .with_adapter(|a| phy::read(a, regs::phy::BMCR))
        .expect("BMCR");
    assert_eq!(bmcr & regs::phy::bmcr::AN_ENABLE, 0);
    assert!(bmcr & regs::phy::bmcr::SPEED_LSB != 0 && bmcr & regs::phy::bmcr::FD != 0);
    let mut speed = 0;
    for _ in 0..200 {
        let s = nd.with_adapter(ethtool::get_link_ksettings).expect("get");
        speed = s.speed;
        if s.link_up && s.speed == 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(speed, 100);
    let bad = LinkRequest {
        speed: 1000,
        full_duplex: false,
        ..forced
    };
    assert!(nd
        .with_adapter(|a| ethtool::set_link_ksettings(a, &bad))
        .is_err());
    nd.with_adapter(|a| ethtool::set_link_ksettings(a, &LinkRequest::default()))
        .expect("autoneg");
    assert_eq!(reg(&sim, CTRL) & (ctrl::FRCSPD | ctrl::FRCDPLX), 0);
    assert!(nd.wait_link(Duration::from_secs(5)));
    nd.shutdown().expect("remove");
}
