//! `#[upcall]` and `#[critical]` end to end: the same annotated functions called
//! monolithically (no endpoint: direct calls), across a real user-half process, from two
//! kernel-half threads at once, and after the user half was killed.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use microdriver_rt::component::{run_user_half_if_requested, ComponentConfig, UserHalf};
use microdriver_rt::lrpc::{current_half, Half};
use microdriver_rt::tracker::ObjectTracker;
use microdriver_rt::{critical, upcall, CallError, Marshal};
use parking_lot::ReentrantMutex;

// ---------------------------------------------------------------------------------------
// The driver-side types.

#[derive(Debug, Clone, PartialEq, Eq, Default, Marshal)]
struct Desc {
    addr: u64,
    len: u16,
    tags: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Marshal)]
struct Ring {
    count: u32,
    descs: Vec<Desc>,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Marshal)]
struct Adapter {
    id: u32,
    mtu: u32,
    rings: Vec<Ring>,
    log: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
struct RingParam {
    rx: u32,
    tx: u32,
    labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
enum DriverError {
    Invalid(String),
    Cross(String),
}

impl From<CallError> for DriverError {
    fn from(e: CallError) -> Self {
        DriverError::Cross(e.to_string())
    }
}

// ---------------------------------------------------------------------------------------
// Kernel-half state: a lock the kernel-half caller may hold while it upcalls. The nested
// downcall is served on that same waiting thread, so a reentrant lock must not deadlock.

static KERNEL_LOCK: ReentrantMutex<Cell<u64>> = ReentrantMutex::new(Cell::new(1000));

/// The kernel half's offset for adapter `id`, and the pid of the process that computed it.
#[critical]
fn kernel_offset(id: u32) -> (u32, u64) {
    let guard = KERNEL_LOCK.lock();
    (std::process::id(), guard.get() + u64::from(id))
}

/// A `#[critical]` function that can fail.
#[critical]
fn kernel_check(value: u32) -> Result<u32, DriverError> {
    if value > 100 {
        return Err(DriverError::Invalid(format!("{value} > 100")));
    }
    Ok(value * 3)
}

static RECORDED: AtomicU64 = AtomicU64::new(0);

/// A `#[critical]` function without a `Result` (a user half that cannot reach it exits).
#[critical]
fn kernel_record(value: u64) {
    RECORDED.fetch_add(value, Ordering::SeqCst);
}

// ---------------------------------------------------------------------------------------
// User-half functions.

/// What `set_ringparam` does to an adapter: a pure function so callers can check results.
fn apply(adapter: &mut Adapter, req: &RingParam, extra: u32, offset: u64) -> u64 {
    adapter.mtu = adapter.mtu.wrapping_add(extra);
    adapter.rings = (0..req.rx)
        .map(|r| Ring {
            count: req.tx + r,
            descs: (0..(r % 4))
                .map(|d| Desc {
                    addr: offset + u64::from(r * 16 + d),
                    len: (extra % 1500) as u16,
                    tags: vec![d as u8; (r as usize + d as usize) % 5],
                })
                .collect(),
            name: req.labels.get(r as usize).cloned().unwrap_or_default(),
        })
        .collect();
    adapter.log.push(format!("rx={} extra={extra}", req.rx));
    if adapter.log.len() > 4 {
        adapter.log.remove(0);
    }
    offset
        + u64::from(extra)
        + adapter
            .rings
            .iter()
            .map(|r| r.descs.len() as u64)
            .sum::<u64>()
}

/// Configures rings; asks the kernel half for an offset (a nested downcall when split).
#[upcall]
pub fn set_ringparam(
    adapter: &mut Adapter,
    req: &RingParam,
    extra: u32,
) -> Result<u64, DriverError> {
    if req.rx == 0 {
        return Err(DriverError::Invalid("rx must not be 0".into()));
    }
    let (_, offset) = kernel_offset(adapter.id);
    Ok(apply(adapter, req, extra, offset))
}

/// Where the upcall body and its nested `#[critical]` call ran: (upcall pid, critical pid,
/// the pid an `#[upcall]` called from inside the user half sees).
#[upcall]
fn where_run() -> Result<(u32, u32, u32), DriverError> {
    let (critical_pid, _) = kernel_offset(0);
    // An #[upcall] called in the user half is a direct call.
    let inner = user_pid()?;
    Ok((std::process::id(), critical_pid, inner))
}

#[upcall]
fn user_pid() -> Result<u32, DriverError> {
    Ok(std::process::id())
}

/// Slices, `&str` and `&mut [T]`.
#[upcall]
#[inline]
fn checksum(data: &[u8], label: &str, words: &mut [u32]) -> Result<(u64, String), DriverError> {
    for w in words.iter_mut() {
        *w = w.wrapping_mul(2) + 1;
    }
    let checked = kernel_check(words.len() as u32)?;
    let sum = data.iter().map(|&b| u64::from(b)).sum::<u64>() + u64::from(checked);
    Ok((sum, label.to_uppercase()))
}

/// Owned arguments, one of them bound `mut`.
#[upcall]
fn owned_sum(
    values: Vec<u64>,
    mut bias: u64,
    nested: Vec<(u32, Vec<String>)>,
) -> Result<u64, DriverError> {
    bias += nested.iter().map(|(_, v)| v.len() as u64).sum::<u64>();
    Ok(values.iter().sum::<u64>() + bias)
}

/// Makes two nested downcalls to a unit-returning `#[critical]` function.
#[upcall]
fn record_twice(value: u64) -> Result<(), DriverError> {
    kernel_record(value);
    kernel_record(value * 10);
    Ok(())
}

/// No return value: failures are logged.
#[upcall]
fn bump(counter: &mut u64, by: u64) {
    *counter += by;
}

/// Panics in the user half.
#[upcall]
fn explode(message: String) -> Result<(), DriverError> {
    panic!("{message}");
}

static NOTES: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

/// Posted by critical code; runs later in the user half.
#[upcall(deferred)]
fn note(message: String, n: u32) {
    NOTES.lock().unwrap().push((message, n));
}

/// Reads what deferred upcalls left behind.
#[upcall]
fn notes() -> Result<Vec<(String, u32)>, DriverError> {
    Ok(NOTES.lock().unwrap().clone())
}

// ---------------------------------------------------------------------------------------
// The checks, run in each mode.

fn adapter(id: u32) -> Adapter {
    Adapter {
        id,
        mtu: 1500,
        rings: Vec::new(),
        log: vec!["created".into()],
    }
}

fn req(i: u32) -> RingParam {
    RingParam {
        rx: 1 + i % 6,
        tx: 64 + i % 3,
        labels: (0..(i % 4)).map(|l| format!("q{l}-{i}")).collect(),
    }
}

fn check_basic(split: bool) {
    let mut a = adapter(7);
    let r = req(5);
    let mut expected = a.clone();
    let want = apply(&mut expected, &r, 9, 1007);
    assert_eq!(set_ringparam(&mut a, &r, 9), Ok(want));
    assert_eq!(a, expected, "the &mut argument came back");

    let bad = RingParam {
        rx: 0,
        tx: 0,
        labels: vec![],
    };
    let before = a.clone();
    assert_eq!(
        set_ringparam(&mut a, &bad, 1),
        Err(DriverError::Invalid("rx must not be 0".into()))
    );
    assert_eq!(a, before);

    let mut words = [1u32, 2, 3];
    let (sum, label) = checksum(&[1, 2, 3, 250], "eth0", &mut words).unwrap();
    assert_eq!((sum, label.as_str()), (256 + 9, "ETH0"));
    assert_eq!(words, [3, 5, 7]);
    let mut many = vec![0u32; 101];
    assert_eq!(
        checksum(&[], "", &mut many),
        Err(DriverError::Invalid("101 > 100".into())),
        "a #[critical] Result error crosses back"
    );

    let nested = vec![(1, vec!["a".to_string(), "b".to_string()]), (2, vec![])];
    assert_eq!(owned_sum(vec![1, 2, 3], 10, nested), Ok(18));

    let before = RECORDED.load(Ordering::SeqCst);
    record_twice(4).unwrap();
    assert_eq!(
        RECORDED.load(Ordering::SeqCst) - before,
        44,
        "unit #[critical] calls ran in the kernel half"
    );

    let mut counter = 5;
    bump(&mut counter, 3);
    assert_eq!(counter, 8);

    let me = std::process::id();
    let (upcall_pid, critical_pid, inner_pid) = where_run().unwrap();
    assert_eq!(
        critical_pid, me,
        "#[critical] bodies run in the kernel half"
    );
    assert_eq!(
        inner_pid, upcall_pid,
        "an #[upcall] called in the user half is direct"
    );
    if split {
        assert_ne!(
            upcall_pid, me,
            "#[upcall] bodies run in the user-half process"
        );
    } else {
        assert_eq!(upcall_pid, me);
    }
    // Called from the kernel half, a #[critical] function is always direct.
    assert_eq!(kernel_offset(3), (me, 1003));
}

fn check_panic() {
    match explode("expected panic: boom".into()) {
        Err(DriverError::Cross(message)) => assert!(message.contains("boom"), "{message}"),
        other => panic!("expected a cross error, got {other:?}"),
    }
}

/// The nested downcall locks `KERNEL_LOCK`, which the kernel-half caller holds.
fn check_lock_held() {
    let guard = KERNEL_LOCK.lock();
    let mut a = adapter(1);
    let r = req(3);
    let mut expected = a.clone();
    let want = apply(&mut expected, &r, 2, 1001);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(move || {
            // A watchdog: fail loudly instead of hanging.
            if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                eprintln!("deadlock: the nested downcall did not complete");
                std::process::exit(3);
            }
        });
        assert_eq!(set_ringparam(&mut a, &r, 2), Ok(want));
        tx.send(()).unwrap();
    });
    assert_eq!(a, expected);
    drop(guard);
}

