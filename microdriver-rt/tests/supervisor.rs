//! Supervision of a real user-half process: restart after a crash with re-attach, a hang
//! detected by the heartbeat, and a crash loop that ends degraded.

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

fn crash_loop_ends_degraded() {
    let supervisor = Supervisor::start(
        SupervisorConfig {
            max_restarts: 3,
            restart_window: Duration::from_secs(30),
            ..config()
        },
        Arc::new(ObjectTracker::new()),
    )
    .expect("start");
    let endpoint = supervisor.endpoint().clone();
    for _ in 0..3 {
        let before = supervisor.pid();
        let _ = crash(&endpoint);
        assert!(supervisor.wait_restarted(before, Duration::from_secs(5)));
    }
    let _ = crash(&endpoint);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !supervisor.status().degraded {
        assert!(Instant::now() < deadline, "never degraded");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(user_pid(&endpoint), Err(CallError::Degraded));
    assert_eq!(supervisor.status().pid, None);
    supervisor.shutdown();
}

mod support;

fn main() {
    run_user_half_if_requested();
    support::run_single("supervisor", &[], || {
        restart_after_crash_reattaches();
        hang_is_detected_and_restarted();
        crash_loop_ends_degraded();
    });
}
