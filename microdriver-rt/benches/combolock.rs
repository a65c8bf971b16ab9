//! `ComboLock` in the kernel half against `parking_lot::Mutex`, measured in the same run.
//!
//! `cargo bench -p microdriver-rt --bench combolock` ends with
//! `ratio combolock/parking_lot = X`: the median over interleaved rounds of the time of
//! one uncontended lock + increment + unlock of a `ComboLock<u64>`, relative to the same
//! on a `parking_lot::Mutex<u64>` (goal: at most 1.2). It also prints the same ratio for a
//! lock shared by two threads (contended), for information.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{compare, report};
use microdriver_rt::sync::ComboLock;

fn contended_ns(mut op: impl FnMut() + Send + Clone + 'static) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (stop, mut op) = (stop.clone(), op.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                op();
            }
        })
    };
    let iters = 2_000_000u32;
    let started = Instant::now();
    for _ in 0..iters {
        op();
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    other.join().unwrap();
    elapsed.as_secs_f64() * 1e9 / f64::from(iters)
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

    let combo = Arc::new(ComboLock::new(0u64));
    let mutex = Arc::new(parking_lot::Mutex::new(0u64));
    let combo_contended = contended_ns(move || *combo.lock().unwrap() += 1);
    let mutex_contended = contended_ns(move || *mutex.lock() += 1);
    println!(
        "contended (2 threads): combolock {combo_contended:.1} ns/op, parking_lot {mutex_contended:.1} ns/op, ratio {:.3}",
        combo_contended / mutex_contended
    );
    println!("ratio combolock/parking_lot = {ratio:.3}");
}
