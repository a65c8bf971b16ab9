//! Recovery time: from SIGKILL of the user half to a new user half answering upcalls.
//!
//! `cargo bench -p microdriver-rt --bench recovery` prints
//! `recovery_ms p50 = X p99 = Y` over 100 kills, 250 ms apart (goal: p99 under 20 ms), next to the cost
//! of a cold start of a user half measured in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use microdriver_rt::component::{
    run_user_half_if_requested, ComponentConfig, Supervisor, SupervisorConfig, UserHalf,
};
use microdriver_rt::lrpc::ping;
use microdriver_rt::tracker::ObjectTracker;

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    run_user_half_if_requested();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = 100;

    // Baseline in the same run: starting a user half from nothing (spawn + handshake).
    let mut cold = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let half = UserHalf::spawn(&ComponentConfig::default(), Arc::new(ObjectTracker::new()))
            .expect("spawn");
        ping(half.endpoint(), Duration::from_secs(1)).expect("ping");
        cold.push(started.elapsed());
        drop(half);
    }
    cold.sort();

    let supervisor = Supervisor::start(
        SupervisorConfig {
            max_restarts: rounds + 10,
            restart_window: Duration::from_secs(1),
            ..SupervisorConfig::default()
        },
        Arc::new(ObjectTracker::new()),
    )
    .expect("supervisor");
    let endpoint = supervisor.endpoint().clone();
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let pid = supervisor.pid().expect("running");
        ping(&endpoint, Duration::from_secs(1)).expect("up before the kill");
        let killed = Instant::now();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        loop {
            if supervisor.pid().is_some_and(|p| p != pid)
                && ping(&endpoint, Duration::from_millis(200)).is_ok()
            {
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
            assert!(killed.elapsed() < Duration::from_secs(10), "no recovery");
        }
        samples.push(killed.elapsed());
        // Let the new user half run past the supervisor's crash-loop threshold, so every
        // sample is the recovery from one crash, not from a crash loop (which backs off).
        std::thread::sleep(Duration::from_millis(250));
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "cold_start_ms p50 = {:.2} p99 = {:.2}",
        ms(percentile(&cold, 0.5)),
        ms(percentile(&cold, 0.99))
    );
    println!("restarts = {}", supervisor.status().restarts);
    println!(
        "recovery_ms p50 = {:.2} p99 = {:.2}",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99))
    );
    supervisor.shutdown();
}
