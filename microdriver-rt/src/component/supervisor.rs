//! Supervision: notice a dead or hung user half, fail its calls, restart it with backoff,
//! let the driver re-attach, and pause (degraded) past a restart-rate limit.
//!
//! Degraded is not forever: a degraded driver tries a new user half after
//! `revive_backoff_initial`, then after twice as long each time it crash-loops straight back
//! into degraded, up to `revive_backoff_max`; a user half that then stays up for a whole
//! `restart_window` resets that backoff. An operator revives it at once with
//! [`Supervisor::revive`]. Each transition (degraded, an attempt, revived, a failed
//! attempt) is logged.
//!
//! The channel (slot area and kernel endpoint) outlives every user-half process, so an
//! installed endpoint keeps working across restarts: a call made while the user half is
//! down fails at once with `PeerDied`; one made after the restart reaches the new process.
//! Death is noticed through the child's pidfd (a crash, a kill, a seccomp violation); a
//! hang through a heartbeat ping (and at once after any call times out), after which the
//! hung process is killed and handled as dead.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use super::death::DeathCause;
use super::heartbeat::{self, Beat};
use super::spawn::{Channel, ComponentConfig, ComponentError, Signaller, UserHalf};
use crate::lrpc::{ping, KernelEndpoint};
use crate::tracker::ObjectTracker;

/// How to supervise.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// How each user half is started.
    pub component: ComponentConfig,
    /// Wait before restarting a user half that died young (a crash loop); doubles per
    /// young death, up to `backoff_max`. A user half that ran for `stable_uptime` is
    /// restarted at once and resets the backoff.
    pub backoff_initial: Duration,
    /// Longest wait between restarts.
    pub backoff_max: Duration,
    /// How long a user half must have run for its death not to count as a crash loop.
    pub stable_uptime: Duration,
    /// At most this many restarts within `restart_window`; one more makes the driver
    /// degraded (no user half; calls fail at once with `CallError::Degraded`) until the
    /// next revival attempt.
    pub max_restarts: usize,
    /// The window for `max_restarts`, in the time user halves ran: restarts count as
    /// recent until the user halves since have run for this long together. Time spent
    /// starting them, waiting out the young-death backoff or degraded does not age a
    /// crash loop out of the window (in wall time, a backoff grown towards `backoff_max`,
    /// or slow restarts on a busy machine, spread a crash loop too thin for the budget
    /// ever to be exceeded: restarted once a second for ever, never degraded).
    pub restart_window: Duration,
    /// How long a degraded driver waits before it tries a user half again; doubled each
    /// time a revived user half crash-loops back into degraded (it died before running for
    /// `restart_window`), up to `revive_backoff_max`.
    pub revive_backoff_initial: Duration,
    /// The longest wait between revival attempts.
    pub revive_backoff_max: Duration,
    /// How often the user half is pinged when idle.
    pub heartbeat: Duration,
    /// How long a ping may go unanswered, in time the user half could run, before it is
    /// declared hung (default 250 ms). Time its threads spent waiting for a CPU (a busy
    /// machine) is granted on top, up to 16 × this in all: a stopped or deadlocked user
    /// half is caught after this, a starved one is not killed for the machine's load.
    pub heartbeat_timeout: Duration,
    /// A user-half hold of a `ComboLock` longer than this is taken away by the next
    /// kernel locker and the user half is killed; `Duration::ZERO` turns the limit off.
    /// Default 5 ms: a kernel-half locker (maybe the critical path) never waits longer
    /// behind a user half. Process-wide: applied by [`Supervisor::start`] through
    /// [`crate::sync::combolock::set_user_hold_limit`].
    pub user_hold_limit: Duration,
    /// Keep a **warm standby**: a second user-half process, started and sandboxed ahead of
    /// need, waiting (it touches nothing shared) to be activated. A death is then answered
    /// by activating it (well under a millisecond instead of a process start, several), and
    /// a new standby is started once the new user half is re-attached. A standby's own
    /// death is not a user-half death: it is logged and replaced (not before the next
    /// restart if it lived less than `stable_uptime`); if activating it fails, the restart
    /// falls back to a cold start. Default true: its cost is one idle process per driver,
    /// and every path (activation, a dead standby, a failed activation) ends in a working
    /// user half, so nothing depends on it; set false for the cold path only.
    pub warm_standby: bool,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            component: ComponentConfig::default(),
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_secs(1),
            stable_uptime: Duration::from_millis(200),
            max_restarts: 20,
            restart_window: Duration::from_secs(10),
            revive_backoff_initial: Duration::from_secs(1),
            revive_backoff_max: Duration::from_secs(60),
            heartbeat: Duration::from_millis(250),
            heartbeat_timeout: Duration::from_millis(250),
            user_hold_limit: Duration::from_millis(5),
            warm_standby: true,
        }
    }
}

