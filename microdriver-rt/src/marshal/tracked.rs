//! [`TrackedPtr`]: pointers to objects the tracker pairs across the split, so object graphs
//! (shared objects, back-pointers, cycles) cross with their identity intact.
//!
//! On the wire a tracked pointer is one of:
//! - `0`: null;
//! - `1, index`: a back-reference to the `index`-th object this frame already carried;
//! - `2, sender_addr: u64, type_id: u64, receiver_addr: u64, value`: an object, whole. The
//!   sender's address identifies it; `receiver_addr` is the sender's knowledge of the
//!   receiver's copy (0 when it has none).
//!
//! The receiver resolves an object through its [`ObjectTracker`](crate::tracker::ObjectTracker):
//! a sender address it has paired names its existing copy (which the frame updates); a
//! `receiver_addr` must be a live local object of the right type, which is then paired
//! (how the kernel half learns the user half's copy of an object it sent); anything else is
//! new and gets a fresh local copy (allocation mirroring). Updates, new copies and new
//! pairings are applied only when the whole frame has decoded ([`Decoder::finish`]).
//!
//! The contract of a tracked object: it was allocated by [`TrackedPtr::new`] (or decoded),
//! stays valid until [`TrackedPtr::free`], and no reference to it is held while a frame
//! that carries it is encoded or finished.

use std::fmt;
use std::mem::MaybeUninit;

use super::decoder::{FrameObject, PendingAction};
use super::{Decoder, Encoder, Marshal, MarshalError};
use crate::tracker::{ObjectInfo, ObjectTracker, TrackerError, TypeTag};

/// A nullable pointer to a tracked object. `Copy`, like the C pointer it stands for.
pub struct TrackedPtr<T> {
    ptr: *mut T,
}

impl<T> Clone for TrackedPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for TrackedPtr<T> {}

impl<T> PartialEq for TrackedPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.ptr, other.ptr)
    }
}

impl<T> Eq for TrackedPtr<T> {}

impl<T> fmt::Debug for TrackedPtr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrackedPtr({:p})", self.ptr)
    }
}

impl<T> Default for TrackedPtr<T> {
    fn default() -> Self {
        Self::null()
    }
}

impl<T> TrackedPtr<T> {
    /// The null pointer.
    pub const fn null() -> Self {
        Self {
            ptr: std::ptr::null_mut(),
        }
    }

    /// Moves `value` to the heap and points at it.
    pub fn new(value: T) -> Self {
        Self {
            ptr: Box::into_raw(Box::new(value)),
        }
    }

    /// True for null.
    pub fn is_null(self) -> bool {
        self.ptr.is_null()
    }

    /// The address.
    pub fn as_ptr(self) -> *mut T {
        self.ptr
    }

    /// Borrows the object.
    ///
    /// # Safety
    /// The pointer must be null or point to a live tracked object (not freed), and no
    /// mutable access to it may happen while the reference lives.
    pub unsafe fn get<'a>(self) -> Option<&'a T> {
        // SAFETY: the caller guarantees the object is live and not mutably aliased.
        unsafe { self.ptr.as_ref() }
    }

    /// Borrows the object mutably.
    ///
    /// # Safety
    /// As [`TrackedPtr::get`], and no other access to the object may happen while the
    /// reference lives.
    pub unsafe fn get_mut<'a>(self) -> Option<&'a mut T> {
        // SAFETY: the caller guarantees the object is live and exclusively borrowed.
        unsafe { self.ptr.as_mut() }
    }

    /// Frees the object and, through `tracker`, queues the free for the peer (which drops
    /// its copy when it applies the notice). Null is a no-op.
    ///
    /// # Safety
    /// The pointer must be null or a live tracked object that nothing uses afterwards.
    pub unsafe fn free(self, tracker: Option<&ObjectTracker>) {
        if self.ptr.is_null() {
            return;
        }
        if let Some(tracker) = tracker {
            // An object that never crossed is not registered: nothing to mirror.
            let _ = tracker.free_local(self.ptr as usize);
        }
        // SAFETY: the caller guarantees `ptr` is a live `Box<T>` allocation (from `new` or
        // a decoded object, both `Box`) that nothing uses afterwards.
        drop(unsafe { Box::from_raw(self.ptr) });
    }
}

const TAG_NULL: u8 = 0;
const TAG_BACKREF: u8 = 1;
const TAG_OBJECT: u8 = 2;

