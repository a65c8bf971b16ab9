//! A device reset or reprogrammed under the driver (another process took it) is noticed by
//! the watchdog's check of what the kernel half programmed, and the driver's own
//! reconfiguration (ring resizes, close and open) never looks like that.

mod common;

use std::time::{Duration, Instant};

use e1000::netdev::Options;
use e1000_sim::{Mmio, Variant};

fn opts() -> Options {
    Options {
        watchdog_period: Duration::from_millis(20),
        ..Options::default()
    }
}

/// Waits (for an event, bounded) until `f` holds.
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

#[test]
fn a_reset_from_outside_is_reported_and_a_healthy_device_is_not() {
    let (sim, nd) = common::start_with(common::config(Variant::I82540EM), opts());
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(5)));
    // Healthy: several watchdog ticks pass with no fault (the ticks are counted by the
    // watchdog runs the adapter records).
    let runs = nd.with_adapter(|a| a.wd.runs);
    until("five watchdog runs", || {
        nd.with_adapter(|a| a.wd.runs) >= runs + 5
    });
    assert_eq!(nd.device_fault(), None);
    // Someone else resets the device: the ring registers go back to 0.
    sim.write32(e1000::regs::CTRL, e1000::regs::ctrl::RST);
    until("the fault", || nd.device_fault().is_some());
    let why = nd.device_fault().unwrap_or_default();
    assert!(
        why.contains("ring registers changed under the driver"),
        "{why}"
    );
    assert!(why.contains("restart the daemon"), "{why}");
}

#[test]
fn a_ring_taken_over_by_another_program_is_reported() {
    let (sim, nd) = common::start_with(common::config(Variant::I82540EM), opts());
    nd.open().expect("open");
    // Another program points the receive ring elsewhere.
    sim.write32(e1000::regs::RDBAL, 0x1234_5000);
    until("the fault", || nd.device_fault().is_some());
    let why = nd.device_fault().unwrap_or_default();
    assert!(why.contains("receive ring"), "{why}");
    // The low half is what the other program wrote.
    assert!(why.contains("12345000,"), "{why}");
}

#[test]
fn the_drivers_own_resizes_and_reopens_are_not_faults() {
    let (_sim, nd) = common::start_with(common::config(Variant::I82540EM), opts());
    nd.open().expect("open");
    for (rx, tx) in [(512, 256), (80, 80), (256, 256)] {
        nd.with_adapter(|a| {
            let mut p = e1000::ethtool::get_ringparam(a)?;
            (p.rx, p.tx) = (rx, tx);
            e1000::ethtool::set_ringparam(a, &p)
        })
        .expect("resize");
        let runs = nd.with_adapter(|a| a.wd.runs);
        until("two watchdog runs", || {
            nd.with_adapter(|a| a.wd.runs) >= runs + 2
        });
        assert_eq!(nd.device_fault(), None, "after resizing to {rx}/{tx}");
    }
    nd.close().expect("close");
    nd.open().expect("open");
    let runs = nd.with_adapter(|a| a.wd.runs);
    until("two watchdog runs", || {
        nd.with_adapter(|a| a.wd.runs) >= runs + 2
    });
    assert_eq!(nd.device_fault(), None, "after close and open");
}
