//! `ComboLock` in the kernel half against `parking_lot::Mutex`, measured in the same run.
//!
//! `cargo bench -p microdriver-rt --bench combolock` ends with
//! `ratio combolock/parking_lot = X`: the median over interleaved rounds of the time of
//! one uncontended lock + increment + unlock of a `ComboLock<u64>`, relative to the same
//! on a `parking_lot::Mutex<u64>` (goal: at most 1.2), and
//! `ratio combolock/parking_lot contended = C`: the same with two threads hammering one lock
//! (goal: at most 1.5), the median over interleaved rounds of the time per operation.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{compare, report};
use microdriver_rt::sync::ComboLock;

/// One contended round: this thread and a second one each do `iters` operations on the
/// same lock; returns the wall time per operation of the pair.
fn contended_round(iters: u32, op: &(impl Fn() + Sync)) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| (0..iters).for_each(|_| op()));
        (0..iters).for_each(|_| op());
    });
    started.elapsed().as_secs_f64() * 1e9 / f64::from(2 * iters)
}

/// Median over `rounds` interleaved rounds of the contended time per operation of
/// `subject` relative to `baseline`, with both medians.
fn contended(
    rounds: usize,
    iters: u32,
    subject: &(impl Fn() + Sync),
    baseline: &(impl Fn() + Sync),
) -> (f64, f64, f64) {
    let mut ratios = Vec::with_capacity(rounds);
    let (mut s, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let bt = contended_round(iters, baseline);
        let st = contended_round(iters, subject);
        ratios.push(st / bt);
        s.push(st);
        b.push(bt);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut ratios), median(&mut s), median(&mut b))
}

fn main() {
    microdriver_rt::component::run_user_half_if_requested();
    let combo = ComboLock::new(0u64);
    let mutex = parking_lot::Mutex::new(0u64);
    let mut combo_op = || {
        let mut guard = black_box(&combo).lock().unwrap();
        *guard += 1;
    };
    let mut mutex_op = || {
        let mut guard = black_box(&mutex).lock();
        *guard += 1;
    };
    let (ratio, s, b) = compare(
        31,
        Duration::from_millis(40),
        ("combolock", &mut combo_op),
        ("parking_lot", &mut mutex_op),
    );
    report(&s);
    report(&b);
    assert!(*combo.lock().unwrap() > 0 && *mutex.lock() > 0);

    let combo = ComboLock::new(0u64);
    let mutex = parking_lot::Mutex::new(0u64);
    let (contended_ratio, combo_ns, mutex_ns) = contended(
        21,
        200_000,
        &|| *black_box(&combo).lock().unwrap() += 1,
        &|| *black_box(&mutex).lock() += 1,
    );
    assert_eq!(*combo.lock().unwrap(), *mutex.lock());
    println!(
        "contended (2 threads)    median {combo_ns:>10.1} ns/op combolock, {mutex_ns:.1} ns/op parking_lot"
    );
    println!("ratio combolock/parking_lot = {ratio:.3}");
    println!("ratio combolock/parking_lot contended = {contended_ratio:.3}");
}
