//! Faults: injecting one into the user half, and reviving a degraded driver.

use super::status::status;
use super::*;

/// `revive`: a degraded driver tries a user half at once; answers with the status once it
/// is re-attached, or an error saying why not.
pub(super) fn revive(inner: &Inner) -> Result<Reply, String> {
    let Some(sup) = &inner.supervisor else {
        return Err("revive needs the split mode (this e1000d runs --monolithic)".into());
    };
    tracing::warn!("revive: an operator asks for a user half now");
    if !sup.revive() {
        return Err("the driver is not degraded: its user half runs or is being restarted".into());
    }
    let limit = inner.cfg.crossing_delay * 8 + Duration::from_secs(20);
    if !sup.wait_restarted(None, limit) {
        let s = sup.status();
        return Err(match s.next_attempt {
            Some(next) if s.degraded => format!(
                "the revived user half crashed again: degraded, next attempt in {} s",
                next.as_secs_f64().ceil() as u64
            ),
            _ => format!("no user half answered within {limit:?} of the revival"),
        });
    }
    Ok(Reply::Status(Box::new(status(inner))))
}

pub(super) fn inject(inner: &Inner, fault: Fault) -> Result<Reply, String> {
    let Some(sup) = &inner.supervisor else {
        return Err("fault injection needs the split mode (this e1000d runs --monolithic)".into());
    };
    let before = sup.status();
    let Some(mut old_pid) = before.pid else {
        return Err("the user half is not running right now (restarting or degraded)".into());
    };
    let rejected_before = sup.endpoint().stats().rejected();
    tracing::warn!(
        ?fault,
        pid = old_pid,
        "injecting a fault into the user half"
    );
    let shared = || {
        let dev = inner.nd.with_adapter(|a| a.dev);
        e1000::kernel::shared_state(dev).map_err(drv)
    };
    // Faults the user half survives: it must answer again, nobody restarts it.
    let mut survives = false;
    match fault {
        Fault::Crash => {
            // The call fails (the peer died under it); the supervisor restarts it.
            let _ = crate::faults::crash_user_half();
        }
        Fault::Kill => sup.kill_user_half(),
        Fault::CrashDuringReattach => {
            // The re-attach hook finds the flag and crashes the successor inside it.
            inner.crash_on_reattach.store(true, Ordering::SeqCst);
            sup.kill_user_half();
        }
        Fault::Panic => {
            survives = true;
            match crate::faults::panic_in_user_half() {
                Err(DriverError::Upcall(_)) => {}
                other => return Err(format!("the panic came back as {other:?}")),
            }
        }
        Fault::Slow(ms) => {
            survives = true;
            crate::faults::slow_user_half(ms).map_err(drv)?;
        }
        Fault::HoldLock => {
            survives = true;
            let granted = crate::faults::hold_hot_locks(&shared()?, 100).map_err(drv)?;
            if granted != 0 {
                return Err(format!(
                    "the user half was granted {granted} holds of the hot path's snapshot-only locks"
                ));
            }
        }
        Fault::HoldRepeatedly => {
            survives = true;
            let taken = crate::faults::snapshot_storm(&shared()?, 100).map_err(drv)?;
            tracing::info!(taken, "snapshots taken back to back");
        }
        Fault::Forged => {
            survives = true;
            let refused = crate::faults::forged_replies(sup.endpoint(), &shared()?)?;
            tracing::info!(refused, "forged replies refused");
        }
        Fault::Hang => {
            // Through the supervisor, which signals the process itself (the pid `status`
            // gave may name another process by now): the one stopped is the one whose
            // restart to wait for.
            old_pid = sup
                .stop_user_half()
                .ok_or("the user half went away before it could be stopped")?;
        }
        Fault::HangStandby => {
            // A standby is started shortly after each restart: wait for it.
            let end = std::time::Instant::now() + Duration::from_secs(5);
            let standby = loop {
                if let Some(pid) = sup.stop_standby() {
                    break pid;
                }
                if std::time::Instant::now() > end {
                    return Err("no warm standby to stop within 5 s (is it off?)".into());
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            tracing::info!(
                standby,
                "standby stopped; killing the user half so that recovery meets it"
            );
            sup.kill_user_half();
        }
        Fault::Garbage => {
            let seed = u64::from(old_pid) ^ inner.started.elapsed().as_nanos() as u64;
            let garbage = crate::faults::garbage_reply(sup.endpoint());
            tracing::info!(result = ?garbage, "the garbage reply");
            let _ = crate::faults::scribble_channel(seed);
            // Make the kernel half read the channel: a ping crosses it.
            let _ = microdriver_rt::lrpc::ping(sup.endpoint(), Duration::from_secs(2));
        }
    }
    // A hung standby is given up within a heartbeat timeout of time it could run: the
    // recovery must not take anywhere near the 10 s handshake timeout it waited before.
    let limit = inner.cfg.crossing_delay * 8
        + match fault {
            Fault::HangStandby => Duration::from_secs(5),
            _ => Duration::from_secs(20),
        };
    let restarted = match fault {
        _ if survives => {
            // The same user half answers again (a ping crosses the channel).
            let end = std::time::Instant::now() + limit;
            loop {
                if microdriver_rt::lrpc::ping(sup.endpoint(), Duration::from_secs(2)).is_ok() {
                    break sup.status().pid == Some(old_pid);
                }
                if std::time::Instant::now() > end {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Fault::Garbage => {
            // Garbage may be caught as rejected frames without a restart; either way
            // the channel must work again.
            let end = std::time::Instant::now() + limit;
            loop {
                if microdriver_rt::lrpc::ping(sup.endpoint(), Duration::from_secs(2)).is_ok() {
                    break true;
                }
                if std::time::Instant::now() > end {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        _ => sup.wait_restarted(Some(old_pid), limit),
    };
    if !restarted {
        return Err(format!(
            "the user half did not come back within {limit:?} after the {fault:?} fault"
        ));
    }
    if fault == Fault::CrashDuringReattach && inner.crash_on_reattach.swap(false, Ordering::SeqCst)
    {
        return Err("the successor was re-attached without the re-attach hook crashing it".into());
    }
    let after = status(inner);
    tracing::info!(
        ?fault,
        restarts = after.split.as_ref().map_or(0, |s| s.restarts),
        rejected = sup.endpoint().stats().rejected() - rejected_before,
        "user half answers again"
    );
    Ok(Reply::Status(Box::new(after)))
}
