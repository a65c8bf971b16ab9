//! Supervision of a real user-half process: restart after a crash with re-attach, a hang
//! detected by the heartbeat, and a crash loop that degrades the driver until the next
//! revival attempt or an operator's revive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use microdriver_rt::component::{
    run_user_half_if_requested, ComponentConfig, Supervisor, SupervisorConfig,
};
use microdriver_rt::lrpc::__private::{inventory, Entry, Served};
use microdriver_rt::lrpc::{CallError, KernelEndpoint};
use microdriver_rt::marshal::{Decoder, Encoder, Marshal, MarshalError};
use microdriver_rt::tracker::ObjectTracker;

fn pid_handler(dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    dec.finish()?;
    std::process::id().encode(enc)
}

fn crash_handler(dec: Decoder<'_>, _enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    dec.finish()?;
    std::process::abort();
}

inventory::submit! { Entry { name: "sup::pid", signature: "fn() -> u32", served: Served::ByUser, handler: pid_handler } }
inventory::submit! { Entry { name: "sup::crash", signature: "fn()", served: Served::ByUser, handler: crash_handler } }

/// For the given milliseconds, answers every upcall it can claim with a garbled reply (the call id of another call), as a user half with corrupted
/// state would: each such call comes back rejected, its slot clean.
fn scribble_handler(dec: Decoder<'_>, _enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    use microdriver_rt::__internal::slot::{state, Slot};
    use microdriver_rt::__internal::transport::Word;
    let mut dec = dec;
    let ms = u32::decode(&mut dec)?;
    dec.finish()?;
    let endpoint = microdriver_rt::lrpc::user_endpoint().expect("runs in the user half");
    let area = &**endpoint.transport();
    let upcall_slots = area.header(Word::UpcallSlots).load(Ordering::SeqCst) as usize;
    let end = Instant::now() + Duration::from_millis(u64::from(ms));
    while Instant::now() < end {
        for _ in 0..1000 {
            for index in 0..upcall_slots {
                if let Some(slot) = Slot::claim_request(area, index) {
                    let (call_id, entry, _) = slot.header();
                    slot.set_header(call_id ^ 1, entry, 0);
                    slot.transition_and_wake(state::SERVING, state::REPLY);
                }
            }
        }
    }
    Ok(())
}

inventory::submit! { Entry { name: "sup::scribble", signature: "fn(u32)", served: Served::ByUser, handler: scribble_handler } }

fn user_pid(endpoint: &KernelEndpoint) -> Result<u32, CallError> {
    endpoint.call(
        Entry::id_of("sup::pid"),
        "sup::pid",
        &mut (),
        |_, _| Ok(()),
        |_, dec| u32::decode(dec),
    )
}

fn crash(endpoint: &KernelEndpoint) -> Result<(), CallError> {
    endpoint.call(
        Entry::id_of("sup::crash"),
        "sup::crash",
        &mut (),
        |_, _| Ok(()),
        |_, _| Ok(()),
    )
}

fn config() -> SupervisorConfig {
    SupervisorConfig {
        heartbeat: Duration::from_millis(50),
        heartbeat_timeout: Duration::from_millis(100),
        ..SupervisorConfig::default()
    }
}

