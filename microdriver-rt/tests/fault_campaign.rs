//! The fault-injection campaign: a kernel half doing critical-path work continuously while
//! upcalls (with nested downcalls) flow, and faults injected at random points: SIGKILL of
//! the user half, SIGSTOP (a hang), a panic inside an upcall, a user half that writes
//! random bytes into the channel, replies carrying forged pointers (never registered,
//! freed, out of range, wrong type), a user half that takes the critical path's
//! combolock and never lets go, one that takes it again and again (each hold within the
//! limit), and kills timed so that calls from several threads hit the restart and
//! re-attach window (none may reach a user half whose re-attach hook has not run). After
//! each fault the kernel half's state is checked
//! against an independent model, and the critical path's progress is measured throughout.
//!
//! `cargo test -p microdriver-rt --test fault_campaign` runs the CI-sized default (300+
//! faults); `... -- --long` runs 10,000; `--faults N` any number; `--seed S` repeats a run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use microdriver_rt::component::{run_user_half_if_requested, Supervisor, SupervisorConfig};
use microdriver_rt::lrpc::__private::{inventory, Entry, Served};
use microdriver_rt::lrpc::{install_kernel, ping, user_endpoint, CallError, KernelEndpoint};
use microdriver_rt::marshal::{Decoder, Encoder, Marshal, MarshalError, TrackedPtr};
use microdriver_rt::tracker::{ObjectInfo, ObjectTracker, TypeTag};

use microdriver_rt::sync::ComboLock;
use microdriver_rt::{critical, upcall};
use support::Rng;

// ---------------------------------------------------------------------------------------
// The driver under test: configuration the user half edits, counters the critical path
// bumps.

