//! The supervisor's contract with every driver (issue 14), against real user-half
//! processes: no upcall reaches a restarted user half before its re-attach hooks have
//! returned; a user half cannot stall a kernel-half combolock locker past the default hold
//! limit; a death is logged with its cause (a seccomp violation names the system call);
//! the user half's `tracing` events reach the kernel half's subscriber.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use microdriver_rt::component::{
    run_user_half_if_requested, DeathCause, Supervisor, SupervisorConfig,
};
use microdriver_rt::lrpc::__private::{inventory, Entry, Served};
use microdriver_rt::lrpc::{CallError, KernelEndpoint};
use microdriver_rt::marshal::{Decoder, Encoder, Marshal, MarshalError};
use microdriver_rt::sync::ComboLock;
use microdriver_rt::tracker::ObjectTracker;

// ---------------------------------------------------------------------------------------
// User-half entries.

/// The user half's driver state: set by `probe`, which the re-attach hook calls.
static PROBED: AtomicBool = AtomicBool::new(false);

fn probe_handler(dec: Decoder<'_>, _enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    dec.finish()?;
    PROBED.store(true, Ordering::SeqCst);
    Ok(())
}

/// Answers whether the user half had been probed when it served this call.
fn work_handler(dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    dec.finish()?;
    PROBED.load(Ordering::SeqCst).encode(enc)
}

/// Locks the kernel half's combolock, holds it for `hold_ms`, unlocks.
fn hold_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let lock = ComboLock::<u64>::decode(&mut dec)?;
    let hold_ms = u64::decode(&mut dec)?;
    dec.finish()?;
    let error = |e: &dyn std::fmt::Display| MarshalError::BadHeader {
        reason: e.to_string(),
    };
    let mut guard = lock.lock().map_err(|e| error(&e))?;
    std::thread::sleep(Duration::from_millis(hold_ms));
    *guard += 1;
    guard.unlock().map_err(|e| error(&e))?;
    ().encode(enc)
}

/// Opens a file: outside the sandbox's allow-list.
fn open_file_handler(dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    dec.finish()?;
    let opened = std::fs::File::open("/etc/hostname").is_ok();
    opened.encode(enc)
}

/// Logs a warning with a field, returns its pid.
fn warn_handler(dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    dec.finish()?;
    tracing::warn!(answer = 42, "x from the user half");
    std::process::id().encode(enc)
}

inventory::submit! { Entry { name: "contract::open_file", signature: "fn() -> bool", served: Served::ByUser, handler: open_file_handler } }
inventory::submit! { Entry { name: "contract::warn", signature: "fn() -> u32", served: Served::ByUser, handler: warn_handler } }
inventory::submit! { Entry { name: "contract::probe", signature: "fn()", served: Served::ByUser, handler: probe_handler } }
inventory::submit! { Entry { name: "contract::work", signature: "fn() -> bool", served: Served::ByUser, handler: work_handler } }
inventory::submit! { Entry { name: "contract::hold", signature: "fn(&ComboLock<u64>, u64)", served: Served::ByUser, handler: hold_handler } }

/// A supervisor whose user halves are probed as a driver's would be: the first by hand
/// (no hook runs on it), every restarted one by the re-attach hook.
fn probed_supervisor(config: SupervisorConfig) -> (Supervisor, Arc<KernelEndpoint>) {
    let supervisor = Supervisor::start(config, Arc::new(ObjectTracker::new())).expect("start");
    supervisor.on_reattach(Box::new(|endpoint| {
        call_unit(endpoint, "contract::probe").expect("probe from the re-attach hook");
    }));
    let endpoint = supervisor.endpoint().clone();
    call_unit(&endpoint, "contract::probe").expect("first probe");
    (supervisor, endpoint)
}

fn call_unit(endpoint: &KernelEndpoint, name: &'static str) -> Result<(), CallError> {
    endpoint.call(
        Entry::id_of(name),
        name,
        &mut (),
        |_, _| Ok(()),
        |_, _| Ok(()),
    )
}

