//! The clock a call's latency is measured with.
//!
//! Every upcall records its latency, so reading the clock twice is on every call's path.
//! On this project's virtual machines `Instant::now` costs 30-60 ns (a vDSO call), a fair
//! share of a spinning round trip; the CPU's time-stamp counter costs a few. Where the
//! kernel itself keeps time with the TSC (its clocksource is `tsc`: invariant and
//! synchronised across CPUs, or the kernel would have switched away from it), latencies
//! are TSC ticks scaled by a rate measured against `Instant` over the process's first
//! [`CALIBRATION`]; until then, and everywhere else (other clocksources, other
//! architectures, Miri, loom), `Instant` is used.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the TSC is compared with `Instant` before its rate is trusted.
const CALIBRATION: Duration = Duration::from_millis(20);

/// A point in time a latency is measured from.
#[derive(Clone, Copy)]
pub(crate) enum Stamp {
    /// TSC ticks (the rate is known).
    Ticks(u64),
    /// Before calibration, or without a usable TSC.
    Std(Instant),
}

/// Where calibration started: the TSC and `Instant` read together.
struct Base {
    ticks: u64,
    at: Instant,
}

/// Nanoseconds per tick once calibrated, in 32.32 fixed point (0 until then): a latency
/// is then a multiplication and a shift, where dividing the 128-bit product by 1000 was a
/// call to `__udivti3` on every call's path.
static NANOS_PER_TICK: AtomicU64 = AtomicU64::new(0);

/// Now.
#[inline]
pub(crate) fn now() -> Stamp {
    let rate = NANOS_PER_TICK.load(Relaxed);
    if rate != 0 {
        return Stamp::Ticks(tsc::read());
    }
    calibrate();
    Stamp::Std(Instant::now())
}

/// The time since `start`.
#[inline]
pub(crate) fn since(start: Stamp) -> Duration {
    match start {
        Stamp::Ticks(ticks) => {
            let elapsed = tsc::read().saturating_sub(ticks);
            let nanos = (u128::from(elapsed) * u128::from(NANOS_PER_TICK.load(Relaxed))) >> 32;
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        }
        Stamp::Std(at) => at.elapsed(),
    }
}

/// Measures the TSC's rate once [`CALIBRATION`] has passed since the first call.
#[cold]
fn calibrate() {
    static BASE: OnceLock<Option<Base>> = OnceLock::new();
    let Some(base) = BASE.get_or_init(|| {
        tsc::usable().then(|| Base {
            ticks: tsc::read(),
            at: Instant::now(),
        })
    }) else {
        return;
    };
    let elapsed = base.at.elapsed();
    if elapsed < CALIBRATION {
        return;
    }
    let ticks = tsc::read().saturating_sub(base.ticks);
    if ticks == 0 {
        return;
    }
    let rate = (elapsed.as_nanos() << 32) / u128::from(ticks);
    if let Ok(rate) = u64::try_from(rate) {
        if rate > 0 {
            NANOS_PER_TICK.store(rate, Relaxed);
        }
    }
}

#[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
mod tsc {
    /// Reads the time-stamp counter.
    #[inline]
    pub(super) fn read() -> u64 {
        // SAFETY: RDTSC reads a counter and touches no memory; x86_64 always has it. A
        // process that disabled it for itself (prctl PR_SET_TSC) would fault: this runtime
        // never does, and `usable` is checked before the first read.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    /// True where the kernel keeps its own time with the TSC.
    pub(super) fn usable() -> bool {
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .is_ok_and(|source| source.trim() == "tsc")
    }
}

#[cfg(not(all(target_arch = "x86_64", not(miri), not(loom))))]
mod tsc {
    pub(super) fn read() -> u64 {
        0
    }

    pub(super) fn usable() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Miri's clock is virtual (it advances with the interpreted instructions), and the
    // TSC path this checks is not built there.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn measures_what_instant_measures() {
        // Past calibration (where the TSC is usable), a sleep measured both ways agrees.
        let until = Instant::now() + CALIBRATION + Duration::from_millis(5);
        while Instant::now() < until {
            let _ = now();
        }
        for sleep in [Duration::from_millis(2), Duration::from_millis(10)] {
            let start = now();
            let reference = Instant::now();
            std::thread::sleep(sleep);
            let (ours, theirs) = (since(start), reference.elapsed());
            let diff = ours.abs_diff(theirs);
            assert!(
                diff < theirs / 20 + Duration::from_micros(50),
                "clock says {ours:?}, Instant {theirs:?}"
            );
            assert!(
                ours >= sleep - Duration::from_micros(50),
                "{ours:?} < {sleep:?}"
            );
        }
    }
}
