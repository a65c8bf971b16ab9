//! The ethtool self-tests: registers, EEPROM, interrupt, loopback (offline: the interface
//! is closed for them and reopened after a reset) and link.

use std::time::{Duration, Instant};

use crate::adapter::Adapter;
use crate::config;
use crate::eeprom;
use crate::error::DriverError;
use crate::frame::TxPacket;
use crate::hot;
use crate::kernel;
use crate::regs::phy::{bmcr, BMCR};
use crate::regs::{ctrl, icr, status, *};

/// The tests, in result order.
pub const NAMES: [&str; 5] = [
    "register test (offline)",
    "eeprom test (offline)",
    "interrupt test (offline)",
    "loopback test (offline)",
    "link test (on/offline)",
];

/// Runs the tests; results in [`NAMES`] order (0 = pass, 1 = fail). Offline tests run only
/// when `offline`; the interface is closed for them, the device is reset and programmed
/// again afterwards, and the interface is reopened if it was up.
pub fn run(a: &mut Adapter, offline: bool) -> Result<Vec<u64>, DriverError> {
    let mut results = vec![0u64; NAMES.len()];
    let report = |r: Result<(), DriverError>, name: &str| -> u64 {
        match r {
            Ok(()) => 0,
            Err(e) => {
                tracing::warn!(test = name, error = %e, "self-test failed");
                1
            }
        }
    };
    results[4] = report(link_test(a), NAMES[4]);
    if !offline {
        return Ok(results);
    }
    let was_up = a.up;
    if was_up {
        config::close(a)?;
    }
    results[0] = report(register_test(a), NAMES[0]);
    results[1] = report(eeprom::validate_checksum(a), NAMES[1]);
    results[2] = report(interrupt_test(a), NAMES[2]);
    results[3] = report(loopback_test(a), NAMES[3]);
    crate::probe::reset_hw(a)?;
    a.link = crate::adapter::LinkState {
        changes: a.link.changes,
        ..Default::default()
    };
    config::init_hw(a)?;
    if was_up {
        config::open(a)?;
    }
    Ok(results)
}

/// The link is up (waiting up to a second for auto-negotiation to finish).
pub fn link_test(a: &Adapter) -> Result<(), DriverError> {
    a.poll_reg(STATUS, "link up", 1000, |s| s & status::LU != 0)
        .map(|_| ())
        .map_err(|_| DriverError::SelfTest {
            test: "link".into(),
            detail: "STATUS.LU stayed clear: check the cable and the link partner".into(),
        })
}

/// Read/write registers hold what is written to their writable bits (SDM 13.4), and the
/// original values are put back.
pub fn register_test(a: &Adapter) -> Result<(), DriverError> {
    const REGS: [(u32, u32); 10] = [
        (FCAL, 0xFFFF_FFFF),
        (FCAH, 0x0000_FFFF),
        (FCT, 0x0000_FFFF),
        (VET, 0x0000_FFFF),
        (FCTTV, 0x0000_FFFF),
        (RDTR, 0x0000_FFFF),
        (TIDV, 0x0000_FFFF),
        (MTA + 4 * 7, 0xFFFF_FFFF),
        (VFTA + 4 * 9, 0xFFFF_FFFF),
        (RAL + 8, 0xFFFF_FFFF),
    ];
    for (reg, mask) in REGS {
        let saved = a.rd(reg)?;
        for pattern in [0x5A5A_5A5A, 0xA5A5_A5A5, 0xFFFF_FFFF, 0] {
            a.wr(reg, pattern & mask)?;
            let got = a.rd(reg)? & mask;
            if got != pattern & mask {
                a.wr(reg, saved)?;
                return Err(DriverError::SelfTest {
                    test: "register".into(),
                    detail: format!(
                        "register {reg:#06x}: wrote {:#010x}, read {got:#010x}",
                        pattern & mask
                    ),
                });
            }
        }
        a.wr(reg, saved)?;
    }
    Ok(())
}

