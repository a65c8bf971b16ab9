//! loom models of the combolock: a critical-path thread incrementing a counter under the
//! lock while a user-half holder (modelled in process: it calls the same kernel-side hold
//! and release functions the downcall handlers call) takes the lock and
//! - dies mid-hold (never releases) while a supervisor thread, once the holder is dead,
//!   reclaims every user hold: the holder's change is lost, no increment is, no deadlock;
//! - releases with its change while the supervisor reclaims concurrently: exactly one of
//!   the two ends the hold, and the final value is the increments plus the holder's change
//!   only if its release won.
//!
//! - takes snapshots of a snapshot-only lock while the critical path changes two fields
//!   together: every snapshot sees them equal (never torn), a hold is refused and leaves
//!   the lock free, and no increment is lost.
//!
//! - releases and at once asks for a new hold while a kernel-half locker waits: the kernel
//!   locker is not starved (the user half's second hold waits for it), no change is lost,
//!   and nothing deadlocks.
//!
//! The registry is process-wide, so the models run one after another in a single test.
#![cfg(loom)]

use std::sync::Arc;
use std::time::Duration;

use loom::thread;
use microdriver_rt::marshal::{to_bytes, Decoder, Encoder, Marshal};
use microdriver_rt::sync::combolock::{self, HoldToken};
use microdriver_rt::sync::{ComboLock, ComboLockError};

const INCREMENTS: u64 = 2;
const USER_CHANGE: u64 = 100;

/// What the HOLD downcall's handler does, then what the user half does with the reply.
fn user_hold(id: u64) -> (HoldToken, u64) {
    let mut reply = Vec::new();
    let token =
        combolock::hold_for_user(id, Duration::from_secs(3600), &mut Encoder::new(&mut reply))
            .expect("hold for the user half");
    let mut dec = Decoder::new(&reply);
    assert_eq!(dec.take_u8().expect("code"), 0);
    assert_eq!(u64::decode(&mut dec).expect("token"), token.0);
    let value = u64::decode(&mut dec).expect("contents");
    (token, value)
}

fn critical_path(lock: Arc<ComboLock<u64>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for _ in 0..INCREMENTS {
            *lock.lock().expect("kernel-half lock") += 1;
        }
    })
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn holder_dies_mid_hold() {
    loom::model(|| {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let lock = Arc::new(ComboLock::new(0u64));
        let id = lock.id();
        let critical = critical_path(lock.clone());
        let holder = thread::spawn(move || {
            let (_token, value) = user_hold(id);
            // Changes its copy, then dies without releasing.
            let _changed = value + USER_CHANGE;
        });
        let supervisor = thread::spawn(move || {
            holder.join().expect("holder");
            ComboLock::reclaim_user_holds()
        });
        critical.join().expect("critical path");
        assert_eq!(supervisor.join().expect("supervisor"), 1);
        assert!(!lock.is_user_held());
        assert_eq!(*lock.lock().unwrap(), INCREMENTS, "an increment was lost");
    });
}

fn release_races_reclaim() {
    loom::model(|| {
        let lock = Arc::new(ComboLock::new(0u64));
        let id = lock.id();
        let critical = critical_path(lock.clone());
        let holder = thread::spawn(move || {
            let (token, value) = user_hold(id);
            let back = to_bytes(&(value + USER_CHANGE)).expect("encode");
            combolock::release_from_user(id, token, Some(Decoder::new(&back)))
        });
        let supervisor = thread::spawn(ComboLock::reclaim_user_holds);
        critical.join().expect("critical path");
        let released = holder.join().expect("holder");
        let reclaimed = supervisor.join().expect("supervisor");
        let value = *lock.lock().unwrap();
        match released {
            Ok(()) => {
                assert_eq!(reclaimed, 0);
                assert_eq!(value, INCREMENTS + USER_CHANGE);
            }
            Err(e) => {
                assert_eq!(e, ComboLockError::NotHeld { id });
                assert_eq!(reclaimed, 1);
                assert_eq!(value, INCREMENTS, "a reclaimed hold writes nothing");
            }
        }
        assert!(!lock.is_user_held());
    });
}

fn snapshots_are_never_torn() {
    loom::model(|| {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let lock = Arc::new(ComboLock::snapshot_only((0u64, 0u64)));
        let id = lock.id();
        let critical = {
            let lock = lock.clone();
            thread::spawn(move || {
                for _ in 0..INCREMENTS {
                    let mut g = lock.lock().expect("kernel-half lock");
                    g.0 += 1;
                    g.1 += 1;
                }
            })
        };
        let user = thread::spawn(move || {
            let mut reply = Vec::new();
            let refused = combolock::hold_for_user(
                id,
                Duration::from_secs(3600),
                &mut Encoder::new(&mut reply),
            );
            assert_eq!(refused, Err(ComboLockError::SnapshotOnly { id }));
            combolock::snapshot_for_user(
                id,
                Duration::from_secs(3600),
                &mut Encoder::new(&mut reply),
            )
            .expect("snapshot");
            let mut dec = Decoder::new(&reply);
            assert_eq!(dec.take_u8().expect("code"), 0);
            let (a, b) = <(u64, u64)>::decode(&mut dec).expect("contents");
            assert_eq!(a, b, "a snapshot is taken under the lock");
        });
        critical.join().expect("critical path");
        user.join().expect("user");
        assert_eq!(*lock.lock().expect("lock"), (INCREMENTS, INCREMENTS));
        assert_eq!(ComboLock::user_holds(), 0);
    });
}

fn rehold_with_a_kernel_waiter() {
    loom::model(|| {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let lock = Arc::new(ComboLock::new(0u64));
        let id = lock.id();
        let (first, _) = user_hold(id);
        let kernel = {
            let lock = lock.clone();
            thread::spawn(move || *lock.lock().expect("kernel-half lock") += 1)
        };
        let user = thread::spawn(move || {
            let back = to_bytes(&USER_CHANGE).expect("encode");
            combolock::release_from_user(id, first, Some(Decoder::new(&back)))
                .expect("first release");
            let (second, value) = user_hold(id);
            let back = to_bytes(&(value + USER_CHANGE)).expect("encode");
            combolock::release_from_user(id, second, Some(Decoder::new(&back)))
                .expect("second release");
            value
        });
        kernel.join().expect("kernel locker");
        let seen = user.join().expect("user");
        let value = *lock.lock().unwrap();
        // The first release wrote 100; the kernel's +1 and the second hold's +100 follow in
        // either order, and each saw the other's write.
        assert!(seen == USER_CHANGE || seen == USER_CHANGE + 1, "{seen}");
        assert_eq!(value, 2 * USER_CHANGE + 1);
        assert!(!lock.is_user_held());
    });
}

#[test]
fn combolock_models() {
    holder_dies_mid_hold();
    let dies = RUNS.swap(0, std::sync::atomic::Ordering::Relaxed);
    release_races_reclaim();
    RUNS.swap(0, std::sync::atomic::Ordering::Relaxed);
    snapshots_are_never_torn();
    let snapshots = RUNS.swap(0, std::sync::atomic::Ordering::Relaxed);
    rehold_with_a_kernel_waiter();
    let rehold = RUNS.swap(0, std::sync::atomic::Ordering::Relaxed);
    println!("holder dies: {dies} executions explored; snapshots: {snapshots}; re-hold: {rehold}");
}
