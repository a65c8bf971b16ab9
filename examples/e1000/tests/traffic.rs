//! Many frames each way with byte-exact checks, jumbo frames, and a ring resize while
//! traffic flows.

mod common;

use std::time::{Duration, Instant};

use common::*;
use e1000::config::RingParam;
use e1000::netdev::Options;
use e1000::{DriverError, TxPacket};
use e1000_sim::net::{check_stream_frame, stream_frame};
use e1000_sim::{PeerConfig, StreamConfig, Variant};

const TX_SIZES: [usize; 9] = [60, 61, 100, 251, 508, 1019, 1200, 1514, 77];
const RX_SIZES: [usize; 7] = [60, 128, 333, 1000, 1514, 64, 512];
/// How often [`exchange`] calls its `mid` closure.
const MID_CALLS: u64 = 5;

/// Sends `n` frames to the peer and receives `n` from its stream at the same time,
/// checking every byte and the order on both sides: none may be lost (the peer's stream and
/// ours carry sequence numbers). `mid` runs [`MID_CALLS`] times while frames flow both ways
/// (with the test's view of the driver).
fn exchange(
    variant: Variant,
    n: u64,
    tx_sizes: &[usize],
    rx_sizes: &[usize],
    mtu: Option<u32>,
    mut mid: impl FnMut(&e1000::Netdev),
) {
    exchange_at(variant, n, tx_sizes, rx_sizes, mtu, None, &mut mid);
}

/// [`exchange`] with the peer's stream sent at `rx_rate` frames per second (the peer then
/// relies on flow control, as a real partner does) instead of as fast as the NIC takes it.
fn exchange_at(
    variant: Variant,
    n: u64,
    tx_sizes: &[usize],
    rx_sizes: &[usize],
    mtu: Option<u32>,
    rx_rate: Option<f64>,
    mid: &mut dyn FnMut(&e1000::Netdev),
) {
    let cfg = e1000_sim::SimConfig {
        peer: PeerConfig {
            record_limit: 1 << 20,
            ..PeerConfig::default()
        },
        ..config(variant)
    };
    let (sim, nd) = start_with(cfg, Options::default());
    if let Some(m) = mtu {
        nd.with_adapter(|a| e1000::config::change_mtu(a, m))
            .expect("MTU");
    }
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(5)));
    let mac = sim.mac();
    sim.peer_take_received();
    sim.peer_start_stream(StreamConfig {
        dst: mac,
        count: n,
        sizes: rx_sizes.to_vec(),
        rate: rx_rate,
    });
    let (mut next_tx, mut next_rx, mut peer_seen) = (0u64, 0u64, 0u64);
    let mut mid_done = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while next_rx < n || peer_seen < n {
        assert!(
            Instant::now() < deadline,
            "stalled: sent {next_tx}, received {next_rx}, peer saw {peer_seen}"
        );
        let mut burst = 0;
        // Transmit keeps pace with the peer's stream, so that both directions are in flight
        // whenever `mid` runs.
        while next_tx < n && burst < 64 && next_tx < next_rx + 2048 {
            let len = tx_sizes[(next_tx % tx_sizes.len() as u64) as usize];
            match nd.try_send(&TxPacket::new(stream_frame(PEER_MAC, mac, next_tx, len))) {
                Ok(()) => {
                    next_tx += 1;
                    burst += 1;
                }
                Err(DriverError::Busy) => break,
                Err(e) => panic!("send {next_tx}: {e}"),
            }
        }
        if mid_done < MID_CALLS && next_rx.min(next_tx) >= n * (mid_done + 1) / (MID_CALLS + 1) {
            mid_done += 1;
            mid(&nd);
        }
        for f in nd.drain() {
            let seq = check_stream_frame(&f.data, mac, PEER_MAC).expect("received bytes intact");
            assert_eq!(seq, next_rx, "received in order, none lost");
            assert_eq!(
                f.data.len(),
                rx_sizes[(seq % rx_sizes.len() as u64) as usize]
            );
            next_rx = seq + 1;
        }
        for f in sim.peer_take_received() {
            let seq = check_stream_frame(&f, PEER_MAC, mac).expect("peer got our bytes");
            assert_eq!(seq, peer_seen, "peer receives in order, none lost");
            assert_eq!(f.len(), tx_sizes[(seq % tx_sizes.len() as u64) as usize]);
            peer_seen += 1;
        }
        if burst == 0 {
            nd.kernel().wait_tx_wake(Duration::from_millis(1));
        }
    }
    // TX clean runs on the next transmit interrupt after the last write-back.
    let end = Instant::now() + Duration::from_secs(5);
    while nd.kernel().hot_stats().tx_packets < n && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
    let hot = nd.kernel().hot_stats();
    assert_eq!(hot.tx_packets, n);
    assert_eq!(hot.rx_packets, n);
    assert_eq!(hot.rx_errors, 0);
    // The hardware counters the watchdog accumulates agree.
    let stats = nd.with_adapter(|a| {
        e1000::stats::update(a).expect("stats");
        a.stats.clone()
    });
    assert_eq!(stats.get("good_tx_packets"), Some(n));
    assert_eq!(stats.get("good_rx_packets"), Some(n));
    nd.shutdown().expect("remove");
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
}

