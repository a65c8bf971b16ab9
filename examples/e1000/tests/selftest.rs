//! The self-tests on the model: each passes on every part and leaves the device as it found
//! it; each fails, naming what failed, on a model with the matching defect injected.
//! Adaptive IFS: AIT follows collisions in half duplex and stays 0 in full duplex.

mod common;

use std::time::Duration;

use common::*;
use e1000::adapter::LinkRequest;
use e1000::netdev::Options;
use e1000::regs::phy::{bmcr, BMCR};
use e1000::regs::{self, ctrl, icr, rctl};
use e1000::selftest::{self, interrupt, loopback, registers};
use e1000::{ethtool, kernel, link, phy, DriverError};
use e1000_sim::{E1000Sim, Variant};

const VARIANTS: [Variant; 3] = [Variant::I82540EM, Variant::I82545EM, Variant::I82544GC];

/// Every register of the register test's table, by offset (for before/after snapshots).
fn table_offsets() -> Vec<u32> {
    registers::REGISTERS
        .iter()
        .flat_map(|t| (0..t.count).map(move |i| t.off + i * t.stride))
        .collect()
}

fn snapshot(sim: &E1000Sim) -> Vec<u32> {
    table_offsets().into_iter().map(|o| reg(sim, o)).collect()
}

/// The message of a self-test failure.
fn detail(r: Result<(), DriverError>) -> String {
    match r {
        Err(e @ DriverError::SelfTest { .. }) => e.to_string(),
        other => panic!("expected a self-test failure, got {other:?}"),
    }
}

#[test]
fn register_test_passes_on_every_part_and_restores_every_register() {
    for v in VARIANTS {
        let (sim, nd) = start(v);
        assert!(nd
            .with_adapter(|a| a.poll_reg(regs::STATUS, "link", 5000, |s| s & regs::status::LU != 0))
            .is_ok());
        // Under the adapter's lock: no watchdog run (link check) changes registers between
        // the snapshots.
        nd.with_adapter(|a| {
            let before = snapshot(&sim);
            let status = reg(&sim, regs::STATUS);
            registers::register_test(a).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert_eq!(snapshot(&sim), before, "{v:?}: registers restored");
            assert_eq!(reg(&sim, regs::STATUS), status, "{v:?}: STATUS unchanged");
        });
        nd.shutdown().expect("remove");
    }
}

#[test]
fn register_test_names_the_register_that_does_not_hold_its_value() {
    let cases = [
        (regs::FCAH, 1 << 3, "FCAH (0x0002c): wrote"),
        (regs::MTA + 4 * 77, 1 << 31, "MTA[77] (0x05334)"),
        (regs::RAH + 8 * 5, rah_as_bit(), "RAH[5] (0x0542c)"),
        (
            regs::RCTL,
            rctl::VFE,
            "RCTL (0x00100): wrote 0x06dfb3fc, read 0x06dbb3fc",
        ),
        (regs::TIPG, 1 << 29, "TIPG (0x00410)"),
    ];
    for (off, bit, want) in cases {
        let (sim, nd) = start(Variant::I82540EM);
        sim.inject_stuck_bits(off, bit);
        let msg = detail(nd.with_adapter(|a| registers::register_test(a)));
        assert!(msg.contains(want), "{msg} (wanted {want})");
        // Through ethtool: only the register test fails.
        let r = nd
            .configure(|a| ethtool::self_test(a, true))
            .expect("self-test runs");
        assert_eq!(r, [1, 0, 0, 0, 0], "{want}");
        nd.shutdown().expect("remove");
    }
}

fn rah_as_bit() -> u32 {
    1 << 16
}

#[test]
fn register_tables_differ_per_part() {
    // ITR exists on the 82540EM and later: a stuck ITR bit fails the 82540EM's test and is
    // not looked at on the 82544GC, which has no ITR.
    for (v, fails) in [(Variant::I82540EM, true), (Variant::I82544GC, false)] {
        let (sim, nd) = start(v);
        sim.inject_stuck_bits(regs::ITR, 1);
        let r = nd.with_adapter(|a| registers::register_test(a));
        assert_eq!(r.is_err(), fails, "{v:?}: {r:?}");
        if fails {
            assert!(detail(r).contains("ITR"));
        }
        nd.shutdown().expect("remove");
    }
}

#[test]
fn register_test_refuses_an_open_interface() {
    let (_sim, nd) = up(Variant::I82540EM);
    let r = nd.with_adapter(|a| registers::register_test(a));
    assert!(matches!(r, Err(DriverError::WrongState { .. })), "{r:?}");
    nd.shutdown().expect("remove");
}

