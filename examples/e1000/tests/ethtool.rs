//! Each ethtool operation returns what the model holds; self-tests; the watchdog.

mod common;

use std::time::{Duration, Instant};

use common::*;
use e1000::config::RingParam;
use e1000::netdev::Options;
use e1000::{ethtool, regs, selftest, TxPacket};
use e1000_sim::{net, PciConfig, Variant};

#[test]
fn drvinfo_regs_msglevel_link_ring() {
    let (sim, nd) = up(Variant::I82545EM);
    let info = nd
        .with_adapter(|a| ethtool::get_drvinfo(a))
        .expect("drvinfo");
    assert_eq!(info.driver, "e1000");
    assert_eq!(info.part, "82545EM");
    assert_eq!(info.bus_info, "8086:100f");
    assert_eq!(
        info.n_stats as usize,
        ethtool::get_strings().expect("strings").len()
    );
    assert_eq!(info.eedump_len, 128);
    let dump = nd.with_adapter(|a| ethtool::get_regs(a)).expect("regs");
    assert_eq!(dump.values.len(), ethtool::regdump_layout().len());
    for (i, &(r, _)) in regs::DUMP_REGS.iter().enumerate() {
        if r != regs::STATUS && r != regs::MDIC && r != regs::RDH && r != regs::TDH {
            assert_eq!(dump.values[i], reg(&sim, r), "register {r:#x}");
        }
    }
    nd.with_adapter(|a| ethtool::set_msglevel(a, 0x55));
    assert_eq!(
        nd.with_adapter(|a| ethtool::get_msglevel(a))
            .expect("msglevel"),
        0x55
    );
    assert!(nd.with_adapter(|a| ethtool::get_link(a)).expect("link"));
    let ring = nd
        .with_adapter(|a| ethtool::get_ringparam(a))
        .expect("ring");
    assert_eq!((ring.rx, ring.tx, ring.rx_max), (256, 256, 4096));
    assert_eq!(reg(&sim, regs::TDLEN), 256 * 16);
    let new = RingParam {
        rx: 512,
        tx: 1024,
        ..ring
    };
    nd.with_adapter(|a| ethtool::set_ringparam(a, &new))
        .expect("resize");
    assert_eq!(reg(&sim, regs::TDLEN), 1024 * 16);
    assert_eq!(reg(&sim, regs::RDLEN), 512 * 16);
    for bad in [(12, 256), (256, 4104), (72, 256)] {
        let p = RingParam {
            rx: bad.0,
            tx: bad.1,
            ..ring
        };
        assert!(nd.with_adapter(|a| ethtool::set_ringparam(a, &p)).is_err());
    }
    // nway reset restarts auto-negotiation: the link comes back.
    nd.with_adapter(|a| ethtool::nway_reset(a)).expect("nway");
    assert!(nd.wait_link(Duration::from_secs(5)));
    nd.shutdown().expect("remove");
}

#[test]
fn eeprom_read_and_write_match_the_model() {
    for v in [Variant::I82540EM, Variant::I82544GC] {
        let (sim, nd) = start(v);
        let bytes = nd
            .with_adapter(|a| ethtool::get_eeprom(a, 0, 128))
            .expect("read");
        let words = sim.eeprom_words();
        let want: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(bytes, want, "{v:?}");
        let odd = nd
            .with_adapter(|a| ethtool::get_eeprom(a, 3, 5))
            .expect("read");
        assert_eq!(odd, want[3..8]);
        nd.with_adapter(|a| {
            ethtool::set_eeprom(a, ethtool::eeprom_magic(a), 0x21, &[0xAB, 0xCD, 0xEF])
        })
        .expect("write");
        let words = sim.eeprom_words();
        assert_eq!(words[0x10] >> 8, 0xAB);
        assert_eq!(words[0x11], 0xEFCD);
        assert_eq!(
            words.iter().fold(0u16, |s, &w| s.wrapping_add(w)),
            0xBABA,
            "checksum fixed up"
        );
        assert!(nd
            .with_adapter(|a| ethtool::get_eeprom(a, 120, 10))
            .is_err());
        nd.shutdown().expect("remove");
    }
}

