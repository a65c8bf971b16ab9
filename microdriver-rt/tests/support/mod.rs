//! Test binaries that spawn user halves re-execute themselves, so they have their own
//! `main` (`harness = false`): it must first let a child become a user half. This runs
//! the rest as one test through `libtest-mimic`, which speaks the libtest command line that
//! `cargo test` and `cargo nextest` use (`--list`, filters, `--exact`, `--nocapture`).

use libtest_mimic::{Arguments, Failed, Trial};

/// Runs `body` as the test `name` and exits with the harness's status. Arguments that
/// the binary itself understands (`own_flags`, each followed by a value when it ends in
/// `=`) are removed before the harness parses the command line.
#[allow(dead_code)]
pub fn run_single(name: &str, own_flags: &[&str], body: impl FnOnce() + Send + 'static) -> ! {
    let mut filtered = Vec::new();
    let mut args = std::env::args();
    filtered.extend(args.next());
    while let Some(arg) = args.next() {
        if let Some(flag) = own_flags.iter().find(|f| f.trim_end_matches('=') == arg) {
            if flag.ends_with('=') {
                args.next();
            }
            continue;
        }
        filtered.push(arg);
    }
    let arguments = Arguments::from_iter(filtered);
    let trial = Trial::test(name, move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).map_err(failure)
    });
    libtest_mimic::run(&arguments, vec![trial]).exit()
}

/// A panic payload as a harness failure.
fn failure(panic: Box<dyn std::any::Any + Send>) -> Failed {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "the test panicked".to_string())
        .into()
}

/// Runs each `(name, test)` as its own test through the harness, one at a time, and
/// exits. One at a time because these binaries' tests share process-wide state (the
/// installed kernel endpoint, the combolock registry, its hold limit and hook).
#[allow(dead_code)]
pub fn run_tests(tests: Vec<(&'static str, fn())>) -> ! {
    let mut arguments = Arguments::from_args();
    arguments.test_threads = Some(1);
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            Trial::test(name, move || {
                std::panic::catch_unwind(test).map_err(failure)
            })
        })
        .collect();
    libtest_mimic::run(&arguments, trials).exit()
}

/// The value after `flag` on the command line (`--faults 300`), if given.
#[allow(dead_code)]
pub fn flag_value(flag: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|a| a != flag);
    args.next()?;
    args.next()
}

/// A campaign's seed: the one given, or one from the clock (printed, so a run repeats).
#[allow(dead_code)]
pub fn seed_or_clock(given: Option<u64>) -> u64 {
    given.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    })
}

/// The campaigns' pseudo-random source (xorshift64): cheap, and a run repeats from its
/// seed. The seed must not be 0.
#[allow(dead_code)]
pub struct Rng(pub u64);

#[allow(dead_code)]
impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// One of `xs` (not empty).
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}
