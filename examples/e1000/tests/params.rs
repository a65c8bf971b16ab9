//! Load-time parameters (Linux's e1000 module parameters) put the hardware where the 8254x
//! manual says each setting lives, and a refused set leaves the device unopened.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use e1000::netdev::{Netdev, Options};
use e1000::params::Params;
use e1000::regs::phy::{anar, bmcr, gcr, ANAR, BMCR, GCR};
use e1000::regs::{ctrl, rctl, rxcsum, tctl, *};
use e1000::DriverError;
use e1000_sim::{net, E1000Sim, Variant};

/// Starts the driver on `variant` with the parameters `args` (board 0).
fn start_params(variant: Variant, args: &[&str]) -> Result<(Arc<E1000Sim>, Netdev), DriverError> {
    let params = Params::parse(args.iter().copied(), 0).expect("the arguments parse");
    let (sim, hw) = e1000_sim::start(config(variant)).expect("model starts");
    let opts = Options {
        params: Some(params),
        ..Options::default()
    };
    Netdev::start(hw, opts).map(|nd| (sim, nd))
}

/// Started with `args`, opened, link up.
fn up_params(variant: Variant, args: &[&str]) -> (Arc<E1000Sim>, Netdev) {
    let (sim, nd) = start_params(variant, args).expect("parameters accepted");
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(5)), "link came up");
    (sim, nd)
}

/// ANAR's technology bits.
const ANAR_TECH: u16 = anar::HD10 | anar::FD10 | anar::HD100 | anar::FD100;

#[test]
fn descriptors_size_the_rings() {
    let (sim, nd) = up_params(
        Variant::I82540EM,
        &["TxDescriptors=512", "RxDescriptors=1024"],
    );
    // 16-byte descriptors (SDM 13.4.28, 13.4.39).
    assert_eq!(reg(&sim, TDLEN), 512 * 16);
    assert_eq!(reg(&sim, RDLEN), 1024 * 16);
    let rp = nd.with_adapter(|a| e1000::config::get_ringparam(a));
    assert_eq!((rp.tx, rp.rx), (512, 1024));
    nd.shutdown().expect("remove");
}

#[test]
fn forced_speed_and_duplex_reach_ctrl_and_the_phy() {
    let (sim, nd) = up_params(Variant::I82545EM, &["Speed=100", "Duplex=2"]);
    let c = reg(&sim, CTRL);
    assert!(c & ctrl::FRCSPD != 0 && c & ctrl::FRCDPLX != 0, "{c:#x}");
    assert_eq!(c & ctrl::SPEED_MASK, 1 << 8, "CTRL.SPEED = 100 Mb/s");
    assert!(c & ctrl::FD != 0 && c & ctrl::ASDE == 0);
    let b = phy_reg(&nd, BMCR);
    assert_eq!(b & bmcr::AN_ENABLE, 0, "auto-negotiation off");
    assert!(b & bmcr::SPEED_LSB != 0 && b & bmcr::SPEED_MSB == 0 && b & bmcr::FD != 0);
    wait_for("a 100 Mb/s full-duplex link", || {
        let (up, speed, fd) = e1000::link::decode_status(reg(&sim, STATUS));
        up && speed == 100 && fd
    });
    nd.shutdown().expect("remove");

    let (sim, nd) = up_params(Variant::I82540EM, &["Speed=10", "Duplex=1"]);
    let c = reg(&sim, CTRL);
    assert_eq!(c & (ctrl::SPEED_MASK | ctrl::FD), 0, "10 Mb/s half: {c:#x}");
    let b = phy_reg(&nd, BMCR);
    assert_eq!(
        b & (bmcr::AN_ENABLE | bmcr::SPEED_LSB | bmcr::SPEED_MSB | bmcr::FD),
        0
    );
    nd.shutdown().expect("remove");
}

