//! The object tracker: keeps each object's kernel-half and user-half copies paired.
//!
//! Each half has an [`ObjectTracker`]. It records, for every object that has crossed, the
//! address of this side's copy (*local*), the address of the other side's copy (*remote*),
//! the object's type, element size and element count. With that it:
//!
//! - translates addresses in both directions, including pointers into the middle of an
//!   array (the interior offset is carried over), by a range lookup in a B-tree
//!   (logarithmic in the number of objects);
//! - rejects, with a [`TrackerError`], any address that is not inside a live registered
//!   object of the expected type at an element boundary, anything within 4096 bytes of
//!   null, poison patterns, and handles whose generation is stale;
//! - mirrors frees: freeing a paired object queues a [`FreeNotice`] for the peer, which the
//!   transport drains into the next message; the peer applies it with
//!   [`ObjectTracker::apply_peer_frees`];
//! - drops every pairing with the peer at once when the user half restarts.
//!
//! The tracker never owns or dereferences the memory it describes; it only answers which
//! addresses are safe to use. It is shared between threads; its locks come from
//! [`crate::sync`], so loom can check it.

mod error;
mod page_index;
mod table;
pub(crate) mod type_tag;

pub use error::TrackerError;
pub use table::Translation;
pub use type_tag::TypeTag;

use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{Mutex, RwLock};
use table::{Space, Table};

/// Addresses below this are never objects (null plus a field offset).
pub const NULL_GUARD: usize = 4096;

/// A handle to a registered object: a slot index and the slot's generation, so a handle
/// kept past the object's free is detected instead of naming whatever took the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectId {
    /// Slot index.
    pub index: u32,
    /// Generation of the slot when the object was registered.
    pub generation: u32,
}

/// What the tracker knows of an object's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's type (for an array, the element type).
    pub ty: TypeTag,
    /// Size of one element in bytes.
    pub elem_size: usize,
    /// Number of elements (1 for a single object).
    pub count: usize,
}

impl ObjectInfo {
    /// A single `T`.
    pub fn of<T>() -> ObjectInfo {
        ObjectInfo::array_of::<T>(1)
    }

    /// An array of `count` `T`s.
    pub fn array_of<T>(count: usize) -> ObjectInfo {
        ObjectInfo {
            ty: TypeTag::of::<T>(),
            elem_size: std::mem::size_of::<T>().max(1),
            count,
        }
    }

    /// Total size in bytes (saturating; registration rejects sizes that overflow).
    pub fn size(&self) -> usize {
        self.elem_size.saturating_mul(self.count)
    }

    fn checked_size(&self, addr: usize) -> Result<usize, TrackerError> {
        let bad = TrackerError::BadSize {
            addr,
            elem_size: self.elem_size,
            count: self.count,
        };
        let size = self.elem_size.checked_mul(self.count).ok_or(bad.clone())?;
        if size == 0 || addr.checked_add(size).is_none() {
            return Err(bad);
        }
        Ok(size)
    }
}

/// A free that one side made and the other must mirror: the freeing side's address of the
/// object (the receiver's *remote* address) and its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeNotice {
    /// The freeing side's address of the object.
    pub addr: u64,
    /// The object's type id ([`TypeTag::id`]).
    pub type_id: u64,
}

/// Frees a copy the runtime allocated while decoding (allocation mirroring).
///
/// # Safety
/// Call once, with the address the copy was registered under, after which it is dead.
pub type Release = unsafe fn(usize);

/// A local object whose pairing was dropped because the peer freed its copy; the caller
/// frees (or keeps) its own copy.
#[derive(Debug, Clone, Copy)]
pub struct Unpaired {
    /// This side's address of the object.
    pub local: usize,
    /// Its shape.
    pub info: ObjectInfo,
    /// Set when the runtime allocated this copy (a mirrored allocation): how to free it.
    pub release: Option<Release>,
}

impl PartialEq for Unpaired {
    /// Equal when they name the same copy with the same shape and both or neither are
    /// mirrored (function addresses themselves are not comparable).
    fn eq(&self, other: &Self) -> bool {
        self.local == other.local
            && self.info == other.info
            && self.release.is_some() == other.release.is_some()
    }
}

impl Eq for Unpaired {}

impl Unpaired {
    fn from_entry(entry: &table::Entry) -> Self {
        Unpaired {
            local: entry.local,
            info: entry.info,
            release: entry.release,
        }
    }
}

/// What [`ObjectTracker::observe_remote`] found for an object the peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Paired already, with the same shape: update this local copy.
    Known {
        /// The local copy.
        local: usize,
        /// Its handle.
        id: ObjectId,
    },
    /// Paired, but the peer's object changed size: the old pairing was dropped; the caller
    /// frees `old` and allocates a new local copy.
    Resized {
        /// The dropped local copy.
        old: Unpaired,
    },
    /// Never seen: allocate a local copy and pair it.
    New,
}

