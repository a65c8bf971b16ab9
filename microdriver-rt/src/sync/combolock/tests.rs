//! The unsafe paths in-process (what `scripts/miri` checks): the value cell reached
//! through guards, snapshots, holds and releases on the kernel side.
use super::*;
use crate::marshal::{from_bytes, to_bytes};

#[derive(Debug, Default, PartialEq, crate::Marshal)]
struct Ring {
    head: u32,
    #[marshal(skip)]
    memory: Vec<u8>,
}

#[test]
fn snapshot_copies_without_holding_and_skips_memory() {
    let lock = ComboLock::snapshot_only(Ring {
        head: 3,
        memory: vec![1; 64],
    });
    lock.lock().expect("local").head += 1;
    let copy = lock.snapshot().expect("snapshot");
    assert_eq!(
        copy,
        Ring {
            head: 4,
            memory: Vec::new()
        }
    );
    assert!(!lock.is_user_held());
    let mut enc = Vec::new();
    let refused = hold_for_user(lock.id(), Duration::ZERO, &mut Encoder::new(&mut enc));
    assert_eq!(refused, Err(ComboLockError::SnapshotOnly { id: lock.id() }));
    snapshot_for_user(lock.id(), Duration::ZERO, &mut Encoder::new(&mut enc))
        .expect("snapshot for the user half");
    assert_eq!(enc[0], 0);
    assert_eq!(from_bytes::<Ring>(&enc[1..]).expect("decodes").head, 4);
    assert_eq!(lock.lock().expect("local").memory.len(), 64);
}

/// A user release decodes into the kernel copy: what the user half never saw (the
/// skipped field) stays the kernel half's.
#[test]
fn user_release_keeps_skipped_fields() {
    let lock = ComboLock::new(Ring {
        head: 1,
        memory: vec![9; 64],
    });
    let mut reply = Vec::new();
    let token =
        hold_for_user(lock.id(), Duration::ZERO, &mut Encoder::new(&mut reply)).expect("hold");
    // code (1 byte), token (8 bytes), then the contents.
    let mut copy: Ring = from_bytes(&reply[9..]).expect("contents");
    assert!(
        copy.memory.is_empty(),
        "the user half never sees the memory"
    );
    copy.head += 1;
    let back = to_bytes(&copy).expect("encode");
    release_from_user(lock.id(), token, Some(Decoder::new(&back))).expect("release");
    let guard = lock.lock().expect("local");
    assert_eq!((guard.head, guard.memory.len()), (2, 64));
}

#[derive(Debug, crate::Marshal)]
struct Holder {
    mtu: u32,
    stats: ComboLock<u64>,
}

/// A `&mut` value coming back (an upcall's reply) cannot make a lock field name
/// another live lock of the same type, even in a struct without skipped fields.
#[test]
fn reply_cannot_repoint_a_lock_field() {
    let mine = ComboLock::new(1u64);
    let other = ComboLock::new(2u64);
    let mut holder = Holder {
        mtu: 1500,
        stats: mine.clone(),
    };
    let forged = to_bytes(&Holder {
        mtu: 9000,
        stats: other.clone(),
    })
    .expect("encode");
    let refused = holder.decode_into(&mut Decoder::new(&forged));
    assert!(refused.is_err(), "re-pointed to {:?}", holder.stats);
    assert_eq!((holder.mtu, holder.stats.id()), (1500, mine.id()));
    // The honest reply (the same lock) is taken, with the new MTU.
    let honest = to_bytes(&Holder {
        mtu: 9000,
        stats: mine.clone(),
    })
    .expect("encode");
    holder
        .decode_into(&mut Decoder::new(&honest))
        .expect("same lock");
    assert_eq!((holder.mtu, holder.stats.id()), (9000, mine.id()));
}

#[test]
fn hold_and_release_write_back_through_the_cell() {
    let lock = ComboLock::new(7u64);
    let mut reply = Vec::new();
    let token =
        hold_for_user(lock.id(), Duration::ZERO, &mut Encoder::new(&mut reply)).expect("hold");
    assert!(lock.is_user_held());
    let busy = snapshot_for_user(lock.id(), Duration::ZERO, &mut Encoder::new(&mut reply));
    assert_eq!(busy, Err(ComboLockError::Busy { id: lock.id() }));
    let back = to_bytes(&9u64).expect("encode");
    release_from_user(lock.id(), token, Some(Decoder::new(&back))).expect("release");
    assert_eq!(*lock.lock().expect("local"), 9);
    let handle = lock.clone();
    assert_eq!(handle, lock);
    assert_eq!(handle.snapshot().expect("snapshot"), 9);
}
