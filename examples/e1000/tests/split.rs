//! The driver split across processes: the user half runs in a supervised child process.
//! Probe, open and the watchdog run there; traffic flows through the kernel half. The user
//! half is SIGKILLed mid-stream: no frame the kernel half accepted is lost, the user half
//! is restarted, the watchdog runs again, and configuration operations work again. The
//! rings and counters behind their combolocks reach the user half as snapshots only: a
//! hostile user half can neither hold nor write them.
//!
//! A plain `main` (harness = false): the same binary is re-executed as the user half.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e1000::config::RingParam;
use e1000::netdev::{Netdev, Options};
use e1000::shared::{SharedState, TxQueue};
use e1000::{regs, DriverError, TxPacket};
use e1000_sim::net::{check_stream_frame, stream_frame};
use e1000_sim::{E1000Sim, Mmio, PeerConfig, SimConfig, StreamConfig};
use microdriver_rt::component::{run_user_half_if_requested, Supervisor, SupervisorConfig};
use microdriver_rt::lrpc::__private::{downcall, inventory, upcall, Entry, Served};
use microdriver_rt::lrpc::install_kernel;
use microdriver_rt::marshal::{Decoder, Encoder, Marshal, MarshalError};
use microdriver_rt::sync::combolock::RELEASE_ENTRY;
use microdriver_rt::sync::ComboLockError;
use microdriver_rt::tracker::ObjectTracker;

const PEER_MAC: [u8; 6] = [0x52, 0x55, 0x0A, 0x00, 0x02, 0x02];
const FRAMES: u64 = 20_000;
const SIZES: [usize; 5] = [60, 128, 512, 1024, 1514];

// The runtime's harness for binaries that host a user half: libtest's command line, one
// trial at a time (the kernel endpoint is process-wide: `install_kernel`).
#[path = "../../../microdriver-rt/tests/support/mod.rs"]
mod support;

fn main() {
    run_user_half_if_requested();
    support::run_tests(vec![
        (
            "split::user_half_killed_during_traffic",
            user_half_killed_during_traffic,
        ),
        (
            "split::user_half_killed_in_offline_self_test_closed",
            || killed_in_offline_self_test(KillPoint::Closed),
        ),
        (
            "split::user_half_killed_in_offline_self_test_loopback",
            || killed_in_offline_self_test(KillPoint::Loopback),
        ),
        (
            "split::user_half_killed_in_ring_resize",
            killed_in_ring_resize,
        ),
        (
            "split::hot_state_reaches_the_user_half_by_snapshot_only",
            hot_state_by_snapshot_only,
        ),
    ])
}

/// A split driver on a fresh model: the user half supervised, the interface open, the link
/// up.
fn start_split() -> (Arc<E1000Sim>, Supervisor, Netdev) {
    let cfg = SimConfig {
        autoneg_time: Duration::from_millis(2),
        peer: PeerConfig {
            record_limit: 1 << 20,
            ..PeerConfig::default()
        },
        ..SimConfig::default()
    };
    let (sim, hw) = e1000_sim::start(cfg).expect("model");
    let supervisor = Supervisor::start(SupervisorConfig::default(), Arc::new(ObjectTracker::new()))
        .expect("user half starts");
    install_kernel(supervisor.endpoint().clone());
    let opts = Options {
        watchdog_period: Duration::from_millis(50),
        ..Options::default()
    };
    let nd = Netdev::start(hw, opts).expect("probe in the user half");
    let ours = nd.with_adapter(|a| a.mac);
    assert_eq!(ours, sim.mac());
    nd.open().expect("open in the user half");
    assert!(nd.wait_link(Duration::from_secs(5)), "link up");
    (sim, supervisor, nd)
}

