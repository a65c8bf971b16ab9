//! `ComboLock<T>`: the kernel-half fast path, and the user half locking a kernel-half lock
//! through a real user-half process: a lock/modify/unlock round trip while the critical
//! path keeps incrementing, a user half killed while holding (the kernel copy exactly as
//! before, the lock usable at once), a hung holder past the hold limit (the hook runs and
//! the lock is reclaimed), hostile unlocks (rejected, nothing changed), and snapshots
//! (a copy without a hold; snapshot-only locks refuse holds).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use microdriver_rt::component::{run_user_half_if_requested, ComponentConfig, UserHalf};
use microdriver_rt::lrpc::__private::{downcall, inventory, upcall, Entry, Served};
use microdriver_rt::lrpc::{install_kernel, uninstall_kernel, CallError};
use microdriver_rt::marshal::{from_bytes, to_bytes, Decoder, Encoder, Marshal, MarshalError};
use microdriver_rt::sync::combolock::{
    self, clear_stuck_holder_hook, HoldToken, HOLD_ENTRY, RELEASE_ENTRY, SNAPSHOT_ENTRY,
};
use microdriver_rt::sync::{ComboLock, ComboLockError};
use microdriver_rt::tracker::ObjectTracker;
use microdriver_rt::upcall;

#[derive(Debug, Clone, PartialEq, Eq, Default, microdriver_rt::Marshal)]
struct Stats {
    packets: u64,
    label: String,
    history: Vec<u32>,
}

/// An adapter whose statistics the critical path updates.
#[derive(Debug, microdriver_rt::Marshal)]
struct Adapter {
    mtu: u32,
    stats: ComboLock<Stats>,
}

/// Ring-like state: indexes the user half may read, buffers it must never see.
#[derive(Debug, Default, microdriver_rt::Marshal)]
struct Ring {
    head: u64,
    tail: u64,
    #[marshal(skip)]
    buffers: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, microdriver_rt::Marshal)]
enum DriverError {
    Lock(String),
    Cross(String),
}

impl From<CallError> for DriverError {
    fn from(e: CallError) -> Self {
        DriverError::Cross(e.to_string())
    }
}

/// Through the macros: the adapter crosses, its combolock as an identity; the body locks
/// it (a downcall in the user half, a plain lock when monolithic) and changes the MTU (an
/// ordinary field, copied back).
#[upcall]
fn report_and_reset(adapter: &mut Adapter, mtu: u32) -> Result<u64, DriverError> {
    adapter.mtu = mtu;
    let mut stats = adapter
        .stats
        .lock()
        .map_err(|e| DriverError::Lock(e.to_string()))?;
    let packets = stats.packets;
    stats.packets = 0;
    stats.label = "reset".into();
    Ok(packets)
}

