//! `status`: the link, the power state, the counters and the split's health.

use super::*;

pub(crate) fn status(inner: &Inner) -> Status {
    // The adapter's link state is the watchdog's, which does not run while suspended
    // (and the interface, so the carrier, is closed then): report the link down.
    let (link_up, suspended, wake_on) = inner
        .nd
        .with_adapter(|a| (a.link.up && !a.pm.suspended, a.pm.suspended, a.conf.wol));
    let split = inner.supervisor.as_ref().map(|sup| {
        let s = sup.status();
        let endpoint = sup.endpoint();
        let tracker = endpoint.tracker().stats();
        let table = EntryTable::get();
        let mut entries: Vec<EntryStatus> = endpoint
            .stats()
            .entries()
            .into_iter()
            .map(|(id, c)| {
                let (direction, name) = match table.lookup(Served::ByUser, id) {
                    Some(e) => ("upcall", e.name.to_string()),
                    None => match table.lookup(Served::ByKernel, id) {
                        Some(e) => ("downcall", e.name.to_string()),
                        None => ("unknown", format!("{id:#010x}")),
                    },
                };
                EntryStatus {
                    direction: direction.into(),
                    name,
                    calls: c.calls,
                    errors: c.errors,
                    p50: c.percentile(0.5),
                    p99: c.percentile(0.99),
                }
            })
            .collect();
        entries.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.name.cmp(&b.name)));
        SplitStatus {
            pid: s.pid,
            uptime: s.uptime,
            restarts: s.restarts,
            hangs: s.hangs,
            starved_pings: s.starved_pings,
            degraded: s.degraded,
            next_attempt: s.next_attempt,
            degradations: s.degradations,
            revivals: s.revivals,
            last_recovery: s.last_recovery,
            tracker_objects: tracker.objects,
            tracker_bytes: tracker.bytes,
            tracker_translations: tracker.translations,
            tracker_rejections: tracker.rejections,
            rejected_frames: endpoint.stats().rejected(),
            recent_rejections: endpoint.stats().recent_rejections(),
            entries,
            crossing_delay: inner.cfg.crossing_delay,
            workers: inner.cfg.workers,
        }
    });
    Status {
        mode: if inner.supervisor.is_some() {
            "split"
        } else {
            "monolithic"
        }
        .into(),
        backend: match &inner.cfg.backend {
            crate::daemon::Backend::Sim => "sim".into(),
            crate::daemon::Backend::Uio(a) => format!("uio {a}"),
            crate::daemon::Backend::Vfio(a) => format!("vfio {a}"),
        },
        tap: inner.tap.as_ref().map(|t| t.name().to_string()),
        daemon_pid: std::process::id(),
        uptime: inner.started.elapsed(),
        link_up,
        reset_pending: inner.nd.reset_pending(),
        suspended,
        device_fault: inner.nd.device_fault(),
        wake_on,
        rx_frames: inner
            .stack
            .rx_frames
            .load(std::sync::atomic::Ordering::Relaxed),
        tx_frames: inner
            .stack
            .tx_frames
            .load(std::sync::atomic::Ordering::Relaxed),
        rx_dropped: inner
            .stack
            .rx_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        tx_dropped: inner
            .stack
            .tx_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        split,
    }
}
