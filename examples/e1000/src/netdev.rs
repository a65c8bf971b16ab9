//! The monolithic host: both halves in one process, as the baseline and for the tests.
//!
//! A [`Netdev`] attaches a device to the kernel half, probes it in the user half, and runs
//! two threads: the **interrupt thread** (kernel half: wait for the line, run the interrupt
//! handler, poll until under budget) and the **service thread** (user half: the 2-second
//! watchdog and the work the interrupt handler defers: link checks and resets). Received
//! frames go to a queue standing in for the network stack.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::adapter::Adapter;
use crate::config::{self, Repair};
use crate::error::DriverError;
use crate::frame::{RxFrame, TxPacket};
use crate::hot;
use crate::hw::Hw;
use crate::kernel::{self, work, Kernel};
use crate::link;
use crate::probe;

/// Host options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Watchdog period.
    pub watchdog_period: Duration,
    /// Poll budget.
    pub budget: u32,
    /// Most frames kept in the receive queue before the oldest are dropped.
    pub rx_queue_limit: usize,
    /// Load-time parameters (Linux's e1000 module parameters), applied after probe and
    /// before anything opens the device; a refused one fails the start (see
    /// [`crate::params`]).
    pub params: Option<crate::params::Params>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            watchdog_period: link::WATCHDOG_PERIOD,
            budget: 64,
            rx_queue_limit: 1 << 20,
            params: None,
        }
    }
}

type RxQueue = Arc<(Mutex<VecDeque<RxFrame>>, Condvar)>;

/// What a pending reset does: the full reset task, or only the repairs of the
/// configuration calls that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// The reset task.
    Full,
    /// These repairs, in order.
    Repairs(Vec<Repair>),
}

/// A probed device with its interrupt and service threads running.
pub struct Netdev {
    kernel: Arc<Kernel>,
    adapter: Arc<Mutex<Adapter>>,
    rxq: RxQueue,
    /// A reset was asked for and has not completed yet (the service thread retries it
    /// while no user half answers).
    reset_pending: Arc<AtomicBool>,
    /// What the pending reset must do.
    plan: Arc<Mutex<Plan>>,
    /// Bumped when a reset or repair starts and when it ends.
    reset_gen: Arc<AtomicU64>,
    /// Why the device no longer holds what the kernel half programmed (reset or taken
    /// under the driver), as the service thread last found it.
    device_fault: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Netdev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netdev")
            .field("dev", &self.kernel.id())
            .finish_non_exhaustive()
    }
}

