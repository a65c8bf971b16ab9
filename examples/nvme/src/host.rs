//! The kernel half's host: a [`BlockDev`] attaches a controller, probes it through the
//! user half, and runs two threads: the **interrupt thread** (kernel half: wait for the
//! line, reap completions) and the **service thread** (the periodic health check, and the
//! recovery the kernel half asks the user half for). Callers submit block I/O and get
//! each completion exactly once, through a callback or the blocking helpers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::ctrl::{self, Controller};
use crate::error::NvmeError;
use crate::events::{self, TimeoutAction};
use crate::hot::io::{self, IoDone, IoOp, IoRequest, IoStats, Overdue};
use crate::hw::Hw;
use crate::kernel::{self, work, DevId, Kernel};

/// Host options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A request in flight longer than this makes the kernel half ask for a reset.
    pub io_timeout: Duration,
    /// How often the service thread checks the controller's health.
    pub health_period: Duration,
    /// Completion by polling: the interrupt thread reaps continuously (yielding the CPU
    /// between passes) instead of sleeping until the line is asserted.
    pub poll: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            io_timeout: Duration::from_secs(10),
            health_period: Duration::from_millis(100),
            poll: false,
        }
    }
}

type Callback = Box<dyn FnOnce(Result<Vec<u8>, NvmeError>) + Send>;

/// What the interrupt thread did: how it woke, and which wake-ups found completions.
/// Completions reaped after a quiet period (`reaped_by_poll`) are ones whose interrupt was
/// not seen: on a working line that count stays near zero.
#[derive(Debug, Default)]
pub struct IrqCounters {
    /// Wake-ups by the interrupt line.
    pub irq_wakes: AtomicU64,
    /// Wake-ups after a quiet period (no interrupt).
    pub timed_polls: AtomicU64,
    /// Requests completed at an interrupt wake-up.
    pub reaped_by_irq: AtomicU64,
    /// Requests completed at a quiet-period wake-up.
    pub reaped_by_poll: AtomicU64,
}

/// A snapshot of [`IrqCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IrqStats {
    /// Wake-ups by the interrupt line.
    pub irq_wakes: u64,
    /// Wake-ups after a quiet period.
    pub timed_polls: u64,
    /// Requests completed at an interrupt wake-up.
    pub reaped_by_irq: u64,
    /// Requests completed at a quiet-period wake-up.
    pub reaped_by_poll: u64,
}

impl IrqCounters {
    fn count(&self, by_irq: bool, reaped: u32) {
        let (wakes, reaped_ctr) = if by_irq {
            (&self.irq_wakes, &self.reaped_by_irq)
        } else {
            (&self.timed_polls, &self.reaped_by_poll)
        };
        wakes.fetch_add(1, Ordering::Relaxed);
        reaped_ctr.fetch_add(u64::from(reaped), Ordering::Relaxed);
    }

    fn snapshot(&self) -> IrqStats {
        IrqStats {
            irq_wakes: self.irq_wakes.load(Ordering::Relaxed),
            timed_polls: self.timed_polls.load(Ordering::Relaxed),
            reaped_by_irq: self.reaped_by_irq.load(Ordering::Relaxed),
            reaped_by_poll: self.reaped_by_poll.load(Ordering::Relaxed),
        }
    }
}

/// Asynchronous events the user half handled, most recent last (at most
/// [`RECENT_EVENTS`] kept), and what the user half decided about overdue commands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventLog {
    /// Events handled.
    pub events: u64,
    /// The last ones, as the user half described them.
    pub recent: VecDeque<String>,
    /// Overdue commands handed to the user half.
    pub timeouts: u64,
    /// Of its decisions: aborts (the kernel half resubmits the command) ...
    pub aborted: u64,
    /// ... and resets.
    pub timeout_resets: u64,
    /// The last decision.
    pub last_timeout: Option<String>,
}

/// How many handled events [`EventLog`] keeps.
pub const RECENT_EVENTS: usize = 8;

/// Recovery as the host tracks it.
#[derive(Debug, Default)]
pub struct RecoveryState {
    pending: AtomicBool,
    /// Completed recoveries.
    count: Mutex<u64>,
    cv: Condvar,
    last_error: Mutex<Option<String>>,
    log: Mutex<EventLog>,
    log_cv: Condvar,
}