/// Streams `frames` sequence-numbered frames each way at once (the peer's stream to us,
/// ours to the peer) and checks that every one arrives intact and in order: none the kernel
/// half accepted is lost. `midway` runs once, when two fifths of ours are sent.
fn stream_both_ways(
    nd: &Netdev,
    sim: &E1000Sim,
    frames: u64,
    timeout: Duration,
    midway: impl FnOnce(),
) {
    let ours = sim.mac();
    nd.drain();
    sim.peer_take_received();
    sim.peer_start_stream(StreamConfig {
        dst: ours,
        count: frames,
        sizes: SIZES.to_vec(),
        rate: None,
    });
    let (mut next_tx, mut next_rx, mut peer_seen) = (0u64, 0u64, 0u64);
    let mut midway = Some(midway);
    let deadline = Instant::now() + timeout;
    while next_rx < frames || peer_seen < frames {
        assert!(
            Instant::now() < deadline,
            "stalled at tx {next_tx} rx {next_rx} peer {peer_seen} of {frames}"
        );
        let mut burst = 0;
        while next_tx < frames && burst < 64 {
            let len = SIZES[(next_tx % SIZES.len() as u64) as usize];
            match nd.try_send(&TxPacket::new(stream_frame(PEER_MAC, ours, next_tx, len))) {
                Ok(()) => {
                    next_tx += 1;
                    burst += 1;
                }
                Err(DriverError::Busy) => break,
                Err(e) => panic!("send {next_tx}: {e}"),
            }
        }
        if next_tx >= frames * 2 / 5 {
            if let Some(f) = midway.take() {
                f();
            }
        }
        for f in nd.drain() {
            let seq = check_stream_frame(&f.data, ours, PEER_MAC).expect("received bytes intact");
            assert_eq!(seq, next_rx, "receive in order, none lost");
            next_rx += 1;
        }
        for f in sim.peer_take_received() {
            let seq = check_stream_frame(&f, PEER_MAC, ours).expect("peer got our bytes");
            assert_eq!(
                seq, peer_seen,
                "every accepted frame reaches the peer, in order"
            );
            peer_seen += 1;
        }
        if burst == 0 {
            nd.kernel().wait_tx_wake(Duration::from_millis(1));
        }
    }
}

fn user_half_killed_during_traffic() {
    let (sim, supervisor, nd) = start_split();
    let ours = sim.mac();

    let mut killed = None;
    stream_both_ways(&nd, &sim, FRAMES, Duration::from_secs(60), || {
        killed = supervisor.pid();
        supervisor.kill_user_half();
    });
    assert!(killed.is_some(), "the user half was killed");
    assert!(
        supervisor.wait_restarted(killed, Duration::from_secs(10)),
        "the user half restarted"
    );

    // The watchdog runs again in the new user half.
    let runs = nd.with_adapter(|a| a.wd.runs);
    let end = Instant::now() + Duration::from_secs(5);
    while nd.with_adapter(|a| a.wd.runs) <= runs + 1 {
        assert!(Instant::now() < end, "watchdog did not resume");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A crash while only the watchdog and traffic ran left nothing half-configured: no
    // reset (which would drop what the rings hold).
    assert_eq!(
        nd.with_adapter(|a| a.wd.resets),
        0,
        "no reset after the crash"
    );
    // Configuration works again (through the new user half) and reaches the hardware.
    nd.with_adapter(|a| {
        e1000::ethtool::set_ringparam(
            a,
            &RingParam {
                rx: 512,
                tx: 128,
                rx_max: 4096,
                tx_max: 4096,
            },
        )
    })
    .expect("resize after restart");
    assert_eq!(sim.read32(regs::TDLEN), 128 * 16);
    assert_eq!(sim.read32(regs::RDLEN), 512 * 16);
    nd.with_adapter(|a| e1000::config::vlan_add(a, 7))
        .expect("VLAN after restart");
    assert_eq!(sim.read32(regs::VFTA), 1 << 7);
    // The self-tests run in the user half; the loopback test drives the hot path through
    // downcalls (xmit_frame, poll) nested in the upcall.
    let results = nd
        .with_adapter(|a| e1000::ethtool::self_test(a, true))
        .expect("self-test in the user half");
    assert!(results.iter().all(|&r| r == 0), "{results:?}");
    let names = e1000::ethtool::get_strings().expect("strings");
    let values = nd
        .with_adapter(e1000::ethtool::get_stats)
        .expect("statistics from the user half");
    assert_eq!(names.len(), values.len());
    assert!(nd.wait_link(Duration::from_secs(5)));
    nd.send(
        &TxPacket::new(stream_frame(PEER_MAC, ours, FRAMES, 100)),
        Duration::from_secs(2),
    )
    .expect("traffic after resize");
    nd.shutdown().expect("remove");
    supervisor.shutdown();
    assert_eq!(sim.bus_errors(), 0);
}

/// Where in the offline self-test the user half is killed.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// The interface closed for the tests (rings freed, interrupts masked).
    Closed,
    /// The loopback test running (small rings, PHY loopback, frames captured).
    Loopback,
}