#[test]
fn frames_each_way_byte_exact() {
    let t0 = Instant::now();
    exchange(
        Variant::I82540EM,
        100_000,
        &TX_SIZES,
        &RX_SIZES,
        None,
        |_| {},
    );
    eprintln!("100k frames each way: {:?}", t0.elapsed());
}

#[test]
fn frames_each_way_on_the_82544_and_82545() {
    exchange(Variant::I82544GC, 3_000, &TX_SIZES, &RX_SIZES, None, |_| {});
    exchange(Variant::I82545EM, 3_000, &TX_SIZES, &RX_SIZES, None, |_| {});
}

#[test]
fn mtu_9000_traffic() {
    let sizes = [9014, 60, 4000, 8191, 1514, 9000];
    exchange(Variant::I82540EM, 2_000, &sizes, &sizes, Some(9000), |_| {});
}

#[test]
fn ring_resize_while_traffic_flows_loses_no_accepted_frame() {
    // Every frame the driver accepted for transmission reaches the peer, in order, and every
    // frame of the peer's stream (paced by the NIC's packet buffer, as a partner honouring
    // flow control) is received, in order, none missing: the receiver keeps running through
    // each resize and the NIC holds what arrives meanwhile in its packet buffer.
    let mut sizes = vec![(80, 80), (4096, 4096), (256, 1024), (1024, 128), (512, 256)].into_iter();
    // The peer sends at a steady rate (so that its stream is still flowing at every resize)
    // and honours the NIC's XOFF when its packet buffer fills.
    let t0 = Instant::now();
    exchange_at(
        Variant::I82540EM,
        30_000,
        &TX_SIZES,
        &RX_SIZES,
        None,
        Some(20_000.0),
        &mut |nd| {
            let (tx, rx) = sizes.next().expect("one size per call");
            let t = Instant::now();
            nd.with_adapter(|a| {
                e1000::config::set_ringparam(
                    a,
                    &RingParam {
                        rx,
                        tx,
                        rx_max: 4096,
                        tx_max: 4096,
                    },
                )
            })
            .expect("resize");
            let got = nd.with_adapter(|a| e1000::config::get_ringparam(a));
            assert_eq!((got.tx, got.rx), (tx, rx));
            assert_eq!(nd.kernel().hw().mmio.read32(e1000::regs::RDLEN), rx * 16);
            eprintln!("resize to {tx}/{rx}: {:?}", t.elapsed());
        },
    );
    eprintln!(
        "30k frames each way, 5 resizes, none lost: {:?}",
        t0.elapsed()
    );
}