impl Netdev {
    /// Attaches and probes the device behind `hw` and starts the threads (the interface
    /// stays closed until [`open`](Netdev::open)).
    pub fn start(hw: Hw, opts: Options) -> Result<Self, DriverError> {
        let dev = kernel::attach(hw);
        let mut adapter = match probe::probe(dev) {
            Ok(a) => a,
            Err(e) => {
                let _ = kernel::detach(dev);
                return Err(e);
            }
        };
        if let Some(p) = &opts.params {
            if let Err(e) = crate::params::apply_at_probe(&mut adapter, p) {
                let _ = probe::remove(&mut adapter);
                return Err(e);
            }
        }
        let k = kernel::lookup(dev)?;
        let rxq: RxQueue = Arc::new((Mutex::new(VecDeque::new()), Condvar::new()));
        let q = Arc::clone(&rxq);
        let limit = opts.rx_queue_limit;
        k.set_sink(Some(Arc::new(move |frames: Vec<RxFrame>| {
            let mut g = q.0.lock();
            for f in frames {
                if g.len() >= limit {
                    g.pop_front();
                }
                g.push_back(f);
            }
            q.1.notify_all();
        })));
        let stop = Arc::new(AtomicBool::new(false));
        let adapter = Arc::new(Mutex::new(adapter));
        let irq_thread = {
            let (k, stop) = (Arc::clone(&k), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("e1000-irq".into())
                .spawn(move || interrupt_loop(&k, &stop, opts.budget))
                .map_err(|e| {
                    DriverError::Unsupported(format!("spawning the interrupt thread: {e}"))
                })?
        };
        let reset_pending = Arc::new(AtomicBool::new(false));
        let plan = Arc::new(Mutex::new(Plan::Full));
        let reset_gen = Arc::new(AtomicU64::new(0));
        let device_fault = Arc::new(Mutex::new(None));
        let svc_thread = {
            let (k, stop, a) = (Arc::clone(&k), Arc::clone(&stop), Arc::clone(&adapter));
            let pending = Service {
                pending: Arc::clone(&reset_pending),
                plan: Arc::clone(&plan),
                generation: Arc::clone(&reset_gen),
                fault: Arc::clone(&device_fault),
            };
            std::thread::Builder::new()
                .name("e1000-service".into())
                .spawn(move || service_loop(&k, &a, &pending, &stop, opts.watchdog_period))
                .map_err(|e| {
                    DriverError::Unsupported(format!("spawning the service thread: {e}"))
                })?
        };
        Ok(Self {
            kernel: k,
            adapter,
            rxq,
            reset_pending,
            plan,
            reset_gen,
            device_fault,
            stop,
            threads: vec![irq_thread, svc_thread],
        })
    }

    /// The kernel half of the device.
    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// Runs `f` on the user half's adapter (holding its lock, like the rtnl lock).
    pub fn with_adapter<R>(&self, f: impl FnOnce(&mut Adapter) -> R) -> R {
        f(&mut self.adapter.lock())
    }

    /// Runs a state-changing operation on the adapter (holding its lock, like
    /// [`with_adapter`](Netdev::with_adapter)). If it fails with a crossing error
    /// ([`DriverError::Upcall`]: the user half died, hung or answered garbage under it),
    /// the device may be left half reconfigured (closed, reset, rings freed or parked,
    /// transmit frozen, frames captured) while the adapter, whose copy is written back only
    /// when an upcall completes, still holds the configuration from before the call. The
    /// reset task is then scheduled: the service thread brings the device back to the
    /// adapter's configuration once a user half answers again (see
    /// [`reset_pending`](Netdev::reset_pending)).
    ///
    /// Read-only operations use [`with_adapter`](Netdev::with_adapter): their failure
    /// changes nothing, so nothing is reset.
    pub fn configure<R>(
        &self,
        f: impl FnOnce(&mut Adapter) -> Result<R, DriverError>,
    ) -> Result<R, DriverError> {
        self.configure_or_repair(None, f)
    }

    /// [`configure`](Netdev::configure) for an operation whose failure `repair` undoes
    /// (see [`Repair`]): a crossing failure schedules that repair, not the full reset
    /// (unless a full reset is pending anyway).
    pub fn configure_or_repair<R>(
        &self,
        repair: Option<Repair>,
        f: impl FnOnce(&mut Adapter) -> Result<R, DriverError>,
    ) -> Result<R, DriverError> {
        let mut g = self.adapter.lock();
        let r = f(&mut g);
        if let Err(e @ DriverError::Upcall(_)) = &r {
            tracing::warn!(
                dev = g.dev.0,
                error = %e,
                ?repair,
                "a configuration call failed crossing the split: scheduling a repair to \
                 restore the adapter's configuration"
            );
            let mut plan = self.plan.lock();
            let already = self.reset_pending();
            match (repair, &mut *plan) {
                (Some(r), Plan::Repairs(list)) if already => {
                    if !list.contains(&r) {
                        list.push(r);
                    }
                }
                (Some(r), _) if !already => *plan = Plan::Repairs(vec![r]),
                _ => *plan = Plan::Full,
            }
            self.reset_pending.store(true, Ordering::SeqCst);
            drop(plan);
            self.kernel.work.kick();
        }
        r
    }

    /// True while a reset is scheduled or waiting for a user half to run it.
    pub fn reset_pending(&self) -> bool {
        self.reset_pending.load(Ordering::SeqCst) || self.kernel.work.pending() & work::RESET != 0
    }

    /// Changes whenever a reset or repair starts or ends: a hot-path pause that spans a
    /// change overlapped one.
    pub fn reset_generation(&self) -> u64 {
        self.reset_gen.load(Ordering::SeqCst)
    }

    /// Opens the interface.
    pub fn open(&self) -> Result<(), DriverError> {
        self.configure(config::open)
    }

    /// Closes the interface.
    pub fn close(&self) -> Result<(), DriverError> {
        self.configure(config::close)
    }

    /// Waits until the watchdog has seen the link up and the carrier is on.
    ///
    /// The link check an LSC interrupt triggers sets the carrier, which wakes this wait;
    /// its own link check (an upcall) runs only every 10 ms in case one was missed, not
    /// once a millisecond.
    pub fn wait_link(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.with_adapter(|a| {
                let _ = link::check_link(a);
                a.up && a.link.up
            }) {
                return true;
            }
            let now = Instant::now();
            if now > end {
                return false;
            }
            self.kernel
                .wait_tx_wake((end - now).min(Duration::from_millis(10)));
        }
    }