#[test]
fn self_tests_pass_and_the_interface_works_after() {
    let (sim, nd) = up(Variant::I82540EM);
    let r = nd
        .with_adapter(|a| ethtool::self_test(a, true))
        .expect("self-test");
    assert_eq!(r.len(), selftest::NAMES.len());
    assert!(r.iter().all(|&x| x == 0), "{r:?}");
    assert!(nd.wait_link(Duration::from_secs(5)));
    let mac = sim.mac();
    nd.send(
        &TxPacket::new(net::arp(1, mac, OUR_IP, [0; 6], PEER_IP)),
        Duration::from_secs(2),
    )
    .expect("send");
    let reply = nd
        .recv(Duration::from_secs(2))
        .expect("ARP reply after self-test");
    assert_eq!(net::ethertype(&reply.data), net::ETHERTYPE_ARP);
    // The link test fails with the cable out.
    sim.set_link(false);
    let r = nd
        .with_adapter(|a| ethtool::self_test(a, false))
        .expect("online self-test");
    assert_eq!(r[4], 1);
    nd.shutdown().expect("remove");
    // The register test writes STATUS on purpose (its read-only check); nothing else.
    let faults: Vec<_> = sim
        .faults()
        .into_iter()
        .filter(|f| {
            !matches!(
                f,
                e1000_sim::Fault::ReadOnlyWrite {
                    off: regs::STATUS,
                    ..
                }
            )
        })
        .collect();
    assert!(faults.is_empty(), "{faults:?}");
}

#[test]
fn statistics_accumulate_into_64_bit_counters() {
    let (sim, nd) = up(Variant::I82540EM);
    let mac = sim.mac();
    for i in 0..50 {
        nd.send(
            &TxPacket::new(net::stream_frame(PEER_MAC, mac, i, 1000)),
            Duration::from_secs(2),
        )
        .expect("send");
        if i == 25 {
            // A watchdog-style read in the middle: the registers clear, the totals do not.
            nd.with_adapter(e1000::stats::update).expect("update");
        }
    }
    let end = Instant::now() + Duration::from_secs(2);
    while (sim.peer_stats().rx_frames < 50 || nd.kernel().hot_stats().tx_packets < 50)
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let names = ethtool::get_strings().expect("strings");
    let values = nd.with_adapter(ethtool::get_stats).expect("stats");
    assert_eq!(names.len(), values.len());
    let get = |n: &str| values[names.iter().position(|x| x == n).expect(n)];
    assert_eq!(get("hw_good_tx_packets"), 50);
    assert_eq!(get("hw_good_tx_octets"), 50 * 1004);
    assert_eq!(get("hw_tx_512_1023"), 50, "1004 bytes on the wire");
    assert_eq!(get("hw_tx_1024_max"), 0);
    assert_eq!(get("tx_packets"), 50);
    assert_eq!(reg(&sim, regs::GPTC), 0, "cleared by the driver's reads");
    nd.shutdown().expect("remove");
}

#[test]
fn wol_is_armed_at_shutdown_and_identify_blinks() {
    let (sim, nd) = up(Variant::I82540EM);
    assert!(nd.with_adapter(|a| ethtool::set_wol(a, 1 << 7)).is_err());
    nd.with_adapter(|a| ethtool::set_wol(a, ethtool::WAKE_MAGIC | ethtool::WAKE_BCAST))
        .expect("wol");
    let w = nd.with_adapter(|a| ethtool::get_wol(a)).expect("wol");
    assert_eq!(w.wolopts, ethtool::WAKE_MAGIC | ethtool::WAKE_BCAST);
    let led = reg(&sim, regs::LEDCTL);
    nd.with_adapter(|a| ethtool::identify(a, ethtool::IdState::Active))
        .expect("identify");
    assert_ne!(reg(&sim, regs::LEDCTL), led, "identify changed the LEDs");
    nd.with_adapter(|a| ethtool::identify(a, ethtool::IdState::Inactive))
        .expect("identify off");
    assert_eq!(reg(&sim, regs::LEDCTL), led);
    nd.with_adapter(e1000::probe::shutdown).expect("shutdown");
    assert_eq!(reg(&sim, regs::WUFC), regs::wufc::MAG | regs::wufc::BC);
    assert_ne!(reg(&sim, regs::WUC) & regs::wuc::PME_EN, 0);
    nd.shutdown().expect("remove");
}