impl RecoveryState {
    fn note(&self, f: impl FnOnce(&mut EventLog)) {
        f(&mut self.log.lock());
        self.log_cv.notify_all();
    }
}

/// A probed controller serving one namespace.
pub struct BlockDev {
    kernel: Arc<Kernel>,
    ctrl: Arc<Mutex<Controller>>,
    waiters: Arc<Mutex<HashMap<u64, Callback>>>,
    next_tag: AtomicU64,
    recovery: Arc<RecoveryState>,
    irq_counters: Arc<IrqCounters>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for BlockDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockDev")
            .field("dev", &self.kernel.id())
            .finish_non_exhaustive()
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, NvmeError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| NvmeError::Unsupported(format!("spawning {name}: {e}")))
}

impl BlockDev {
    /// Attaches and probes the controller behind `hw` and starts the threads.
    pub fn start(hw: Hw, opts: Options) -> Result<Self, NvmeError> {
        let dev = kernel::attach(hw)?;
        let k = kernel::lookup(dev)?;
        let waiters: Arc<Mutex<HashMap<u64, Callback>>> = Arc::default();
        let w = Arc::clone(&waiters);
        k.set_sink(Some(Arc::new(move |d: IoDone| {
            // Taken out first: the callback runs without the lock (it may submit).
            let cb = w.lock().remove(&d.tag);
            if let Some(cb) = cb {
                cb(d.result);
            }
        })));
        let stop = Arc::new(AtomicBool::new(false));
        let irq_counters = Arc::new(IrqCounters::default());
        let irq = {
            let (k, stop, c) = (Arc::clone(&k), Arc::clone(&stop), Arc::clone(&irq_counters));
            spawn("nvme-irq", move || {
                // Reaps after every interrupt, and after every quiet period too: a
                // completion whose interrupt was not seen waits at most one period.
                while !stop.load(Ordering::Relaxed) {
                    if opts.poll {
                        c.count(false, io::process_cq(&k));
                        std::thread::yield_now();
                        continue;
                    }
                    let by_irq = k.hw().irq.wait(Duration::from_millis(20));
                    c.count(by_irq, io::process_cq(&k));
                }
            })?
        };
        let ctrl = match ctrl::probe(dev) {
            Ok(c) => c,
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                let _ = irq.join();
                let _ = kernel::detach(dev);
                return Err(e);
            }
        };
        tracing::info!(sn = %ctrl.id.sn, mn = %ctrl.id.mn, nsid = ctrl.nsid, blocks = ctrl.geometry.blocks, "probed");
        let ctrl = Arc::new(Mutex::new(ctrl));
        let recovery = Arc::new(RecoveryState::default());
        let svc = {
            let (k, stop, c, r) = (
                Arc::clone(&k),
                Arc::clone(&stop),
                Arc::clone(&ctrl),
                Arc::clone(&recovery),
            );
            spawn("nvme-service", move || service(&k, &stop, &c, &r, opts))?
        };
        Ok(BlockDev {
            kernel: k,
            ctrl,
            waiters,
            next_tag: AtomicU64::new(1),
            recovery,
            irq_counters,
            stop,
            threads: vec![irq, svc],
        })
    }

    /// The controller's id (for the user half's management calls).
    pub fn dev(&self) -> DevId {
        self.kernel.id()
    }

    /// The kernel half's object.
    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// What the last bring-up found.
    pub fn controller(&self) -> Controller {
        self.ctrl.lock().clone()
    }

    /// The hot path's counters.
    pub fn stats(&self) -> IoStats {
        self.kernel.io.lock().stats()
    }

    /// How the interrupt thread woke and what it reaped.
    pub fn irq_stats(&self) -> IrqStats {
        self.irq_counters.snapshot()
    }

    /// Completed recoveries.
    pub fn recoveries(&self) -> u64 {
        *self.recovery.count.lock()
    }

    /// The asynchronous events and command timeouts the user half handled.
    pub fn event_log(&self) -> EventLog {
        self.recovery.log.lock().clone()
    }

    /// Waits (up to `timeout`) until the event log satisfies `done`; returns it.
    pub fn wait_event_log(
        &self,
        timeout: Duration,
        done: impl Fn(&EventLog) -> bool,
    ) -> Result<EventLog, NvmeError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut g = self.recovery.log.lock();
        while !done(&g) {
            if self
                .recovery
                .log_cv
                .wait_until(&mut g, deadline)
                .timed_out()
            {
                return Err(NvmeError::Timeout {
                    what: format!("the event log ({:?})", *g),
                    ms: timeout.as_millis() as u64,
                });
            }
        }
        Ok(g.clone())
    }

    /// Whether a recovery is pending, and why the last attempt failed.
    pub fn recovery_state(&self) -> (bool, Option<String>) {
        (
            self.recovery.pending.load(Ordering::SeqCst),
            self.recovery.last_error.lock().clone(),
        )
    }

    /// Submits a request; `done` gets its result exactly once (from the interrupt
    /// thread, or here if it is refused).
    pub fn submit(
        &self,
        op: IoOp,
        lba: u64,
        blocks: u32,
        data: Vec<u8>,
        done: impl FnOnce(Result<Vec<u8>, NvmeError>) + Send + 'static,
    ) {
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        self.waiters.lock().insert(tag, Box::new(done));
        let req = IoRequest {
            tag,
            op,
            lba,
            blocks,
            data,
        };
        if let Err(e) = io::submit_io(self.kernel.id(), req) {
            let cb = self.waiters.lock().remove(&tag);
            if let Some(cb) = cb {
                cb(Err(e));
            }
        }
    }

    fn sync(&self, op: IoOp, lba: u64, blocks: u32, data: Vec<u8>) -> Result<Vec<u8>, NvmeError> {
        let (tx, rx) = mpsc::channel();
        self.submit(op, lba, blocks, data, move |r| {
            let _ = tx.send(r);
        });
        rx.recv()
            .map_err(|_| NvmeError::Busy("the request was dropped".into()))?
    }

    /// Reads `blocks` blocks at `lba`.
    pub fn read(&self, lba: u64, blocks: u32) -> Result<Vec<u8>, NvmeError> {
        self.sync(IoOp::Read, lba, blocks, Vec::new())
    }

    /// Writes `data` (whole blocks) at `lba`.
    pub fn write(&self, lba: u64, data: &[u8]) -> Result<(), NvmeError> {
        let shift = self.ctrl.lock().geometry.lba_shift;
        let blocks = u32::try_from(data.len() >> shift)
            .map_err(|_| NvmeError::invalid("write length", "too long"))?;
        self.sync(IoOp::Write, lba, blocks, data.to_vec()).map(drop)
    }

    /// Flushes the controller's volatile write cache.
    pub fn flush(&self) -> Result<(), NvmeError> {
        self.sync(IoOp::Flush, 0, 0, Vec::new()).map(drop)
    }

    /// Discards (deallocates) `blocks` blocks at `lba`.
    pub fn discard(&self, lba: u64, blocks: u32) -> Result<(), NvmeError> {
        self.sync(IoOp::Discard, lba, blocks, Vec::new()).map(drop)
    }

    /// Writes zeroes to `blocks` blocks at `lba`.
    pub fn write_zeroes(&self, lba: u64, blocks: u32) -> Result<(), NvmeError> {
        self.sync(IoOp::WriteZeroes, lba, blocks, Vec::new())
            .map(drop)
    }

    /// Asks for a controller reset and waits (up to `timeout`) until a recovery after it
    /// has completed.
    pub fn reset(&self, timeout: Duration) -> Result<(), NvmeError> {
        let before = *self.recovery.count.lock();
        kernel::schedule_reset(self.kernel.id())?;
        self.wait_recoveries(before + 1, timeout)
    }

    /// Waits until `n` recoveries have completed.
    pub fn wait_recoveries(&self, n: u64, timeout: Duration) -> Result<(), NvmeError> {
        let mut g = self.recovery.count.lock();
        let deadline = std::time::Instant::now() + timeout;
        while *g < n {
            if self.recovery.cv.wait_until(&mut g, deadline).timed_out() {
                return Err(NvmeError::Timeout {
                    what: format!(
                        "recovery ({})",
                        self.recovery.last_error.lock().clone().unwrap_or_default()
                    ),
                    ms: timeout.as_millis() as u64,
                });
            }
        }
        Ok(())
    }

    /// Shuts the controller down (user half), detaches it (kernel half) and stops the
    /// threads. Requests still held complete with an error.
    pub fn shutdown(mut self) -> Result<(), NvmeError> {
        let r = ctrl::shutdown(self.kernel.id());
        self.stop_threads();
        kernel::detach(self.kernel.id())?;
        r
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.kernel.work.kick();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for BlockDev {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop_threads();
            let _ = kernel::detach(self.kernel.id());
        }
    }
}

