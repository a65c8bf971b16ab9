//! The faults a round draws, and the crash loop.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use e1000d::protocol::{Fault, Reply, Request};

use super::support::Rng;
use super::{ask, CRASH_LOOP_KILLS, REVIVE_MAX};

/// The soak's mix: the kinds that cost only the driver's own recovery (a restart from the
/// warm standby, a rejected reply, a refused lock) twenty times as often as those that
/// cost their own time (a hang lasts the heartbeat's timeout, a slow call its delay, a
/// snapshot storm 100 ms, a hung standby the wait for its hello, a crash loop the revival
/// backoff, a self-test the test, an offline one the end of the stream). Every kind still
/// comes up: about 4 in 100 faults are expensive ones.
pub(crate) fn soak_kind(rng: &mut Rng) -> Kind {
    const CHEAP: [Kind; 9] = [
        Kind::Inject(Fault::Crash),
        Kind::Inject(Fault::Kill),
        Kind::Inject(Fault::Garbage),
        Kind::Inject(Fault::Panic),
        Kind::Inject(Fault::Forged),
        Kind::Inject(Fault::HoldLock),
        Kind::Inject(Fault::CrashDuringReattach),
        Kind::CrashDuringConfig(Fault::Crash),
        Kind::CrashDuringConfig(Fault::Kill),
    ];
    const EXPENSIVE: [Kind; 7] = [
        Kind::Inject(Fault::Hang),
        Kind::Inject(Fault::HangStandby),
        Kind::Inject(Fault::Slow(200)),
        Kind::Inject(Fault::Slow(500)),
        Kind::Inject(Fault::HoldRepeatedly),
        Kind::CrashDuringSelfTest,
        Kind::CrashLoop,
    ];
    let n = rng.below((CHEAP.len() * 20 + EXPENSIVE.len()) as u64) as usize;
    match n.checked_sub(CHEAP.len() * 20) {
        None => CHEAP[n / 20],
        Some(i) => EXPENSIVE[i],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Inject(Fault),
    /// A configuration change with a crash (or kill) racing it.
    CrashDuringConfig(Fault),
    /// An online self-test with a crash racing it.
    CrashDuringSelfTest,
    /// The user half killed from outside as fast as it comes back until the driver
    /// degrades; then revived by an operator (`revive`) or by the supervisor.
    CrashLoop,
}

pub(crate) const KINDS: [Kind; 17] = [
    Kind::Inject(Fault::Crash),
    Kind::Inject(Fault::Kill),
    Kind::Inject(Fault::Hang),
    Kind::Inject(Fault::HangStandby),
    Kind::Inject(Fault::Garbage),
    Kind::Inject(Fault::Panic),
    Kind::Inject(Fault::Forged),
    Kind::Inject(Fault::HoldLock),
    Kind::Inject(Fault::HoldRepeatedly),
    Kind::Inject(Fault::Slow(200)),
    Kind::Inject(Fault::Slow(500)),
    Kind::Inject(Fault::CrashDuringReattach),
    Kind::CrashDuringConfig(Fault::Crash),
    Kind::CrashDuringConfig(Fault::Kill),
    Kind::CrashDuringConfig(Fault::Crash),
    Kind::CrashDuringSelfTest,
    Kind::CrashLoop,
];

/// The user half as `status` shows it.
pub(crate) fn split_status(
    socket: &Path,
    slowest: &AtomicU64,
) -> Result<e1000d::protocol::SplitStatus, String> {
    match ask(socket, &Request::Status, slowest)? {
        Reply::Status(s) => s
            .split
            .ok_or_else(|| "status without the split".to_string()),
        other => Err(format!("status: {other:?}")),
    }
}

/// SIGKILLs the user half `pid` from outside, as an operator's script would, but never
/// another process that was given the pid after the daemon reaped that user half (a
/// crash loop turns pids over fast): the process is opened by pid, and signalled through
/// that pidfd only if it is a child of the daemon `daemon` (a user half; the daemon's own
/// threads cannot be opened). Asking `status` again instead doubled the time each user
/// half lived under a loaded machine's kills, so crash loops stopped looking like loops.
/// False: it was gone or replaced meanwhile.
fn kill_user_half(daemon: u32, pid: u32) -> Result<bool, String> {
    use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};
    let Some(raw) = Pid::from_raw(pid as i32) else {
        return Err(format!("status named user half pid {pid}"));
    };
    let Ok(fd) = pidfd_open(raw, PidfdFlags::empty()) else {
        return Ok(false);
    };
    // Read after the open: if this names a child of the daemon, so did the opened process
    // (were it gone and the pid reused since, the signal below fails with ESRCH).
    let parent = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .and_then(|v| v.trim().parse::<u32>().ok())
        });
    if parent != Some(daemon) {
        return Ok(false);
    }
    Ok(pidfd_send_signal(&fd, Signal::KILL).is_ok())
}