impl<T: Marshal + 'static> Marshal for TrackedPtr<T> {
    const MIN_WIRE_SIZE: usize = 1;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        if self.ptr.is_null() {
            enc.put_u8(TAG_NULL);
            return Ok(());
        }
        let addr = self.ptr as usize;
        if let Some(index) = enc.object_index(addr) {
            enc.put_u8(TAG_BACKREF);
            enc.put_varint(index);
            return Ok(());
        }
        let tag = TypeTag::of::<T>();
        let receiver_addr = match enc.tracker() {
            Some(tracker) => match tracker.remote_of(addr, tag) {
                Some(remote) => remote,
                None => {
                    // First crossing: register it so the peer's reply can name it.
                    match tracker.register(addr, ObjectInfo::of::<T>()) {
                        Ok(_) | Err(TrackerError::Overlap { .. }) => 0,
                        Err(e) => return Err(e.into()),
                    }
                }
            },
            None => 0,
        };
        enc.add_object(addr);
        enc.put_u8(TAG_OBJECT);
        enc.put_u64(addr as u64);
        enc.put_u64(tag.id());
        enc.put_u64(receiver_addr as u64);
        // SAFETY: non-null, and the tracked-object contract (module docs) says it is live
        // and not mutably borrowed while a frame carrying it is encoded.
        let value = unsafe { &*self.ptr };
        value.encode(enc)
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        let offset = dec.position();
        match dec.take_u8()? {
            TAG_NULL => Ok(Self::null()),
            TAG_BACKREF => {
                let index = dec.take_varint()?;
                let count = dec.objects.len();
                let object = usize::try_from(index)
                    .ok()
                    .and_then(|i| dec.objects.get(i))
                    .ok_or(MarshalError::BadBackReference { index, count })?;
                let expected = std::any::type_name::<T>();
                if object.type_name != expected {
                    return Err(MarshalError::TypeMismatch {
                        index,
                        expected,
                        found: object.type_name,
                    });
                }
                Ok(Self {
                    ptr: object.addr as *mut T,
                })
            }
            TAG_OBJECT => decode_object::<T>(dec),
            tag => Err(MarshalError::BadTag {
                what: "tracked pointer",
                tag: u64::from(tag),
                offset,
            }),
        }
    }
}

/// Where a decoded object goes.
enum Target<T> {
    /// An existing local copy, to be overwritten at commit (and paired with the sender's
    /// address, if it was not yet).
    Existing {
        local: *mut T,
        pair_with: Option<usize>,
    },
    /// A fresh allocation (paired at commit when there is a tracker).
    New(Uninit<T>),
}

/// A fresh heap slot for a decoded object, owned through a raw pointer from the start (so
/// the address handed to back-references stays valid: a `Box` that moved would retag it);
/// freed, uninitialised, if dropped.
struct Uninit<T>(*mut MaybeUninit<T>);

impl<T> Uninit<T> {
    fn new() -> Self {
        Uninit(Box::into_raw(Box::new(MaybeUninit::uninit())))
    }

    fn ptr(&self) -> *mut T {
        self.0.cast()
    }

    /// Stores the value; the allocation now holds a live `T` owned by the caller.
    fn init(self, value: T) -> *mut T {
        let ptr = self.0;
        std::mem::forget(self);
        // SAFETY: `ptr` is the live, uninitialised allocation made in `new`, owned by us.
        unsafe { ptr.write(MaybeUninit::new(value)) };
        ptr.cast()
    }
}

