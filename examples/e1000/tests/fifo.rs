//! The packet buffer split and flow-control thresholds follow the part and the MTU; long
//! packet reception starts exactly where a tagged standard frame ends; receive filtering
//! at the edges of the receive-address table.

mod common;

use std::time::Duration;

use common::*;
use e1000::adapter::RxMode;
use e1000::config;
use e1000::regs::{self, flow, pba, rah, rctl, *};
use e1000_sim::Variant;

/// (part, MTU, RXA in KB, FCRTH) per the SDM's PBA and Linux's e1000 reset rules:
/// 82540/82544 lose 8 KB of receive share with frames over 8 KB; the 82545 gives transmit
/// room for two maximum frames (rounded to 8 KB of receive share). FCRTH is the lower of
/// 90% of the receive share and the share less one frame (MTU + 18), in 8-byte units.
const EXPECTED: [(Variant, u32, u32, u32); 9] = [
    (Variant::I82540EM, 1500, 48, 44232),
    (Variant::I82540EM, 9000, 40, 31936),
    (Variant::I82540EM, 16110, 40, 24832),
    (Variant::I82544GC, 1500, 48, 44232),
    (Variant::I82544GC, 9000, 40, 31936),
    (Variant::I82544GC, 16110, 40, 24832),
    (Variant::I82545EM, 1500, 48, 44232),
    (Variant::I82545EM, 9000, 40, 31936),
    (Variant::I82545EM, 16110, 32, 16640),
];

fn check_fifo(sim: &e1000_sim::E1000Sim, what: &str, rxa: u32, high: u32) {
    let pba = reg(sim, PBA);
    assert_eq!(pba & pba::RXA_MASK, rxa, "{what}: PBA.RXA");
    assert_eq!(pba >> pba::TXA_SHIFT, 64 - rxa, "{what}: PBA.TXA");
    assert_eq!(reg(sim, FCRTH), high, "{what}: FCRTH");
    assert_eq!(
        reg(sim, FCRTL),
        (high - 8) | flow::FCRTL_XONE,
        "{what}: FCRTL"
    );
    assert_eq!(reg(sim, FCTTV), 0xFFFF, "{what}: FCTTV");
}

#[test]
fn packet_buffer_split_and_watermarks_follow_part_and_mtu() {
    for variant in [Variant::I82540EM, Variant::I82544GC, Variant::I82545EM] {
        let (sim, nd) = up(variant);
        // Probe's reset programmed the standard split.
        check_fifo(&sim, &format!("{variant:?} after probe"), 48, 44232);
        for &(v, mtu, rxa, high) in EXPECTED.iter().filter(|e| e.0 == variant) {
            nd.with_adapter(|a| config::change_mtu(a, mtu))
                .expect("MTU");
            check_fifo(&sim, &format!("{v:?} MTU {mtu}"), rxa, high);
        }
        // A reset keeps the split for the MTU in force.
        nd.with_adapter(config::reset_task).expect("reset");
        let last = EXPECTED.iter().rfind(|e| e.0 == variant).expect("row");
        check_fifo(&sim, &format!("{variant:?} after reset"), last.2, last.3);
        // Back to the standard MTU: the standard split again, and the link works.
        nd.with_adapter(|a| config::change_mtu(a, 1500))
            .expect("MTU 1500");
        check_fifo(&sim, &format!("{variant:?} back to 1500"), 48, 44232);
        assert!(
            nd.wait_link(Duration::from_secs(5)),
            "link after MTU change"
        );
        // A refused MTU leaves everything as it was.
        assert!(nd.with_adapter(|a| config::change_mtu(a, 16111)).is_err());
        check_fifo(&sim, &format!("{variant:?} after bad MTU"), 48, 44232);
        nd.shutdown().expect("remove");
    }
}