#[derive(Debug, Clone, PartialEq, Eq, Default, Marshal)]
struct Config {
    version: u64,
    values: Vec<u32>,
    names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
enum CampaignError {
    Rejected(String),
    Cross(String),
}

impl From<CallError> for CampaignError {
    fn from(e: CallError) -> Self {
        CampaignError::Cross(e.to_string())
    }
}

/// Kernel-half statistics the critical path updates and the user half reads by downcall.
static CRITICAL_COUNT: AtomicU64 = AtomicU64::new(0);
/// The fault being injected (its index in `FAULTS`), for stall reports.
static CURRENT_FAULT: AtomicU64 = AtomicU64::new(u64::MAX);

#[critical]
fn read_counter() -> u64 {
    CRITICAL_COUNT.load(Ordering::SeqCst)
}

/// A configuration change, made in the user half: bumps the version, appends `value`, and
/// reads the kernel half's counter by nested downcall.
#[upcall]
fn apply(config: &mut Config, value: u32) -> Result<u64, CampaignError> {
    if value == u32::MAX {
        return Err(CampaignError::Rejected("reserved value".into()));
    }
    let counter = read_counter();
    config.version += 1;
    config.values.push(value);
    if config.values.len() > 32 {
        config.values.remove(0);
    }
    config.names = vec![format!("v{}", config.version)];
    Ok(counter)
}

/// A panic inside an upcall.
#[upcall]
fn panic_now(tag: u32) -> Result<(), CampaignError> {
    panic!("injected panic {tag}");
}

/// A user half that scribbles random bytes over the channel (slot words and data).
#[upcall]
fn scribble(seed: u64) -> Result<(), CampaignError> {
    let endpoint = user_endpoint().ok_or(CampaignError::Rejected("not in the user half".into()))?;
    endpoint.scribble_channel(seed);
    Ok(())
}

/// The critical path's state, behind a combolock the user half can lock too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
struct CriticalState {
    steps: u64,
}

/// A user half that takes the critical path's lock and never gives it back.
#[upcall]
fn hold_forever(lock: &ComboLock<CriticalState>) -> Result<(), CampaignError> {
    let guard = lock
        .lock()
        .map_err(|e| CampaignError::Rejected(e.to_string()))?;
    let _ = guard.steps;
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A user half that takes the critical path's lock `times` times back to back, holding it
/// about a millisecond each time (within the limit): the critical path must not wait for
/// the series, only for the hold in progress.
#[upcall]
fn hold_repeatedly(lock: &ComboLock<CriticalState>, times: u32) -> Result<u32, CampaignError> {
    let mut held = 0;
    for _ in 0..times {
        let guard = lock
            .lock()
            .map_err(|e| CampaignError::Rejected(e.to_string()))?;
        std::thread::sleep(Duration::from_micros(800));
        guard
            .unlock()
            .map_err(|e| CampaignError::Rejected(e.to_string()))?;
        held += 1;
    }
    Ok(held)
}

/// User-half state that only the re-attach hook's probe sets (a driver's probed device).
static PROBED: AtomicBool = AtomicBool::new(false);

/// What a driver's re-attach hook does: rebuild the user half's state.
#[upcall]
fn probe() -> Result<(), CampaignError> {
    PROBED.store(true, Ordering::SeqCst);
    Ok(())
}

/// An operation that needs the probed state: fails as a driver would ("not probed") when
/// it reaches a user half whose re-attach hook has not run yet.
#[upcall]
fn probed_op() -> Result<(), CampaignError> {
    if PROBED.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(CampaignError::Rejected("device was not probed".into()))
    }
}

/// A kernel-half object the forged replies aim at.
#[derive(Debug, Default, Marshal)]
struct Obj {
    value: u64,
}

const FORGE: &str = "campaign::forge";

/// Replies with a forged tracked pointer: `kind` picks never registered, near null,
/// interior, wrong type or a (freed) address the kernel half passed in.
fn forge_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let (kind, kernel_addr) = <(u8, u64)>::decode(&mut dec)?;
    dec.finish()?;
    let (sender, type_id, claimed) = match kind % 5 {
        0 => (0x1234_5000, TypeTag::of::<Obj>().id(), 0x7fff_dead_0000),
        1 => (0x1234_6000, TypeTag::of::<Obj>().id(), 64),
        2 => (0x1234_7000, TypeTag::of::<Obj>().id(), kernel_addr + 4),
        3 => (0x1234_8000, TypeTag::of::<u32>().id(), kernel_addr),
        _ => (0x1234_9000, TypeTag::of::<Obj>().id(), kernel_addr),
    };
    enc.put_u8(2);
    enc.put_u64(sender);
    enc.put_u64(type_id);
    enc.put_u64(claimed);
    Obj { value: 666 }.encode(enc)
}

inventory::submit! {
    Entry { name: FORGE, signature: "fn((u8, u64)) -> TrackedPtr<Obj>", served: Served::ByUser, handler: forge_handler }
}

fn forge(
    endpoint: &KernelEndpoint,
    kind: u8,
    kernel_addr: u64,
) -> Result<TrackedPtr<Obj>, CallError> {
    endpoint.call(
        Entry::id_of(FORGE),
        FORGE,
        &mut (),
        |_, enc| (kind, kernel_addr).encode(enc),
        |_, dec| TrackedPtr::<Obj>::decode(dec),
    )
}

// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    Hang,
    Panic,
    Garbage,
    Forged,
    HoldForever,
    HoldRepeatedly,
    KillDuringCalls,
}

const FAULTS: [Fault; 8] = [
    Fault::Kill,
    Fault::Hang,
    Fault::Panic,
    Fault::Garbage,
    Fault::Forged,
    Fault::HoldForever,
    Fault::HoldRepeatedly,
    Fault::KillDuringCalls,
];