impl<T> Drop for Uninit<T> {
    fn drop(&mut self) {
        // SAFETY: the allocation came from `Box::into_raw` in `new` and was never handed
        // out initialised (`init` forgets `self`); `MaybeUninit` drops no `T`.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

fn decode_object<T: Marshal + 'static>(
    dec: &mut Decoder<'_>,
) -> Result<TrackedPtr<T>, MarshalError> {
    let sender = dec.take_u64()?;
    let type_offset = dec.position();
    let type_id = dec.take_u64()?;
    let claimed = dec.take_u64()?;
    let tag = TypeTag::of::<T>();
    if type_id != tag.id() {
        return Err(MarshalError::BadTag {
            what: "tracked object type",
            tag: type_id,
            offset: type_offset,
        });
    }
    // One sender address may appear whole only once per frame: later mentions must be
    // back-references.
    if !dec.note_sender(sender) {
        return Err(MarshalError::BadTag {
            what: "duplicate tracked object",
            tag: sender,
            offset: type_offset,
        });
    }
    let target = resolve::<T>(dec, sender, claimed)?;
    let local = match &target {
        Target::Existing { local, .. } => *local,
        Target::New(slot) => slot.ptr(),
    };
    dec.objects.push(FrameObject {
        addr: local as usize,
        type_name: std::any::type_name::<T>(),
    });
    dec.enter()?;
    let value = T::decode(dec)?;
    dec.leave();
    let remote = usize::try_from(sender).ok();
    match target {
        Target::Existing { local, pair_with } => dec.defer(Box::new(Update {
            local,
            value,
            pair_with,
        })),
        Target::New(slot) => {
            let object = slot.init(value);
            dec.defer(Box::new(NewObject { object, remote }));
        }
    }
    Ok(TrackedPtr { ptr: local })
}

fn resolve<T: 'static>(
    dec: &Decoder<'_>,
    sender: u64,
    claimed: u64,
) -> Result<Target<T>, MarshalError> {
    let Some(tracker) = dec.tracker() else {
        return Ok(Target::New(Uninit::new()));
    };
    let tag = TypeTag::of::<T>();
    let sender =
        usize::try_from(sender).map_err(|_| TrackerError::Unregistered { addr: usize::MAX })?;
    let claimed =
        usize::try_from(claimed).map_err(|_| TrackerError::Unregistered { addr: usize::MAX })?;
    match tracker.to_local(sender, tag) {
        Ok(t) if t.offset == 0 => {
            if claimed != 0 && claimed != t.addr {
                return Err(TrackerError::PairingMismatch {
                    local: t.addr,
                    paired: sender,
                    claimed,
                }
                .into());
            }
            return Ok(Target::Existing {
                local: t.addr as *mut T,
                pair_with: None,
            });
        }
        Ok(t) => {
            return Err(TrackerError::Misaligned {
                addr: sender,
                offset: t.offset,
                elem_size: std::mem::size_of::<T>(),
            }
            .into())
        }
        Err(
            TrackerError::Unregistered { .. }
            | TrackerError::Freed { .. }
            | TrackerError::PastEnd { .. },
        ) => {}
        Err(e) => return Err(e.into()),
    }
    if claimed != 0 {
        // The sender says this is our object at `claimed`: it must be a live local object
        // of this type that is not paired with anything else.
        let (_, _, paired) = tracker.local_object(claimed, tag)?;
        if let Some(paired) = paired {
            return Err(TrackerError::PairingMismatch {
                local: claimed,
                paired,
                claimed: sender,
            }
            .into());
        }
        return Ok(Target::Existing {
            local: claimed as *mut T,
            pair_with: Some(sender),
        });
    }
    Ok(Target::New(Uninit::new()))
}

/// Overwrites an existing local copy when the frame commits.
struct Update<T> {
    local: *mut T,
    value: T,
    pair_with: Option<usize>,
}

impl<T> PendingAction for Update<T> {
    fn commit(self: Box<Self>, tracker: Option<&ObjectTracker>) {
        let Update {
            local,
            value,
            pair_with,
        } = *self;
        // SAFETY: `local` was resolved through the tracker to a live registered object of
        // type `T` (a `Box<T>` allocation); the tracked-object contract says nobody holds a
        // reference to it while the frame is finished, so this exclusive write is sound.
        unsafe { *local = value };
        if let (Some(tracker), Some(remote)) = (tracker, pair_with) {
            if let Ok((id, _, None)) = tracker.local_object(local as usize, TypeTag::of::<T>()) {
                let _ = tracker.pair(id, remote);
            }
        }
    }

    fn rollback(self: Box<Self>) {}
}

/// A new local copy: paired when the frame commits, freed if it fails.
struct NewObject<T> {
    /// A live `T` from `Uninit::init`, owned here until commit or rollback.
    object: *mut T,
    remote: Option<usize>,
}

impl<T> PendingAction for NewObject<T> {
    fn commit(self: Box<Self>, tracker: Option<&ObjectTracker>) {
        if let (Some(tracker), Some(remote)) = (tracker, self.remote) {
            // A pairing the tracker refuses (say the sender reused an address it still has
            // paired) leaves the copy unpaired: the next frame that names it makes a new one.
            let _ = tracker.register_mirror(
                self.object as usize,
                remote,
                ObjectInfo::of::<T>(),
                release_box::<T>,
            );
        }
    }

    fn rollback(self: Box<Self>) {
        // SAFETY: `object` is the live `Box<T>` allocation made by `Uninit` and initialised
        // by `init`; the frame failed, so nothing else will ever own it.
        drop(unsafe { Box::from_raw(self.object) });
    }
}

/// Frees a mirrored copy (registered by `NewObject::commit`).
///
/// # Safety
/// `addr` must be the address of a live `Box<T>` made by `NewObject::commit`, freed once.
unsafe fn release_box<T>(addr: usize) {
    // SAFETY: per the contract, `addr` is a `Box<T>` from `Box::into_raw` in `commit`.
    drop(unsafe { Box::from_raw(addr as *mut T) });
}

impl Decoder<'_> {
    /// Records that the frame carried the object with this sender address whole; false if
    /// it already had.
    fn note_sender(&mut self, sender: u64) -> bool {
        self.senders
            .get_or_insert_with(Default::default)
            .insert(sender)
    }
}
