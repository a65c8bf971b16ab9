use super::*;

#[derive(Debug, Clone, Copy)]
#[allow(dead_code)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u32,
}

struct Other;

const K: usize = 0x7f00_0000_0000;
const U: usize = 0x5500_0000_0000;

fn tracker_with_ring(count: usize) -> (ObjectTracker, ObjectId) {
    let tracker = ObjectTracker::new();
    let id = tracker
        .register_pair(K, U, ObjectInfo::array_of::<Desc>(count))
        .expect("register");
    (tracker, id)
}

#[test]
fn translates_both_ways_with_interior_offsets() {
    let (tracker, id) = tracker_with_ring(256);
    let tag = TypeTag::of::<Desc>();
    let size = std::mem::size_of::<Desc>();
    let t = tracker.to_local(U + 17 * size, tag).expect("interior");
    assert_eq!(t.addr, K + 17 * size);
    assert_eq!(t.index, 17);
    assert_eq!(t.offset, 17 * size);
    assert_eq!(t.id, id);
    let back = tracker
        .to_remote(K + 255 * size, tag)
        .expect("last element");
    assert_eq!(back.addr, U + 255 * size);
    assert_eq!(
        tracker.get(id).expect("handle"),
        (K, ObjectInfo::array_of::<Desc>(256))
    );
}

#[test]
fn rejects_near_null_and_poison() {
    let (tracker, _) = tracker_with_ring(4);
    let tag = TypeTag::of::<Desc>();
    assert_eq!(
        tracker.to_local(0, tag),
        Err(TrackerError::NearNull { addr: 0 })
    );
    assert_eq!(
        tracker.to_local(4095, tag),
        Err(TrackerError::NearNull { addr: 4095 })
    );
    assert!(matches!(
        tracker.to_local(0x6b6b_6b6b_6b6b_6b6b, tag),
        Err(TrackerError::Poisoned { .. })
    ));
    assert!(matches!(
        tracker.register(16, ObjectInfo::of::<Desc>()),
        Err(TrackerError::NearNull { .. })
    ));
}

#[test]
fn rejects_unregistered_past_end_wrong_type_misaligned() {
    let (tracker, _) = tracker_with_ring(4);
    let tag = TypeTag::of::<Desc>();
    let size = std::mem::size_of::<Desc>();
    assert_eq!(
        tracker.to_local(U - 8, tag),
        Err(TrackerError::Unregistered { addr: U - 8 })
    );
    assert_eq!(
        tracker.to_local(U + 4 * size, tag),
        Err(TrackerError::PastEnd {
            addr: U + 4 * size,
            start: U,
            size: 4 * size
        })
    );
    assert!(matches!(
        tracker.to_local(U + 4 * size + 64, tag),
        Err(TrackerError::Unregistered { .. })
    ));
    assert!(matches!(
        tracker.to_local(U, TypeTag::of::<Other>()),
        Err(TrackerError::WrongType { .. })
    ));
    assert_eq!(
        tracker.to_local(U + 3, tag),
        Err(TrackerError::Misaligned {
            addr: U + 3,
            offset: 3,
            elem_size: size
        })
    );
    assert_eq!(tracker.stats().rejections, 5);
}

#[test]
fn freed_objects_and_stale_handles_are_rejected() {
    let (tracker, id) = tracker_with_ring(4);
    let tag = TypeTag::of::<Desc>();
    tracker.free_local(K).expect("free");
    assert_eq!(
        tracker.to_local(U + 16, tag),
        Err(TrackerError::Freed { addr: U + 16 })
    );
    assert_eq!(
        tracker.to_remote(K, tag),
        Err(TrackerError::Freed { addr: K })
    );
    assert!(matches!(
        tracker.get(id),
        Err(TrackerError::StaleHandle { .. })
    ));
    // The slot is reused by a new object; the old handle still does not resolve to it.
    let new_id = tracker
        .register(K + 0x1000, ObjectInfo::of::<Desc>())
        .expect("reuse");
    assert_eq!(new_id.index, id.index);
    assert_ne!(new_id.generation, id.generation);
    assert!(matches!(
        tracker.get(id),
        Err(TrackerError::StaleHandle { .. })
    ));
    // A double free is an error, not a corruption.
    assert!(matches!(
        tracker.free_local(K),
        Err(TrackerError::Freed { .. })
    ));
}

#[test]
fn overlapping_registrations_are_refused() {
    let (tracker, _) = tracker_with_ring(4);
    let size = std::mem::size_of::<Desc>();
    assert!(matches!(
        tracker.register(K + size, ObjectInfo::of::<Desc>()),
        Err(TrackerError::Overlap { .. })
    ));
    assert!(matches!(
        tracker.register(K - 8, ObjectInfo::of::<Desc>()),
        Err(TrackerError::Overlap { .. })
    ));
    // Remote ranges are checked too.
    assert!(matches!(
        tracker.register_pair(K + 0x10000, U + size, ObjectInfo::of::<Desc>()),
        Err(TrackerError::Overlap { .. })
    ));
    // The failed pairing left no local registration behind.
    tracker
        .register(K + 0x10000, ObjectInfo::of::<Desc>())
        .expect("range still free");
    assert!(matches!(
        tracker.register(usize::MAX - 4, ObjectInfo::of::<Desc>()),
        Err(TrackerError::BadSize { .. })
    ));
}

