//! The driver split across processes: the user half runs in a supervised child process.
//! Probe, open and the watchdog run there; traffic flows through the kernel half. The user
//! half is SIGKILLed mid-stream: no frame the kernel half accepted is lost, the user half
//! is restarted, the watchdog runs again, and configuration operations work again.
//!
//! A plain `main` (harness = false): the same binary is re-executed as the user half.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e1000::config::RingParam;
use e1000::netdev::{Netdev, Options};
use e1000::{regs, DriverError, TxPacket};
use e1000_sim::net::{check_stream_frame, stream_frame};
use e1000_sim::{Mmio, PeerConfig, SimConfig, StreamConfig};
use microdriver_rt::component::{run_user_half_if_requested, Supervisor, SupervisorConfig};
use microdriver_rt::lrpc::install_kernel;
use microdriver_rt::tracker::ObjectTracker;

const PEER_MAC: [u8; 6] = [0x52, 0x55, 0x0A, 0x00, 0x02, 0x02];
const FRAMES: u64 = 20_000;
const SIZES: [usize; 5] = [60, 128, 512, 1024, 1514];

fn main() {
    run_user_half_if_requested();
    // A user half re-executes this binary, so it has its own main; the test itself runs
    // through libtest-mimic, which speaks the command line cargo test and nextest use.
    let arguments = libtest_mimic::Arguments::from_args();
    let trial = libtest_mimic::Trial::test("split::user_half_killed_during_traffic", || {
        std::panic::catch_unwind(user_half_killed_during_traffic).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "the test panicked".to_string())
                .into()
        })
    });
    libtest_mimic::run(&arguments, vec![trial]).exit()
}

fn user_half_killed_during_traffic() {
    let cfg = SimConfig {
        autoneg_time: Duration::from_millis(2),
        peer: PeerConfig {
            record_limit: 1 << 20,
            ..PeerConfig::default()
        },
        ..SimConfig::default()
    };
    let (sim, hw) = e1000::backend::sim::start(cfg).expect("model");
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

    sim.peer_take_received();
    sim.peer_start_stream(StreamConfig {
        dst: ours,
        count: FRAMES,
        sizes: SIZES.to_vec(),
        rate: None,
    });
    let (mut next_tx, mut next_rx, mut peer_seen) = (0u64, 0u64, 0u64);
    let mut killed = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while next_rx < FRAMES || peer_seen < FRAMES {
        assert!(
            Instant::now() < deadline,
            "stalled at tx {next_tx} rx {next_rx} peer {peer_seen}"
        );
        let mut burst = 0;
        while next_tx < FRAMES && burst < 64 {
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
        if killed.is_none() && next_tx >= FRAMES * 2 / 5 {
            killed = supervisor.pid();
            supervisor.kill_user_half();
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