fn restart_after_crash_reattaches() {
    let supervisor = Supervisor::start(config(), Arc::new(ObjectTracker::new())).expect("start");
    let reattached = Arc::new(AtomicUsize::new(0));
    {
        let reattached = reattached.clone();
        supervisor.on_reattach(Box::new(move |endpoint| {
            // The hook runs with the new user half up: it can make upcalls.
            user_pid(endpoint).expect("upcall from the re-attach hook");
            reattached.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let endpoint = supervisor.endpoint().clone();
    let first = user_pid(&endpoint).expect("first user half");
    for round in 1..=3 {
        let before = supervisor.pid();
        let err = crash(&endpoint).expect_err("the user half crashed");
        assert!(matches!(err, CallError::PeerDied { .. }), "{err}");
        assert!(
            supervisor.wait_restarted(before, Duration::from_secs(5)),
            "round {round}: no restart"
        );
        let now = user_pid(&endpoint).expect("the restarted user half answers");
        assert_ne!(now, first);
        assert_eq!(supervisor.status().restarts, round);
    }
    assert_eq!(reattached.load(Ordering::SeqCst), 3);
    println!(
        "recovery after the last crash: {:?}",
        supervisor.status().last_recovery
    );
    supervisor.shutdown();
}

fn hang_is_detected_and_restarted() {
    let supervisor = Supervisor::start(config(), Arc::new(ObjectTracker::new())).expect("start");
    let endpoint = supervisor.endpoint().clone();
    let pid = user_pid(&endpoint).expect("up");
    let started = Instant::now();
    // As the daemons' fault injection does it: through the supervisor, which signals the
    // process itself (its pidfd), not a pid.
    assert_eq!(supervisor.stop_user_half(), Some(pid));
    assert!(
        supervisor.wait_restarted(Some(pid), Duration::from_secs(5)),
        "hang not detected"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(supervisor.status().hangs, 1);
    assert_ne!(user_pid(&endpoint).expect("new user half"), pid);
    supervisor.shutdown();
}

/// A stopped user half stays stopped until the supervisor deals with it, whatever is sent
/// to the kernel half's process group: the kernel's SIGCONT to a group that becomes
/// orphaned with a stopped member (the shell that started the driver in the background
/// exits), a terminal's `fg`, `kill -CONT -PGID`. In the kernel half's group, the user half
/// was continued behind the heartbeat's back: never noticed, the same pid ran on.
fn stopped_user_half_is_not_continued_by_the_process_group() {
    let supervisor = Supervisor::start(config(), Arc::new(ObjectTracker::new())).expect("start");
    let endpoint = supervisor.endpoint().clone();
    let pid = user_pid(&endpoint).expect("up");
    // SAFETY: getpgid(2) and getpgrp(2) read process attributes only.
    let (theirs, ours) = unsafe { (libc::getpgid(pid as i32), libc::getpgrp()) };
    assert_ne!(
        theirs, ours,
        "the user half {pid} is in the kernel half's process group {ours}"
    );
    let hangs = supervisor.status().hangs;
    let started = Instant::now();
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
    wait_stopped(pid);
    // SAFETY: killpg(2) of our own group with SIGCONT, which continues any stopped member
    // and is ignored by the others.
    assert_eq!(unsafe { libc::killpg(ours, libc::SIGCONT) }, 0);
    assert!(
        supervisor.wait_restarted(Some(pid), Duration::from_secs(5)),
        "the stopped user half {pid} was not noticed within 5 s (continued by the group's SIGCONT?)"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(supervisor.status().hangs, hangs + 1);
    supervisor.shutdown();
}

/// Waits until `pid` shows as stopped in /proc.
fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        // The state follows the parenthesised command name.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if state == Some('T') {
            return;
        }
        assert!(Instant::now() < deadline, "{pid} not stopped: {stat}");
        std::thread::yield_now();
    }
}

/// Puts thread `tid` (0: the caller) on CPU `cpu` alone, under scheduling `policy`.
fn schedule(tid: i32, cpu: usize, policy: libc::c_int, priority: libc::c_int) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set and CPU_SET writes inside it;
    // sched_setaffinity(2) and sched_setscheduler(2) read the set and the parameter, which
    // live across the calls, and change only that thread's scheduling.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let param = libc::sched_param {
            sched_priority: priority,
        };
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
            && libc::sched_setscheduler(tid, policy, &param) == 0
    };
    assert!(
        ok,
        "scheduling thread {tid} (policy {policy}) on CPU {cpu} (needs root): {}",
        std::io::Error::last_os_error()
    );
}

/// Every thread of `pid` on CPU `cpu` under SCHED_IDLE: it runs only when that CPU has
/// nothing else to do.
fn make_idle_on(pid: u32, cpu: usize) {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .flatten()
    {
        let tid: i32 = task.file_name().to_string_lossy().parse().expect("tid");
        schedule(tid, cpu, libc::SCHED_IDLE, 0);
    }
}