fn handler_error(e: impl std::fmt::Display) -> MarshalError {
    MarshalError::BadHeader {
        reason: e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// User-half entries. The lock arrives by identity; locking it is a downcall.

/// Locks, holds for `hold_ms`, adds `amount`, unlocks; returns the packets it saw.
fn bump(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let lock = ComboLock::<Stats>::decode(&mut dec)?;
    let amount = u64::decode(&mut dec)?;
    let hold_ms = u64::decode(&mut dec)?;
    dec.finish()?;
    assert!(!lock.is_local(), "the user half gets a handle");
    let mut guard = lock.lock().map_err(handler_error)?;
    let seen = guard.packets;
    std::thread::sleep(Duration::from_millis(hold_ms));
    guard.packets += amount;
    guard.label = format!("user+{amount}");
    guard.history.push(amount as u32);
    guard.unlock().map_err(handler_error)?;
    seen.encode(enc)
}

/// Locks, scribbles on its copy, and never unlocks (hangs).
fn hold_forever(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let lock = ComboLock::<Stats>::decode(&mut dec)?;
    dec.finish()?;
    let mut guard = lock.lock().map_err(handler_error)?;
    guard.packets = 999_999;
    guard.label = "lost".into();
    std::thread::sleep(Duration::from_secs(60));
    drop(guard);
    ().encode(enc)
}

fn raw_release(id: u64, token: u64, contents: Option<&[u8]>) -> u8 {
    downcall(
        RELEASE_ENTRY,
        &mut (),
        |_, enc| {
            id.encode(enc)?;
            token.encode(enc)?;
            contents.is_some().encode(enc)?;
            enc.put_bytes(contents.unwrap_or_default());
            Ok(())
        },
        |_, dec| dec.take_u8(),
    )
    .expect("raw release downcall")
}

fn raw_hold(id: u64) -> u8 {
    raw_code(HOLD_ENTRY, id)
}

/// Calls `entry` (hold or snapshot) for lock `id`; returns the answer code, skipping
/// whatever follows it (a token and contents, or contents, on success).
fn raw_code(entry: &'static str, id: u64) -> u8 {
    downcall(
        entry,
        &mut (),
        |_, enc| id.encode(enc),
        |_, dec| {
            let code = dec.take_u8()?;
            let rest = dec.remaining();
            dec.take_bytes(rest)?;
            Ok(code)
        },
    )
    .expect("raw downcall")
}

/// A hostile user half: forged ids, unlocks without a hold, wrong tokens, contents that
/// do not decode. Returns the codes the kernel half answered, then unlocks properly.
fn hostile(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let lock = ComboLock::<Stats>::decode(&mut dec)?;
    dec.finish()?;
    let id = lock.id();
    let mut codes = vec![
        raw_release(u64::MAX, 1, None),      // unknown lock
        raw_release(id, 1, None),            // not held
        raw_hold(u64::MAX - 1),              // unknown lock
        raw_release(0, 0, Some(&[1, 2, 3])), // unknown lock, with junk
    ];
    let mut guard = lock.lock().map_err(handler_error)?;
    let token = guard.token().expect("a user hold has a token").0;
    guard.packets = 777;
    codes.push(raw_release(id, token ^ 0x5555, None)); // wrong token
    codes.push(raw_release(id, token.wrapping_add(1), Some(&[0; 64]))); // wrong token
    codes.push(raw_release(id, token, Some(&[0xff; 3]))); // malformed contents
    codes.push(raw_release(id, token, Some(&[]))); // truncated contents
                                                   // A too-long encoding: valid contents plus trailing bytes.
    let mut long = to_bytes(&*guard).map_err(handler_error)?;
    long.push(0);
    codes.push(raw_release(id, token, Some(&long)));
    // Still held: the honest unlock carries 777 over.
    guard.unlock().map_err(handler_error)?;
    // The same token again, after the release.
    codes.push(raw_release(id, token, None));
    codes.encode(enc)
}

/// Takes `n` snapshots of a lock the critical path keeps changing, then tries to hold it
/// and to forge a release; returns (the packet counts seen, the hold's answer code, the
/// forged release's code, an unknown id's snapshot code).
fn snapshots(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let lock = ComboLock::<Ring>::decode(&mut dec)?;
    let n = u32::decode(&mut dec)?;
    dec.finish()?;
    let mut seen = Vec::new();
    for _ in 0..n {
        let ring = lock.snapshot().map_err(handler_error)?;
        // Consistent: the critical path moves both indexes together under the lock.
        if ring.head != ring.tail || !ring.buffers.is_empty() {
            return Err(handler_error(format!(
                "torn or unskipped snapshot: {ring:?}"
            )));
        }
        seen.push(ring.head);
    }
    let hold = raw_hold(lock.id());
    let forged = raw_release(
        lock.id(),
        1,
        Some(&to_bytes(&Ring::default()).map_err(handler_error)?),
    );
    let unknown = raw_snapshot(u64::MAX - 2);
    (seen, hold, forged, unknown).encode(enc)
}

/// Locks a ring the user half may hold, moves its tail, unlocks; returns the tail it saw
/// and how many slots its copy had (the skipped field: none).
fn bump_tail(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let lock = ComboLock::<Ring>::decode(&mut dec)?;
    dec.finish()?;
    let mut guard = lock.lock().map_err(handler_error)?;
    let seen = (guard.tail, guard.buffers.len() as u64);
    guard.tail += 1;
    guard.head += 2;
    guard.unlock().map_err(handler_error)?;
    seen.encode(enc)
}

/// Takes the lock again and again, holding it `hold_ms` each time, until the kernel half
/// labels it "stop"; returns the holds it made.
fn hold_series(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let lock = ComboLock::<Stats>::decode(&mut dec)?;
    let hold_ms = u64::decode(&mut dec)?;
    dec.finish()?;
    let mut holds = 0u64;
    loop {
        let mut guard = lock.lock().map_err(handler_error)?;
        if guard.label == "stop" {
            break;
        }
        std::thread::sleep(Duration::from_millis(hold_ms));
        guard.packets += 1;
        guard.unlock().map_err(handler_error)?;
        holds += 1;
    }
    holds.encode(enc)
}

fn raw_snapshot(id: u64) -> u8 {
    raw_code(SNAPSHOT_ENTRY, id)
}

inventory::submit! { Entry { name: "combolock_test::snapshots", signature: "fn(ComboLock<Ring>, u32) -> (Vec<u64>, u8, u8, u8)", served: Served::ByUser, handler: snapshots } }
inventory::submit! { Entry { name: "combolock_test::bump_tail", signature: "fn(ComboLock<Ring>) -> (u64, u64)", served: Served::ByUser, handler: bump_tail } }
inventory::submit! { Entry { name: "combolock_test::hold_series", signature: "fn(ComboLock<Stats>, u64) -> u64", served: Served::ByUser, handler: hold_series } }
inventory::submit! { Entry { name: "combolock_test::bump", signature: "fn(ComboLock<Stats>, u64, u64) -> u64", served: Served::ByUser, handler: bump } }
inventory::submit! { Entry { name: "combolock_test::hold_forever", signature: "fn(ComboLock<Stats>)", served: Served::ByUser, handler: hold_forever } }
inventory::submit! { Entry { name: "combolock_test::hostile", signature: "fn(ComboLock<Stats>) -> Vec<u8>", served: Served::ByUser, handler: hostile } }

// ---------------------------------------------------------------------------------------
// Kernel-half helpers.

fn spawn() -> UserHalf {
    let half = UserHalf::spawn(&ComponentConfig::default(), Arc::new(ObjectTracker::new()))
        .expect("spawn a user half");
    install_kernel(half.endpoint().clone());
    half
}

fn call_bump(lock: &ComboLock<Stats>, amount: u64, hold_ms: u64) -> Result<u64, CallError> {
    upcall(
        "combolock_test::bump",
        &mut (),
        |_, enc| {
            lock.encode(enc)?;
            amount.encode(enc)?;
            hold_ms.encode(enc)
        },
        |_, dec| u64::decode(dec),
    )
}

fn call_hold_forever(lock: &ComboLock<Stats>) -> Result<(), CallError> {
    upcall(
        "combolock_test::hold_forever",
        &mut (),
        |_, enc| lock.encode(enc),
        |_, dec| <()>::decode(dec),
    )
}

/// Whether thread `tid` of this process is asleep (state S in /proc).
fn asleep(tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        // The state follows the parenthesised name, which may itself contain spaces.
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('S'))
        })
        .unwrap_or(false)
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn stats(packets: u64) -> Stats {
    Stats {
        packets,
        label: "kernel".into(),
        history: vec![1, 2, 3],
    }
}