#[test]
fn watchdog_follows_the_cable() {
    let opts = Options {
        watchdog_period: Duration::from_millis(20),
        ..Options::default()
    };
    let (sim, nd) = start_with(config(Variant::I82540EM), opts);
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(5)));
    let wait = |up: bool| {
        let end = Instant::now() + Duration::from_secs(5);
        while nd.with_adapter(|a| a.link.up) != up {
            assert!(Instant::now() < end, "watchdog saw link {up}");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    sim.set_link(false);
    wait(false);
    let mac = sim.mac();
    let arp = TxPacket::new(net::arp(1, mac, OUR_IP, [0; 6], PEER_IP));
    assert!(
        matches!(nd.try_send(&arp), Err(e1000::DriverError::Busy)),
        "no carrier: queue stopped"
    );
    sim.set_link(true);
    wait(true);
    nd.send(&arp, Duration::from_secs(2))
        .expect("send after link up");
    assert!(nd.recv(Duration::from_secs(2)).is_some());
    let changes = nd.with_adapter(|a| a.link.changes);
    assert!(changes >= 3, "up, down, up: {changes}");
    nd.shutdown().expect("remove");
}

#[test]
fn watchdog_detects_a_transmit_hang_and_resets() {
    let opts = Options {
        watchdog_period: Duration::from_millis(20),
        ..Options::default()
    };
    let (sim, nd) = start_with(config(Variant::I82540EM), opts);
    nd.with_adapter(|a| a.conf.tx_timeout_ms = 30);
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(5)));
    // Turn bus mastering off behind the driver's back: the transmitter stops fetching.
    let cmd = sim.config_read16(regs::pci::COMMAND);
    sim.config_write16(regs::pci::COMMAND, cmd & !regs::pci::command::BUS_MASTER);
    let mac = sim.mac();
    nd.send(
        &TxPacket::new(net::stream_frame(PEER_MAC, mac, 1, 100)),
        Duration::from_secs(1),
    )
    .expect("accepted");
    let end = Instant::now() + Duration::from_secs(5);
    while nd.with_adapter(|a| a.wd.resets) == 0 {
        assert!(Instant::now() < end, "no reset");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(nd.with_adapter(|a| a.wd.tx_timeouts) >= 1);
    // After the reset the device transmits again.
    assert!(nd.wait_link(Duration::from_secs(5)));
    nd.send(
        &TxPacket::new(net::arp(1, mac, OUR_IP, [0; 6], PEER_IP)),
        Duration::from_secs(2),
    )
    .expect("send after reset");
    assert!(nd.recv(Duration::from_secs(2)).is_some());
    nd.shutdown().expect("remove");
}