/// What the driver runs after each restart, on the supervisor's thread, with the channel
/// up: it rebuilds the new user half's state from the kernel half's authoritative copies.
pub type ReattachHook = Box<dyn Fn(&KernelEndpoint) + Send + Sync>;
/// What runs after each death, before the restart (e.g. reclaiming combolocks).
pub type DeathHook = Box<dyn Fn() + Send + Sync>;

/// Counters for a status view.
#[derive(Debug, Clone, Default)]
pub struct SupervisorStatus {
    /// The running user half's pid (None while down or degraded).
    pub pid: Option<u32>,
    /// How long it has been up.
    pub uptime: Duration,
    /// Restarts so far.
    pub restarts: u64,
    /// Hangs detected (and killed).
    pub hangs: u64,
    /// Heartbeat pings sent again because the user half's threads had waited for a CPU
    /// while the last one went unanswered (a busy machine, not a hang).
    pub starved_pings: u64,
    /// True while degraded: the restart-rate limit was exceeded and no user half runs
    /// until the next revival attempt (or [`Supervisor::revive`]).
    pub degraded: bool,
    /// While degraded: how long until the next revival attempt.
    pub next_attempt: Option<Duration>,
    /// Times the driver went degraded.
    pub degradations: u64,
    /// Times a degraded driver got a user half again.
    pub revivals: u64,
    /// The last restart's time from death to the new user half answering.
    pub last_recovery: Option<Duration>,
    /// Why the last user half died (exit status, signal, the system call of a seccomp
    /// violation, a hang).
    pub last_death: Option<DeathCause>,
    /// The warm standby's pid (None: none, or `warm_standby` is off).
    pub standby_pid: Option<u32>,
}

struct Shared {
    config: SupervisorConfig,
    channel: Arc<Channel>,
    current: Mutex<Option<UserHalf>>,
    /// The warm standby, if one is kept and running.
    standby: Mutex<Option<UserHalf>>,
    /// The running user half's pid (0: none), readable without the lock above.
    current_pid: std::sync::atomic::AtomicU32,
    /// Signals the running user half (None: none), without the lock above (which is held
    /// while a dying user half is reaped): the stuck-holder hook kills through it. Never
    /// by the pid, which another process may have been given once the user half was
    /// reaped.
    current_signal: Mutex<Option<Signaller>>,
    /// The pid of the user half whose re-attach hooks have completed (0: none yet).
    ready_pid: std::sync::atomic::AtomicU32,
    restarts: AtomicU64,
    hangs: AtomicU64,
    starved_pings: AtomicU64,
    last_recovery: Mutex<Option<Duration>>,
    last_death: Mutex<Option<DeathCause>>,
    /// The pid the stuck-holder hook killed last (0: none).
    lock_killed: std::sync::atomic::AtomicU32,
    /// While degraded: when the next revival attempt is due.
    next_attempt: Mutex<Option<Instant>>,
    /// An operator asked for a revival now ([`Supervisor::revive`]).
    revive_now: AtomicBool,
    degradations: AtomicU64,
    revivals: AtomicU64,
    reattach: Mutex<Vec<ReattachHook>>,
    on_death: Mutex<Vec<DeathHook>>,
    stop: AtomicBool,
}

/// Keeps a user half running. Dropping it stops supervision and the user half.
pub struct Supervisor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    deaths: Sender<u32>,
}