// ---------------------------------------------------------------------------------------
// Tests.

/// Kernel-only: four threads hammer one lock; nothing is lost.
fn kernel_fast_path() {
    let lock = Arc::new(ComboLock::new(stats(0)));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let lock = lock.clone();
            std::thread::spawn(move || {
                for _ in 0..100_000 {
                    lock.lock().expect("local lock").packets += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(lock.lock().unwrap().packets, 400_000);
    assert!(lock.is_local() && !lock.is_user_held());
}

/// The identity on the wire: 8 bytes; in the kernel half it decodes to the same lock,
/// an unknown id or a lock of another type is refused, and decoding into a lock accepts
/// only its own id (an upcall never writes into a combolock).
fn marshal_is_identity_only() {
    let lock = ComboLock::new(stats(5));
    let bytes = to_bytes(&lock).unwrap();
    assert_eq!(bytes, lock.id().to_le_bytes());
    let same: ComboLock<Stats> = from_bytes(&bytes).unwrap();
    assert_eq!(same.id(), lock.id());
    same.lock().unwrap().packets = 6;
    assert_eq!(lock.lock().unwrap().packets, 6);
    assert!(from_bytes::<ComboLock<Stats>>(&u64::MAX.to_le_bytes()).is_err());
    assert!(from_bytes::<ComboLock<u32>>(&bytes).is_err(), "wrong type");
    let other = ComboLock::new(stats(0));
    let mut target = ComboLock::new(stats(1));
    let mut dec = Decoder::new(&bytes);
    assert!(target.decode_into(&mut dec).is_err());
    let own = to_bytes(&target).unwrap();
    let mut dec = Decoder::new(&own);
    target.decode_into(&mut dec).unwrap();
    assert_eq!(target.lock().unwrap().packets, 1);
    drop(other);
}

/// The kernel-side hold/release functions (what the downcall handlers run), in process:
/// hostile releases are rejected, the kernel copy is written only by a good release.
fn kernel_side_hold_and_release() {
    let lock = ComboLock::new(stats(10));
    let id = lock.id();
    assert_eq!(
        combolock::release_from_user(id, HoldToken(1), None),
        Err(ComboLockError::NotHeld { id })
    );
    assert_eq!(
        combolock::release_from_user(u64::MAX, HoldToken(1), None),
        Err(ComboLockError::UnknownLock { id: u64::MAX })
    );
    let mut buf = Vec::new();
    let token = combolock::hold_for_user(id, Duration::from_secs(1), &mut Encoder::new(&mut buf))
        .expect("hold");
    assert!(lock.is_user_held());
    // The reply carries code 0, the token, the contents.
    let mut dec = Decoder::new(&buf);
    assert_eq!(dec.take_u8().unwrap(), 0);
    assert_eq!(u64::decode(&mut dec).unwrap(), token.0);
    let mut copy = Stats::decode(&mut dec).unwrap();
    assert_eq!(copy, stats(10));
    // While held by the user half, a hold request times out (Busy).
    let mut other = Vec::new();
    assert_eq!(
        combolock::hold_for_user(id, Duration::from_millis(20), &mut Encoder::new(&mut other)),
        Err(ComboLockError::Busy { id })
    );
    copy.packets = 11;
    let good = to_bytes(&copy).unwrap();
    assert_eq!(
        combolock::release_from_user(id, HoldToken(token.0 + 1000), Some(Decoder::new(&good))),
        Err(ComboLockError::WrongToken { id })
    );
    assert_eq!(
        combolock::release_from_user(id, token, Some(Decoder::new(&good[..good.len() - 1]))),
        Err(ComboLockError::Malformed { id })
    );
    assert!(
        lock.is_user_held(),
        "rejected releases leave the hold in place"
    );
    combolock::release_from_user(id, token, Some(Decoder::new(&good))).expect("release");
    assert!(!lock.is_user_held());
    assert_eq!(lock.lock().unwrap().packets, 11);
    // A reclaimed hold writes nothing.
    let mut buf = Vec::new();
    let token = combolock::hold_for_user(id, Duration::from_secs(1), &mut Encoder::new(&mut buf))
        .expect("hold");
    assert_eq!(ComboLock::reclaim_user_holds(), 1);
    assert_eq!(
        combolock::release_from_user(id, token, Some(Decoder::new(&good))),
        Err(ComboLockError::NotHeld { id })
    );
    assert_eq!(
        *lock.lock().unwrap(),
        Stats {
            packets: 11,
            ..stats(0)
        }
    );
    drop(lock);
    assert_eq!(
        combolock::release_from_user(id, token, None),
        Err(ComboLockError::UnknownLock { id }),
        "a dropped lock's id is gone (and never reused)"
    );
}

/// The user half locks, holds 20 ms, adds 1000 and unlocks, while a critical-path thread
/// increments without pause: every update survives.
fn user_round_trip_with_critical_path() {
    let half = spawn();
    let lock = Arc::new(ComboLock::new(stats(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let critical = {
        let (lock, stop) = (lock.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut increments = 0u64;
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                lock.lock().unwrap().packets += 1;
                worst = worst.max(started.elapsed());
                increments += 1;
            }
            (increments, worst)
        })
    };
    let mut user_total = 0;
    for round in 0..10u64 {
        let seen = call_bump(&lock, 1000, 20).expect("bump upcall");
        assert!(seen >= user_total, "round {round}: saw {seen}");
        user_total += 1000;
    }
    stop.store(true, Ordering::Relaxed);
    let (increments, worst) = critical.join().unwrap();
    let value = lock.lock().unwrap().clone();
    assert_eq!(value.packets, increments + user_total, "lost an update");
    assert_eq!(value.label, "user+1000");
    assert_eq!(value.history.len(), 3 + 10);
    assert!(!lock.is_user_held());
    println!(
        "round trip: {increments} critical-path increments + 10 user holds of 20 ms, none lost; worst critical wait {worst:?}"
    );
    uninstall_kernel();
    half.shutdown(Duration::from_secs(1));
}

/// SIGKILL while the user half holds the lock: its changes are lost, the kernel copy is
/// exactly as before, a waiting critical-path locker gets the lock as soon as the
/// supervisor reclaims, and the lock is usable at once.
fn killed_holder_loses_its_changes() {
    let half = spawn();
    let lock = Arc::new(ComboLock::new(stats(42)));
    let before = lock.lock().unwrap().clone();
    let caller = {
        let lock = lock.clone();
        std::thread::spawn(move || call_hold_forever(&lock))
    };
    wait_until("the user hold", Duration::from_secs(5), || {
        lock.is_user_held()
    });
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            // SAFETY: gettid(2) takes no arguments and touches no memory.
            let _ = tid_tx.send(unsafe { libc::gettid() });
            let mut guard = lock.lock().unwrap();
            let seen = guard.clone();
            guard.packets += 1;
            (seen, Instant::now())
        })
    };
    // The locker has gone to sleep in `lock()` (its only work): it waits, rather than
    // "it had not finished 20 ms later".
    let tid = tid_rx.recv().expect("the waiter's tid");
    wait_until("the kernel locker to sleep", Duration::from_secs(5), || {
        asleep(tid)
    });
    assert!(
        !waiter.is_finished(),
        "the critical path waits while the user half holds"
    );
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(half.pid() as i32, libc::SIGKILL) }, 0);
    let result = caller.join().unwrap();
    assert_eq!(
        result,
        Err(CallError::PeerDied {
            peer: microdriver_rt::Half::User
        })
    );
    // What the supervisor does once the user half is dead.
    let reclaimed_at = Instant::now();
    assert_eq!(ComboLock::reclaim_user_holds(), 1);
    let (seen, got_at) = waiter.join().unwrap();
    assert_eq!(
        seen, before,
        "the kernel copy is exactly as before the hold"
    );
    let started = Instant::now();
    let value = lock.lock().unwrap().clone();
    assert!(started.elapsed() < Duration::from_millis(5));
    assert_eq!(
        value,
        Stats {
            packets: 43,
            ..before
        }
    );
    println!(
        "killed holder: reclaimed, waiting locker ran {:?} after reclaim",
        got_at.saturating_duration_since(reclaimed_at)
    );
    uninstall_kernel();
    drop(half);
}

