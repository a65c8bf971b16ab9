//! Probe on each variant, link up, ARP and ping to the peer.

mod common;

use std::time::Duration;

use common::*;
use e1000::adapter::MacType;
use e1000::regs::{self, ctrl, rah, status};
use e1000::TxPacket;
use e1000_sim::net;
use e1000_sim::Variant;

#[test]
fn probe_identifies_each_variant_and_programs_ra0() {
    for (v, mt, phy) in [
        (Variant::I82540EM, MacType::I82540EM, 0x0141_0C20),
        (Variant::I82545EM, MacType::I82545EM, 0x0141_0C20),
        (Variant::I82544GC, MacType::I82544GC, 0x0141_0C30),
    ] {
        let (sim, nd) = start(v);
        nd.with_adapter(|a| {
            assert_eq!(a.info.mac_type, mt);
            assert_eq!((a.info.vendor, a.info.device), sim.pci_ids());
            assert_eq!(a.info.phy_id, phy);
            assert_eq!(a.info.perm_addr, sim.mac());
            assert_eq!(a.mac, sim.mac());
        });
        let (lo, hi) = regs::mac_to_ra(sim.mac());
        assert_eq!(reg(&sim, regs::RAL), lo);
        assert_eq!(reg(&sim, regs::RAH), hi | rah::AV);
        assert!(reg(&sim, regs::CTRL) & ctrl::SLU != 0);
        nd.shutdown().expect("remove");
        assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    }
}

#[test]
fn probe_rejects_a_corrupt_eeprom_checksum() {
    // Break the checksum with the driver's own Microwire write, then probe again.
    let (sim, nd) = start(Variant::I82540EM);
    nd.with_adapter(|a| {
        let w = e1000::eeprom::read(a, 0x20, 1).expect("read")[0];
        // Writing the checksum word itself is not followed by a checksum fix-up.
        let c = e1000::eeprom::read(a, 0x3F, 1).expect("read")[0];
        e1000::eeprom::write(a, 0x3F, &[c.wrapping_add(1)]).expect("write");
        assert_eq!(e1000::eeprom::read(a, 0x20, 1).expect("read")[0], w);
    });
    let hw = e1000_sim::handles(&sim);
    drop(nd);
    let err = e1000::Netdev::start(hw, Default::default()).expect_err("bad checksum");
    assert!(
        matches!(err, e1000::DriverError::EepromChecksum { .. }),
        "{err}"
    );
}

#[test]
fn link_up_arp_and_ping_on_each_variant() {
    for v in [Variant::I82540EM, Variant::I82545EM, Variant::I82544GC] {
        let (sim, nd) = up(v);
        assert!(reg(&sim, regs::STATUS) & status::LU != 0);
        nd.with_adapter(|a| {
            assert!(a.link.up);
            assert_eq!(a.link.speed, 1000);
            assert!(a.link.full_duplex);
        });
        let mac = sim.mac();
        let arp = net::arp(1, mac, OUR_IP, [0; 6], PEER_IP);
        nd.send(&TxPacket::new(arp), Duration::from_secs(2))
            .expect("send ARP");
        let reply = nd.recv(Duration::from_secs(5)).expect("ARP reply");
        assert_eq!(net::ethertype(&reply.data), net::ETHERTYPE_ARP);
        assert_eq!(&reply.data[..6], &mac);
        assert_eq!(&reply.data[22..28], &PEER_MAC);
        assert_eq!(&reply.data[28..32], &PEER_IP);

        let payload: Vec<u8> = (0..56u8).collect();
        let ping = net::icmp_echo(8, mac, PEER_MAC, OUR_IP, PEER_IP, 0x4242, 7, &payload);
        nd.send(&TxPacket::new(ping.clone()), Duration::from_secs(2))
            .expect("send ping");
        let pong = nd.recv(Duration::from_secs(5)).expect("echo reply");
        assert_eq!(pong.data.len(), ping.len());
        assert_eq!(pong.data[34], 0, "ICMP echo reply");
        assert_eq!(&pong.data[38..42], &[0x42, 0x42, 0, 7]);
        assert_eq!(&pong.data[42..], &payload[..]);
        assert_eq!(net::inet_csum(&pong.data[34..]), 0);
        nd.shutdown().expect("remove");
        assert!(sim.faults().is_empty(), "{v:?}: {:?}", sim.faults());
    }
}
