//! A small same-run comparison harness: the machines these benches run on are shared and
//! noisy, so every figure is a ratio against a baseline measured in the same run,
//! interleaved round by round, and the median ratio over the rounds is reported.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Runs `f` for `iters` iterations and returns the mean time of one.
pub fn time_per_iter(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed() / iters.max(1) as u32
}

/// Picks an iteration count that makes one timing of `f` last about `target`.
pub fn calibrate(target: Duration, mut f: impl FnMut()) -> u64 {
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let elapsed = start.elapsed();
        if elapsed >= target / 4 || iters >= 1 << 30 {
            let scale = target.as_secs_f64() / elapsed.as_secs_f64().max(1e-9);
            return ((iters as f64 * scale) as u64).max(1);
        }
        iters *= 4;
    }
}

/// One measured quantity: per-iteration times over the rounds.
pub struct Samples {
    pub name: &'static str,
    pub times: Vec<Duration>,
}

impl Samples {
    pub fn median(&self) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort();
        sorted[sorted.len() / 2]
    }
}

/// Measures `subject` and `baseline` alternately for `rounds` rounds and returns the
/// median of the per-round time ratios subject/baseline, with both sample sets.
pub fn compare(
    rounds: usize,
    round_time: Duration,
    subject: (&'static str, &mut dyn FnMut()),
    baseline: (&'static str, &mut dyn FnMut()),
) -> (f64, Samples, Samples) {
    let (subject_name, subject_fn) = subject;
    let (baseline_name, baseline_fn) = baseline;
    let subject_iters = calibrate(round_time, &mut *subject_fn);
    let baseline_iters = calibrate(round_time, &mut *baseline_fn);
    let mut ratios = Vec::with_capacity(rounds);
    let mut s = Samples {
        name: subject_name,
        times: Vec::new(),
    };
    let mut b = Samples {
        name: baseline_name,
        times: Vec::new(),
    };
    for _ in 0..rounds {
        let bt = time_per_iter(baseline_iters, &mut *baseline_fn);
        let st = time_per_iter(subject_iters, &mut *subject_fn);
        ratios.push(st.as_secs_f64() / bt.as_secs_f64().max(1e-12));
        s.times.push(st);
        b.times.push(bt);
    }
    ratios.sort_by(f64::total_cmp);
    (ratios[ratios.len() / 2], s, b)
}

/// Prints a sample set's median in nanoseconds.
pub fn report(samples: &Samples) {
    println!(
        "{:<24} median {:>10.1} ns/iter over {} rounds",
        samples.name,
        samples.median().as_secs_f64() * 1e9,
        samples.times.len()
    );
}

/// A tiny deterministic PRNG (xorshift64*), so runs are repeatable without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