/// A user half that holds longer than the limit: the next kernel-half locker finds it,
/// calls the hook (here, like the supervisor: kill the user half) and reclaims.
fn hold_limit_expiry() {
    let half = spawn();
    let pid = half.pid();
    let hooked = Arc::new(AtomicUsize::new(0));
    {
        let hooked = hooked.clone();
        ComboLock::set_stuck_holder_hook(Arc::new(move || {
            hooked.fetch_add(1, Ordering::SeqCst);
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }));
    }
    let limit = Duration::from_millis(50);
    ComboLock::set_user_hold_limit(limit);
    let lock = Arc::new(ComboLock::new(stats(7)));
    let caller = {
        let lock = lock.clone();
        std::thread::spawn(move || call_hold_forever(&lock))
    };
    wait_until("the user hold", Duration::from_secs(5), || {
        lock.is_user_held()
    });
    let held_from = Instant::now();
    let started = Instant::now();
    let value = lock.lock().unwrap().clone();
    let waited = started.elapsed();
    assert_eq!(value, stats(7), "the hung holder's changes are lost");
    assert_eq!(hooked.load(Ordering::SeqCst), 1, "the hook ran once");
    assert!(
        waited < limit + Duration::from_millis(30),
        "the critical path waited {waited:?}"
    );
    assert!(held_from.elapsed() >= limit - Duration::from_millis(5));
    assert_eq!(
        caller.join().unwrap(),
        Err(CallError::PeerDied {
            peer: microdriver_rt::Half::User
        })
    );
    assert_eq!(
        ComboLock::reclaim_user_holds(),
        0,
        "nothing left to reclaim"
    );

    // The sweep does the same without a locker.
    let half2 = spawn();
    let pid2 = half2.pid();
    let hooked2 = hooked.clone();
    ComboLock::set_stuck_holder_hook(Arc::new(move || {
        hooked2.fetch_add(1, Ordering::SeqCst);
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid2 as i32, libc::SIGKILL) };
    }));
    let caller = {
        let lock = lock.clone();
        std::thread::spawn(move || call_hold_forever(&lock))
    };
    wait_until("the user hold", Duration::from_secs(5), || {
        lock.is_user_held()
    });
    assert_eq!(ComboLock::expire_stuck_holds(), 0, "not yet past the limit");
    std::thread::sleep(limit);
    assert_eq!(ComboLock::expire_stuck_holds(), 1);
    assert!(!lock.is_user_held());
    assert_eq!(hooked.load(Ordering::SeqCst), 2);
    assert_eq!(
        caller.join().unwrap(),
        Err(CallError::PeerDied {
            peer: microdriver_rt::Half::User
        })
    );
    assert_eq!(*lock.lock().unwrap(), stats(7));
    println!("hold limit {limit:?}: critical path waited {waited:?}, hook ran, lock reclaimed");

    ComboLock::set_user_hold_limit(Duration::ZERO);
    clear_stuck_holder_hook();
    uninstall_kernel();
    drop(half);
    drop(half2);
}