/// A ring that went once round between two watchdog runs is no hang. The watchdog's memory
/// is the adapter's, written back only when a run completes: a user half killed during
/// runs leaves the last completed run's, seconds old, and by then the transmit ring can
/// have gone round to the very slot it was at (the chaos campaign saw this: a reset in the
/// middle of traffic, every frame in the NIC's packet buffer lost with it).
#[test]
fn a_ring_gone_round_between_watchdog_runs_is_no_transmit_hang() {
    // Watchdog runs only when the test calls it.
    let opts = Options {
        watchdog_period: Duration::from_secs(3600),
        ..Options::default()
    };
    let (sim, nd) = start_with(config(Variant::I82540EM), opts);
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(5)));
    let ring = e1000::kernel::MIN_RING;
    nd.with_adapter(|a| {
        ethtool::set_ringparam(
            a,
            &RingParam {
                rx: ring,
                tx: ring,
                rx_max: 4096,
                tx_max: 4096,
            },
        )
    })
    .expect("resize");
    let mac = sim.mac();
    let bus_master = |on: bool| {
        let cmd = sim.config_read16(regs::pci::COMMAND) & !regs::pci::command::BUS_MASTER;
        let on = if on {
            regs::pci::command::BUS_MASTER
        } else {
            0
        };
        sim.config_write16(regs::pci::COMMAND, cmd | on);
    };
    let send = |seq: u64| {
        nd.send(
            &TxPacket::new(net::stream_frame(PEER_MAC, mac, seq, 100)),
            Duration::from_secs(2),
        )
        .expect("accepted");
    };
    let reclaimed = |n: u64| {
        wait_for("transmit clean to reclaim", || {
            nd.kernel().hot_stats().tx_packets >= n
        })
    };
    let base = nd.kernel().hot_stats().tx_packets;
    let watchdog = || {
        nd.with_adapter(e1000::link::watchdog)
            .expect("watchdog")
            .tx_hang
    };
    // A packet the stopped transmitter holds: pending at this run.
    bus_master(false);
    send(0);
    assert!(!watchdog(), "a packet pending for no time is no hang");
    // The transmitter runs again and the ring goes once round (one descriptor a packet),
    // ending with a packet pending in the same slot as at the last run.
    bus_master(true);
    reclaimed(base + 1);
    for seq in 1..u64::from(ring) {
        send(seq);
    }
    reclaimed(base + u64::from(ring));
    bus_master(false);
    send(u64::from(ring));
    // The last run to complete was 5 s ago (TX_HANG_MS is 4 s).
    nd.with_adapter(|a| a.wd.last_tx_move_ms -= 5000);
    assert!(
        !watchdog(),
        "{} packets were sent since the last run: no hang",
        ring
    );
    // The same packet still pending 5 s later is one.
    nd.with_adapter(|a| a.wd.last_tx_move_ms -= 5000);
    assert!(
        watchdog(),
        "nothing reclaimed for 5 s with a packet pending"
    );
    bus_master(true);
    nd.shutdown().expect("remove");
}

