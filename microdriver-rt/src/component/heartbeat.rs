//! The heartbeat's verdict: does the user half hang?
//!
//! A user half hangs when a ping gets no answer within `heartbeat_timeout` **of time it
//! could run**. On a busy machine (a soak at `nice 19` next to builds, two cores for ten
//! runnable threads) its threads may wait for a CPU longer than the timeout while nothing
//! is wrong with them; killing it then is a false hang. So a ping that timed out is sent
//! again for as long as the user half's threads spent waiting for a CPU during the last
//! one (from each thread's `/proc/PID/task/TID/schedstat`), or for a whole timeout again
//! if one of them is runnable as it ends (a worker woken by the ping and still waiting for
//! a CPU: the kernel counts a wait only when it ends), up to [`STARVED_FACTOR`] × the
//! timeout in all. A stopped (SIGSTOP) or deadlocked user half waits for no CPU, so it is
//! declared hung after one timeout, as before; one that spins without answering is
//! declared hung at the latest after the cap.

use std::time::{Duration, Instant};

use crate::lrpc::{ping, CallError, KernelEndpoint};

/// A ping's total wait, counting the time granted for waiting on a CPU, is at most this
/// many heartbeat timeouts.
pub const STARVED_FACTOR: u32 = 16;

/// Below this much waiting for a CPU during a ping, the ping is not sent again.
const STARVED_MIN: Duration = Duration::from_millis(2);

/// What the scheduler says about the threads of process `pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuWait {
    /// How long they have waited, runnable, for a CPU since they started (the sum of the
    /// second field of each thread's `schedstat`; the kernel adds a wait when it ends).
    pub waited: Duration,
    /// A thread is runnable right now (state R), maybe waiting for a CPU this moment.
    pub runnable: bool,
}

/// The scheduler's view of process `pid`; None where it is not available (the process is
/// gone, or no `/proc`).
pub(crate) fn cpu_wait(pid: u32) -> Option<CpuWait> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut found = CpuWait {
        waited: Duration::ZERO,
        runnable: false,
    };
    let mut any = false;
    for task in tasks.flatten() {
        let path = task.path();
        if let Ok(stat) = std::fs::read_to_string(path.join("stat")) {
            // The state follows the command name, which is in parentheses.
            let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
            found.runnable |= state == Some('R');
            any = true;
        }
        if let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|line| line.split_ascii_whitespace().nth(1)?.parse::<u64>().ok())
        {
            found.waited += Duration::from_nanos(ns);
        }
    }
    any.then_some(found)
}

/// The time granted on top of `window` to a process that did not answer within it, for
/// its threads' waiting on a CPU meanwhile: what they waited (`before` to `now`), or a
/// whole window again if one of them is runnable as it closed (woken and not yet run);
/// zero below [`STARVED_MIN`] or when the scheduler's view is unknown.
pub(crate) fn starvation_grant(
    before: Option<CpuWait>,
    now: Option<CpuWait>,
    window: Duration,
) -> Duration {
    let granted = match (before, now) {
        (Some(_), Some(n)) if n.runnable => window,
        (Some(b), Some(n)) => n.waited.saturating_sub(b.waited),
        _ => Duration::ZERO,
    };
    if granted < STARVED_MIN {
        Duration::ZERO
    } else {
        granted
    }
}

/// What one heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// The user half answered (after `resent` pings sent again for CPU starvation).
    Answered { resent: u32 },
    /// It died meanwhile (its death is handled as any other).
    Died,
    /// No answer within the timeout of time it could run (or at all within the cap).
    Hung { waited: Duration, starved: Duration },
}

/// Pings the user half `pid` through `endpoint`; see the module documentation.
pub(crate) fn beat(endpoint: &KernelEndpoint, pid: Option<u32>, timeout: Duration) -> Beat {
    let started = Instant::now();
    let cap = timeout.saturating_mul(STARVED_FACTOR);
    let mut before = pid.and_then(cpu_wait);
    let mut window = timeout;
    let (mut resent, mut starved) = (0u32, Duration::ZERO);
    loop {
        match ping(endpoint, window) {
            Ok(()) => return Beat::Answered { resent },
            Err(_) if endpoint.is_peer_dead() => return Beat::Died,
            Err(CallError::TimedOut(_)) => {
                let now = pid.and_then(cpu_wait);
                // Waits that ended during the window, or one going on as it closed (a
                // thread runnable at its end: one woken by the ping and not yet run).
                let left = cap.saturating_sub(started.elapsed());
                let granted = starvation_grant(before, now, window);
                if granted.is_zero() || left.is_zero() {
                    return Beat::Hung {
                        waited: started.elapsed(),
                        starved,
                    };
                }
                starved += granted;
                resent += 1;
                before = now;
                window = granted.min(left);
            }
            // An answer the kernel half rejected (a garbled reply, or the ping's slot
            // scribbled over by a user half with a wild pointer) is still an answer: the
            // user half runs. Hangs are the heartbeat's business; garbage is refused
            // (and counted) by the call path, as for any other call. Declared hung, a user
            // half that scribbled its channel once was killed for a ping that happened to
            // be in flight at that moment.
            Err(
                CallError::Rejected { .. }
                | CallError::Marshal(_)
                | CallError::Handler { .. }
                | CallError::UnknownEntry { .. },
            ) => return Beat::Answered { resent },
            // No slot, the gate closed past the deadline: no answer.
            Err(_) => {
                return Beat::Hung {
                    waited: started.elapsed(),
                    starved,
                }
            }
        }
    }
}