/// Hostile unlocks from a real user half are rejected with the right codes; none changes
/// the kernel copy; the honest unlock still works.
fn hostile_unlocks_rejected() {
    let half = spawn();
    let lock = ComboLock::new(stats(1));
    let codes: Vec<u8> = upcall(
        "combolock_test::hostile",
        &mut (),
        |_, enc| lock.encode(enc),
        |_, dec| Vec::<u8>::decode(dec),
    )
    .expect("hostile upcall");
    // unknown, not held, unknown (hold), unknown; wrong token x2; malformed x3; not held.
    assert_eq!(codes, vec![1, 2, 1, 1, 3, 3, 5, 5, 5, 2]);
    let value = lock.lock().unwrap().clone();
    assert_eq!(
        value,
        Stats {
            packets: 777,
            ..stats(1)
        }
    );
    assert!(!half.is_dead(), "rejections are answers, not crashes");
    uninstall_kernel();
    half.shutdown(Duration::from_secs(1));
}

/// `#[upcall]` with a `&mut` argument holding a combolock, monolithic and split.
fn upcall_macro_with_combolock_field() {
    let mut adapter = Adapter {
        mtu: 1500,
        stats: ComboLock::new(stats(9)),
    };
    assert_eq!(report_and_reset(&mut adapter, 9000), Ok(9));
    assert_eq!(adapter.mtu, 9000);
    let half = spawn();
    adapter.stats.lock().unwrap().packets = 33;
    let id = adapter.stats.id();
    assert_eq!(report_and_reset(&mut adapter, 1400), Ok(33));
    assert_eq!(adapter.mtu, 1400, "ordinary fields come back");
    assert_eq!(adapter.stats.id(), id, "the lock keeps its identity");
    assert!(adapter.stats.is_local());
    let value = adapter.stats.lock().unwrap().clone();
    assert_eq!((value.packets, value.label.as_str()), (0, "reset"));
    uninstall_kernel();
    half.shutdown(Duration::from_secs(1));
}