fn check_deferred() {
    let tag = format!("deferred-{}", std::process::id());
    let started = Instant::now();
    note(tag.clone(), 42);
    assert!(started.elapsed() < Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = notes().unwrap();
        if seen.contains(&(tag.clone(), 42)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deferred upcall never ran: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// 10,000 upcalls with nested-Vec structs and `&mut` arguments, each making a nested
/// downcall, from two kernel-half threads at once; every result checked.
fn check_stress(total: u32) {
    let threads = 2;
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut a = adapter(10 + t);
                let mut expected = a.clone();
                for i in 0..total / threads {
                    let r = req(i * 7 + t);
                    let extra = i;
                    let want = apply(&mut expected, &r, extra, 1000 + u64::from(10 + t));
                    // Every other call holds the kernel lock the nested downcall takes.
                    let got = if i % 2 == 0 {
                        let _guard = KERNEL_LOCK.lock();
                        set_ringparam(&mut a, &r, extra)
                    } else {
                        set_ringparam(&mut a, &r, extra)
                    };
                    assert_eq!(got, Ok(want), "thread {t}, call {i}");
                    assert_eq!(a, expected, "thread {t}, call {i}");
                }
            });
        }
    });
}

fn check_killed(half: &mut UserHalf) {
    half.kill();
    let started = Instant::now();
    match user_pid() {
        Err(DriverError::Cross(message)) => {
            assert!(message.contains("died"), "{message}");
        }
        other => panic!("expected the dead user half to be reported, got {other:?}"),
    }
    let mut a = adapter(2);
    let before = a.clone();
    assert!(matches!(
        set_ringparam(&mut a, &req(1), 1),
        Err(DriverError::Cross(_))
    ));
    assert_eq!(a, before, "a failed upcall leaves the &mut argument alone");
    let mut counter = 1;
    bump(&mut counter, 1);
    assert_eq!(
        counter, 1,
        "a unit upcall to a dead half is logged and skipped"
    );
    note("lost".into(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "errors are prompt"
    );
}

// ---------------------------------------------------------------------------------------

struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    fn run(&mut self, name: &str, test: impl FnOnce()) {
        let started = Instant::now();
        match catch_unwind(AssertUnwindSafe(test)) {
            Ok(()) => {
                self.passed += 1;
                println!("test {name} ... ok ({:?})", started.elapsed());
            }
            Err(_) => {
                self.failed += 1;
                println!("test {name} ... FAILED");
            }
        }
    }
}

