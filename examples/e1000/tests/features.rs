//! ethtool's feature flags (`-k`/`-K`) and the net-device statistics, on the model: each
//! flag's register bits and what the frames show, the dependencies, bad requests, and the
//! `rtnl_link_stats64` derivations from counters set on the model.

mod common;

use std::time::Duration;

use common::*;
use e1000::features::{FeatureRequest, FeatureState};
use e1000::frame::{CsumOffload, RxCsum, TsoOffload, TxOffload};
use e1000::netdev::Netdev;
use e1000::regs::{ctrl, rctl, rxcsum, *};
use e1000::{config, ethtool, DriverError, TxPacket};
use e1000_sim::{net, E1000Sim, Variant};

fn features(nd: &Netdev) -> Vec<FeatureState> {
    nd.with_adapter(|a| ethtool::get_features(a))
        .expect("get_features")
}

/// `(on, requested, fixed)` of the feature `name`.
fn flag(nd: &Netdev, name: &str) -> (bool, bool, bool) {
    let f = features(nd)
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} is listed"));
    (f.on, f.requested, f.fixed)
}

fn set(nd: &Netdev, req: &[(&str, bool)]) -> Result<Vec<FeatureState>, DriverError> {
    let req: Vec<FeatureRequest> = req
        .iter()
        .map(|(n, on)| FeatureRequest::new(n, *on))
        .collect();
    nd.configure(|a| ethtool::set_features(a, &req))
}

/// A UDP/IPv4 frame to us with a valid IP header checksum and no UDP checksum (which the
/// hardware reports as a good L4 check).
fn udp_to_us(sim: &E1000Sim, len: usize) -> Vec<u8> {
    let payload = vec![0x5A; len - 42];
    let mut f = net::eth_header(sim.mac(), PEER_MAC, net::ETHERTYPE_IPV4);
    f.extend_from_slice(&net::ipv4_header(PEER_IP, OUR_IP, 17, 8 + payload.len(), 9));
    f.extend_from_slice(&[0x12, 0x34, 0x00, 0x35]);
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&payload);
    f
}

#[test]
fn defaults_are_linuxs_and_match_the_registers() {
    let (sim, nd) = up(Variant::I82540EM);
    let got: Vec<(String, bool, bool)> = features(&nd)
        .into_iter()
        .map(|f| (f.name, f.on, f.fixed))
        .collect();
    let want = [
        ("rx-checksumming", true, false),
        ("tx-checksumming", true, false),
        ("scatter-gather", true, false),
        ("tcp-segmentation-offload", true, false),
        ("rx-vlan-offload", true, false),
        ("tx-vlan-offload", true, true),
        ("rx-vlan-filter", true, true),
        ("rx-fcs", false, false),
        ("rx-all", false, true),
    ];
    let want: Vec<(String, bool, bool)> = want
        .iter()
        .map(|(n, on, fixed)| ((*n).to_string(), *on, *fixed))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        reg(&sim, RXCSUM) & (rxcsum::IPOFLD | rxcsum::TUOFLD),
        rxcsum::IPOFLD | rxcsum::TUOFLD
    );
    let r = reg(&sim, RCTL);
    assert!(r & rctl::SECRC != 0, "the FCS is stripped");
    assert_eq!(r & rctl::SBP, 0, "bad packets are not stored");
    assert!(reg(&sim, CTRL) & ctrl::VME != 0);
    nd.shutdown().expect("remove");
}

#[test]
fn rx_checksumming_programs_rxcsum_and_the_reported_status() {
    let (sim, nd) = up(Variant::I82540EM);
    sim.peer_send(udp_to_us(&sim, 100));
    let f = nd.recv(Duration::from_secs(2)).expect("frame");
    assert_eq!(f.csum, RxCsum::Good);

    set(&nd, &[("rx-checksumming", false)]).expect("rx off");
    assert_eq!(reg(&sim, RXCSUM) & (rxcsum::IPOFLD | rxcsum::TUOFLD), 0);
    assert!(reg(&sim, RCTL) & rctl::EN != 0, "the receiver runs again");
    assert_eq!(flag(&nd, "rx-checksumming"), (false, false, false));
    assert!(nd.wait_link(Duration::from_secs(5)));
    sim.peer_send(udp_to_us(&sim, 100));
    let f = nd.recv(Duration::from_secs(2)).expect("frame");
    assert_eq!(
        f.csum,
        RxCsum::None,
        "no checksum status with the offload off"
    );

    set(&nd, &[("rx", true)]).expect("rx on, by its short name");
    assert_eq!(
        reg(&sim, RXCSUM) & (rxcsum::IPOFLD | rxcsum::TUOFLD),
        rxcsum::IPOFLD | rxcsum::TUOFLD
    );
    assert!(nd.wait_link(Duration::from_secs(5)));
    sim.peer_send(udp_to_us(&sim, 100));
    let f = nd.recv(Duration::from_secs(2)).expect("frame");
    assert_eq!(f.csum, RxCsum::Good);
    nd.shutdown().expect("remove");
}