fn work(endpoint: &KernelEndpoint, timeout: Duration) -> Result<bool, CallError> {
    endpoint.call_with_timeout(
        Entry::id_of("contract::work"),
        "contract::work",
        timeout,
        &mut (),
        |_, _| Ok(()),
        |_, dec| bool::decode(dec),
    )
}

// ---------------------------------------------------------------------------------------
// Tests.

/// 8 kernel-half threads call `work` in a loop while the user half is killed 100 times;
/// the re-attach hook probes each new user half. No call may be served by a user half
/// that was not probed yet.
fn no_upcall_before_reattach() {
    let (supervisor, endpoint) = probed_supervisor(SupervisorConfig {
        // Every kill is a crash right after a restart: no backoff, no degradation.
        stable_uptime: Duration::ZERO,
        max_restarts: 1_000,
        heartbeat: Duration::from_millis(500),
        heartbeat_timeout: Duration::from_millis(500),
        ..SupervisorConfig::default()
    });

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let unprobed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (endpoint, stop) = (endpoint.clone(), stop.clone());
            let (served, unprobed, failed) = (served.clone(), unprobed.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match work(&endpoint, Duration::from_secs(2)) {
                        Ok(true) => served.fetch_add(1, Ordering::SeqCst),
                        Ok(false) => unprobed.fetch_add(1, Ordering::SeqCst),
                        Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                    };
                }
            })
        })
        .collect();
    for round in 1..=100 {
        let before = supervisor.pid();
        supervisor.kill_user_half();
        assert!(
            supervisor.wait_restarted(before, Duration::from_secs(10)),
            "round {round}: no restart"
        );
    }
    stop.store(true, Ordering::SeqCst);
    for caller in callers {
        caller.join().expect("caller thread");
    }
    let (served, unprobed, failed) = (
        served.load(Ordering::SeqCst),
        unprobed.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
    );
    println!("calls served {served}, served before re-attach {unprobed}, failed {failed}");
    assert_eq!(supervisor.status().restarts, 100);
    assert_eq!(
        unprobed,
        0,
        "{unprobed} of {} calls reached a user half before its re-attach hooks finished",
        served + unprobed
    );
    supervisor.shutdown();
}

/// A caller that meets the closed gate (re-attach hooks still running) waits at most its
/// timeout and then fails with the distinct `Restarting`; once the hooks return, calls go
/// through again.
fn caller_at_closed_gate_gets_restarting() {
    let supervisor = Supervisor::start(
        SupervisorConfig {
            stable_uptime: Duration::ZERO,
            ..SupervisorConfig::default()
        },
        Arc::new(ObjectTracker::new()),
    )
    .expect("start");
    let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let entered_tx = std::sync::Mutex::new(entered_tx);
    supervisor.on_reattach(Box::new(move |endpoint| {
        call_unit(endpoint, "contract::probe").expect("probe from the re-attach hook");
        let _ = entered_tx.lock().expect("hook lock").send(());
        let _ = release_rx.lock().expect("hook lock").recv();
    }));
    let endpoint = supervisor.endpoint().clone();
    let before = supervisor.pid();
    supervisor.kill_user_half();
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the re-attach hook ran");
    let started = Instant::now();
    let err = work(&endpoint, Duration::from_millis(50)).expect_err("gate closed");
    assert!(
        matches!(err, CallError::Restarting(_)),
        "expected Restarting, got {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    println!("at the closed gate: {err}");
    release.send(()).expect("release the hook");
    assert!(supervisor.wait_restarted(before, Duration::from_secs(10)));
    assert_eq!(work(&endpoint, Duration::from_secs(2)), Ok(true));
    supervisor.shutdown();
}

/// With a default supervisor, a user half that holds a combolock for 300 ms stalls a
/// kernel-half locker for no longer than the default hold limit and a little slack.
fn default_hold_limit_bounds_a_user_hold() {
    let supervisor = Supervisor::start(SupervisorConfig::default(), Arc::new(ObjectTracker::new()))
        .expect("start");
    let endpoint = supervisor.endpoint().clone();
    let lock = Arc::new(ComboLock::new(0u64));
    let holder = {
        let (endpoint, lock) = (endpoint.clone(), lock.clone());
        std::thread::spawn(move || {
            endpoint.call(
                Entry::id_of("contract::hold"),
                "contract::hold",
                &mut (),
                |_, enc| {
                    (*lock).encode(enc)?;
                    300u64.encode(enc)
                },
                |_, _| Ok(()),
            )
        })
    };
    // Wait for the event: the user half holds the lock.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lock.is_user_held() {
        assert!(
            Instant::now() < deadline,
            "the user half never took the lock"
        );
        std::thread::yield_now();
    }
    let started = Instant::now();
    let guard = lock.lock().expect("kernel locker");
    let waited = started.elapsed();
    drop(guard);
    let _ = holder.join().expect("holder thread");
    println!("kernel locker waited {waited:?} behind a 300 ms user hold");
    assert!(
        waited < Duration::from_millis(60),
        "a kernel locker waited {waited:?} behind a user hold (default limit: 5 ms)"
    );
    supervisor.shutdown();
}