/// Keeps the panics these tests provoke (in both processes) out of the output.
fn quiet_expected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !message.starts_with("expected panic") {
            default(info);
        }
    }));
}

mod support;

fn main() {
    quiet_expected_panics();
    run_user_half_if_requested();
    support::run_single("lrpc_macros", &[], run_all);
}

fn run_all() {
    let mut tally = Tally {
        passed: 0,
        failed: 0,
    };

    assert_eq!(current_half(), Half::Monolithic);
    tally.run("monolithic::basic", || check_basic(false));
    tally.run("monolithic::lock_held", check_lock_held);
    tally.run("monolithic::deferred", check_deferred);
    tally.run("monolithic::stress_1000", || check_stress(1000));
    tally.run("monolithic::panic_propagates", || {
        let outcome = catch_unwind(|| explode("expected panic: direct".into()));
        assert!(outcome.is_err(), "a direct call panics like the body");
    });

    let config = ComponentConfig {
        workers: 2,
        ..ComponentConfig::default()
    };
    let tracker = Arc::new(ObjectTracker::new());
    let mut half = UserHalf::spawn(&config, tracker).expect("spawning the user half");
    microdriver_rt::lrpc::install_kernel(half.endpoint().clone());
    assert_eq!(current_half(), Half::Kernel);

    tally.run("split::basic", || check_basic(true));
    tally.run("split::handler_panic", check_panic);
    tally.run("split::lock_held_nested_downcall", check_lock_held);
    tally.run("split::deferred", check_deferred);
    tally.run("split::stress_10000_two_threads", || {
        let started = Instant::now();
        check_stress(10_000);
        println!(
            "10000 upcalls (nested downcalls, &mut nested-Vec structs, 2 threads) in {:?}",
            started.elapsed()
        );
    });
    tally.run("split::killed_user_half", || check_killed(&mut half));

    microdriver_rt::lrpc::uninstall_kernel();
    tally.run("monolithic_again::basic", || check_basic(false));

    println!("{} checks passed, {} failed", tally.passed, tally.failed);
    assert_eq!(tally.failed, 0, "{} checks failed", tally.failed);
}