/// Snapshots: in the kernel half a copy with skipped fields defaulted and no hold; from a
/// real user half, consistent copies while the critical path keeps changing the lock, a
/// hold of a snapshot-only lock refused (code 8), a forged release refused (not held), an
/// unknown id refused; the kernel copy untouched throughout.
fn snapshots_without_holds() {
    let ring = Arc::new(ComboLock::snapshot_only(Ring {
        head: 0,
        tail: 0,
        buffers: vec![7; 4096],
    }));
    let copy = ring.snapshot().expect("local snapshot");
    assert_eq!(
        (copy.head, copy.buffers.len()),
        (0, 0),
        "skipped fields default"
    );
    assert!(!ring.is_user_held());
    let half = spawn();
    let stop = Arc::new(AtomicBool::new(false));
    let critical = {
        let (ring, stop) = (ring.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut g = ring.lock().expect("local lock");
                g.head += 1;
                g.tail += 1;
                n += 1;
            }
            n
        })
    };
    wait_until("the critical path to move", Duration::from_secs(5), || {
        ring.lock().expect("local lock").head >= 1000
    });
    let started = ring.snapshot().expect("local snapshot").head;
    let (seen, hold, forged, unknown): (Vec<u64>, u8, u8, u8) = upcall(
        "combolock_test::snapshots",
        &mut (),
        |_, enc| {
            ring.encode(enc)?;
            200u32.encode(enc)
        },
        |_, dec| <(Vec<u64>, u8, u8, u8)>::decode(dec),
    )
    .expect("snapshot upcall");
    stop.store(true, Ordering::Relaxed);
    let moved = critical.join().expect("critical thread");
    assert_eq!(seen.len(), 200);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "snapshots go forward"
    );
    assert!(
        seen.iter().all(|&h| (started..=moved).contains(&h)),
        "snapshots show the live lock ({started}..={moved}): {seen:?}"
    );
    assert_eq!((hold, forged, unknown), (8, 2, 1));
    let g = ring.lock().expect("local lock");
    assert_eq!((g.head, g.tail, g.buffers.len()), (moved, moved, 4096));
    drop(g);
    assert_eq!(ComboLock::user_holds(), 0);
    let err = ComboLockError::SnapshotOnly { id: 5 }.to_string();
    assert!(err.contains("snapshot()"), "{err}");
    uninstall_kernel();
    half.shutdown(Duration::from_secs(1));
}

