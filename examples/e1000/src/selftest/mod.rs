//! The ethtool self-tests: registers, EEPROM, interrupt, loopback (offline: the interface
//! is closed for them and reopened after a reset) and link.
//!
//! Each test is its own module; a failing test names what failed (the register with the
//! values written and read, the interrupt cause, the frame and byte) in its
//! [`DriverError::SelfTest`], which [`run`] logs and reports as a 1 in its result slot.

pub mod interrupt;
pub mod loopback;
pub mod registers;

use crate::adapter::Adapter;
use crate::config;
use crate::eeprom;
use crate::error::DriverError;
use crate::regs::{status, STATUS};

pub use interrupt::interrupt_test;
pub use loopback::loopback_test;
pub use registers::register_test;

/// The tests, in result order.
pub const NAMES: [&str; 5] = [
    "register test (offline)",
    "eeprom test (offline)",
    "interrupt test (offline)",
    "loopback test (offline)",
    "link test (on/offline)",
];

/// A self-test failure: which test and what was wrong.
pub(crate) fn failure(test: &str, detail: impl Into<String>) -> DriverError {
    DriverError::SelfTest {
        test: test.into(),
        detail: detail.into(),
    }
}

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
    results[1] = report(eeprom_test(a), NAMES[1]);
    results[2] = report(interrupt_test(a), NAMES[2]);
    results[3] = report(loopback_test(a), NAMES[3]);
    crate::probe::reset_hw(a)?;
    a.link = a.link.unknown();
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
        .map_err(|_| {
            failure(
                "link",
                "STATUS.LU stayed clear: check the cable and the link partner",
            )
        })
}

/// The EEPROM's words 0x00..=0x3F (the checksum word last) sum to 0xBABA (SDM 5.6.1);
/// a failure reports the sum found.
pub fn eeprom_test(a: &Adapter) -> Result<(), DriverError> {
    let words = eeprom::read(a, 0, eeprom::CHECKSUM_WORD + 1)?;
    let sum = eeprom::sum(&words);
    if sum != eeprom::CHECKSUM_TARGET {
        return Err(failure(
            "eeprom",
            format!(
                "words 0x00..=0x{:02X} sum to {sum:#06x}, not {:#06x}: the EEPROM image is \
                 corrupt or was written without updating its checksum word",
                eeprom::CHECKSUM_WORD,
                eeprom::CHECKSUM_TARGET
            ),
        ));
    }
    Ok(())
}