    /// Transmits `pkt`, waiting while the queue is stopped (up to `timeout`). `Ok` means
    /// the kernel half accepted it: it will reach the wire.
    pub fn send(&self, pkt: &TxPacket, timeout: Duration) -> Result<(), DriverError> {
        let end = Instant::now() + timeout;
        loop {
            match hot::tx::xmit(&self.kernel, pkt) {
                Err(DriverError::Busy) if Instant::now() < end => {
                    self.kernel.wait_tx_wake(Duration::from_millis(1));
                }
                r => return r,
            }
        }
    }

    /// Transmits `pkts` in order with one hold of the transmit ring's lock and one doorbell
    /// (TDT) write (see [`hot::tx::xmit_batch`]): `each(i, result)` gets each packet's
    /// outcome; the batch stops at the first packet refused as busy (ring full or carrier
    /// off). Returns how many packets were consumed.
    pub fn send_batch(
        &self,
        pkts: &[TxPacket],
        each: impl FnMut(usize, Result<(), DriverError>),
    ) -> usize {
        hot::tx::xmit_batch(&self.kernel, pkts, each)
    }

    /// Transmits `pkt` if the queue has room now.
    pub fn try_send(&self, pkt: &TxPacket) -> Result<(), DriverError> {
        hot::tx::xmit(&self.kernel, pkt)
    }

    /// The next received frame, waiting up to `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<RxFrame> {
        let end = Instant::now() + timeout;
        let (m, cv) = &*self.rxq;
        let mut g = m.lock();
        loop {
            if let Some(f) = g.pop_front() {
                return Some(f);
            }
            if cv.wait_until(&mut g, end).timed_out() {
                return g.pop_front();
            }
        }
    }

    /// Every frame received so far, without waiting.
    pub fn drain(&self) -> Vec<RxFrame> {
        self.rxq.0.lock().drain(..).collect()
    }

    /// Stops the threads and removes the device.
    pub fn shutdown(mut self) -> Result<(), DriverError> {
        self.stop_threads();
        let r = self.with_adapter(probe::remove);
        self.kernel.set_sink(None);
        r
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.kernel.work.kick();
        for t in self.threads.drain(..) {
            // The threads only return; a panic in one has already been reported.
            let _ = t.join();
        }
    }
}

impl Netdev {
    /// Why the device no longer holds what the kernel half programmed (reset, or taken
    /// and reprogrammed by someone else), if the watchdog found that; `None` while healthy.
    pub fn device_fault(&self) -> Option<String> {
        self.device_fault.lock().clone()
    }
}

impl Drop for Netdev {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop_threads();
            let _ = self.with_adapter(probe::remove);
            self.kernel.set_sink(None);
        }
    }
}