/// A user half that waits for a CPU is not hung: the supervisor grants its ping the time it
/// waited (up to 16 timeouts) instead of killing it for the machine's load. Its threads are
/// made SCHED_IDLE on one CPU and that CPU kept busy for several heartbeat timeouts; before
/// the heartbeat counted CPU waits, the first ping that fell in that window killed it.
fn starved_user_half_is_not_declared_hung() {
    let supervisor = Supervisor::start(config(), Arc::new(ObjectTracker::new())).expect("start");
    let endpoint = supervisor.endpoint().clone();
    let pid = user_pid(&endpoint).expect("up");
    make_idle_on(pid, 0);
    for episode in 1..=5 {
        // A busy thread on CPU 0 for 6 timeouts of 100 ms (well under the cap of 16).
        let busy_until = Instant::now() + Duration::from_millis(600);
        let hogs: Vec<_> = (0..1)
            .map(|_| {
                std::thread::spawn(move || {
                    // Real-time on CPU 0: it preempts every normal thread there (and spins
                    // for well under the kernel's real-time budget of 950 ms a second).
                    schedule(0, 0, libc::SCHED_FIFO, 1);
                    while Instant::now() < busy_until {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        for hog in hogs {
            hog.join().expect("hog");
        }
        user_pid(&endpoint).expect("the user half answers once the CPU is free");
        let s = supervisor.status();
        assert_eq!(
            (s.hangs, s.pid),
            (0, Some(pid)),
            "episode {episode}: a user half that only waited for a CPU was killed as hung: {s:?}"
        );
        if s.starved_pings > 0 {
            println!(
                "starved pings sent again: {} (episode {episode})",
                s.starved_pings
            );
            supervisor.shutdown();
            return;
        }
    }
    panic!("no ping was starved in 5 episodes: the test did not starve the user half");
}

/// Crashes the user half until the driver degrades (it may take one crash, or
/// `max_restarts + 1`), restarting in between; returns the crashes it took.
fn crash_until_degraded(supervisor: &Supervisor, endpoint: &KernelEndpoint, most: usize) -> usize {
    for n in 1..=most {
        let before = supervisor.status().restarts;
        let _ = crash(endpoint);
        // Either a new user half is re-attached (counted once re-attached) or the driver
        // degraded.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = supervisor.status();
            if s.degraded {
                return n;
            }
            if s.restarts > before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "crash {n}: neither restarted nor degraded"
            );
            std::thread::yield_now();
        }
    }
    panic!("not degraded after {most} crashes");
}

/// How often the supervisor's thread has gone to sleep and woken (its voluntary context
/// switches, from /proc).
fn supervisor_wakeups() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // A thread name shows truncated to 15 bytes.
        if "uhalf-supervisor".starts_with(comm.trim()) && !comm.trim().is_empty() {
            let status = std::fs::read_to_string(task.path().join("status")).expect("status");
            return status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("voluntary_ctxt_switches");
        }
    }
    panic!("no uhalf-supervisor thread");
}

/// A crash loop degrades the driver, but not for ever: the supervisor tries again after
/// its backoff (doubled when the revived user half crash-loops straight back), and an
/// operator's `revive` brings it back at once with a fresh restart budget.
fn crash_loop_degrades_then_recovers() {
    let supervisor = Supervisor::start(
        SupervisorConfig {
            max_restarts: 3,
            restart_window: Duration::from_secs(30),
            revive_backoff_initial: Duration::from_millis(500),
            revive_backoff_max: Duration::from_secs(4),
            ..config()
        },
        Arc::new(ObjectTracker::new()),
    )
    .expect("start");
    let endpoint = supervisor.endpoint().clone();
    assert_eq!(crash_until_degraded(&supervisor, &endpoint, 10), 4);
    let s = supervisor.status();
    assert_eq!((s.pid, s.degradations), (None, 1));
    assert_eq!(user_pid(&endpoint), Err(CallError::Degraded));
    let next = s
        .next_attempt
        .expect("a degraded driver says when it tries again");
    assert!(
        next <= Duration::from_millis(500),
        "next attempt in {next:?}"
    );

    // The automatic attempt, after the backoff.
    let degraded_at = Instant::now();
    assert!(
        supervisor.wait_restarted(None, Duration::from_secs(5)),
        "still degraded 5 s after a 500 ms backoff: degraded for good"
    );
    assert!(degraded_at.elapsed() < Duration::from_secs(2));
    user_pid(&endpoint).expect("the revived user half answers");
    let s = supervisor.status();
    assert!(!s.degraded && s.next_attempt.is_none(), "{s:?}");
    assert_eq!(s.revivals, 1);
    assert!(!supervisor.revive(), "revive is refused when not degraded");

    // Straight back into the loop (the window still holds the crashes): degraded again
    // after one crash, with twice the backoff.
    assert_eq!(crash_until_degraded(&supervisor, &endpoint, 10), 1);
    let s = supervisor.status();
    assert_eq!(s.degradations, 2);
    let next = s.next_attempt.expect("next attempt");
    assert!(
        next > Duration::from_millis(500) && next <= Duration::from_secs(1),
        "the second backoff doubles: {next:?}"
    );

    // Degraded, the supervisor sleeps until its attempt: no heartbeat, no polling.
    let before = supervisor_wakeups();
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(300) {
        std::thread::yield_now();
    }
    let woke = supervisor_wakeups() - before;
    assert!(
        woke < 10,
        "a degraded supervisor woke {woke} times in 300 ms with its next attempt {next:?} away"
    );

    // The operator does not wait for it.
    let asked = Instant::now();
    assert!(supervisor.revive());
    assert!(supervisor.wait_restarted(None, Duration::from_secs(5)));
    let took = asked.elapsed();
    user_pid(&endpoint).expect("revived by the operator");
    let s = supervisor.status();
    assert_eq!(s.revivals, 2);
    assert!(
        took < next,
        "revive took {took:?}, the automatic attempt was due in {next:?}"
    );
    // With a fresh budget: the next crash is restarted, not degraded.
    let before = supervisor.pid();
    let _ = crash(&endpoint);
    assert!(supervisor.wait_restarted(before, Duration::from_secs(5)));
    assert!(!supervisor.status().degraded);
    supervisor.shutdown();
}

/// A ping the user half answered with garbage (its slot scribbled over while in flight) is
/// an answer, not a hang: the user half runs, and the garbage is rejected as for any call.
/// The heartbeat declared such a user half hung and killed it, so a user half that
/// scribbled its channel once died later for the heartbeat ping that happened to be in
/// flight (in the e1000d chaos campaign, under the next round's configuration reads).
fn garbled_ping_reply_is_not_a_hang() {
    // A ping every 10 ms: thirty of them during the storm, each garbled (one worker: the
    // storm's, so every request is its to claim).
    let component = ComponentConfig {
        workers: 1,
        ..ComponentConfig::default()
    };
    let supervisor = Supervisor::start(
        SupervisorConfig {
            component,
            heartbeat: Duration::from_millis(10),
            ..config()
        },
        Arc::new(ObjectTracker::new()),
    )
    .expect("start");
    let endpoint = supervisor.endpoint().clone();
    let pid = user_pid(&endpoint).expect("up");
    let ping_id = Entry::id_of(microdriver_rt::lrpc::PING);
    let ping_errors = || {
        endpoint
            .stats()
            .entries()
            .get(&ping_id)
            .map_or(0, |c| c.errors)
    };
    let failed_before = ping_errors();
    // The call itself may come back rejected (its own slot is scribbled too) before the
    // storm ends.
    const STORM: Duration = Duration::from_millis(300);
    let started = Instant::now();
    let _ = endpoint.call(
        Entry::id_of("sup::scribble"),
        "sup::scribble",
        &mut (),
        |_, enc| (STORM.as_millis() as u32).encode(enc),
        |_, _| Ok(()),
    );
    // The storm lasts its time (the user half's clock and ours agree); the heartbeat's
    // pings failed meanwhile are those it garbled.
    while started.elapsed() <= STORM {
        std::thread::park_timeout(STORM.saturating_sub(started.elapsed()));
    }
    let failed_in_storm = ping_errors();
    loop {
        if microdriver_rt::lrpc::ping(&endpoint, Duration::from_secs(1)).is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no clean ping after the storm"
        );
        std::thread::yield_now();
    }
    let s = supervisor.status();
    assert!(
        failed_in_storm > failed_before,
        "no ping failed during the storm: the test did not test anything"
    );
    assert_eq!(
        (s.hangs, s.pid),
        (0, Some(pid)),
        "a user half that answered pings with garbage was killed as hung: {s:?}"
    );
    assert_eq!(user_pid(&endpoint), Ok(pid));
    supervisor.shutdown();
}