#[test]
fn rx_fcs_keeps_a_valid_fcs_on_full_size_frames() {
    let (sim, nd) = up(Variant::I82540EM);
    set(&nd, &[("rx-fcs", true)]).expect("rx-fcs on");
    assert_eq!(reg(&sim, RCTL) & rctl::SECRC, 0, "SECRC clear");
    assert!(nd.wait_link(Duration::from_secs(5)));
    // The largest untagged frame the MTU allows: 1514 bytes, 1518 with its FCS.
    for len in [60, 1514] {
        let sent = net::stream_frame(sim.mac(), PEER_MAC, len as u64, len);
        assert_eq!(sent.len(), len);
        sim.peer_send(sent.clone());
        let f = nd
            .recv(Duration::from_secs(2))
            .unwrap_or_else(|| panic!("{len}-byte frame with its FCS delivered"));
        assert_eq!(f.data.len(), len + 4);
        assert_eq!(&f.data[..len], &sent[..]);
        let fcs = u32::from_le_bytes([
            f.data[len],
            f.data[len + 1],
            f.data[len + 2],
            f.data[len + 3],
        ]);
        assert_eq!(fcs, net::crc32(&sent), "the FCS is the frame's CRC-32");
    }
    // The longest frame of all: tagged, with the tag left in (rx-vlan-offload off), 1518
    // bytes and 1522 with its FCS (802.3's limit for a tagged frame). The hot path takes
    // the 4 FCS bytes beyond its usual maximum.
    set(
        &nd,
        &[("rx-vlan-offload", false), ("tx-vlan-offload", false)],
    )
    .expect("rxvlan off");
    let mut tagged = net::stream_frame(sim.mac(), PEER_MAC, 9, 1514);
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x2A]);
    sim.peer_send(tagged.clone());
    let f = nd
        .recv(Duration::from_secs(2))
        .expect("a 1522-byte tagged frame with its FCS");
    assert_eq!(f.data.len(), 1522);
    assert_eq!(&f.data[..1518], &tagged[..]);
    assert_eq!(f.data[1518..], net::crc32(&tagged).to_le_bytes());
    assert_eq!(nd.kernel().hot_stats().rx_errors, 0);

    set(&nd, &[("rx-fcs", false)]).expect("rx-fcs off");
    assert!(reg(&sim, RCTL) & rctl::SECRC != 0);
    assert!(nd.wait_link(Duration::from_secs(5)));
    let sent = net::stream_frame(sim.mac(), PEER_MAC, 1, 200);
    sim.peer_send(sent.clone());
    let f = nd.recv(Duration::from_secs(2)).expect("frame");
    assert_eq!(f.data, sent, "stripped again");
    nd.shutdown().expect("remove");
}

#[test]
fn rx_fcs_set_while_closed_is_programmed_at_open() {
    let (sim, nd) = start(Variant::I82545EM);
    set(&nd, &[("rx-fcs", true)]).expect("rx-fcs on while down");
    nd.open().expect("open");
    assert_eq!(reg(&sim, RCTL) & rctl::SECRC, 0);
    assert!(reg(&sim, RCTL) & rctl::EN != 0);
    nd.shutdown().expect("remove");
}

