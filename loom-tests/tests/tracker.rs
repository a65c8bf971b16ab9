//! loom models of the object tracker. Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p loom-tests --release`.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use microdriver_rt::tracker::{ObjectInfo, ObjectTracker, TrackerError, TypeTag};

#[derive(Clone, Copy)]
#[allow(dead_code)]
struct Desc([u64; 2]);

const K: usize = 0x7f00_0000_0000;
const U: usize = 0x5500_0000_0000;

fn info() -> ObjectInfo {
    ObjectInfo::of::<Desc>()
}

/// Two threads register and translate while a third frees: no pairing is lost, the
/// object is freed once, and once the free has returned nobody translates into it.
#[test]
fn register_translate_while_freeing() {
    loom::model(|| {
        let tracker = Arc::new(ObjectTracker::new());
        let tag = TypeTag::of::<Desc>();
        tracker.register_pair(K, U, info()).expect("pre-pair");
        let freed = Arc::new(AtomicBool::new(false));

        let workers: Vec<_> = (1..=2usize)
            .map(|i| {
                let tracker = tracker.clone();
                let freed = freed.clone();
                thread::spawn(move || {
                    let (k, u) = (K + i * 0x1000, U + i * 0x1000);
                    tracker.register_pair(k, u, info()).expect("register");
                    assert_eq!(tracker.to_local(u, tag).expect("own pairing").addr, k);
                    let free_done = freed.load(Ordering::SeqCst);
                    match tracker.to_local(U, tag) {
                        Ok(t) => {
                            assert!(!free_done, "translated an object whose free had returned");
                            assert_eq!(t.addr, K);
                        }
                        Err(TrackerError::Freed { .. }) => {}
                        Err(other) => panic!("unexpected rejection {other:?}"),
                    }
                })
            })
            .collect();

        let freer = {
            let tracker = tracker.clone();
            let freed = freed.clone();
            thread::spawn(move || {
                tracker.free_local(K).expect("first free");
                freed.store(true, Ordering::SeqCst);
            })
        };

        for worker in workers {
            worker.join().expect("worker");
        }
        freer.join().expect("freer");

        // No double free, no lost pairing.
        assert!(tracker.free_local(K).is_err());
        assert!(matches!(
            tracker.to_local(U, tag),
            Err(TrackerError::Freed { .. })
        ));
        for i in 1..=2usize {
            assert_eq!(
                tracker
                    .to_local(U + i * 0x1000, tag)
                    .expect("pairing kept")
                    .addr,
                K + i * 0x1000
            );
        }
        let stats = tracker.stats();
        assert_eq!(
            (stats.objects, stats.paired, stats.pending_frees),
            (2, 2, 1)
        );
    });
}

/// Draining the free queue while frees are queued: every notice is delivered exactly once.
#[test]
fn drain_races_new_frees() {
    loom::model(|| {
        let tracker = Arc::new(ObjectTracker::new());
        for i in 0..2usize {
            tracker
                .register_pair(K + i * 0x1000, U + i * 0x1000, info())
                .expect("pair");
        }
        let freer = {
            let tracker = tracker.clone();
            thread::spawn(move || {
                tracker.free_local(K).expect("free 0");
                tracker.free_local(K + 0x1000).expect("free 1");
            })
        };
        let drainer = {
            let tracker = tracker.clone();
            thread::spawn(move || tracker.drain_frees(16))
        };
        freer.join().expect("freer");
        let mut delivered = drainer.join().expect("drainer");
        delivered.extend(tracker.drain_frees(16));
        let mut addrs: Vec<u64> = delivered.iter().map(|n| n.addr).collect();
        addrs.sort_unstable();
        assert_eq!(addrs, vec![K as u64, (K + 0x1000) as u64]);
        assert_eq!(tracker.stats().pending_frees, 0);

        // The peer applies them: both copies unpaired, a replay rejected.
        let peer = ObjectTracker::new();
        for i in 0..2usize {
            peer.register_pair(U + i * 0x1000, K + i * 0x1000, info())
                .expect("peer pair");
        }
        assert!(peer.apply_peer_frees(&delivered).iter().all(Result::is_ok));
        assert!(peer.apply_peer_frees(&delivered).iter().all(Result::is_err));
        assert_eq!(peer.stats().objects, 0);
    });
}

/// A user-half restart (clear_peer) racing a translation and a new pairing: the
/// translation sees the old pairing or none, never a torn one; the new pairing may be
/// dropped by the clear but the local object stays registered.
#[test]
fn clear_peer_races_translation() {
    loom::model(|| {
        let tracker = Arc::new(ObjectTracker::new());
        let tag = TypeTag::of::<Desc>();
        tracker.register_pair(K, U, info()).expect("pair");
        let reader = {
            let tracker = tracker.clone();
            thread::spawn(move || match tracker.to_local(U, tag) {
                Ok(t) => assert_eq!(t.addr, K),
                Err(TrackerError::Unregistered { .. }) => {}
                Err(other) => panic!("unexpected {other:?}"),
            })
        };
        let restarter = {
            let tracker = tracker.clone();
            thread::spawn(move || {
                tracker.clear_peer();
            })
        };
        reader.join().expect("reader");
        restarter.join().expect("restarter");
        let stats = tracker.stats();
        assert_eq!((stats.objects, stats.paired), (1, 0));
    });
}