/// Counters for a status view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Live registered objects.
    pub objects: usize,
    /// Bytes they cover.
    pub bytes: usize,
    /// Of them, paired with the peer.
    pub paired: usize,
    /// Successful translations.
    pub translations: u64,
    /// Rejected addresses and operations.
    pub rejections: u64,
    /// Frees waiting to be sent to the peer.
    pub pending_frees: usize,
}

/// The object tracker of one half. See the [module docs](self).
#[derive(Debug)]
pub struct ObjectTracker {
    table: RwLock<Table>,
    frees: Mutex<Vec<FreeNotice>>,
    /// How many frees are queued (written under the `frees` lock): lets every message
    /// find "none" without taking the lock, which is on each call's path.
    pending_frees: AtomicU64,
    translations: AtomicU64,
    rejections: AtomicU64,
}

impl Default for ObjectTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl ObjectTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self {
            table: RwLock::new(Table::default()),
            frees: Mutex::new(Vec::new()),
            pending_frees: AtomicU64::new(0),
            translations: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
        }
    }

    fn counted<T>(&self, result: Result<T, TrackerError>) -> Result<T, TrackerError> {
        match &result {
            Ok(_) => self.translations.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.rejections.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    fn rejected<T>(&self, result: Result<T, TrackerError>) -> Result<T, TrackerError> {
        if result.is_err() {
            self.rejections.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Registers a local object (its counterpart is not known yet).
    pub fn register(&self, local: usize, info: ObjectInfo) -> Result<ObjectId, TrackerError> {
        let result = self.table.write().register(local, info);
        self.rejected(result)
    }

    /// Registers a local object and pairs it with the peer's copy at `remote` in one step
    /// (allocation mirroring: the receiver made a copy of an object new to it).
    pub fn register_pair(
        &self,
        local: usize,
        remote: usize,
        info: ObjectInfo,
    ) -> Result<ObjectId, TrackerError> {
        let mut table = self.table.write();
        let result = table.register(local, info).and_then(|id| {
            table.pair(id, remote).map(|()| id).inspect_err(|_| {
                let _ = table.remove(Space::Local, local);
            })
        });
        drop(table);
        self.rejected(result)
    }

    /// Registers a copy the runtime itself allocated for an object the peer sent, paired
    /// with the peer's address, with the function that frees it when the peer frees its
    /// own (allocation and free mirroring).
    pub fn register_mirror(
        &self,
        local: usize,
        remote: usize,
        info: ObjectInfo,
        release: Release,
    ) -> Result<ObjectId, TrackerError> {
        let id = self.register_pair(local, remote, info)?;
        self.table.write().set_release(id, release)?;
        Ok(id)
    }

    /// Pairs a registered local object with the peer's copy at `remote`.
    pub fn pair(&self, id: ObjectId, remote: usize) -> Result<(), TrackerError> {
        let result = self.table.write().pair(id, remote);
        self.rejected(result)
    }

    /// Translates an address the peer sent (into its copy of an object of type `ty`) into
    /// the address of this side's copy, keeping the interior offset.
    pub fn to_local(&self, remote: usize, ty: TypeTag) -> Result<Translation, TrackerError> {
        let table = self.table.read();
        let result = match table.translate_remote_fast(remote, ty) {
            Some(hit) => Ok(hit),
            None => table.translate(Space::Remote, remote, ty).map(|(t, _)| t),
        };
        drop(table);
        self.counted(result)
    }

    /// Translates a local address (into an object of type `ty`) into the peer's address.
    pub fn to_remote(&self, local: usize, ty: TypeTag) -> Result<Translation, TrackerError> {
        let result = self
            .table
            .read()
            .translate(Space::Local, local, ty)
            .map(|(t, _)| t);
        self.counted(result)
    }

    /// The peer's address of the object starting at `local`, if it is registered and paired.
    pub fn remote_of(&self, local: usize, ty: TypeTag) -> Option<usize> {
        let table = self.table.read();
        table
            .local_at(local, ty)
            .ok()
            .and_then(|(_, entry)| entry.remote)
    }

    /// Checks that `local` is the start of a registered local object of type `ty` (paired
    /// or not) and returns its handle: how a claim by the peer that "your object X is my
    /// object Y" is verified before [`ObjectTracker::pair`].
    pub fn local_object(
        &self,
        local: usize,
        ty: TypeTag,
    ) -> Result<(ObjectId, ObjectInfo, Option<usize>), TrackerError> {
        let result = self
            .table
            .read()
            .local_at(local, ty)
            .map(|(id, entry)| (id, entry.info, entry.remote));
        self.rejected(result)
    }

    /// Looks up a handle (generation-checked): the object's local address and shape.
    pub fn get(&self, id: ObjectId) -> Result<(usize, ObjectInfo), TrackerError> {
        let result = self
            .table
            .read()
            .entry(id)
            .map(|entry| (entry.local, entry.info));
        self.rejected(result)
    }

    /// What this side holds for an object the peer sent from its address `remote` with
    /// shape `info`. A shape change drops the old pairing (re-pairing is the caller's next
    /// `register_pair`).
    pub fn observe_remote(
        &self,
        remote: usize,
        info: ObjectInfo,
    ) -> Result<Observation, TrackerError> {
        let mut table = self.table.write();
        let result = match table.translate(Space::Remote, remote, info.ty) {
            Ok((t, entry)) if t.offset == 0 && entry.info == info => Ok(Observation::Known {
                local: entry.local,
                id: t.id,
            }),
            Ok((t, _)) if t.offset == 0 => {
                let old = table
                    .remove(Space::Remote, remote)
                    .map(|entry| Unpaired::from_entry(&entry));
                old.map(|old| Observation::Resized { old })
            }
            Ok((t, entry)) => Err(TrackerError::Misaligned {
                addr: remote,
                offset: t.offset,
                elem_size: entry.info.elem_size,
            }),
            Err(
                TrackerError::Unregistered { .. }
                | TrackerError::Freed { .. }
                | TrackerError::PastEnd { .. },
            ) => Ok(Observation::New),
            Err(e) => Err(e),
        };
        drop(table);
        self.rejected(result)
    }

    /// Frees a local object: drops its registration and, if the peer holds a copy, queues
    /// a [`FreeNotice`] for it. Returns the object's shape.
    pub fn free_local(&self, local: usize) -> Result<ObjectInfo, TrackerError> {
        let mut table = self.table.write();
        let result = table.remove(Space::Local, local);
        drop(table);
        let entry = self.rejected(result)?;
        if entry.remote.is_some() {
            let mut queue = self.frees.lock();
            queue.push(FreeNotice {
                addr: entry.local as u64,
                type_id: entry.info.ty.id(),
            });
            self.pending_frees
                .store(queue.len() as u64, Ordering::Release);
        }
        Ok(entry.info)
    }

    /// Takes up to `max` queued frees, to piggyback on the next message to the peer.
    pub fn drain_frees(&self, max: usize) -> Vec<FreeNotice> {
        if self.pending_frees.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let mut queue = self.frees.lock();
        let take = queue.len().min(max);
        let drained = queue.drain(..take).collect();
        self.pending_frees
            .store(queue.len() as u64, Ordering::Release);
        drained
    }

    /// Applies frees the peer made: each names the peer's address of an object; its
    /// pairing is dropped and the local copy returned for the caller to free. Notices that
    /// name nothing paired (or the wrong type) are rejected one by one; the rest apply.
    pub fn apply_peer_frees(&self, notices: &[FreeNotice]) -> Vec<Result<Unpaired, TrackerError>> {
        let mut table = self.table.write();
        let results: Vec<_> = notices
            .iter()
            .map(|notice| {
                let addr = usize::try_from(notice.addr)
                    .map_err(|_| TrackerError::Unregistered { addr: usize::MAX })?;
                let entry = table.remove_checked(Space::Remote, addr, notice.type_id)?;
                Ok(Unpaired::from_entry(&entry))
            })
            .collect();
        drop(table);
        for result in &results {
            let counter = if result.is_ok() {
                &self.translations
            } else {
                &self.rejections
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        results
    }

    /// Forgets every pairing with the peer (a restarted user half starts with an empty
    /// table); local objects stay registered. Copies the runtime made of the peer's own
    /// objects (mirrors) are unregistered and freed. Queued frees are dropped: the peer
    /// that should have received them is gone. Returns how many pairings were dropped.
    pub fn clear_peer(&self) -> usize {
        let (dropped, mirrors) = self.table.write().clear_remote();
        {
            let mut queue = self.frees.lock();
            queue.clear();
            self.pending_frees.store(0, Ordering::Release);
        }
        for mirror in mirrors {
            if let Some(release) = mirror.release {
                // SAFETY: `release` was registered with this mirror by the decoder that
                // allocated it, and the entry is now removed, so it runs exactly once.
                unsafe { release(mirror.local) };
            }
        }
        dropped
    }

    /// Counters for a status view.
    pub fn stats(&self) -> TrackerStats {
        let table = self.table.read();
        TrackerStats {
            objects: table.len(),
            bytes: table.bytes(),
            paired: table.paired(),
            translations: self.translations.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
            pending_frees: self.frees.lock().len(),
        }
    }
}

#[cfg(test)]
mod tests;
