//! Transmit offloads (scatter-gather, checksum insertion, TSO, VLAN insertion) and receive
//! offloads (VLAN stripping, checksum status), checked on the wire.

mod common;

use std::time::{Duration, Instant};

use common::*;
use e1000::frame::{CsumOffload, RxCsum, TsoOffload, TxOffload};
use e1000::TxPacket;
use e1000_sim::net::{self, csum_add, csum_fold, inet_csum};
use e1000_sim::Variant;

const TCP: u8 = 6;
const UDP: u8 = 17;

/// Ethernet + IPv4 + TCP/UDP with zeroed checksums.
fn ipv4_l4(dst: [u8; 6], src: [u8; 6], proto: u8, payload: &[u8]) -> Vec<u8> {
    let l4_hdr = if proto == TCP { 20 } else { 8 };
    let mut f = net::eth_header(dst, src, net::ETHERTYPE_IPV4);
    let mut ip = net::ipv4_header(OUR_IP, PEER_IP, proto, l4_hdr + payload.len(), 0x77);
    ip[10] = 0;
    ip[11] = 0;
    f.extend_from_slice(&ip);
    if proto == TCP {
        f.extend_from_slice(&[0x12, 0x34, 0x00, 0x50]); // ports
        f.extend_from_slice(&1000u32.to_be_bytes()); // seq
        f.extend_from_slice(&0u32.to_be_bytes()); // ack
        f.extend_from_slice(&[0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]); // off, PSH|ACK, win, csum, urg
    } else {
        f.extend_from_slice(&[0x12, 0x34, 0x00, 0x35]);
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend_from_slice(payload);
    f
}

/// The pseudo-header sum (with the L4 length, or without it for TSO).
fn pseudo(f: &[u8], with_len: bool) -> u32 {
    let mut s = csum_add(0, &f[26..34]);
    s += u32::from(f[23]);
    if with_len {
        s += (f.len() - 34) as u32;
    }
    s
}

fn seed(f: &mut [u8], with_len: bool) {
    let off = if f[23] == TCP { 34 + 16 } else { 34 + 6 };
    let p = csum_fold(pseudo(f, with_len));
    f[off..off + 2].copy_from_slice(&p.to_be_bytes());
}

fn checksums_ok(f: &[u8]) -> bool {
    inet_csum(&f[14..34]) == 0 && !csum_fold(csum_add(pseudo(f, true), &f[34..])) == 0
}

#[test]
fn scatter_gather_and_checksum_offload() {
    let (sim, nd) = up(Variant::I82540EM);
    sim.peer_take_received();
    let mac = sim.mac();
    for proto in [TCP, UDP] {
        let payload: Vec<u8> = (0..3001u32).map(|i| (i * 13) as u8).collect();
        let mut f = ipv4_l4(PEER_MAC, mac, proto, &payload[..1400]);
        seed(&mut f, true);
        // Three fragments, split at odd places; the middle one crosses a 2 KiB buffer.
        let frags = vec![f[..21].to_vec(), f[21..1001].to_vec(), f[1001..].to_vec()];
        let pkt = TxPacket {
            frags,
            offload: TxOffload {
                csum: Some(CsumOffload {
                    ip_start: 14,
                    l4_start: 34,
                    ipv4: true,
                    tcp: proto == TCP,
                }),
                ..TxOffload::default()
            },
        };
        nd.send(&pkt, Duration::from_secs(2)).expect("send");
        let got = take_peer(&sim, 1, Duration::from_secs(5));
        assert_eq!(got.len(), 1);
        let w = &got[0];
        assert_eq!(w.len(), f.len());
        assert!(checksums_ok(w), "checksums inserted (proto {proto})");
        assert_eq!(
            &w[34 + if proto == TCP { 20 } else { 8 }..],
            &payload[..1400]
        );
    }
    nd.shutdown().expect("remove");
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
}

#[test]
fn tso_segments_a_large_send() {
    let (sim, nd) = up(Variant::I82540EM);
    sim.peer_take_received();
    let mac = sim.mac();
    let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut f = ipv4_l4(PEER_MAC, mac, TCP, &payload);
    seed(&mut f, false);
    let pkt = TxPacket {
        frags: vec![f[..54].to_vec(), f[54..].to_vec()],
        offload: TxOffload {
            csum: Some(CsumOffload {
                ip_start: 14,
                l4_start: 34,
                ipv4: true,
                tcp: true,
            }),
            tso: Some(TsoOffload {
                mss: 1460,
                hdr_len: 54,
            }),
            vlan: None,
        },
    };
    nd.send(&pkt, Duration::from_secs(2)).expect("send");
    let segs = take_peer(&sim, 7, Duration::from_secs(5));
    assert_eq!(segs.len(), 7, "10000 bytes at MSS 1460");
    let mut data = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        assert!(checksums_ok(s), "segment {i} checksums");
        let seq = u32::from_be_bytes([s[38], s[39], s[40], s[41]]);
        assert_eq!(seq, 1000 + (i as u32) * 1460);
        data.extend_from_slice(&s[54..]);
    }
    assert_eq!(data, payload);
    // The TSO context was counted by the hardware (TSCTC).
    let stats = nd.with_adapter(|a| {
        e1000::stats::update(a).expect("stats");
        a.stats.clone()
    });
    assert_eq!(stats.get("tso_contexts"), Some(1));
    // TX clean counts the segments once the write-back interrupt has been handled.
    let end = Instant::now() + Duration::from_secs(2);
    while nd.kernel().hot_stats().tx_packets < 7 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(nd.kernel().hot_stats().tx_packets, 7);
    nd.shutdown().expect("remove");
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
}