/// A user half that opens a file dies of its sandbox; the supervisor says so, naming the
/// system call, in its log and its status, and restarts it.
fn seccomp_death_names_the_syscall() {
    let supervisor = Supervisor::start(SupervisorConfig::default(), Arc::new(ObjectTracker::new()))
        .expect("start");
    let endpoint = supervisor.endpoint().clone();
    let before = supervisor.pid();
    let err = endpoint
        .call(
            Entry::id_of("contract::open_file"),
            "contract::open_file",
            &mut (),
            |_, _| Ok(()),
            |_, dec| bool::decode(dec),
        )
        .expect_err("the sandbox stops an open");
    assert!(matches!(err, CallError::PeerDied { .. }), "{err}");
    assert!(supervisor.wait_restarted(before, Duration::from_secs(10)));
    let death = supervisor.status().last_death.expect("a death recorded");
    assert!(
        matches!(death, DeathCause::Seccomp { syscall: Some(_) }),
        "{death:?}"
    );
    assert_eq!(death.syscall_name(), Some("openat"), "{death}");
    println!("status: {death}");
    let old = before.expect("a first pid");
    let logged = capture::wait_for(|e| {
        e.level == tracing::Level::ERROR
            && e.text.contains("openat")
            && e.text.contains(&format!("pid={old}"))
    });
    println!("logged: {}", logged.text);
    let restarted = capture::wait_for(|e| {
        e.level == tracing::Level::INFO && e.text.contains(&format!("old_pid={old}"))
    });
    println!("logged: {}", restarted.text);
    supervisor.shutdown();
}

/// `tracing::warn!` in an upcall reaches the kernel half's subscriber, with the pid.
fn user_half_events_reach_the_kernel_half() {
    let supervisor = Supervisor::start(SupervisorConfig::default(), Arc::new(ObjectTracker::new()))
        .expect("start");
    let endpoint = supervisor.endpoint().clone();
    let pid: u32 = endpoint
        .call(
            Entry::id_of("contract::warn"),
            "contract::warn",
            &mut (),
            |_, _| Ok(()),
            |_, dec| u32::decode(dec),
        )
        .expect("warn upcall");
    let event = capture::wait_for(|e| {
        e.level == tracing::Level::WARN
            && e.text.contains("x from the user half")
            && e.text.contains(&format!("pid={pid}"))
    });
    assert!(event.text.contains("answer=42"), "{}", event.text);
    assert_eq!(event.target, "microdriver::uhalf");
    println!("forwarded: {}", event.text);
    supervisor.shutdown();
}