/// A crash loop is declared however long the young-death backoff makes it: the backoff
/// (1 ms doubling to 1 s per young death) is the supervisor's own pacing, and time spent
/// waiting it out does not age restarts out of `restart_window`. Counted in wall time, the
/// backoff spread 13 young deaths over more than 2 s, so a budget of 12 restarts in 1 s was
/// never exceeded: a user half killed as soon as it came back was restarted once a second
/// for ever, never degraded.
fn crash_loop_is_declared_despite_the_backoff() {
    let supervisor = Supervisor::start(
        SupervisorConfig {
            max_restarts: 12,
            restart_window: Duration::from_secs(1),
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_secs(1),
            // Every death in this test is young.
            stable_uptime: Duration::from_secs(30),
            revive_backoff_initial: Duration::from_millis(200),
            revive_backoff_max: Duration::from_millis(200),
            ..config()
        },
        Arc::new(ObjectTracker::new()),
    )
    .expect("start");
    let endpoint = supervisor.endpoint().clone();
    assert_eq!(crash_until_degraded(&supervisor, &endpoint, 13), 13);
    let s = supervisor.status();
    assert_eq!((s.pid, s.degradations, s.restarts), (None, 1, 12), "{s:?}");
    // Degraded is not forever: the next attempt comes after the revival backoff.
    assert!(
        supervisor.wait_restarted(None, Duration::from_secs(5)),
        "still degraded 5 s after a 200 ms revival backoff"
    );
    user_pid(&endpoint).expect("the revived user half answers");
    supervisor.shutdown();
}