#[test]
fn interrupt_test_passes_on_every_part() {
    for v in VARIANTS {
        let (sim, nd) = start(v);
        let irqs = reg(&sim, regs::ITR);
        nd.with_adapter(|a| interrupt::interrupt_test(a))
            .unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!(reg(&sim, regs::IMS), 0, "{v:?}: everything masked again");
        assert_eq!(reg(&sim, regs::ITR), irqs, "{v:?}: ITR restored");
        nd.shutdown().expect("remove");
    }
}

#[test]
fn interrupt_test_names_a_cause_the_device_does_not_raise() {
    for (cause, name) in [
        (icr::RXO, "cause RXO (receiver overrun)"),
        (icr::LSC, "cause LSC (link status change)"),
        (icr::SRPD, "cause SRPD"),
    ] {
        let (sim, nd) = start(Variant::I82545EM);
        sim.inject_dead_causes(cause);
        let msg = detail(nd.with_adapter(|a| interrupt::interrupt_test(a)));
        assert!(msg.contains(name), "{msg}");
        assert!(msg.contains("ICR read back"), "{msg}");
        nd.shutdown().expect("remove");
    }
    // SRPD is not a cause of the 82544GC: its absence is no failure there.
    let (sim, nd) = start(Variant::I82544GC);
    sim.inject_dead_causes(icr::SRPD | icr::TXD_LOW);
    nd.with_adapter(|a| interrupt::interrupt_test(a))
        .expect("the 82544GC has neither SRPD nor TXD_LOW");
    assert_eq!(
        interrupt::part_causes(e1000::adapter::MacType::I82544GC) & icr::SRPD,
        0
    );
    nd.shutdown().expect("remove");
}

#[test]
fn loopback_covers_both_modes_every_size_and_restores_the_link() {
    for v in VARIANTS {
        let (sim, nd) = start(v);
        let rx_before = nd.kernel().hot_stats();
        let to_peer = sim.wire_stats().to_peer;
        let rings = nd.with_adapter(|a| (a.conf.tx_ring, a.conf.rx_ring));
        nd.with_adapter(loopback::loopback_test)
            .unwrap_or_else(|e| panic!("{v:?}: {e}"));
        let rx_after = nd.kernel().hot_stats();
        let frames = 2 * loopback::FRAME_SIZES.len() as u64 * u64::from(kernel::MIN_RING);
        assert_eq!(
            rx_after.rx_packets - rx_before.rx_packets,
            frames,
            "{v:?}: a full ring of every size in both modes"
        );
        assert_eq!(
            sim.wire_stats().to_peer,
            to_peer,
            "{v:?}: nothing left the device"
        );
        // Link configuration restored: auto-negotiation on, no loopback, nothing forced.
        let bmcr = nd.with_adapter(|a| phy::read(a, BMCR)).expect("BMCR");
        assert_eq!(bmcr & bmcr::LOOPBACK, 0, "{v:?}");
        assert_ne!(bmcr & bmcr::AN_ENABLE, 0, "{v:?}");
        let c = reg(&sim, regs::CTRL);
        assert_eq!(
            c & (ctrl::FRCSPD | ctrl::FRCDPLX | ctrl::ILOS),
            0,
            "{v:?}: {c:#x}"
        );
        assert_eq!(
            reg(&sim, regs::RCTL) & (rctl::LBM_MASK | rctl::EN),
            0,
            "{v:?}"
        );
        assert_eq!(
            nd.with_adapter(|a| (a.up, a.conf.tx_ring, a.conf.rx_ring)),
            (false, rings.0, rings.1)
        );
        // The link comes back with the interface.
        nd.open().expect("open");
        assert!(
            nd.wait_link(Duration::from_secs(5)),
            "{v:?}: link after loopback"
        );
        nd.shutdown().expect("remove");
    }
}

#[test]
fn a_corrupted_loopback_frame_fails_the_test() {
    let (sim, nd) = start(Variant::I82540EM);
    sim.corrupt_loopback_frames(1);
    let msg = detail(nd.with_adapter(loopback::loopback_test));
    // The model inverts the byte in the middle of the payload: 14 + (60 - 14) / 2.
    assert!(
        msg.contains("MAC loopback: frame 0 of 60 bytes differs at byte 37"),
        "{msg}"
    );
    let bmcr = nd.with_adapter(|a| phy::read(a, BMCR)).expect("BMCR");
    assert_eq!(
        bmcr & bmcr::LOOPBACK,
        0,
        "link restored after a failure too"
    );
    assert!(!nd.with_adapter(|a| a.up));
    nd.shutdown().expect("remove");
}