/// What one crash loop did.
pub(crate) struct CrashLoop {
    pub(crate) kills: u32,
    /// The request that needs the user half was refused while degraded (not answered by
    /// a user half revived in between).
    pub(crate) refused_degraded: bool,
    /// Revived by `e1000ctl revive` (else by the supervisor's own attempt).
    pub(crate) by_operator: bool,
    /// From degraded to a user half answering.
    pub(crate) down: Duration,
}

/// Kills the user half (SIGKILL from outside, as an operator's script or the OOM killer
/// would) each time a new one is up, until the driver degrades; sends `req` (a
/// configuration change: it needs the user half) while degraded; then revives it.
/// `answer` gets `req`'s reply.
pub(crate) fn crash_loop(
    socket: &Path,
    daemon: u32,
    slowest: &AtomicU64,
    operator: bool,
    req: &Request,
    answer: &mut Option<Result<Reply, String>>,
) -> Result<CrashLoop, String> {
    let mut kills = 0u32;
    let mut killed: Option<u32> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let degraded = loop {
        let s = split_status(socket, slowest)?;
        if s.degraded {
            break s;
        }
        if kills >= CRASH_LOOP_KILLS {
            return Err(format!("not degraded after {kills} kills"));
        }
        if Instant::now() > deadline {
            return Err(format!("not degraded within 30 s ({kills} kills)"));
        }
        match s.pid {
            Some(pid) if Some(pid) != killed => {
                if kill_user_half(daemon, pid)? {
                    killed = Some(pid);
                    kills += 1;
                }
            }
            // Not back yet: ask again.
            _ => std::thread::yield_now(),
        }
    };
    let degraded_at = Instant::now();
    match degraded.next_attempt {
        Some(next) if next <= REVIVE_MAX => {}
        other => return Err(format!("degraded with next attempt {other:?}")),
    }
    let reply = ask(socket, req, slowest);
    let refused_degraded = matches!(&reply, Err(e) if e.contains("degraded"));
    *answer = Some(reply);
    if operator {
        match ask(socket, &Request::Revive, slowest) {
            Ok(Reply::Status(s)) => {
                let sp = s.split.as_ref().ok_or("revive: no split status")?;
                if sp.degraded || sp.pid.is_none() {
                    return Err(format!("revive answered with a degraded status: {sp:?}"));
                }
            }
            // The supervisor's own attempt came first.
            Err(e) if e.contains("not degraded") => {}
            other => return Err(format!("revive: {other:?}")),
        }
    }
    // Either way a user half must be up within the longest backoff.
    loop {
        let s = split_status(socket, slowest)?;
        if !s.degraded && s.pid.is_some() {
            break;
        }
        if degraded_at.elapsed() > REVIVE_MAX + Duration::from_secs(10) {
            return Err(format!(
                "still degraded {:?} after degrading: {s:?}",
                degraded_at.elapsed()
            ));
        }
        std::thread::yield_now();
    }
    Ok(CrashLoop {
        kills,
        refused_degraded,
        by_operator: operator,
        down: degraded_at.elapsed(),
    })
}
