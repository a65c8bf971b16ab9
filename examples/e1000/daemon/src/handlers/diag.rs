//! Diagnostics: `-t` (self-test) and `-p` (identify).

use super::*;

/// ethtool `-t`.
pub(super) fn self_test(inner: &Inner, offline: bool) -> Result<Reply, String> {
    let nd = &inner.nd;
    // The offline tests close, reset and reopen the device: a crossing failure
    // there must be repaired (configure). The online test only reads.
    let results = if offline {
        configure(inner, "-t offline", |a| ethtool::self_test(a, true))
    } else {
        nd.with_adapter(|a| {
            running(a, "-t online")?;
            ethtool::self_test(a, false)
        })
    }
    .map_err(drv)?;
    Ok(Reply::SelfTest {
        results: selftest::NAMES
            .iter()
            .zip(results)
            .map(|(n, r)| TestResult {
                name: (*n).to_string(),
                result: r,
            })
            .collect(),
    })
}

/// ethtool `-p`.
pub(super) fn identify(inner: &Inner, seconds: u32) -> Result<Reply, String> {
    let nd = &inner.nd;
    if seconds == 0 || seconds > MAX_IDENTIFY_SECONDS {
        return Err(format!(
            "identify for {seconds} s: give 1 to {MAX_IDENTIFY_SECONDS} seconds"
        ));
    }
    // As ethtool's core does: set up, then alternate on and off at the rate the
    // driver asks for, then restore.
    let hz = configure(inner, "-p", |a| ethtool::identify(a, IdState::Active)).map_err(drv)?;
    let half = Duration::from_millis(500 / u64::from(hz.max(1)));
    let end = std::time::Instant::now() + Duration::from_secs(u64::from(seconds));
    let blink = (|| {
        let (mut on, mut toggle) = (false, std::time::Instant::now());
        while std::time::Instant::now() < end
            && !inner.stop.load(std::sync::atomic::Ordering::Relaxed)
        {
            if std::time::Instant::now() >= toggle {
                on = !on;
                let phase = if on { IdState::On } else { IdState::Off };
                nd.configure(|a| ethtool::identify(a, phase))?;
                toggle += half;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    })();
    let restore = nd.configure(|a| ethtool::identify(a, IdState::Inactive));
    blink.and(restore).map_err(drv)?;
    Ok(Reply::Done)
}
