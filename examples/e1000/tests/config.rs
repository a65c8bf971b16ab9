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

    // A short multicast list: the extra unicast addresses take RA[1..3], the groups the
    // entries after them (exact filters), and the MTA stays empty; MO = 0.
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
    for (n, m) in extra.iter().chain(&groups).enumerate() {
        let (lo, hi) = regs::mac_to_ra(*m);
        let n = n as u32 + 1;
        assert_eq!(reg(&sim, RAL + 8 * n), lo, "RAL[{n}]");
        assert_eq!(reg(&sim, RAH + 8 * n), hi | rah::AV, "RAH[{n}]");
    }
    assert_eq!(
        reg(&sim, RAH + 8 * 6) & rah::AV,
        0,
        "unused entries invalid"
    );
    assert!(
        (0..MTA_LEN).all(|i| reg(&sim, MTA + 4 * i) == 0),
        "MTA empty"
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
/// The MTA words with the hash bits (MO = 0) of `groups` set.
fn mta_of(groups: &[[u8; 6]]) -> Vec<u32> {
    let mut want = vec![0u32; MTA_LEN as usize];
    for g in groups {
        let h = u32::from(regs::mta_hash(*g, 0));
        want[(h >> 5) as usize] |= 1 << (h & 31);
    }
    want
}

/// `n` consecutive 32-bit registers from `base`.
fn reg_words(sim: &e1000_sim::E1000Sim, base: u32, n: u32) -> Vec<u32> {
    (0..n).map(|i| reg(sim, base + 4 * i)).collect()
}

/// Groups beyond the spare exact filters are hashed, and both kinds of filter pass their
/// groups while an unlisted group (even one sharing no entry) stays out.
#[test]
fn multicast_groups_fill_the_spare_exact_filters_then_the_hash() {
    let (sim, nd) = up(Variant::I82545EM);
    let extra = [[0x02, 0, 0, 0, 0, 1], [0x02, 0, 0, 0, 0, 2]];
    let groups: Vec<[u8; 6]> = (0..20u8).map(|i| [0x01, 0, 0x5E, 0, 1, i]).collect();
    let set = |m: RxMode| {
        nd.with_adapter(|a| config::set_rx_mode_to(a, &m))
            .expect("rx mode")
    };
    set(RxMode {
        multicast: groups.clone(),
        unicast: extra.to_vec(),
        ..RxMode::default()
    });
    // RA[1..3] the unicast addresses, RA[3..16] the first 13 groups, the other 7 hashed.
    assert!(ra_is(&sim, 1, extra[0]) && ra_is(&sim, 2, extra[1]));
    let (exact, hashed) = groups.split_at(13);
    for (n, g) in exact.iter().enumerate() {
        assert!(ra_is(&sim, n as u32 + 3, *g), "RA[{}] = {g:02x?}", n + 3);
    }
    assert_eq!(reg_words(&sim, MTA, MTA_LEN), mta_of(hashed));
    assert_eq!(reg(&sim, RCTL) & (rctl::UPE | rctl::MPE), 0);
    for (dst, pass) in [
        (groups[0], true),
        (groups[12], true),
        (groups[19], true),
        ([0x01, 0, 0x5E, 0, 2, 0], false),
    ] {
        sim.peer_send(net::stream_frame(dst, PEER_MAC, 1, 80));
        let got = nd.recv(Duration::from_millis(if pass { 2000 } else { 100 }));
        assert_eq!(got.is_some(), pass, "{dst:02x?}");
    }

    // Unicast promiscuous (more addresses than fit): the unicast entries go to the groups,
    // so 15 of them are exact now and 5 hashed.
    let many: Vec<[u8; 6]> = (0..16u8).map(|i| [0x02, 0, 0, 0, 1, i]).collect();
    set(RxMode {
        multicast: groups.clone(),
        unicast: many,
        ..RxMode::default()
    });
    assert_eq!(reg(&sim, RCTL) & (rctl::UPE | rctl::MPE), rctl::UPE);
    for (n, g) in groups[..15].iter().enumerate() {
        assert!(ra_is(&sim, n as u32 + 1, *g), "RA[{}] = {g:02x?}", n + 1);
    }
    assert_eq!(reg_words(&sim, MTA, MTA_LEN), mta_of(&groups[15..]));
    nd.shutdown().expect("remove");
}

/// Promiscuous mode takes every VLAN too (RCTL.VFE off); leaving it brings the filter back.
#[test]
fn promiscuous_mode_turns_the_vlan_filter_off() {
    let (sim, nd) = up(Variant::I82540EM);
    let mac = sim.mac();
    nd.with_adapter(|a| config::vlan_add(a, 42)).expect("vlan");
    let tagged = |vid: u16| {
        let mut f = net::stream_frame(mac, PEER_MAC, u64::from(vid), 100);
        f.splice(12..12, [0x81, 0x00, (vid >> 8) as u8, vid as u8]);
        f
    };
    let set = |promisc: bool| {
        let m = RxMode {
            promisc,
            ..RxMode::default()
        };
        nd.with_adapter(|a| config::set_rx_mode_to(a, &m))
            .expect("rx mode")
    };
    assert_ne!(reg(&sim, RCTL) & rctl::VFE, 0);
    sim.peer_send(tagged(43));
    assert!(nd.recv(Duration::from_millis(100)).is_none(), "43 filtered");

    set(true);
    assert_eq!(
        reg(&sim, RCTL) & rctl::VFE,
        0,
        "promiscuous: no VLAN filter"
    );
    // Adding or removing ids while promiscuous leaves the filter off.
    nd.with_adapter(|a| config::vlan_add(a, 7)).expect("vlan");
    assert_eq!(reg(&sim, RCTL) & rctl::VFE, 0);
    assert!(vfta_bit(&sim, 7) && vfta_bit(&sim, 42), "the table is kept");
    sim.peer_send(tagged(43));
    let f = nd
        .recv(Duration::from_secs(2))
        .expect("VLAN 43 while promiscuous");
    assert_eq!(f.vlan, Some(43));

    set(false);
    assert_ne!(reg(&sim, RCTL) & rctl::VFE, 0, "filter back");
    sim.peer_send(tagged(43));
    assert!(
        nd.recv(Duration::from_millis(100)).is_none(),
        "43 filtered again"
    );
    sim.peer_send(tagged(7));
    assert_eq!(
        nd.recv(Duration::from_secs(2)).map(|f| f.vlan),
        Some(Some(7))
    );
    nd.shutdown().expect("remove");
}

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
    assert!(ra_is(&sim, 1, extra), "RA[1]: the extra unicast address");
    assert!(ra_is(&sim, 2, group), "RA[2]: the multicast group");
    assert!(vfta_bit(&sim, 100), "VFTA bit");
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
    // The longest delay: 65535 units is 67107.84 us, so 67108 is taken (and programs the
    // full count) and one more is refused, naming the field.
    let longest = Coalesce {
        rx_usecs: 67_108,
        ..c
    };
    nd.with_adapter(|a| ethtool::set_coalesce(a, &longest))
        .expect("longest delay");
    assert_eq!(reg(&sim, RDTR), 0xFFFF);
    let too_long = Coalesce {
        tx_usecs: 67_109,
        ..c
    };
    let e = nd
        .with_adapter(|a| ethtool::set_coalesce(a, &too_long))
        .expect_err("too long");
    assert!(e.to_string().contains("tx-usecs"), "{e}");
    nd.with_adapter(|a| ethtool::set_coalesce(a, &c))
        .expect("coalesce");
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
    // Forced 1000/full: 1000BASE-T needs auto-negotiation, so it is negotiated with
    // 1000/full the only mode advertised (GCR.FD1000, no 10/100 bits in ANAR).
    let gigabit = LinkRequest {
        speed: 1000,
        full_duplex: true,
        ..forced
    };
    nd.with_adapter(|a| ethtool::set_link_ksettings(a, &gigabit))
        .expect("forced 1000/full");
    let s = nd.with_adapter(ethtool::get_link_ksettings).expect("get");
    assert!(s.request.autoneg, "{s:?}");
    assert_eq!(s.request.advertise, e1000::phy::ADV_1000_FULL, "{s:?}");
    assert_eq!(reg(&sim, CTRL) & (ctrl::FRCSPD | ctrl::FRCDPLX), 0);
    assert_ne!(phy_reg(&nd, regs::phy::GCR) & regs::phy::gcr::FD1000, 0);
    let ten_hundred = regs::phy::anar::HD10
        | regs::phy::anar::FD10
        | regs::phy::anar::HD100
        | regs::phy::anar::FD100;
    assert_eq!(phy_reg(&nd, regs::phy::ANAR) & ten_hundred, 0);
    wait_for("a 1000 Mb/s link", || {
        let s = nd.with_adapter(ethtool::get_link_ksettings).expect("get");
        s.link_up && s.speed == 1000
    });
    nd.with_adapter(|a| ethtool::set_link_ksettings(a, &LinkRequest::default()))
        .expect("autoneg");
    assert_eq!(reg(&sim, CTRL) & (ctrl::FRCSPD | ctrl::FRCDPLX), 0);
    assert!(nd.wait_link(Duration::from_secs(5)));
    nd.shutdown().expect("remove");
}
