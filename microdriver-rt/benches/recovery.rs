//! Recovery time: from SIGKILL of the user half to a new user half answering upcalls,
//! through the warm standby and through a cold start, interleaved in one run.
//!
//! `cargo bench -p microdriver-rt --bench recovery` prints
//! `recovery_ms p50 = X p99 = Y` (warm standby: goal p99 <= 1.0) and
//! `cold_recovery_ms p50 = X p99 = Y` (a fresh process started after the death) over 100
//! kills each. Two supervisors run side by side, one with `warm_standby` and one without;
//! each round kills one and then the other (alternating which goes first) and then lets
//! both run past the crash-loop threshold, so every sample is the recovery from one crash,
//! not from a crash loop (which backs off), and the standby is ready again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use microdriver_rt::component::{run_user_half_if_requested, Supervisor, SupervisorConfig};
use microdriver_rt::lrpc::ping;
use microdriver_rt::tracker::ObjectTracker;

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn supervisor(warm_standby: bool, rounds: usize) -> Supervisor {
    Supervisor::start(
        SupervisorConfig {
            max_restarts: rounds + 10,
            restart_window: Duration::from_secs(1),
            warm_standby,
            ..SupervisorConfig::default()
        },
        Arc::new(ObjectTracker::new()),
    )
    .expect("supervisor")
}

/// Kills the user half and returns the time until a new one answers a ping.
fn kill_and_recover(supervisor: &Supervisor) -> Duration {
    let endpoint = supervisor.endpoint();
    let pid = supervisor.pid().expect("running");
    ping(endpoint, Duration::from_secs(1)).expect("up before the kill");
    let killed = Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    // Mostly blocking, not spinning (the machine has few cores): a ping to the dying
    // user half fails as soon as its death is noticed, one that meets the closed restart
    // gate waits there and goes through the moment the new user half is re-attached.
    loop {
        let answered = ping(endpoint, Duration::from_millis(200)).is_ok();
        if answered && supervisor.pid().is_some_and(|p| p != pid) {
            return killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "no recovery");
        std::thread::yield_now();
    }
}

fn main() {
    run_user_half_if_requested();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = 100;
    let warm = supervisor(true, rounds);
    let cold = supervisor(false, rounds);
    std::thread::sleep(Duration::from_millis(250));
    let mut warm_samples = Vec::with_capacity(rounds);
    let mut cold_samples = Vec::with_capacity(rounds);
    // The supervisor's own share: from handling the death to the re-attached user half.
    let mut warm_inside = Vec::with_capacity(rounds);
    for round in 0..rounds {
        assert!(
            warm.status().standby_pid.is_some(),
            "round {round}: no standby"
        );
        if round % 2 == 0 {
            warm_samples.push(kill_and_recover(&warm));
            cold_samples.push(kill_and_recover(&cold));
        } else {
            cold_samples.push(kill_and_recover(&cold));
            warm_samples.push(kill_and_recover(&warm));
        }
        warm_inside.extend(warm.status().last_recovery);
        if std::env::var_os("RECOVERY_DEBUG").is_some() {
            eprintln!(
                "round {round}: warm {:?} (supervisor {:?}), cold {:?}",
                warm_samples.last().copied().unwrap_or_default(),
                warm.status().last_recovery.unwrap_or_default(),
                cold_samples.last().copied().unwrap_or_default(),
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    warm_samples.sort();
    warm_inside.sort();
    cold_samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "restarts = {} (warm standby), {} (cold)",
        warm.status().restarts,
        cold.status().restarts
    );
    println!(
        "recovery_ms p50 = {:.2} p99 = {:.2}",
        ms(percentile(&warm_samples, 0.5)),
        ms(percentile(&warm_samples, 0.99))
    );
    println!(
        "cold_recovery_ms p50 = {:.2} p99 = {:.2}",
        ms(percentile(&cold_samples, 0.5)),
        ms(percentile(&cold_samples, 0.99))
    );
    println!(
        "warm: supervisor's share (death handled -> re-attached) p50 = {:.2} p99 = {:.2} ms",
        ms(percentile(&warm_inside, 0.5)),
        ms(percentile(&warm_inside, 0.99))
    );
    println!(
        "cold / warm p50 = {:.1}",
        ms(percentile(&cold_samples, 0.5)) / ms(percentile(&warm_samples, 0.5)).max(1e-6)
    );
    warm.shutdown();
    cold.shutdown();
}