#[test]
fn rx_vlan_offload_off_leaves_the_tag_in_the_frame() {
    let (sim, nd) = up(Variant::I82540EM);
    let tag: u16 = (5 << 13) | 42;
    let plain = net::stream_frame(sim.mac(), PEER_MAC, 3, 100);
    let mut tagged = plain.clone();
    tagged.splice(12..12, [0x81, 0x00, (tag >> 8) as u8, tag as u8]);

    set(&nd, &[("rxvlan", false), ("txvlan", false)]).expect("rx-vlan-offload off");
    assert_eq!(reg(&sim, CTRL) & ctrl::VME, 0);
    assert_eq!(flag(&nd, "rx-vlan-offload"), (false, false, false));
    assert_eq!(flag(&nd, "tx-vlan-offload"), (false, false, true));
    sim.peer_send(tagged.clone());
    let f = nd.recv(Duration::from_secs(2)).expect("tagged frame");
    assert_eq!(f.vlan, None);
    assert_eq!(f.data, tagged, "the tag stays in the frame");

    set(&nd, &[("rx-vlan-offload", true)]).expect("rx-vlan-offload on");
    assert!(reg(&sim, CTRL) & ctrl::VME != 0);
    assert_eq!(flag(&nd, "tx-vlan-offload"), (true, true, true));
    sim.peer_send(tagged);
    let f = nd.recv(Duration::from_secs(2)).expect("tagged frame");
    assert_eq!(f.vlan, Some(tag));
    assert_eq!(f.data, plain, "stripped");
    nd.shutdown().expect("remove");
}

#[test]
fn rx_vlan_filter_is_fixed_and_follows_the_vlan_ids() {
    let (sim, nd) = up(Variant::I82540EM);
    assert_eq!(reg(&sim, RCTL) & rctl::VFE, 0, "no VLAN ids: no filter");
    nd.with_adapter(|a| config::vlan_add(a, 7))
        .expect("vlan add");
    assert!(reg(&sim, RCTL) & rctl::VFE != 0);
    let e = set(&nd, &[("rx-vlan-filter", false)]).expect_err("fixed");
    let msg = e.to_string();
    assert!(
        msg.contains("rx-vlan-filter") && msg.contains("fixed"),
        "{msg}"
    );
    assert!(reg(&sim, RCTL) & rctl::VFE != 0, "nothing changed");
    set(&nd, &[("rx-vlan-filter", true)]).expect("its own value is accepted");
    let e = set(&nd, &[("rx-all", true)]).expect_err("rx-all is fixed off");
    assert!(e.to_string().contains("rx-all"), "{e}");
    assert_eq!(reg(&sim, RCTL) & rctl::SBP, 0);
    nd.shutdown().expect("remove");
}

fn tso_packet(sim: &E1000Sim) -> TxPacket {
    let payload = vec![0x33u8; 3000];
    let mut f = net::eth_header(PEER_MAC, sim.mac(), net::ETHERTYPE_IPV4);
    f.extend_from_slice(&net::ipv4_header(OUR_IP, PEER_IP, 6, 20 + payload.len(), 1));
    f.extend_from_slice(&[0x12, 0x34, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0]);
    f.extend_from_slice(&[0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]);
    f.extend_from_slice(&payload);
    TxPacket {
        frags: vec![f[..54].to_vec(), f[54..].to_vec()],
        offload: TxOffload {
            csum: Some(CsumOffload {
                ip_start: 14,
                l4_start: 34,
                ipv4: true,
                tcp: true,
            }),
            tso: Some(TsoOffload {
                mss: 1000,
                hdr_len: 54,
            }),
            vlan: None,
        },
    }
}