/// Kills the user half while `threads` kernel-half threads keep calling `probed_op`, and
/// waits for the restart; returns how many calls reached a user half that had not been
/// re-probed (must be 0) and how many calls were made.
fn kill_during_calls(supervisor: &Supervisor, threads: usize) -> (u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let unprobed = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, unprobed, calls) = (stop.clone(), unprobed.clone(), calls.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    calls.fetch_add(1, Ordering::SeqCst);
                    match probed_op() {
                        Ok(()) => {}
                        Err(CampaignError::Rejected(_)) => {
                            unprobed.fetch_add(1, Ordering::SeqCst);
                        }
                        // Down or restarting: try again without spinning on the error.
                        Err(CampaignError::Cross(_)) => std::thread::yield_now(),
                    }
                }
            })
        })
        .collect();
    // Let every caller get going before the kill.
    let started = calls.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while calls.load(Ordering::SeqCst) < started + 4 * threads as u64 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let old = supervisor.pid();
    supervisor.kill_user_half();
    let restarted = supervisor.wait_restarted(old, Duration::from_secs(10));
    // Calls go on a little past the re-attach, then stop.
    let after = calls.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while calls.load(Ordering::SeqCst) < after + 4 * threads as u64 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::SeqCst);
    for caller in callers {
        caller.join().expect("caller thread");
    }
    assert!(restarted, "the user half did not come back after a kill");
    (
        unprobed.load(Ordering::SeqCst),
        calls.load(Ordering::SeqCst),
    )
}

struct Options {
    faults: usize,
    seed: u64,
}

fn options() -> Options {
    let number = |flag: &str| support::flag_value(flag).and_then(|v| v.parse::<u64>().ok());
    let faults = if std::env::args().any(|a| a == "--long") {
        10_000
    } else {
        number("--faults").map_or(320, |n| n as usize)
    };
    let seed = support::seed_or_clock(number("--seed"));
    Options { faults, seed }
}

/// Time the calling thread has spent runnable but waiting for a CPU (the second field of
/// `/proc/thread-self/schedstat`, nanoseconds). An overloaded machine delays a thread this
/// way; a lock or a user half never does.
fn runqueue_wait() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// What the critical path saw.
#[derive(Default)]
struct Progress {
    steps: AtomicU64,
    /// Steps that took over 10 ms because the thread waited (a stall).
    stalls: AtomicU64,
    /// Steps that took over 10 ms only because the thread waited for a CPU (an overloaded
    /// machine, not the user half): reported, not counted as stalls.
    preempted: AtomicU64,
}

/// The critical path: bumps the counter under the kernel half's lock continuously and
/// records how long each step took; never touches the user half.
fn critical_path(
    stop: Arc<AtomicBool>,
    state: Arc<ComboLock<CriticalState>>,
    progress: Arc<Progress>,
) {
    while !stop.load(Ordering::SeqCst) {
        let queued_before = runqueue_wait();
        let started = Instant::now();
        match state.lock() {
            Ok(mut guard) => {
                guard.steps += 1;
                CRITICAL_COUNT.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => panic!("the kernel half's own lock failed: {e}"),
        }
        let took = started.elapsed();
        if took > Duration::from_millis(10) {
            // What the step spent blocked, not counting time spent waiting for a CPU.
            let blocked = took.saturating_sub(runqueue_wait().saturating_sub(queued_before));
            if blocked <= Duration::from_millis(10) {
                progress.preempted.fetch_add(1, Ordering::SeqCst);
            } else {
                progress.stalls.fetch_add(1, Ordering::SeqCst);
                eprintln!(
                    "critical-path stall: a step was blocked {blocked:?} (took {took:?}) during fault kind {}",
                    CURRENT_FAULT.load(Ordering::SeqCst)
                );
            }
        }
        progress.steps.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn wait_up(supervisor: &Supervisor) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ping(supervisor.endpoint(), Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

mod support;

fn main() {
    // The user half's injected panics are expected: keep them out of the log.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("injected panic") {
            default_hook(info);
        }
    }));
    run_user_half_if_requested();
    support::run_single(
        "fault_campaign",
        &["--long", "--faults=", "--seed="],
        campaign,
    );
}

