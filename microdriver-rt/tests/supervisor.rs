//! Supervision of a real user-half process: restart after a crash with re-attach, a hang
//! detected by the heartbeat, and a crash loop that degrades the driver until the next
//! revival attempt or an operator's revive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use microdriver_rt::component::{run_user_half_if_requested, Supervisor, SupervisorConfig};
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
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
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

mod support;

fn main() {
    run_user_half_if_requested();
    support::run_single("supervisor", &[], || {
        restart_after_crash_reattaches();
        hang_is_detected_and_restarted();
        stopped_user_half_is_not_continued_by_the_process_group();
        starved_user_half_is_not_declared_hung();
        crash_loop_degrades_then_recovers();
    });
}