/// First and longest wait before retrying a recovery that failed (no user half, say).
const RETRY_MIN: Duration = Duration::from_millis(5);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Text from the user half as the host keeps and shows it: one line, at most
/// [`TEXT_MAX`] characters (a garbage or hostile user half cannot forge status lines or
/// grow the log).
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(TEXT_MAX)
        .collect()
}

/// Longest user-half text the host keeps.
pub const TEXT_MAX: usize = 240;

/// Has the user half handle the asynchronous events the kernel half kept; false if it
/// could not (no user half: retried later).
fn handle_events(dev: DevId, r: &RecoveryState) -> bool {
    match events::async_events(dev) {
        Ok(reports) => {
            r.note(|l| {
                for e in reports {
                    l.events += 1;
                    if l.recent.len() >= RECENT_EVENTS {
                        l.recent.pop_front();
                    }
                    l.recent.push_back(printable(&e.text));
                }
            });
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "asynchronous events not handled yet");
            false
        }
    }
}

/// Hands overdue commands to the user half, which aborts them or resets the controller;
/// if it cannot decide (no user half, a garbage answer), the kernel half resets.
fn handle_timeouts(dev: DevId, overdue: Vec<Overdue>, r: &RecoveryState) {
    let n = overdue.len() as u64;
    let decision = events::command_timeout(dev, overdue);
    let text = match &decision {
        Ok(TimeoutAction::Aborted { commands }) => format!("aborted {commands}"),
        Ok(TimeoutAction::Reset { why }) => format!("reset: {}", printable(why)),
        Err(e) => format!("reset by the kernel half: the user half did not decide ({e})"),
    };
    if decision.is_err() {
        let _ = kernel::schedule_reset(dev);
    }
    tracing::warn!(commands = n, decision = %text, "command timeout");
    r.note(|l| {
        l.timeouts += n;
        match decision {
            Ok(TimeoutAction::Aborted { commands }) => l.aborted += u64::from(commands),
            _ => l.timeout_resets += 1,
        }
        l.last_timeout = Some(text);
    });
}