/// Sends `n` full-sized frames and waits until the hot path has reclaimed them, calling
/// `each` after every send and while waiting.
fn bulk_stream(nd: &e1000::netdev::Netdev, mac: [u8; 6], n: u64, mut each: impl FnMut()) {
    let start = nd.kernel().hot_stats().tx_packets;
    for i in 0..n {
        nd.send(
            &TxPacket::new(net::stream_frame(PEER_MAC, mac, i, 1514)),
            Duration::from_secs(2),
        )
        .expect("send");
        each();
    }
    let end = Instant::now() + Duration::from_secs(2);
    while nd.kernel().hot_stats().tx_packets < start + n && Instant::now() < end {
        each();
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn poll_path_throttles_interrupts_adaptively() {
    // No periodic watchdog run: adaptive throttling must not need one.
    let opts = Options {
        watchdog_period: Duration::from_secs(3600),
        ..Options::default()
    };
    let (sim, nd) = start_with(config(Variant::I82540EM), opts);
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(5)));
    let mac = sim.mac();
    // The link coming up posts a link check (a watchdog run): let it finish first.
    let runs = settle(&nd);
    // Adaptive mode starts at the mixed-traffic rate (here also the configured maximum).
    assert_eq!(reg(&sim, regs::ITR), e1000::link::itr_value(20_000));
    // A bulk stream: the poll path moves ITR to the bulk rate within a few rounds.
    let polls0 = nd.kernel().hot_stats().polls;
    let mut bulk_after = None;
    bulk_stream(&nd, mac, 2000, || {
        if bulk_after.is_none() && reg(&sim, regs::ITR) == e1000::link::itr_value(4_000) {
            bulk_after = Some(nd.kernel().hot_stats().polls - polls0);
        }
    });
    let polls = bulk_after.expect("ITR never reached the bulk rate");
    assert!(polls <= 16, "bulk rate only after {polls} poll rounds");
    // Once the last completions are polled (a light round may already move the rate back
    // up a step), nothing moves ITR but the poll path, and no watchdog ran.
    assert_eq!(settle(&nd), runs, "no watchdog run");
    // The watchdog reports the kernel half's rate and leaves ITR alone.
    let itr = reg(&sim, regs::ITR);
    let report = nd.with_adapter(e1000::link::watchdog).expect("watchdog");
    assert!((4_000..20_000).contains(&report.irq_rate), "{report:?}");
    assert_eq!(itr, e1000::link::itr_value(report.irq_rate));
    assert_eq!(reg(&sim, regs::ITR), itr);
    // Single small packets: the rate climbs back, capped by the configured maximum.
    let end = Instant::now() + Duration::from_secs(5);
    while reg(&sim, regs::ITR) != e1000::link::itr_value(20_000) {
        assert!(
            Instant::now() < end,
            "ITR stayed at {:#x}",
            reg(&sim, regs::ITR)
        );
        nd.send(
            &TxPacket::new(net::arp(1, mac, OUR_IP, [0; 6], PEER_IP)),
            Duration::from_secs(2),
        )
        .expect("send");
        std::thread::sleep(Duration::from_millis(2));
    }
    nd.shutdown().expect("remove");
}

/// Waits until no poll round and no watchdog run happened for 100 ms; returns the watchdog
/// runs so far.
fn settle(nd: &e1000::netdev::Netdev) -> u64 {
    let end = Instant::now() + Duration::from_secs(5);
    let seen = || {
        (
            nd.kernel().hot_stats().polls,
            nd.with_adapter(|a| a.wd.runs),
        )
    };
    let mut last = seen();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = seen();
        if now == last {
            return now.1;
        }
        assert!(Instant::now() < end, "the driver never went quiet");
        last = now;
    }
}

#[test]
fn fixed_interrupt_rate_never_changes() {
    let opts = Options {
        watchdog_period: Duration::from_secs(3600),
        ..Options::default()
    };
    let (sim, nd) = start_with(config(Variant::I82540EM), opts);
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(5)));
    let mac = sim.mac();
    let mut c = nd
        .with_adapter(|a| ethtool::get_coalesce(a))
        .expect("coalesce");
    c.adaptive = false;
    c.max_irq_rate = 8_000;
    nd.with_adapter(|a| ethtool::set_coalesce(a, &c))
        .expect("coalesce");
    let fixed = e1000::link::itr_value(8_000);
    assert_eq!(reg(&sim, regs::ITR), fixed);
    bulk_stream(&nd, mac, 500, || assert_eq!(reg(&sim, regs::ITR), fixed));
    let report = nd.with_adapter(e1000::link::watchdog).expect("watchdog");
    assert_eq!(report.irq_rate, 0);
    assert_eq!(reg(&sim, regs::ITR), fixed);
    // Back to adaptive: the poll path takes ITR again.
    c.adaptive = true;
    nd.with_adapter(|a| ethtool::set_coalesce(a, &c))
        .expect("coalesce");
    // (Checked while the stream runs and once at its end: the last rounds may reach the
    // bulk rate after the last packet was queued, or already move it back up a step.)
    let bulk = e1000::link::itr_value(4_000);
    let mut reached_bulk = false;
    bulk_stream(&nd, mac, 500, || {
        reached_bulk |= reg(&sim, regs::ITR) == bulk
    });
    reached_bulk |= reg(&sim, regs::ITR) == bulk;
    assert!(reached_bulk, "ITR stayed at {:#x}", reg(&sim, regs::ITR));
    nd.shutdown().expect("remove");
}