fn campaign() {
    let options = options();
    println!(
        "fault campaign: {} faults, seed {}",
        options.faults, options.seed
    );
    let mut rng = Rng(options.seed | 1);

    let tracker = Arc::new(ObjectTracker::new());
    let supervisor = Supervisor::start(
        SupervisorConfig {
            heartbeat: Duration::from_millis(20),
            heartbeat_timeout: Duration::from_millis(100),
            max_restarts: usize::MAX,
            component: microdriver_rt::component::ComponentConfig {
                options: microdriver_rt::lrpc::CallOptions {
                    timeout: Duration::from_millis(500),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..SupervisorConfig::default()
        },
        tracker.clone(),
    )
    .expect("start the user half");
    install_kernel(supervisor.endpoint().clone());
    let endpoint = supervisor.endpoint().clone();
    // Like a driver: the first user half is probed once, every new one by the hook.
    supervisor.on_reattach(Box::new(|_| {
        if let Err(e) = probe() {
            eprintln!("re-attach probe failed: {e:?}");
        }
    }));
    probe().expect("probe the first user half");

    let stop = Arc::new(AtomicBool::new(false));
    let state = Arc::new(ComboLock::new(CriticalState::default()));
    // A user half may hold the critical path's lock for at most 2 ms.
    ComboLock::<()>::set_user_hold_limit(Duration::from_millis(2));
    let progress = Arc::new(Progress::default());
    let critical = {
        let (stop, state, progress) = (stop.clone(), state.clone(), progress.clone());
        std::thread::spawn(move || critical_path(stop, state, progress))
    };

    // The kernel half's authoritative configuration and the model of what it must hold.
    let mut config = Config::default();
    let mut model = Config::default();
    let target = TrackedPtr::new(Obj { value: 7 });
    tracker
        .register(target.as_ptr() as usize, ObjectInfo::of::<Obj>())
        .expect("register the target");

    let mut injected = 0usize;
    let mut survived = 0usize;
    let mut divergences = 0usize;
    let mut counts = [0usize; FAULTS.len()];
    let mut reattach_calls = 0u64;
    let mut min_progress = u64::MAX;
    let mut idle_windows = 0usize;
    for i in 0..options.faults {
        let fault = rng.pick(&FAULTS);
        let kind = FAULTS.iter().position(|f| *f == fault).unwrap_or(0);
        counts[kind] += 1;
        CURRENT_FAULT.store(kind as u64, Ordering::SeqCst);
        let before_steps = progress.steps.load(Ordering::SeqCst);
        let fault_started = Instant::now();
        injected += 1;
        match fault {
            Fault::Kill => {
                if let Some(pid) = supervisor.pid() {
                    // SAFETY: kill(2) on our own child.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
            Fault::Hang => {
                if let Some(pid) = supervisor.pid() {
                    // SAFETY: kill(2) on our own child.
                    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
                }
            }
            Fault::Panic => {
                let result = panic_now(i as u32);
                assert!(result.is_err(), "a panicking upcall reported success");
            }
            Fault::Garbage => {
                let _ = scribble(rng.next());
            }
            Fault::HoldForever => {
                let result = hold_forever(&state);
                assert!(result.is_err(), "a user half holding forever returned");
            }
            Fault::HoldRepeatedly => {
                // Within the limit, so the holds are honoured; a fault only in how often.
                let held = hold_repeatedly(&state, 20);
                if held != Ok(20) {
                    // A hold the scheduler stretched past the 2 ms limit: the user half
                    // was killed for it, as it should be.
                    eprintln!(
                        "fault {i}: the repeated holds ended early (a hold outlived the limit?): {held:?}"
                    );
                }
            }
            Fault::KillDuringCalls => {
                let (unprobed, calls) = kill_during_calls(&supervisor, 4);
                reattach_calls += calls;
                if unprobed > 0 {
                    divergences += 1;
                    eprintln!(
                        "fault {i}: {unprobed} of {calls} calls reached a user half before its re-attach hook ran"
                    );
                }
            }
            Fault::Forged => {
                let kind = rng.below(5) as u8;
                let addr = if kind == 4 {
                    // A kernel object freed before the reply names it.
                    let doomed = TrackedPtr::new(Obj::default());
                    let addr = doomed.as_ptr() as u64;
                    tracker
                        .register(addr as usize, ObjectInfo::of::<Obj>())
                        .expect("register");
                    // SAFETY: freed once, never used again.
                    unsafe { doomed.free(Some(&tracker)) };
                    addr
                } else {
                    target.as_ptr() as u64
                };
                let result = forge(&endpoint, kind, addr);
                assert!(
                    result.is_err(),
                    "forged pointer kind {kind} accepted: {result:?}"
                );
            }
        }
        // Keep upcalls flowing while the fault plays out; each call either fails cleanly
        // (config unchanged) or succeeds (model updated the same way).
        let mut recovered = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let value = rng.below(1000) as u32;
            let before = config.clone();
            match apply(&mut config, value) {
                Ok(_) => {
                    model.version += 1;
                    model.values.push(value);
                    if model.values.len() > 32 {
                        model.values.remove(0);
                    }
                    model.names = vec![format!("v{}", model.version)];
                    recovered = true;
                    break;
                }
                Err(_) => {
                    if config != before {
                        divergences += 1;
                        config = before;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        if !recovered {
            recovered = wait_up(&supervisor);
        }
        if config != model {
            divergences += 1;
            eprintln!("fault {i} ({fault:?}): state diverged: {config:?} vs model {model:?}");
            config = model.clone();
        }
        // SAFETY: `target` is live (never freed until the end).
        if unsafe { target.get() }.map(|o| o.value) != Some(7) {
            divergences += 1;
            eprintln!("fault {i} ({fault:?}): a forged reply changed a kernel object");
        }
        if recovered {
            survived += 1;
        } else {
            eprintln!("fault {i} ({fault:?}): the user half did not come back");
        }
        // Progress during the fault, reported: a window without a step can also be the
        // scheduler on a loaded machine; blocking is what the stall count measures.
        let stepped = progress.steps.load(Ordering::SeqCst) - before_steps;
        if fault_started.elapsed() > Duration::from_millis(10) {
            min_progress = min_progress.min(stepped);
            if stepped == 0 {
                idle_windows += 1;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    critical.join().expect("critical path thread");
    let critical_total = state.lock().map(|g| g.steps).expect("final lock");
    assert_eq!(
        critical_total,
        CRITICAL_COUNT.load(Ordering::SeqCst),
        "critical-path counter diverged"
    );
    let status = supervisor.status();
    println!(
        "kinds: kill {} hang {} panic {} garbage {} forged {} combolock-held-forever {} combolock-held-repeatedly {} kill-during-calls {} ({reattach_calls} calls through the restarts); restarts {}, hangs detected {}, rejected frames {}, critical steps {}",
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        counts[5],
        counts[6],
        counts[7],
        status.restarts,
        status.hangs,
        endpoint.stats().rejected(),
        critical_total
    );
    let stall_count = progress.stalls.load(Ordering::SeqCst);
    println!(
        "critical path: fewest steps during a fault lasting over 10 ms: {} ({} such faults without a step); steps over 10 ms only because the thread waited for a CPU (not stalls): {}",
        if min_progress == u64::MAX { 0 } else { min_progress },
        idle_windows,
        progress.preempted.load(Ordering::SeqCst)
    );
    println!(
        "faults injected: {injected}, survived: {survived}, critical-path stalls over 10ms: {stall_count}, state divergences: {divergences}"
    );
    // SAFETY: freed once at the end.
    unsafe { target.free(Some(&tracker)) };
    supervisor.shutdown();
    assert!(
        survived == injected && stall_count == 0 && divergences == 0,
        "the campaign failed: see the summary line above"
    );
}