fn wait_assertions(a: &Adapter, above: u64, ms: u64) -> Result<bool, DriverError> {
    let end = Instant::now() + Duration::from_millis(ms);
    loop {
        if kernel::irq_assertions(a.dev)? > above {
            return Ok(true);
        }
        if Instant::now() > end {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A masked cause set through ICS does not raise the line; unmasking it does.
pub fn interrupt_test(a: &Adapter) -> Result<(), DriverError> {
    let fail = |detail: &str| DriverError::SelfTest {
        test: "interrupt".into(),
        detail: detail.into(),
    };
    kernel::irq_set_mask(a.dev, 0)?;
    let base = kernel::irq_assertions(a.dev)?;
    a.wr(ICS, icr::TXQE)?;
    if wait_assertions(a, base, 5)? {
        return Err(fail("a masked cause (TXQE) raised the interrupt line"));
    }
    kernel::irq_set_mask(a.dev, icr::TXQE)?;
    let raised = wait_assertions(a, base, 200)?;
    kernel::irq_set_mask(a.dev, 0)?;
    if !raised {
        return Err(fail(
            "an unmasked cause (TXQE) did not raise the interrupt line",
        ));
    }
    Ok(())
}

/// Frames sent with the PHY in loopback come back byte for byte.
pub fn loopback_test(a: &mut Adapter) -> Result<(), DriverError> {
    const FRAMES: usize = 64;
    const BATCH: usize = 16;
    let saved = (a.conf.tx_ring, a.conf.rx_ring);
    a.conf.tx_ring = kernel::MIN_RING;
    a.conf.rx_ring = kernel::MIN_RING;
    let r = (|| {
        config::open(a)?;
        // PHY loopback at 1000 Mb/s full duplex, the MAC forced to match (SDM 13.4 CTRL).
        crate::phy::write(a, BMCR, bmcr::LOOPBACK | bmcr::SPEED_MSB | bmcr::FD)?;
        a.rmw(
            CTRL,
            ctrl::SPEED_MASK | ctrl::ASDE,
            ctrl::SLU | ctrl::FRCSPD | ctrl::FRCDPLX | ctrl::FD | (2 << 8),
        )?;
        kernel::set_carrier(a.dev, true)?;
        kernel::rx_capture(a.dev, true)?;
        let frame = |i: usize| -> Vec<u8> {
            let mut f = Vec::with_capacity(1000);
            f.extend_from_slice(&a.mac);
            f.extend_from_slice(&a.mac);
            f.extend_from_slice(&[0x88, 0xB5]);
            f.extend((0..986).map(|j| (i * 7 + j) as u8));
            f
        };
        // Batches small enough for the receive FIFO: a looped-back burst arrives as fast as
        // it is sent, and the test is about the data path, not about overruns.
        let mut got = Vec::new();
        for batch in (0..FRAMES).collect::<Vec<_>>().chunks(BATCH) {
            for &i in batch {
                let pkt = TxPacket::new(frame(i));
                let end = Instant::now() + Duration::from_secs(1);
                loop {
                    match hot::tx::xmit_frame(a.dev, &pkt) {
                        Ok(()) => break,
                        Err(DriverError::Busy) if Instant::now() < end => {
                            hot::poll::poll(a.dev, 64)?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            let want = batch[batch.len() - 1] + 1;
            let end = Instant::now() + Duration::from_secs(2);
            while got.len() < want && Instant::now() < end {
                hot::poll::poll(a.dev, 64)?;
                got.extend(kernel::rx_capture(a.dev, true)?);
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        if got.len() != FRAMES {
            return Err(DriverError::SelfTest {
                test: "loopback".into(),
                detail: format!("{} of {FRAMES} frames came back", got.len()),
            });
        }
        for (i, f) in got.iter().enumerate() {
            if f.data != frame(i) {
                return Err(DriverError::SelfTest {
                    test: "loopback".into(),
                    detail: format!("frame {i} came back different"),
                });
            }
        }
        Ok(())
    })();
    kernel::rx_capture(a.dev, false)?;
    let _ = crate::phy::write(a, BMCR, bmcr::AN_ENABLE);
    if a.up {
        config::close(a)?;
    }
    a.conf.tx_ring = saved.0;
    a.conf.rx_ring = saved.1;
    r
}