#[test]
fn frees_are_queued_for_the_peer_and_mirrored() {
    let kernel = ObjectTracker::new();
    let user = ObjectTracker::new();
    kernel
        .register_pair(K, U, ObjectInfo::of::<Desc>())
        .expect("k pair");
    user.register_pair(U, K, ObjectInfo::of::<Desc>())
        .expect("u pair");
    // An unpaired object's free is not sent anywhere.
    kernel
        .register(K + 0x1000, ObjectInfo::of::<Desc>())
        .expect("unpaired");
    kernel.free_local(K + 0x1000).expect("free unpaired");
    assert_eq!(kernel.stats().pending_frees, 0);

    kernel.free_local(K).expect("free");
    assert_eq!(kernel.stats().pending_frees, 1);
    let notices = kernel.drain_frees(16);
    assert_eq!(kernel.stats().pending_frees, 0);
    let results = user.apply_peer_frees(&notices);
    assert_eq!(
        results,
        vec![Ok(Unpaired {
            local: U,
            info: ObjectInfo::of::<Desc>(),
            release: None,
        })]
    );
    assert_eq!(user.stats().objects, 0);
    // Replaying the notice is rejected, not applied twice.
    assert!(user.apply_peer_frees(&notices)[0].is_err());
    // A forged notice (wrong type) is rejected.
    user.register_pair(U, K, ObjectInfo::of::<Desc>())
        .expect("pair again");
    let forged = FreeNotice {
        addr: K as u64,
        type_id: TypeTag::of::<Other>().id(),
    };
    assert!(matches!(
        user.apply_peer_frees(&[forged])[0],
        Err(TrackerError::WrongType { .. })
    ));
    assert_eq!(user.stats().objects, 1);
}

#[test]
fn size_change_is_detected_and_repaired() {
    let tracker = ObjectTracker::new();
    tracker
        .register_pair(K, U, ObjectInfo::array_of::<Desc>(8))
        .expect("pair");
    assert!(matches!(
        tracker.observe_remote(U, ObjectInfo::array_of::<Desc>(8)),
        Ok(Observation::Known { local: K, .. })
    ));
    let resized = tracker
        .observe_remote(U, ObjectInfo::array_of::<Desc>(16))
        .expect("observe");
    assert_eq!(
        resized,
        Observation::Resized {
            old: Unpaired {
                local: K,
                info: ObjectInfo::array_of::<Desc>(8),
                release: None,
            }
        }
    );
    assert_eq!(tracker.stats().objects, 0);
    tracker
        .register_pair(K + 0x1000, U, ObjectInfo::array_of::<Desc>(16))
        .expect("re-pair");
    assert_eq!(
        tracker.observe_remote(U + 0x2000, ObjectInfo::of::<Desc>()),
        Ok(Observation::New)
    );
}

#[test]
fn clear_peer_drops_every_pairing_but_keeps_local_objects() {
    let tracker = ObjectTracker::new();
    for i in 0..100 {
        tracker
            .register_pair(K + i * 0x100, U + i * 0x100, ObjectInfo::of::<Desc>())
            .expect("pair");
    }
    tracker.free_local(K).expect("free");
    assert_eq!(tracker.clear_peer(), 99);
    let stats = tracker.stats();
    assert_eq!(
        (stats.objects, stats.paired, stats.pending_frees),
        (99, 0, 0)
    );
    assert!(matches!(
        tracker.to_local(U + 0x100, TypeTag::of::<Desc>()),
        Err(TrackerError::Unregistered { .. })
    ));
    assert!(matches!(
        tracker.to_remote(K + 0x100, TypeTag::of::<Desc>()),
        Err(TrackerError::NotPaired { .. })
    ));
    // A new peer can pair the same objects again.
    let (id, _, remote) = tracker
        .local_object(K + 0x100, TypeTag::of::<Desc>())
        .expect("still registered");
    assert_eq!(remote, None);
    tracker
        .pair(id, 0x9000_0000)
        .expect("re-pair after restart");
}

#[test]
fn pairing_mismatch_is_refused() {
    let tracker = ObjectTracker::new();
    let id = tracker
        .register_pair(K, U, ObjectInfo::of::<Desc>())
        .expect("pair");
    tracker.pair(id, U).expect("same pairing is idempotent");
    assert!(matches!(
        tracker.pair(id, U + 0x1000),
        Err(TrackerError::PairingMismatch { .. })
    ));
}

#[test]
#[cfg_attr(miri, ignore = "thousands of lock round-trips: too slow under Miri")]
fn concurrent_register_translate_free() {
    let tracker = std::sync::Arc::new(ObjectTracker::new());
    let threads: Vec<_> = (0..4usize)
        .map(|t| {
            let tracker = tracker.clone();
            std::thread::spawn(move || {
                let tag = TypeTag::of::<Desc>();
                for i in 0..2_000usize {
                    let k = K + (t * 1_000_000 + i) * 64;
                    let u = U + (t * 1_000_000 + i) * 64;
                    tracker
                        .register_pair(k, u, ObjectInfo::of::<Desc>())
                        .expect("pair");
                    assert_eq!(tracker.to_local(u, tag).expect("translate").addr, k);
                    if i % 2 == 0 {
                        tracker.free_local(k).expect("free");
                        assert!(tracker.to_local(u, tag).is_err());
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    let stats = tracker.stats();
    assert_eq!(stats.objects, 4 * 1_000);
    assert_eq!(stats.pending_frees, 4 * 1_000);
}