/// Waits (at most 10 s) for a standby other than `not`.
fn wait_standby(supervisor: &Supervisor, not: Option<u32>) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = supervisor.status().standby_pid.filter(|p| Some(*p) != not) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no standby user half");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A crash is answered by the warm standby (the new user half is the standby's process);
/// then a new standby is started. The standby's own death is no user-half death: no
/// restart, the user half keeps answering, and it is replaced. Stopping the supervisor
/// ends the standby too.
fn warm_standby_takes_over_and_is_replaced() {
    let (supervisor, endpoint) = probed_supervisor(SupervisorConfig {
        stable_uptime: Duration::ZERO,
        ..SupervisorConfig::default()
    });
    let standby = wait_standby(&supervisor, None);
    let before = supervisor.pid();
    assert_ne!(before, Some(standby));
    supervisor.kill_user_half();
    assert!(supervisor.wait_restarted(before, Duration::from_secs(10)));
    assert_eq!(supervisor.pid(), Some(standby), "the standby took over");
    assert_eq!(work(&endpoint, Duration::from_secs(2)), Ok(true));
    let next = wait_standby(&supervisor, Some(standby));

    // The standby dies: nothing happens to the user half.
    let restarts = supervisor.status().restarts;
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(next as i32, libc::SIGKILL) }, 0);
    let replaced = wait_standby(&supervisor, Some(next));
    assert_eq!(supervisor.status().restarts, restarts);
    assert_eq!(supervisor.pid(), Some(standby));
    assert_eq!(work(&endpoint, Duration::from_secs(2)), Ok(true));
    supervisor.shutdown();
    // Reaped by the shutdown: no such process any more.
    // SAFETY: kill(2) with signal 0 only checks the pid.
    let alive = unsafe { libc::kill(replaced as i32, 0) } == 0;
    assert!(!alive, "standby left running");
    println!("standby {standby} took over; {next} died and was replaced by {replaced}");
}

/// A test subscriber that keeps every event.
mod capture {
    use std::fmt::Write as _;
    use std::sync::{Condvar, Mutex};
    use std::time::{Duration, Instant};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    #[derive(Debug, Clone)]
    pub struct Captured {
        pub level: tracing::Level,
        pub target: String,
        /// The message, then ` name=value` per field.
        pub text: String,
    }

    static EVENTS: Mutex<Vec<Captured>> = Mutex::new(Vec::new());
    /// Notified on every event captured.
    static LOGGED: Condvar = Condvar::new();

    struct Keep;

    struct Text(String);

    impl Visit for Text {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, "{value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                self.0.push_str(value);
            } else {
                let _ = write!(self.0, " {}={value}", field.name());
            }
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Keep {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut text = Text(String::new());
            event.record(&mut text);
            EVENTS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Captured {
                    level: *event.metadata().level(),
                    target: event.metadata().target().to_string(),
                    text: text.0,
                });
            LOGGED.notify_all();
        }
    }

    pub fn install() {
        tracing_subscriber::registry().with(Keep).init();
    }

    /// Waits (at most 10 s) for an event that `matches`.
    pub fn wait_for(matches: impl Fn(&Captured) -> bool) -> Captured {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = EVENTS.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(found) = events.iter().find(|e| matches(e)) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no such event was logged");
            events = LOGGED
                .wait_timeout(events, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

mod support;

fn main() {
    run_user_half_if_requested();
    capture::install();
    support::run_tests(vec![
        (
            "seccomp_death_names_the_syscall",
            seccomp_death_names_the_syscall,
        ),
        (
            "user_half_events_reach_the_kernel_half",
            user_half_events_reach_the_kernel_half,
        ),
        ("no_upcall_before_reattach", no_upcall_before_reattach),
        (
            "caller_at_closed_gate_gets_restarting",
            caller_at_closed_gate_gets_restarting,
        ),
        (
            "warm_standby_takes_over_and_is_replaced",
            warm_standby_takes_over_and_is_replaced,
        ),
        (
            "default_hold_limit_bounds_a_user_hold",
            default_hold_limit_bounds_a_user_hold,
        ),
    ]);
}