/// The kernel half's interrupt thread.
fn interrupt_loop(k: &Kernel, stop: &AtomicBool, budget: u32) {
    while !stop.load(Ordering::Relaxed) {
        if !k.hw().irq.wait(Duration::from_millis(20)) {
            continue;
        }
        tracing::trace!("interrupt");
        let o = hot::irq::handle(k);
        if o.schedule_poll {
            while !hot::poll::run(k, budget).complete {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
        }
    }
}

/// First wait before retrying a reset that could not reach a user half.
const RESET_RETRY_MIN: Duration = Duration::from_millis(5);
/// Longest wait between such retries (a degraded driver has no user half to wait for).
const RESET_RETRY_MAX: Duration = Duration::from_secs(1);

/// The user half's service thread: the watchdog and deferred work. A reset (asked for by
/// the watchdog, or by [`Netdev::configure`] after a failed crossing) stays pending until
/// the reset task has run: while no user half answers it is retried, with backoff, and
/// the watchdog waits (the device is not in the adapter's configuration until then).
/// The service thread's view of the pending reset.
struct Service {
    pending: Arc<AtomicBool>,
    plan: Arc<Mutex<Plan>>,
    generation: Arc<AtomicU64>,
    fault: Arc<Mutex<Option<String>>>,
}

impl Service {
    /// The watchdog's check that the device still holds what the kernel half programmed.
    /// A mismatch counts once the same one is seen on two ticks in a row (the driver's own
    /// reconfiguration never spans a tick with the ring locks released), and is logged when
    /// it starts and when it ends.
    fn note_programmed(&self, k: &Kernel, suspect: &mut Option<String>) {
        let now = crate::programmed::check(k);
        let confirmed = match (&now, suspect.as_ref()) {
            (Some(n), Some(s)) if n == s => Some(n.clone()),
            _ => None,
        };
        *suspect = now;
        let mut fault = self.fault.lock();
        match (&confirmed, fault.as_ref()) {
            (Some(why), None) => tracing::error!(dev = k.id().0, "device lost: {why}"),
            (None, Some(_)) if suspect.is_none() => {
                tracing::info!(dev = k.id().0, "the device holds the driver's rings again")
            }
            _ => {}
        }
        if confirmed.is_some() || suspect.is_none() {
            *fault = confirmed;
        }
    }

    /// Runs the pending plan: the repairs (escalating to the full reset if one fails other
    /// than crossing the split), or the full reset.
    fn run(&self, a: &mut Adapter) -> Result<(), DriverError> {
        let plan = self.plan.lock().clone();
        self.generation.fetch_add(1, Ordering::SeqCst);
        let r = match plan {
            Plan::Repairs(list) => {
                let mut r = Ok(());
                for repair in list {
                    r = repair.run(a);
                    match &r {
                        Ok(()) => {}
                        Err(DriverError::Upcall(_)) => break,
                        Err(e) => {
                            tracing::warn!(?repair, error = %e, "repair failed: resetting instead");
                            *self.plan.lock() = Plan::Full;
                            r = config::reset_task(a);
                            break;
                        }
                    }
                }
                r
            }
            Plan::Full => config::reset_task(a),
        };
        if r.is_ok() {
            *self.plan.lock() = Plan::Full;
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        r
    }
}

fn service_loop(
    k: &Kernel,
    a: &Mutex<Adapter>,
    svc: &Service,
    stop: &AtomicBool,
    period: Duration,
) {
    let pending = &*svc.pending;
    let mut suspect = None;
    let mut next = Instant::now() + period;
    let mut retry = RESET_RETRY_MIN;
    while !stop.load(Ordering::Relaxed) {
        let mut wait = next.saturating_duration_since(Instant::now());
        if pending.load(Ordering::SeqCst) {
            wait = wait.min(retry);
        }
        let bits = k.work.wait(wait);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if bits & work::RESET != 0 {
            // The watchdog's (a transmit hang): the full reset.
            *svc.plan.lock() = Plan::Full;
            pending.store(true, Ordering::SeqCst);
        }
        let mut g = a.lock();
        if pending.load(Ordering::SeqCst) {
            match svc.run(&mut g) {
                Ok(()) => {
                    tracing::info!(dev = g.dev.0, "device back in the adapter's configuration");
                    pending.store(false, Ordering::SeqCst);
                    retry = RESET_RETRY_MIN;
                }
                Err(e @ DriverError::Upcall(_)) => {
                    // No user half to run it (dead, restarting, hung): try again later.
                    if retry == RESET_RETRY_MIN {
                        tracing::warn!(error = %e, "reset waits for a user half");
                    }
                    retry = (retry * 2).min(RESET_RETRY_MAX);
                    continue;
                }
                Err(e) => {
                    // The device itself failed: retrying would fail the same way.
                    tracing::error!(error = %e, "reset failed");
                    pending.store(false, Ordering::SeqCst);
                    retry = RESET_RETRY_MIN;
                }
            }
        }
        if bits & work::LINK != 0 || Instant::now() >= next {
            if Instant::now() >= next && !pending.load(Ordering::SeqCst) {
                svc.note_programmed(k, &mut suspect);
            }
            if let Err(e) = link::watchdog(&mut g) {
                tracing::warn!(error = %e, "watchdog failed");
            }
            if Instant::now() >= next {
                next = Instant::now() + period;
            }
        }
    }
}