/// The ring sizes the adapter holds in the tests below (not the defaults, so a device
/// left with the self-test's or a resize's rings shows).
const RINGS: RingParam = RingParam {
    rx: 256,
    tx: 128,
    rx_max: 4096,
    tx_max: 4096,
};

/// A configuration call whose user half was killed under it: it failed crossing the split,
/// a new user half answers, and the device was reset from the adapter.
fn expect_killed_then_recovered(
    r: Result<(), DriverError>,
    what: &str,
    supervisor: &Supervisor,
    old: Option<u32>,
    nd: &Netdev,
    resets: u64,
) {
    let e = r.expect_err(&format!("the {what} fails: its user half was killed"));
    assert!(matches!(e, DriverError::Upcall(_)), "{e}");
    assert!(
        supervisor.wait_restarted(old, Duration::from_secs(10)),
        "the user half restarted"
    );
    wait_recovered(nd, resets);
}

/// Waits (up to 20 s) until the reset task has run since `resets` was read: the k-half
/// scheduled it after the failed call and it ran once a user half answered again.
fn wait_recovered(nd: &Netdev, resets: u64) {
    let end = Instant::now() + Duration::from_secs(20);
    while nd.with_adapter(|a| a.wd.resets) <= resets {
        assert!(
            Instant::now() < end,
            "the device was not reset after the failed call"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// After a recovery: the adapter's rings are in the hardware and reported, and traffic
/// flows both ways, none lost.
fn check_recovered(nd: &Netdev, sim: &E1000Sim, rings: RingParam) {
    let got = nd
        .with_adapter(|a| e1000::ethtool::get_ringparam(a))
        .expect("ring sizes from the new user half");
    assert_eq!(
        (got.rx, got.tx),
        (rings.rx, rings.tx),
        "-g reports the adapter's rings"
    );
    assert_eq!(
        sim.read32(regs::RDLEN),
        rings.rx * 16,
        "receive ring in the hardware"
    );
    assert_eq!(
        sim.read32(regs::TDLEN),
        rings.tx * 16,
        "transmit ring in the hardware"
    );
    assert!(nd.wait_link(Duration::from_secs(5)), "link up again");
    wait_link_settled(sim);
    stream_both_ways(nd, sim, 3000, Duration::from_secs(30), || {});
}

/// Waits until the link has stayed up for 100 ms with the receiver on. A self-test ends by
/// restarting auto-negotiation, and the model's link may drop for that a moment after the
/// driver saw it up: frames the peer sends meanwhile are lost on the wire, not by the
/// driver, and the stream check would count them.
fn wait_link_settled(sim: &E1000Sim) {
    let end = Instant::now() + Duration::from_secs(5);
    let mut up_since = None;
    loop {
        let up = sim.read32(regs::STATUS) & regs::status::LU != 0
            && sim.read32(regs::RCTL) & regs::rctl::EN != 0;
        match (up, up_since) {
            (false, _) => up_since = None,
            (true, None) => up_since = Some(Instant::now()),
            (true, Some(t)) if t.elapsed() >= Duration::from_millis(100) => return,
            (true, Some(_)) => {}
        }
        assert!(Instant::now() < end, "the link never settled");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The user half dies in the middle of an offline self-test (which closed the interface,
/// or is running the loopback test): the k-half's adapter still says "up, 256/128 rings";
/// the device must be brought back to that.
fn killed_in_offline_self_test(point: KillPoint) {
    let (sim, supervisor, nd) = start_split();
    nd.configure(|a| e1000::ethtool::set_ringparam(a, &RINGS))
        .expect("resize");
    let resets = nd.with_adapter(|a| a.wd.resets);
    let old = supervisor.pid();
    let r = std::thread::scope(|s| {
        let t = s.spawn(|| nd.configure(|a| e1000::ethtool::self_test(a, true)));
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let rdlen = sim.read32(regs::RDLEN);
            let at = match point {
                KillPoint::Closed => rdlen == 0,
                KillPoint::Loopback => rdlen == e1000::kernel::MIN_RING * 16,
            };
            if at {
                supervisor.kill_user_half();
                break;
            }
            assert!(!t.is_finished(), "the self-test ended before {point:?}");
            assert!(
                Instant::now() < end,
                "the self-test never reached {point:?}"
            );
            std::thread::sleep(Duration::from_micros(50));
        }
        t.join().expect("self-test thread")
    });
    expect_killed_then_recovered(r.map(drop), "self-test", &supervisor, old, &nd, resets);
    check_recovered(&nd, &sim, RINGS);
    // And the self-test passes in the new user half.
    let results = nd
        .configure(|a| e1000::ethtool::self_test(a, true))
        .expect("self-test");
    assert!(results.iter().all(|&r| r == 0), "{results:?}");
    check_recovered(&nd, &sim, RINGS);
    nd.shutdown().expect("remove");
    supervisor.shutdown();
    assert_eq!(sim.bus_errors(), 0);
}

/// The user half dies in the middle of a ring resize (transmit frozen, the receive ring
/// parked at its end): the adapter keeps the old sizes, and the device must run on them.
fn killed_in_ring_resize() {
    let (sim, supervisor, nd) = start_split();
    let ours = sim.mac();
    nd.configure(|a| e1000::ethtool::set_ringparam(a, &RINGS))
        .expect("resize");
    let resets = nd.with_adapter(|a| a.wd.resets);
    let old = supervisor.pid();
    let bigger = RingParam {
        rx: 512,
        tx: 256,
        ..RINGS
    };
    let r = std::thread::scope(|s| {
        let t = s.spawn(|| nd.configure(|a| e1000::ethtool::set_ringparam(a, &bigger)));
        // On an idle link the resize waits 100 ms for the parked ring to make progress;
        // transmit is frozen (xmit answers Busy) from its start.
        let end = Instant::now() + Duration::from_secs(20);
        let probe = TxPacket::new(stream_frame(PEER_MAC, ours, u64::MAX, 60));
        loop {
            if let Err(DriverError::Busy) = nd.try_send(&probe) {
                supervisor.kill_user_half();
                break;
            }
            assert!(!t.is_finished(), "the resize ended before transmit froze");
            assert!(Instant::now() < end, "transmit never froze");
            std::thread::sleep(Duration::from_micros(200));
        }
        t.join().expect("resize thread")
    });
    expect_killed_then_recovered(r, "resize", &supervisor, old, &nd, resets);
    check_recovered(&nd, &sim, RINGS);
    // The resize works in the new user half.
    nd.configure(|a| e1000::ethtool::set_ringparam(a, &bigger))
        .expect("resize after recovery");
    check_recovered(&nd, &sim, bigger);
    nd.shutdown().expect("remove");
    supervisor.shutdown();
    assert_eq!(sim.bus_errors(), 0);
}

/// What a hostile user half got when it went for the transmit ring's combolock: whether
/// `lock()` was refused as snapshot-only, the forged release's answer code, and from its
/// snapshot: the TX packet count, the ring's descriptor bus address, and whether there
/// was a ring.
type HostileOutcome = (bool, u8, u64, u64, bool);

/// A user-half entry: given the adapter's shared-state handles, tries to hold the transmit
/// ring's lock, forges a release carrying an empty ring, and takes a snapshot.
fn hostile_ring_access(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let shared = SharedState::decode(&mut dec)?;
    dec.finish()?;
    let refused = matches!(shared.tx.lock(), Err(ComboLockError::SnapshotOnly { .. }));
    let mut forged = Vec::new();
    TxQueue::default().encode(&mut Encoder::new(&mut forged))?;
    let code = downcall(
        RELEASE_ENTRY,
        &mut (),
        |_, enc| {
            shared.tx.id().encode(enc)?;
            1u64.encode(enc)?;
            true.encode(enc)?;
            enc.put_bytes(&forged);
            Ok(())
        },
        |_, dec| dec.take_u8(),
    )
    .map_err(|e| MarshalError::BadHeader {
        reason: e.to_string(),
    })?;
    let snap = shared.tx.snapshot().map_err(|e| MarshalError::BadHeader {
        reason: e.to_string(),
    })?;
    let ring = snap.ring.as_ref();
    let outcome: HostileOutcome = (
        refused,
        code,
        snap.stats.packets,
        ring.map_or(u64::MAX, |r| r.desc_bus()),
        ring.is_some(),
    );
    outcome.encode(enc)
}

inventory::submit! { Entry { name: "e1000_split_test::hostile_ring_access", signature: "fn(SharedState) -> (bool, u8, u64, u64, bool)", served: Served::ByUser, handler: hostile_ring_access } }

/// The rings and counters live behind snapshot-only combolocks. The user half's statistics
/// (ethtool -S, run there) are the kernel half's counters; a user half that tries to hold
/// the transmit ring's lock is refused, a forged release is refused, and its snapshot
/// carries indexes and counters but no ring memory. The kernel half's ring is untouched and
/// traffic flows on.
fn hot_state_by_snapshot_only() {
    let (sim, supervisor, nd) = start_split();
    stream_both_ways(&nd, &sim, 2000, Duration::from_secs(30), || {});
    // The peer has every frame; TX clean counts them once it reclaims their descriptors,
    // which may take a few more poll rounds.
    let end = Instant::now() + Duration::from_secs(5);
    while nd.kernel().hot_stats().tx_packets < 2000 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
    let hot = nd.kernel().hot_stats();
    assert!(hot.tx_packets >= 2000 && hot.rx_packets >= 2000, "{hot:?}");
    let names = e1000::ethtool::get_strings().expect("names");
    let values = nd
        .with_adapter(e1000::ethtool::get_stats)
        .expect("ethtool -S in the user half");
    let stat = |n: &str| values[names.iter().position(|x| x == n).expect(n)];
    // TX clean may still reclaim a packet meanwhile: the user half's snapshot lies between
    // the kernel half's counters before and after it.
    let after = nd.kernel().hot_stats();
    for (name, before, after) in [
        ("tx_packets", hot.tx_packets, after.tx_packets),
        ("rx_packets", hot.rx_packets, after.rx_packets),
        ("polls", hot.polls, after.polls),
        ("interrupts", hot.interrupts, after.interrupts),
    ] {
        let got = stat(name);
        assert!(
            (before..=after).contains(&got),
            "{name}: {got} not in {before}..={after}"
        );
    }

    let shared = nd
        .with_adapter(|a| a.shared.clone())
        .expect("probe set the handles");
    let ring_before = {
        let q = shared.tx.lock().expect("the kernel half's own lock");
        q.ring.as_ref().map(|r| r.desc_bus())
    };
    let (refused, code, tx_packets, ring_len, has_ring): HostileOutcome = upcall(
        "e1000_split_test::hostile_ring_access",
        &mut (),
        |_, enc| shared.encode(enc),
        |_, dec| HostileOutcome::decode(dec),
    )
    .expect("hostile upcall answered");
    let after = nd.kernel().hot_stats();
    assert!(refused, "a user-half hold of a ring lock is refused");
    assert_eq!(code, 2, "a forged release is refused: not held");
    assert!(
        (hot.tx_packets..=after.tx_packets).contains(&tx_packets),
        "the snapshot's counters"
    );
    assert!(has_ring, "the snapshot shows the ring");
    assert_eq!(ring_len, RING_SNAPSHOT_MEMORY, "but none of its memory");
    // The forged release carried an empty queue: written, it would have removed the ring.
    let q = shared.tx.lock().expect("the kernel half's own lock");
    let ring = q.ring.as_ref().map(|r| r.desc_bus());
    assert!(
        ring.is_some_and(|bus| bus != 0),
        "the ring and its DMA memory stay"
    );
    assert_eq!(ring, ring_before);
    drop(q);
    assert_eq!(microdriver_rt::sync::ComboLock::user_holds(), 0);
    stream_both_ways(&nd, &sim, 2000, Duration::from_secs(30), || {});
    nd.shutdown().expect("remove");
    drop(supervisor);
}

/// The descriptor memory's bus address in a user-half snapshot (memory is not carried).
const RING_SNAPSHOT_MEMORY: u64 = 0;