#[test]
fn mtu_change_resets_without_losing_hardware_counters() {
    let (sim, nd) = up(Variant::I82540EM);
    let mac = sim.mac();
    for seq in 0..3 {
        sim.peer_send(e1000_sim::net::stream_frame(mac, PEER_MAC, seq, 100));
        assert!(nd.recv(Duration::from_secs(2)).is_some());
    }
    let resets = nd.with_adapter(|a| a.wd.resets);
    nd.with_adapter(|a| config::change_mtu(a, 9000))
        .expect("MTU 9000");
    // The reset cleared GPRC; the three frames are in the totals, not lost with it.
    assert_eq!(reg(&sim, GPRC), 0);
    let good = nd
        .with_adapter(|a| e1000::stats::update(a).map(|()| a.stats.get("good_rx_packets")))
        .expect("stats");
    assert_eq!(good, Some(3));
    // An MTU change is not a recovery reset.
    assert_eq!(nd.with_adapter(|a| a.wd.resets), resets);
    nd.shutdown().expect("remove");
}

/// A frame to us, VLAN-tagged, `len` bytes without FCS.
fn tagged_frame(dst: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00]);
    f.resize(len, 0xA5);
    f
}

#[test]
fn long_packet_enable_starts_after_a_tagged_standard_frame() {
    let (sim, nd) = up(Variant::I82540EM);
    let mac = sim.mac();
    // MTU 1500: LPE clear, and a full tagged frame (1518 + FCS = 1522 bytes) still gets in
    // (SDM 13.4.22: without LPE up to 1522 bytes with FCS).
    assert_eq!(reg(&sim, RCTL) & rctl::LPE, 0);
    sim.peer_send(tagged_frame(mac, 1518));
    let f = nd
        .recv(Duration::from_secs(2))
        .expect("tagged 1518-byte frame");
    assert_eq!((f.data.len(), f.vlan), (1514, Some(5)));
    // One byte more is a long packet, dropped without LPE.
    sim.peer_send(tagged_frame(mac, 1519));
    assert!(nd.recv(Duration::from_millis(200)).is_none());

    // MTU 1504: a full tagged frame is 1522 bytes + FCS, so LPE must be on.
    nd.with_adapter(|a| config::change_mtu(a, 1504))
        .expect("MTU 1504");
    assert!(nd.wait_link(Duration::from_secs(5)));
    assert_eq!(reg(&sim, RCTL) & rctl::LPE, rctl::LPE);
    sim.peer_send(tagged_frame(mac, 1522));
    let f = nd
        .recv(Duration::from_secs(2))
        .expect("tagged 1522-byte frame");
    assert_eq!((f.data.len(), f.vlan), (1518, Some(5)));

    // MTU 1501 already needs it (1501 + 18 + 4 = 1523 bytes with FCS).
    nd.with_adapter(|a| config::change_mtu(a, 1501))
        .expect("MTU 1501");
    assert_eq!(reg(&sim, RCTL) & rctl::LPE, rctl::LPE);
    nd.with_adapter(|a| config::change_mtu(a, 1500))
        .expect("MTU 1500");
    assert_eq!(reg(&sim, RCTL) & rctl::LPE, 0);
    nd.shutdown().expect("remove");
}

fn set_mode(nd: &e1000::Netdev, m: RxMode) {
    nd.with_adapter(|a| config::set_rx_mode_to(a, &m))
        .expect("rx mode");
}

fn unicast(n: u8) -> Vec<[u8; 6]> {
    (0..n).map(|i| [0x02, 0, 0, 0, 7, i]).collect()
}

fn valid_entries(sim: &e1000_sim::E1000Sim) -> Vec<u32> {
    (1..RA_LEN)
        .filter(|&n| reg(sim, RAH + 8 * n) & rah::AV != 0)
        .collect()
}