impl Supervisor {
    /// Creates the channel, starts the first user half and the supervising thread.
    pub fn start(
        config: SupervisorConfig,
        tracker: Arc<ObjectTracker>,
    ) -> Result<Supervisor, ComponentError> {
        crate::sync::combolock::set_user_hold_limit(config.user_hold_limit);
        let channel = Channel::new(&config.component, tracker)?;
        let (deaths, death_rx) = crossbeam_channel::unbounded();
        let first = UserHalf::start(&channel, &config.component, Some(deaths.clone()))?;
        let first_pid = first.pid();
        let first_signal = first.signaller();
        let shared = Arc::new(Shared {
            config,
            channel,
            current: Mutex::new(Some(first)),
            standby: Mutex::new(None),
            current_pid: std::sync::atomic::AtomicU32::new(first_pid),
            current_signal: Mutex::new(Some(first_signal)),
            ready_pid: std::sync::atomic::AtomicU32::new(first_pid),
            restarts: AtomicU64::new(0),
            hangs: AtomicU64::new(0),
            starved_pings: AtomicU64::new(0),
            last_recovery: Mutex::new(None),
            last_death: Mutex::new(None),
            lock_killed: std::sync::atomic::AtomicU32::new(0),
            next_attempt: Mutex::new(None),
            revive_now: AtomicBool::new(false),
            degradations: AtomicU64::new(0),
            revivals: AtomicU64::new(0),
            reattach: Mutex::new(Vec::new()),
            on_death: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        // A user half that holds a combolock past its limit is killed (the lock is
        // reclaimed by the locker that found it stuck, and again after the death). The hook
        // runs on a kernel-half locker, maybe the critical path: it only sends a signal.
        let weak = Arc::downgrade(&shared);
        crate::sync::combolock::set_stuck_holder_hook(Arc::new(move || {
            if let Some(shared) = weak.upgrade() {
                let pid = shared.current_pid.load(Ordering::SeqCst);
                let signal = shared.current_signal.lock().clone();
                if let (Some(signal), true) = (signal, pid != 0) {
                    shared.lock_killed.store(pid, Ordering::SeqCst);
                    tracing::warn!("user half {pid} held a combolock past its limit: killing it");
                    // ESRCH: it died meanwhile (and was reaped): nothing left to kill.
                    let _ = signal.send(rustix::process::Signal::KILL);
                }
            }
        }));
        replenish_standby(&shared, &deaths);
        let thread = {
            let shared = Arc::clone(&shared);
            let deaths = deaths.clone();
            std::thread::Builder::new()
                .name("uhalf-supervisor".into())
                .spawn(move || supervise(&shared, &death_rx, &deaths))
                .map_err(|source| ComponentError::Os {
                    what: "spawning the supervisor thread",
                    source,
                })?
        };
        Ok(Supervisor {
            shared,
            thread: Some(thread),
            deaths,
        })
    }

    /// The kernel endpoint (stable across restarts): install it with
    /// [`crate::lrpc::install_kernel`].
    pub fn endpoint(&self) -> &Arc<KernelEndpoint> {
        self.shared.channel.endpoint()
    }

    /// Adds a hook run after every restart.
    pub fn on_reattach(&self, hook: ReattachHook) {
        self.shared.reattach.lock().push(hook);
    }

    /// Adds a hook run after every death, before the restart.
    pub fn on_death(&self, hook: DeathHook) {
        self.shared.on_death.lock().push(hook);
    }

    /// The running user half's pid.
    pub fn pid(&self) -> Option<u32> {
        self.shared.current.lock().as_ref().map(UserHalf::pid)
    }

    /// Stops the running user half (SIGSTOP), as a hang would: the heartbeat finds it
    /// hung and the supervisor restarts it. For fault injection and tests; signals the
    /// process itself, never a pid that another process may have been given since.
    /// Returns its pid, or None if no user half runs (or it died meanwhile).
    pub fn stop_user_half(&self) -> Option<u32> {
        stop(self.shared.current.lock().as_ref())
    }

    /// Stops the warm standby (SIGSTOP), as a standby that hangs would be: at the next
    /// death it does not say hello and a fresh user half is started instead (see
    /// [`UserHalf::activate`]). For fault injection and tests. Returns its pid, or None if
    /// there is no standby right now (`warm_standby` off, or it is being replaced).
    pub fn stop_standby(&self) -> Option<u32> {
        stop(self.shared.standby.lock().as_ref())
    }

    /// Kills the running user half (as a crash would); the supervisor restarts it.
    pub fn kill_user_half(&self) {
        if let Some(half) = self.shared.current.lock().as_mut() {
            half.kill();
        }
    }

    /// Revives a degraded driver now: the supervisor starts a user half at once instead of
    /// at the next attempt (with a fresh restart budget). Returns false (and does nothing)
    /// if the driver is not degraded. The revival itself is asynchronous: wait for it with
    /// [`Supervisor::wait_restarted`].
    pub fn revive(&self) -> bool {
        if !self.endpoint().is_degraded() || self.shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        self.shared.revive_now.store(true, Ordering::SeqCst);
        // Any notice wakes the supervisor; while degraded it reads the flag.
        let _ = self.deaths.send(REVIVE_NOTICE);
        true
    }

    /// Waits until a user half other than `old_pid` has been re-attached (its hooks ran)
    /// and answers a ping, or `timeout` passes.
    pub fn wait_restarted(&self, old_pid: Option<u32>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let pid = self.pid();
            let ready = self.shared.ready_pid.load(Ordering::SeqCst);
            if pid.is_some()
                && pid != old_pid
                && pid == Some(ready)
                && ping(self.endpoint(), Duration::from_millis(100)).is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        false
    }

    /// Counters.
    pub fn status(&self) -> SupervisorStatus {
        let degraded = self.endpoint().is_degraded();
        let current = self.shared.current.lock();
        SupervisorStatus {
            pid: current.as_ref().map(UserHalf::pid),
            uptime: current.as_ref().map_or(Duration::ZERO, UserHalf::uptime),
            restarts: self.shared.restarts.load(Ordering::SeqCst),
            hangs: self.shared.hangs.load(Ordering::SeqCst),
            starved_pings: self.shared.starved_pings.load(Ordering::SeqCst),
            degraded,
            next_attempt: self
                .shared
                .next_attempt
                .lock()
                .filter(|_| degraded)
                .map(|at| at.saturating_duration_since(Instant::now())),
            degradations: self.shared.degradations.load(Ordering::SeqCst),
            revivals: self.shared.revivals.load(Ordering::SeqCst),
            last_recovery: *self.shared.last_recovery.lock(),
            last_death: self.shared.last_death.lock().clone(),
            standby_pid: self.shared.standby.lock().as_ref().map(UserHalf::pid),
        }
    }

    /// Stops supervising and shuts the user half down.
    pub fn shutdown(mut self) {
        self.stop_thread();
        if let Some(half) = self.shared.current.lock().take() {
            half.shutdown(Duration::from_millis(500));
        }
    }

    fn stop_thread(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.deaths.send(0);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Nobody re-attaches a user half any more: callers at the gate fail as PeerDied.
        self.shared.channel.endpoint().open_gate();
        if let Some(mut standby) = self.shared.standby.lock().take() {
            standby.kill();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_thread();
        if let Some(mut half) = self.shared.current.lock().take() {
            half.kill();
        }
    }
}

/// The death notice [`Supervisor::revive`] sends to wake the supervisor (no pid is this).
const REVIVE_NOTICE: u32 = u32::MAX - 1;

/// How long after a restart the next warm standby is started.
const STANDBY_DELAY: Duration = Duration::from_millis(20);

fn supervise(shared: &Shared, deaths: &Receiver<u32>, death_tx: &Sender<u32>) {
    let config = &shared.config;
    // The restarts within the window, each as the time user halves had run when it
    // happened (`ran`): the window is measured in the user halves' running time, not in
    // wall time (see `SupervisorConfig::restart_window`).
    let mut recent: VecDeque<Duration> = VecDeque::new();
    let mut ran = Duration::ZERO;
    let mut backoff = Duration::ZERO;
    // The wait before the last revival attempt (zero: none since the driver was last
    // stable for a whole restart window).
    let mut revive_backoff = Duration::ZERO;
    let mut last_ping = Instant::now();
    // When to start the next warm standby (after a restart: not at once, so that its
    // start-up does not compete for the CPUs with the new user half's first calls).
    let mut standby_due: Option<Instant> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let endpoint = shared.channel.endpoint();
        let attempt_due = *shared.next_attempt.lock();
        let wait = match attempt_due {
            // Degraded: no heartbeat, no standby; nothing to do until the next attempt (or
            // a revive's notice).
            Some(due) => due.saturating_duration_since(Instant::now()),
            None => {
                let mut wait = config.heartbeat.saturating_sub(last_ping.elapsed());
                if let Some(due) = standby_due {
                    wait = wait.min(due.saturating_duration_since(Instant::now()));
                }
                wait
            }
        };
        let wait = wait.max(Duration::from_millis(1));
        let notice = deaths.recv_timeout(wait);
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        // Degraded: no user half, no standby; the one thing to do is the next attempt.
        if let Some(due) = attempt_due {
            if notice == Err(RecvTimeoutError::Disconnected) {
                return;
            }
            let operator = shared.revive_now.swap(false, Ordering::SeqCst);
            if !operator && Instant::now() < due {
                continue;
            }
            if operator {
                // An operator's revival starts with a fresh restart budget.
                recent.clear();
            }
            let why = if operator {
                "an operator asked (revive)"
            } else {
                "its backoff elapsed"
            };
            tracing::warn!("degraded driver: trying a user half again ({why})");
            if !endpoint.close_gate(Duration::from_secs(1)) {
                tracing::warn!("calls to the degraded driver did not end within 1 s");
            }
            *shared.next_attempt.lock() = None;
            endpoint.clear_degraded();
            let attempt = Instant::now();
            match start_next(shared, death_tx, None) {
                Ok(half) => {
                    let pid = half.pid();
                    recent.push_back(ran);
                    reattach(shared, endpoint, half);
                    shared.revivals.fetch_add(1, Ordering::SeqCst);
                    mark_ready(shared);
                    let took = attempt.elapsed();
                    *shared.last_recovery.lock() = Some(took);
                    tracing::info!(
                        pid,
                        recovery_us = took.as_micros() as u64,
                        "degraded driver revived: user half pid {pid} answers ({why}; took {took:.1?})"
                    );
                    last_ping = Instant::now();
                    standby_due = Some(Instant::now() + STANDBY_DELAY);
                }
                Err(e) => {
                    let why = format!("reviving the user half failed ({e})");
                    degrade(shared, endpoint, &mut revive_backoff, &why);
                    standby_due = None;
                }
            }
            continue;
        }
        match notice {
            Ok(pid) => {
                // A standby's death is not the user half's: replace it, unless it died
                // young (then not before the next restart: no spawn loop).
                let dead_standby = {
                    let mut standby = shared.standby.lock();
                    if standby.as_ref().is_some_and(|s| s.pid() == pid) {
                        standby.take()
                    } else {
                        None
                    }
                };
                if let Some(mut dead) = dead_standby {
                    dead.kill();
                    let why = dead.death_cause().unwrap_or(DeathCause::Unknown);
                    tracing::warn!(pid, cause = %why, "the standby user half {pid} died: {why}");
                    if dead.uptime() >= config.stable_uptime {
                        replenish_standby(shared, death_tx);
                    }
                    continue;
                }
                // A stale notice (from an older process, or a revival asked for when the
                // driver was not degraded any more) is ignored; with no process at all (a
                // failed restart) any notice means "try again".
                let current_pid = shared.current.lock().as_ref().map(UserHalf::pid);
                if current_pid.is_some_and(|current| current != pid) {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if standby_due.is_some_and(|due| Instant::now() >= due) {
                    standby_due = None;
                    replenish_standby(shared, death_tx);
                }
                // Heartbeat (and an immediate check after any timed-out call).
                if endpoint.is_degraded() || endpoint.is_peer_dead() {
                    continue;
                }
                let due = last_ping.elapsed() >= config.heartbeat || endpoint.take_timed_out();
                if due {
                    last_ping = Instant::now();
                    let pid = shared.current_pid.load(Ordering::SeqCst);
                    let pid = (pid != 0).then_some(pid);
                    match heartbeat::beat(endpoint, pid, config.heartbeat_timeout) {
                        Beat::Answered { resent } => {
                            if resent > 0 {
                                shared
                                    .starved_pings
                                    .fetch_add(u64::from(resent), Ordering::SeqCst);
                                // Its own timed-out pings are no cue for another check.
                                endpoint.take_timed_out();
                                tracing::info!(
                                    resent,
                                    "user half answered a ping after waiting for a CPU"
                                );
                            }
                        }
                        Beat::Died => {}
                        Beat::Hung { waited, starved } => {
                            shared.hangs.fetch_add(1, Ordering::SeqCst);
                            tracing::warn!(
                                waited_ms = waited.as_millis() as u64,
                                starved_ms = starved.as_millis() as u64,
                                "user half does not answer a ping ({waited:.1?}, of which it \
                                 waited {starved:.1?} for a CPU): killing it"
                            );
                            if let Some(half) = shared.current.lock().as_mut() {
                                half.note_death_cause(DeathCause::Hung);
                                half.kill();
                            }
                            // kill() reaps it; its watcher reports the death.
                        }
                    }
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }

        // The user half died. Until every re-attach hook of its successor has returned, no
        // caller may reach a user half: close the gate before the channel is reset.
        // (Calls that passed it earlier are failing as PeerDied: wait until they left.)
        if !endpoint.close_gate(Duration::from_secs(1)) {
            tracing::warn!("calls to the dead user half did not end within 1 s");
        }
        // Its combolock holds are void (the kernel copies stay as they were before it
        // locked them).
        let died_at = Instant::now();
        set_current(shared, None);
        // No process (its start failed) counts as dying at once: back off before retrying.
        // A dead one is only sent SIGKILL here (every thread of it is marked for death
        // when that returns, so its successor may have the area): it is reaped, and its
        // death logged, once the successor answers, off the recovery path (the kernel
        // frees a process's memory before its pidfd reports the exit: a few hundred µs).
        let mut lived = Duration::ZERO;
        let mut dying = None;
        if let Some(mut old) = shared.current.lock().take() {
            lived = old.uptime();
            if shared.lock_killed.swap(0, Ordering::SeqCst) == old.pid() {
                old.note_death_cause(DeathCause::HeldComboLock);
            }
            old.signal_kill();
            dying = Some(old);
        }
        crate::sync::combolock::reclaim_user_holds();
        for hook in shared.on_death.lock().iter() {
            hook();
        }
        // Up for a whole window: whatever crash loop there was is over.
        if lived >= config.restart_window {
            revive_backoff = Duration::ZERO;
        }
        ran += lived;
        while recent
            .front()
            .is_some_and(|t| ran.saturating_sub(*t) > config.restart_window)
        {
            recent.pop_front();
        }
        if recent.len() >= config.max_restarts {
            reap(shared, dying.take(), lived);
            let why = format!(
                "user half crashed {} times within {:?} of running time",
                recent.len() + 1,
                config.restart_window
            );
            degrade(shared, endpoint, &mut revive_backoff, &why);
            // No standby while degraded (a due one would wake this loop every millisecond).
            standby_due = None;
            continue;
        }
        backoff = if lived < config.stable_uptime {
            (backoff.saturating_mul(2))
                .max(config.backoff_initial)
                .min(config.backoff_max)
        } else {
            Duration::ZERO
        };
        if !backoff.is_zero() {
            std::thread::sleep(backoff);
        }
        match start_next(shared, death_tx, Some(died_at)) {
            Ok(half) => {
                recent.push_back(ran);
                let pid = half.pid();
                reattach(shared, endpoint, half);
                let recovery = died_at.elapsed();
                let cause = reap(shared, dying.take(), lived);
                *shared.last_recovery.lock() = Some(recovery);
                match &cause {
                    Some((old, why)) => tracing::info!(
                        pid,
                        old_pid = old,
                        recovery_us = recovery.as_micros() as u64,
                        "user half restarted as pid {pid} (pid {old} {why}); recovered in {recovery:.1?}"
                    ),
                    None => tracing::info!(
                        pid,
                        recovery_us = recovery.as_micros() as u64,
                        "user half started as pid {pid} after a failed restart; recovered in {recovery:.1?}"
                    ),
                }
                // Counted, and visible to `wait_restarted`, only once re-attached (and the
                // death it recovered from recorded).
                shared.restarts.fetch_add(1, Ordering::SeqCst);
                mark_ready(shared);
                last_ping = Instant::now();
                // Recovered: prepare for the next death, shortly.
                standby_due = Some(Instant::now() + STANDBY_DELAY);
            }
            Err(e) => {
                reap(shared, dying.take(), lived);
                tracing::error!("restarting the user half failed: {e}");
                recent.push_back(ran);
                // Try again after the backoff: feed ourselves a death notice for "no process".
                let _ = death_tx.send(u32::MAX);
            }
        }
    }
}

/// Reaps a dead user half (already sent SIGKILL), records and logs why it died. Returns
/// its pid and the cause.
fn reap(shared: &Shared, dying: Option<UserHalf>, lived: Duration) -> Option<(u32, DeathCause)> {
    let mut old = dying?;
    old.kill();
    let why = old.death_cause().unwrap_or(DeathCause::Unknown);
    tracing::error!(
        pid = old.pid(),
        uptime_ms = lived.as_millis() as u64,
        cause = %why,
        "user half {} died after {lived:.1?}: {why}",
        old.pid()
    );
    *shared.last_death.lock() = Some(why.clone());
    Some((old.pid(), why))
}

/// Starts the next user half: the warm standby if there is one (a failed activation falls
/// back to a cold start). `died_at` is None for a revival (no standby is kept while
/// degraded).
fn start_next(
    shared: &Shared,
    death_tx: &Sender<u32>,
    died_at: Option<Instant>,
) -> Result<UserHalf, ComponentError> {
    let config = &shared.config;
    let standby = died_at.and_then(|_| shared.standby.lock().take());
    let started = match standby.map(|s| s.activate(&config.component, config.heartbeat_timeout)) {
        Some(Ok(half)) => Ok(half),
        Some(Err(e)) => {
            tracing::warn!("activating the standby user half failed ({e}): starting one");
            UserHalf::start(&shared.channel, &config.component, Some(death_tx.clone()))
        }
        None => UserHalf::start(&shared.channel, &config.component, Some(death_tx.clone())),
    };
    if started.is_err() {
        *shared.current.lock() = None;
    }
    started
}

/// Makes `half` the user half, runs the re-attach hooks with the gate closed to everyone
/// else, then opens it. The caller marks it ready ([`mark_ready`]) once it has recorded
/// the recovery.
fn reattach(shared: &Shared, endpoint: &KernelEndpoint, half: UserHalf) {
    set_current(shared, Some(&half));
    *shared.current.lock() = Some(half);
    // The hooks' own upcalls pass the closed gate; everyone else's wait for it.
    KernelEndpoint::pass_gate(|| {
        for hook in shared.reattach.lock().iter() {
            hook(endpoint);
        }
    });
    endpoint.open_gate();
}

/// Stops `half` (SIGSTOP through its pidfd); its pid, or None if there is none or it is
/// gone.
fn stop(half: Option<&UserHalf>) -> Option<u32> {
    let half = half?;
    half.signaller()
        .send(rustix::process::Signal::STOP)
        .ok()
        .map(|()| half.pid())
}

/// Publishes the running user half's pid and signaller (None: none runs) to readers that
/// do not take the `current` lock.
fn set_current(shared: &Shared, half: Option<&UserHalf>) {
    shared
        .current_pid
        .store(half.map_or(0, UserHalf::pid), Ordering::SeqCst);
    *shared.current_signal.lock() = half.map(UserHalf::signaller);
}

/// Marks the current user half ready (for [`Supervisor::wait_restarted`]).
fn mark_ready(shared: &Shared) {
    shared
        .ready_pid
        .store(shared.current_pid.load(Ordering::SeqCst), Ordering::SeqCst);
}

/// Past the restart-rate limit (or a failed revival): no user half until the next attempt,
/// which comes after twice the last wait (at least `revive_backoff_initial`, at most
/// `revive_backoff_max`). Calls fail at once with `CallError::Degraded` meanwhile; the
/// critical path is unaffected.
fn degrade(shared: &Shared, endpoint: &KernelEndpoint, revive_backoff: &mut Duration, why: &str) {
    let config = &shared.config;
    *revive_backoff = revive_backoff
        .saturating_mul(2)
        .max(config.revive_backoff_initial)
        .min(config.revive_backoff_max);
    // Counted and scheduled first: whoever sees the driver degraded sees these too.
    *shared.next_attempt.lock() = Some(Instant::now() + *revive_backoff);
    shared.degradations.fetch_add(1, Ordering::SeqCst);
    // A revival asked for before this degradation does not skip its backoff.
    shared.revive_now.store(false, Ordering::SeqCst);
    if let Some(mut standby) = shared.standby.lock().take() {
        standby.kill();
    }
    *shared.current.lock() = None;
    set_current(shared, None);
    endpoint.mark_degraded();
    endpoint.open_gate();
    tracing::error!(
        next_attempt_ms = revive_backoff.as_millis() as u64,
        "{why}: driver degraded (no user half); next attempt in {:.1?}",
        *revive_backoff
    );
}

/// Starts a warm standby if the configuration asks for one and none is running.
fn replenish_standby(shared: &Shared, death_tx: &Sender<u32>) {
    if !shared.config.warm_standby || shared.stop.load(Ordering::SeqCst) {
        return;
    }
    let mut standby = shared.standby.lock();
    if standby.is_some() {
        return;
    }
    match UserHalf::spawn_standby(
        &shared.channel,
        &shared.config.component,
        Some(death_tx.clone()),
    ) {
        Ok(half) => *standby = Some(half),
        Err(e) => tracing::warn!("starting a standby user half failed: {e}"),
    }
}
