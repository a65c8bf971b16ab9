//! Power management: suspend (readied for power-off) and resume.

use super::*;

pub(super) fn suspend(inner: &Inner) -> Result<Reply, String> {
    let nd = &inner.nd;
    // A stream would stall on the closed interface, each frame refused only
    // after its timeout: let it finish first.
    if inner
        .traffic_thread
        .lock()
        .as_ref()
        .is_some_and(|t| !t.is_finished())
    {
        return Err(
            "a traffic stream is running: wait for it (`e1000ctl traffic wait`) before suspending"
                .into(),
        );
    }
    let report = nd
        .configure(|a| {
            pm::suspend(a)?;
            Ok(SuspendReport {
                was_up: a.pm.was_up,
                wake_on: a.conf.wol,
            })
        })
        .map_err(drv)?;
    Ok(Reply::Suspended(report))
}

pub(super) fn resume(inner: &Inner) -> Result<Reply, String> {
    let nd = &inner.nd;
    let r = nd.configure(pm::resume).map_err(drv)?;
    Ok(Reply::Resumed(ResumeReport {
        wake_status: r.wake_status,
        woken_by: r.woken_by,
        reopened: r.reopened,
    }))
}