fn service(
    k: &Kernel,
    stop: &AtomicBool,
    ctrl: &Mutex<Controller>,
    r: &RecoveryState,
    opts: Options,
) {
    let mut retry = RETRY_MIN;
    let mut events_pending = false;
    while !stop.load(Ordering::Relaxed) {
        let wait = if r.pending.load(Ordering::SeqCst) {
            retry
        } else {
            opts.health_period
        };
        let bits = k.work.wait(wait);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if bits & work::RESET != 0 {
            r.pending.store(true, Ordering::SeqCst);
        }
        events_pending |= bits & work::EVENT != 0;
        if !r.pending.load(Ordering::SeqCst) {
            if events_pending {
                // Retried at the next period if no user half answers.
                events_pending = !handle_events(k.id(), r);
            }
            let h = kernel::health_check(k, opts.io_timeout);
            if let Some(why) = h.reset_reason {
                tracing::warn!(reason = %why, "controller needs a reset");
            } else if !h.overdue.is_empty() {
                handle_timeouts(k.id(), h.overdue, r);
            }
            continue;
        }
        match ctrl::recover(k.id()) {
            Ok(c) => {
                *ctrl.lock() = c;
                r.pending.store(false, Ordering::SeqCst);
                *r.last_error.lock() = None;
                retry = RETRY_MIN;
                *r.count.lock() += 1;
                r.cv.notify_all();
            }
            Err(e) => {
                tracing::warn!(error = %e, "recovery failed; retrying");
                *r.last_error.lock() = Some(e.to_string());
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_half_text_is_one_bounded_line() {
        let forged = format!("ok\nrecoveries: 0 (pending: no)\r{}", "x".repeat(1000));
        let kept = printable(&forged);
        assert!(!kept.contains('\n') && !kept.contains('\r'));
        assert_eq!(kept.chars().count(), TEXT_MAX);
        assert!(kept.starts_with("okrecoveries: 0"));
    }
}