#[test]
fn tso_needs_scatter_gather_and_tx_checksumming() {
    let (sim, nd) = up(Variant::I82540EM);
    sim.peer_take_received();
    nd.send(&tso_packet(&sim), Duration::from_secs(2))
        .expect("TSO on: accepted");
    assert_eq!(take_peer(&sim, 3, Duration::from_secs(5)).len(), 3);

    // sg off drops TSO (still requested), as Linux's netdev_fix_features does.
    let after = set(&nd, &[("sg", false)]).expect("sg off");
    let tso = after
        .iter()
        .find(|f| f.name == "tcp-segmentation-offload")
        .expect("tso listed");
    assert!(!tso.on && tso.requested, "{tso:?}");
    let dropped = nd.kernel().hot_stats().tx_dropped;
    let r = nd.send(&tso_packet(&sim), Duration::from_secs(2));
    assert!(
        matches!(r, Err(DriverError::BadPacket(ref m)) if m.contains("segmentation")),
        "{r:?}"
    );
    assert_eq!(nd.kernel().hot_stats().tx_dropped, dropped + 1);
    assert!(take_peer(&sim, 1, Duration::from_millis(100)).is_empty());

    // Asking for TSO while a dependency is off is refused and changes nothing.
    let e = set(&nd, &[("tso", true)]).expect_err("tso without sg");
    assert!(e.to_string().contains("scatter-gather"), "{e}");
    assert_eq!(flag(&nd, "tcp-segmentation-offload"), (false, true, false));

    // sg back on: TSO is back, the packet goes out segmented.
    set(&nd, &[("scatter-gather", true)]).expect("sg on");
    assert_eq!(flag(&nd, "tcp-segmentation-offload"), (true, true, false));
    nd.send(&tso_packet(&sim), Duration::from_secs(2))
        .expect("TSO back");
    assert_eq!(take_peer(&sim, 3, Duration::from_secs(5)).len(), 3);

    // tx-checksumming off drops it too; tso off then tx on leaves it off.
    set(&nd, &[("tx", false)]).expect("tx off");
    assert_eq!(flag(&nd, "tcp-segmentation-offload"), (false, true, false));
    set(&nd, &[("tso", false), ("tx", true)]).expect("tso off, tx on");
    assert_eq!(flag(&nd, "tcp-segmentation-offload"), (false, false, false));
    assert_eq!(flag(&nd, "tx-checksumming"), (true, true, false));
    assert!(nd.send(&tso_packet(&sim), Duration::from_secs(2)).is_err());
    set(&nd, &[("tso", true)]).expect("tso on");
    nd.send(&tso_packet(&sim), Duration::from_secs(2))
        .expect("TSO on again");
    nd.shutdown().expect("remove");
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
}

/// A UDP/IPv4 frame to the peer asking for checksum insertion.
fn csum_packet(sim: &E1000Sim) -> TxPacket {
    let mut f = net::eth_header(PEER_MAC, sim.mac(), net::ETHERTYPE_IPV4);
    f.extend_from_slice(&net::ipv4_header(OUR_IP, PEER_IP, 17, 8 + 100, 2));
    f.extend_from_slice(&[0x12, 0x34, 0x00, 0x35, 0, 108, 0, 0]);
    f.extend_from_slice(&[0x44; 100]);
    let mut p = TxPacket::new(f);
    p.offload.csum = Some(CsumOffload {
        ip_start: 14,
        l4_start: 34,
        ipv4: true,
        tcp: false,
    });
    p
}

/// Each transmit offload turned off is refused by the kernel half (counted as dropped,
/// nothing on the wire), not sent other than asked; a packet needing none still goes, and
/// turning the feature back on lets the packet through.
#[test]
fn transmit_refuses_packets_asking_for_an_offload_that_is_off() {
    let (sim, nd) = up(Variant::I82540EM);
    let plain = TxPacket::new(net::stream_frame(PEER_MAC, sim.mac(), 1, 200));
    let two_frags = TxPacket {
        frags: vec![plain.frags[0][..60].to_vec(), plain.frags[0][60..].to_vec()],
        ..TxPacket::default()
    };
    let mut tagged = plain.clone();
    tagged.offload.vlan = Some(42);
    let cases = [
        ("tx-checksumming", csum_packet(&sim)),
        ("scatter-gather", two_frags),
        ("rx-vlan-offload", tagged),
    ];
    for (feature, pkt) in cases {
        sim.peer_take_received();
        set(&nd, &[(feature, false)]).expect("feature off");
        let dropped = nd.kernel().hot_stats().tx_dropped;
        let r = nd.send(&pkt, Duration::from_secs(2));
        let named = if feature == "rx-vlan-offload" {
            "tx-vlan-offload"
        } else {
            feature
        };
        assert!(
            matches!(r, Err(DriverError::BadPacket(ref m)) if m.contains(named) && m.contains("ethtool -K")),
            "{feature}: {r:?}"
        );
        assert_eq!(nd.kernel().hot_stats().tx_dropped, dropped + 1, "{feature}");
        nd.send(&plain, Duration::from_secs(2))
            .expect("a plain packet still goes");
        let wire = take_peer(&sim, 2, Duration::from_millis(300));
        assert_eq!(
            wire.len(),
            1,
            "{feature}: only the plain packet on the wire"
        );
        assert_eq!(wire[0], plain.frags[0]);

        set(&nd, &[(feature, true)]).expect("feature on");
        nd.send(&pkt, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("{feature} on again: {e}"));
        assert_eq!(
            take_peer(&sim, 1, Duration::from_secs(2)).len(),
            1,
            "{feature}"
        );
    }
    nd.shutdown().expect("remove");
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
}