#[test]
fn autoneg_masks_and_partial_speed_duplex_set_the_advertisement() {
    // (parameters, ANAR technology bits, 1000BASE-T full duplex in GCR)
    let cases: [(&[&str], u16, bool); 6] = [
        (&["AutoNeg=0x08"], anar::FD100, false),
        (&["AutoNeg=0x21"], anar::HD10, true),
        (&["Duplex=1"], anar::HD10 | anar::HD100, false),
        (&["Duplex=2"], anar::FD10 | anar::FD100, true),
        (&["Speed=100"], anar::HD100 | anar::FD100, false),
        (&["Speed=1000"], 0, true),
    ];
    for (args, tech, fd1000) in cases {
        let (sim, nd) = up_params(Variant::I82540EM, args);
        assert_eq!(phy_reg(&nd, ANAR) & ANAR_TECH, tech, "{args:?}: ANAR");
        assert_eq!(
            phy_reg(&nd, GCR) & gcr::FD1000 != 0,
            fd1000,
            "{args:?}: GCR"
        );
        assert_eq!(
            phy_reg(&nd, GCR) & gcr::HD1000,
            0,
            "{args:?}: never 1000/half"
        );
        assert!(
            phy_reg(&nd, BMCR) & bmcr::AN_ENABLE != 0,
            "{args:?}: auto-negotiating"
        );
        assert_eq!(reg(&sim, CTRL) & (ctrl::FRCSPD | ctrl::FRCDPLX), 0);
        // The link negotiated within the advertisement.
        let (_, speed, fd) = e1000::link::decode_status(reg(&sim, STATUS));
        let expect = match args[0] {
            "AutoNeg=0x08" | "Speed=100" => (100, true),
            "Duplex=1" => (100, false),
            _ => (1000, true),
        };
        assert_eq!((speed, fd), expect, "{args:?}");
        nd.shutdown().expect("remove");
    }
}

#[test]
fn flow_control_sets_the_advertisement_and_ctrl() {
    let pause = |nd: &Netdev| phy_reg(nd, ANAR) & (anar::PAUSE | anar::ASM_DIR);
    let fc = |sim: &E1000Sim| reg(sim, CTRL) & (ctrl::RFCE | ctrl::TFCE);

    let (sim, nd) = up_params(Variant::I82540EM, &["FlowControl=0"]);
    assert_eq!(pause(&nd), 0);
    assert_eq!(fc(&sim), 0);
    nd.shutdown().expect("remove");

    // Receive only advertises PAUSE and ASM_DIR (IEEE 802.3 Table 28B-2); against the
    // model's symmetric partner the MAC honours PAUSE frames and sends none.
    let (sim, nd) = up_params(Variant::I82540EM, &["FlowControl=1"]);
    assert_eq!(pause(&nd), anar::PAUSE | anar::ASM_DIR);
    wait_for("flow control resolved", || fc(&sim) == ctrl::RFCE);
    nd.shutdown().expect("remove");

    let (sim, nd) = up_params(Variant::I82540EM, &["FlowControl=3"]);
    assert_eq!(pause(&nd), anar::PAUSE);
    wait_for("flow control resolved", || {
        fc(&sim) == ctrl::RFCE | ctrl::TFCE
    });
    // The thresholds that make the MAC send XOFF/XON are programmed (SDM 13.4.14-15).
    assert!(reg(&sim, FCRTH) > reg(&sim, FCRTL) & !flow::FCRTL_XONE);
    assert!(reg(&sim, FCRTL) & flow::FCRTL_XONE != 0);
    nd.shutdown().expect("remove");

    // A forced link takes the directions as given.
    let (sim, nd) = up_params(
        Variant::I82540EM,
        &["Speed=100", "Duplex=2", "FlowControl=2"],
    );
    wait_for("forced flow control", || fc(&sim) == ctrl::TFCE);
    nd.shutdown().expect("remove");
}