/// A user-half hold of a lock around a type with a `#[marshal(skip)]` field: the user half
/// locks, moves the tail and unlocks; the kernel copy keeps its buffers (the user half never
/// saw them, so it must not be able to replace them with a default).
fn user_release_keeps_skipped_fields() {
    let ring = ComboLock::new(Ring {
        head: 1,
        tail: 1,
        buffers: vec![7; 64],
    });
    let half = spawn();
    let (tail, slots_seen): (u64, u64) = upcall(
        "combolock_test::bump_tail",
        &mut (),
        |_, enc| ring.encode(enc),
        |_, dec| <(u64, u64)>::decode(dec),
    )
    .expect("bump_tail upcall");
    assert_eq!((tail, slots_seen), (1, 0), "the user half sees no buffers");
    let g = ring.lock().expect("local lock");
    assert_eq!((g.head, g.tail), (3, 2), "the user half's changes arrived");
    assert_eq!(
        g.buffers,
        vec![7; 64],
        "the kernel copy's skipped field was replaced by the user half's default"
    );
    drop(g);
    uninstall_kernel();
    half.shutdown(Duration::from_secs(1));
}

/// A user half that takes the lock back to back (150 ms holds, no limit set) cannot starve
/// a kernel-half locker: each kernel lock waits at most for the hold in progress, never
/// for a series of them. The holds are long against scheduling noise (a loaded 2-CPU
/// machine can deschedule the locker for tens of milliseconds before it announces
/// itself), so the bound of one hold plus half a hold separates "the hold in progress"
/// from "two holds" (300 ms and more) with room either side.
fn kernel_locker_not_starved_by_a_series_of_holds() {
    const HOLD: Duration = Duration::from_millis(150);
    const KERNEL_LOCKS: usize = 12;
    ComboLock::set_user_hold_limit(Duration::ZERO);
    let half = spawn();
    let lock = Arc::new(ComboLock::new(stats(0)));
    let caller = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            upcall(
                "combolock_test::hold_series",
                &mut (),
                |_, enc| {
                    lock.encode(enc)?;
                    (HOLD.as_millis() as u64).encode(enc)
                },
                |_, dec| u64::decode(dec),
            )
        })
    };
    let mut waits = Vec::new();
    for _ in 0..KERNEL_LOCKS {
        wait_until("a user hold", Duration::from_secs(5), || {
            lock.is_user_held()
        });
        let started = Instant::now();
        let mut guard = lock.lock().expect("local lock");
        waits.push(started.elapsed());
        guard.history.push(0);
    }
    lock.lock().expect("local lock").label = "stop".into();
    let holds = caller.join().expect("caller").expect("hold_series upcall");
    println!("kernel waits across a series of {holds} user holds of {HOLD:?}: {waits:?}");
    let worst = waits.iter().max().copied().unwrap_or_default();
    assert!(
        worst < HOLD + HOLD / 2,
        "a kernel locker waited {worst:?} across user holds of {HOLD:?}: {waits:?}"
    );
    assert!(
        holds >= KERNEL_LOCKS as u64,
        "the user half kept holding between kernel locks"
    );
    uninstall_kernel();
    half.shutdown(Duration::from_secs(1));
}

mod support;

fn main() {
    run_user_half_if_requested();
    support::run_tests(vec![
        ("kernel_fast_path", kernel_fast_path),
        ("marshal_is_identity_only", marshal_is_identity_only),
        ("kernel_side_hold_and_release", kernel_side_hold_and_release),
        (
            "user_round_trip_with_critical_path",
            user_round_trip_with_critical_path,
        ),
        (
            "killed_holder_loses_its_changes",
            killed_holder_loses_its_changes,
        ),
        ("hold_limit_expiry", hold_limit_expiry),
        ("hostile_unlocks_rejected", hostile_unlocks_rejected),
        (
            "upcall_macro_with_combolock_field",
            upcall_macro_with_combolock_field,
        ),
        ("snapshots_without_holds", snapshots_without_holds),
        (
            "user_release_keeps_skipped_fields",
            user_release_keeps_skipped_fields,
        ),
        (
            "kernel_locker_not_starved_by_a_series_of_holds",
            kernel_locker_not_starved_by_a_series_of_holds,
        ),
    ]);
}