#[test]
fn receive_filter_edges() {
    let (sim, nd) = up(Variant::I82545EM);
    let mac = sim.mac();

    // Exactly 15 extra addresses fill RA[1..16], each valid, no unicast promiscuous.
    set_mode(
        &nd,
        RxMode {
            unicast: unicast(15),
            ..RxMode::default()
        },
    );
    assert_eq!(reg(&sim, RCTL) & (rctl::UPE | rctl::MPE), 0);
    assert_eq!(valid_entries(&sim), (1..16).collect::<Vec<_>>());
    for (i, m) in unicast(15).into_iter().enumerate() {
        let (lo, hi) = regs::mac_to_ra(m);
        let n = i as u32 + 1;
        assert_eq!(
            (reg(&sim, RAL + 8 * n), reg(&sim, RAH + 8 * n)),
            (lo, hi | rah::AV)
        );
    }
    assert_eq!(reg(&sim, RAH) & rah::AV, rah::AV, "RA[0] stays");

    // One more than the table holds: unicast promiscuous, the extra entries invalid, and
    // a frame to any unicast address gets in.
    set_mode(
        &nd,
        RxMode {
            unicast: unicast(16),
            ..RxMode::default()
        },
    );
    assert_eq!(reg(&sim, RCTL) & (rctl::UPE | rctl::MPE), rctl::UPE);
    assert!(valid_entries(&sim).is_empty());
    sim.peer_send(e1000_sim::net::stream_frame(
        [0x02, 0, 0, 0x44, 0x55, 0x66],
        PEER_MAC,
        1,
        80,
    ));
    assert!(nd.recv(Duration::from_secs(2)).is_some(), "UPE takes it");

    // The list shrinks: exact filtering again, stale entries cleared.
    set_mode(
        &nd,
        RxMode {
            unicast: unicast(3),
            ..RxMode::default()
        },
    );
    assert_eq!(reg(&sim, RCTL) & rctl::UPE, 0);
    assert_eq!(valid_entries(&sim), vec![1, 2, 3]);
    for n in 4..RA_LEN {
        assert_eq!(reg(&sim, RAH + 8 * n), 0, "RA[{n}] cleared");
    }
    sim.peer_send(e1000_sim::net::stream_frame(
        [0x02, 0, 0, 0x44, 0x55, 0x66],
        PEER_MAC,
        2,
        80,
    ));
    assert!(nd.recv(Duration::from_millis(200)).is_none(), "filtered");

    // All-multicast with no list: MPE, an empty hash table, any group gets in.
    set_mode(
        &nd,
        RxMode {
            allmulti: true,
            ..RxMode::default()
        },
    );
    assert_eq!(reg(&sim, RCTL) & (rctl::UPE | rctl::MPE), rctl::MPE);
    assert!((0..MTA_LEN).all(|i| reg(&sim, MTA + 4 * i) == 0));
    assert!(valid_entries(&sim).is_empty());
    sim.peer_send(e1000_sim::net::stream_frame(
        [0x01, 0, 0x5E, 9, 8, 7],
        PEER_MAC,
        3,
        80,
    ));
    assert!(nd.recv(Duration::from_secs(2)).is_some(), "MPE takes it");

    // A long multicast list: the first 15 groups take the spare exact filters, the rest
    // are hashed (many share the 4096 hash bits), with neither promiscuous bit set.
    let groups: Vec<[u8; 6]> = (0..600u16)
        .map(|i| [0x01, 0, 0x5E, 0, (i >> 8) as u8, i as u8])
        .collect();
    set_mode(
        &nd,
        RxMode {
            multicast: groups.clone(),
            ..RxMode::default()
        },
    );
    assert_eq!(reg(&sim, RCTL) & (rctl::UPE | rctl::MPE), 0);
    for (n, g) in groups[..15].iter().enumerate() {
        assert!(ra_is(&sim, n as u32 + 1, *g), "RA[{}]", n + 1);
    }
    assert!(groups[15..].iter().all(|g| mta_bit(&sim, *g)));
    // Our own address still gets through throughout.
    sim.peer_send(e1000_sim::net::stream_frame(mac, PEER_MAC, 4, 80));
    assert!(nd.recv(Duration::from_secs(2)).is_some());
    nd.shutdown().expect("remove");
}