#[test]
fn xsum_rx_turns_receive_checksum_offload_off() {
    let (sim, nd) = up_params(Variant::I82540EM, &["XsumRX=0"]);
    assert_eq!(reg(&sim, RXCSUM) & (rxcsum::IPOFLD | rxcsum::TUOFLD), 0);
    nd.shutdown().expect("remove");
    let (sim, nd) = up_params(Variant::I82540EM, &["XsumRX=1"]);
    assert_eq!(
        reg(&sim, RXCSUM) & (rxcsum::IPOFLD | rxcsum::TUOFLD),
        rxcsum::IPOFLD | rxcsum::TUOFLD
    );
    nd.shutdown().expect("remove");
}

#[test]
fn delays_reach_the_timers_unchanged_and_a_fixed_rate_reaches_itr() {
    let (sim, nd) = up_params(
        Variant::I82540EM,
        &[
            "TxIntDelay=8",
            "TxAbsIntDelay=32",
            "RxIntDelay=16",
            "RxAbsIntDelay=128",
            "InterruptThrottleRate=8000",
        ],
    );
    assert_eq!(reg(&sim, TIDV), 8);
    assert_eq!(reg(&sim, TADV), 32);
    assert_eq!(reg(&sim, RDTR), 16);
    assert_eq!(reg(&sim, RADV), 128);
    // ITR counts 256 ns: 10^9 / (256 * 8000) = 488.
    assert_eq!(reg(&sim, ITR), 488);
    // Fixed: traffic does not move it.
    let mac = nd.with_adapter(|a| a.mac);
    for i in 0..20 {
        sim.peer_send(net::stream_frame(mac, PEER_MAC, i, 1400));
    }
    for _ in 0..20 {
        assert!(nd.recv(Duration::from_secs(2)).is_some(), "frame received");
    }
    assert_eq!(reg(&sim, ITR), 488);
    nd.shutdown().expect("remove");

    let (sim, nd) = up_params(Variant::I82540EM, &["InterruptThrottleRate=0"]);
    assert_eq!(reg(&sim, ITR), 0, "no throttling");
    assert!(!nd.with_adapter(|a| a.conf.coalesce.adaptive));
    nd.shutdown().expect("remove");
}

/// Sends small frames one at a time (each poll round sees one: the lowest-latency
/// class) and returns the ITR value adaptive mode settles on.
fn itr_after_sparse_small_frames(sim: &E1000Sim, nd: &Netdev) -> u32 {
    let mac = nd.with_adapter(|a| a.mac);
    for i in 0..12 {
        sim.peer_send(net::stream_frame(mac, PEER_MAC, i, 80));
        assert!(nd.recv(Duration::from_secs(2)).is_some(), "frame received");
        std::thread::sleep(Duration::from_millis(2));
    }
    reg(sim, ITR)
}

#[test]
fn itr_1_and_3_are_adaptive_with_and_without_the_lowest_latency_rate() {
    use e1000::hot::itr::{LOWEST_LATENCY_RATE, LOW_LATENCY_RATE};
    use e1000::link::itr_value;

    let (sim, nd) = up_params(Variant::I82540EM, &["InterruptThrottleRate=1"]);
    assert!(nd.with_adapter(|a| a.conf.coalesce.adaptive));
    assert_eq!(reg(&sim, ITR), itr_value(LOW_LATENCY_RATE), "starting rate");
    assert_eq!(
        itr_after_sparse_small_frames(&sim, &nd),
        itr_value(LOWEST_LATENCY_RATE),
        "dynamic mode reaches the lowest-latency rate"
    );
    nd.shutdown().expect("remove");

    let (sim, nd) = up_params(Variant::I82540EM, &["InterruptThrottleRate=3"]);
    assert!(nd.with_adapter(|a| a.conf.coalesce.adaptive));
    assert_eq!(
        itr_after_sparse_small_frames(&sim, &nd),
        itr_value(LOW_LATENCY_RATE),
        "conservative mode holds small-packet traffic at the low-latency rate"
    );
    nd.shutdown().expect("remove");
}