/// A NIC whose DMA stalls (bus mastering off) while its packet buffer fills holds frames
/// it does not move, and a resize meanwhile sees no receive progress, as on an idle link.
/// The receiver must not be turned off for the swap with those frames in it (the chaos
/// campaign lost 62-63 frames, a full buffer, each time a starved device thread made this
/// happen): the resize waits, the DMA comes back, and every frame of the stream arrives.
#[test]
fn a_resize_while_the_nic_holds_frames_it_does_not_move_loses_none() {
    use e1000::regs::pci::{command::BUS_MASTER, COMMAND};
    use e1000_sim::PciConfig;
    let (sim, nd) = start_with(config(Variant::I82540EM), Options::default());
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(5)));
    let mac = sim.mac();
    let n = 2000u64;
    let cmd = sim.config_read16(COMMAND);
    sim.config_write16(COMMAND, cmd & !BUS_MASTER);
    sim.peer_start_stream(StreamConfig {
        dst: mac,
        count: n,
        sizes: RX_SIZES.to_vec(),
        rate: None,
    });
    wait_for("the packet buffer to fill", || sim.rx_fifo_frames() >= 30);
    // The DMA stall lasts well past the resize's idle time.
    let restore = {
        let sim = std::sync::Arc::clone(&sim);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(4 * e1000::config::RESIZE_IDLE_MS));
            sim.config_write16(COMMAND, cmd | BUS_MASTER);
        })
    };
    nd.with_adapter(|a| {
        e1000::config::set_ringparam(
            a,
            &RingParam {
                rx: 512,
                tx: 256,
                rx_max: 4096,
                tx_max: 4096,
            },
        )
    })
    .expect("resize");
    restore.join().expect("the DMA stall's thread");
    let mut next = 0u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while next < n {
        assert!(Instant::now() < deadline, "received {next} of {n} frames");
        if let Some(f) = nd.recv(Duration::from_millis(100)) {
            let seq = check_stream_frame(&f.data, mac, PEER_MAC).expect("intact");
            assert_eq!(seq, next, "in order, none lost");
            next += 1;
        }
    }
    assert_eq!(
        sim.rx_fifo_discarded(),
        0,
        "nothing dropped from the packet buffer"
    );
    nd.shutdown().expect("remove");
}

/// A batch goes out in order; a batch larger than the ring stops at the first packet the
/// full ring refuses (reported busy, not consumed); with the link down nothing is taken.
#[test]
fn send_batch_stops_at_a_full_ring_and_sends_in_order() {
    let (sim, nd) = start_with(config(Variant::I82540EM), Options::default());
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(5)));
    let mac = sim.mac();
    sim.peer_take_received();
    let pkts: Vec<TxPacket> = (0..600)
        .map(|i| TxPacket::new(stream_frame(PEER_MAC, mac, i, 1514)))
        .collect();
    let (mut sent, mut busy_at) = (0u64, Vec::new());
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while done < pkts.len() {
        assert!(Instant::now() < deadline, "stalled at {done}");
        let n = nd.send_batch(&pkts[done..], |i, r| match r {
            Ok(()) => sent += 1,
            Err(DriverError::Busy) => busy_at.push(done + i),
            Err(e) => panic!("packet {}: {e}", done + i),
        });
        done += n;
        if done < pkts.len() {
            // Stopped at a full ring: the busy packet is the first not consumed.
            assert_eq!(busy_at.last(), Some(&done));
            nd.kernel().wait_tx_wake(Duration::from_millis(5));
        }
    }
    assert_eq!(sent, 600);
    assert!(
        !busy_at.is_empty(),
        "600 frames never filled a 256-slot ring"
    );
    let got = take_peer(&sim, 600, Duration::from_secs(10));
    for (seen, f) in got.iter().enumerate() {
        let seq = check_stream_frame(f, PEER_MAC, mac).expect("peer got our bytes");
        assert_eq!(seq, seen as u64, "in order, none lost");
    }
    assert_eq!(got.len(), 600);
    // No carrier: the first packet is refused as busy and nothing is consumed.
    sim.set_link(false);
    let end = Instant::now() + Duration::from_secs(10);
    while nd.kernel().carrier() && Instant::now() < end {
        nd.kernel().wait_tx_wake(Duration::from_millis(10));
    }
    assert!(
        !nd.kernel().carrier(),
        "carrier still on 10 s after link down"
    );
    let mut results = Vec::new();
    let n = nd.send_batch(&pkts[..5], |i, r| results.push((i, r)));
    assert_eq!(n, 0);
    assert!(matches!(results.as_slice(), [(0, Err(DriverError::Busy))]));
    nd.shutdown().expect("remove");
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
}