#[test]
fn frames_carry_their_identity() {
    let f = loopback::test_frame([2, 0, 0, 0, 0, 1], loopback::Mode::Phy, 3, 60);
    assert_eq!(f.len(), 60);
    assert_eq!(&f[12..14], &[0x88, 0xB5]);
    assert_ne!(
        f,
        loopback::test_frame([2, 0, 0, 0, 0, 1], loopback::Mode::Phy, 4, 60)
    );
}

#[test]
fn eeprom_test_reports_the_computed_sum() {
    let (sim, nd) = start(Variant::I82540EM);
    nd.with_adapter(|a| selftest::eeprom_test(a))
        .expect("a good image");
    let w = sim.eeprom_words()[0x3F];
    // Writing the checksum word itself leaves the checksum wrong.
    nd.with_adapter(|a| e1000::eeprom::write(a, 0x3F, &[w ^ 0x0100]))
        .expect("write");
    let sum = sim.eeprom_words()[..0x40]
        .iter()
        .fold(0u16, |s, &x| s.wrapping_add(x));
    assert_ne!(sum, 0xBABA);
    let msg = detail(nd.with_adapter(|a| selftest::eeprom_test(a)));
    assert!(
        msg.contains(&format!("sum to {sum:#06x}, not 0xbaba")),
        "{msg}"
    );
    let r = nd
        .configure(|a| ethtool::self_test(a, true))
        .expect("self-test runs");
    assert_eq!(r[1], 1);
    nd.shutdown().expect("remove");
}

/// A started driver whose watchdog runs only when a test calls it.
fn quiet_watchdog(variant: Variant) -> (std::sync::Arc<E1000Sim>, e1000::Netdev) {
    let opts = Options {
        watchdog_period: Duration::from_secs(3600),
        ..Options::default()
    };
    start_with(config(variant), opts)
}

/// Adds collisions and transmitted packets to the model's counters and runs the watchdog
/// (in one hold of the adapter, so no other watchdog run splits them); returns AIT.
fn watchdog_after(sim: &E1000Sim, nd: &e1000::Netdev, colc: u64, tpt: u64) -> u32 {
    nd.with_adapter(|a| {
        assert!(sim.add_stat(regs::COLC, colc));
        assert!(sim.add_stat(regs::TPT, tpt));
        link::watchdog(a).expect("watchdog");
        assert_eq!(a.ifs.current, reg(sim, regs::AIFS));
    });
    reg(sim, regs::AIFS)
}

#[test]
fn adaptive_ifs_grows_in_half_duplex_and_resets_when_collisions_fall() {
    for v in VARIANTS {
        let (sim, nd) = quiet_watchdog(v);
        nd.open().expect("open");
        let half = LinkRequest {
            autoneg: false,
            speed: 100,
            full_duplex: false,
            advertise: phy::ADV_ALL,
            mdix: phy::ETH_TP_MDI_AUTO,
        };
        let runs = nd.with_adapter(|a| a.wd.runs);
        nd.configure(|a| ethtool::set_link_ksettings(a, &half))
            .expect("100 Mb/s half duplex");
        assert!(nd.wait_link(Duration::from_secs(5)));
        assert!(nd.with_adapter(|a| !a.link.full_duplex));
        // The link change's deferred watchdog has run (and no other is posted) before
        // counting: wait for that, not for a pause that hopes so.
        let kernel = nd.kernel().clone();
        wait_for("the link change's watchdog", || {
            kernel.work.pending() & e1000::kernel::work::LINK == 0
                && nd.with_adapter(|a| a.wd.runs) > runs
        });
        let steps: Vec<u32> = (0..6)
            .map(|_| watchdog_after(&sim, &nd, 2000, 4000))
            .collect();
        assert_eq!(steps, [40, 50, 60, 70, 80, 80], "{v:?}");
        assert_eq!(
            watchdog_after(&sim, &nd, 10, 4000),
            0,
            "{v:?}: collisions fell"
        );
        assert_eq!(
            watchdog_after(&sim, &nd, 2000, 4000),
            40,
            "{v:?}: and rise again"
        );
        nd.shutdown().expect("remove");
    }
}

#[test]
fn adaptive_ifs_keeps_ait_zero_in_full_duplex() {
    let (sim, nd) = quiet_watchdog(Variant::I82540EM);
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(5)));
    assert!(nd.with_adapter(|a| a.link.full_duplex));
    for _ in 0..3 {
        assert_eq!(watchdog_after(&sim, &nd, 5000, 6000), 0);
    }
    assert!(
        !sim.add_stat(regs::GORCL + 4, 1),
        "the high half is not a counter to add to"
    );
    nd.shutdown().expect("remove");
}