/// A warm standby's time waiting is not time it ran: its uptime starts when it is
/// activated. Counted from its launch, a standby that waited longer than `stable_uptime`
/// and then died at once was not a young death (no backoff, and a crash loop of such deaths
/// looked stable), and `status` showed an uptime the user half never had.
/// The warm standby's pid, once it is up (it is started with the supervisor).
fn wait_standby(supervisor: &Supervisor) -> u32 {
    loop {
        if let Some(pid) = supervisor.status().standby_pid {
            return pid;
        }
        std::thread::yield_now();
    }
}

fn activated_standby_uptime_starts_at_activation() {
    let supervisor = Supervisor::start(config(), Arc::new(ObjectTracker::new())).expect("start");
    let endpoint = supervisor.endpoint().clone();
    // The standby is started with the supervisor; let it wait a while (its age is what
    // the test is about, not a synchronisation).
    let standby = wait_standby(&supervisor);
    const AGE: Duration = Duration::from_millis(300);
    let waited_from = Instant::now();
    while waited_from.elapsed() < AGE {
        std::thread::park_timeout(AGE.saturating_sub(waited_from.elapsed()));
    }
    let before = supervisor.pid();
    let crashed = Instant::now();
    let _ = crash(&endpoint);
    assert!(supervisor.wait_restarted(before, Duration::from_secs(5)));
    let s = supervisor.status();
    assert_eq!(s.pid, Some(standby), "the standby was activated: {s:?}");
    assert!(
        s.uptime <= crashed.elapsed(),
        "the activated standby shows an uptime of {:?}, {:?} after the crash",
        s.uptime,
        crashed.elapsed()
    );
    supervisor.shutdown();
}

/// A standby that hangs (stopped here, as an operator's `kill -STOP` on its group or a
/// deadlock in its start-up would leave it) must not hold recovery hostage: found at the
/// next death, it does not say hello within a heartbeat timeout of time it could run, and
/// a fresh user half is started instead. Before, the supervisor waited for its hello for
/// the whole handshake timeout (10 s) with the gate closed: every upcall of the driver
/// stalled meanwhile (a chaos campaign's daemon froze for that long).
fn hung_standby_does_not_stall_recovery() {
    let supervisor = Supervisor::start(config(), Arc::new(ObjectTracker::new())).expect("start");
    let endpoint = supervisor.endpoint().clone();
    let standby = wait_standby(&supervisor);
    // SAFETY: kill(2) on our own child (the standby, not reaped: the supervisor holds it).
    assert_eq!(unsafe { libc::kill(standby as i32, libc::SIGSTOP) }, 0);
    wait_stopped(standby);
    let before = supervisor.pid();
    let crashed = Instant::now();
    let _ = crash(&endpoint);
    let back = supervisor.wait_restarted(before, Duration::from_secs(15));
    let took = crashed.elapsed();
    let s = supervisor.status();
    supervisor.shutdown();
    assert!(
        back,
        "no user half answered within 15 s of the crash: {s:?}"
    );
    assert_ne!(
        s.pid,
        Some(standby),
        "the stopped standby cannot answer: {s:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "recovery took {took:?} with a stopped standby (a fresh start takes well under a second)"
    );
}

mod support;

fn main() {
    run_user_half_if_requested();
    // Each its own test (filter by name), one at a time.
    support::run_tests(vec![
        (
            "restart_after_crash_reattaches",
            restart_after_crash_reattaches,
        ),
        (
            "hang_is_detected_and_restarted",
            hang_is_detected_and_restarted,
        ),
        (
            "stopped_user_half_is_not_continued_by_the_process_group",
            stopped_user_half_is_not_continued_by_the_process_group,
        ),
        (
            "starved_user_half_is_not_declared_hung",
            starved_user_half_is_not_declared_hung,
        ),
        (
            "crash_loop_degrades_then_recovers",
            crash_loop_degrades_then_recovers,
        ),
        (
            "garbled_ping_reply_is_not_a_hang",
            garbled_ping_reply_is_not_a_hang,
        ),
        (
            "crash_loop_is_declared_despite_the_backoff",
            crash_loop_is_declared_despite_the_backoff,
        ),
        (
            "activated_standby_uptime_starts_at_activation",
            activated_standby_uptime_starts_at_activation,
        ),
        (
            "hung_standby_does_not_stall_recovery",
            hung_standby_does_not_stall_recovery,
        ),
    ]);
}