#[test]
fn a_bad_request_changes_nothing() {
    let (sim, nd) = up(Variant::I82540EM);
    let before = features(&nd);
    let (rxcsum_before, rctl_before) = (reg(&sim, RXCSUM), reg(&sim, RCTL));
    for (req, needle) in [
        (vec![("rx", false), ("warp-drive", true)], "warp-drive"),
        (vec![("rx-fcs", true), ("rx-all", true)], "rx-all"),
        (
            vec![("sg", false), ("tx-vlan-offload", false)],
            "tx-vlan-offload",
        ),
        (
            vec![("rx", false), ("rx-checksumming", false)],
            "given twice",
        ),
        (vec![("sg", false), ("tso", true)], "scatter-gather"),
    ] {
        let e = set(&nd, &req).expect_err("refused");
        assert!(
            matches!(e, DriverError::InvalidArgument { .. }),
            "{req:?}: {e:?}"
        );
        assert!(e.to_string().contains(needle), "{req:?}: {e}");
        assert_eq!(features(&nd), before, "{req:?} changed nothing");
    }
    assert_eq!(reg(&sim, RXCSUM), rxcsum_before);
    assert_eq!(reg(&sim, RCTL), rctl_before);
    nd.shutdown().expect("remove");
}

#[test]
fn stats64_derives_from_the_hardware_and_hot_counters() {
    let (sim, nd) = up(Variant::I82544GC);
    for len in [100, 200, 300] {
        sim.peer_send(net::stream_frame(sim.mac(), PEER_MAC, len as u64, len));
        nd.recv(Duration::from_secs(2)).expect("frame");
    }
    let base = nd.with_adapter(ethtool::get_stats64).expect("stats64");
    assert_eq!(base.rx_packets, 3);
    assert_eq!(base.rx_bytes, 600);
    let hot = nd.kernel().hot_stats();
    assert_eq!(
        (base.tx_packets, base.tx_bytes),
        (hot.tx_packets, hot.tx_bytes)
    );

    for (off, n) in [
        (RXERRC, 1),
        (CRCERRS, 2),
        (ALGNERRC, 3),
        (RUC, 4),
        (ROC, 5),
        (CEXTERR, 6),
        (MPC, 7),
        (MPRC, 8),
        (COLC, 9),
        (ECOL, 10),
        (LATECOL, 11),
        (TNCRS, 12),
    ] {
        assert!(sim.add_stat(off, n), "{off:#x} is a counter");
    }
    let s = nd.with_adapter(ethtool::get_stats64).expect("stats64");
    assert_eq!(s.rx_errors - base.rx_errors, 1 + 2 + 3 + 4 + 5 + 6);
    assert_eq!(s.rx_crc_errors - base.rx_crc_errors, 2);
    assert_eq!(s.rx_frame_errors - base.rx_frame_errors, 3);
    assert_eq!(s.rx_length_errors - base.rx_length_errors, 4 + 5);
    assert_eq!(s.rx_missed_errors - base.rx_missed_errors, 7);
    assert_eq!(s.multicast - base.multicast, 8);
    assert_eq!(s.collisions - base.collisions, 9);
    assert_eq!(s.tx_errors - base.tx_errors, 10 + 11);
    assert_eq!(s.tx_aborted_errors - base.tx_aborted_errors, 10);
    assert_eq!(s.tx_window_errors - base.tx_window_errors, 11);
    assert_eq!(s.tx_carrier_errors - base.tx_carrier_errors, 12);
    // The counters clear on read and accumulate in the adapter: asking again adds nothing.
    let again = nd.with_adapter(ethtool::get_stats64).expect("stats64");
    assert_eq!(again.rx_errors, s.rx_errors);
    assert_eq!(again.tx_errors, s.tx_errors);
    nd.shutdown().expect("remove");
}