/// The device after a refused start: reset, nothing enabled, no rings.
fn assert_unopened(sim: &E1000Sim) {
    assert_eq!(reg(sim, RCTL) & rctl::EN, 0, "receiver off");
    assert_eq!(reg(sim, TCTL) & tctl::EN, 0, "transmitter off");
    assert_eq!(reg(sim, IMS), 0, "interrupts masked");
    assert_eq!(reg(sim, TDLEN), 0, "no transmit ring");
    assert_eq!(reg(sim, RDLEN), 0, "no receive ring");
}

/// Starts with `args` on `variant`, which must be refused with a message holding every
/// one of `needles`; the device is left unopened.
fn refused(variant: Variant, args: &[&str], needles: &[&str]) {
    let params = Params::parse(args.iter().copied(), 0).expect("the arguments parse");
    refused_params(variant, params, needles);
}

/// As [`refused`], with a hand-built set (which may hold what the parser refuses).
fn refused_params(variant: Variant, params: Params, needles: &[&str]) {
    let args = params.to_args();
    let (sim, hw) = e1000_sim::start(config(variant)).expect("model starts");
    let opts = Options {
        params: Some(params),
        ..Options::default()
    };
    let e = Netdev::start(hw, opts).expect_err("refused").to_string();
    for n in needles {
        assert!(e.contains(n), "{args:?} on {variant:?}: {e:?} lacks {n:?}");
    }
    assert_unopened(&sim);
}

#[test]
fn the_82544gc_refuses_what_it_does_not_have() {
    refused(
        Variant::I82544GC,
        &["InterruptThrottleRate=8000"],
        &["InterruptThrottleRate=8000", "82544GC", "ITR"],
    );
    refused(
        Variant::I82544GC,
        &["TxDescriptors=512", "TxAbsIntDelay=32"],
        &["TxAbsIntDelay=32", "82544GC", "TADV"],
    );
    refused(
        Variant::I82544GC,
        &["RxAbsIntDelay=8"],
        &["RxAbsIntDelay=8", "82544GC", "RADV"],
    );
    // What it has works: the delay timers every part has, and "off" for the ones it lacks.
    let (sim, nd) = up_params(
        Variant::I82544GC,
        &["TxIntDelay=20", "RxIntDelay=4", "InterruptThrottleRate=0"],
    );
    assert_eq!((reg(&sim, TIDV), reg(&sim, RDTR)), (20, 4));
    nd.shutdown().expect("remove");
}

#[test]
fn refused_sets_leave_the_device_unopened() {
    for v in [Variant::I82540EM, Variant::I82545EM, Variant::I82544GC] {
        refused(
            v,
            &["SmartPowerDownEnable=1"],
            &["SmartPowerDownEnable=1", "IGP", "M88"],
        );
    }
    // Hand-built sets are checked as strictly as parsed ones.
    refused_params(
        Variant::I82540EM,
        Params {
            speed: Some(1000),
            duplex: Some(1),
            ..Params::default()
        },
        &["Duplex=1", "1000 Mb/s half duplex"],
    );
    refused_params(
        Variant::I82540EM,
        Params {
            rx_descriptors: Some(100),
            ..Params::default()
        },
        &["RxDescriptors=100", "96 or 104"],
    );
}

#[test]
fn no_parameters_change_nothing() {
    let (sim, nd) = up_params(Variant::I82540EM, &[]);
    let (_plain_sim, plain) = start(Variant::I82540EM);
    assert_eq!(
        nd.with_adapter(|a| a.conf.clone()),
        plain.with_adapter(|a| a.conf.clone())
    );
    plain.shutdown().expect("remove");
    assert_eq!(reg(&sim, TDLEN), 256 * 16);
    nd.shutdown().expect("remove");
}