#[test]
fn vlan_insertion_and_stripping() {
    let (sim, nd) = up(Variant::I82540EM);
    sim.peer_take_received();
    let mac = sim.mac();
    let frame = net::stream_frame(PEER_MAC, mac, 5, 100);
    let tag = (3 << 13) | 42;
    let pkt = TxPacket {
        frags: vec![frame.clone()],
        offload: TxOffload {
            vlan: Some(tag),
            ..TxOffload::default()
        },
    };
    nd.send(&pkt, Duration::from_secs(2)).expect("send");
    let got = take_peer(&sim, 1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    let w = &got[0];
    assert_eq!(&w[12..14], &[0x81, 0x00]);
    assert_eq!(u16::from_be_bytes([w[14], w[15]]), tag);
    assert_eq!(&w[16..], &frame[12..]);

    // Receive: the tag is stripped into the frame's metadata; the VLAN filter passes 42.
    nd.with_adapter(|a| e1000::config::vlan_add(a, 42))
        .expect("vlan add");
    let mut tagged = net::stream_frame(mac, PEER_MAC, 9, 100);
    tagged.splice(12..12, [0x81, 0x00, (tag >> 8) as u8, tag as u8]);
    sim.peer_send(tagged.clone());
    let f = nd.recv(Duration::from_secs(2)).expect("tagged frame");
    assert_eq!(f.vlan, Some(tag));
    assert_eq!(f.data, net::stream_frame(mac, PEER_MAC, 9, 100));
    // A VLAN outside the filter is dropped by the hardware.
    let mut other = tagged.clone();
    other[15] = 43;
    sim.peer_send(other);
    assert!(
        nd.recv(Duration::from_millis(100)).is_none(),
        "VLAN 43 filtered"
    );
    nd.shutdown().expect("remove");
}

#[test]
fn receive_checksum_status() {
    let (sim, nd) = up(Variant::I82540EM);
    let mac = sim.mac();
    let mut f = ipv4_l4(mac, PEER_MAC, TCP, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Valid IP and TCP checksums, computed here.
    let ipc = inet_csum(&f[14..34]);
    f[24..26].copy_from_slice(&ipc.to_be_bytes());
    let tc = !csum_fold(csum_add(pseudo(&f, true), &f[34..]));
    f[50..52].copy_from_slice(&tc.to_be_bytes());
    sim.peer_send(f.clone());
    let good = nd.recv(Duration::from_secs(2)).expect("frame");
    assert_eq!(good.csum, RxCsum::Good);
    let mut bad = f.clone();
    bad[51] ^= 0xFF;
    sim.peer_send(bad);
    let bad = nd
        .recv(Duration::from_secs(2))
        .expect("frame with bad checksum");
    assert_eq!(bad.csum, RxCsum::Bad, "delivered, marked bad");
    let h = nd.kernel().hot_stats();
    assert_eq!((h.rx_csum_good, h.rx_csum_bad), (1, 1));
    nd.shutdown().expect("remove");
}

#[test]
fn malformed_packets_are_refused_not_sent() {
    let (sim, nd) = up(Variant::I82540EM);
    let mac = sim.mac();
    let too_long = TxPacket::new(net::stream_frame(PEER_MAC, mac, 1, 1600));
    assert!(matches!(
        nd.try_send(&too_long),
        Err(e1000::DriverError::BadPacket(_))
    ));
    let runt = TxPacket::new(vec![0; 10]);
    assert!(nd.try_send(&runt).is_err());
    let bad_tso = TxPacket {
        frags: vec![vec![0; 200]],
        offload: TxOffload {
            tso: Some(TsoOffload {
                mss: 100,
                hdr_len: 54,
            }),
            ..TxOffload::default()
        },
    };
    assert!(
        nd.try_send(&bad_tso).is_err(),
        "TSO without TCP checksum offload"
    );
    assert_eq!(nd.kernel().hot_stats().tx_dropped, 3);
    nd.shutdown().expect("remove");
    assert!(sim.faults().is_empty());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Whatever packet and offload description the stack (or a user half) hands to the
    /// transmit path, it returns an answer without panicking and the device never masters
    /// memory outside the kernel half's regions.
    #[test]
    fn hostile_transmit_requests_never_panic(
        frags in proptest::collection::vec(0usize..5000, 0..5),
        csum in proptest::option::of((0u8..=255, 0u8..=255, proptest::bool::ANY, proptest::bool::ANY)),
        tso in proptest::option::of((0u16..=u16::MAX, 0u8..=255)),
        vlan in proptest::option::of(0u16..=u16::MAX),
    ) {
        let (sim, nd) = up(Variant::I82540EM);
        let pkt = TxPacket {
            frags: frags.iter().map(|&n| vec![0xA5; n]).collect(),
            offload: TxOffload {
                csum: csum.map(|(ip_start, l4_start, ipv4, tcp)| CsumOffload { ip_start, l4_start, ipv4, tcp }),
                tso: tso.map(|(mss, hdr_len)| TsoOffload { mss, hdr_len }),
                vlan,
            },
        };
        let _ = e1000::hot::tx::xmit_frame(nd.kernel().id(), &pkt);
        std::thread::sleep(Duration::from_millis(2));
        proptest::prop_assert_eq!(sim.bus_errors(), 0);
        drop(nd);
    }
}
